"""The status document: its schema (pydantic models, for ``rpc.discover`` and tests) and the
pure functions that compute its sections from the index.

The hot path builds plain dicts (a status query must cost microseconds); the models describe
the same shape and a test checks every built document against them, so they cannot drift.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from simpleaided.domain import clock
from simpleaided.domain.index import RunIndex, RunSummary, Tally
from simpleaided.domain.models import RunStatus
from simpleaided.domain.vocabulary import DbKind, EnvProfile, LlmKind, VaultState

NOT_CONFIGURED = "not configured"
"""The database section's error while the profile names no database (and none is adopted)."""


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LastRun(_Doc):
    """The most recently started run."""

    id: str
    status: str
    startedAt: str
    completedAt: str | None
    ageMs: int
    errorMessage: str | None


class ActiveRun(_Doc):
    """One of the runs ``active`` counts, named in the Run chip's tooltip."""

    id: str
    title: str | None
    status: str


class RunsSection(_Doc):
    """Counts of runs; ``active`` counts running runs (and pending ones when configured).
    ``activeRuns`` names them, the most recently started first, while they are at most
    ``NAMED_ACTIVE`` (3); with more it is empty (the chip counts them)."""

    active: int
    busy: bool
    pending: int
    total: int
    last: LastRun | None
    activeRuns: list[ActiveRun]


class VaultSection(_Doc):
    """The secrets vault."""

    state: VaultState
    autoLockRemainingMs: int | None


class DbSection(_Doc):
    """The database of the active profile, from the last probe (``readOnly`` is read back
    from the database session when connected; when not, it is true in PROD). ``warnings``
    says what a read-only session's role could still do beyond reading (a PostgreSQL
    superuser writes server files and runs programs), checked when it connected.
    ``checking`` is true from the daemon's start (or a new target: a reload, a workspace
    adopted) until the first probe answers: not connected, but not known to be off either."""

    connected: bool
    checking: bool
    type: DbKind | None
    env: EnvProfile
    readOnly: bool
    latencyMs: float | None
    error: str | None
    checkedAt: str | None
    warnings: list[str]


class LlmBackend(_Doc):
    """One LLM backend and its last probe: online means reachable, models listed, and the
    configured model (if any) among them."""

    name: str
    kind: LlmKind
    url: str
    model: str | None
    online: bool
    latencyMs: float | None
    models: list[str]
    error: str | None
    checkedAt: str | None


class LlmSection(_Doc):
    """The configured LLM backends."""

    online: int
    total: int
    backends: list[LlmBackend]


class ApiSection(_Doc):
    """Where clients reach the daemon."""

    enabled: bool
    url: str | None
    port: int | None
    socket: str


class Chip(_Doc):
    """One header chip in words (see ``simpleaided.domain.chips``)."""

    name: Literal["env", "vault", "db", "llm", "runs"]
    text: str
    # ``checking``: not known yet (the database before its first probe answers).
    level: Literal["ok", "info", "warn", "bad", "off", "checking"]
    tooltip: str
    href: str


class StatusDocument(_Doc):
    """What ``status.get``, ``GET /api/status`` and ``status.changed`` carry."""

    env: EnvProfile
    generatedAt: str
    runs: RunsSection
    vault: VaultSection
    db: DbSection
    llm: LlmSection
    api: ApiSection
    warnings: list[str]
    chips: list[Chip]


# The tallies count ``RunSummary.status`` strings; looking an enum member up costs more
# than the count it keys, and every status query reads these.
_RUNNING: str = RunStatus.RUNNING.value
_PENDING: str = RunStatus.PENDING.value
_RUNNING_ONLY = frozenset({_RUNNING})
_RUNNING_OR_PENDING = frozenset({_RUNNING, _PENDING})

NAMED_ACTIVE = 3
"""Up to how many active runs the runs section names (``activeRuns``)."""


def active_count(tally: Tally, *, count_pending: bool) -> int:
    """Runs counted as active: running ones, and pending ones when so configured."""
    running = tally.counts[_RUNNING]
    return running + tally.counts[_PENDING] if count_pending else running


# The rendered fields of the latest run, for as long as it stays the latest: every status
# query shows it, and rendering its timestamps would cost more than the rest of the section.
_last_rendered: tuple[RunSummary | None, dict[str, Any]] = (None, {})


def _last_run_fields(latest: RunSummary) -> dict[str, Any]:
    global _last_rendered
    summary, fields = _last_rendered  # one read: consistent even if another thread renders
    if summary is not latest:
        fields = {
            "id": latest.id,
            "status": latest.status,
            "startedAt": latest.started_at,
            "completedAt": latest.completed_at,
            # An addition to the document's first design: lets a status line's tooltip say why
            # it failed without a second request (and a disk read) on every poll.
            "errorMessage": latest.error_message,
        }
        _last_rendered = (latest, fields)
    return fields


# The active runs last named: (the index, what they were read for, the runs). Every status
# query in a new millisecond builds the section; the index changes far less often.
_named: tuple[RunIndex | None, tuple[int, str | None, bool], list[dict[str, Any]]] = (
    None,
    (0, None, False),
    [],
)


def _active_runs(
    index: RunIndex, workspace: str | None, count_pending: bool, active: int
) -> list[dict[str, Any]]:
    """The active runs when there are few of them (``NAMED_ACTIVE``), else none."""
    global _named
    if not 0 < active <= NAMED_ACTIVE:
        return []
    key = (index.version, workspace, count_pending)
    named_index, named_key, runs = _named  # one read: consistent even if another thread names
    if named_index is index and named_key == key:
        return runs
    statuses = _RUNNING_OR_PENDING if count_pending else _RUNNING_ONLY
    runs = [
        {"id": s.id, "title": s.title, "status": s.status}
        for s in index.live(statuses, limit=NAMED_ACTIVE, workspace=workspace)
    ]
    _named = (index, key, runs)
    return runs


def runs_section(
    index: RunIndex, now: int, *, workspace: str | None = None, count_pending: bool = False
) -> dict[str, Any]:
    """The ``runs`` section, computed from memory at time ``now`` (epoch ms)."""
    tally = index.tally(workspace)
    active = active_count(tally, count_pending=count_pending)
    latest = index.latest(workspace)
    last: dict[str, Any] | None = None
    if latest is not None:
        since = latest.completed_ms if latest.completed_ms is not None else latest.started_ms
        last = {**_last_run_fields(latest), "ageMs": clock.age_ms(since, now)}
    return {
        "active": active,
        "busy": active > 0,
        "pending": tally.counts[_PENDING],
        "total": tally.total,
        "last": last,
        "activeRuns": _active_runs(index, workspace, count_pending, active),
    }


def unconfigured_sections(env: EnvProfile, socket_path: str) -> dict[str, dict[str, Any]]:
    """The vault, db, llm and api sections as they read before those services exist."""
    return {
        "vault": {"state": "uninitialized", "autoLockRemainingMs": None},
        "db": {
            "connected": False,
            "checking": False,
            "type": None,
            "env": env,
            "readOnly": env == "PROD",
            "latencyMs": None,
            "error": NOT_CONFIGURED,
            "checkedAt": None,
            "warnings": [],
        },
        "llm": {"online": 0, "total": 0, "backends": []},
        "api": {"enabled": False, "url": None, "port": None, "socket": socket_path},
    }
