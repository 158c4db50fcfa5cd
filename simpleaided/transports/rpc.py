"""JSON-RPC 2.0 dispatch: the only module that knows ``jsonrpcserver``.

We parse with ``orjson``, check the envelope ourselves (strict, but cheaper than the
library's jsonschema validation, and per batch element as the spec asks), validate params
with the method's pydantic model, and let ``jsonrpcserver`` route each request — synchronously
for methods that only read memory, asynchronously for the rest. Project errors become their
JSON-RPC codes here, once; anything unexpected becomes a generic internal error. A connection
may refuse some methods (``refused``: the web console's WebSocket refuses those that hand out
secrets or keys); they answer ``-32060`` from the same pipeline, before their params are read.

Each request goes through ``jsonrpcserver``'s per-request pipeline (``dispatch_request``:
the method lookup, the argument check against the handler's signature, the call with its
errors caught; then ``to_response``), and batches are walked here. Its whole-message entry
points only add, around that pipeline, parsing and validation that our knobs turn into
identity functions, list plumbing and, when async, an ``asyncio.gather`` per message:
measured, 4–5 µs of the library's ~11 µs per request (README, "Benchmarks").
The pipeline functions live in ``jsonrpcserver.dispatcher``; pyproject pins the 5.0 series.
"""

from __future__ import annotations

import contextvars
import errno as errno_codes
import functools
import inspect
import json
import logging
import math
import os
import re
import secrets
import sys
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import anyio.lowlevel
import anyio.to_thread
import orjson
from jsonrpcserver import Error, Success
from jsonrpcserver import async_dispatcher as _async_pipeline
from jsonrpcserver import dispatcher as _pipeline
from jsonrpcserver.response import to_serializable_one
from jsonrpcserver.sentinels import NOID
from pydantic import BaseModel, ValidationError

from simpleaided.domain.api import explain_invalid
from simpleaided.domain.errors import (
    BackendUnavailable,
    Cancelled,
    Conflict,
    InvalidInput,
    InvalidTransition,
    LimitExceeded,
    NotFound,
    ReadOnly,
    SimpleaideError,
    SocketOnly,
    VaultDamaged,
    VaultLocked,
    WrongPassphrase,
)

log = logging.getLogger(__name__)

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
NOT_FOUND = -32001
INVALID_TRANSITION = -32010
CONFLICT = -32011
VAULT_LOCKED = -32020
WRONG_PASSPHRASE = -32021
VAULT_DAMAGED = -32022
READ_ONLY = -32030
LIMIT_EXCEEDED = -32040
BACKEND_UNAVAILABLE = -32050
SOCKET_ONLY = -32060
CANCELLED = -32800

MAX_BATCH = 10_000

# Most specific first.
_ERROR_CODES: list[tuple[type[SimpleaideError], int]] = [
    (NotFound, NOT_FOUND),
    (InvalidTransition, INVALID_TRANSITION),
    (Conflict, CONFLICT),
    (InvalidInput, INVALID_PARAMS),
    (LimitExceeded, LIMIT_EXCEEDED),
    (VaultLocked, VAULT_LOCKED),
    (WrongPassphrase, WRONG_PASSPHRASE),
    (VaultDamaged, VAULT_DAMAGED),
    (ReadOnly, READ_ONLY),
    (BackendUnavailable, BACKEND_UNAVAILABLE),
    (SocketOnly, SOCKET_ONLY),
    (Cancelled, CANCELLED),
]

Handler = Callable[[Any, Any], Any]
_F = TypeVar("_F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Method:
    """One JSON-RPC method: its name, contract and handler ``handler(params, connection)``."""

    name: str
    summary: str
    params: type[BaseModel]
    result: Any
    handler: Handler

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.handler)


def error_code(exc: SimpleaideError) -> int:
    """The JSON-RPC code of a project error."""
    for cls, code in _ERROR_CODES:
        if isinstance(exc, cls):
            return code
    return INTERNAL_ERROR


