"""``SqliteSession.budget``: statements stopped from within once their time is spent, a locked
file failing at once instead of waiting, and the session as it was afterwards (its busy
timeout, its authorizer) — in DEV and in PROD, on real SQLite files."""

from __future__ import annotations

import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from simpleaided.domain.errors import ReadOnly
from simpleaided.store.sql import OverBudget
from simpleaided.store.sql.sqlite import SqliteSession, open_sqlite

ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
SLOW = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300000)"
    " SELECT count(*) FROM c"
)


@pytest.fixture(params=["DEV", "PROD"])
def session(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqliteSession]:
    path = tmp_path / "budget.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        db.execute("INSERT INTO t VALUES (1, 'a')")
    db.close()
    opened = open_sqlite(str(path), read_only=request.param == "PROD", in_store=False, timeout=3)
    try:
        yield opened
    finally:
        opened.close()


def busy_timeout(session: SqliteSession) -> int:
    """Read past the session's authorizer (PROD's refuses even reading this pragma)."""
    authorizer = session._authorizer
    if authorizer is not None:
        authorizer.ours = True
    try:
        return int(session._conn.execute("PRAGMA busy_timeout").fetchone()[0])
    finally:
        if authorizer is not None:
            authorizer.ours = False


def test_a_budget_lets_quick_work_through_and_leaves_the_session_as_it_was(
    session: SqliteSession,
) -> None:
    before = busy_timeout(session)
    assert before == 3000
    budget = session.budget(0.5)
    assert budget is not None
    with budget as spent:
        assert session.execute("SELECT v FROM t", ()) == [("a",)]
        assert busy_timeout(session) == 0  # a lock fails at once within a budget
    assert not spent()
    # Set back before the next statement outside a budget (not at once: the next page on
    # the loop would only set it to 0 again).
    assert session.execute("SELECT v FROM t", ()) == [("a",)]
    assert busy_timeout(session) == before
    # The session's own setting passed the authorizer; a client's still does not (PROD).
    if session._read_only_mode:
        with pytest.raises(ReadOnly):
            session.execute("PRAGMA busy_timeout = 1", ())


def test_a_budget_stops_a_long_statement_and_only_within_it(session: SqliteSession) -> None:
    budget = session.budget(0.02)
    assert budget is not None
    start = time.monotonic()
    with budget as spent, pytest.raises(OverBudget):
        session.execute(ENDLESS, ())
    assert spent() and time.monotonic() - start < 1.0
    # The session goes on, and a statement longer than the budget runs whole outside it.
    assert session.execute("SELECT 1", ()) == [(1,)]
    start = time.monotonic()
    assert session.execute(SLOW, ()) == [(300000,)]
    assert time.monotonic() - start > 0.02


def test_a_locked_file_fails_at_once_within_a_budget(
    session: SqliteSession, tmp_path: Path
) -> None:
    writer = sqlite3.connect(
        tmp_path / "budget.sqlite3", isolation_level=None, check_same_thread=False
    )
    try:
        writer.execute("BEGIN EXCLUSIVE")
        budget = session.budget(1.0)
        assert budget is not None
        start = time.monotonic()
        with budget, pytest.raises(OverBudget):
            session.execute("SELECT v FROM t", ())
        assert time.monotonic() - start < 0.5  # not the 3 s busy timeout
        # Outside a budget the lock is waited for again: released 0.3 s later, the read
        # then succeeds instead of failing at once.
        releaser = threading.Timer(0.3, writer.rollback)
        releaser.start()
        start = time.monotonic()
        assert session.execute("SELECT v FROM t", ()) == [("a",)]
        assert time.monotonic() - start >= 0.25
        releaser.join()
    finally:
        writer.close()
    assert session.execute("SELECT v FROM t", ()) == [("a",)]


def test_a_statement_the_budget_stopped_is_prepared_again_on_python_3_11(
    tmp_path: Path,
) -> None:
    """Why ``OverBudget.slows_session`` exists: on Python 3.11 a statement the budget stopped
    half-way is prepared again at every later run on its connection (each prepare calls the
    authorizer, counted here), so a page of the grid's long select list took twice as long
    for as long as the connection lived, and the grid closes such a connection. Python 3.12's
    sqlite3 reuses the statement, and the connection is kept."""
    path = tmp_path / "prepared.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        db.executemany("INSERT INTO t VALUES (?, ?)", ((i, str(i)) for i in range(50_000)))
    db.close()
    session = open_sqlite(str(path), read_only=False, in_store=False, timeout=3)
    try:
        prepares = 0
        allow = session._authorizer
        assert allow is not None

        def counting(*args: object) -> int:
            nonlocal prepares
            prepares += 1
            return allow(*args)  # type: ignore[arg-type]

        session._conn.set_authorizer(counting)
        sql = "SELECT v FROM t WHERE id > ? ORDER BY id LIMIT ?"

        def prepares_in(runs: int, limit: int = 10) -> int:
            before = prepares
            for _ in range(runs):
                session.execute(sql, (5, limit))
            return prepares - before

        prepares_in(1)
        assert prepares_in(5) == 0  # prepared once, then reused
        budget = session.budget(0.0)  # spent at its first look at the clock
        assert budget is not None
        with budget, pytest.raises(OverBudget) as stopped:
            session.execute(sql, (5, 50_000))
        quirk = sys.version_info < (3, 12)
        assert stopped.value.slows_session is quirk
        if quirk:
            assert prepares_in(5) >= 5  # prepared again every time
        else:
            assert prepares_in(5) == 0
    finally:
        session.close()


def test_a_locked_file_never_counts_as_slowing_the_session(
    session: SqliteSession, tmp_path: Path
) -> None:
    writer = sqlite3.connect(tmp_path / "budget.sqlite3", isolation_level=None)
    try:
        writer.execute("BEGIN EXCLUSIVE")
        budget = session.budget(1.0)
        assert budget is not None
        with budget, pytest.raises(OverBudget) as waited:
            session.execute("SELECT v FROM t", ())
        assert not waited.value.slows_session  # nothing was stopped half-way
    finally:
        writer.close()
