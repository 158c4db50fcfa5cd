"""Invalid params in the user's words: per field, what was wrong and what it takes.

pydantic says ``String should match pattern '^[0-9]{8}T...'`` or ``Extra inputs are not
permitted``; a person wants ``runId: 'nope' is not a run id (expected like
20261124T101500123Z-1a2b3c4d)`` or ``unknown parameter 'forse' (did you mean 'force'?)``.

A check's own words (``names.check_*``, a model's validator) are kept as they are. Every other
problem is said from the params' JSON Schema, the one ``rpc.discover`` publishes (a field's
``title``, ``examples``, bounds, ``enum``), so what a message asks for is what the contract
says. A ``writeOnly`` field (a passphrase, a secret's value) or one marked ``Unquoted`` (a
secret's name) is never quoted back.
``error.data`` keeps the machine's view of each problem, the first ``MAX_LISTED``: its ``loc``
and pydantic ``type`` as pydantic gives them (a name in ``loc`` cut after 80 characters), the
``field`` as the message names it, and that message (``msg``).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.alias_generators import to_camel

from simpleaided.domain.api.base import params_schema
from simpleaided.domain.api.fields import Unquoted
from simpleaided.domain.names import quoted

MAX_SAID = 3  # problems the message says; error.data lists them all, up to MAX_LISTED
MAX_LISTED = 100
MAX_NAMED = 12  # a method's parameters are named after an unknown one when it has no more

Schema = Mapping[str, Any]
_ABSENT: Any = object()
# What a union member says when a value is not of its type at all: beside the member of the
# value's type it is noise; alone, the whole union is said instead.
_MISMATCH = frozenset(
    {"literal_error", "enum", "is_instance_of", "none_required", "int_from_float"}
    | {"int_parsing", "float_parsing", "bool_parsing"}
)
_PLURALS = {"character": "characters", "item": "items", "entry": "entries"}


@dataclass(frozen=True)
class _Place:
    """Where an error's ``loc`` leads in the schema and in the params sent."""

    path: tuple[int | str, ...]  # the items of loc that name fields, indexes and keys
    schema: Schema  # the schema there (refs resolved, a nullable's branch taken)
    rest: tuple[int | str, ...]  # what of loc names no field: an unknown name, '[key]'
    value: Any  # the value sent there, or _ABSENT
    secret: bool  # a writeOnly schema on the way: the value is never quoted
    union: tuple[tuple[int | str, ...], Schema, Any] | None  # the union the error ended in


@dataclass(frozen=True)
class _Problem:
    loc: list[int | str]
    field: str
    msg: str
    type: str
    weak: bool = False  # a union member's "not my type", said for the whole union


def explain_invalid(
    model: type[BaseModel], exc: ValidationError, params: Any
) -> tuple[str, dict[str, Any]]:
    """The message and ``error.data`` for ``params`` that ``model`` refused with ``exc``.

    Only the first ``MAX_LISTED`` of pydantic's errors are explained: the rest are counted
    (``and N more``). pydantic builds its list of errors whole, ~2 µs each, on the event loop;
    when most of them are unknown names (a message of 100,000), the params are validated again
    without the unknown names past the first ``MAX_LISTED``, and those are counted instead.
    """
    total = exc.error_count()
    if total > MAX_LISTED:
        exc, params = _fewer_errors(model, exc, params)
    errors = exc.errors(include_url=False)[:MAX_LISTED]
    unexplained = total - len(errors)  # counted as one problem each
    root = params_schema(model)
    unquoted = _unquoted(model)
    found = [_explain(root, error, params, unquoted) for error in errors]
    strong = [p.field for p in found if not p.weak]
    problems: list[_Problem] = []
    said: set[str] = set()
    for problem in found:
        if problem.weak and any(_within(field, problem.field) for field in strong):
            continue
        if problem.msg not in said:
            said.add(problem.msg)
            problems.append(problem)
    message = "; ".join(p.msg for p in problems[:MAX_SAID])
    more = len(problems) - MAX_SAID + unexplained
    if more > 0:
        message += f" (and {more} more)"
    listed = [
        {"loc": [_cut(item) for item in p.loc], "field": p.field, "msg": p.msg, "type": p.type}
        for p in problems
    ]
    return message, {"errors": listed}


