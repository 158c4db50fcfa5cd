"""The header chips, in words: ``DEV 🟢 · Vault 🔒 · DB ✅ RO · LLM 2/3 · Run ⏳ 1``
(``DB ⚠️ RO`` when the PROD database's role could still write files or run programs).

Every client shows the same five signals with the same words (README: The chips): the CLI and
status lines in Python, the web header and the editor plugin in JavaScript. So the words are
made here, once, and travel in the status document (``chips``); clients only lay them out.
Each chip has a ``level`` that picks a colour: ``ok``, ``info``, ``warn``, ``bad`` or ``off``,
or ``checking`` while its state is not known yet (the database before its first probe answers).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_RUN_MARKS = {"completed": "✓", "failed": "✗", "cancelled": "⊘", "pending": "⏸", "running": "⏳"}
_RUN_LEVELS = {"completed": "ok", "failed": "bad", "cancelled": "info", "pending": "info"}


def format_age(ms: float | None) -> str:
    """A short duration: ``45s``, ``12m``, ``5h``, ``3d``."""
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


def _unit_ms(ms: int) -> int:
    """The unit ``format_age`` shows ``ms`` in, in milliseconds."""
    seconds = ms // 1000
    if seconds < 60:
        return 1000
    if seconds < 3600:
        return 60_000
    if seconds < 48 * 3600:
        return 3_600_000
    return 86_400_000


def next_words_change_ms(doc: dict[str, Any]) -> int | None:
    """Milliseconds until the chips of ``doc`` read differently with time alone: the last
    run's age ticks over a unit ("59s" → "1m"), or the vault's countdown does. ``None`` if
    nothing in them moves with time."""
    waits = []
    age = (doc["runs"].get("last") or {}).get("ageMs")
    if age is not None:
        age = max(int(age), 0)
        waits.append(_unit_ms(age) - age % _unit_ms(age))
    remaining = doc["vault"].get("autoLockRemainingMs")
    if remaining is not None:
        shown = max(int(remaining), 0) + 999  # as ``vault_chip`` rounds it up
        waits.append(shown % _unit_ms(shown) + 1)
    return min(waits, default=None)


def _chip(name: str, text: str, level: str, tooltip: str) -> dict[str, str]:
    return {"name": name, "text": text, "level": level, "tooltip": tooltip, "href": f"#/{name}"}


def env_chip(env: str) -> dict[str, str]:
    if env == "PROD":
        return _chip("env", "PROD 🔴", "bad", "PROD profile: the database is read-only")
    return _chip("env", f"{env} 🟢", "ok", f"{env} profile")


def vault_chip(vault: dict[str, Any]) -> dict[str, str]:
    state = vault.get("state")
    if state == "unlocked":
        remaining = vault.get("autoLockRemainingMs")
        # Rounded up to the second: just unlocked for 15 minutes reads "15m", not "14m".
        when = (
            f"locks in {format_age(remaining + 999)}" if remaining is not None else "no auto-lock"
        )
        return _chip("vault", "Vault 🔓", "warn", f"Vault unlocked: {when}")
    if state == "locked":
        return _chip("vault", "Vault 🔒", "info", "Vault locked")
    return _chip("vault", "Vault –", "off", "No vault yet: simpleaide vault init")


def db_chip(db: dict[str, Any]) -> dict[str, str]:
    env, kind = db.get("env", "?"), db.get("type")
    ro = " RO" if db.get("readOnly") else ""
    if db.get("checking"):
        # Before the first probe answers (at start, after a reload): unknown, not off.
        what = f" ({kind})" if kind else ""
        return _chip(
            "db", f"DB …{ro}", "checking", f"{env} database{what}: checking, no answer yet"
        )
    if db.get("connected"):
        mode = "read-only" if db.get("readOnly") else "read-write"
        latency = db.get("latencyMs")
        timing = f", {latency:g} ms" if latency is not None else ""
        words = f"{env} database: {mode} ({kind}{timing})"
        warnings = db.get("warnings") or []
        if warnings:
            # Read-only transactions do not stop this role from reaching outside the database.
            return _chip("db", f"DB ⚠️{ro}", "warn", f"{words}; warning: " + "; ".join(warnings))
        return _chip("db", f"DB ✅{ro}", "ok", words)
    reason = db.get("error") or "not connected"
    return _chip("db", f"DB OFF{ro}", "off", f"{env} database: off ({reason})")


def llm_chip(llm: dict[str, Any]) -> dict[str, str]:
    """``LLM online/total``; ``LLM …`` (``checking``) until a backend's first probe answers:
    one not probed yet is not known to be offline."""
    backends = llm.get("backends") or []
    if not backends:
        return _chip("llm", "LLM –", "off", "LLM: no backends configured")
    online, total = int(llm.get("online") or 0), int(llm.get("total") or 0)
    waiting = [b for b in backends if not b.get("online") and b.get("checkedAt") is None]
    if len(waiting) == len(backends):
        return _chip(
            "llm", "LLM …", "checking", f"LLM: checking {plural(total, 'backend')}, no answer yet"
        )
    offline = total - online - len(waiting)
    level = "ok" if online == total else "checking" if offline <= 0 else "warn" if online else "bad"
    parts = [
        f"{b.get('name', '?')} online"
        if b.get("online")
        else f"{b.get('name', '?')}: checking, no answer yet"
        if b.get("checkedAt") is None
        else f"{b.get('name', '?')}: {b.get('error') or 'offline'}"
        for b in backends
    ]
    return _chip("llm", f"LLM {online}/{total}", level, "LLM: " + ", ".join(parts))


def last_run_words(last: dict[str, Any] | None) -> str | None:
    """``Last run failed 2m ago: <error>``, or ``None`` without runs."""
    if not last:
        return None
    words = f"Last run {last.get('status', '?')} {format_age(last.get('ageMs'))} ago"
    if last.get("errorMessage"):
        words += f": {last['errorMessage']}"
    return words


def plural(count: int, noun: str) -> str:
    """``1 run``, ``2 runs``, ``0 runs``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


