"""The database grid's pure core: values on the wire, signed page cursors and keyset SQL.

Nothing here touches a database. The grid service reads the catalogue and runs the SQL; this
module decides what a page's ``WHERE``/``ORDER BY``/``LIMIT`` say, how a cell travels as JSON
(README: The grid) and what a cursor holds, so both engines page, sort and encode the same way.

Ordering rule, on both engines: **NULL sorts as the smallest value** — first ascending, last
descending (SQLite's own order; PostgreSQL is told so explicitly).

Known gaps (next session). Speed of nullable sorts: on PostgreSQL ``ASC NULLS FIRST`` never
matches a default btree (NULLS LAST ascending), so a sort by a nullable column sorts the whole
table — 11.7 ms a page against 0.13 ms index-only on 200k rows; on SQLite the lead bound
``(a <= ? OR a IS NULL)`` of a descending nullable sort scans instead of seeking, 39–52 ms a
page deep into 1M rows. Editing SQLite columns of mixed storage classes: a value an update
sends back exactly as it was read is stored as it was (the service binds the value read, so a
big integer or an infinity in an untyped column stays INTEGER or REAL); a new value is bound as
the column's type wants: 12.5 or 'abc' for an INTEGER column is refused by :func:`from_wire`,
and in an untyped column a new big integer, or "Infinity", is stored as TEXT (on the wire they
look the same as their text).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, get_args

import orjson

from simpleaided.domain.errors import InvalidInput
from simpleaided.domain.vocabulary import DbKind

Direction = Literal["forward", "backward"]
"""Which way a page reads from its cursor: rows after it (``next``) or before it (``prev``)."""

FilterOp = Literal["=", "!=", "<", "<=", ">", ">=", "like", "ilike", "is-null", "not-null", "in"]
"""The comparisons a grid filter offers."""

FILTER_OPS: frozenset[str] = frozenset(get_args(FilterOp))
MAX_IN_VALUES = 1000
MAX_CURSOR_CHARS = 65536
SAFE_INTEGER = 2**53 - 1  # the largest integer a JavaScript number holds exactly
BYTES_SHOWN = 64  # bytes of a binary cell sent as hex

STALE_CURSOR = "this page link is not valid any more: reload the table"

Json = Any  # a value json.dumps accepts


# --- Values on the wire -----------------------------------------------------------------


def to_wire(value: Any) -> Json:
    """One cell as JSON, exactly (README: The grid).

    NULL is ``null``; integers beyond ±(2^53-1) and every ``Decimal`` are strings (the scale
    kept: ``"10.00"``); float NaN and infinities are the strings ``"NaN"``, ``"Infinity"``,
    ``"-Infinity"``; text (JSON columns included) is sent unchanged; datetimes are ISO 8601
    with their offset (a naive one without); bytes are ``{"$bytes": size, "hex": …}`` with the
    first 64 bytes; arrays are lists of encoded values. A type without a rule is sent as its
    ``str()`` (PostgreSQL's inet, interval…).
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value if -SAFE_INTEGER <= value <= SAFE_INTEGER else str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        return bytes_cell(len(raw), raw[:BYTES_SHOWN])
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [to_wire(item) for item in value]
    if isinstance(value, dict):
        # The store reads JSON columns as text; a parsed document is re-serialised as a fallback.
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def bytes_cell(size: int, head: bytes) -> Json:
    """A binary cell of ``size`` bytes whose first bytes are ``head`` (cut in SQL if large)."""
    return {"$bytes": size, "hex": head[:BYTES_SHOWN].hex()}


def truncated_cell(size: int, text: str) -> Json:
    """A text cell of ``size`` characters cut in SQL to ``text``."""
    return {"$truncated": size, "text": text}


ValueKind = Literal["integer", "numeric", "float", "boolean", "bytes", "text", "any"]
"""What a column's declared type means for turning a wire value back into a Python one."""


def value_kind(dialect: DbKind, type_name: str) -> ValueKind:
    """The kind of a column of declared type ``type_name`` (array element types included).

    SQLite follows its affinity rules; a SQLite NUMERIC column is ``any`` because SQLite stores
    what it is given as INTEGER or REAL anyway, and cannot bind a ``Decimal``.
    """
    name = type_name.strip().lower()
    if dialect == "sqlite":
        if "int" in name:
            return "integer"
        if any(word in name for word in ("char", "clob", "text")):
            return "text"
        if any(word in name for word in ("real", "floa", "doub")):
            return "float"
        return "bytes" if name == "blob" else "any"
    name = name.removesuffix("[]").split("(")[0].strip()
    if name in ("smallint", "integer", "bigint", "int2", "int4", "int8", "oid"):
        return "integer"
    if name in ("numeric", "decimal"):
        return "numeric"
    if name in ("real", "double precision", "float4", "float8"):
        return "float"
    if name in ("boolean", "bool"):
        return "boolean"
    if name == "bytea":
        return "bytes"
    return "text"  # json, jsonb, timestamps, uuid…: the server parses the text


def from_wire(value: Json, dialect: DbKind, type_name: str) -> Any:
    """An edit or filter value from the wire, as the driver should bind it for a column of
    ``type_name``: a string for a bigint stays exact, ``"10.00"`` becomes ``Decimal("10.00")``.

    A value cut for display (``$truncated``, or ``$bytes`` without every byte) is refused:
    writing it back would destroy the rest.
    """
    if value is None:
        return None
    if isinstance(value, list):
        if dialect != "postgres" or not type_name.strip().endswith("[]"):
            raise InvalidInput("a list can only be stored in a PostgreSQL array column")
        element = type_name.strip()[:-2]
        return [from_wire(item, dialect, element) for item in value]
    if isinstance(value, dict):
        return _tagged_from_wire(value)
    kind = value_kind(dialect, type_name)
    if kind == "integer" and not isinstance(value, bool):
        if isinstance(value, int):
            return value
        if isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]{1,400}", value.strip()):
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise InvalidInput(f"{value!r} is not a whole number")
    if kind == "numeric" and not isinstance(value, bool):
        if isinstance(value, (int, float)):
            return Decimal(repr(value))
        try:
            return Decimal(str(value).strip())
        except InvalidOperation:
            raise InvalidInput(f"{value!r} is not a number") from None
    if kind == "float" and isinstance(value, str):
        special = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
        if value in special:
            return special[value]
        try:
            return float(value)
        except ValueError:
            raise InvalidInput(f"{value!r} is not a number") from None
    return value