def error_object(code: int, message: str, data: Any = None) -> dict[str, Any]:
    """A JSON-RPC error object (``data`` omitted when ``None``)."""
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return error


def error_response(code: int, message: str, data: Any = None, id: Any = None) -> bytes:
    """A whole JSON-RPC error response, serialized."""
    return orjson.dumps({"jsonrpc": "2.0", "error": error_object(code, message, data), "id": id})


def _unexpected(exc: Exception, method: str) -> Any:
    if isinstance(exc, OSError) and exc.errno is not None:
        # Disk full, permission denied...: say what, never where (no paths to clients).
        log.error("%s failed: %s", method, exc)
        return Error(
            INTERNAL_ERROR,
            f"storage error: {os.strerror(exc.errno)}",
            {"errno": errno_codes.errorcode.get(exc.errno, str(exc.errno))},
        )
    incident = secrets.token_hex(4)
    log.exception("%s failed (incident %s)", method, incident)
    return Error(INTERNAL_ERROR, "Internal error", {"incident": incident})


def _defaults(model: type[BaseModel]) -> BaseModel | None:
    """The params of a call without any, validated once (they are immutable), or ``None``
    when the method requires some."""
    try:
        return model.model_validate({})
    except ValidationError:
        return None


def _parse_params(
    method: Method, default: BaseModel | None, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    if args:
        return Error(
            INVALID_PARAMS, f"{method.name} takes its params by name: send an object, not an array"
        )
    if not kwargs and default is not None:
        return default  # the status-line case: no params, nothing to validate again
    try:
        return method.params.model_validate(kwargs)
    except ValidationError as exc:
        # The message says what was wrong per field, in words; data has the details.
        message, data = explain_invalid(method.params, exc, kwargs)
        return Error(INVALID_PARAMS, message, data)


def _refusal(method: Method) -> Any:
    """The error for ``method`` called on a connection that refuses it (the web console's
    WebSocket refuses the methods that hand out secrets or keys)."""
    return Error(
        SOCKET_ONLY,
        f"{method.name} is not served over the web: secret values and keys stay on the "
        "owner-only socket; use the `simpleaide` command on this machine",
    )


def _refuses(connection: Any, method: Method) -> bool:
    """Whether ``connection`` (a ``server.Connection``; ``None`` in tests) refuses ``method``."""
    refused: frozenset[str] | None = getattr(connection, "refused", None)
    return refused is not None and method.name in refused


def _wrap_sync(method: Method) -> Callable[..., Any]:
    default = _defaults(method.params)

    def call(connection: Any, /, *args: Any, **kwargs: Any) -> Any:
        if _refuses(connection, method):
            return _refusal(method)
        params = _parse_params(method, default, args, kwargs)
        if not isinstance(params, BaseModel):
            return params
        try:
            return Success(method.handler(params, connection))
        except SimpleaideError as exc:
            return Error(error_code(exc), exc.message, exc.data)
        except Exception as exc:
            return _unexpected(exc, method.name)

    return _with_signature(call)


def _with_signature(call: _F) -> _F:
    """Precompute ``call``'s signature: jsonrpcserver binds every request's arguments to it
    (its check for -32602), and ``inspect.signature`` is several microseconds per call
    unless the function carries ``__signature__``."""
    call.__signature__ = inspect.signature(call)  # type: ignore[attr-defined]
    return call


def _wrap_async(method: Method) -> Callable[..., Awaitable[Any]]:
    default = _defaults(method.params)

    async def call(connection: Any, /, *args: Any, **kwargs: Any) -> Any:
        if _refuses(connection, method):
            return _refusal(method)
        params = _parse_params(method, default, args, kwargs)
        if not isinstance(params, BaseModel):
            return params
        try:
            return Success(await method.handler(params, connection))
        except SimpleaideError as exc:
            return Error(error_code(exc), exc.message, exc.data)
        except Exception as exc:
            return _unexpected(exc, method.name)

    return _with_signature(call)


# A message larger than this has its params validated (and, if invalid, explained) in a worker
# thread: a few MB of invalid keys is seconds of pydantic's work, which must not hold the
# event loop (and so every other client) meanwhile. A smaller one is validated inline.
PARAMS_INLINE_BYTES = 64 * 1024


# Whether the message being handled (in this connection's task) is over PARAMS_INLINE_BYTES:
# only then are its requests' params measured.
_LARGE_MESSAGE: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "simpleaided_large_message", default=False
)


