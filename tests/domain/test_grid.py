"""The grid's pure core: wire values, signed cursors, and keyset SQL run on a real SQLite (and
the machine's PostgreSQL) with NULLs and duplicates."""

from __future__ import annotations

import functools
import ipaddress
import math
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg.types.json import Json as PgJson

from simpleaided.domain import grid
from simpleaided.domain.errors import InvalidInput
from simpleaided.domain.grid import Cursor, Filter, SortKey, View

KEY = b"k" * 32
VIEW = View("main", "t", (SortKey("a", desc=True),), (Filter("b", "=", "x"),))

# --- wire values ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (None, None),
        ("", ""),
        (True, True),
        (2**53 - 1, 2**53 - 1),
        (2**53, "9007199254740992"),
        (-(2**63), "-9223372036854775808"),
        (Decimal("10.00"), "10.00"),
        (Decimal("0E-10"), "0.0000000000"),
        (1.5, 1.5),
        (math.nan, "NaN"),
        (math.inf, "Infinity"),
        (-math.inf, "-Infinity"),
        ('{"a":10.00}', '{"a":10.00}'),
        (datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC), "2026-01-02T03:04:05.000006+00:00"),
        (
            datetime(2026, 1, 2, 3, 4, tzinfo=timezone(timedelta(hours=5, minutes=30))),
            "2026-01-02T03:04:00+05:30",
        ),
        (datetime(2026, 1, 2, 3, 4), "2026-01-02T03:04:00"),
        (date(2026, 1, 2), "2026-01-02"),
        (time(3, 4, 5), "03:04:05"),
        (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
        (b"a\0b", {"$bytes": 3, "hex": "610062"}),
        (bytes(100), {"$bytes": 100, "hex": "00" * 64}),
        ([1, None, 2**60], [1, None, "1152921504606846976"]),
    ],
)
def test_values_travel_exactly(value: Any, wire: Any) -> None:
    assert grid.to_wire(value) == wire


@pytest.mark.parametrize(
    ("wire", "dialect", "type_name", "value"),
    [
        ("9223372036854775807", "postgres", "bigint", 2**63 - 1),
        ("-9223372036854775808", "sqlite", "INTEGER", -(2**63)),
        (5, "postgres", "integer", 5),
        ("10.00", "postgres", "numeric(38,10)", Decimal("10.00")),
        ("NaN", "postgres", "double precision", "nan"),
        ("-Infinity", "sqlite", "REAL", -math.inf),
        ({"$bytes": 2, "hex": "0001"}, "sqlite", "BLOB", b"\0\1"),
        ('{"a":10.00}', "postgres", "jsonb", '{"a":10.00}'),
        (["1", None], "postgres", "bigint[]", [1, None]),
        ("10.00", "sqlite", "NUMERIC", "10.00"),  # SQLite stores it as it likes anyway
        ("text", "sqlite", "", "text"),
    ],
)
def test_edit_values_come_back_exactly(wire: Any, dialect: Any, type_name: str, value: Any) -> None:
    got = grid.from_wire(wire, dialect, type_name)
    if value == "nan":
        assert math.isnan(got)
    else:
        assert got == value and type(got) is type(value)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.tuples(st.integers(-(2**63), 2**63 - 1), st.just("bigint")),
        st.tuples(
            st.decimals(allow_nan=False, allow_infinity=False, places=10), st.just("numeric")
        ),
        st.tuples(st.floats(), st.just("double precision")),
        st.tuples(st.lists(st.integers(-(2**63), 2**63 - 1), max_size=3), st.just("int8[]")),
    )
)
def test_what_is_read_comes_back_exactly_when_edited(case: tuple[Any, str]) -> None:
    value, type_name = case
    back = grid.from_wire(grid.to_wire(value), "postgres", type_name)
    if isinstance(value, float) and math.isnan(value):
        assert math.isnan(back)
    else:
        assert same(back, value)


@pytest.mark.parametrize(
    ("wire", "type_name"),
    [
        ({"$bytes": 100, "hex": "00" * 64}, "BLOB"),
        ({"$truncated": 5000, "text": "abc"}, "TEXT"),
        ("12x", "INTEGER"),
        ({"a": 1}, "TEXT"),
        ([1], "INTEGER"),
    ],
)
def test_values_cut_for_display_or_malformed_are_refused(wire: Any, type_name: str) -> None:
    with pytest.raises(InvalidInput):
        grid.from_wire(wire, "sqlite", type_name)