def _tagged_from_wire(value: dict[str, Any]) -> bytes:
    if set(value) == {"$bytes", "hex"}:
        size, text = value["$bytes"], value["hex"]
        if not isinstance(size, int) or not isinstance(text, str):
            raise InvalidInput('a bytes value is {"$bytes": size, "hex": "…"}')
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raise InvalidInput("a bytes value's hex is not hexadecimal") from None
        if len(raw) != size:
            raise InvalidInput("this binary value was cut for display: send all of its bytes")
        return raw
    if "$truncated" in value:
        raise InvalidInput("this value was cut for display: load the whole cell first")
    raise InvalidInput("an object is not a column value: send JSON documents as text")


# --- Sorting, filters and the page's view -----------------------------------------------


@dataclass(frozen=True, slots=True)
class SortKey:
    """One term of a page's order; ``nullable`` is the column's, from the catalogue."""

    column: str
    desc: bool = False
    nullable: bool = True
    cast: str | None = None  # the column's SQL type, where a bound value needs it (arrays)


@dataclass(frozen=True, slots=True)
class Filter:
    """One condition a page's rows meet; the value is bound, never spliced. ``cast``: the SQL
    type it is bound as where the driver would bind it as another (an array), as
    :attr:`SortKey.cast`."""

    column: str
    op: FilterOp
    value: Any = None
    cast: str | None = None