def _large_params(request: dict[str, Any]) -> bool:
    """Whether ``request``'s params are over ``PARAMS_INLINE_BYTES`` as JSON (measured by
    writing them again: ~1 ms a MB, against seconds to explain them invalid)."""
    params = request.get("params")
    if not params:
        return False
    try:
        return len(orjson.dumps(params)) > PARAMS_INLINE_BYTES
    except TypeError:  # what orjson cannot write: read where it harms no one
        return True


def _wrap_large(method: Method) -> Callable[..., Awaitable[Any]]:
    """``method``'s handler for a large message: its params read in a worker thread, then
    the handler called on the event loop as for any message."""
    default = _defaults(method.params)

    async def call(connection: Any, /, *args: Any, **kwargs: Any) -> Any:
        if _refuses(connection, method):
            return _refusal(method)
        params = await anyio.to_thread.run_sync(
            functools.partial(_parse_params, method, default, args, kwargs)
        )
        if not isinstance(params, BaseModel):
            return params
        try:
            result = method.handler(params, connection)
            return Success(await result if method.is_async else result)
        except SimpleaideError as exc:
            return Error(error_code(exc), exc.message, exc.data)
        except Exception as exc:
            return _unexpected(exc, method.name)

    return _with_signature(call)


def _envelope_problem(request: Any) -> str | None:
    """Why ``request`` is not a JSON-RPC 2.0 request object, or ``None`` if it is."""
    if not isinstance(request, dict):
        return "a request must be a JSON object"
    if request.get("jsonrpc") != "2.0":
        return "'jsonrpc' must be \"2.0\""
    if not isinstance(request.get("method"), str):
        return "'method' must be a string"
    if "params" in request and not isinstance(request["params"], dict | list):
        return "'params' must be an object or an array"
    if "id" in request and not _valid_id(request["id"]):
        return "'id' must be a string, a number or null"
    if not _MEMBERS.issuperset(request):
        return f"unknown member(s): {', '.join(sorted(set(request) - _MEMBERS))}"
    return None


_MEMBERS = frozenset({"jsonrpc", "method", "params", "id"})


def _valid_id(value: Any) -> bool:
    # The spec allows any number (fractions are discouraged, not forbidden); a Fragment is a
    # number kept as the client spelled it (``parse``).
    return (
        value is None
        or (isinstance(value, str | int | float) and not isinstance(value, bool))
        or isinstance(value, orjson.Fragment)
    )


# The integers orjson reads and writes exactly (a larger one it reads as a float).
_ORJSON_INTS = range(-(2**63), 2**64)
# A message larger than this is read again (for its ids) in a worker thread, off the event
# loop: the standard library takes as long as orjson, or longer (6 MB of numbers: 0.15 s).
REREAD_INLINE_BYTES = 64 * 1024
# A message orjson refuses for a number beyond a double's range (``1e400``, which an id may be)
# is read again by the standard library, a Python call per number, only up to this size:
# 12 MB of numbers would hold a worker thread (of the pool store writes share) ~1.3 s.
REREAD_REFUSED_BYTES = 1024 * 1024
# Such a number is found where orjson's error points (``pos``, in the message as text): its
# words differ between orjson's builds. These are one build's, a second way to know it.
_BEYOND_DOUBLE = "number is infinity when parsed as double"
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_NUMBER_CHARS = frozenset("0123456789+-.eE")
_AFTER_NUMBER = frozenset({"", " ", "\t", "\n", "\r", ",", "]", "}"})
# orjson reads up to 1024 levels of nesting; the standard library takes one level of the
# recursion limit per level (1000 by default, less what the caller's stack holds). A message
# orjson read must be read again as deep, from wherever the re-read runs.
_DEEPEST = 1024
if sys.getrecursionlimit() < _DEEPEST + 500:
    sys.setrecursionlimit(_DEEPEST + 500)
