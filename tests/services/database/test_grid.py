"""The database grid (``db.*``, README: The grid) through the real daemon on a real socket, against
a real SQLite file and the machine's PostgreSQL (a schema of this module's own, dropped after).

Each test starts a daemon whose DEV database is the engine's; the test reads and changes the
same database directly (``sqlite3``, ``psycopg``) to set up rows, to play another user, and to
check what the daemon really did. Cancellation, time limits and the status probe during a long
query are in ``test_grid_cancel.py``.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import closing
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from simpleaided.domain.grid import STALE_CURSOR
from tests.support.daemon import running_daemon
from tests.support.rpc import RpcClient, RpcFailed, pings_meanwhile

ENGINES = ["sqlite", "postgres"]

NOT_FOUND, BAD_INPUT, CONFLICT, READ_ONLY = -32001, -32602, -32011, -32030

PAGED_ROWS = 100_000
PAGE = 1000
BIG_ROWS = 1_000_000

INT8_MAX, INT8_MIN = 2**63 - 1, -(2**63)
UNICODE = "Zürich — 東京 🚀 \"quoted\" 'single'\nsecond line\ttab"


# --- The database beside the daemon -----------------------------------------------------------


class Db:
    """The database the daemon serves, as the test reaches it directly: a SQLite file, or a
    PostgreSQL schema of its own (on a connection whose search path is that schema)."""

    def __init__(self, kind: str, url: str, schema: str | None, path: Path | None = None) -> None:
        self.kind = kind
        self.url = url
        self.schema = schema  # sent with every db.* call naming a table (PostgreSQL)
        self.path = path
        self.pg: Any = None
        if kind == "postgres":
            import psycopg

            self.pg = psycopg.connect(url, autocommit=True)
            self.pg.execute(f"SET search_path = {schema}")

    @property
    def ph(self) -> str:
        """The driver's placeholder, as db.query takes it."""
        return "?" if self.kind == "sqlite" else "%s"

    def q(self, name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    def t(self, name: str) -> str:
        """A table's name for SQL run anywhere (db.query runs on the search path's schema)."""
        return self.q(name) if self.schema is None else f"{self.q(self.schema)}.{self.q(name)}"

    def run(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """One statement, committed; its rows."""
        if self.kind == "sqlite":
            assert self.path is not None
            with closing(sqlite3.connect(self.path, isolation_level=None)) as conn:
                if params:
                    sql = sql.replace("%s", "?")
                cur = conn.execute(sql, tuple(params))
                return cur.fetchall() if cur.description is not None else []
        cur = self.pg.execute(sql, tuple(params) or None)
        return cur.fetchall() if cur.description is not None else []

    def script(self, sql: str) -> None:
        """Several statements (no parameters), committed."""
        if self.kind == "sqlite":
            assert self.path is not None
            with closing(sqlite3.connect(self.path, isolation_level=None)) as conn:
                conn.executescript(sql)
        else:
            self.pg.execute(sql)

    def close(self) -> None:
        if self.pg is not None:
            self.pg.close()


@pytest.fixture(scope="module", params=ENGINES)
def db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Db]:
    """This module's database on each engine: a fresh SQLite file, or a fresh PostgreSQL
    schema dropped afterwards."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("grid") / "grid.sqlite3"
        sqlite3.connect(path).close()
        database = Db("sqlite", f"sqlite://{path}", None, path)
        try:
            yield database
        finally:
            database.close()
        return
    url = request.getfixturevalue("postgres")
    import psycopg

    schema = f"grid_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    database = Db("postgres", url, schema)
    try:
        yield database
    finally:
        database.close()
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


class Grid:
    """A client of the daemon's grid; ``schema`` goes with every call naming a table."""

    def __init__(self, client: RpcClient, db: Db, socket: Path) -> None:
        self.client = client
        self.db = db
        self.socket = socket

    def _params(self, params: dict[str, Any]) -> dict[str, Any]:
        if "table" in params and self.db.schema is not None and "schema" not in params:
            params["schema"] = self.db.schema
        return params

    async def call(self, method: str, **params: Any) -> Any:
        return await self.client.call(method, **self._params(params))

    async def error(self, method: str, **params: Any) -> RpcFailed:
        return await self.client.error(method, **self._params(params))

    async def rows(self, table: str, **params: Any) -> dict[str, Any]:
        page: dict[str, Any] = await self.call("db.rows", table=table, **params)
        return page


@pytest.fixture
async def grid(db: Db, isolated_env: Path) -> AsyncIterator[Grid]:
    """A daemon whose DEV database is ``db``, and a client of it."""
    socket = isolated_env / "d.sock"
    settings = {"db.DEV.url": db.url, "db.probe_seconds": 600}
    async with running_daemon(socket, isolated_env / "state", **settings):
        async with await RpcClient.connect(socket) as client:
            yield Grid(client, db, socket)


def fresh(db: Db, name: str, ddl: str) -> None:
    """(Re)create the table ``name`` from ``ddl``, where ``{t}`` stands for its name."""
    cascade = " CASCADE" if db.kind == "postgres" else ""
    db.script(f"DROP TABLE IF EXISTS {db.q(name)}{cascade}; " + ddl.format(t=db.q(name)))


def column_names(page: dict[str, Any]) -> list[str]:
    return [c["name"] for c in page["columns"]]


def as_dict(page: dict[str, Any], row: list[Any]) -> dict[str, Any]:
    return dict(zip(column_names(page), row, strict=True))


async def walk_keys(
    grid: Grid, table: str, sort: list[dict[str, Any]], pages: int = 20
) -> tuple[list[Any], dict[str, Any]]:
    """Every row's key, two rows a page by ``next``, within ``pages`` pages (a walk that
    goes in circles ends there); and the last page read."""
    keys: list[Any] = []
    params: dict[str, Any] = {"sort": sort, "limit": 2}
    for _ in range(pages):
        page = await grid.rows(table, **params)
        keys += page["keys"]
        if page["next"] is None:
            break
        params["after"] = page["next"]
    return keys, page


# --- Paging -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def paged(db: Db) -> str:
    """``paged``: 100,000 rows generated in SQL; ``n`` is nullable (one row in ten NULL, its
    values out of step with the key), ``g`` holds 97 values over and over; and ``twin``, a
    small table with the same columns."""
    series = (
        f"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {PAGED_ROWS})"
        " SELECT x FROM c"
        if db.kind == "sqlite"
        else f"SELECT x FROM generate_series(1, {PAGED_ROWS}) AS x"
    )
    nulls_first = "n" if db.kind == "sqlite" else "n NULLS FIRST"
    db.script(
        f"""
        CREATE TABLE paged (id integer PRIMARY KEY, n integer, g integer NOT NULL, s text);
        INSERT INTO paged SELECT x, CASE WHEN x % 10 = 3 THEN NULL ELSE (x * 7919) % 1000 END,
            x % 97, 'row ' || x FROM ({series}) AS series;
        CREATE INDEX paged_n ON paged ({nulls_first}, id);
        CREATE INDEX paged_g ON paged (g, id);
        CREATE TABLE twin (id integer PRIMARY KEY, n integer, g integer NOT NULL, s text);
        INSERT INTO twin VALUES (1, 1, 1, 'a'), (2, NULL, 2, 'b'), (3, 3, 3, 'c');
        ANALYZE;
        """
    )
    return "paged"


async def walk(grid: Grid, table: str, **view: Any) -> tuple[list[list[Any]], list[list[Any]], int]:
    """Every row of ``table`` in the view's order, read forward page by page with ``next``,
    then backward from the last page with ``prev``; and how many pages forward."""
    pages = [await grid.rows(table, limit=PAGE, **view)]
    assert pages[0]["prev"] is None, "the first page has no previous page"
    while pages[-1]["next"] is not None:
        page = await grid.rows(table, limit=PAGE, after=pages[-1]["next"], **view)
        assert page["prev"] is not None, "a page after the first has a previous page"
        assert len(page["rows"]) == len(page["keys"])
        pages.append(page)
    forward = [row for p in pages for row in p["rows"]]

    back = [pages[-1]]
    while back[-1]["prev"] is not None:
        back.append(await grid.rows(table, limit=PAGE, before=back[-1]["prev"], **view))
        assert back[-1]["next"] is not None, "a page before the last has a next page"
    backward = [row for p in reversed(back) for row in p["rows"]]
    return forward, backward, len(pages)


def in_db_order(db: Db, order: str, where: str = "", params: Sequence[Any] = ()) -> list[list[Any]]:
    rows = db.run(f"SELECT id, n, g, s FROM paged {where} ORDER BY {order}", params)
    return [list(r) for r in rows]


@pytest.mark.parametrize(
    ("sort", "order"),
    [
        ([], "id"),
        ([{"column": "n"}], "n ASC NULLS FIRST, id"),
        ([{"column": "n", "desc": True}], "n DESC NULLS LAST, id DESC"),
        ([{"column": "g"}], "g, id"),
    ],
    ids=["key", "nullable", "nullable-desc", "non-unique"],
)
async def test_pages_walk_every_row_once_in_order_both_ways(
    db: Db, paged: str, grid: Grid, sort: list[dict[str, Any]], order: str
) -> None:
    expected = in_db_order(db, order)
    forward, backward, pages = await walk(grid, paged, sort=sort)
    assert pages == PAGED_ROWS // PAGE
    ids = [row[0] for row in forward]
    assert len(set(ids)) == PAGED_ROWS, "a row was seen twice or missed"
    assert forward == expected
    assert backward == expected


async def test_null_is_the_smallest_value(db: Db, paged: str, grid: Grid) -> None:
    up = await grid.rows(paged, sort=[{"column": "n"}], limit=5)
    assert [row[1] for row in up["rows"]] == [None] * 5
    assert [k[0] for k in up["keys"]] == [3, 13, 23, 33, 43]
    down = await grid.rows(paged, sort=[{"column": "n", "desc": True}], limit=PAGE)
    assert None not in [row[1] for row in down["rows"]]
    assert down["rows"][0][1] == 999


@pytest.mark.parametrize(
    ("filters", "where", "params", "sort", "order"),
    [
        (
            [
                {"column": "n", "op": ">=", "value": 100},
                {"column": "n", "op": "<", "value": 200},
                {"column": "g", "op": "!=", "value": 5},
            ],
            "WHERE n >= 100 AND n < 200 AND g <> 5",
            [],
            [{"column": "n", "desc": True}],
            "n DESC NULLS LAST, id DESC",
        ),
        (
            [{"column": "g", "op": "in", "value": [1, 2, 3, 50]}],
            "WHERE g IN (1, 2, 3, 50)",
            [],
            [{"column": "g", "desc": True}, {"column": "n"}],
            "g DESC, n ASC NULLS FIRST, id",
        ),
        (
            [{"column": "n", "op": "is-null"}],
            "WHERE n IS NULL",
            [],
            [{"column": "id", "desc": True}],
            "id DESC",
        ),
        (
            [{"column": "s", "op": "like", "value": "row %7"}],
            "WHERE s LIKE %s",
            ["row %7"],
            [{"column": "g"}],
            "g, id",
        ),
    ],
    ids=["compare", "in", "is-null", "like"],
)
async def test_filtered_pages_walk_every_matching_row_once(
    db: Db,
    paged: str,
    grid: Grid,
    filters: list[dict[str, Any]],
    where: str,
    params: list[Any],
    sort: list[dict[str, Any]],
    order: str,
) -> None:
    expected = in_db_order(db, order, where, params)
    assert 2 * PAGE < len(expected) < PAGED_ROWS // 5, "the filter keeps a few pages"
    forward, backward, _ = await walk(grid, paged, sort=sort, filters=filters)
    assert forward == expected
    assert backward == expected
    assert len({row[0] for row in forward}) == len(expected)


# --- Cursors ------------------------------------------------------------------------------


def flip(text: str, at: int) -> str:
    """``text`` with the character at ``at`` changed to another base64 character."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    swapped = alphabet[(alphabet.index(text[at]) + 1) % 64]
    return text[:at] + swapped + text[at + 1 :]


def rewritten(cursor: str, change: Any) -> str:
    """``cursor`` with its JSON body changed and its signature kept (a signature cannot be
    redone without the daemon's key)."""
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    head, body = raw[:33], json.loads(raw[33:])
    change(body)
    raw = head + json.dumps(body, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


async def test_forged_altered_truncated_or_foreign_cursors_are_refused(
    db: Db, paged: str, grid: Grid
) -> None:
    view = {"sort": [{"column": "n"}], "filters": [{"column": "g", "op": "<", "value": 50}]}
    first = await grid.rows(paged, limit=10, **view)
    cursor = first["next"]
    second = await grid.rows(paged, limit=10, after=cursor, **view)
    other_sort = (await grid.rows(paged, limit=10, sort=[{"column": "g"}]))["next"]
    other_filter = (
        await grid.rows(
            paged, limit=10, sort=view["sort"], filters=[{"column": "g", "op": "<", "value": 51}]
        )
    )["next"]
    other_table = (await grid.rows("twin", limit=1, **view))["next"]
    assert None not in (cursor, other_sort, other_filter, other_table)

    def values(body: dict[str, Any]) -> None:
        body["k"] = [None, "0; DROP TABLE paged; --"]

    def direction(body: dict[str, Any]) -> None:
        body["d"] = "b"

    forged = {
        "garbage": "AAAA",
        "random": base64.urlsafe_b64encode(uuid.uuid4().bytes * 4).rstrip(b"=").decode(),
        "not base64": cursor[:-2] + "!!",
        "flipped at start": flip(cursor, 3),
        "flipped in the middle": flip(cursor, len(cursor) // 2),
        "flipped at end": flip(cursor, len(cursor) - 1),
        "truncated by one": cursor[:-1],
        "truncated by half": cursor[: len(cursor) // 2],
        "padded": cursor + "==",
        "values changed": rewritten(cursor, values),
        "direction changed": rewritten(cursor, direction),
    }
    for name, text in forged.items():
        failed = await grid.error("db.rows", table=paged, limit=10, after=text, **view)
        assert (failed.code, failed.message) == (BAD_INPUT, STALE_CURSOR), name
    foreign = {"other sort": other_sort, "other filter": other_filter, "other table": other_table}
    for name, text in foreign.items():
        failed = await grid.error("db.rows", table=paged, limit=10, after=text, **view)
        assert (failed.code, failed.message) == (BAD_INPUT, STALE_CURSOR), name
    # A next cursor is no prev cursor.
    failed = await grid.error("db.rows", table=paged, limit=10, before=cursor, **view)
    assert (failed.code, failed.message) == (BAD_INPUT, STALE_CURSOR)
    failed = await grid.error("db.rows", table=paged, limit=10, after=second["prev"], **view)
    assert (failed.code, failed.message) == (BAD_INPUT, STALE_CURSOR)

    # Nothing else happened: the table is whole, and the real cursor still reads the same page.
    assert db.run("SELECT count(*) FROM paged") == [(PAGED_ROWS,)]
    again = await grid.rows(paged, limit=10, after=cursor, **view)
    assert again["rows"] == second["rows"]


async def test_a_cursor_dies_with_the_daemon(db: Db, paged: str, isolated_env: Path) -> None:
    settings = {"db.DEV.url": db.url}
    cursors: list[str] = []
    for run in range(2):
        socket = isolated_env / f"d{run}.sock"
        async with running_daemon(socket, isolated_env / f"state{run}", **settings):
            async with await RpcClient.connect(socket) as client:
                grid = Grid(client, db, socket)
                if cursors:
                    failed = await grid.error("db.rows", table=paged, after=cursors[0])
                    assert (failed.code, failed.message) == (BAD_INPUT, STALE_CURSOR)
                cursors.append((await grid.rows(paged, limit=5))["next"])


# --- Counts ---------------------------------------------------------------------------------


async def test_the_first_page_of_a_big_table_never_waits_for_a_count(
    db: Db, paged: str, grid: Grid
) -> None:
    page = await grid.rows(paged, limit=50)
    assert len(page["rows"]) == 50
    assert page["count"]["exact"] is False
    filtered = await grid.rows(paged, limit=50, filters=[{"column": "g", "op": "=", "value": 3}])
    assert filtered["count"]["exact"] is False
    small = await grid.rows("twin")
    assert small["count"] == {"value": 3, "exact": True}


async def test_the_first_page_of_a_million_rows_answers_with_an_estimate(
    db: Db, grid: Grid
) -> None:
    if db.kind == "sqlite":
        db.script(
            f"""
            DROP TABLE IF EXISTS million;
            CREATE TABLE million (id INTEGER PRIMARY KEY, v INTEGER);
            INSERT INTO million SELECT x, x % 7 FROM (WITH RECURSIVE c(x) AS
                (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {BIG_ROWS}) SELECT x FROM c);
            """
        )
    else:
        db.script(
            f"""
            DROP TABLE IF EXISTS million;
            CREATE UNLOGGED TABLE million (id integer, v integer);
            INSERT INTO million SELECT x, x % 7 FROM generate_series(1, {BIG_ROWS}) AS x;
            ALTER TABLE million ADD PRIMARY KEY (id);
            """
        )
    page = await grid.rows("million", limit=100)
    assert [k[0] for k in page["keys"]] == list(range(1, 101))
    assert page["count"]["exact"] is False
    page = await grid.rows("million", limit=100, sort=[{"column": "v", "desc": True}])
    assert page["count"]["exact"] is False
    start = time.monotonic()
    counted = await grid.call("db.count", table="million")
    assert time.monotonic() - start < 1.5
    assert counted in ({"value": BIG_ROWS, "exact": True}, {**counted, "exact": False})


async def test_counts_are_exact_for_a_small_table(db: Db, grid: Grid) -> None:
    fresh(db, "few", "CREATE TABLE {t} (id integer PRIMARY KEY, v text)")
    db.run("INSERT INTO few VALUES (1, 'a'), (2, NULL), (3, 'b'), (4, 'a'), (5, '')")
    assert await grid.call("db.count", table="few") == {"value": 5, "exact": True}
    filtered = await grid.call(
        "db.count", table="few", filters=[{"column": "v", "op": "=", "value": "a"}]
    )
    assert filtered == {"value": 2, "exact": True}
    nulls = await grid.call("db.count", table="few", filters=[{"column": "v", "op": "is-null"}])
    assert nulls == {"value": 1, "exact": True}


async def test_a_count_that_would_take_long_answers_in_time_inexact(db: Db, grid: Grid) -> None:
    """A view of endless rows: counting never ends, so the answer is the estimate (none for
    a view), inexact, within the count's time budget."""
    db.script(
        "DROP VIEW IF EXISTS endless; CREATE VIEW endless AS WITH RECURSIVE c(x) AS"
        " (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c"
    )
    start = time.monotonic()
    counted = await grid.call("db.count", table="endless")
    elapsed = time.monotonic() - start
    assert counted["exact"] is False
    assert elapsed < 1.5
    # And the grid is free again at once.
    start = time.monotonic()
    assert (await grid.call("db.query", sql="SELECT 1"))["rows"] == [[1]]
    assert time.monotonic() - start < 0.5


# --- Values -----------------------------------------------------------------------------------


PG_VALUES = """
CREATE TABLE {t} (
    id bigint PRIMARY KEY, i8 bigint, num numeric(38,10), dec numeric, f float8, j jsonb,
    js json, t text, b bytea, ts timestamptz, d date, u uuid, ai integer[], at text[]
)
"""
PG_ROWS: list[tuple[Any, ...]] = [
    (
        INT8_MAX,
        INT8_MAX,
        "10.00",
        "10.00",
        "NaN",
        '{"a":10.00}',
        '{"a":10.00, "b" : [1]}',
        UNICODE,
        b"\x00\xff\x00",
        "2024-01-02 03:04:05+00",
        "2024-01-02",
        "5b0b8f6e-2a5c-4a0e-9d84-3f1f1d4e2a10",
        [1, None, 3],
        ["a b", "", None, 'ü,"}'],
    ),
    (
        INT8_MIN,
        INT8_MIN,
        "-1234567890123456789012345678.0123456789",
        "0.000",
        "Infinity",
        "[]",
        " [1, 2.50] ",
        "",
        b"\x00",
        "2024-01-02 03:04:05+05:30",
        "1999-12-31",
        "00000000-0000-0000-0000-000000000000",
        [],
        [],
    ),
    (0, 2**53, "0", "1e-20", "-Infinity", "null", "{}", " ", b"", None, None, None, None, None),
    (1, None, None, None, None, None, None, None, None, None, None, None, None, None),
]

SQLITE_VALUES = """
CREATE TABLE {t} (
    id INTEGER PRIMARY KEY, i8 INTEGER, num DECIMAL(38,10), f REAL, j JSON, t TEXT, b BLOB,
    ts TEXT, d DATE, u TEXT
)
"""
SQLITE_ROWS: list[tuple[Any, ...]] = [
    (
        INT8_MAX,
        INT8_MAX,
        10.5,
        float("inf"),
        '{"a":10.00}',
        UNICODE,
        b"\x00\xff\x00",
        "2024-01-02T03:04:05Z",
        "2024-01-02",
        "5b0b8f6e-2a5c-4a0e-9d84-3f1f1d4e2a10",
    ),
    (
        INT8_MIN,
        INT8_MIN,
        -3,
        float("-inf"),
        " [1, 2.50] ",
        "",
        b"\x00",
        "2024-01-02T03:04:05+05:30",
        "1999-12-31",
        "",
    ),
    (0, 2**53, 0, 0.1, "null", " ", b"", None, None, None),
    (1, None, None, None, None, None, None, None, None, None),
]


def snapshot(db: Db, table: str) -> list[tuple[Any, ...]]:
    """The table's values as the database itself prints them, storage classes included."""
    if db.kind == "postgres":
        columns = db.run(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
            " AND NOT attisdropped ORDER BY attnum",
            [f"{db.schema}.{table}"],
        )
        text = ", ".join(f"{db.q(c)}::text" for (c,) in columns)
        return db.run(f"SELECT {text} FROM {db.q(table)} ORDER BY 1")
    columns = db.run(f"SELECT name FROM pragma_table_info('{table}') ORDER BY cid")
    terms = ", ".join(f"typeof({db.q(c)}), quote({db.q(c)})" for (c,) in columns)
    return db.run(f"SELECT {terms} FROM {db.q(table)} ORDER BY rowid")


async def write_back(grid: Grid, table: str, page: dict[str, Any]) -> dict[str, Any]:
    """Every row of ``page`` updated to the values read (all but the key), expecting them."""
    key = page["key"]
    changes = []
    for row, row_key in zip(page["rows"], page["keys"], strict=True):
        read = as_dict(page, row)
        values = {k: v for k, v in read.items() if k not in key}
        changes.append({"op": "update", "key": row_key, "values": values, "expect": read})
    edited: dict[str, Any] = await grid.call("db.edit", table=table, changes=changes)
    return edited


async def test_values_travel_exactly_and_come_back_unchanged(db: Db, grid: Grid) -> None:
    if db.kind == "postgres":
        fresh(db, "vals", PG_VALUES)
        place = ", ".join(["%s"] * len(PG_ROWS[0]))
        for row in PG_ROWS:
            db.run(f"INSERT INTO vals VALUES ({place})", row)
    else:
        fresh(db, "vals", SQLITE_VALUES)
        for row in SQLITE_ROWS:
            db.run("INSERT INTO vals VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
    before = snapshot(db, "vals")
    page = await grid.rows("vals", sort=[{"column": "id"}])
    cells = {row[0]: as_dict(page, row) for row in page["rows"]}
    top, bottom, zero, nulls = (
        cells[str(INT8_MAX)],
        cells[str(INT8_MIN)],
        cells[0],
        cells[1],
    )

    assert page["keys"][0] == [str(INT8_MIN)] and page["keys"][-1] == [str(INT8_MAX)]
    assert (top["i8"], bottom["i8"], zero["i8"]) == (str(INT8_MAX), str(INT8_MIN), str(2**53))
    assert top["t"] == UNICODE
    assert (bottom["t"], zero["t"], nulls["t"]) == ("", " ", None)
    assert top["b"] == {"$bytes": 3, "hex": "00ff00"}
    assert bottom["b"] == {"$bytes": 1, "hex": "00"}
    assert zero["b"] == {"$bytes": 0, "hex": ""}
    assert top["u"] == "5b0b8f6e-2a5c-4a0e-9d84-3f1f1d4e2a10"
    assert (top["d"], bottom["d"]) == ("2024-01-02", "1999-12-31")
    assert set(nulls.values()) == {None, 1}
    if db.kind == "postgres":
        assert top["num"] == "10.0000000000"
        assert top["dec"] == "10.00", "an unconstrained numeric keeps its scale"
        assert bottom["num"] == "-1234567890123456789012345678.0123456789"
        assert (bottom["dec"], zero["dec"]) == ("0.000", "0.00000000000000000001")
        assert (top["f"], bottom["f"], zero["f"]) == ("NaN", "Infinity", "-Infinity")
        assert top["j"] == '{"a": 10.00}', "jsonb keeps the number's scale (PostgreSQL spaces it)"
        assert top["js"] == '{"a":10.00, "b" : [1]}', "json is kept as written"
        assert bottom["js"] == " [1, 2.50] "
        assert top["ai"] == [1, None, 3] and bottom["ai"] == []
        assert top["at"] == ["a b", "", None, 'ü,"}']
        utc = datetime.fromisoformat(top["ts"])
        assert utc == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC) and utc.utcoffset() is not None
        india = datetime.fromisoformat(bottom["ts"])
        assert india == datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=5.5)))
    else:
        assert (top["num"], bottom["num"], zero["num"]) == (10.5, -3, 0)
        assert (top["f"], bottom["f"], zero["f"]) == ("Infinity", "-Infinity", 0.1)
        assert (top["j"], bottom["j"]) == ('{"a":10.00}', " [1, 2.50] ")
        assert (top["ts"], bottom["ts"]) == ("2024-01-02T03:04:05Z", "2024-01-02T03:04:05+05:30")

    edited = await write_back(grid, "vals", page)
    assert [e["row"] for e in edited["rows"]] == page["rows"], "the rows as read back after saving"
    assert snapshot(db, "vals") == before, "the database holds what it held"
    again = await grid.rows("vals", sort=[{"column": "id"}])
    assert again["rows"] == page["rows"]


async def test_values_can_be_inserted_from_the_wire(db: Db, grid: Grid) -> None:
    if db.kind == "postgres":
        fresh(db, "vals", PG_VALUES)
    else:
        fresh(db, "vals", SQLITE_VALUES)
    values: dict[str, Any] = {
        "id": str(INT8_MAX),
        "i8": str(INT8_MIN),
        "t": UNICODE,
        "b": {"$bytes": 4, "hex": "00010200"},
        "d": "2024-01-02",
        "u": "5b0b8f6e-2a5c-4a0e-9d84-3f1f1d4e2a10",
        "f": "-Infinity",
    }
    if db.kind == "postgres":
        values |= {
            "num": "10.00",
            "dec": "10.00",
            "j": '{"a":10.00}',
            "ai": [1, None, 3],
            "at": ["x", None, ""],
            "ts": "2024-01-02T03:04:05+05:30",
        }
    empty = {"id": 2, "t": ""}
    null = {"id": 3, "t": None}
    edited = await grid.call(
        "db.edit",
        table="vals",
        changes=[{"op": "insert", "values": v} for v in (values, empty, null)],
    )
    inserted = as_dict(edited, edited["rows"][0]["row"])
    assert edited["rows"][0]["key"] == [str(INT8_MAX)]
    for name, value in values.items():
        if name == "ts":
            assert datetime.fromisoformat(inserted[name]) == datetime.fromisoformat(value)
        elif name == "num":
            assert inserted[name] == "10.0000000000"
        elif name == "j":
            assert inserted[name] == '{"a": 10.00}', "jsonb keeps the scale (and spaces it)"
        else:
            assert inserted[name] == value, name
    assert db.run("SELECT id FROM vals WHERE t = ''") == [(2,)]
    assert db.run("SELECT id FROM vals WHERE t IS NULL") == [(3,)]
    assert db.run("SELECT b FROM vals WHERE id = %s", [INT8_MAX]) == [(b"\x00\x01\x02\x00",)]
    if db.kind == "postgres":
        assert db.run("SELECT j::text, dec::text FROM vals WHERE i8 = %s", [INT8_MIN]) == [
            ('{"a": 10.00}', "10.00")
        ]


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
async def test_an_untyped_sqlite_column_holds_every_storage_class(db: Db, grid: Grid) -> None:
    """Each storage class is read as itself, and written back as read it keeps its class
    (a big integer or an infinity travels as a string, yet stays INTEGER or REAL). A new
    value is bound as the column's type wants (documented in ``domain.grid``): in an untyped
    column a new big integer is stored as TEXT; an INTEGER column refuses a new text."""
    fresh(db, "mixed", "CREATE TABLE {t} (id INTEGER PRIMARY KEY, m, i INTEGER)")
    stored = [42, 2.5, "abc", b"\x00\x01", None, 2**62, "", "12", -7, float("inf")]
    for n, value in enumerate(stored, 1):
        db.run("INSERT INTO mixed VALUES (?, ?, ?)", [n, value, n])
    db.run("UPDATE mixed SET i = 'abc' WHERE id = 1")
    db.run("UPDATE mixed SET i = 12.5 WHERE id = 2")
    classes = db.run("SELECT typeof(m), typeof(i) FROM mixed ORDER BY id")
    assert [m for m, _ in classes] == [
        "integer",
        "real",
        "text",
        "blob",
        "null",
        "integer",
        "text",
        "text",
        "integer",
        "real",
    ]
    page = await grid.rows("mixed")
    assert [row[1] for row in page["rows"]] == [
        42,
        2.5,
        "abc",
        {"$bytes": 2, "hex": "0001"},
        None,
        str(2**62),
        "",
        "12",
        -7,
        "Infinity",
    ]
    assert [row[2] for row in page["rows"][:3]] == ["abc", 12.5, 3]

    await write_back(grid, "mixed", page)
    assert db.run("SELECT typeof(m), typeof(i) FROM mixed ORDER BY id") == classes
    assert db.run("SELECT m FROM mixed WHERE id IN (6, 10) ORDER BY id") == [
        (2**62,),
        (float("inf"),),
    ]
    assert (await grid.rows("mixed"))["rows"] == page["rows"]

    edited = await grid.call(
        "db.edit",
        table="mixed",
        changes=[{"op": "update", "key": [5], "values": {"m": str(2**62)}, "expect": {"m": None}}],
    )
    assert edited["rows"][0]["row"][1] == str(2**62)
    assert db.run("SELECT typeof(m) FROM mixed WHERE id = 5") == [("text",)]
    failed = await grid.error(
        "db.edit",
        table="mixed",
        changes=[{"op": "update", "key": [1], "values": {"i": "xyz"}, "expect": {"i": "abc"}}],
    )
    assert failed.code == BAD_INPUT and "whole number" in failed.message
    assert db.run("SELECT i FROM mixed WHERE id = 1") == [("abc",)]


async def test_a_page_mixes_rows_sent_as_read_and_rows_decoded_cell_by_cell(
    db: Db, grid: Grid
) -> None:
    """Rows whose cells all go on the wire as the driver reads them, beside rows that need
    one cell decoded (cut text, bytes, an integer beyond 2^53, an infinity), in one page."""
    blob, key = ("bytea", "bigint") if db.kind == "postgres" else ("BLOB", "integer")
    fresh(db, "mix", f"CREATE TABLE {{t}} (id {key} PRIMARY KEY, n bigint, f float8, "
                     f"t text, b {blob})")  # fmt: skip
    infinity = "'Infinity'::float8" if db.kind == "postgres" else "9e999"
    db.script(
        f"INSERT INTO mix VALUES (1, 7, 0.1, 'plain', NULL);"
        f" INSERT INTO mix VALUES (2, {INT8_MAX}, 2.5, 'big', NULL);"
        f" INSERT INTO mix VALUES (3, -8, {infinity}, 'inf', NULL);"
        f" INSERT INTO mix VALUES (4, NULL, NULL, '{'x' * 50}', NULL);"
        f" INSERT INTO mix VALUES (5, 1, 1.640711986222494e+221, '', NULL);"
        f" INSERT INTO mix VALUES ({2**60}, 0, -0.5, 'a key beyond 2^53', NULL)"
    )
    db.run("INSERT INTO mix VALUES (6, 6, 3.0, 'bytes', %s)", [b"\x00\xff"])
    page = await grid.rows("mix", cellBytes=16)
    assert page["rows"] == [
        [1, 7, 0.1, "plain", None],
        [2, str(INT8_MAX), 2.5, "big", None],
        [3, -8, "Infinity", "inf", None],
        [4, None, None, {"$truncated": 50, "text": "x" * 16}, None],
        [5, 1, 1.640711986222494e221, "", None],
        [6, 6, 3.0, "bytes", {"$bytes": 2, "hex": "00ff"}],
        [str(2**60), 0, -0.5, {"$truncated": 17, "text": "a key beyond 2^5"}, None],
    ]
    assert page["keys"] == [[1], [2], [3], [4], [5], [6], [str(2**60)]]
    # Floats come as the JSON numbers they are (3.0 stays a float).
    assert isinstance(page["rows"][5][2], float)


@pytest.mark.parametrize("db", ["postgres"], indirect=True)
async def test_a_table_keyed_by_an_array_pages_by_it_and_by_a_nullable_column(
    db: Db, grid: Grid
) -> None:
    """A page in parts keeps each row once by its key, whatever the key's type; a page
    boundary on an array is bound as the column's own type."""
    fresh(db, "arrays", "CREATE TABLE {t} (k int[] PRIMARY KEY, a int, v varchar(3)[])")
    db.script(
        "INSERT INTO arrays VALUES ('{1,2}', NULL, NULL), ('{3}', 5, '{x}'),"
        " ('{4}', NULL, '{x}'), ('{5}', 1, NULL)"
    )
    page = await grid.rows("arrays", sort=[{"column": "a"}])
    assert page["keys"] == [[[1, 2]], [[4]], [[5]], [[3]]]
    # Paged two rows at a time, by the key and by the nullable columns, both ways (by v,
    # rows equal in it are told apart by the key: a boundary equal to an array).
    sorts: list[list[dict[str, Any]]] = [[], [{"column": "a"}], [{"column": "a", "desc": True}]]
    sorts += [[{"column": "v"}], [{"column": "v", "desc": True}]]
    for sort in sorts:
        keys, page = await walk_keys(grid, "arrays", sort)
        assert (
            page["next"] is None
            and len(keys) == 4
            and sorted(keys) == [[[1, 2]], [[3]], [[4]], [[5]]]
        ), sort
        back = await grid.rows("arrays", sort=sort, limit=2, before=page["prev"])
        assert back["keys"] == keys[:2], sort  # the last page's prev: the first page
    # Filters on arrays bind them as the column's type (not psycopg's smallint[]).
    for filters, want in [
        ([{"column": "k", "op": "=", "value": [3]}], [[[3]]]),
        ([{"column": "k", "op": "!=", "value": [3]}], [[[1, 2]], [[4]], [[5]]]),
        ([{"column": "k", "op": ">", "value": [4]}], [[[5]]]),
        ([{"column": "k", "op": "in", "value": [[1, 2], [5]]}], [[[1, 2]], [[5]]]),
        ([{"column": "v", "op": "=", "value": ["x"]}], [[[3]], [[4]]]),
    ]:
        assert (await grid.rows("arrays", filters=filters))["keys"] == want, filters
    # A row is found by its array key, to read a cell and to change it.
    cell = await grid.call("db.cell", table="arrays", key=[[3]], column="a")
    assert cell == {"value": 5}
    change = {"op": "update", "key": [[3]], "values": {"a": 6}, "expect": {"a": 5}}
    saved = await grid.call("db.edit", table="arrays", changes=[change])
    assert saved["rows"] == [{"key": [[3]], "row": [[3], 6, ["x"]]}]
    assert db.run("SELECT a FROM arrays WHERE k = '{3}'") == [(6,)]


@pytest.mark.parametrize("db", ["postgres"], indirect=True)
async def test_a_fixed_size_array_key_keeps_its_values_whole(db: Db, grid: Grid) -> None:
    """character(n) and bit(n) without their size are one character or bit long: the cast of
    a bound key keeps it (a boundary of {ab} cut to {a} paged in circles)."""
    fresh(db, "fixed", "CREATE TABLE {t} (k char(2)[] PRIMARY KEY, b bit(3)[])")
    db.script(
        "INSERT INTO fixed VALUES ('{aa}', '{101}'), ('{ab}', NULL), ('{ac}', '{011}'),"
        " ('{ad}', '{101}'), ('{b}', NULL)"
    )
    for sort in ([], [{"column": "b"}]):
        keys, page = await walk_keys(grid, "fixed", sort, pages=5)
        assert page["next"] is None and len(keys) == 5, (sort, keys)
    cell = await grid.call("db.cell", table="fixed", key=[["ab"]], column="b")
    assert cell == {"value": None}


@pytest.mark.parametrize("db", ["postgres"], indirect=True)
async def test_pages_sorted_by_a_value_printed_as_text_keep_its_own_order(
    db: Db, grid: Grid
) -> None:
    """Intervals and numerics travel as the server prints them: the order is still theirs,
    not the text's ('10' before '9', '1 day' after '10:00:00'), or pages would lose rows."""
    fresh(db, "printed", "CREATE TABLE {t} (id int PRIMARY KEY, i interval, n numeric)")
    db.script(
        "INSERT INTO printed VALUES (1, '1 day', 10), (2, '10:00:00', 9), (3, '2 days', 100),"
        " (4, '00:30:00', 9.5), (5, '3 days', -1)"
    )
    for column, expected in (("i", [4, 2, 1, 3, 5]), ("n", [5, 2, 4, 1, 3])):
        keys, page = await walk_keys(grid, "printed", [{"column": column}])
        assert page["next"] is None and keys == [[k] for k in expected], column


async def test_a_table_of_900_columns_pages_right(db: Db, grid: Grid) -> None:
    """Past 200 columns every row carries its cells' sizes (no per-column condition), in an
    expression SQLite takes (it refuses one deeper than 1,000: a flat list of 900 sizes)."""
    width = 900
    columns = ", ".join(f"c{i} integer" for i in range(width))
    fresh(db, "wide", f"CREATE TABLE {{t}} (id integer PRIMARY KEY, {columns}, t text)")
    db.run(
        f"INSERT INTO wide VALUES (1, {', '.join(str(i) for i in range(width))}, %s)",
        ["é" * 40],
    )
    db.run("INSERT INTO wide (id, c0, t) VALUES (2, -7, 'short')")
    page = await grid.rows("wide", cellBytes=30)
    first, second = page["rows"]
    assert first == [1, *range(width), {"$truncated": 40, "text": "é" * 30}]
    assert second == [2, -7, *([None] * (width - 1)), "short"]


async def test_a_page_that_takes_long_to_read_holds_no_one_else(db: Db, grid: Grid) -> None:
    """A filter that scans 500,000 long texts: far more than a page's work on the daemon's
    event loop (SQLite tries it there first); it moves to a worker thread, other clients are
    answered meanwhile, and the page is right."""
    series = (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 500000)"
        " SELECT x FROM c"
        if db.kind == "sqlite"
        else "SELECT x FROM generate_series(1, 500000) AS x"
    )
    padded = "printf('%0200d', x)" if db.kind == "sqlite" else "lpad(x::text, 200, '0')"
    fresh(db, "slow", "CREATE TABLE {t} (id integer PRIMARY KEY, v text)")
    db.script(f"INSERT INTO slow SELECT x, {padded} || 'v' FROM ({series}) AS series")
    assert (await grid.rows("slow", limit=1))["keys"] == [[1]]  # a pooled session, a layout
    other = await RpcClient.connect(grid.socket)
    try:
        filters = [{"column": "v", "op": "ilike", "value": "%499999V"}]
        page, waits = await pings_meanwhile(other, lambda: grid.rows("slow", filters=filters))
        assert page["keys"] == [[499999]] and page["next"] is None
        # The daemon shares this test's event loop: a page read on it would stall the pings.
        assert max(waits) < 0.1, waits
        assert len(waits) > 3, "the page answered too soon to tell"
    finally:
        await other.__aexit__(None, None, None)


async def test_a_cell_is_whole_and_a_page_cuts_long_ones(db: Db, grid: Grid) -> None:
    fresh(
        db,
        "cells",
        "CREATE TABLE {t} (id integer PRIMARY KEY, t text, b "
        + ("bytea" if db.kind == "postgres" else "BLOB")
        + ")",
    )
    blob = bytes(range(256)) * 4 + b"\x00"
    long_text = "ab€" + "é" * 99_997
    db.run("INSERT INTO cells VALUES (1, %s, %s)", [long_text, blob])
    huge = "repeat('x', 4999997)" if db.kind == "postgres" else "printf('%.*c', 4999997, 'x')"
    db.run(f"INSERT INTO cells VALUES (2, 'ab€' || {huge}, NULL)")
    page = await grid.rows("cells", cellBytes=100)
    first, second = page["rows"]
    assert first[1] == {"$truncated": 100_000, "text": long_text[:100]}
    assert first[2] == {"$bytes": len(blob), "hex": blob[:64].hex()}
    assert second[1] == {"$truncated": 5_000_000, "text": "ab€" + "x" * 97}

    cell = await grid.call("db.cell", table="cells", key=[1], column="b")
    assert cell == {"value": {"$bytes": len(blob), "hex": blob.hex()}}
    cell = await grid.call("db.cell", table="cells", key=[1], column="t")
    assert cell == {"value": long_text}
    cell = await grid.call("db.cell", table="cells", key=[2], column="t")
    assert len(cell["value"]) == 5_000_000 and cell["value"].startswith("ab€xx")

    # A cut value is never written back; the whole one is.
    failed = await grid.error(
        "db.edit",
        table="cells",
        changes=[
            {"op": "update", "key": [1], "values": {"t": first[1]}, "expect": {"t": first[1]}}
        ],
    )
    assert failed.code == BAD_INPUT
    partial = {"$bytes": len(blob), "hex": blob[:64].hex()}
    failed = await grid.error(
        "db.edit",
        table="cells",
        changes=[{"op": "update", "key": [1], "values": {"b": partial}, "expect": {"b": first[2]}}],
    )
    assert failed.code == BAD_INPUT
    assert db.run("SELECT t, b FROM cells WHERE id = 1") == [(long_text, blob)]

    missing = await grid.error("db.cell", table="cells", key=[99], column="t")
    assert missing.code == NOT_FOUND
    missing = await grid.error("db.cell", table="cells", key=[1], column="nope")
    assert missing.code == NOT_FOUND


# --- Row identity -----------------------------------------------------------------------------


def identity_tables(db: Db) -> dict[str, tuple[str, Any]]:
    """name: (DDL, expected key) — one table for each way a row can be identified."""
    tables: dict[str, tuple[str, Any]] = {
        "by_pk": ("CREATE TABLE {t} (id integer PRIMARY KEY, v text)", ["id"]),
        "by_two": (
            "CREATE TABLE {t} (a integer NOT NULL, b text NOT NULL, v text, PRIMARY KEY (a, b))",
            ["a", "b"],
        ),
    }
    if db.kind == "sqlite":
        tables |= {
            # SQLite lets a rowid table's primary key hold NULLs: its rowid tells rows apart.
            "by_two_nullable": (
                "CREATE TABLE {t} (a integer, b text, v text, PRIMARY KEY (a, b))",
                "rowid",
            ),
            "by_rowid": ("CREATE TABLE {t} (v text)", "rowid"),
            "no_rowid": (
                "CREATE TABLE {t} (code text PRIMARY KEY, v text) WITHOUT ROWID",
                ["code"],
            ),
            # Columns called rowid, _rowid_ and oid hide the rowid: only the index is left.
            "by_unique": (
                "CREATE TABLE {t} (rowid int, _rowid_ int, oid int, code text NOT NULL, v text);"
                " CREATE UNIQUE INDEX by_unique_code ON {t} (code)",
                ["code"],
            ),
            "no_key": ("CREATE TABLE {t} (rowid int, _rowid_ int, oid int, v text)", None),
        }
    else:
        tables |= {
            "by_unique": (
                "CREATE TABLE {t} (code text NOT NULL, v text);"
                " CREATE UNIQUE INDEX by_unique_code ON {t} (code)",
                ["code"],
            ),
            "no_key": ("CREATE TABLE {t} (v text, code text UNIQUE)", None),
        }
    return tables


def row_values(db: Db, name: str, n: int) -> dict[str, Any]:
    values: dict[str, Any] = {"v": f"value {n}"}
    if name == "by_pk":
        values["id"] = n
    elif name.startswith("by_two"):
        values |= {"a": n % 2, "b": f"b{n}"}
    elif name in ("no_rowid", "by_unique"):
        values["code"] = f"c{n}"
    return values


async def test_rows_are_identified_by_their_key_or_not_at_all(db: Db, grid: Grid) -> None:
    tables = identity_tables(db)
    for name, (ddl, _) in tables.items():
        fresh(db, name, ddl)
        for n in (1, 2, 3):
            values = row_values(db, name, n)
            names = ", ".join(db.q(c) for c in values)
            places = ", ".join(["%s"] * len(values))
            db.run(f"INSERT INTO {db.q(name)} ({names}) VALUES ({places})", list(values.values()))
    db.script("DROP VIEW IF EXISTS by_view; CREATE VIEW by_view AS SELECT * FROM by_pk")
    listed = {
        t["name"]: t for t in await grid.call("db.tables") if t["schema"] == (db.schema or "main")
    }

    for name, (_, key) in tables.items():
        assert (listed[name]["key"], listed[name]["editable"]) == (key, key is not None), name
        described = await grid.call("db.describe", table=name)
        assert (described["key"], described["editable"]) == (key, key is not None), name
        page = await grid.rows(name)
        assert (page["key"], page["editable"]) == (key, key is not None), name
        shown = [as_dict(page, r)["v"] for r in page["rows"]]
        assert sorted(shown) == ["value 1", "value 2", "value 3"]
        if key is None:
            assert page["keys"] == [[], [], []], name
            continue
        at = shown.index("value 2")
        row_key = page["keys"][at]
        expect = as_dict(page, page["rows"][at])
        cell = await grid.call("db.cell", table=name, key=row_key, column="v")
        assert cell == {"value": "value 2"}, name
        edited = await grid.call(
            "db.edit",
            table=name,
            changes=[
                {"op": "update", "key": row_key, "values": {"v": "changed"}, "expect": expect}
            ],
        )
        assert as_dict(edited, edited["rows"][0]["row"])["v"] == "changed"
        assert edited["rows"][0]["key"] == row_key
        left = db.run(f"SELECT v FROM {db.q(name)} ORDER BY v")
        assert left == [("changed",), ("value 1",), ("value 3",)], name
        deleted = await grid.call(
            "db.edit",
            table=name,
            changes=[{"op": "delete", "key": row_key, "expect": {"v": "changed"}}],
        )
        assert deleted["rows"] == [None]
        assert db.run(f"SELECT v FROM {db.q(name)} ORDER BY v") == [("value 1",), ("value 3",)]

    view = listed["by_view"]
    assert (view["kind"], view["key"], view["editable"]) == ("view", None, False)
    page = await grid.rows("by_view")
    assert page["editable"] is False and page["keys"] == [[]] * len(page["rows"])


async def test_a_table_without_a_key_or_a_view_is_never_edited(db: Db, grid: Grid) -> None:
    tables = identity_tables(db)
    fresh(db, "no_key", tables["no_key"][0])
    db.run("INSERT INTO no_key (v) VALUES ('same'), ('same'), ('other')")
    fresh(db, "by_pk", tables["by_pk"][0])
    db.run("INSERT INTO by_pk VALUES (1, 'one')")
    db.script("DROP VIEW IF EXISTS by_view; CREATE VIEW by_view AS SELECT * FROM by_pk")
    before = db.run("SELECT v FROM no_key ORDER BY v")
    attempts: list[dict[str, Any]] = [
        {"op": "insert", "values": {"v": "new"}},
        {"op": "update", "key": ["same"], "values": {"v": "x"}, "expect": {"v": "same"}},
        {"op": "delete", "key": ["same"], "expect": {"v": "same"}},
    ]
    for change in attempts:
        failed = await grid.error("db.edit", table="no_key", changes=[change])
        assert failed.code == BAD_INPUT
        assert "not editable" in failed.message and "no primary key" in failed.message
    assert db.run("SELECT v FROM no_key ORDER BY v") == before
    view_changes: list[dict[str, Any]] = [
        {"op": "insert", "values": {"id": 2, "v": "two"}},
        {"op": "update", "key": [1], "values": {"v": "x"}, "expect": {"v": "one"}},
    ]
    for change in view_changes:
        failed = await grid.error("db.edit", table="by_view", changes=[change])
        assert failed.code == BAD_INPUT and "view" in failed.message
    assert db.run("SELECT id, v FROM by_pk") == [(1, "one")]
    failed = await grid.error("db.cell", table="no_key", key=["same"], column="v")
    assert failed.code == BAD_INPUT


# --- Conflicts, triggers, constraints ------------------------------------------------------


async def test_a_row_changed_underneath_fails_the_whole_batch(db: Db, grid: Grid) -> None:
    fresh(db, "people", "CREATE TABLE {t} (id integer PRIMARY KEY, name text, n integer)")
    db.run("INSERT INTO people VALUES (1, 'Ada', 1), (2, 'Grace', 2), (3, 'Linus', 3)")
    page = await grid.rows("people")
    read = {r[0]: as_dict(page, r) for r in page["rows"]}

    db.run("UPDATE people SET n = 20 WHERE id = 2")  # another user, between read and save
    failed = await grid.error(
        "db.edit",
        table="people",
        changes=[
            {"op": "insert", "values": {"id": 4, "name": "Margaret", "n": 4}},
            {"op": "update", "key": [1], "values": {"name": "Ada L."}, "expect": read[1]},
            {"op": "update", "key": [2], "values": {"name": "G. Hopper"}, "expect": read[2]},
        ],
    )
    assert failed.code == CONFLICT
    assert failed.data["change"] == 2 and failed.data["key"] == [2]
    assert failed.data["current"] == [2, "Grace", 20]
    assert [c["name"] for c in failed.data["columns"]] == ["id", "name", "n"]
    assert db.run("SELECT id, name, n FROM people ORDER BY id") == [
        (1, "Ada", 1),
        (2, "Grace", 20),
        (3, "Linus", 3),
    ], "nothing of the batch was applied"

    db.run("DELETE FROM people WHERE id = 3")
    for change in (
        {"op": "update", "key": [3], "values": {"name": "L. T."}, "expect": read[3]},
        {"op": "delete", "key": [3], "expect": read[3]},
    ):
        failed = await grid.error(
            "db.edit",
            table="people",
            changes=[{"op": "insert", "values": {"id": 5, "name": "Edsger"}}, change],
        )
        assert failed.code == CONFLICT
        assert (failed.data["change"], failed.data["key"], failed.data["current"]) == (1, [3], None)
    assert db.run("SELECT id FROM people ORDER BY id") == [(1,), (2,)]

    # Only the columns it expects are compared: a change elsewhere in the row is no conflict.
    saved = await grid.call(
        "db.edit",
        table="people",
        changes=[
            {
                "op": "update",
                "key": [2],
                "values": {"name": "Grace H."},
                "expect": {"name": "Grace"},
            }
        ],
    )
    assert saved["rows"] == [{"key": [2], "row": [2, "Grace H.", 20]}]


async def test_a_saved_row_is_read_back_after_defaults_and_triggers(db: Db, grid: Grid) -> None:
    if db.kind == "postgres":
        db.script(
            f"""
            DROP TABLE IF EXISTS trig;
            CREATE TABLE trig (id serial PRIMARY KEY, name text, shout text,
                               made text DEFAULT 'by default', n integer DEFAULT 7);
            CREATE OR REPLACE FUNCTION {db.schema}.trig_shout() RETURNS trigger
                LANGUAGE plpgsql AS $$
                BEGIN NEW.shout := upper(NEW.name) || '!'; RETURN NEW; END $$;
            CREATE TRIGGER trig_shout BEFORE INSERT OR UPDATE ON trig
                FOR EACH ROW EXECUTE FUNCTION {db.schema}.trig_shout();
            """
        )
    else:
        db.script(
            """
            DROP TABLE IF EXISTS trig;
            CREATE TABLE trig (id INTEGER PRIMARY KEY, name TEXT, shout TEXT,
                               made TEXT DEFAULT 'by default', n INTEGER DEFAULT 7);
            CREATE TRIGGER trig_insert AFTER INSERT ON trig BEGIN
                UPDATE trig SET shout = upper(NEW.name) || '!' WHERE id = NEW.id; END;
            CREATE TRIGGER trig_update AFTER UPDATE OF name ON trig BEGIN
                UPDATE trig SET shout = upper(NEW.name) || '!' WHERE id = NEW.id; END;
            """
        )
    inserted = await grid.call(
        "db.edit", table="trig", changes=[{"op": "insert", "values": {"name": "ada"}}]
    )
    assert inserted["rows"] == [{"key": [1], "row": [1, "ada", "ADA!", "by default", 7]}]
    updated = await grid.call(
        "db.edit",
        table="trig",
        changes=[
            {"op": "update", "key": [1], "values": {"name": "bob"}, "expect": {"name": "ada"}}
        ],
    )
    assert updated["rows"] == [{"key": [1], "row": [1, "bob", "BOB!", "by default", 7]}]
    assert db.run("SELECT id, name, shout, made, n FROM trig") == [
        (1, "bob", "BOB!", "by default", 7)
    ]


CONSTRAINED = """
CREATE TABLE parent (id integer PRIMARY KEY);
CREATE TABLE child (
    id integer PRIMARY KEY,
    email text CONSTRAINT child_email_unique UNIQUE,
    name text NOT NULL,
    age integer CONSTRAINT child_age_positive CHECK (age >= 0),
    parent_id integer CONSTRAINT child_parent_fk REFERENCES parent (id)
);
INSERT INTO parent VALUES (1);
INSERT INTO child VALUES (1, 'ada@example.org', 'Ada', 36, 1);
"""


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"id": 2, "email": "ada@example.org", "name": "Eve"}, ["child_email_unique", "email"]),
        ({"id": 2, "email": "eve@example.org", "name": None}, ["name"]),
        ({"id": 2, "name": "Eve", "age": -1}, ["child_age_positive"]),
        ({"id": 2, "name": "Eve", "parent_id": 99}, ["child_parent_fk", "parent_id"]),
    ],
    ids=["unique", "not-null", "check", "foreign-key"],
)
async def test_a_violated_constraint_is_named_and_nothing_is_saved(
    db: Db, grid: Grid, values: dict[str, Any], words: list[str]
) -> None:
    """PostgreSQL names the constraint and its column; SQLite names the column of a UNIQUE or
    NOT NULL constraint, a CHECK constraint by its name, and a foreign key not at all."""
    db.script("DROP TABLE IF EXISTS child; DROP TABLE IF EXISTS parent;" + CONSTRAINED)
    failed = await grid.error(
        "db.edit",
        table="child",
        changes=[
            {"op": "insert", "values": {"id": 3, "name": "Valid"}},
            {"op": "insert", "values": values},
        ],
    )
    if db.kind == "sqlite":
        words = {
            "child_email_unique": ["UNIQUE", "email"],
            "name": ["NOT NULL", "name"],
            "child_age_positive": ["CHECK", "child_age_positive"],
            "child_parent_fk": ["FOREIGN KEY"],
        }[words[0]]
    assert failed.code == CONFLICT, failed.message
    for word in words:
        assert word in failed.message
    assert db.run("SELECT id FROM child ORDER BY id") == [(1,)], "nothing of the batch was saved"