def check_filter(op: str, value: Any) -> None:
    """Refuse a filter whose value does not fit its operator."""
    if op not in FILTER_OPS:
        raise InvalidInput(f"unknown filter {op!r}: use one of {', '.join(sorted(FILTER_OPS))}")
    if op in ("is-null", "not-null"):
        if value is not None:
            raise InvalidInput(f"the filter {op} takes no value")
    elif op == "in":
        if not isinstance(value, list) or not 1 <= len(value) <= MAX_IN_VALUES:
            raise InvalidInput(f"the filter in takes a list of 1 to {MAX_IN_VALUES} values")
        if any(item is None for item in value):
            raise InvalidInput("the filter in cannot match NULL: add an is-null filter")
    elif value is None:
        raise InvalidInput(f"the filter {op} needs a value (for NULL use is-null or not-null)")
    elif op in ("like", "ilike"):
        if not isinstance(value, str):
            raise InvalidInput(f"the filter {op} takes a text pattern")
        if re.search(r"(?<!\\)(\\\\)*\\$", value):
            raise InvalidInput(f"the {op} pattern ends with a lone \\ (write \\\\ for one)")


@dataclass(frozen=True, slots=True)
class View:
    """What a cursor belongs to: one table read in one order through one set of filters."""

    schema: str | None
    table: str
    sort: tuple[SortKey, ...] = ()
    filters: tuple[Filter, ...] = ()
    key: tuple[str, ...] = ()  # the row-key columns that end the order

    def digest(self) -> str:
        """A fingerprint of the view; a cursor carries it so another view's cursor is refused
        (its row key included: a boundary's values follow the key's columns)."""
        document = {
            "schema": self.schema,
            "table": self.table,
            "key": list(self.key),
            "sort": [[s.column, s.desc] for s in self.sort],
            "filters": [[f.column, f.op, _tag(f.value)] for f in self.filters],
        }
        return hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


# --- Cursors ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cursor:
    """A page boundary: the sort and row-key values of the row the page starts after (or
    before), and which way to read."""

    view: str  # View.digest()
    values: tuple[Any, ...]
    direction: Direction


_CURSOR_VERSION = b"\x01"
_DIRECTIONS: dict[str, Direction] = {"f": "forward", "b": "backward"}
_MAC_BYTES = 32
_CURSOR_TEXT = re.compile(r"[A-Za-z0-9_-]+")


def encode_cursor(key: bytes, cursor: Cursor) -> str:
    """``cursor`` as opaque text: urlsafe base64 of version, HMAC-SHA256 and the JSON body.

    A boundary too long for a cursor (a sort by a column of huge values), or holding a value
    of a type a cursor cannot carry (PostgreSQL's inet, ranges, a driver's JSON wrapper…), is
    ``InvalidInput`` in the user's words.
    """
    try:
        values = [_tag(v) for v in cursor.values]
    except TypeError as exc:
        raise InvalidInput(f"cannot page by this sort: {exc}; sort by another column") from None
    body = orjson.dumps({"v": cursor.view, "d": cursor.direction[0], "k": values})
    mac = hmac.digest(key, _CURSOR_VERSION + body, "sha256")
    text = base64.urlsafe_b64encode(_CURSOR_VERSION + mac + body).rstrip(b"=").decode()
    if len(text) > MAX_CURSOR_CHARS:
        raise InvalidInput("the sorted column holds values too long to page by: sort by another")
    return text


