"""The grid's reads on the event loop, in this process: SQLite's (``GridService._inline``) on a
real file, where a read that overruns its budget is finished on a worker thread and the
connection it ran on is closed rather than pooled again (``tests/store/test_sqlite_budget.py``
says why); and PostgreSQL's through psycopg's async driver (``GridService._page_on_loop``)
on the machine's server: the same rows, in PROD too, stopped by the daemon stopping and by
the deadline, and a failed read told by the thread's way."""

from __future__ import annotations

import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import anyio
import psycopg
import pytest

from simpleaided.domain.errors import Cancelled, InvalidInput, LimitExceeded
from simpleaided.services.database import grid as grid_module
from simpleaided.services.database.connection import DatabaseService, DatabaseSettings
from simpleaided.services.database.grid import GridService
from tests.support.pgschema import scratch_schema

ROWS = 200_000


@asynccontextmanager
async def grid_service(url: str, env: str = "DEV") -> AsyncIterator[GridService]:
    """The grid on ``url``'s database, running, closed after the block."""
    database = DatabaseService(
        DatabaseSettings(
            env=env,  # type: ignore[arg-type]  # tests pass the literal profile names
            url=url,
            password=None,
            default_workspace=None,
            probe_seconds=60.0,
            timeout_seconds=5.0,
        ),
        resolve_secret=lambda reference: reference,
        on_change=lambda: None,
    )
    service = GridService(database)
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(service.run)
            yield service
            tg.cancel_scope.cancel()
    finally:
        await service.aclose()
        await database.aclose()


@pytest.fixture
async def grid(tmp_path: Path) -> AsyncIterator[GridService]:
    path = tmp_path / "inline.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        db.executemany("INSERT INTO t VALUES (?, ?)", ((i, f"value {i}") for i in range(ROWS)))
    db.close()
    async with grid_service(str(path)) as service:
        yield service


async def test_a_read_over_its_budget_on_the_loop_is_finished_on_a_thread(
    grid: GridService,
) -> None:
    first = await grid.rows(None, "t", limit=5)  # the table's first read: timed on a thread
    assert [row[0] for row in first["rows"]] == [0, 1, 2, 3, 4]
    again = await grid.rows(None, "t", limit=5)  # quick: read on the loop
    assert again["rows"] == first["rows"]
    assert len(grid._idle) == 1
    (_, loop_session), *_ = grid._idle
    # A filter that matches nothing scans every row: far over the 2 ms budget on the loop.
    found = await grid.rows(None, "t", filters=[("v", "like", "%nowhere%")], limit=5)
    assert found["rows"] == []
    assert found["count"] == {"value": 0, "exact": True}
    if sys.version_info < (3, 12):  # see OverBudget.slows_session
        assert all(session is not loop_session for _, session in grid._idle)
        with pytest.raises(sqlite3.ProgrammingError, match="closed"):
            loop_session._conn.execute("SELECT 1")  # type: ignore[attr-defined]
    else:
        assert [session for _, session in grid._idle] == [loop_session]
    # Reads go on, on the new connection.
    assert (await grid.rows(None, "t", limit=5))["rows"] == first["rows"]


# -- PostgreSQL, on the loop ----------------------------------------------------------------

PG_ROWS = 250


@pytest.fixture
def pg_schema(postgres: str) -> Iterator[str]:
    """A schema of its own, with ``t``: a key and a text."""
    with scratch_schema(
        postgres,
        "grid_loop",
        "CREATE TABLE {schema}.t (id integer PRIMARY KEY, v text NOT NULL)",
        f"INSERT INTO {{schema}}.t SELECT i, 'value ' || i FROM generate_series(1, {PG_ROWS}) i",
    ) as schema:
        yield schema


async def walk(service: GridService, schema: str) -> list[int]:
    """Every id of ``t``, page by page (10 rows a page)."""
    seen: list[int] = []
    after = None
    while True:
        page = await service.rows(schema, "t", after=after, limit=10)
        seen += [row[0] for row in page["rows"]]
        after = page["next"]
        if after is None:
            return seen


@pytest.mark.parametrize("env", ["DEV", "PROD"])
async def test_postgres_pages_after_the_first_are_read_on_the_loop(
    postgres: str, pg_schema: str, env: str
) -> None:
    async with grid_service(postgres, env) as service:
        assert await walk(service, pg_schema) == list(range(1, PG_ROWS + 1))
        # The first page read the layout on a thread; the others went on the loop.
        assert len(service._loop_idle) == 1
        backward = await service.rows(pg_schema, "t", before=None, limit=10)
        assert [row[0] for row in backward["rows"]] == list(range(1, 11))


@contextmanager
def table_locked(postgres: str, schema: str) -> Iterator[None]:
    """``t`` locked by another connection: every read of it waits until the block ends."""
    with psycopg.connect(postgres) as conn:
        conn.execute(f"LOCK TABLE {schema}.t IN ACCESS EXCLUSIVE MODE")
        try:
            yield
        finally:
            conn.rollback()