def _fewer_errors(
    model: type[BaseModel], exc: ValidationError, params: Any
) -> tuple[ValidationError, Any]:
    """``exc`` and ``params``, or, when ``params`` holds more than ``MAX_LISTED`` unknown names
    (at any depth: in a ``changes`` entry too), the error of the same params without those past
    the first ``MAX_LISTED`` (each would cost an error of its own to build, and none of them
    would be listed)."""
    budget = [MAX_LISTED]
    kept = _without_unknown(model, params, budget)
    if budget[0] >= 0:  # none left out
        return exc, params
    try:
        model.model_validate(kept)
    except ValidationError as fewer:
        return fewer, kept
    return exc, params  # cannot be (an unknown name is kept), but then: the whole error


def _without_unknown(model: type[BaseModel], params: Any, budget: list[int]) -> Any:
    """``params`` (for ``model``) without the unknown names past the first ``budget[0]``,
    counted down in the order pydantic meets them (``-1``, once any were left out)."""
    if not isinstance(params, dict) or model.model_config.get("extra") != "forbid":
        return params
    fields = _fields_by_name(model)
    kept: dict[Any, Any] = {}
    for key, value in params.items():
        inner = fields.get(key) if isinstance(key, str) else None
        if inner is not None:
            kept[key] = _inside(inner, value, budget) if inner[0] is not None else value
        elif key in fields:  # a known name of no model
            kept[key] = value
        elif budget[0] > 0:
            kept[key] = value
            budget[0] -= 1
        else:
            budget[0] = -1
    return kept


def _inside(inner: tuple[type[BaseModel] | None, bool], value: Any, budget: list[int]) -> Any:
    model, listed = inner
    assert model is not None
    if listed and isinstance(value, list):
        return [_without_unknown(model, item, budget) for item in value]
    return _without_unknown(model, value, budget)


@cache
def _fields_by_name(model: type[BaseModel]) -> dict[str, tuple[type[BaseModel] | None, bool]]:
    """Each name ``model`` takes (its own and its wire name), with the model its value is
    (or a list of, the ``bool``), ``None`` when it is none."""
    found: dict[str, tuple[type[BaseModel] | None, bool]] = {}
    for name, field in model.model_fields.items():
        inner = _model_of(field.annotation)
        found[name] = inner
        if field.alias:
            found[field.alias] = inner
    return found