# --- Names ----------------------------------------------------------------------------------

HOSTILE_TABLE = 'x"; DROP TABLE y; --'
HOSTILE_COLUMN = 'a b"c'
PERCENT_COLUMN = "ü %s %(x)s"


async def test_names_with_quotes_spaces_and_sql_are_only_names(db: Db, grid: Grid) -> None:
    t, a, p = db.q(HOSTILE_TABLE), db.q(HOSTILE_COLUMN), db.q(PERCENT_COLUMN)
    db.script(
        f"DROP TABLE IF EXISTS y; CREATE TABLE y (id integer); INSERT INTO y VALUES (1);"
        f"DROP TABLE IF EXISTS {t};"
        f"CREATE TABLE {t} (id integer PRIMARY KEY, {a} text, {p} integer);"
        f"CREATE INDEX {db.q('i; DROP TABLE y')} ON {t} ({a})"
    )
    db.run(f"INSERT INTO {t} VALUES (1, 'one', 10), (2, 'two', 20), (3, NULL, 30)")

    listed = [x for x in await grid.call("db.tables") if x["name"] == HOSTILE_TABLE]
    assert [(x["key"], x["editable"]) for x in listed] == [(["id"], True)]
    described = await grid.call("db.describe", table=HOSTILE_TABLE)
    assert [c["name"] for c in described["columns"]] == ["id", HOSTILE_COLUMN, PERCENT_COLUMN]
    assert [i["columns"] for i in described["indexes"] if not i["primary"]] == [[HOSTILE_COLUMN]]

    view = {
        "sort": [{"column": HOSTILE_COLUMN, "desc": True}, {"column": PERCENT_COLUMN}],
        "filters": [
            {"column": HOSTILE_COLUMN, "op": "like", "value": "%o%"},
            {"column": PERCENT_COLUMN, "op": ">=", "value": 10},
        ],
    }
    page = await grid.rows(HOSTILE_TABLE, limit=1, **view)
    assert page["rows"] == [[2, "two", 20]]
    page = await grid.rows(HOSTILE_TABLE, limit=1, after=page["next"], **view)
    assert page["rows"] == [[1, "one", 10]] and page["next"] is None
    page = await grid.rows(HOSTILE_TABLE, limit=1, before=page["prev"], **view)
    assert page["rows"] == [[2, "two", 20]]
    counted = await grid.call(
        "db.count", table=HOSTILE_TABLE, filters=[{"column": HOSTILE_COLUMN, "op": "is-null"}]
    )
    assert counted == {"value": 1, "exact": True}
    cell = await grid.call("db.cell", table=HOSTILE_TABLE, key=[1], column=HOSTILE_COLUMN)
    assert cell == {"value": "one"}

    edited = await grid.call(
        "db.edit",
        table=HOSTILE_TABLE,
        changes=[
            {
                "op": "insert",
                "values": {"id": 4, HOSTILE_COLUMN: "'); DROP TABLE y; --", PERCENT_COLUMN: 40},
            },
            {
                "op": "update",
                "key": [1],
                "values": {HOSTILE_COLUMN: "uno"},
                "expect": {HOSTILE_COLUMN: "one"},
            },
            {"op": "delete", "key": [3], "expect": {PERCENT_COLUMN: 30}},
        ],
    )
    assert edited["rows"][0] == {"key": [4], "row": [4, "'); DROP TABLE y; --", 40]}
    assert db.run(f"SELECT id, {a}, {p} FROM {t} ORDER BY id") == [
        (1, "uno", 10),
        (2, "two", 20),
        (4, "'); DROP TABLE y; --", 40),
    ]
    for wrong in ("y; --", 'x"', 'X"; DROP TABLE y; --'):
        missing = await grid.error("db.rows", table=wrong)
        assert missing.code == NOT_FOUND
    missing = await grid.error(
        "db.rows", table=HOSTILE_TABLE, sort=[{"column": "id; DROP TABLE y"}]
    )
    assert missing.code == NOT_FOUND
    assert db.run("SELECT id FROM y") == [(1,)], "table y is still there"