# ``-0`` as a whole number (``-0.5``, ``-0e1`` are floats; ``-01`` is no JSON): orjson reads it
# as 0. Found anywhere (a string holding it is possible), it only costs a second reading.
_MINUS_ZERO = re.compile(rb"-0(?![.0-9eE])")


def parse(raw: bytes) -> Any:
    """A message, parsed, with every request's id as the client spelled it.

    orjson reads it: the fast path. But it reads an integer beyond 64 bits as a float
    (``18446744073709551617`` would come back ``1.8446744073709552e+19``), ``-0`` as ``0``,
    and refuses a number beyond a double's range. So a message with a float id, or an id of 0
    and ``-0`` in its text, is read again by the standard library for its ids alone, which
    are then echoed as sent (``orjson.Fragment``: a large integer whole, ``1.50`` as
    ``1.50``); and one orjson refuses for a number beyond a double's range is read by the
    standard library, which keeps an id of any size, if it is at most ``REREAD_REFUSED_BYTES``
    long (``TooLongToReread`` if longer). ``orjson.JSONDecodeError`` when it is not JSON (or
    holds what orjson cannot write back: a lone surrogate, a number beyond a double's range or
    64 bits elsewhere than in an id). ``read`` is the same, with a long re-read off the event
    loop.
    """
    message, again = _first_reading(raw)
    return message if again is None else again()


async def read(raw: bytes) -> Any:
    """``parse(raw)``, with a re-read of a message over ``REREAD_INLINE_BYTES`` done in a
    worker thread: the event loop serves other clients meanwhile."""
    message, again = _first_reading(raw)
    if again is None:
        return message
    if len(raw) <= REREAD_INLINE_BYTES:
        return again()
    return await anyio.to_thread.run_sync(again)


def _first_reading(raw: bytes) -> tuple[Any, Callable[[], Any] | None]:
    """orjson's reading of ``raw``, and what reads it again (``None``: nothing to)."""
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if not _beyond_range(exc):
            raise  # any other refusal is final
        if len(raw) > REREAD_REFUSED_BYTES:
            raise TooLongToReread(len(raw)) from None
        return None, functools.partial(_parse_whole, raw, exc)
    if type(message) is dict:  # the usual case, checked first and cheaply
        rid = message.get("id")
        if type(rid) is float or (rid == 0 and type(rid) is int and _MINUS_ZERO.search(raw)):
            return message, functools.partial(_with_ids_as_sent, raw, message)
    elif type(message) is list and _respelled_ids(message, raw):
        return message, functools.partial(_with_ids_as_sent, raw, message)
    return message, None


def _beyond_range(exc: orjson.JSONDecodeError) -> bool:
    """Whether orjson refused its message for a number beyond what it reads: one beyond a
    double's range (``1e400``), or an integer beyond 64 bits (in a build that refuses it),
    found at the error's position, else by orjson's words."""
    doc, pos = exc.doc, exc.pos
    if isinstance(doc, str) and 0 <= pos <= len(doc):
        start = pos  # the error may point within the number, or just past it
        while start > 0 and doc[start - 1] in _NUMBER_CHARS:
            start -= 1
        number = _NUMBER.match(doc, start)
        # Within the number, or just past one that ends there (not one followed by junk).
        within = number is not None and (
            number.end() > pos or (number.end() == pos and doc[pos : pos + 1] in _AFTER_NUMBER)
        )
        if number is not None and within:
            token = number.group()
            if math.isinf(float(token)):
                return True
            if not any(c in token for c in ".eE"):
                return len(token) > 4000 or int(token) not in _ORJSON_INTS
    return exc.msg.startswith(_BEYOND_DOUBLE)


