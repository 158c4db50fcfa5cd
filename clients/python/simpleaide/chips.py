"""The status document as header chips: ``DEV 🟢 · Vault 🔒 · DB ✅ · LLM 2/3 · Run ⏳ 1``.

The words come from the daemon (the document's ``chips``), so every client says the same;
this module lays them out as a plain line, as a tmux status string (``#[fg=...]`` colours),
or as a waybar custom-module object (text, tooltip, class). Pure functions of the document:
no I/O, no imports, so a status line stays cheap.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~2 ms to import; annotations are not evaluated at run time
    from typing import Any

SEPARATOR = " · "

# Chip → tmux colour, by the chip's state; ``checking`` (not known yet) is left uncoloured,
# unlike ``off``'s grey: nothing is known to be off. A level a newer daemon adds: uncoloured.
_TMUX_COLOURS = {
    "ok": "green",
    "warn": "yellow",
    "bad": "red",
    "off": "colour244",
    "info": "default",
    "checking": "default",
}


def format_age(ms: int | float | None) -> str:
    """A short age: ``45s``, ``12m``, ``5h``, ``3d`` (as the daemon words them)."""
    if ms is None:
        return "?"
    seconds = max(int(ms) // 1000, 0)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 48 * 3600:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def chips(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """The chips of a status document as ``(text, level)``: the daemon's words (its
    ``chips``), plus a ``⚠ N`` chip when it reports warnings."""
    out = [(str(c.get("text", "?")), str(c.get("level", "info"))) for c in doc.get("chips") or []]
    warnings = doc.get("warnings") or []
    if warnings:
        out.append((f"⚠ {len(warnings)}", "warn"))
    return out


def plain(doc: dict[str, Any]) -> str:
    """One line of chips."""
    return SEPARATOR.join(text for text, _ in chips(doc))


def tmux(doc: dict[str, Any]) -> str:
    """One line of chips for tmux's ``status-right``, coloured with ``#[fg=...]``."""
    parts = [
        f"#[fg={_TMUX_COLOURS.get(state, 'default')}]{text}#[default]" for text, state in chips(doc)
    ]
    return SEPARATOR.join(parts)


def tooltip(doc: dict[str, Any]) -> str:
    """Several lines: each chip's tooltip, then the warnings."""
    lines = [f"SimpleAide {doc.get('env', '?')}"]
    lines.extend(str(c.get("tooltip", "")) for c in doc.get("chips") or [])
    lines.extend(f"Warning: {w}" for w in doc.get("warnings") or [])
    return "\n".join(lines)


def waybar(doc: dict[str, Any]) -> dict[str, Any]:
    """A waybar custom-module object: ``text``, ``tooltip`` (Pango markup, escaped) and CSS
    ``class`` names (``checking`` while a chip's state is not known yet)."""
    runs = doc.get("runs") or {}
    last = runs.get("last") or {}
    classes = [str(doc.get("env", "unknown")).lower()]
    if runs.get("active"):
        classes.append("busy")
    elif last.get("status") in ("failed", "cancelled", "completed"):
        classes.append(str(last["status"]))
    if doc.get("warnings"):
        classes.append("warning")
    if any(c.get("level") == "checking" for c in doc.get("chips") or []):
        classes.append("checking")
    return {"text": _pango(plain(doc)), "tooltip": _pango(tooltip(doc)), "class": classes}


def _pango(text: str) -> str:
    """``text`` escaped for Pango markup, which waybar renders text and tooltip as: a run's
    error message holding ``<Foo> & co`` would otherwise make the tooltip invalid."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def offline(socket_path: str, fmt: str) -> str | dict[str, Any]:
    """What a status line shows when no daemon answers."""
    if fmt == "waybar":
        return {
            "text": "SimpleAide OFF",
            "tooltip": f"no daemon answers on {socket_path}",
            "class": ["offline"],
        }
    if fmt == "tmux":
        return "#[fg=colour244]SimpleAide OFF#[default]"
    return "SimpleAide OFF"
