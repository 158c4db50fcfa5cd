"""UTC timestamps in the store's format: ISO-8601, millisecond precision, a trailing ``Z``."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_EPOCH_DATE = date(1970, 1, 1)


def now_ms() -> int:
    """Milliseconds since the Unix epoch, from the UTC wall clock."""
    return time.time_ns() // 1_000_000


# Rendered dates, by day since the epoch: the daemon formats timestamps of the runs it lists
# (kept as integers, which take half the memory of the strings), and most share a few days.
_days: dict[int, str] = {}
_MAX_CACHED_DAYS = 20_000  # about 55 years of distinct days; cleared when exceeded


def format_ms(epoch_ms: int) -> str:
    """Render epoch milliseconds as ``2026-11-24T10:15:00.123Z``."""
    day, rest = divmod(epoch_ms, 86_400_000)
    prefix = _days.get(day)
    if prefix is None:
        if len(_days) >= _MAX_CACHED_DAYS:
            _days.clear()
        # A dict write is atomic under the GIL: safe if a worker thread formats concurrently.
        prefix = _days[day] = (_EPOCH_DATE + timedelta(days=day)).isoformat() + "T"
    hours, rest = divmod(rest, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, ms = divmod(rest, 1000)
    return f"{prefix}{hours:02d}:{minutes:02d}:{seconds:02d}.{ms:03d}Z"


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
