"""The database grid (README: The grid): browsing, editing and querying the profile's database,
on sessions of its own so a long query never stalls the probe's connection or other clients.

Sessions come from a small pool (``MAX_SESSIONS``), opened the way the probe opens its own
(``DatabaseService.opener``) and closed when the database settings change. Every call runs on
a worker thread under a deadline; at the deadline, on ``db.cancel`` or when its client leaves,
the statement is cancelled through the driver (SQLite's ``interrupt``, a PostgreSQL protocol
cancel), and a session that was cancelled is closed rather than reused (a late cancel must
not hit the next statement). A statement that ignores the cancel loses its connection after
``CANCEL_GRACE_SECONDS``.

What a page's SQL says is decided by the pure core (``domain.grid``); the catalogue
(``store.sql.catalog``) checks every name. Cells are cut in SQL (``cellBytes``) so a
multi-megabyte value never crosses the driver for a page.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar, cast

import anyio
from anyio.abc import TaskGroup, TaskStatus

from simpleaided.domain import grid, sqlguard
from simpleaided.domain.errors import (
    BackendUnavailable,
    Cancelled,
    Conflict,
    InvalidInput,
    LimitExceeded,
    NotFound,
    ReadOnly,
    SimpleaideError,
)
from simpleaided.domain.grid import Filter, PageQuery, SortKey, View
from simpleaided.domain.vocabulary import DbKind
from simpleaided.services.database.cells import PageTerms, Reader, display_cell
from simpleaided.services.database.connection import DatabaseService
from simpleaided.services.database.worker import Call, run_call
from simpleaided.store.sql import READ_ONLY_SESSION, Lost, OverBudget, Session, catalog

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_SESSIONS = 4
MAX_QUERIES = MAX_SESSIONS - 1  # console queries at once: one session is always left for pages
GRID_SECONDS = 30.0  # a page, a cell, a description or an edit; beyond it, cancelled
COUNT_SECONDS = 1.0  # an exact count's budget; then the estimate is the answer
COUNT_CAP = 10_000_000  # rows counted at most (beyond, "at least" this, as an estimate)
CANCEL_GRACE_SECONDS = 2.0
_VIEWS_KEPT = 64  # per table: the select lists and view digests kept
_TICK_SECONDS = 1.0  # while calls come, ``run`` looks at least this often (see ``run``)
INLINE_SECONDS = 0.002  # a read's work on the event loop before it moves to a thread
LARGE_VALUE = 1 << 20  # a value this large (bytes, or characters) in a page...
LARGE_SECONDS = 600.0  # ...keeps its table's reads off the event loop this long
LAYOUT_SECONDS = 5.0  # how long a table's columns and key are trusted without reading again
QUERY_CELL_CHARS = 64 * 1024  # a console result's text cell beyond this is cut
CONFLICT_CELL_CHARS = 64 * 1024

# PostgreSQL types whose values have no order (no btree operator class): never in the
# fallback order of a table without a key.
_PG_UNORDERED = ("json", "xml", "point", "line", "lseg", "box", "path", "polygon", "circle")

_PLAIN_READS = frozenset({"SELECT", "VALUES", "TABLE", "SHOW"})  # WITH may hold a write

Gone = Callable[[], Awaitable[None]]
"""Returns when the client that asked has gone (its connection's ``wait_gone``)."""


# --- Tables as the grid sees them -----------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    """One table's columns and row identity, read from the catalogue and kept a few seconds
    (every page needs them; a schema change is seen within ``LAYOUT_SECONDS``)."""

    description: catalog.TableDescription
    estimate: int | None
    loaded: float
    # What every page of a view repeats, made once: the select list per (order, cell size)
    # and the views' digests (a view with a list among its filters is not cached).
    terms: dict[tuple[tuple[SortKey, ...], int], PageTerms] = field(default_factory=dict)
    digests: dict[tuple[View, str], str] = field(default_factory=dict)

    def digest(self, view: View) -> str:
        """``view.digest()``, from the cache when it can be (by the filters' values as written:
        ``1``, ``1.0``, ``true``, ``0.0`` and ``-0.0`` are equal keys, and different views)."""
        key = (view, repr(view.filters))
        try:
            found = self.digests.get(key)
        except TypeError:  # unhashable: an "in" filter's list
            return view.digest()
        if found is None:
            found = view.digest()
            if len(self.digests) >= _VIEWS_KEPT:
                self.digests.clear()
            self.digests[key] = found
        return found

    @property
    def columns(self) -> list[catalog.Column]:
        return self.description.columns

    def column(self, name: str) -> catalog.Column:
        for c in self.description.columns:
            if c.name == name:
                return c
        raise NotFound(f'no column named "{name}" in "{self.description.name}"')

    @property
    def key_columns(self) -> list[str]:
        """The columns that identify a row (the rowid's SQL name for a rowid table); empty
        when rows have no identity (a view, a table without a key)."""
        key = self.description.key
        if key == "rowid":
            assert self.description.rowid_column is not None
            return [self.description.rowid_column]
        return list(key or [])

    def key_type(self, column: str) -> str:
        if self.description.key == "rowid":
            return "INTEGER"
        return self.column(column).type


@dataclass(frozen=True)
class _PageRequest:
    """A ``db.rows`` call's page: the table as the client named it, and its view and cursor."""

    schema: str | None
    table: str
    sort: Sequence[tuple[str, bool]]
    filters: Sequence[tuple[str, str, Any]]
    after: str | None
    before: str | None
    limit: int
    cell_chars: int


@dataclass(frozen=True)
class _PagePlan:
    """One page to read (``GridService._plan``): its statements' clauses and select list, the
    table as named in the catalogue, and what its reply needs besides the rows."""

    layout: _Layout
    request: _PageRequest
    page: PageQuery
    terms: PageTerms
    source: str  # the table's quoted name
    key_at: list[int]  # where the row key's values are in a row read
    digest: str  # the view's, for the cursors
    boundary: tuple[Any, ...] | None  # the cursor's values

    @property
    def identity(self) -> Callable[[Sequence[Any]], Hashable] | None:
        """A row's identity for the ranges' de-duplication (``None`` without a key)."""
        key_at = self.key_at
        if not key_at:
            return None
        if len(key_at) == 1:  # the usual key: its one value
            (at,) = key_at
            return lambda row: _hashable(row[at])
        return lambda row: tuple(_hashable(row[i]) for i in key_at)


def _order_key(layout: _Layout, dialect: str) -> list[str]:
    """The columns that end every order so each row has one place: the row key, or, without
    one, every orderable column (rows equal in all of them are then one place: shown once
    where a page boundary falls between them; documented)."""
    if layout.key_columns:
        return layout.key_columns
    columns = layout.columns
    if dialect == "postgres":
        columns = [
            c
            for c in columns
            if c.type.removesuffix("[]").split("(")[0].strip() not in _PG_UNORDERED
        ]
    return [c.name for c in columns]


def _array_cast(dialect: str, type_name: str) -> str | None:
    """The type to cast a bound value to, for a PostgreSQL array column (psycopg binds a list
    by its values: smallint[] for small integers, which the server will not compare with
    int[]); without the size or precision, which an explicit cast would cut or round to,
    except character(n)'s and bit(n)'s (unsized, they are one character or bit long).
    ``None`` where the driver's binding is right."""
    if dialect != "postgres" or not type_name.strip().endswith("[]"):
        return None
    parts = re.split(r'("(?:[^"]|"")*")', type_name.strip())  # quoted names stay whole
    return "".join(part if i % 2 else _UNSIZED.sub("", part) for i, part in enumerate(parts))


# A size or precision, but not character(n)'s or bit(n)'s: without one they are of size 1.
_UNSIZED = re.compile(r"(?<!character)(?<!bit)\(-?\d+(?:,\s*-?\d+)?\)")


def _slot(dialect: DbKind, type_name: str) -> str:
    """Where a value of a column of ``type_name`` is bound in a statement."""
    return grid.placeholder(dialect, _array_cast(dialect, type_name))


def _wire_keys(rows: Sequence[Sequence[Any]], at: Sequence[int]) -> list[list[Any]]:
    """Each row's key on the wire (its values at ``at``); integers and text as they are."""
    safe = grid.SAFE_INTEGER

    def wire(value: Any) -> Any:
        kind = type(value)
        if kind is str or (kind is int and -safe <= value <= safe):
            return value
        return grid.to_wire(value)

    if len(at) == 1:  # the usual key: one column, most often an integer
        (i,) = at
        column = [row[i] for row in rows]
        if set(map(type, column)) == {int} and -safe <= min(column) and max(column) <= safe:
            return [[v] for v in column]
        return [[wire(v)] for v in column]
    return [[wire(row[i]) for i in at] for row in rows]


def _hashable(value: Any) -> Hashable:
    """A key value as a set member: itself; NaN (a float or numeric key may hold it, and it
    equals nothing, itself included) as a mark of its own; a value that cannot be hashed (an
    array, a JSON document) as its type and text."""
    kind = type(value)
    if kind is int or kind is str:
        return cast("Hashable", value)
    if (kind is float and value != value) or (kind is Decimal and value.is_nan()):
        return ("NaN",)
    try:
        hash(value)
    except TypeError:
        return (kind.__name__, repr(value))
    return cast("Hashable", value)


def _whole_cell(value: Any) -> Any:
    """A cell's whole value on the wire (every byte of a binary one)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        return {"$bytes": len(raw), "hex": raw.hex()}
    return grid.to_wire(value)


def _capped_cell(value: Any, chars: int) -> Any:
    """A cell cut in Python (a console result, a conflict's current row)."""
    if isinstance(value, str) and len(value) > chars:
        return grid.truncated_cell(len(value), value[:chars])
    return grid.to_wire(value)


_UNREAD = object()  # no current value to compare with (an insert)


def _unchanged(value: Any, sent: Any) -> bool:
    """Whether ``sent`` is exactly the wire form of ``value`` (a whole value, never one cut
    for display, of the same JSON type: ``2`` is not ``2.0``)."""
    if isinstance(sent, (dict, list)):
        return False
    wire = grid.to_wire(value)
    return type(wire) is type(sent) and bool(wire == sent)


def _is_cut(cell: Any) -> bool:
    """Whether a wire cell is a value cut for display (``$truncated``, or bytes without
    every byte)."""
    if not isinstance(cell, dict):
        return False
    if "$truncated" in cell:
        return True
    hex_text = cell.get("hex")
    return "$bytes" in cell and (
        not isinstance(hex_text, str) or len(hex_text) // 2 != cell["$bytes"]
    )


def _same(value: Any, expected: Any) -> bool:
    """Whether a row still holds what the client read: ``expected`` is the cell as it was
    sent (a cut text or binary value matches by size and beginning)."""
    if isinstance(expected, dict) and "$truncated" in expected:
        return (
            isinstance(value, str)
            and len(value) == expected.get("$truncated")
            and value.startswith(str(expected.get("text", "")))
        )
    if isinstance(expected, dict) and "$bytes" in expected:
        return (
            isinstance(value, (bytes, bytearray, memoryview))
            and len(value) == expected.get("$bytes")
            and bytes(value).hex().startswith(str(expected.get("hex", "")).lower())
        )
    actual = grid.to_wire(value)
    if isinstance(actual, bool) or isinstance(expected, bool):
        return actual is expected or (actual == expected and type(actual) is type(expected))
    return bool(actual == expected)


# --- Calls on a session -----------------------------------------------------------------------


class _StaleSession(BackendUnavailable):
    """The connection taken from the pool had been dropped by the server."""


_TableKey = tuple[int, str | None, str]  # settings generation, schema, table


class _Running:
    """A call under way: its deadline, its session once it has one, and why it is being
    stopped, if it is (``None`` while it may run)."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.reason: str | None = None  # "timeout", "cancelled" or "gone"
        self.session: Session | None = None
        self.spoiled = False  # its statement may have changed the session's settings
        self.ended = anyio.Event()  # the call is over: a stopper has nothing more to do
        self.stopped: anyio.Event | None = None  # set when its stopper is done, if it has one
        self.waiting: anyio.CancelScope | None = None  # while it waits for a connection


class GridService:
    """The ``db.*`` grid methods on the profile's database (README: The grid)."""

    def __init__(self, database: DatabaseService, *, max_sessions: int = MAX_SESSIONS) -> None:
        self._database = database
        self._slots = anyio.Semaphore(max_sessions)
        self._query_slots = anyio.Semaphore(max(1, max_sessions - 1))
        self._idle: list[tuple[int, Session]] = []  # (settings generation, session)
        self._layouts: dict[tuple[int, str | None, str], _Layout] = {}
        self._queries: dict[str, _Running] = {}
        self._running: set[_Running] = set()  # calls under way, for their deadlines
        self._calls: set[_Running] = set()  # every call, waiting for a connection or not
        self._soonest = math.inf  # when ``run`` looks at the deadlines next
        self._began_since_wake = False  # a call began since ``run`` last looked
        self._rearm = anyio.Event()  # a call with an earlier deadline came
        self._tasks: TaskGroup | None = None  # ``run``'s, for the stoppers
        self._cursor_key = secrets.token_bytes(32)  # cursors die with the daemon
        self._last_read: dict[_TableKey, float] = {}  # seconds; see _inline
        self._large: dict[_TableKey, float] = {}  # until when; see _note_large
        self._closed = False

    @property
    def read_only(self) -> bool:
        return self._database.env == "PROD"

    # -- sessions --

    async def _session(self) -> tuple[Session, bool]:
        """A session, and whether it waited in the pool (where the server may have dropped
        it meanwhile: a restart, an idle timeout)."""
        generation = self._database.generation
        while self._idle:
            born, session = self._idle.pop()
            if born == generation:
                return session, True
            with anyio.CancelScope(shield=True):  # taken from the pool: closed, whatever comes
                await anyio.to_thread.run_sync(session.close)
        if self._closed:
            raise BackendUnavailable("the daemon is stopping")
        opener = self._database.opener()
        deadline = max(2.0, self._database.timeout_seconds) + 1.0  # connect_timeout, then some
        call: Call[Session] = Call(None)

        def connect(call: Call[Session]) -> Session:
            call.adopt(opener())
            assert call.session is not None
            return call.session

        opened = False
        try:
            with anyio.fail_after(deadline):
                session = await run_call(connect, call)
                opened = True
                return session, False
        except TimeoutError:
            raise BackendUnavailable(f"the database did not answer within {deadline:g} s") from None
        finally:
            # Still connecting: the thread closes what it opens. Connected just as the caller
            # stopped waiting: the new session is closed here, or it would leak.
            if not call.abandon() and not opened and call.session is not None:
                call.session.close()

    def _give_back(self, session: Session, generation: int) -> None:
        if self._closed or generation != self._database.generation:
            session.close()
        else:
            self._idle.append((generation, session))

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Stop the calls that overrun their deadline, and carry out every stop, until
        cancelled. One task for all calls: a call itself starts no task (a page is a few
        hundred microseconds; a task group per call would be a tenth of that)."""
        async with anyio.create_task_group() as tg:
            self._tasks = tg
            task_status.started()
            try:
                while True:
                    now = anyio.current_time()
                    soonest = math.inf
                    for running in list(self._running):
                        if running.reason is not None:
                            continue
                        if running.deadline <= now:
                            self._stop(running, "timeout")
                        else:
                            soonest = min(soonest, running.deadline)
                    if self._began_since_wake and soonest == math.inf:
                        # Calls are coming: looking again within a tick, the next one's
                        # deadline (later than that) needs no wake-up of its own.
                        soonest = now + _TICK_SECONDS
                    self._began_since_wake = False
                    self._soonest = soonest
                    with anyio.move_on_after(soonest - now):
                        await self._rearm.wait()
                    self._rearm = anyio.Event()
            finally:
                self._tasks = None

    async def _call(
        self,
        work: Callable[[Session], T],
        *,
        seconds: float = GRID_SECONDS,
        query_id: str | None = None,
        gone: Gone | None = None,
        spoils: Callable[[Session], bool] | None = None,
    ) -> T:
        """Run ``work`` on a session of the pool on a worker thread, stopped at ``seconds``,
        on ``db.cancel`` of ``query_id``, or when the client has ``gone``; the session goes
        back to the pool unless stopped or ``spoils`` says the work changed it."""
        if self._tasks is None:
            raise BackendUnavailable("the database grid is not running (the daemon is stopping)")
        running = _Running(math.inf)
        if query_id is not None:
            if query_id in self._queries:
                raise InvalidInput(f"a query with the id {query_id!r} is already running")
            self._queries[query_id] = running
        self._calls.add(running)
        try:
            async with contextlib.AsyncExitStack() as slots:
                # Waiting for a connection is stoppable too (db.cancel, its time limit, the
                # daemon stopping): a stop cancels this scope while no session is in hand.
                with anyio.CancelScope() as waiting:
                    running.waiting = waiting
                    query = query_id is not None or gone is not None
                    # A console query's own time limit bounds its wait for a slot too.
                    wait = min(seconds, GRID_SECONDS) if query else GRID_SECONDS
                    waiting.deadline = anyio.current_time() + wait
                    await self._take_slot(slots, query=query)
                    waiting.deadline = math.inf  # connecting has a deadline of its own
                    generation = self._database.generation
                    try:
                        session, pooled = await self._session()
                    except SimpleaideError as exc:
                        raise self._redacted(exc) from None
                running.waiting = None
                if waiting.cancelled_caught:
                    raise self._reason_error(running, seconds) or self._busy(wait)
                running.session = session
                running.deadline = anyio.current_time() + seconds  # from when it can run
                self._running.add(running)
                self._began_since_wake = True
                if running.deadline < self._soonest:
                    self._rearm.set()
                call: Call[Session] = Call(session)
                failure: SimpleaideError | None = None
                try:
                    if gone is None:
                        result = await run_call(_on_session(work, running, spoils), call)
                    else:
                        async with anyio.create_task_group() as tg:
                            tg.start_soon(self._watch, gone, running)
                            try:
                                result = await run_call(_on_session(work, running, spoils), call)
                            finally:
                                tg.cancel_scope.cancel()
                except SimpleaideError as exc:
                    failure = exc
                except BaseExceptionGroup as group:  # the watcher's task group wraps it
                    failure = _only_error(group)
                finally:
                    self._running.discard(running)
                    running.ended.set()
                    with anyio.CancelScope(shield=True):
                        if running.stopped is not None:  # no cancel of ours may be on its way
                            await running.stopped.wait()
                        if not call.abandon():  # ended: the session is back, unless it broke
                            kept = call.session
                            if kept is not None:
                                if running.reason is None and not running.spoiled:
                                    self._give_back(kept, generation)
                                else:  # a late cancel could hit its next statement, or a
                                    # setting it changed (SET, PRAGMA) the next client's
                                    await anyio.to_thread.run_sync(kept.close)
                if failure is not None:
                    stopped = self._reason_error(running, seconds)
                    if stopped is not None:
                        raise stopped
                    if isinstance(failure, Lost) and pooled:
                        raise _StaleSession(self._redacted(failure).message)
                    raise self._redacted(failure)
        finally:
            self._calls.discard(running)
            if query_id is not None:
                self._queries.pop(query_id, None)
        return result

    async def _read(
        self,
        work: Callable[[Session], T],
        *,
        inline: tuple[str | None, str] | bool = True,
        **options: Any,
    ) -> T:
        """``_call`` for work that only reads: first tried on the event loop when the driver
        allows it (``_inline``; ``inline`` names the table read, whose reads are timed, or is
        ``False`` for work that can hold the loop long, such as a whole cell), then on a
        worker thread; there, tried once more, on a new connection, when the
        pooled one turns out to be gone (nothing was changed)."""
        if inline is not False and all(
            options.get(name) is None for name in ("gone", "query_id", "spoils")
        ):
            table = None if inline is True else (self._database.generation, *inline)
            done, result = self._inline(work, table)
            if done:
                return result  # type: ignore[return-value]  # done: work's own result
            if table is not None:
                work = self._timed(work, table)
        try:
            return await self._call(work, **options)
        except _StaleSession:
            # What dropped one pooled connection (a restart) most likely dropped them all.
            idle, self._idle = self._idle, []
            with anyio.CancelScope(shield=True):  # taken from the pool: closed, whatever comes
                for _, session in idle:
                    await anyio.to_thread.run_sync(session.close)
            return await self._call(work, **options)

    def _timed(self, work: Callable[[Session], T], table: _TableKey) -> Callable[[Session], T]:
        """``work``, its time noted as the table's last read (on whichever thread)."""

        def timed(session: Session) -> T:
            began = time.perf_counter()
            result = work(session)  # a read that failed says nothing of the next one
            self._note_read(table, time.perf_counter() - began)
            return result

        return timed

    def _note_read(self, table: _TableKey, seconds: float) -> None:
        if len(self._last_read) > 256:
            self._last_read.clear()
        self._last_read[table] = seconds

    def _note_large(self, schema: str | None, table: str, largest: int) -> None:
        """A page met a value of ``largest`` bytes or characters: past ``LARGE_VALUE``, the
        table's reads stay off the event loop for ``LARGE_SECONDS``, whatever reads of it
        are quick meanwhile (a filter that finds nothing, its small rows)."""
        if largest < LARGE_VALUE:
            return
        now = time.monotonic()
        if len(self._large) > 256:  # the expired ones go; the others stay, however many
            self._large = {k: v for k, v in self._large.items() if v > now}
        self._large[self._database.generation, schema, table] = now + LARGE_SECONDS

    def _inline(
        self, work: Callable[[Session], T], table: _TableKey | None
    ) -> tuple[bool, T | None]:
        """Run a read at once on the event loop, on an idle session of a driver that works in
        this process (SQLite), within ``INLINE_SECONDS`` of work: a page is a fraction of a
        millisecond, and its trip to a worker thread and back costs as much again.

        Whether it was done, and its result. Not done (no idle session, a driver that waits
        on the network, the budget spent, a lock, a broken connection): the caller runs it on
        a thread, where its deadline and cancels apply (a read changes nothing: it may run
        twice). Any other error is the answer.

        A table's reads come here only while its last read took less than the budget: the
        first read of a table, and the next one after a slow one, are timed on a thread. The
        budget stops a statement from within, between steps of SQLite's machine, and one
        step can be long (reading a value of megabytes): a page that met such a value keeps
        its table away from here for ``LARGE_SECONDS`` (``_note_large``).
        """
        if not self._idle or self._closed or self._tasks is None:
            return False, None
        if table is not None and (
            self._last_read.get(table, math.inf) >= INLINE_SECONDS
            or self._large.get(table, 0.0) > time.monotonic()
        ):
            return False, None
        born, session = self._idle[-1]
        if born != self._database.generation:
            return False, None
        budget = session.budget(INLINE_SECONDS)
        if budget is None:
            return False, None
        try:
            self._slots.acquire_nowait()
        except anyio.WouldBlock:
            return False, None
        self._idle.pop()
        kept = True
        began = time.perf_counter()
        try:
            with budget:
                result = work(session)
        except OverBudget as exc:
            if table is not None:
                self._note_read(table, time.perf_counter() - began)
            if exc.slows_session:  # closed, and a new one opened for the next read
                kept = False
                session.close()
            return False, None
        except Lost:
            kept = False
            session.close()
            return False, None
        except SimpleaideError as exc:
            raise self._redacted(exc) from None
        else:
            if table is not None:
                self._note_read(table, time.perf_counter() - began)
            return True, result
        finally:
            if kept:
                self._give_back(session, born)
            self._slots.release()

    async def _take_slot(self, stack: contextlib.AsyncExitStack, *, query: bool) -> None:
        """A session slot (and, for a console query, one of ``MAX_QUERIES``): long queries
        may hold the others, never every session. The caller bounds the wait."""
        for semaphore in [self._query_slots, self._slots] if query else [self._slots]:
            try:  # free: taken without a trip through the loop (a page is ~0.5 ms)
                semaphore.acquire_nowait()
            except anyio.WouldBlock:
                await semaphore.acquire()
            stack.callback(semaphore.release)

    def _busy(self, waited: float) -> BackendUnavailable:
        return BackendUnavailable(
            f"the database is busy: no connection came free within {waited:g} s"
            f" ({len(self._running)} statement(s) running); try again when one ends"
        )

    def stop_all(self) -> None:
        """Cancel every call under way or waiting for a connection (the daemon is stopping)."""
        for running in list(self._calls):
            self._stop(running, "cancelled")

    def _stop(self, running: _Running, reason: str) -> None:
        """Stop a call (once): its statement is cancelled by a stopper task, or, if it has
        not started yet, it never starts (``_on_session``)."""
        if running.reason is not None:
            return
        running.reason = reason
        if running.waiting is not None:
            running.waiting.cancel()
        if running.session is not None and self._tasks is not None:
            running.stopped = anyio.Event()
            self._tasks.start_soon(self._stopper, running)

    async def _stopper(self, running: _Running) -> None:
        # A cancel that arrives before the statement starts stops nothing (SQLite's
        # interrupt, PostgreSQL's cancel of an idle backend): sent again, a little later
        # each time, until the call ends or the grace is over. Not abandoned: once the call
        # ends, no cancel of ours may still be on its way (the call waits for ``stopped``).
        assert running.session is not None and running.stopped is not None
        session = running.session
        try:
            deadline = anyio.current_time() + CANCEL_GRACE_SECONDS
            pause = 0.05
            while not running.ended.is_set():
                await anyio.to_thread.run_sync(session.cancel)
                left = deadline - anyio.current_time()
                if left <= 0:
                    session.abort()  # it ignored the cancel: its connection goes
                    return
                with anyio.move_on_after(min(pause, left)):
                    await running.ended.wait()
                pause *= 2
        finally:
            running.stopped.set()

    async def _watch(self, gone: Gone, running: _Running) -> None:
        await gone()
        self._stop(running, "gone")

    def _reason_error(self, running: _Running, seconds: float) -> SimpleaideError | None:
        if running.reason == "timeout":
            return LimitExceeded(f"stopped after {seconds:g} s: the statement took too long")
        if running.reason is not None:
            return Cancelled("the query was cancelled")
        return None

    def _redacted(self, exc: SimpleaideError) -> SimpleaideError:
        if isinstance(exc, Lost):
            self._database.probe_soon()
            return BackendUnavailable(self._database.redact(exc.message))
        exc.message = self._database.redact(exc.message)
        exc.args = (exc.message,)
        return exc

    async def aclose(self) -> None:
        """Close the idle sessions (running calls close theirs when they end)."""
        self._closed = True
        self.stop_all()
        idle, self._idle = self._idle, []
        with anyio.CancelScope(shield=True):
            for _, session in idle:
                await anyio.to_thread.run_sync(session.close)

    # -- layouts --

    def _layout(self, session: Session, schema: str | None, table: str) -> _Layout:
        """Thread: the table's layout, from the cache while fresh."""
        key = (self._database.generation, schema, table)
        cached = self._layouts.get(key)
        now = time.monotonic()
        if cached is not None and now - cached.loaded < LAYOUT_SECONDS:
            return cached
        description = catalog.describe(session, schema, table)
        estimate = (
            catalog.estimate(session, description.schema, description.name)
            if description.kind == "table"
            else None
        )
        layout = _Layout(description, estimate, now)
        if len(self._layouts) > 256:
            self._layouts.clear()
        self._layouts[key] = layout
        return layout

    def _forget(self, schema: str | None, table: str) -> None:
        self._layouts.pop((self._database.generation, schema, table), None)

    # -- methods --

    async def tables(self) -> list[dict[str, Any]]:
        """``db.tables``."""
        found = await self._read(catalog.tables)
        return [
            {
                "schema": t.schema,
                "name": t.name,
                "kind": t.kind,
                "rowEstimate": t.row_estimate,
                "editable": t.editable and not self.read_only,
                "key": t.key,
            }
            for t in found
        ]

    async def describe(self, schema: str | None, table: str) -> dict[str, Any]:
        """``db.describe``."""
        d = await self._read(lambda s: catalog.describe(s, schema, table))
        return {
            "schema": d.schema,
            "name": d.name,
            "kind": d.kind,
            "rowEstimate": None,
            "editable": d.key is not None and not self.read_only,
            "key": d.key,
            "columns": [
                {
                    "name": c.name,
                    "type": c.type,
                    "nullable": c.nullable,
                    "default": c.default,
                    "primaryKey": c.primary_key,
                    "generated": c.generated,
                }
                for c in d.columns
            ],
            "primaryKey": d.primary_key,
            "indexes": [
                {
                    "name": i.name,
                    "columns": i.columns,
                    "unique": i.unique,
                    "primary": i.primary,
                    "partial": i.partial,
                    "definition": i.definition,
                }
                for i in d.indexes
            ],
            "foreignKeys": [
                {
                    "name": f.name,
                    "columns": f.columns,
                    "refSchema": f.ref_schema,
                    "refTable": f.ref_table,
                    "refColumns": f.ref_columns,
                    "onUpdate": f.on_update,
                    "onDelete": f.on_delete,
                }
                for f in d.foreign_keys
            ],
            "ddl": d.ddl,
        }

    async def rows(
        self,
        schema: str | None,
        table: str,
        *,
        sort: Sequence[tuple[str, bool]] = (),
        filters: Sequence[tuple[str, str, Any]] = (),
        after: str | None = None,
        before: str | None = None,
        limit: int = 100,
        cell_bytes: int = 1024,
        gone: Gone | None = None,
    ) -> dict[str, Any]:
        """``db.rows``: one page by keyset (never OFFSET), after or before a signed cursor."""
        request = _PageRequest(schema, table, sort, filters, after, before, limit, cell_bytes)
        work = functools.partial(self._page, request)
        # Cells asked for whole up to a megabyte or more: such a page is never read on the loop.
        inline = (schema, table) if cell_bytes < LARGE_VALUE else False
        return await self._read(work, inline=inline, gone=gone)

    def _page(self, request: _PageRequest, session: Session) -> dict[str, Any]:
        layout = self._layout(session, request.schema, request.table)
        plan = self._plan(layout, session, request)
        try:
            raw = plan.page.fetch(session.execute, plan.terms.sql, plan.source, plan.identity)
        except OverBudget:
            raise  # tried again on a thread: the layout is fine
        except SimpleaideError:
            # A column dropped meanwhile: read the layout again.
            self._forget(request.schema, request.table)
            raise
        return self._paged(plan, raw)

    def _plan(self, layout: _Layout, session: Session, request: _PageRequest) -> _PagePlan:
        """What a page reads, from the table's layout and the request (its cursor checked):
        no statement runs here."""
        sort, filters, after, before = request.sort, request.filters, request.after, request.before
        dialect = session.kind
        quote = session.quote_identifier
        nullable = {c.name: c.nullable for c in layout.columns}
        for name in layout.key_columns:
            nullable[name] = False  # a key never holds NULL (the rowid is no column)
        sort_keys = tuple(SortKey(layout.column(c).name, d, nullable[c]) for c, d in sort)
        conditions = [self._filter(layout, dialect, c, op, v) for c, op, v in filters]
        order_key = _order_key(layout, dialect)
        casts = {c.name: _array_cast(dialect, c.type) for c in layout.columns}
        order = tuple(
            SortKey(s.column, s.desc, nullable.get(s.column, False), casts.get(s.column))
            for s in grid.ordering(sort_keys, order_key)
        )
        view = View(
            layout.description.schema,
            layout.description.name,
            tuple(SortKey(s.column, s.desc) for s in sort_keys),
            tuple(Filter(c, op, v) for c, op, v in filters),  # type: ignore[arg-type]
            tuple(order_key),
        )
        digest = layout.digest(view)
        boundary = None
        direction: grid.Direction = "forward"
        cursor_text = after if after is not None else before
        if cursor_text is not None:
            cursor = grid.decode_cursor(self._cursor_key, cursor_text, digest)
            wanted = "forward" if after is not None else "backward"
            if cursor.direction != wanted:
                raise InvalidInput(grid.STALE_CURSOR)
            boundary, direction = cursor.values, cursor.direction
        page = grid.page_query(
            dialect,
            quote,
            order,
            filters=conditions,
            boundary=boundary,
            direction=direction,
            limit=request.limit,
            split=bool(layout.key_columns),
        )
        cell_chars = request.cell_chars
        terms = layout.terms.get((order, cell_chars))
        if terms is None:
            reader = Reader(dialect, quote, {c.name: c.type for c in layout.columns})
            terms = reader.page([c.name for c in layout.columns], order, cell_chars)
            if len(layout.terms) >= _VIEWS_KEPT:
                layout.terms.clear()
            layout.terms[order, cell_chars] = terms
        source = catalog.qualified(session, layout.description.schema, layout.description.name)
        key_at = [
            terms.width + 1 + i for i, s in enumerate(order) if s.column in layout.key_columns
        ]
        return _PagePlan(layout, request, page, terms, source, key_at, digest, boundary)

    def _paged(self, plan: _PagePlan, raw: list[Any]) -> dict[str, Any]:
        """The page's reply from the rows its statements read."""
        layout, page, terms = plan.layout, plan.page, plan.terms
        rows, more = page.in_page_order(raw)
        cells, largest = terms.cells(rows)
        if page.dialect == "sqlite":  # the only driver read on the loop
            # Under each name a client may give the table: none, or its own schema.
            self._note_large(plan.request.schema, plan.request.table, largest)
            self._note_large(layout.description.schema, layout.description.name, largest)
        bounds = [terms.bounds(rows[0]), terms.bounds(rows[-1])] if rows else []
        keys = _wire_keys(rows, plan.key_at)
        boundary, digest = plan.boundary, plan.digest

        def cursor_for(values: tuple[Any, ...], way: grid.Direction) -> str:
            return grid.encode_cursor(self._cursor_key, grid.Cursor(digest, values, way))

        if page.direction == "forward":
            next_ = cursor_for(bounds[-1], "forward") if more and bounds else None
            if boundary is None:
                prev = None
            else:
                prev = cursor_for(bounds[0] if bounds else tuple(boundary), "backward")
        else:
            prev = cursor_for(bounds[0], "backward") if more and bounds else None
            next_ = cursor_for(bounds[-1] if bounds else tuple(boundary or ()), "forward")
        count: dict[str, Any]
        if next_ is None and prev is None:
            count = {"value": len(rows), "exact": True}
        elif not plan.request.filters and layout.estimate is not None:
            count = {"value": layout.estimate, "exact": False}
        else:
            count = {"value": None, "exact": False}
        return {
            "schema": layout.description.schema,
            "name": layout.description.name,
            "columns": [{"name": c.name, "type": c.type} for c in layout.columns],
            "rows": cells,
            "keys": keys,
            "key": layout.description.key,
            "editable": layout.description.key is not None and not self.read_only,
            "next": next_,
            "prev": prev,
            "count": count,
        }

    def _filter(self, layout: _Layout, dialect: str, column: str, op: str, value: Any) -> Filter:
        """A filter on a catalogue column, its value bound as the column's type wants."""
        type_name = layout.column(column).type
        if op in ("like", "ilike", "is-null", "not-null"):
            return Filter(layout.column(column).name, op, value)  # type: ignore[arg-type]
        if op == "in":
            bound = [grid.from_wire(v, dialect, type_name) for v in value]  # type: ignore[arg-type]
        else:
            bound = grid.from_wire(value, dialect, type_name)  # type: ignore[arg-type]
        # An array is bound as the column's own type (psycopg would send [2, 3] as smallint[]).
        bound_as = _array_cast(dialect, type_name)
        return Filter(layout.column(column).name, op, bound, bound_as)  # type: ignore[arg-type]

    async def cell(
        self, schema: str | None, table: str, key: list[Any], column: str
    ) -> dict[str, Any]:
        """``db.cell``: the whole value of one cell."""

        def read(session: Session) -> dict[str, Any]:
            layout = self._layout(session, schema, table)
            name = layout.column(column).name
            reader = Reader(
                session.kind, session.quote_identifier, {c.name: c.type for c in layout.columns}
            )
            row = self._read_row(session, layout, reader, key, [reader.exact(name)], lock=False)
            if row is None:
                raise NotFound("no row with this key: it was deleted or its key changed")
            return {"value": _whole_cell(row[0])}

        return await self._read(read, inline=False)  # a whole value: megabytes, maybe

    async def count(
        self, schema: str | None, table: str, filters: Sequence[tuple[str, str, Any]] = ()
    ) -> dict[str, Any]:
        """``db.count``: exact when it takes under ``COUNT_SECONDS``, else the estimate."""

        def counted(session: Session) -> int:
            layout = self._layout(session, schema, table)
            conditions = [self._filter(layout, session.kind, c, op, v) for c, op, v in filters]
            page = grid.page_query(
                session.kind, session.quote_identifier, [SortKey("x", nullable=False)],
                filters=conditions, limit=COUNT_CAP,
            )  # fmt: skip
            source = catalog.qualified(session, layout.description.schema, layout.description.name)
            where = f" WHERE {page.where}" if page.where else ""
            place = "?" if session.kind == "sqlite" else "%s"
            sql = f"SELECT count(*) FROM (SELECT 1 FROM {grid.sql_text(session.kind, source)}"
            sql += f"{where} LIMIT {place}) AS counted"
            ((value,),) = session.execute(sql, (*page.params, COUNT_CAP + 1))
            return int(value)

        try:
            value = await self._read(counted, inline=False, seconds=COUNT_SECONDS)
        except LimitExceeded:
            pass
        else:
            if value <= COUNT_CAP:
                return {"value": value, "exact": True}
            return {"value": value, "exact": False}
        if filters:
            return {"value": None, "exact": False}
        layout = await self._read(lambda s: self._layout(s, schema, table))
        return {"value": layout.estimate, "exact": False}

    def _read_row(
        self,
        session: Session,
        layout: _Layout,
        reader: Reader,
        key: Sequence[Any],
        select: list[str],
        *,
        lock: bool,
    ) -> tuple[Any, ...] | None:
        """Thread: the ``select`` terms of the row whose key is ``key`` (wire values)."""
        columns = layout.key_columns
        if not columns:
            raise InvalidInput(
                f'"{layout.description.name}" has no primary key or unique NOT NULL columns:'
                " its rows cannot be told apart, so they are not editable"
            )
        if len(key) != len(columns):
            raise InvalidInput(f"a key of this table has {len(columns)} value(s): {columns}")
        where = " AND ".join(
            f"{grid.sql_text(session.kind, session.quote_identifier(c))}"
            f" = {_slot(session.kind, layout.key_type(c))}"
            for c in columns
        )
        values = tuple(
            grid.from_wire(v, session.kind, layout.key_type(c))
            for c, v in zip(columns, key, strict=True)
        )
        source = catalog.qualified(session, layout.description.schema, layout.description.name)
        sql = (
            f"SELECT {grid.sql_text(session.kind, ', '.join(select))}"
            f" FROM {grid.sql_text(session.kind, source)} WHERE {where}"
        )
        if lock and session.kind == "postgres":
            sql += " FOR UPDATE"
        rows = session.execute(sql, values)
        return rows[0] if rows else None

    async def edit(self, schema: str | None, table: str, changes: Sequence[Any]) -> dict[str, Any]:
        """``db.edit``: the batch in one transaction; a row changed or gone since it was read
        fails it whole (``Conflict``, with the row as it is now)."""
        if self.read_only:
            raise ReadOnly(READ_ONLY_SESSION)
        return await self._call(functools.partial(self._edit, schema, table, changes))

    def _edit(
        self, schema: str | None, table: str, changes: Sequence[Any], session: Session
    ) -> dict[str, Any]:
        self._forget(schema, table)  # edits are rare: read the table's layout fresh
        layout = self._layout(session, schema, table)
        if layout.description.kind != "table" or not layout.key_columns:
            raise InvalidInput(
                f'"{layout.description.name}" is not editable: '
                + (
                    "it is a view"
                    if layout.description.kind == "view"
                    else "it has no primary key or unique NOT NULL columns, so its rows"
                    " cannot be told apart"
                )
            )
        dialect = session.kind
        reader = Reader(dialect, session.quote_identifier, {c.name: c.type for c in layout.columns})
        results: list[dict[str, Any] | None] = []
        with session.transaction():
            for index, change in enumerate(changes):
                results.append(self._apply(session, layout, reader, index, change))
        return {
            "columns": [{"name": c.name, "type": c.type} for c in layout.columns],
            "rows": results,
        }

    def _apply(
        self, session: Session, layout: _Layout, reader: Reader, index: int, change: Any
    ) -> dict[str, Any] | None:
        dialect = session.kind
        place = "?" if dialect == "sqlite" else "%s"
        source = grid.sql_text(
            dialect,
            catalog.qualified(session, layout.description.schema, layout.description.name),
        )
        key_terms = grid.sql_text(dialect, ", ".join(reader.exact(c) for c in layout.key_columns))

        def q(name: str) -> str:
            return grid.sql_text(dialect, session.quote_identifier(name))

        def bound(name: str, value: Any, now: Any = _UNREAD) -> tuple[str, Any]:
            column = layout.column(name)
            if not column.writable:
                raise InvalidInput(f'"{name}" is computed by the database: it cannot be set')
            if dialect == "sqlite" and now is not _UNREAD and _unchanged(now, value):
                # Sent back as read: the value itself, its storage class kept (a big integer
                # or an infinity travels as a string, which would store it as TEXT).
                return place, now
            value = grid.from_wire(value, dialect, column.type)
            if dialect == "postgres":
                return f"CAST({place} AS {grid.sql_text(dialect, column.type)})", value
            return place, value

        if change.op == "insert":
            names = list(change.values or {})
            terms = [bound(n, change.values[n]) for n in names]
            if names:
                columns = ", ".join(q(layout.column(n).name) for n in names)
                values = ", ".join(t for t, _ in terms)
                sql = f"INSERT INTO {source} ({columns}) VALUES ({values}) RETURNING {key_terms}"
            else:
                sql = f"INSERT INTO {source} DEFAULT VALUES RETURNING {key_terms}"
            (new_key,) = session.execute(sql, tuple(v for _, v in terms))
            return self._read_back(session, layout, reader, [grid.to_wire(v) for v in new_key])

        key = list(change.key)
        everything = [reader.exact(c.name) for c in layout.columns]
        current = self._read_row(session, layout, reader, key, everything, lock=True)
        names = [c.name for c in layout.columns]
        if current is None:
            raise self._conflict(index, key, layout, None, "was deleted")
        for name, expected in (change.expect or {}).items():
            if change.op == "update" and name in change.values and _is_cut(expected):
                # A cut value matches by its size and beginning only: good enough to see a
                # change, not to overwrite one made past the cut.
                raise InvalidInput(
                    f'"{name}" was read cut for display: load its whole value (db.cell) and'
                    " send that as expected before changing it"
                )
            at = names.index(layout.column(name).name)
            if not _same(current[at], expected):
                raise self._conflict(index, key, layout, current, f'changed ("{name}")')
        place_key = " AND ".join(
            f"{q(c)} = {_slot(dialect, layout.key_type(c))}" for c in layout.key_columns
        )
        key_values = tuple(
            grid.from_wire(v, dialect, layout.key_type(c))
            for c, v in zip(layout.key_columns, key, strict=True)
        )
        if change.op == "delete":
            session.execute(f"DELETE FROM {source} WHERE {place_key}", key_values)
            return None
        names_set = list(change.values)
        terms = [
            bound(n, change.values[n], current[names.index(layout.column(n).name)])
            for n in names_set
        ]
        assignments = ", ".join(
            f"{q(layout.column(n).name)} = {t}" for n, (t, _) in zip(names_set, terms, strict=True)
        )
        (new_key,) = session.execute(
            f"UPDATE {source} SET {assignments} WHERE {place_key} RETURNING {key_terms}",
            (*(v for _, v in terms), *key_values),
        )
        return self._read_back(session, layout, reader, [grid.to_wire(v) for v in new_key])

    def _read_back(
        self, session: Session, layout: _Layout, reader: Reader, key: list[Any]
    ) -> dict[str, Any]:
        """The row as the database now holds it (after triggers and defaults)."""
        chars = 1024
        select = [reader.display(c.name, chars) for c in layout.columns]
        row = self._read_row(session, layout, reader, key, select, lock=False)
        if row is None:  # a trigger removed it, or changed its key
            return {"key": key, "row": []}
        width = len(layout.columns)
        return {
            "key": key,
            "row": [display_cell(row[2 * i], row[2 * i + 1], chars) for i in range(width)],
        }

    def _conflict(
        self,
        index: int,
        key: list[Any],
        layout: _Layout,
        current: Sequence[Any] | None,
        what: str,
    ) -> Conflict:
        return Conflict(
            f"change {index + 1}: the row {what} since it was read; nothing was saved",
            {
                "change": index,
                "key": key,
                "columns": [{"name": c.name, "type": c.type} for c in layout.columns],
                "current": None
                if current is None
                else [_capped_cell(v, CONFLICT_CELL_CHARS) for v in current],
            },
        )

    async def query(
        self,
        sql: str,
        params: Sequence[Any] | None,
        *,
        limit: int,
        timeout_ms: int,
        query_id: str | None,
        gone: Gone | None,
    ) -> dict[str, Any]:
        """``db.query``: one statement, capped in rows and time, cancellable."""
        read_only = self.read_only

        def run(session: Session) -> dict[str, Any]:
            if read_only:
                sqlguard.check_read_only(session.kind, sql)
            start = time.perf_counter()
            result = session.query(sql, tuple(params or ()), limit)
            elapsed = (time.perf_counter() - start) * 1000
            return {
                "columns": [{"name": n, "type": t} for n, t in result.columns],
                "rows": [[_capped_cell(v, QUERY_CELL_CHARS) for v in r] for r in result.rows],
                "rowCount": result.row_count,
                "truncated": result.truncated,
                "elapsedMs": round(elapsed, 1),
            }

        def spoils(session: Session) -> bool:
            # Anything but a plain read may change the session (SET, PRAGMA, a temp table,
            # set_config(), an advisory lock, SELECT … INTO): the session is then closed
            # after it, never handed to another client.
            if sqlguard.first_word(session.kind, sql) not in _PLAIN_READS:
                return True
            try:
                sqlguard.check_read_only(session.kind, sql)
            except ReadOnly:
                return True
            return False

        return await self._call(
            run, seconds=timeout_ms / 1000, query_id=query_id, gone=gone, spoils=spoils
        )

    def cancel(self, query_id: str) -> bool:
        """``db.cancel``: stop the query of that id; whether one was running."""
        running = self._queries.get(query_id)
        if running is None:
            return False
        self._stop(running, "cancelled")
        return True


def _only_error(group: BaseExceptionGroup) -> SimpleaideError:
    """The project error a task group wrapped (anything else is raised as it is)."""
    if len(group.exceptions) == 1 and isinstance(group.exceptions[0], SimpleaideError):
        return group.exceptions[0]
    raise group


def _on_session(
    work: Callable[[Session], T],
    running: _Running,
    spoils: Callable[[Session], bool] | None,
) -> Callable[[Call[Session]], T]:
    def on(call: Call[Session]) -> T:
        assert call.session is not None
        if running.reason is not None:  # stopped before it started: nothing to interrupt
            raise Cancelled("the query was cancelled")
        # Decided here, on the worker thread: reading a long statement takes a while.
        running.spoiled = spoils is not None and spoils(call.session)
        try:
            return work(call.session)
        except Lost:
            call.drop()
            raise

    return on
