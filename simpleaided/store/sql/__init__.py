"""Blocking SQL drivers: the session both drivers offer (SQLite in ``sqlite.py``, PostgreSQL in
``postgres.py``), each translating its driver's exceptions into the project's errors; what a
database holds (tables, row identity, descriptions) is read in ``catalog.py``.

A session blocks; the database service runs it on a worker thread and wakes it with
``abort`` when it stops waiting.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from simpleaided.domain.errors import BackendUnavailable
from simpleaided.domain.vocabulary import DbKind


class Lost(BackendUnavailable):
    """The session's connection is gone; the caller drops it (and may connect anew)."""


class OverBudget(BackendUnavailable):
    """A statement run within a budget (``Session.budget``) overran it, or would have waited
    for a lock; it changed nothing: run it again without one. ``slows_session``: the session
    works, but is better closed than kept (see ``sqlite.SqliteSession.execute``)."""

    def __init__(self, message: str, *, slows_session: bool = False) -> None:
        super().__init__(message)
        self.slows_session = slows_session


@dataclass(frozen=True)
class QueryResult:
    """What one statement of the SQL console gave: its columns (name, type as the database
    names it, ``""`` when it does not say), its first rows, the rows it returned or changed
    (``-1``: the database did not say) and whether more rows were left unread."""

    columns: list[tuple[str, str]]
    rows: list[tuple[Any, ...]]
    row_count: int
    truncated: bool


READ_ONLY_SESSION = "the database is read-only in PROD: nothing was changed"
TRANSACTION_CONTROL = (
    "transaction control is not available here: each statement runs on its own "
    "(and commits, in DEV)"
)


class Session(Protocol):
    """One open database connection; used by one worker thread at a time.

    ``check`` raises ``Lost`` when the session is no longer to be trusted; ``execute`` raises
    ``Lost`` for a broken connection, ``ReadOnly`` for a write the database refused,
    ``Conflict`` for a constraint violated (its words name the constraint or the column),
    and ``InvalidInput`` for any other database error.
    """

    kind: DbKind

    def check(self) -> tuple[float, bool]:
        """``SELECT 1`` (its latency in ms) and whether the session is read-only."""
        ...

    def execute(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """Run one statement; its rows (none for a statement that returns none)."""
        ...

    def risks(self) -> list[str]:
        """What a read-only session's role could still do beyond reading (write server files,
        run programs), in words, as found when it connected; ``[]`` when none or not PROD."""
        ...

    def query(self, sql: str, params: tuple[Any, ...], limit: int) -> QueryResult:
        """Run one statement of the user's (the SQL console), reading at most ``limit`` rows of
        its result from the database; more than one statement is ``InvalidInput``, and so is
        a statement that leaves a transaction open (rolled back first)."""
        ...

    def transaction(self) -> AbstractContextManager[None]:
        """A transaction around the block: committed when it ends, rolled back if it raises."""
        ...

    def budget(self, seconds: float) -> AbstractContextManager[Callable[[], bool]] | None:
        """For a driver that works in this process (SQLite), a block within which statements
        stop (failing) once ``seconds`` of work are spent, and a locked database fails at
        once; it yields a function saying whether the budget stopped one. ``None`` for a
        driver that waits on the network (PostgreSQL): its statements need a thread."""
        ...

    def cancel(self) -> None:
        """Stop the statement running now, keeping the connection (called from another
        thread); the statement fails in its thread."""
        ...

    def quote_identifier(self, name: str) -> str:
        """``name`` as a quoted SQL identifier, by the driver's own means; ``InvalidInput`` for a
        name no identifier can hold (a NUL character)."""
        ...

    def abort(self) -> None:
        """Wake a thread stuck in this session (called from another thread)."""
        ...

    def close(self) -> None:
        """Close the connection; never raises."""
        ...
