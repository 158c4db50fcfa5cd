"""Plain-text tables and time formatting for the CLI's human output.

Tables fit the terminal width: every column keeps its natural width except one elastic
column (a title, an error) that is cut with ``…`` to make the line fit.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from simpleaide.chips import format_age
from simpleaide.safetext import escape

ELLIPSIS = "…"
_GAP = "  "


def parse_time(stamp: str | None) -> datetime | None:
    """An ISO-8601 UTC timestamp from the wire (``...Z``), or ``None``."""
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp)
    except ValueError:
        return None


def local_time(stamp: str | None) -> str:
    """A wire timestamp shown in local time, to the minute (``-`` if absent)."""
    moment = parse_time(stamp)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M") if moment else "-"


def age(stamp: str | None, now: datetime | None = None) -> str:
    """How long ago ``stamp`` was (``3m``), never negative."""
    moment = parse_time(stamp)
    if moment is None:
        return "-"
    now = now or datetime.now(UTC)
    return format_age((now - moment).total_seconds() * 1000)


def duration(start: str | None, end: str | None) -> str:
    """The time between two wire timestamps (``-`` unless both are known)."""
    first, last = parse_time(start), parse_time(end)
    if first is None or last is None:
        return "-"
    return format_age((last - first).total_seconds() * 1000)


def latency(ms: float | None) -> str:
    """A probe's latency (``12.5 ms``; ``–`` if unknown)."""
    return "–" if ms is None else f"{ms:g} ms"


def clip(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, ending with ``…`` when cut."""
    if len(text) <= width:
        return text
    return text[: max(width - 1, 0)] + ELLIPSIS if width > 0 else ""


def one_line(text: str | None) -> str:
    """``text`` with line breaks and tabs made spaces (``-`` if empty)."""
    if not text:
        return "-"
    return " ".join(text.split())


def terminal_width() -> int | None:
    """The width to fit: ``$COLUMNS`` or the terminal's; ``None`` (no limit) when stdout is
    not a terminal, so that ``| grep`` sees whole titles, as with ``ps``."""
    if "COLUMNS" not in os.environ and not sys.stdout.isatty():
        return None
    return shutil.get_terminal_size().columns


def render(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    elastic: int | None = None,
    width: int | None = None,
) -> str:
    """A table as text; column ``elastic`` (usually the last) shrinks to fit ``width``
    (the terminal's width by default; ``None`` without a terminal: no limit). Cells are
    shown with control characters escaped."""
    if width is None:
        width = terminal_width()
    rows = [[escape(cell) for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    if elastic is not None and width is not None:
        others = sum(w for i, w in enumerate(widths) if i != elastic)
        room = width - others - len(_GAP) * (len(headers) - 1)
        widths[elastic] = max(min(widths[elastic], room), len(headers[elastic]), 8)
    lines = []
    for row in [list(headers), *rows]:
        cells = [clip(cell, widths[i]) for i, cell in enumerate(row)]
        padded = [cell.ljust(widths[i]) for i, cell in enumerate(cells)]
        lines.append(_GAP.join(padded).rstrip())
    return "\n".join(lines)


def fields(pairs: Sequence[tuple[str, str]]) -> str:
    """``name: value`` lines with the values aligned (control characters escaped)."""
    pad = max((len(name) for name, _ in pairs), default=0) + 1
    return "\n".join(f"{(name + ':').ljust(pad)} {escape(value)}" for name, value in pairs)