def _model_of(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The model ``annotation`` is (``M``, ``M | None``, ``Annotated[M, ...]``) or is a list
    of (``list[M]``: ``True``), or ``None``."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is list and args:
        model, listed = _model_of(args[0])
        return (model, True) if model is not None and not listed else (None, False)
    members = [a for a in args if a is not type(None)]
    if origin is not None and origin is not list and len(members) == 1 and len(args) == 2:
        return _model_of(members[0])  # Optional[M]
    return None, False


def _cut(item: int | str) -> int | str:
    """A ``loc`` item as ``error.data`` gives it: a name cut after 80 characters (an unknown
    one may be a megabyte long)."""
    return item if isinstance(item, int) or len(item) <= 80 else f"{item[:80]}..."


def _within(field: str, outer: str) -> bool:
    return field == outer or field.startswith((f"{outer}.", f"{outer}[")) or not outer


@cache
def _unquoted(model: type[BaseModel]) -> frozenset[str]:
    """The params of ``model`` (by their wire names) whose values are never quoted."""

    def marked(annotation: Any) -> bool:
        if get_origin(annotation) is Annotated:
            _, *metadata = get_args(annotation)
            if any(isinstance(item, Unquoted) for item in metadata):
                return True
        return any(marked(arg) for arg in get_args(annotation))

    return frozenset(
        field.alias or name
        for name, field in model.model_fields.items()
        if any(isinstance(item, Unquoted) for item in field.metadata) or marked(field.annotation)
    )


def _explain(root: Schema, error: Any, params: Any, unquoted: frozenset[str]) -> _Problem:
    loc = tuple(error["loc"])
    kind: str = error["type"]
    place = _walk(root, loc, params)
    if loc and loc[0] in unquoted:
        place = dataclasses.replace(place, secret=True)
    field = _field(place.path)

    def problem(msg: str, weak: bool = False, at: str | None = None) -> _Problem:
        return _Problem(list(loc), field if at is None else at, msg, kind, weak)

    if kind == "extra_forbidden":
        name = str(place.rest[0] if place.rest else loc[-1])
        return problem(_unknown(name, place, field), at=_field((*place.path, name)))
    if kind == "missing":
        name, parent = str(loc[-1]), _field(place.path[:-1])
        what = _expected(root, place.schema)
        if parent:
            return problem(f"{parent}: missing {quoted(name, 40)} ({what})")
        return problem(f"missing parameter {quoted(name, 40)} ({what})")
    if place.rest == ("[key]",) and place.path:
        key, field = place.path[-1], _field(place.path[:-1])
        words = _check_words(error) or "is not an accepted key"
        if quoted(str(key), 40) not in words:
            words = f"key {quoted(str(key), 40)}: {words}"
        return problem(f"{field}: {words}")
    if kind in ("value_error", "assertion_error"):
        words = _check_words(error) or str(error.get("msg", ""))
        return problem(f"{field}: {words}" if field else words)
    if place.union is not None and not place.rest and _is_mismatch(kind):
        path, schema, value = place.union
        return problem(_must(root, _field(path), schema, value, kind, place.secret), weak=True)
    value = place.value if place.value is not _ABSENT else error.get("input", _ABSENT)
    return problem(_must(root, field, place.schema, value, kind, place.secret))


def _is_mismatch(kind: str) -> bool:
    return kind in _MISMATCH or kind.endswith("_type")


def _walk(root: Schema, loc: tuple[int | str, ...], params: Any) -> _Place:
    """Follow ``loc`` through the schema and the params sent, as far as it names fields."""
    schema: Schema = root
    value = params
    path: list[int | str] = []
    secret = False
    union: tuple[tuple[int | str, ...], Schema, Any] | None = None
    entered = False  # the last item taken was a union member's tag
    for index, item in enumerate(loc):
        schema = _unwrap(root, schema)
        secret = secret or bool(schema.get("writeOnly"))
        properties = schema.get("properties")
        branches = _branches(root, schema)
        entered = False
        if isinstance(item, int) and schema.get("type") == "array":
            schema = schema.get("items", {})
            value = (
                value[item]
                if isinstance(value, list) and -len(value) <= item < len(value)
                else _ABSENT
            )
        elif isinstance(item, str) and properties is not None and item in properties:
            schema = properties[item]
            value = value.get(item, _ABSENT) if isinstance(value, dict) else _ABSENT
        elif isinstance(item, str) and item != "[key]" and _is_mapping(schema):
            schema = _values_schema(schema)
            value = value.get(item, _ABSENT) if isinstance(value, dict) else _ABSENT
        elif isinstance(item, str) and branches:
            # A union member's tag: follow the one member of the value's JSON type, if one.
            fitting = [b for b in branches if _fits(b, value)]
            if len(fitting) != 1:
                return _Place(tuple(path), schema, loc[index:], value, secret, None)
            union = (tuple(path), schema, value)
            schema = fitting[0]
            entered = True
            continue
        else:
            return _Place(tuple(path), schema, loc[index:], value, secret, None)
        path.append(item)
    schema = _unwrap(root, schema)
    secret = secret or bool(schema.get("writeOnly"))
    return _Place(tuple(path), schema, (), value, secret, union if entered else None)


def _resolve(root: Schema, schema: Schema) -> Schema:
    while "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        schema = {
            **root.get("$defs", {}).get(name, {}),
            **{k: v for k, v in schema.items() if k != "$ref"},
        }
    if "allOf" in schema and len(schema["allOf"]) == 1:
        rest = {k: v for k, v in schema.items() if k != "allOf"}
        return {**_resolve(root, schema["allOf"][0]), **rest}
    return schema


