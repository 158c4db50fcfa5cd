"""Blocking calls on real worker threads: a call that ends hands its resource back, a call that
hangs is abandoned within its caller's deadline, woken, and closes what it holds, and the next
call runs once it has ended."""

from __future__ import annotations

import threading
import time

import anyio
import pytest

from simpleaided.services.database.worker import Abandoned, Call, run_call, wait_ended

DEADLINE = 0.3
# How long a woken thread may take to end; far above what it needs, far below a hang.
GRACE = 5.0


class Gate:
    """A resource whose user blocks until it is aborted or closed, like a session on a
    server that went silent."""

    def __init__(self, *, wakes: bool = True) -> None:
        self._wakes = wakes
        self.woken = threading.Event()
        self.aborted = False
        self.closed = False
        self.closed_on: threading.Thread | None = None

    def abort(self) -> None:
        self.aborted = True
        if self._wakes:
            self.woken.set()

    def close(self) -> None:
        self.closed = True
        self.closed_on = threading.current_thread()
        self.woken.set()

    def hang(self) -> str:
        """Block until woken (bounded, so a broken test cannot hang the suite)."""
        if not self.woken.wait(30):
            raise AssertionError("never woken")
        return "woken"


def hang(call: Call[Gate]) -> str:
    assert call.session is not None
    return call.session.hang()


async def test_a_call_that_ends_hands_its_resource_back() -> None:
    gate = Gate()
    call = Call(gate)
    ran_on: list[threading.Thread] = []

    def work(call: Call[Gate]) -> int:
        ran_on.append(threading.current_thread())
        return 42

    assert await run_call(work, call) == 42
    assert ran_on and ran_on[0] is not threading.current_thread()
    assert call.done.is_set()
    assert call.abandon() is False  # nothing to abandon: it ended
    assert call.session is gate and not gate.aborted and not gate.closed


async def test_a_hung_call_is_abandoned_within_its_deadline_and_its_thread_ends() -> None:
    gate = Gate()
    call = Call(gate)
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        try:
            with anyio.fail_after(DEADLINE):
                await run_call(hang, call)
        finally:
            assert call.abandon() is True  # it was still running: woken
    assert time.monotonic() - start < DEADLINE + 1.0
    assert gate.aborted
    assert await wait_ended(call, GRACE) is True
    # The thread, not the caller, closed the resource it was left holding.
    assert gate.closed and gate.closed_on is not threading.current_thread()
    assert call.session is None


async def test_a_new_call_runs_once_the_abandoned_one_has_ended() -> None:
    stuck = Call(Gate())
    with pytest.raises(TimeoutError), anyio.fail_after(DEADLINE):
        try:
            await run_call(hang, stuck)
        finally:
            stuck.abandon()
    assert await wait_ended(stuck, GRACE) is True
    fresh = Gate()
    fresh.woken.set()  # answers at once
    call = Call(fresh)
    assert await run_call(hang, call) == "woken"
    assert call.abandon() is False and call.session is fresh and not fresh.closed


async def test_waiting_for_a_thread_that_is_not_woken_gives_up_after_its_seconds() -> None:
    deaf = Gate(wakes=False)  # ignores abort, like a connect still under way
    call = Call(deaf)
    with pytest.raises(TimeoutError), anyio.fail_after(DEADLINE):
        try:
            await run_call(hang, call)
        finally:
            assert call.abandon() is True
    start = time.monotonic()
    assert await wait_ended(call, 0.2) is False
    assert 0.15 < time.monotonic() - start < 0.2 + 1.0
    deaf.woken.set()  # it answers at last: the thread ends and closes what it held
    assert await wait_ended(call, GRACE) is True
    assert deaf.closed and call.session is None


async def test_a_resource_opened_after_the_caller_gave_up_is_closed_at_once() -> None:
    opening = threading.Event()
    opened = Gate()
    call: Call[Gate] = Call(None)  # no resource yet: a connect

    def connect(call: Call[Gate]) -> str:
        opening.wait(30)
        call.adopt(opened)
        return "connected"

    with pytest.raises(TimeoutError), anyio.fail_after(DEADLINE):
        try:
            await run_call(connect, call)
        finally:
            assert call.abandon() is True
    assert not opened.aborted  # nothing to wake yet
    opening.set()
    assert await wait_ended(call, GRACE) is True
    assert opened.closed and call.session is None


def test_adopting_after_abandon_raises_on_the_thread() -> None:
    call: Call[Gate] = Call(None)
    assert call.abandon() is True
    late = Gate()
    with pytest.raises(Abandoned):
        call.adopt(late)
    assert late.closed and call.session is None


async def test_a_broken_resource_dropped_by_the_work_is_closed() -> None:
    gate = Gate()
    call = Call(gate)

    def breaks(call: Call[Gate]) -> None:
        call.drop()
        raise ConnectionError("gone")

    with pytest.raises(ConnectionError):
        await run_call(breaks, call)
    assert gate.closed and call.session is None and call.abandon() is False


async def test_calls_one_after_another_reuse_one_worker_thread() -> None:
    # A page is a fraction of a millisecond: a thread started per call would cost as much.
    threads: list[threading.Thread] = []

    def work(call: Call[Gate]) -> None:
        threads.append(threading.current_thread())

    for _ in range(5):
        await run_call(work, Call(Gate()))
    assert len({id(t) for t in threads}) == 1
    assert threads[0] is not threading.main_thread()


async def test_a_call_under_way_leaves_another_call_its_own_thread() -> None:
    gate = Gate()
    seen: list[threading.Thread] = []

    def quick(call: Call[Gate]) -> str:
        seen.append(threading.current_thread())
        return "quick"

    async with anyio.create_task_group() as tg:
        tg.start_soon(run_call, hang, Call(gate))
        await anyio.sleep(0.05)
        with anyio.fail_after(DEADLINE):
            assert await run_call(quick, Call(Gate())) == "quick"
        gate.close()  # the first call ends
    assert len(seen) == 1


async def test_work_that_raises_stop_iteration_fails_in_words() -> None:
    # A future cannot hold a StopIteration: the caller would have waited forever.
    def work(call: Call[Gate]) -> None:
        raise StopIteration

    with anyio.fail_after(DEADLINE), pytest.raises(RuntimeError, match="StopIteration"):
        await run_call(work, Call(Gate()))


async def test_a_caller_already_cancelled_starts_no_work() -> None:
    ran = threading.Event()

    def work(call: Call[Gate]) -> None:
        ran.set()

    with anyio.CancelScope() as scope:
        scope.cancel()
        await run_call(work, Call(Gate()))
    assert scope.cancelled_caught
    await anyio.sleep(0.1)
    assert not ran.is_set()


async def test_past_the_thread_limit_calls_still_run(monkeypatch: pytest.MonkeyPatch) -> None:
    # Calls stuck on a silent server hold their threads: with none idle and as many as the
    # limit alive, a call runs on one of anyio's threads instead of starting another of ours.
    from simpleaided.services.database import worker

    monkeypatch.setattr(worker, "_idle", [])
    monkeypatch.setattr(worker, "_MAX_WORKERS", len(worker._live))
    ran_on: list[threading.Thread] = []

    def quick(call: Call[Gate]) -> str:
        ran_on.append(threading.current_thread())
        return "ran"

    with anyio.fail_after(DEADLINE):
        assert await run_call(quick, Call(Gate())) == "ran"
    assert ran_on and ran_on[0].name != "simpleaided-db"
    assert len(worker._live) <= worker._MAX_WORKERS  # no thread of ours started
