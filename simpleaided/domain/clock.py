"""UTC timestamps in the store's format: ISO-8601, millisecond precision, a trailing ``Z``."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def now_ms() -> int:
    """Milliseconds since the Unix epoch, from the UTC wall clock."""
    return time.time_ns() // 1_000_000


# The last second rendered: ``strftime`` costs microseconds, and a busy daemon stamps every
# status document, nearly always within the same second as the one before.
_last_second: tuple[int, str] = (0, "1970-01-01T00:00:00.")


def format_ms(epoch_ms: int) -> str:
    """Render epoch milliseconds as ``2026-11-24T10:15:00.123Z``."""
    global _last_second
    second, ms = divmod(epoch_ms, 1000)
    cached = _last_second  # one read: safe if a worker thread formats concurrently
    if cached[0] != second:
        text = (_EPOCH + timedelta(seconds=second)).strftime("%Y-%m-%dT%H:%M:%S.")
        cached = _last_second = (second, text)
    return f"{cached[1]}{ms:03d}Z"


def parse_ms(text: str) -> int:
    """Parse an ISO-8601 timestamp (any offset; naive means UTC) into epoch milliseconds."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    # Integer arithmetic: float timestamps would round 0.123 s down to 122 ms.
    return (dt - _EPOCH) // _MS


def age_ms(since_ms: int, now: int) -> int:
    """Milliseconds from ``since_ms`` to ``now``, never negative (clocks can step back)."""
    return max(0, now - since_ms)