def _branches(root: Schema, schema: Schema) -> list[Schema]:
    """The members of a union other than ``null``, resolved."""
    members = schema.get("anyOf") or schema.get("oneOf") or []
    resolved = [_resolve(root, member) for member in members]
    return [member for member in resolved if member.get("type") != "null"]


def _unwrap(root: Schema, schema: Schema) -> Schema:
    """``schema`` resolved; a nullable's one other member in its place (its ``writeOnly``
    kept)."""
    schema = _resolve(root, schema)
    branches = _branches(root, schema)
    if len(branches) == 1:
        return {**branches[0], "writeOnly": True} if schema.get("writeOnly") else branches[0]
    return schema


def _is_mapping(schema: Schema) -> bool:
    return schema.get("type") == "object" and "properties" not in schema


def _values_schema(schema: Schema) -> Schema:
    extra = schema.get("additionalProperties")
    if isinstance(extra, Mapping):
        return extra
    for value in (schema.get("patternProperties") or {}).values():
        return value  # type: ignore[no-any-return]  # JSON: a schema
    return {}


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}


def _fits(schema: Schema, value: Any) -> bool:
    """Whether ``value`` is of the JSON type ``schema`` takes (its bounds aside)."""
    if "enum" in schema:
        return any(type(value) is type(option) for option in schema["enum"])
    kind = schema.get("type")
    if kind is None:
        return True
    if isinstance(value, bool) and kind != "boolean":
        return False
    return isinstance(value, _JSON_TYPES.get(str(kind), ()))


def _field(path: Sequence[int | str]) -> str:
    """``changes[0].values``: a path as the message names it."""
    text = ""
    for item in path:
        if isinstance(item, int):
            text += f"[{item}]"
        elif item.isidentifier() and len(item) <= 40:
            text += f".{item}" if text else item
        else:
            text += f"[{quoted(item, 40)}]"
    return text


def _check_words(error: Any) -> str:
    """What a check said (its exception's message), or ``""``."""
    raised = (error.get("ctx") or {}).get("error")
    return str(raised) if isinstance(raised, Exception) else ""


def _unknown(name: str, place: _Place, field: str) -> str:
    """An unknown parameter (or key of a nested object), with a guess at the one meant."""
    known = [str(key) for key in place.schema.get("properties", {})]
    guess = _closest(name, known)
    if guess is not None:
        hint = f" (did you mean {quoted(guess)}?)"
    elif not known:
        hint = " (this method takes no parameters)" if not field else " (it takes none)"
    elif len(known) <= MAX_NAMED:
        hint = f" (expected {_or([quoted(k) for k in known])})"
    else:
        hint = ""
    if field:
        return f"{field}: unknown key {quoted(name, 40)}{hint}"
    return f"unknown parameter {quoted(name, 40)}{hint}"


def _closest(name: str, known: list[str]) -> str | None:
    if not known or len(name) > 64:
        return None
    if to_camel(name) in known:
        return to_camel(name)  # run_id for runId
    folded = {k.casefold(): k for k in known}
    if name.casefold() in folded:
        return folded[name.casefold()]
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return close[0] if close else None


def _must(root: Schema, field: str, schema: Schema, value: Any, kind: str, secret: bool) -> str:
    """``field: must be <what the schema takes>, not <what came>``."""
    title = schema.get("title")
    if kind == "string_pattern_mismatch" and title and isinstance(value, str):
        examples = schema.get("examples") or []
        details = [str(schema["description"])] if schema.get("description") else []
        details += [f"like {examples[0]}"] if examples else []
        expected = f" (expected {', '.join(details)})" if details else ""
        what = "not" if secret else f"{quoted(value, 40)} is not"
        return f"{field}: {what} {_a(str(title))}{expected}"
    sized = kind in ("string_too_long", "string_too_short")
    said = f"must be {_expected(root, schema, sized)}"
    shown = None if secret or value is _ABSENT else _shown(value, kind)
    if shown is not None:
        said += f", not {shown}"
    return f"{field}: {said}" if field else f"params {said}"


