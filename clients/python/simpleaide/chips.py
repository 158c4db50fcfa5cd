"""The status document as header chips: ``DEV 🟢 · Vault 🔒 · DB ✅ · LLM 2/3 · Run ⏳ 1``.

The same five signals everywhere (DESIGN.md §6), rendered as a plain line, as a tmux status
string (``#[fg=...]`` colours), or as a waybar custom-module object (text, tooltip, class).
Pure functions of the document: no I/O, no imports, so a status line stays cheap.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~2 ms to import; annotations are not evaluated at run time
    from typing import Any

SEPARATOR = " · "

# Chip → tmux colour, by the chip's state.
_TMUX_COLOURS = {
    "ok": "green",
    "warn": "yellow",
    "bad": "red",
    "off": "colour244",
    "info": "default",
}

_RUN_MARKS = {"completed": "✓", "failed": "✗", "cancelled": "⊘", "pending": "⏸", "running": "⏳"}


def format_age(ms: int | float | None) -> str:
    """A short age: ``45s``, ``12m``, ``5h``, ``3d``."""
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
    """The chips of a status document, each as ``(text, state)``; the state is one of
    ``ok``, ``warn``, ``bad``, ``off``, ``info`` and picks a colour."""
    out: list[tuple[str, str]] = []
    env = doc.get("env")
    out.append(("PROD 🔴", "bad") if env == "PROD" else (f"{env or '?'} 🟢", "ok"))

    vault = (doc.get("vault") or {}).get("state")
    if vault == "locked":
        out.append(("Vault 🔒", "info"))
    elif vault == "unlocked":
        out.append(("Vault 🔓", "warn"))
    else:
        out.append(("Vault –", "off"))

    db = doc.get("db") or {}
    text, state = ("DB ✅", "ok") if db.get("connected") else ("DB OFF", "off")
    if db.get("readOnly"):
        text += " RO"
    out.append((text, state))

    llm = doc.get("llm") or {}
    online, total = int(llm.get("online") or 0), int(llm.get("total") or 0)
    if total == 0:
        out.append(("LLM –", "off"))
    else:
        out.append(
            (f"LLM {online}/{total}", "ok" if online == total else "warn" if online else "bad")
        )

    runs = doc.get("runs") or {}
    active = int(runs.get("active") or 0)
    last = runs.get("last")
    if active > 0:
        out.append((f"Run ⏳ {active}", "warn"))
    elif not last:
        out.append(("Run –", "off"))
    else:
        status = last.get("status")
        mark = _RUN_MARKS.get(status, "?")
        state = {"completed": "ok", "failed": "bad"}.get(status, "info")
        out.append((f"Run {mark}", state))

    warnings = doc.get("warnings") or []
    if warnings:
        out.append((f"⚠ {len(warnings)}", "warn"))
    return out


def plain(doc: dict[str, Any]) -> str:
    """One line of chips."""
    return SEPARATOR.join(text for text, _ in chips(doc))


def tmux(doc: dict[str, Any]) -> str:
    """One line of chips for tmux's ``status-right``, coloured with ``#[fg=...]``."""
    parts = [f"#[fg={_TMUX_COLOURS[state]}]{text}#[default]" for text, state in chips(doc)]
    return SEPARATOR.join(parts)


def last_run_line(doc: dict[str, Any]) -> str | None:
    """``Last run failed 2m ago: <error>``, or ``None`` without runs."""
    last = (doc.get("runs") or {}).get("last")
    if not last:
        return None
    line = f"Last run {last.get('status', '?')} {format_age(last.get('ageMs'))} ago"
    if last.get("errorMessage"):
        line += f": {last['errorMessage']}"
    return line


def tooltip(doc: dict[str, Any]) -> str:
    """Several lines explaining each chip (with the error of a failed last run)."""
    runs = doc.get("runs") or {}
    lines = [
        f"SimpleAide {doc.get('env', '?')}",
        f"Runs: {runs.get('active', 0)} active, {runs.get('pending', 0)} pending, "
        f"{runs.get('total', 0)} in all",
    ]
    last = last_run_line(doc)
    if last:
        lines.append(last)
    vault = doc.get("vault") or {}
    lines.append(f"Vault: {vault.get('state', '?')}")
    db = doc.get("db") or {}
    if db.get("connected"):
        ro = ", read-only" if db.get("readOnly") else ""
        lines.append(f"DB: {db.get('type') or '?'} ({db.get('env', '?')}{ro})")
    else:
        lines.append(f"DB: off ({db.get('error') or 'not connected'})")
    llm = doc.get("llm") or {}
    backends = llm.get("backends") or []
    if backends:
        names = ", ".join(
            f"{b.get('name', '?')} {'up' if b.get('online') else 'down'}" for b in backends
        )
        lines.append(f"LLM: {llm.get('online', 0)}/{llm.get('total', 0)} online ({names})")
    else:
        lines.append("LLM: no backends configured")
    lines.extend(f"Warning: {w}" for w in doc.get("warnings") or [])
    return "\n".join(lines)


def waybar(doc: dict[str, Any]) -> dict[str, Any]:
    """A waybar custom-module object: ``text``, ``tooltip`` and CSS ``class`` names."""
    runs = doc.get("runs") or {}
    last = runs.get("last") or {}
    classes = [str(doc.get("env", "unknown")).lower()]
    if runs.get("active"):
        classes.append("busy")
    elif last.get("status") in ("failed", "cancelled", "completed"):
        classes.append(str(last["status"]))
    if doc.get("warnings"):
        classes.append("warning")
    return {"text": plain(doc), "tooltip": tooltip(doc), "class": classes}


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