# --- cursors -----------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.sampled_from([math.inf, -math.inf]),
    st.decimals(allow_nan=False, places=4),
    st.decimals(allow_nan=False),
    st.text(),
    st.binary(),
    st.datetimes(timezones=st.one_of(st.none(), st.timezones())),
    st.dates(),
    st.times(),
    st.timedeltas(),
    st.uuids(),
)
cursor_values = st.lists(st.one_of(scalars, st.lists(scalars, max_size=3)), max_size=6)


def same(a: Any, b: Any) -> bool:
    """Equal and of the same type, recursively; a Decimal keeps its exponent too."""
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Decimal):
        return isinstance(b, Decimal) and a.as_tuple() == b.as_tuple()
    if isinstance(a, datetime) and a.tzinfo is not None:
        # The same wall time and offset: the same instant, shown the same way. (A zone's
        # datetime in a fold never equals another zone's, by PEP 495, so == cannot say it.)
        return (
            isinstance(b, datetime)
            and a.replace(tzinfo=None) == b.replace(tzinfo=None)
            and a.utcoffset() == b.utcoffset()
        )
    return type(a) is type(b) and a == b


@settings(max_examples=300, deadline=None)
@given(cursor_values, st.sampled_from(["forward", "backward"]))
def test_cursors_round_trip_exactly(values: list[Any], direction: Any) -> None:
    text = grid.encode_cursor(KEY, Cursor(VIEW.digest(), tuple(values), direction))
    back = grid.decode_cursor(KEY, text, VIEW)
    assert back.direction == direction
    assert same([v if not isinstance(v, tuple) else list(v) for v in back.values], values)


