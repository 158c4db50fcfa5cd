"""The grid's SQLite reads on the event loop (``GridService._inline``), in this process on a
real file: a read that overruns its budget there is finished on a worker thread, and on
Python 3.11 the connection it ran on is closed rather than pooled again
(``tests/store/test_sqlite_budget.py`` says why)."""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from simpleaided.services.database.connection import DatabaseService, DatabaseSettings
from simpleaided.services.database.grid import GridService

ROWS = 200_000


@pytest.fixture
async def grid(tmp_path: Path) -> AsyncIterator[GridService]:
    path = tmp_path / "inline.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        db.executemany("INSERT INTO t VALUES (?, ?)", ((i, f"value {i}") for i in range(ROWS)))
    db.close()
    database = DatabaseService(
        DatabaseSettings(
            env="DEV",
            url=str(path),
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
