"""Blocking calls on worker threads that the caller may abandon when they hang.

A call that overruns its caller's deadline is abandoned and its resource woken (for a
database session: the PostgreSQL socket shut down, the SQLite statement interrupted), so the
thread ends soon and closes what it holds; the caller waits for that end (``done``) before it
starts another call beside it. Threads rather than an async driver: SQLite needs them anyway,
and one mechanism is easier to trust than two.

The threads are this module's own (``_Worker``): a call is handed to an idle thread through
its queue and its outcome handed back through the loop's ``call_soon_threadsafe``. A page of
the grid is a fraction of a millisecond; anyio's ``to_thread`` costs ~100 µs a round trip
here (its limiter, its run vars, its shielded scopes), these threads ~60 µs.
"""

from __future__ import annotations

import asyncio
import functools
import queue
import threading
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

import anyio
import anyio.lowlevel

T = TypeVar("T")


class Resource(Protocol):
    """What a call works with: something a blocked thread can be woken from, and closed."""

    def abort(self) -> None:
        """Wake a thread stuck in this resource (called from another thread)."""
        ...

    def close(self) -> None:
        """Close it; never raises."""
        ...


R = TypeVar("R", bound=Resource)


class Abandoned(Exception):
    """Raised on a worker thread whose caller stopped waiting; nobody reads it."""


class Call(Generic[R]):
    """Blocking work on a worker thread, and who owns the session it uses.

    While the work runs it owns the session; when it has ended the loop takes the session
    back, unless the loop gave up waiting first: then the thread closes it.
    """

    def __init__(self, session: R | None) -> None:
        # Held only for a few instructions, never across I/O: the loop takes it too.
        self._guard = threading.Lock()
        self._session = session
        self._abandoned = False
        self.done = threading.Event()

    @property
    def session(self) -> R | None:
        """The session the work uses now (``None`` once dropped, or before one is adopted)."""
        return self._session

    def adopt(self, session: R) -> None:
        """Thread: work on the new ``session`` (closed at once if the loop has given up)."""
        with self._guard:
            if not self._abandoned:
                self._session = session
                return
        session.close()
        raise Abandoned

    def drop(self) -> None:
        """Thread: close the session, which broke."""
        with self._guard:
            session, self._session = self._session, None
        if session is not None:
            session.close()

    def finish(self) -> None:
        """Thread, when the work ends: close the session if the loop gave up on it."""
        with self._guard:
            self.done.set()
            if not self._abandoned:
                return
            session, self._session = self._session, None
        if session is not None:
            session.close()

    def abandon(self) -> bool:
        """Loop: stop waiting; if the work still runs, wake it and return true."""
        with self._guard:
            if self.done.is_set():
                return False
            self._abandoned = True
            if self._session is not None:
                self._session.abort()
            return True


def _finishing(work: Callable[[Call[R]], T], call: Call[R]) -> T:
    try:
        return work(call)
    finally:
        call.finish()


async def run_call(work: Callable[[Call[R]], T], call: Call[R]) -> T:
    """Run ``work(call)`` on a worker thread; the caller bounds the time (a cancel scope), and
    when it stops waiting it calls ``call.abandon()``."""
    # A caller already cancelled starts nothing (as anyio's threads would not).
    await anyio.lowlevel.checkpoint_if_cancelled()
    loop = asyncio.get_running_loop()
    outcome: asyncio.Future[T] = loop.create_future()
    with _pool:
        worker = _idle.pop() if _idle else None
        spare = len(_live) < _MAX_WORKERS
    if worker is None:
        if not spare:  # many calls abandoned and still stuck: anyio's threads, bounded too
            return await anyio.to_thread.run_sync(_finishing, work, call, abandon_on_cancel=True)
        worker = _Worker()
        worker.start()
        with _pool:
            _live.add(worker)
    worker.jobs.put((functools.partial(_finishing, work, call), loop, outcome))
    # Cancelled (the caller's scope), this returns at once and the thread's outcome is dropped.
    return await outcome


_IDLE_SECONDS = 10.0  # an idle worker thread ends after this long without work
_MAX_WORKERS = 64  # beyond, calls go to anyio's threads (stuck calls are woken and end soon)
_pool = threading.Lock()
_idle: list[_Worker] = []  # most recently idle last: the warmest is taken first
_live: set[_Worker] = set()

_Job = tuple[Callable[[], Any], asyncio.AbstractEventLoop, "asyncio.Future[Any]"]


class _Worker(threading.Thread):
    """A thread that runs the calls handed to it, one at a time, while it is wanted."""

    def __init__(self) -> None:
        # A daemon thread: an idle one never holds up the process's exit (the daemon stops
        # its calls, and waits for them, before it exits).
        super().__init__(name="simpleaided-db", daemon=True)
        self.jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()

    def run(self) -> None:
        while True:
            try:
                fn, loop, outcome = self.jobs.get(timeout=_IDLE_SECONDS)
            except queue.Empty:
                with _pool:
                    if self in _idle:  # else a caller took it just now: its job is on the way
                        _idle.remove(self)
                        _live.discard(self)
                        return
                continue
            try:
                result: tuple[bool, Any] = (True, fn())
            except StopIteration as exc:  # a future cannot hold one (as anyio converts it)
                result = (False, RuntimeError(f"the work raised StopIteration: {exc!r}"))
            except BaseException as exc:  # handed to the caller, who raises it
                result = (False, exc)
            del fn
            with _pool:  # idle before the caller hears back: its next call finds this thread
                _idle.append(self)
            try:
                loop.call_soon_threadsafe(_settle, outcome, result)
            except RuntimeError:  # that loop is closed: nobody waits any more
                pass
            del loop, outcome, result


def _settle(outcome: asyncio.Future[Any], result: tuple[bool, Any]) -> None:
    if outcome.cancelled():
        return
    ok, value = result
    if ok:
        outcome.set_result(value)
        return
    try:
        outcome.set_exception(value)
    except TypeError as exc:  # an exception a future refuses: the caller still hears back
        outcome.set_exception(RuntimeError(f"the work failed: {value!r} ({exc})"))


async def wait_ended(call: Call[R], seconds: float) -> bool:
    """Wait up to ``seconds`` for an abandoned call's thread to end; whether it has.

    Waited on a thread of its own: the stuck thread cannot safely wake the loop (it may be
    gone by then). Bounded, so a waiter that is itself abandoned ends soon after too.
    """
    return await anyio.to_thread.run_sync(call.done.wait, seconds, abandon_on_cancel=True)