class TooLongToReread(ValueError):
    """A message with a number beyond a double's range, too long to be read again for it."""

    def __init__(self, size: int) -> None:
        super().__init__(
            f"a number beyond a double's range (like 1e400) is read only in a message of at"
            f" most {REREAD_REFUSED_BYTES} bytes, and then only as a request's id; this"
            f" message is {size} bytes"
        )


def _float_id(item: Any) -> bool:
    return isinstance(item, dict) and type(item.get("id")) is float


def _zero_id(item: Any) -> bool:
    return isinstance(item, dict) and type(item.get("id")) is int and item["id"] == 0


def _respelled_ids(items: list[Any], raw: bytes) -> bool:
    """Whether an id of ``items`` may be spelled otherwise than orjson read it."""
    return any(map(_float_id, items)) or (
        any(map(_zero_id, items)) and _MINUS_ZERO.search(raw) is not None
    )


class _Spelled(str):
    """A number beyond what orjson reads, as the client spelled it: beyond a double's range
    (``1e400``), or an integer longer than ``int`` reads from text (4300 digits)."""


def _same(value: Any) -> Any:
    return value


def _with_ids_as_sent(raw: bytes, message: Any) -> Any:
    """``message`` (orjson's) with each float id, and each id of 0, replaced by its text as
    sent (``1.50``, ``-0``)."""
    try:
        # Every number as its text, which costs nothing more to make (the ids replaced are
        # numbers in orjson's reading, so a text there is a number's). Each number and object
        # is a call into Python, where a worker thread lets the event loop have its turn.
        spelled = json.loads(raw.decode(), parse_float=_same, parse_int=_same, object_hook=_same)
    except (ValueError, RecursionError):  # deeper than the recursion limit allows: not
        return message  # from a message orjson read (``_DEEPEST``)
    items, originals = (message, spelled) if isinstance(message, list) else ([message], [spelled])
    for item, original in zip(items, originals, strict=False):
        if (_float_id(item) or _zero_id(item)) and isinstance(original, dict):
            rid = original.get("id")
            if type(rid) is str:
                item["id"] = orjson.Fragment(rid.encode())
    return message


def _refuse(text: str) -> Any:
    raise ValueError(f"not a JSON number: {text}")


def _parse_whole(raw: bytes, refused: orjson.JSONDecodeError) -> Any:
    """``raw`` read by the standard library; orjson's ``refused`` raised unless all that
    orjson refused in it is ids beyond a double's range (``1e400``, an integer of 400 or
    5,000 digits)."""
    beyond: list[str] = []  # numbers with a fraction or an exponent beyond a double's range,
    # and integers beyond what ``int`` reads from text

    def number(text: str) -> Any:
        value = float(text)
        if abs(value) != float("inf"):
            return value
        beyond.append(text)
        return _Spelled(text)

    def integer(text: str) -> Any:
        try:
            return int(text)
        except ValueError:  # over 4300 digits (sys.get_int_max_str_digits)
            beyond.append(text)
            return _Spelled(text)

    try:
        # UTF-8 alone, as orjson (the standard library would guess UTF-16 and UTF-32).
        message = json.loads(
            raw.decode(), parse_float=number, parse_int=integer, parse_constant=_refuse
        )
    except (ValueError, RecursionError):
        raise refused from None
    items = message if isinstance(message, list) else [message]
    kept = 0
    for item in items:
        rid = item.get("id") if isinstance(item, dict) else None
        if isinstance(rid, _Spelled) or (type(rid) is int and rid not in _ORJSON_INTS):
            item["id"] = orjson.Fragment(str(rid).encode())
            kept += isinstance(rid, _Spelled)
    if kept != len(beyond):
        raise refused from None  # such a number elsewhere than in an id: orjson's error
    if _respelled_ids(items, raw):
        _with_ids_as_sent(raw, message)
    try:
        orjson.dumps(message)  # what orjson refuses to write (a lone surrogate, a number
    except TypeError:  # beyond 64 bits elsewhere than in an id), it refused to read
        raise refused from None
    return message