# --- The SQL console ------------------------------------------------------------------------


async def test_the_console_runs_one_statement_capped_and_bound(db: Db, grid: Grid) -> None:
    for sql in ("select 1; select 2", "SELECT 1;SELECT 2;", "select 1; drop table y"):
        failed = await grid.error("db.query", sql=sql)
        assert failed.code == BAD_INPUT, sql
    fifty = (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 50)"
        " SELECT x FROM c"
    )
    capped = await grid.call("db.query", sql=fifty, limit=10)
    assert capped["rows"] == [[x] for x in range(1, 11)]
    assert (capped["truncated"], capped["rowCount"]) == (True, 10)
    whole = await grid.call("db.query", sql=fifty, limit=50)
    assert (len(whole["rows"]), whole["truncated"], whole["rowCount"]) == (50, False, 50)
    assert [c["name"] for c in whole["columns"]] == ["x"]

    fresh(db, "console", "CREATE TABLE {t} (id integer PRIMARY KEY, v text)")
    table = db.t("console")
    written = await grid.call(
        "db.query", sql=f"INSERT INTO {table} VALUES (1, 'a'), (2, 'b'), (3, 'c')"
    )
    assert (written["rowCount"], written["rows"]) == (3, [])
    changed = await grid.call("db.query", sql=f"UPDATE {table} SET v = 'z' WHERE id >= 2")
    assert changed["rowCount"] == 2
    assert db.run("SELECT v FROM console ORDER BY id") == [("a",), ("z",), ("z",)]

    hostile = "x'); DROP TABLE console; --"
    cast = "" if db.kind == "sqlite" else "::text"
    bound = await grid.call(
        "db.query",
        sql=f"SELECT {db.ph}{cast} AS s, v FROM {table} WHERE id = {db.ph}",
        params=[hostile, 1],
    )
    assert bound["rows"] == [[hostile, "a"]]
    assert db.run("SELECT count(*) FROM console") == [(3,)]