def _shown(value: Any, kind: str) -> str:
    """What came, in a few words: a value quoted, or the size that was wrong."""
    if kind in ("string_too_long", "string_too_short") and isinstance(value, str):
        return f"{len(value)} characters"
    if kind in ("too_long", "too_short") and isinstance(value, list | dict):
        return f"{len(value)} {'entries' if isinstance(value, dict) else 'items'}"
    return _json_words(value)


def _json_words(value: Any) -> str:
    if isinstance(value, str):
        return quoted(value, 40)
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, int):
        digits = str(value)
        return digits if len(digits) <= 40 else f"a number of {len(digits)} digits"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _expected(root: Schema, schema: Schema, sized: bool = False) -> str:
    """What ``schema`` takes, in words: ``an integer from 1 to 1000``. A named kind of text
    (``a run id``) says its length only when ``sized`` (the length was what was wrong)."""
    schema = _resolve(root, schema)
    if "anyOf" in schema or "oneOf" in schema:
        branches = _branches(root, schema)
        said: list[str] = []
        for branch in branches:
            items = (
                _resolve(root, branch.get("items", {})) if branch.get("type") == "array" else None
            )
            if items is not None and any(
                items == other for other in branches if other is not branch
            ):
                said.append("a list of them")
            else:
                said.append(_expected(root, branch))
        return _or(said) if said else "null"
    if "enum" in schema:
        options = [_json_words(option) for option in schema["enum"]]
        return options[0] if len(options) == 1 else f"one of {', '.join(options)}"
    if "const" in schema:
        return _json_words(schema["const"])
    kind = schema.get("type")
    title = str(schema["title"]) if schema.get("title") else None
    if kind == "string":
        words = _a(title) if title else "text"
        if sized or not title:
            words += _count(schema, "Length", "character")
        examples = schema.get("examples") or []
        return f"{words}, like {examples[0]}" if title and examples else words
    if kind in ("integer", "number"):
        noun = _a(title) if title else ("an integer" if kind == "integer" else "a number")
        return noun + _bounds(schema)
    if kind == "array":
        return "a list" + _count(schema, "Items", "item")
    if kind == "object":
        return "an object" + _count(schema, "Properties", "entry")
    return {"boolean": "true or false", "null": "null"}.get(str(kind), "a value")


def _a(noun: str) -> str:
    return f"{'an' if noun[:1] in 'aeiou' else 'a'} {noun}"


def _or(words: list[str]) -> str:
    unique = list(dict.fromkeys(words))
    return unique[0] if len(unique) == 1 else f"{', '.join(unique[:-1])} or {unique[-1]}"


def _count(schema: Schema, keyword: str, unit: str) -> str:
    """`` of 1 to 64 characters`` from ``minLength``/``maxLength`` (or Items, Properties)."""
    low, high = schema.get(f"min{keyword}") or 0, schema.get(f"max{keyword}")
    if high is None:
        return f" of at least {low} {_PLURALS[unit] if low != 1 else unit}" if low else ""
    if low == high:
        return f" of exactly {high} {_PLURALS[unit] if high != 1 else unit}"
    if not low:
        return f" of at most {high} {_PLURALS[unit] if high != 1 else unit}"
    return f" of {low} to {high} {_PLURALS[unit]}"


def _bounds(schema: Schema) -> str:
    """`` from 1 to 99``, `` greater than 0 and at most 30``: a number's bounds."""
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None and high is not None:
        return f" from {low} to {high}"
    parts = []
    if low is not None:
        parts.append(f"at least {low}")
    if schema.get("exclusiveMinimum") is not None:
        parts.append(f"greater than {schema['exclusiveMinimum']}")
    if high is not None:
        parts.append(f"at most {high}")
    if schema.get("exclusiveMaximum") is not None:
        parts.append(f"less than {schema['exclusiveMaximum']}")
    if not parts:
        return ""
    return (" of " if parts[0].startswith("at ") else " ") + " and ".join(parts)