class Dispatcher:
    """Turns a raw message into a raw reply (or ``None`` for notifications)."""

    def __init__(self, methods: Iterable[Method], *, max_reply_bytes: int) -> None:
        self.methods = {m.name: m for m in methods}
        self._max_reply = max_reply_bytes
        self._sync = {m.name: _wrap_sync(m) for m in self.methods.values() if not m.is_async}
        self._async = {m.name: _wrap_async(m) for m in self.methods.values() if m.is_async}
        self._large = {m.name: _wrap_large(m) for m in self.methods.values()}
        # Awaited before each request of a batch after the first: a batch is a pipeline in
        # one message. The server makes it a turn in its lane; alone, a trip through the loop.
        self.between_batch_items: Callable[[], Awaitable[None]] = anyio.lowlevel.checkpoint

    async def handle(self, raw: bytes, connection: Any) -> bytes | None:
        """Dispatch one message (a request, a notification or a batch)."""
        try:
            request = await read(raw)
        except (orjson.JSONDecodeError, TooLongToReread) as exc:
            return error_response(PARSE_ERROR, "Parse error", str(exc))
        if isinstance(request, list):
            if not request:
                return error_response(INVALID_REQUEST, "Invalid request", "empty batch")
            if len(request) > MAX_BATCH:
                return error_response(
                    LIMIT_EXCEEDED,
                    f"a batch of {len(request)} requests exceeds the {MAX_BATCH}-request limit",
                )
            _LARGE_MESSAGE.set(len(raw) > PARAMS_INLINE_BYTES)
            replies = [await self._one(request[0], connection)]
            for item in request[1:]:
                # Methods that only read memory never wait: let other clients in between.
                await self.between_batch_items()
                replies.append(await self._one(item, connection))
            present = [r for r in replies if r is not None]
            return self._encode(present) if present else None
        _LARGE_MESSAGE.set(len(raw) > PARAMS_INLINE_BYTES)
        reply = await self._one(request, connection)
        return None if reply is None else self._encode(reply)

    async def _one(self, request: Any, connection: Any) -> dict[str, Any] | None:
        """One request's reply (``None`` for a notification); params over
        ``PARAMS_INLINE_BYTES`` are read off the event loop."""
        problem = _envelope_problem(request)
        if problem is not None:
            rid = request.get("id") if isinstance(request, dict) else None
            return {
                "jsonrpc": "2.0",
                "error": error_object(INVALID_REQUEST, "Invalid request", problem),
                "id": rid if _valid_id(rid) else None,
            }
        call = _pipeline.create_request(request)
        if call.method in self._large and _LARGE_MESSAGE.get() and _large_params(request):
            call, result = await _async_pipeline.dispatch_request(self._large, connection, call)
        elif call.method in self._sync:
            call, result = _pipeline.dispatch_request(self._sync, connection, call)
        else:  # an async method, or one that does not exist (jsonrpcserver says which)
            call, result = await _async_pipeline.dispatch_request(self._async, connection, call)
        if call.id is NOID:
            return None  # a notification: no reply, whatever happened
        reply = to_serializable_one(_pipeline.to_response(call, result))
        return cast("dict[str, Any]", reply)  # jsonrpcserver is untyped here

    def _encode(self, reply: Any) -> bytes:
        try:
            data = orjson.dumps(reply)
        except TypeError:
            log.exception("a reply could not be serialized")
            return error_response(INTERNAL_ERROR, "Internal error", None, _reply_id(reply))
        if len(data) > self._max_reply:
            return error_response(
                LIMIT_EXCEEDED,
                f"the reply is {len(data)} bytes, over the {self._max_reply}-byte limit",
                None,
                _reply_id(reply),
            )
        return data


def _reply_id(reply: Any) -> Any:
    return reply.get("id") if isinstance(reply, dict) else None