async def test_the_console_sends_values_as_exactly_as_the_grid(db: Db, grid: Grid) -> None:
    if db.kind == "postgres":
        sql = (
            "SELECT '{\"a\":10.00}'::jsonb AS j, '{\"a\":10.00}'::json AS js, 10.00::numeric AS n,"
            " 'NaN'::float8 AS f, 9223372036854775807::bigint AS big, '\\x00ff'::bytea AS b,"
            " ''::text AS e, NULL::text AS z, ARRAY[1, NULL]::int[] AS a,"
            " '2024-01-02 03:04:05+05:30'::timestamptz AS ts"
        )
    else:
        sql = (
            "SELECT '{\"a\":10.00}' AS j, '{\"a\":10.00}' AS js, '10.00' AS n, 1e999 AS f,"
            " 9223372036854775807 AS big, x'00ff' AS b, '' AS e, NULL AS z, 1 AS a,"
            " '2024-01-02T03:04:05+05:30' AS ts"
        )
    answer = await grid.call("db.query", sql=sql)
    row = dict(zip([c["name"] for c in answer["columns"]], answer["rows"][0], strict=True))
    assert row["j"] == ('{"a": 10.00}' if db.kind == "postgres" else '{"a":10.00}')
    assert row["js"] == '{"a":10.00}'
    assert row["n"] == "10.00"
    assert row["f"] == ("NaN" if db.kind == "postgres" else "Infinity")
    assert row["big"] == str(INT8_MAX)
    assert row["b"] == {"$bytes": 2, "hex": "00ff"}
    assert (row["e"], row["z"]) == ("", None)
    assert row["a"] == ([1, None] if db.kind == "postgres" else 1)
    moment = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=5.5)))
    assert datetime.fromisoformat(row["ts"]) == moment


async def test_in_prod_the_grid_reads_and_never_writes(db: Db, isolated_env: Path) -> None:
    fresh(db, "prod", "CREATE TABLE {t} (id integer PRIMARY KEY, v text)")
    db.run("INSERT INTO prod VALUES (1, 'a')")
    socket = isolated_env / "p.sock"
    settings = {"env": "PROD", "db.PROD.url": db.url, "db.probe_seconds": 600}
    async with running_daemon(socket, isolated_env / "prod-state", **settings):
        async with await RpcClient.connect(socket) as client:
            grid = Grid(client, db, socket)
            page = await grid.rows("prod")
            assert (page["rows"], page["editable"]) == ([[1, "a"]], False)
            change = {"op": "update", "key": [1], "values": {"v": "b"}, "expect": {"v": "a"}}
            failed = await grid.error("db.edit", table="prod", changes=[change])
            assert failed.code == READ_ONLY
            failed = await grid.error("db.query", sql=f"UPDATE {db.t('prod')} SET v = 'b'")
            assert failed.code == READ_ONLY
            assert (await grid.call("db.query", sql=f"SELECT v FROM {db.t('prod')}"))["rows"] == [
                ["a"]
            ]
    assert db.run("SELECT v FROM prod") == [("a",)]