def decode_cursor(key: bytes, text: str, view: View | str) -> Cursor:
    """The cursor ``text`` holds, if this daemon signed it for ``view`` (or the view of that
    digest); else ``InvalidInput`` in the user's words (forged, altered, truncated,
    re-encoded, another view's, too long)."""
    if len(text) > MAX_CURSOR_CHARS or not _CURSOR_TEXT.fullmatch(text):
        raise InvalidInput(STALE_CURSOR)
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise InvalidInput(STALE_CURSOR) from None
    # One text per cursor: base64 whose spare bits were set decodes too, and is refused here.
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != text:
        raise InvalidInput(STALE_CURSOR)
    version, mac, body = raw[:1], raw[1 : 1 + _MAC_BYTES], raw[1 + _MAC_BYTES :]
    expected = hmac.digest(key, version + body, "sha256")
    if version != _CURSOR_VERSION or not hmac.compare_digest(mac, expected):
        raise InvalidInput(STALE_CURSOR)
    try:
        document = orjson.loads(body)
        cursor = Cursor(
            document["v"],
            tuple(_untag(v) for v in document["k"]),
            _DIRECTIONS[document["d"]],
        )
    except (ValueError, KeyError, TypeError):  # signed by us, so only a format change
        raise InvalidInput(STALE_CURSOR) from None
    digest = view if isinstance(view, str) else view.digest()
    if not hmac.compare_digest(cursor.view, digest):
        raise InvalidInput(STALE_CURSOR)
    return cursor


