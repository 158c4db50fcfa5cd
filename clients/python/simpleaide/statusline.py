"""The status document as the one line a shell, tmux or waybar shows: shared by
``simpleaide status`` and ``simpleaide watch``."""

from __future__ import annotations

from simpleaide import chips, fastjson
from simpleaide.safetext import escape, json_safe

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~2 ms to import; annotations are not evaluated at run time
    from typing import Any

FORMATS = ("plain", "tmux", "waybar")


def chip_line(doc: dict[str, Any], fmt: str) -> str:
    """The status document as one line of chips in format ``fmt`` (a waybar object is JSON)."""
    if fmt == "tmux":
        return escape(chips.tmux(doc))
    if fmt == "waybar":
        return json_safe(fastjson.dumps(chips.waybar(doc)))
    return escape(chips.plain(doc))


def offline_line(socket_path: str, fmt: str) -> str:
    """The OFF chip a status bar (tmux, waybar) shows when no daemon answers."""
    shown = chips.offline(socket_path, fmt)
    return escape(shown) if isinstance(shown, str) else json_safe(fastjson.dumps(shown))
