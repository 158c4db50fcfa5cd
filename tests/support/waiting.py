"""Waiting for something another task, thread or process makes true: one polling loop."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import anyio


async def eventually(
    check: Callable[[], Any],
    timeout: float,  # noqa: ASYNC109 - the bound is the point; fail_after applies it
    *,
    interval: float = 0.01,
) -> Any:
    """The first truthy value of ``check()`` (awaited when it is a coroutine), polled every
    ``interval`` seconds; ``TimeoutError`` after ``timeout`` seconds, a check in progress
    included. An assertion inside ``check`` fails at once."""
    with anyio.fail_after(timeout):
        while True:
            value = check()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value
            await anyio.sleep(interval)


def eventually_blocking(check: Callable[[], Any], timeout: float, *, interval: float = 0.01) -> Any:
    """``eventually`` for a synchronous test: the same loop, on an event loop of its own (a
    check that blocks is then only timed out when it returns)."""
    return anyio.run(functools.partial(eventually, check, timeout, interval=interval))
