"""Long runs of work on the event loop, cut into slices so that clients get in between."""

from __future__ import annotations

import time

import anyio.lowlevel

SLICE_SECONDS = 0.0005


class TimeSlices:
    """Call ``await slices.tick()`` between items of a long loop: it yields to the event loop
    once at least ``seconds`` of work went by since the last yield (or since it was made).

    By time rather than by count, because items differ a hundredfold: a ``stat`` that finds a
    run unchanged, or a re-read of its record that also tells subscribers.
    """

    def __init__(self, seconds: float = SLICE_SECONDS) -> None:
        self._seconds = seconds
        self._since = time.perf_counter()

    async def tick(self) -> None:
        if time.perf_counter() - self._since >= self._seconds:
            await anyio.lowlevel.checkpoint()
            self._since = time.perf_counter()