def _tag(value: Any) -> Json:
    """``value`` as JSON that :func:`_untag` turns back into an equal value of the same type."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value if -SAFE_INTEGER <= value <= SAFE_INTEGER else {"$int": str(value)}
    if isinstance(value, float):
        return value if math.isfinite(value) else {"$float": repr(value)}
    if isinstance(value, Decimal):
        return {"$dec": str(value)}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$bytes": bytes(value).hex()}
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, time):
        return {"$time": value.isoformat()}
    if isinstance(value, timedelta):
        return {"$timedelta": [value.days, value.seconds, value.microseconds]}
    if isinstance(value, uuid.UUID):
        return {"$uuid": str(value)}
    if isinstance(value, (list, tuple)):
        return {"$list": [_tag(item) for item in value]}
    if isinstance(value, dict):
        return {"$map": {str(k): _tag(v) for k, v in value.items()}}
    raise TypeError(f"a page link cannot hold a value of type {type(value).__name__}")


_UNTAG: dict[str, Callable[[Any], Any]] = {
    "$int": int,
    "$float": float,
    "$dec": Decimal,
    "$bytes": bytes.fromhex,
    "$datetime": datetime.fromisoformat,
    "$date": date.fromisoformat,
    "$time": time.fromisoformat,
    "$timedelta": lambda parts: timedelta(*parts),
    "$uuid": uuid.UUID,
    "$list": lambda items: [_untag(item) for item in items],
    "$map": lambda items: {k: _untag(v) for k, v in items.items()},
}


def _untag(value: Json) -> Any:
    if isinstance(value, dict):
        ((tag, inner),) = value.items()
        return _UNTAG[tag](inner)
    return value


# --- Keyset paging SQL ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PageQuery:
    """The clauses of one page's ``SELECT``: ``where`` (may be empty) with its bound ``params``,
    ``order_by`` and ``limit`` (the page size + 1, to know whether more rows exist).

    Where a column of the order may hold NULL, the rows after the boundary are read in
    ``later`` parts too (each ``(where, params, order_by)``), one after another while the page
    is not full (:meth:`fetch`): each part is one range of an index, where one statement
    would need an OR that no index serves (and PostgreSQL's ``NULLS FIRST`` order, none of
    its default indexes).

    The rows come in reading order: a backward page's rows come last-first, and the service
    reverses them (:meth:`in_page_order`).
    """

    where: str
    params: list[Any]
    order_by: str
    limit: int
    direction: Direction
    dialect: DbKind
    later: tuple[tuple[str, list[Any], str], ...] = ()

    def sql(self, select: str, source: str) -> str:
        """The (first part's) statement: ``SELECT {select} FROM {source} WHERE … ORDER BY …
        LIMIT ?``, to run with :attr:`args` (never empty, the limit being bound).

        ``select`` and ``source`` are SQL text of names quoted by the driver (as
        ``catalog.qualified`` makes them) and no placeholder: their ``%`` are doubled here on
        PostgreSQL, by :func:`sql_text` as every other name of the statement. A page read in
        parts has no one statement: :meth:`fetch` reads it.
        """
        if self.later:
            raise ValueError("this page is read in parts: use fetch() or statements()")
        return self._sql(self.where, self.order_by, select, source)

    def _sql(self, where: str, order_by: str, select: str, source: str) -> str:
        where = f" WHERE {where}" if where else ""
        place = "?" if self.dialect == "sqlite" else "%s"
        select, source = sql_text(self.dialect, select), sql_text(self.dialect, source)
        return (
            f"SELECT {select} FROM {source} AS {SOURCE_ALIAS}{where}"
            f" ORDER BY {order_by} LIMIT {place}"
        )

    @property
    def args(self) -> tuple[Any, ...]:
        """The statement's bound values, the limit last. Never empty: psycopg then always
        reads the statement's placeholders, and its ``%%`` stand for ``%`` (a statement sent
        without parameters would keep them doubled)."""
        return (*self.params, self.limit)

    def statements(self, select: str, source: str) -> list[tuple[str, list[Any]]]:
        """Every part's statement and its values but the limit (bound last, to what is left
        of the page when the part is read)."""
        parts = [(self.where, self.params, self.order_by), *self.later]
        return [(self._sql(w, o, select, source), list(p)) for w, p, o in parts]

    def fetch(
        self,
        run: Callable[[str, tuple[Any, ...]], Sequence[Any]],
        select: str,
        source: str,
        identity: Callable[[Any], Any] | None = None,
    ) -> list[Any]:
        """The page's rows in reading order (up to ``limit``), ``run`` running each part's
        statement until the page is full. The parts are statements of their own, so a row
        changed between two of them could be read twice: a row whose ``identity`` (its key)
        was read already is left out."""
        rows: list[Any] = []
        seen: set[Any] = set()
        for sql, params in self.statements(select, source):
            wanted = self.limit - len(rows)
            found = run(sql, (*params, wanted))
            if identity is None or not rows:  # the first part read: nothing to meet again
                fresh = list(found)
            else:
                if not seen:  # the identities are taken only when a second part is read
                    seen.update(identity(row) for row in rows)
                fresh = [row for row in found if identity(row) not in seen]
                if len(fresh) < wanted and len(found) == wanted:
                    # Rows read already took places: asked again, for as many more as there
                    # can be of them (no more than the rows read so far).
                    found = run(sql, (*params, wanted + len(seen)))
                    fresh = [row for row in found if identity(row) not in seen]
                fresh = fresh[:wanted]
                seen.update(identity(row) for row in fresh)
            rows.extend(fresh)
            if len(rows) >= self.limit:
                break
        return rows

    def in_page_order(self, rows: Sequence[Any]) -> tuple[list[Any], bool]:
        """The page's rows in display order (the extra one dropped) and whether more exist
        beyond them, in the direction read."""
        page = list(rows[: self.limit - 1])
        more = len(rows) >= self.limit
        if self.direction == "backward":
            page.reverse()
        return page, more


def ordering(sort: Sequence[SortKey], key: Sequence[str]) -> tuple[SortKey, ...]:
    """The full order of a page: the sort keys, then each row-key column not already sorted
    by (never NULL), so that every row has one place and paging is exact.

    The key columns run the way the last sort key does: an index on ``(column, key)`` (or
    SQLite's on ``column``, which ends with the rowid) then serves the whole order.
    """
    sorted_by = {s.column for s in sort}
    desc = bool(sort) and sort[-1].desc
    return (*sort, *(SortKey(c, desc, nullable=False) for c in key if c not in sorted_by))


def page_query(
    dialect: DbKind,
    quote: Callable[[str], str],
    order: Sequence[SortKey],
    *,
    filters: Sequence[Filter] = (),
    boundary: Sequence[Any] | None = None,
    direction: Direction = "forward",
    limit: int = 100,
    split: bool = True,
) -> PageQuery:
    """One page of rows in ``order`` (see :func:`ordering`), after ``boundary`` (the values of
    ``order``'s columns in the row the page starts from; ``None`` for the first page) when
    reading forward, before it when reading backward (so backward without a boundary is the
    last page).

    ``quote`` is the driver's own identifier quoting. The row key in ``order`` must be unique
    and non-NULL; ``nullable=False`` on a column lets the engine use its index for the order.
    ``split=False`` reads an order with nullable columns in one statement (a view, a table
    without a key: no index to seek in, and each part would scan).
    """
    if not order:
        raise ValueError("a page needs an order (at least the row key)")
    place = "?" if dialect == "sqlite" else "%s"

    def q(column: str) -> str:
        return sql_text(dialect, quote(column))

    def oq(column: str) -> str:
        # ORDER BY reads a bare name as the select list's output column of that name first
        # ("v"::text, a cut value): a page sorted by an interval would be sorted as text.
        return f"{SOURCE_ALIAS}.{q(column)}"

    # Reading backward is reading forward in the reversed order (NULL stays the smallest).
    terms = [
        SortKey(s.column, s.desc != (direction == "backward"), s.nullable, s.cast) for s in order
    ]

    def slot(term: SortKey) -> str:
        return placeholder(dialect, term.cast)

    clauses: list[str] = []
    params: list[Any] = []
    for f in filters:
        text, values = _filter_sql(dialect, q(f.column), f, place)
        clauses.append(text)
        params.extend(values)
    if boundary is not None and len(boundary) != len(terms):
        raise InvalidInput(STALE_CURSOR)
    if split and 0 < sum(t.nullable for t in terms) <= SPLIT_NULLABLE_MAX:
        parts = _parts(q, terms, boundary, slot)
        if not parts:
            parts = [(["1 = 0"], [], [(terms[-1], False)])]  # the last row there can be
        (first, *later) = [
            (" AND ".join([*clauses, *conds]), [*params, *values], _order_by(oq, order))
            for conds, values, order in parts
        ]
        return PageQuery(*first, limit + 1, direction, dialect, tuple(later))
    if boundary is not None:
        text, values = _after_sql(q, terms, boundary, slot)
        clauses.append(text)
        params.extend(values)
    order_by = ", ".join(_order_term(oq(t.column), t) for t in terms)
    return PageQuery(" AND ".join(clauses), params, order_by, limit + 1, direction, dialect)


SOURCE_ALIAS = '"page_source"'
"""The name a page's statement gives its table, to name the table's own columns in ORDER BY."""

SPLIT_NULLABLE_MAX = 2
"""An order with more columns that may hold NULL (a table without a key, ordered by all of its
columns; a view) is read in one statement: no index serves it anyway, and its parts would
each scan the table."""

_Part = tuple[list[str], list[Any], list[tuple[SortKey, bool]]]
"""One range of a page: its conditions, their values, and its order (each term, and whether
it may be NULL there)."""


def _parts(
    q: Callable[[str], str],
    terms: Sequence[SortKey],
    boundary: Sequence[Any] | None,
    slot: Callable[[SortKey], str],
) -> list[_Part]:
    """The rows after ``boundary`` (all rows without one) in ``terms``' order, NULL the
    smallest, as disjoint ranges in reading order: "equal on the first i-1 terms, after on the
    i-th" for i from the last term to the first, a nullable term's "after" split into its
    values and its NULLs. Terms a range holds constant leave its order; a term that cannot
    be NULL in it is ordered without a NULLS clause, so a default index serves it."""
    if boundary is None:
        lead, rest = terms[0], [(t, t.nullable) for t in terms[1:]]
        if not lead.nullable:
            return [([], [], [(lead, False), *rest])]
        values: _Part = ([f"{q(lead.column)} IS NOT NULL"], [], [(lead, False), *rest])
        nulls: _Part = ([f"{q(lead.column)} IS NULL"], [], rest or [(lead, True)])
        return [values, nulls] if lead.desc else [nulls, values]
    parts: list[_Part] = []
    for i in range(len(terms) - 1, -1, -1):
        equal: list[str] = []
        equal_values: list[Any] = []
        for term, value in zip(terms[:i], boundary[:i], strict=True):
            if value is None:
                equal.append(f"{q(term.column)} IS NULL")
            else:
                equal.append(f"{q(term.column)} = {slot(term)}")
                equal_values.append(value)
        term, value = terms[i], boundary[i]
        column = q(term.column)
        rest = [(t, t.nullable) for t in terms[i + 1 :]]
        if not term.desc:  # NULL first: after NULL come the values, after a value the greater
            after = f"{column} IS NOT NULL" if value is None else f"{column} > {slot(term)}"
            after_values = [] if value is None else [value]
            parts.append(([*equal, after], [*equal_values, *after_values], [(term, False), *rest]))
        elif value is not None:  # NULL last: after a value come the smaller, then the NULLs
            smaller = f"{column} < {slot(term)}"
            parts.append(([*equal, smaller], [*equal_values, value], [(term, False), *rest]))
            if term.nullable:
                nulls = ([*equal, f"{column} IS NULL"], equal_values, rest or [(term, True)])
                parts.append(nulls)
    return parts


def _order_by(q: Callable[[str], str], order: Sequence[tuple[SortKey, bool]]) -> str:
    """A part's ORDER BY: each term, with its NULLS clause only where it may be NULL."""
    return ", ".join(
        _order_term(q(t.column), t if may_be_null else SortKey(t.column, t.desc, nullable=False))
        for t, may_be_null in order
    )


def order_by(dialect: DbKind, quote: Callable[[str], str], order: Sequence[SortKey]) -> str:
    """The whole ``ORDER BY`` of ``order`` (NULL the smallest value) in bare names, for a
    statement of one's own (the benchmark's OFFSET page); a page's statements name their
    table instead (``SOURCE_ALIAS``), where a bare name could mean a select-list column."""
    return ", ".join(_order_term(sql_text(dialect, quote(t.column)), t) for t in order)


def placeholder(dialect: DbKind, cast: str | None = None) -> str:
    """Where a value is bound, cast to the SQL type ``cast`` when the driver would bind it
    as another (psycopg sends an int[] list as smallint[])."""
    place = "?" if dialect == "sqlite" else "%s"
    return place if cast is None else f"CAST({place} AS {sql_text(dialect, cast)})"


def sql_text(dialect: DbKind, text: str) -> str:
    """SQL text without placeholders (quoted names) as it goes into a statement run with
    parameters: psycopg reads every ``%`` as a placeholder, identifiers included, so on
    PostgreSQL each is doubled. The one rule for every name of a grid statement."""
    return text.replace("%", "%%") if dialect == "postgres" else text


def _order_term(column: str, term: SortKey) -> str:
    if not term.nullable:
        return f"{column} DESC" if term.desc else column
    # Spelled out on both engines: PostgreSQL's default puts NULL last ascending.
    return f"{column} DESC NULLS LAST" if term.desc else f"{column} ASC NULLS FIRST"


def _after_sql(
    q: Callable[[str], str],
    terms: Sequence[SortKey],
    boundary: Sequence[Any],
    slot: Callable[[SortKey], str],
) -> tuple[str, list[Any]]:
    """Rows strictly after ``boundary`` in ``terms``' order, NULL the smallest value: the
    lexicographic comparison spelled as an OR of "equal on the first i-1, after on the i-th",
    since a row comparison ``(a, b) > (?, ?)`` is never true where a NULL takes part.

    A redundant bound on the first column leads it, so the engine can seek with an index.
    """
    alternatives: list[str] = []
    params: list[Any] = []
    equal: list[str] = []
    equal_params: list[Any] = []
    for term, value in zip(terms, boundary, strict=True):
        column = q(term.column)
        after = _after_one(column, term, value, slot(term))
        if after is not None:
            alternatives.append(" AND ".join([*equal, after[0]]))
            params.extend([*equal_params, *after[1]])
        if value is None:
            equal.append(f"{column} IS NULL")
        else:
            equal.append(f"{column} = {slot(term)}")
            equal_params.append(value)
    if not alternatives:
        return "1 = 0", []  # the boundary is the last row there can be
    chain = " OR ".join(f"({a})" for a in alternatives)
    lead, lead_params = _lead_bound(q(terms[0].column), terms[0], boundary[0], slot(terms[0]))
    if lead:
        return f"{lead} AND ({chain})", [*lead_params, *params]
    return f"({chain})", params


def _after_one(column: str, term: SortKey, value: Any, place: str) -> tuple[str, list[Any]] | None:
    """Values of one column after ``value`` in its direction; ``None`` when none can be."""
    if not term.desc:
        if value is None:
            return f"{column} IS NOT NULL", []
        return f"{column} > {place}", [value]
    if value is None:
        return None
    if term.nullable:
        return f"({column} < {place} OR {column} IS NULL)", [value]
    return f"{column} < {place}", [value]


def _lead_bound(column: str, term: SortKey, value: Any, place: str) -> tuple[str, list[Any]]:
    """The first column's range, implied by the OR chain and spelled for the planner."""
    if not term.desc:
        return ("", []) if value is None else (f"{column} >= {place}", [value])
    if value is None:
        return f"{column} IS NULL", []
    if term.nullable:
        return f"({column} <= {place} OR {column} IS NULL)", [value]
    return f"{column} <= {place}", [value]


def _filter_sql(dialect: DbKind, column: str, f: Filter, place: str) -> tuple[str, list[Any]]:
    check_filter(f.op, f.value)
    if f.op == "is-null":
        return f"{column} IS NULL", []
    if f.op == "not-null":
        return f"{column} IS NOT NULL", []
    if f.op == "in":
        slot = placeholder(dialect, f.cast)
        return f"{column} IN ({', '.join([slot] * len(f.value))})", list(f.value)
    if dialect == "sqlite" and f.op == "like":
        # SQLite's LIKE ignores ASCII case; GLOB is PostgreSQL's case-sensitive LIKE.
        return f"{column} GLOB {place}", [like_to_glob(f.value)]
    if dialect == "sqlite" and f.op == "ilike":
        # No ILIKE in SQLite: lower() on both sides holds whatever the connection's
        # case_sensitive_like says (it folds ASCII only, as SQLite's LIKE does).
        return f"lower({column}) LIKE lower({place}) ESCAPE '\\'", [f.value]
    operator = {"!=": "<>", "like": "LIKE", "ilike": "ILIKE"}.get(f.op, f.op)
    if f.op not in ("like", "ilike"):
        place = placeholder(dialect, f.cast)
    return f"{column} {operator} {place}", [f.value]


def like_to_glob(pattern: str) -> str:
    """A LIKE pattern (``%``, ``_``, ``\\`` escaping the next character, as PostgreSQL reads
    it) as the SQLite GLOB pattern matching the same texts, case included."""
    literal = {"*": "[*]", "?": "[?]", "[": "[[]"}
    out: list[str] = []
    chars = iter(pattern)
    for char in chars:
        if char == "\\":
            char = next(chars, "\\")  # a lone backslash at the end stands for itself
            out.append(literal.get(char, char))
        else:
            out.append({"%": "*", "_": "?"}.get(char) or literal.get(char, char))
    return "".join(out)