async def test_a_page_on_the_loop_stops_when_the_daemon_stops(
    postgres: str, pg_schema: str
) -> None:
    async with grid_service(postgres) as service:
        await service.rows(pg_schema, "t", limit=1)  # the layout, on a thread
        failed: list[BaseException] = []

        async def read() -> None:
            try:
                await service.rows(pg_schema, "t", limit=10)
            except Cancelled as exc:
                failed.append(exc)

        with table_locked(postgres, pg_schema):
            async with anyio.create_task_group() as tg:
                tg.start_soon(read)
                await anyio.sleep(0.3)
                assert service._calls  # waiting for the lock, on the loop
                start = time.monotonic()
                service.stop_all()
            assert failed and time.monotonic() - start < 2.0
        assert not service._loop_idle  # its session closed, never pooled again


async def test_a_page_on_the_loop_stops_at_its_deadline_on_the_server_too(
    postgres: str, pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # psycopg, cancelled under way, drops its connection without a word to the server, which
    # goes on running the statement: the grid stops it on the server.
    async with grid_service(postgres) as service:
        await service.rows(pg_schema, "t", limit=1)  # the layout, on a thread
        monkeypatch.setattr(grid_module, "GRID_SECONDS", 0.3)
        with table_locked(postgres, pg_schema):
            start = time.monotonic()
            with pytest.raises(LimitExceeded, match="too long"):
                await service.rows(pg_schema, "t", limit=10)
            assert time.monotonic() - start < 2.0
            with psycopg.connect(postgres, autocommit=True) as conn:
                waiting = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE query LIKE %s AND state = 'active'",
                    (f"%{pg_schema}%",),
                ).fetchone()
            assert waiting == (0,)
        assert not service._loop_idle


async def test_a_statement_that_fails_on_the_loop_is_the_answer_and_its_session_stays(
    postgres: str, pg_schema: str
) -> None:
    async with grid_service(postgres) as service:
        first = await service.rows(pg_schema, "t", limit=5)
        assert [c["name"] for c in first["columns"]] == ["id", "v"]
        await service.rows(pg_schema, "t", limit=5)  # on the loop: its session now pooled
        ((_, session),) = service._loop_idle
        with psycopg.connect(postgres, autocommit=True) as conn:
            conn.execute(f"ALTER TABLE {pg_schema}.t DROP COLUMN v")
        # The cached layout still names v: the error is the answer, as on a thread (never
        # run twice), and the session, which works, is kept.
        with pytest.raises(InvalidInput, match='column "v" does not exist'):
            await service.rows(pg_schema, "t", limit=5)
        assert [s for _, s in service._loop_idle] == [session]
        # The next page reads the layout again.
        page = await service.rows(pg_schema, "t", limit=5)
        assert [c["name"] for c in page["columns"]] == ["id"]
        assert [row[0] for row in page["rows"]] == [1, 2, 3, 4, 5]


async def test_the_grid_holds_at_most_its_connections_of_both_kinds(
    postgres: str, pg_schema: str
) -> None:
    async with grid_service(postgres) as service:

        async def count() -> None:
            await service.count(pg_schema, "t", [])

        await service.rows(pg_schema, "t", limit=5)
        await service.rows(pg_schema, "t", limit=5)  # a session of the loop's
        async with anyio.create_task_group() as tg:  # as many calls as sessions, on threads
            for _ in range(grid_module.MAX_SESSIONS):
                tg.start_soon(count)
        async with anyio.create_task_group() as tg:
            for _ in range(grid_module.MAX_SESSIONS):
                tg.start_soon(service.rows, pg_schema, "t")
        held = len(service._idle) + len(service._loop_idle)
        assert held <= grid_module.MAX_SESSIONS
        with psycopg.connect(postgres, autocommit=True) as conn:
            backends = conn.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE application_name = 'simpleaided' AND datname = current_database()"
            ).fetchone()
        assert backends is not None
        assert backends[0] <= grid_module.MAX_SESSIONS + 1  # and the probe's, if it connected


async def test_the_loop_sessions_close_when_the_configuration_names_another_database(
    postgres: str, pg_schema: str, tmp_path: Path
) -> None:
    async with grid_service(postgres) as service:
        await service.rows(pg_schema, "t", limit=5)
        await service.rows(pg_schema, "t", limit=5)
        ((_, session),) = service._loop_idle
        path = tmp_path / "other.sqlite3"
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE s (id INTEGER PRIMARY KEY)")
        db.close()
        await service._database.reconfigure(
            DatabaseSettings(
                env="DEV",
                url=str(path),
                password=None,
                default_workspace=None,
                probe_seconds=60.0,
                timeout_seconds=5.0,
            )
        )
        assert (await service.rows(None, "s", limit=5))["rows"] == []
        assert service._loop_idle == [] and session.broken  # closed