_TITLE_CHARS = 40  # a title longer than this is cut in a tooltip


def _named_run(run: dict[str, Any], *, with_status: bool) -> str:
    """``<id> “<title>”`` (the title on one line, cut), and its status if asked."""
    words = str(run.get("id", "?"))
    title = " ".join(str(run.get("title") or "").split())
    if title:
        cut = title if len(title) <= _TITLE_CHARS else title[: _TITLE_CHARS - 1].rstrip() + "…"
        words += f" “{cut}”"
    if with_status:
        words += f" ({run.get('status', '?')})"
    return words


def active_runs_words(runs: dict[str, Any]) -> str:
    """``1 run running: <id> “fix the parser”``, the runs named while they are few (the
    document's ``activeRuns``), else ``5 runs running`` (``active`` when pending runs may be
    counted too)."""
    active = int(runs.get("active") or 0)
    named = runs.get("activeRuns") or []
    if named:
        running = all(r.get("status") == "running" for r in named)
    else:
        running = not runs.get("pending")  # then every active run runs
    words = f"{plural(active, 'run')} {'running' if running else 'active'}"
    if named:
        words += ": " + ", ".join(_named_run(r, with_status=not running) for r in named)
    return words


def runs_chip(runs: dict[str, Any]) -> dict[str, str]:
    active = int(runs.get("active") or 0)
    last = runs.get("last")
    last_words = last_run_words(last)
    if active > 0:
        tip = active_runs_words(runs)
        named = {r.get("id") for r in runs.get("activeRuns") or []}
        if last_words and (last or {}).get("id") not in named:
            tip += f"; l{last_words[1:]}"  # "; last run failed 2m ago"
        return _chip("runs", f"Run ⏳ {active}", "warn", tip)
    if not last or last_words is None:
        return _chip("runs", "Run –", "off", "No runs yet")
    status = last.get("status", "?")
    return _chip(
        "runs", f"Run {_RUN_MARKS.get(status, '?')}", _RUN_LEVELS.get(status, "info"), last_words
    )


def chips(doc: dict[str, Any]) -> list[dict[str, str]]:
    """The five chips of a status document, in header order.

    Every status query builds them, so each chip is reused while what it says stays the
    same: the db and llm sections are the same objects until a probe changes them, and the
    others are keyed by the few values their words depend on (ages in whole units). The
    chips returned are shared: callers must not change them.
    """
    vault, runs = doc["vault"], doc["runs"]
    remaining = vault.get("autoLockRemainingMs")
    last = runs.get("last") or {}
    return [
        _memo("env", doc["env"], env_chip, doc["env"]),
        _memo(
            "vault",
            (vault.get("state"), None if remaining is None else format_age(remaining + 999)),
            vault_chip,
            vault,
        ),
        _memo("db", id(doc["db"]), db_chip, doc["db"]),
        _memo("llm", id(doc["llm"]), llm_chip, doc["llm"]),
        _memo(
            "runs",
            (
                runs.get("active"),
                runs.get("pending"),
                tuple(
                    (r.get("id"), r.get("title"), r.get("status"))
                    for r in runs.get("activeRuns") or ()
                ),
                last.get("id"),
                last.get("status"),
                format_age(last.get("ageMs")),
                last.get("errorMessage"),
            ),
            runs_chip,
            runs,
        ),
    ]


# The last chip made of each kind: (key, the section it was made from, the chip). The section
# is kept so that an id() key cannot be reused by a new object while the entry lives.
_last: dict[str, tuple[object, object, dict[str, str]]] = {}


def _memo(
    name: str, key: object, make: Callable[[Any], dict[str, str]], section: Any
) -> dict[str, str]:
    hit = _last.get(name)
    if hit is not None and hit[0] == key:
        return hit[2]
    chip = make(section)
    _last[name] = (key, section, chip)
    return chip
