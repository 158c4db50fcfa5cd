"""Blocking SQL drivers: the session both drivers offer (SQLite in ``sqlite.py``, PostgreSQL in
``postgres.py``), each translating its driver's exceptions into the project's errors; what a
database holds (tables, row identity, descriptions) is read in ``catalog.py``.

A session blocks; the database service runs it on a worker thread and wakes it with
``abort`` when it stops waiting.
"""

from __future__ import annotations

from typing import Any, Protocol

from simpleaided.domain.errors import BackendUnavailable
from simpleaided.domain.vocabulary import DbKind


class Lost(BackendUnavailable):
    """The session's connection is gone; the caller drops it (and may connect anew)."""


class Session(Protocol):
    """One open database connection; used by one worker thread at a time.

    ``check`` raises ``Lost`` when the session is no longer to be trusted; ``execute`` raises
    ``Lost`` for a broken connection, ``ReadOnly`` for a write the database refused, and
    ``InvalidInput`` for any other database error.
    """

    kind: DbKind

    def check(self) -> tuple[float, bool]:
        """``SELECT 1`` (its latency in ms) and whether the session is read-only."""
        ...

    def execute(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """Run one statement; its rows (none for a statement that returns none)."""
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
