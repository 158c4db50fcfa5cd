"""Text from the daemon made safe to show: control characters become visible escapes.

Titles, error messages and names are data, and data must never drive the terminal: an ESC
(C0), a CSI (C1), a bidi override or a zero-width character is shown as ``\\x1b``,
``\\x9b``, ``\\u202e``, ``\\u200b``. Every human-readable output of the CLI goes through
``escape``; ``--json`` output through ``json_text``.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~2 ms to import; annotations are not evaluated at run time
    from typing import Any

# Not printable for ``str.isprintable`` but harmless on a terminal: spaces other than U+0020
# (Zs), private-use (Co) and unassigned (Cn) characters. Everything else that is not
# printable is Cc (C0, DEL, C1), Cf (format: bidi, zero-width), Zl, Zp or Cs (lone surrogates).
_HARMLESS = frozenset({"Zs", "Co", "Cn"})


def _unsafe(char: str) -> bool:
    import unicodedata  # only for text that holds something unprintable

    return unicodedata.category(char) not in _HARMLESS


def _escaped(char: str) -> str:
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def escape(text: str, *, keep: str = "") -> str:
    """``text`` with every control, format and separator character escaped (``\\x1b``);
    the characters in ``keep`` (say ``"\\n\\t"`` for multi-line content) are left alone."""
    if text.isprintable():  # the common case, checked in C
        return text
    return "".join(
        _escaped(char) if char not in keep and not char.isprintable() and _unsafe(char) else char
        for char in text
    )


def _json_escaped(char: str) -> str:
    units = char.encode("utf-16-be", "surrogatepass")
    return "".join(
        f"\\u{int.from_bytes(units[i : i + 2], 'big'):04x}" for i in range(0, len(units), 2)
    )


def json_safe(text: str) -> str:
    """JSON text with the characters ``escape`` would escape written as ``\\uXXXX``:
    ``json.dumps(..., ensure_ascii=False)`` leaves DEL, C1 and format characters raw.
    Outside strings JSON is ASCII, so every such character is inside a string."""
    if text.isprintable():
        return text
    return "".join(
        _json_escaped(char) if char != "\n" and not char.isprintable() and _unsafe(char) else char
        for char in text
    )


def json_text(value: Any) -> str:
    """``value`` as indented JSON, readable (non-ASCII kept), safe to show (``json_safe``)."""
    import json

    return json_safe(json.dumps(value, indent=2, ensure_ascii=False))
