"""Plain-text tables, time, size and status formatting for the CLI's human output.

Tables fit the terminal width: every column keeps its natural width except one elastic
column (a title, an error) that is cut with ``…`` to make the line fit. Widths are display
widths (``東京`` and ``🟢`` take two columns each), measured with ``wcwidth``, which is
imported only for text that is not ASCII. Status cells are coloured when stdout is a
terminal and ``NO_COLOR`` is unset or empty (https://no-color.org).
"""

from __future__ import annotations

import os
import shutil
import sys
from datetime import UTC, datetime

from simpleaide.chips import format_age
from simpleaide.safetext import escape

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations are not evaluated at run time
    from collections.abc import Collection, Sequence
    from typing import TextIO

ELLIPSIS = "…"
_GAP = "  "

# A status's colour (an SGR parameter), on a terminal that wants colour.
STATUS_COLOURS = {
    "completed": "32",  # green
    "running": "33",  # yellow
    "pending": "33",
    "failed": "31",  # red
    "corrupt": "35",  # magenta: broken on disk, not a failed run
    "cancelled": "2",  # dim
    "skipped": "2",
}
_RESET = "\x1b[0m"

# A status in a sentence: "step 01_build has failed", "run … was cancelled".
_STATUS_PHRASES = {
    "pending": "is pending",
    "running": "is running",
    "completed": "has completed",
    "failed": "has failed",
    "skipped": "was skipped",
    "cancelled": "was cancelled",
    "corrupt": "is corrupt",
}

_SIZE_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def parse_time(stamp: str | None) -> datetime | None:
    """An ISO-8601 UTC timestamp from the wire (``...Z``), or ``None``."""
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp)
    except ValueError:
        return None


def local_time(stamp: str | None) -> str:
    """A wire timestamp shown in local time, to the second (``-`` if absent)."""
    moment = parse_time(stamp)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def age(stamp: str | None, now: datetime | None = None) -> str:
    """How long ago ``stamp`` was (``3m``), never negative."""
    moment = parse_time(stamp)
    if moment is None:
        return "-"
    now = now or datetime.now(UTC)
    return format_age((now - moment).total_seconds() * 1000)


def time_and_age(stamp: str | None, now: datetime | None = None) -> str:
    """``2026-12-07 14:09:03 (3m ago)``; ``-`` alone when there is no time."""
    if parse_time(stamp) is None:
        return "-"
    return f"{local_time(stamp)} ({age(stamp, now)} ago)"


def duration(start: str | None, end: str | None) -> str:
    """The time between two wire timestamps (``-`` unless both are known)."""
    first, last = parse_time(start), parse_time(end)
    if first is None or last is None:
        return "-"
    return format_age((last - first).total_seconds() * 1000)


def latency(ms: float | None) -> str:
    """A probe's latency (``12.5 ms``; ``–`` if unknown)."""
    return "–" if ms is None else f"{ms:g} ms"


def size(count: int) -> str:
    """A byte size for people: ``512 B``, ``97.7 KiB``, ``1.5 MiB`` (binary units, one
    decimal)."""
    if count < 1024:
        return f"{count} B"
    value, unit = count / 1024, 0
    while round(value, 1) >= 1024 and unit < len(_SIZE_UNITS) - 1:
        value /= 1024
        unit += 1
    return f"{value:.1f} {_SIZE_UNITS[unit]}"


def plural(count: int, word: str, words: str | None = None) -> str:
    """``1 run``, ``2 runs`` (``words`` for an irregular plural)."""
    return f"{count} {word if count == 1 else words or word + 's'}"


def status_phrase(status: str) -> str:
    """A status in a sentence: ``has failed``, ``is running``, ``was skipped``."""
    return _STATUS_PHRASES.get(status, f"is {status}")


def home_path(path: str, home: str | None = None) -> str:
    """``path`` with the home folder shown as ``~`` (``~/src/app``)."""
    home = home if home is not None else os.path.expanduser("~")
    home = home.rstrip("/")
    if home and (path == home or path.startswith(home + "/")):
        return "~" + path[len(home) :]
    return path


def colour_wanted(stream: TextIO | None = None) -> bool:
    """Whether to colour: ``stream`` (stdout) is a terminal and ``NO_COLOR`` is unset or
    empty (https://no-color.org)."""
    stream = stream or sys.stdout
    if os.environ.get("NO_COLOR"):
        return False
    try:
        return stream.isatty()
    except ValueError:  # closed
        return False


def paint(text: str, status: str, colour: bool) -> str:
    """``text`` in the colour of ``status`` when ``colour`` (else as it is)."""
    code = STATUS_COLOURS.get(status) if colour else None
    return f"\x1b[{code}m{text}{_RESET}" if code else text


def display_width(text: str) -> int:
    """How many terminal columns ``text`` (without control characters) takes: two for East
    Asian wide characters and most emoji, none for combining marks."""
    if text.isascii():
        return len(text)
    import wcwidth  # ~20 ms to import: only for text that needs it

    return max(wcwidth.width(text), 0)


def clip(text: str, width: int) -> str:
    """``text`` cut to ``width`` terminal columns, ending with ``…`` when cut; a character
    (a grapheme: an emoji sequence, a letter and its accents) is never split."""
    if display_width(text) <= width:
        return text
    if width <= 0:
        return ""
    if text.isascii():
        return text[: width - 1] + ELLIPSIS
    import wcwidth

    kept, used = [], 1  # the ellipsis takes one column
    for grapheme in wcwidth.iter_graphemes(text):
        used += max(wcwidth.width(grapheme), 0)
        if used > width:
            break
        kept.append(grapheme)
    return "".join(kept) + ELLIPSIS


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
    right: Collection[int] = (),
    status: int | None = None,
    colour: bool | None = None,
) -> str:
    """A table as text; column ``elastic`` (usually the last) shrinks to fit ``width``
    (the terminal's width by default; ``None`` without a terminal: no limit). Cells are
    shown with control characters escaped and aligned by display width; the columns in
    ``right`` (numbers, sizes) are aligned right. The cells of column ``status`` are
    coloured by their status when ``colour`` (by default: ``colour_wanted()``)."""
    if width is None:
        width = terminal_width()
    if colour is None:
        colour = status is not None and colour_wanted()
    rows = [[escape(cell) for cell in row] for row in rows]
    widths = [display_width(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], display_width(cell))
    if elastic is not None and width is not None:
        others = sum(w for i, w in enumerate(widths) if i != elastic)
        room = width - others - len(_GAP) * (len(headers) - 1)
        widths[elastic] = max(min(widths[elastic], room), display_width(headers[elastic]), 8)
    lines = []
    for number, row in enumerate([list(headers), *rows]):
        padded = []
        for i, cell in enumerate(row):
            cut = clip(cell, widths[i])
            pad = " " * (widths[i] - display_width(cut))
            if number and i == status:
                cut = paint(cut, cell, colour)
            padded.append(pad + cut if i in right else cut + pad)
        lines.append(_GAP.join(padded).rstrip())
    return "\n".join(lines)


def fields(
    pairs: Sequence[tuple[str, str]], *, status: str | None = None, colour: bool | None = None
) -> str:
    """``name: value`` lines with the values aligned (control characters escaped); the value
    of the field named ``status`` is coloured by its status when ``colour`` (by default:
    ``colour_wanted()``)."""
    if colour is None:
        colour = status is not None and colour_wanted()
    pad = max((len(name) for name, _ in pairs), default=0) + 1
    return "\n".join(
        f"{(name + ':').ljust(pad)} "
        + (paint(escape(value), value, colour) if name == status else escape(value))
        for name, value in pairs
    )