def test_a_boundary_too_long_for_a_cursor_is_refused_when_made() -> None:
    fits = "x" * (grid.MAX_CURSOR_CHARS // 2)
    assert grid.decode_cursor(
        KEY, grid.encode_cursor(KEY, Cursor(VIEW.digest(), (fits,), "forward")), VIEW
    )
    with pytest.raises(InvalidInput, match="sort by another"):
        grid.encode_cursor(KEY, Cursor(VIEW.digest(), (fits * 2,), "forward"))


def good_cursor() -> str:
    return grid.encode_cursor(KEY, Cursor(VIEW.digest(), (None, 2**64, "x"), "forward"))


def flipped(text: str, at: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return text[:at] + alphabet[(alphabet.index(text[at]) + 1) % 64] + text[at + 1 :]


def forged_cursors() -> Iterator[tuple[str, Callable[[], tuple[str, View]]]]:
    text = good_cursor()
    yield (
        "another key",
        lambda: (grid.encode_cursor(b"x" * 32, grid.decode_cursor(KEY, text, VIEW)), VIEW),
    )
    yield "a changed character early", lambda: (flipped(text, 5), VIEW)
    yield "a changed character late", lambda: (flipped(text, len(text) - 3), VIEW)
    yield "truncated", lambda: (text[:-4], VIEW)
    yield "padded", lambda: (text + "=" * (-len(text) % 4 or 4), VIEW)
    yield "standard base64", lambda: (text.replace("-", "+").replace("_", "/") + "+", VIEW)
    yield "empty", lambda: ("", VIEW)
    yield "too long", lambda: ("A" * (grid.MAX_CURSOR_CHARS + 4), VIEW)
    yield "another table", lambda: (text, View("main", "u", VIEW.sort, VIEW.filters))
    yield "another schema", lambda: (text, View("other", "t", VIEW.sort, VIEW.filters))
    yield "another sort", lambda: (text, View("main", "t", (SortKey("a"),), VIEW.filters))
    yield "another filter", lambda: (text, View("main", "t", VIEW.sort, (Filter("b", "=", "y"),)))
    yield "no filter", lambda: (text, View("main", "t", VIEW.sort))


@pytest.mark.parametrize(("case", "make"), list(forged_cursors()))
def test_forged_or_foreign_cursors_are_refused(
    case: str, make: Callable[[], tuple[str, View]]
) -> None:
    text, view = make()
    with pytest.raises(InvalidInput, match="reload the table"):
        grid.decode_cursor(KEY, text, view)


def test_spare_bits_of_the_last_character_are_refused() -> None:
    text = good_cursor()
    # Several texts decode to the same bytes when the last character has unused bits.
    variants = [
        text[:-1] + c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    ]
    accepted = []
    for variant in variants:
        try:
            grid.decode_cursor(KEY, variant, VIEW)
            accepted.append(variant)
        except InvalidInput:
            pass
    assert accepted == [text]


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_single_change_is_refused(data: st.DataObject) -> None:
    text = good_cursor()
    at = data.draw(st.integers(0, len(text) - 1))
    changed = flipped(text, at)
    with pytest.raises(InvalidInput):
        grid.decode_cursor(KEY, changed, VIEW)


# --- keyset paging on real engines -----------------------------------------------------------

COLUMNS = [
    "id",
    "a",
    "b",
    "c",
]  # id: key; a: nullable int; b: non-unique NOT NULL text; c: nullable text
ORDERS = [
    [],
    [SortKey("a")],
    [SortKey("a", desc=True)],
    [SortKey("b", nullable=False)],
    [SortKey("b", desc=True, nullable=False)],
    [SortKey("a", desc=True), SortKey("c")],
    [SortKey("c"), SortKey("a", desc=True), SortKey("b", nullable=False)],
    [SortKey("id", desc=True, nullable=False)],
]

rows_strategy = st.lists(
    st.tuples(
        st.one_of(st.none(), st.integers(-3, 3)),
        st.sampled_from(["x", "y", "z"]),
        st.one_of(st.none(), st.sampled_from(["", "p", "P", "q", "a%b", "a_b", "a*b", "a\\b"])),
    ),
    max_size=40,
)


def compare_rows(order: Sequence[SortKey]) -> Callable[[tuple[Any, ...], tuple[Any, ...]], int]:
    """The order the grid promises, NULL the smallest value, written independently of SQL."""

    def compare(r: tuple[Any, ...], s: tuple[Any, ...]) -> int:
        for term in order:
            i = COLUMNS.index(term.column)
            x, y = r[i], s[i]
            if x == y:
                continue
            smaller = x is None or (y is not None and x < y)
            return (1 if smaller else -1) if term.desc else (-1 if smaller else 1)
        return 0

    return compare


def walk(
    run: Callable[[str, list[Any]], list[tuple[Any, ...]]],
    dialect: Any,
    quote: Callable[[str], str],
    sort: list[SortKey],
    direction: Any,
    limit: int,
    filters: tuple[Filter, ...] = (),
) -> list[tuple[Any, ...]]:
    """Every row, page by page through signed cursors, in display order."""
    order = grid.ordering(sort, ["id"])
    positions = [COLUMNS.index(t.column) for t in order]
    view = View(None, "t", tuple(sort), filters)
    seen: list[tuple[Any, ...]] = []
    boundary = None
    for _ in range(1000):
        query = grid.page_query(
            dialect,
            quote,
            order,
            filters=filters,
            boundary=boundary,
            direction=direction,
            limit=limit,
        )
        rows = query.fetch(
            lambda text, args: run(text, list(args)), ", ".join(map(quote, COLUMNS)), quote("t")
        )
        page, more = query.in_page_order(rows)
        seen = [*seen, *page] if direction == "forward" else [*page, *seen]
        if not more:
            return seen
        edge = page[-1] if direction == "forward" else page[0]
        cursor = grid.encode_cursor(
            KEY, Cursor(view.digest(), tuple(edge[i] for i in positions), direction)
        )
        boundary = list(grid.decode_cursor(KEY, cursor, view).values)
    raise AssertionError("paging never ended")


def sqlite_quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@pytest.fixture(scope="module")
def lite() -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER, b TEXT NOT NULL, c TEXT)")
    yield db
    db.close()


def fill_sqlite(db: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    db.execute("DELETE FROM t")
    full = [(i, *row) for i, row in enumerate(rows)]
    db.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", full)
    return full


@settings(max_examples=60, deadline=None)
@given(rows_strategy, st.sampled_from(ORDERS), st.integers(1, 7))
def test_sqlite_pages_see_every_row_once_in_order(
    lite: sqlite3.Connection, rows: list[tuple[Any, ...]], sort: list[SortKey], limit: int
) -> None:
    full = fill_sqlite(lite, rows)
    expected = sorted(full, key=functools.cmp_to_key(compare_rows(grid.ordering(sort, ["id"]))))

    def run(sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        return lite.execute(sql, params).fetchall()

    assert walk(run, "sqlite", sqlite_quote, sort, "forward", limit) == expected
    assert walk(run, "sqlite", sqlite_quote, sort, "backward", limit) == expected


FILTERS = [
    (Filter("a", "=", 1), lambda r: r[1] == 1),
    (Filter("a", "!=", 1), lambda r: r[1] is not None and r[1] != 1),
    (Filter("a", "<", 0), lambda r: r[1] is not None and r[1] < 0),
    (Filter("a", "<=", 0), lambda r: r[1] is not None and r[1] <= 0),
    (Filter("a", ">", 0), lambda r: r[1] is not None and r[1] > 0),
    (Filter("a", ">=", 0), lambda r: r[1] is not None and r[1] >= 0),
    (Filter("c", "like", "p%"), lambda r: r[3] == "p"),
    (Filter("c", "like", "P"), lambda r: r[3] == "P"),
    (Filter("c", "ilike", "P%"), lambda r: r[3] in ("p", "P")),
    (Filter("c", "like", "a_b"), lambda r: r[3] in ("a%b", "a_b", "a*b", "a\\b")),
    (Filter("c", "like", "a\\_b"), lambda r: r[3] == "a_b"),
    (Filter("c", "like", "a\\%%"), lambda r: r[3] == "a%b"),
    (Filter("c", "like", "a*%"), lambda r: r[3] == "a*b"),
    (Filter("c", "ilike", "A\\\\B"), lambda r: r[3] == "a\\b"),
    (Filter("c", "like", "%"), lambda r: r[3] is not None),
    (Filter("a", "is-null"), lambda r: r[1] is None),
    (Filter("c", "not-null"), lambda r: r[3] is not None),
    (Filter("b", "in", ["x", "z"]), lambda r: r[2] in ("x", "z")),
]


FILTER_IDS = [f"{f.column} {f.op} {f.value!r}" for f, _ in FILTERS]


@pytest.mark.parametrize("case", FILTERS, ids=FILTER_IDS)
@settings(max_examples=20, deadline=None)
@given(rows=rows_strategy, sort=st.sampled_from(ORDERS[:3]))
def test_sqlite_filters_keep_the_rows_they_name(
    lite: sqlite3.Connection, rows: list[tuple[Any, ...]], case: Any, sort: list[SortKey]
) -> None:
    condition, keep = case
    full = fill_sqlite(lite, rows)
    expected = sorted(
        (r for r in full if keep(r)),
        key=functools.cmp_to_key(compare_rows(grid.ordering(sort, ["id"]))),
    )

    def run(sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        return lite.execute(sql, params).fetchall()

    assert walk(run, "sqlite", sqlite_quote, sort, "forward", 3, (condition,)) == expected


@pytest.mark.parametrize(
    ("op", "value"),
    [
        ("=", None),
        ("is-null", 1),
        ("in", []),
        ("in", [None]),
        ("in", 5),
        ("like", 3),
        ("like", "a\\"),
        ("ilike", "a\\\\\\"),
        ("~", 1),
    ],
)
def test_filters_whose_value_does_not_fit_are_refused(op: str, value: Any) -> None:
    with pytest.raises(InvalidInput):
        grid.check_filter(op, value)


def test_identifiers_are_quoted_never_spliced(lite: sqlite3.Connection) -> None:
    lite.execute('CREATE TABLE "we""ird; DROP TABLE t" ("a b""c" INTEGER PRIMARY KEY, "é%s?" TEXT)')
    lite.executemany(
        'INSERT INTO "we""ird; DROP TABLE t" VALUES (?, ?)', [(1, "?"), (2, None), (3, "%s")]
    )
    order = grid.ordering([SortKey("é%s?", desc=True)], ['a b"c'])
    query = grid.page_query(
        "sqlite", sqlite_quote, order, filters=[Filter("é%s?", "!=", "x")], limit=10
    )
    rows = query.fetch(
        lambda sql, args: lite.execute(sql, args).fetchall(),
        "*",
        sqlite_quote('we"ird; DROP TABLE t'),
    )
    assert rows == [(1, "?"), (3, "%s")]


def test_the_sql_is_what_the_engines_are_told() -> None:
    order = grid.ordering([SortKey("a", desc=True)], ["id"])
    query = grid.page_query(
        "postgres", sqlite_quote, order, boundary=[None, 7], direction="forward", limit=50
    )
    # After a NULL, going down with NULL last: only the NULLs with a smaller id are left.
    assert (query.where, query.params, query.order_by) == (
        '"a" IS NULL AND "id" < %s',
        [7],
        '"page_source"."id" DESC',
    )
    assert query.later == () and query.limit == 51
    # Each range of the rows after the boundary is read by itself, in order, so that every
    # statement is one range of an index on (a, id): first the rest of a's group, then the
    # greater values of a.
    back = grid.page_query("sqlite", sqlite_quote, order, boundary=[3, 7], direction="backward")
    assert (back.where, back.params, back.order_by) == (
        '"a" = ? AND "id" > ?',
        [3, 7],
        '"page_source"."id"',
    )
    assert back.later == (('"a" > ?', [3], '"page_source"."a", "page_source"."id"'),)
    first = grid.page_query("postgres", sqlite_quote, grid.ordering([SortKey("a")], ["id"]))
    assert (first.where, first.order_by) == ('"a" IS NULL', '"page_source"."id"')
    assert first.later == (('"a" IS NOT NULL', [], '"page_source"."a", "page_source"."id"'),)
    # A key alone, or columns that hold no NULL: one statement, as before.
    by_key = grid.page_query("sqlite", sqlite_quote, grid.ordering([], ["id"]), boundary=[5])
    assert (by_key.where, by_key.order_by, by_key.later) == (
        '"id" >= ? AND (("id" > ?))',
        '"page_source"."id"',
        (),
    )


def test_a_row_changed_between_two_parts_of_a_page_is_read_once() -> None:
    """A page in parts is several statements: a row moved from one part's range to the next
    meanwhile comes back in both; its key shows it once."""
    order = grid.ordering([SortKey("a")], ["id"])
    query = grid.page_query("sqlite", sqlite_quote, order, limit=10)
    assert len(query.later) == 1
    # Row 1 got a = 7 between the NULLs' statement and the values' one.
    answers: Iterator[list[tuple[Any, ...]]] = iter([[(None, 1), (None, 2)], [(7, 1), (8, 3)]])
    rows = query.fetch(lambda sql, args: next(answers), "a, id", "t", lambda row: row[1])
    assert rows == [(None, 1), (None, 2), (8, 3)]
    with pytest.raises(ValueError, match="in parts"):
        query.sql("a, id", "t")


def test_a_row_read_twice_never_costs_the_page_a_row() -> None:
    """The duplicate took a place among the rows a part was asked for: the part is asked
    again for more, so the page is full and ``more`` is right."""
    order = grid.ordering([SortKey("a")], ["id"])
    query = grid.page_query("sqlite", sqlite_quote, order, limit=3)  # 4 rows read
    nulls = [(None, 1), (None, 2)]
    values = [(7, 1), (8, 3), (9, 4), (9, 5)]  # row 1 got a = 7 after the NULLs were read

    def run(sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        return (nulls if '"a" IS NULL' in sql else values)[: args[-1]]

    rows = query.fetch(run, "a, id", "t", lambda row: row[1])
    assert rows == [(None, 1), (None, 2), (8, 3), (9, 4)]
    page, more = query.in_page_order(rows)
    assert page == [(None, 1), (None, 2), (8, 3)] and more


# --- PostgreSQL ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg(postgres: str) -> Iterator[Any]:
    import psycopg
    from psycopg import sql

    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(
            'CREATE TEMP TABLE t (id int PRIMARY KEY, a int, b text COLLATE "C" NOT NULL,'
            ' c text COLLATE "C")'
        )
        yield conn, lambda name: sql.Identifier(name).as_string(conn)


@settings(max_examples=25, deadline=None)
@given(rows_strategy, st.sampled_from(ORDERS), st.integers(1, 7))
def test_postgres_pages_see_every_row_once_in_order(
    pg: Any, rows: list[tuple[Any, ...]], sort: list[SortKey], limit: int
) -> None:
    conn, quote = pg
    conn.execute("DELETE FROM t")
    full = [(i, *row) for i, row in enumerate(rows)]
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO t VALUES (%s, %s, %s, %s)", full)
    expected = sorted(full, key=functools.cmp_to_key(compare_rows(grid.ordering(sort, ["id"]))))

    def run(text: str, params: list[Any]) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = conn.execute(text.encode(), params).fetchall()
        return rows

    assert walk(run, "postgres", quote, sort, "forward", limit) == expected
    assert walk(run, "postgres", quote, sort, "backward", limit) == expected


@pytest.mark.parametrize("case", FILTERS, ids=FILTER_IDS)
@settings(max_examples=10, deadline=None)
@given(rows=rows_strategy)
def test_postgres_filters_keep_the_rows_they_name(
    pg: Any, rows: list[tuple[Any, ...]], case: Any
) -> None:
    condition, keep = case
    conn, quote = pg
    conn.execute("DELETE FROM t")
    full = [(i, *row) for i, row in enumerate(rows)]
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO t VALUES (%s, %s, %s, %s)", full)

    def run(text: str, params: list[Any]) -> list[tuple[Any, ...]]:
        found: list[tuple[Any, ...]] = conn.execute(text.encode(), params).fetchall()
        return found

    expected = [r for r in full if keep(r)]
    assert walk(run, "postgres", quote, [], "forward", 3, (condition,)) == expected


def test_postgres_identifiers_with_percent_signs(pg: Any) -> None:
    conn, quote = pg
    conn.execute('CREATE TEMP TABLE "p%s" ("%s" int PRIMARY KEY, "x%" text)')
    conn.execute("INSERT INTO \"p%s\" VALUES (1, 'a'), (2, NULL)")
    order = grid.ordering([SortKey("x%")], ["%s"])
    query = grid.page_query(
        "postgres", quote, order, filters=[Filter("%s", ">=", 1)], boundary=[None, 2]
    )
    rows = query.fetch(lambda text, args: conn.execute(text, args).fetchall(), "*", quote("p%s"))
    assert rows == [(1, "a")]


def test_percent_names_page_through_the_real_session(postgres: str) -> None:
    """A first page with no filter or cursor has nothing else to bind: it still runs."""
    from simpleaided.store.sql.catalog import qualified
    from simpleaided.store.sql.postgres import open_postgres

    session = open_postgres(postgres, None, read_only=False, timeout=5)
    schema = f"grid_{uuid.uuid4().hex[:12]}%"
    try:
        session.execute(f'CREATE SCHEMA "{schema}"', ())
        session.execute(f'CREATE TABLE "{schema}"."t%" ("id%" int PRIMARY KEY, "v%" text)', ())
        session.execute(f"INSERT INTO \"{schema}\".\"t%\" VALUES (1, 'a'), (2, 'b'), (3, 'c')", ())
        order = grid.ordering([], ["id%"])
        select = ", ".join(map(session.quote_identifier, ["id%", "v%"]))
        source = qualified(session, schema, "t%")
        first = grid.page_query("postgres", session.quote_identifier, order, limit=2)
        rows, more = first.in_page_order(session.execute(first.sql(select, source), first.args))
        assert rows == [(1, "a"), (2, "b")] and more
        after = grid.page_query("postgres", session.quote_identifier, order, boundary=[2], limit=2)
        rows, more = after.in_page_order(session.execute(after.sql(select, source), after.args))
        assert rows == [(3, "c")] and not more
    finally:
        session.execute(f'DROP SCHEMA "{schema}" CASCADE', ())
        session.close()


@pytest.mark.parametrize(
    "value",
    [
        ipaddress.ip_address("10.0.0.1"),
        object(),
        PgJson({"a": 1}),
    ],
    ids=["inet", "object", "psycopg-json"],
)
def test_a_boundary_a_cursor_cannot_hold_is_refused_in_words(value: Any) -> None:
    with pytest.raises(InvalidInput, match="cannot page by this sort"):
        grid.encode_cursor(KEY, Cursor(VIEW.digest(), (value, 1), "forward"))


def test_a_cursor_for_another_row_key_is_refused() -> None:
    by_id = View("main", "t", (SortKey("a"),), (), key=("id",))
    by_other = View("main", "t", (SortKey("a"),), (), key=("other",))
    text = grid.encode_cursor(KEY, Cursor(by_id.digest(), (1, 2), "forward"))
    assert grid.decode_cursor(KEY, text, by_id).values == (1, 2)
    with pytest.raises(InvalidInput, match="reload the table"):
        grid.decode_cursor(KEY, text, by_other)
