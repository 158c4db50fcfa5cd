"""The in-memory index of runs: one small summary per run, with counts kept up to date.

Every change to the index goes through ``RunIndex.put`` and ``RunIndex.discard``, so the
counters and the ordering can never drift from the summaries. Queries never touch the disk.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from simpleaided.domain import clock
from simpleaided.domain.models import CORRUPT, RunMetadata, RunStatus

_ACTIVE = frozenset({RunStatus.PENDING.value, RunStatus.RUNNING.value})


@dataclass(slots=True)
class RunSummary:
    """What the daemon keeps in memory about one run: a slotted record of small values.

    Treated as immutable (the index replaces a summary whole, never assigns to one) but not
    declared ``frozen``: a frozen dataclass's ``__init__`` sets each field through
    ``object.__setattr__`` and costs 6x as much (2.8 against 0.47 µs), which was a fifth of
    the time a 10k-run start spends loading its snapshot.
    """

    id: str
    workspace: str
    status: str
    title: str | None
    # Times as epoch milliseconds: an int takes 32 bytes, its ISO string 73 (at 100k runs,
    # some 20 MB); they are rendered when shown (``started_at`` and friends).
    started_ms: int  # 0 for a corrupt run
    completed_ms: int | None
    updated_ms: int | None
    step_count: int
    error_message: str | None
    owner_pid: int | None = None
    owner_start_time: int | None = None

    @classmethod
    def of(cls, run: RunMetadata, workspace: str) -> RunSummary:
        """The summary of a parsed run record."""
        completed_ms = clock.parse_ms(run.completed_at) if run.completed_at else None
        updated_ms = clock.parse_ms(run.updated_at) if run.updated_at else None
        return cls(
            id=run.id,
            workspace=workspace,
            status=run.status.value,
            title=run.title,
            started_ms=clock.parse_ms(run.started_at),
            completed_ms=completed_ms,
            # A finished run was last written when it finished: one int object for both.
            updated_ms=completed_ms if updated_ms == completed_ms else updated_ms,
            step_count=run.step_count,
            error_message=run.error_message,
            owner_pid=run.owner_pid,
            owner_start_time=run.owner_start_time,
        )

    @classmethod
    def corrupt(cls, run_id: str, workspace: str, reason: str) -> RunSummary:
        """The summary of a run whose metadata cannot be read; ``reason`` says why."""
        return cls(
            id=run_id,
            workspace=workspace,
            status=CORRUPT,
            title=None,
            started_ms=0,
            completed_ms=None,
            updated_ms=None,
            step_count=0,
            error_message=reason,
            owner_pid=None,
        )

    @property
    def started_at(self) -> str | None:
        """When the run started, as the store writes it (``None`` for a corrupt run)."""
        return None if self.status == CORRUPT else clock.format_ms(self.started_ms)

    @property
    def completed_at(self) -> str | None:
        """When the run finished, if it did."""
        return None if self.completed_ms is None else clock.format_ms(self.completed_ms)

    @property
    def updated_at(self) -> str | None:
        """When the run's record was last written."""
        return None if self.updated_ms is None else clock.format_ms(self.updated_ms)

    def latest_key(self) -> tuple[int, str]:
        """Sort key of "most recently started"."""
        return (self.started_ms, self.id)

    def to_wire(self) -> dict[str, object]:
        """The summary as the wire shows it (``runs.list`` rows)."""
        return {
            "id": self.id,
            "workspace": self.workspace,
            "status": self.status,
            "title": self.title,
            "startedAt": self.started_at,
            "completedAt": self.completed_at,
            "updatedAt": self.updated_at,
            "stepCount": self.step_count,
            "errorMessage": self.error_message,
        }


class Tally:
    """Counts by status and the latest started run, for one scope (all, or one workspace)."""

    __slots__ = ("_latest", "_latest_stale", "counts")

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._latest: RunSummary | None = None
        self._latest_stale = False

    @property
    def total(self) -> int:
        """How many runs the scope holds, corrupt ones included."""
        return sum(self.counts.values())

    def add(self, summary: RunSummary) -> None:
        self.counts[summary.status] += 1
        if summary.status == CORRUPT or self._latest_stale:
            return
        if self._latest is None or summary.latest_key() >= self._latest.latest_key():
            self._latest = summary

    def add_many(self, summaries: list[RunSummary]) -> None:
        """``add`` each of ``summaries``, in one pass."""
        self.counts.update(summary.status for summary in summaries)
        if self._latest_stale:
            return
        newest = max(
            (s for s in summaries if s.status != CORRUPT), key=RunSummary.latest_key, default=None
        )
        if newest is not None and (
            self._latest is None or newest.latest_key() >= self._latest.latest_key()
        ):
            self._latest = newest

    def remove(self, summary: RunSummary) -> None:
        self.counts[summary.status] -= 1
        if self.counts[summary.status] <= 0:
            del self.counts[summary.status]
        if self._latest is not None and self._latest.id == summary.id:
            # Found again lazily on the next read: removals of the latest run are rare.
            self._latest = None
            self._latest_stale = True

    def replace(self, old: RunSummary, new: RunSummary) -> None:
        """``old`` became ``new`` (same id): a status change keeps the latest without a search."""
        was_latest = self._latest is not None and self._latest.id == old.id
        self.remove(old)
        if was_latest and new.status != CORRUPT and new.latest_key() == old.latest_key():
            self._latest, self._latest_stale = new, False
            self.counts[new.status] += 1
        else:
            self.add(new)

    def latest(self, summaries: Iterator[RunSummary]) -> RunSummary | None:
        """The most recently started run; ``summaries`` is the scope, read only if needed."""
        if self._latest_stale:
            self._latest = max(
                (s for s in summaries if s.status != CORRUPT),
                key=RunSummary.latest_key,
                default=None,
            )
            self._latest_stale = False
        return self._latest


class RunIndex:
    """All indexed runs, by id, ordered by id (creation time), with per-scope tallies."""

    def __init__(self) -> None:
        self._runs: dict[str, RunSummary] = {}
        self._order: list[str] = []
        self.all = Tally()
        self._by_workspace: dict[str, Tally] = {}
        # Active runs that name an owner process, so checking owners never walks every run.
        self._owned: dict[str, tuple[int, int | None]] = {}
        # Pending and running runs, so naming the active ones never walks every run.
        self._live: dict[str, RunSummary] = {}
        # Counts every change: what is computed from the index stays valid while it holds.
        self.version = 0

    def __len__(self) -> int:
        return len(self._runs)

    def __contains__(self, run_id: object) -> bool:
        return run_id in self._runs

    def get(self, run_id: str) -> RunSummary | None:
        """The summary of ``run_id``, or ``None``."""
        return self._runs.get(run_id)

    def put(self, summary: RunSummary) -> RunSummary | None:
        """Insert or replace a summary; returns the one it replaced."""
        old = self._runs.get(summary.id)
        self._runs[summary.id] = summary
        self.version += 1
        if summary.owner_pid is not None and summary.status in _ACTIVE:
            self._owned[summary.id] = (summary.owner_pid, summary.owner_start_time)
        else:
            self._owned.pop(summary.id, None)
        if summary.status in _ACTIVE:
            self._live[summary.id] = summary
        else:
            self._live.pop(summary.id, None)
        if old is not None and old.workspace == summary.workspace:
            self.all.replace(old, summary)
            self._by_workspace[summary.workspace].replace(old, summary)
            return old
        if old is not None:
            self._untally(old)
        else:
            bisect.insort(self._order, summary.id)
        self.all.add(summary)
        self._by_workspace.setdefault(summary.workspace, Tally()).add(summary)
        return old

    def put_new(self, summaries: list[RunSummary]) -> None:
        """Insert many summaries at once, none of whose ids is indexed yet (a workspace
        being loaded): what ``put`` would do for each, at a fraction of the cost."""
        if not summaries:
            return
        runs = self._runs
        for summary in summaries:
            if summary.id in runs:
                raise ValueError(f"put_new() got run {summary.id}, which is already indexed")
        for summary in summaries:
            runs[summary.id] = summary
            if summary.owner_pid is not None and summary.status in _ACTIVE:
                self._owned[summary.id] = (summary.owner_pid, summary.owner_start_time)
            if summary.status in _ACTIVE:
                self._live[summary.id] = summary
        self.version += 1
        ids = [summary.id for summary in summaries]
        ids.sort()
        if self._order and ids[0] < self._order[-1]:
            self._order.extend(ids)
            self._order.sort()  # two sorted runs: one linear merge
        else:
            self._order.extend(ids)
        by_workspace: dict[str, list[RunSummary]] = {}
        for summary in summaries:
            by_workspace.setdefault(summary.workspace, []).append(summary)
        self.all.add_many(summaries)
        for workspace, members in by_workspace.items():
            self._by_workspace.setdefault(workspace, Tally()).add_many(members)

    def discard(self, run_id: str) -> RunSummary | None:
        """Remove ``run_id`` if present; returns the removed summary."""
        old = self._runs.pop(run_id, None)
        if old is not None:
            self.version += 1
            self._owned.pop(run_id, None)
            self._live.pop(run_id, None)
            self._untally(old)
            pos = bisect.bisect_left(self._order, run_id)
            del self._order[pos]
        return old

    def _untally(self, old: RunSummary) -> None:
        self.all.remove(old)
        self._by_workspace[old.workspace].remove(old)

    def tally(self, workspace: str | None = None) -> Tally:
        """The tally of one workspace, or of all runs."""
        if workspace is None:
            return self.all
        return self._by_workspace.get(workspace) or Tally()

    def latest(self, workspace: str | None = None) -> RunSummary | None:
        """The most recently started run, overall or in ``workspace``."""
        return self.tally(workspace).latest(self.summaries(workspace))

    def owned(self) -> list[tuple[str, int, int | None]]:
        """``(run id, owner pid, owner start time)`` of every pending or running run that
        names its owner."""
        return [(run_id, pid, start) for run_id, (pid, start) in self._owned.items()]

    def live(
        self, statuses: frozenset[str], *, limit: int, workspace: str | None = None
    ) -> list[RunSummary]:
        """Up to ``limit`` pending or running runs whose status is in ``statuses`` (in
        ``workspace``, if given), the most recently started first: a walk of the active runs
        only."""
        found = [
            s
            for s in self._live.values()
            if s.status in statuses and (workspace is None or s.workspace == workspace)
        ]
        found.sort(key=RunSummary.latest_key, reverse=True)
        return found[:limit]

    def summaries(self, workspace: str | None = None) -> Iterator[RunSummary]:
        """Every summary, overall or in ``workspace``, in no particular order."""
        runs = self._runs.values()
        if workspace is None:
            return iter(runs)
        return (s for s in runs if s.workspace == workspace)

    def ids_in_workspace(self, workspace: str) -> list[str]:
        """The ids of every run indexed for ``workspace``."""
        return [s.id for s in self._runs.values() if s.workspace == workspace]

    def matching(
        self, prefix: str, *, limit: int, workspace: str | None = None
    ) -> tuple[list[RunSummary], int]:
        """The runs whose id starts with ``prefix`` (in ``workspace``, if given), newest
        first, at most ``limit`` of them; and how many there are in all.

        Two bisections find the ids sharing the prefix (ids are ordered); only a workspace
        filter reads the summaries between them."""
        start = bisect.bisect_left(self._order, prefix)
        # Every id is ASCII: none sorts at or after the prefix followed by the last code point.
        end = bisect.bisect_left(self._order, prefix + "\U0010ffff", start)
        if workspace is None:
            ids = self._order[max(start, end - limit) : end]
            return [self._runs[run_id] for run_id in reversed(ids)], end - start
        out: list[RunSummary] = []
        count = 0
        for pos in range(end - 1, start - 1, -1):
            summary = self._runs[self._order[pos]]
            if summary.workspace != workspace:
                continue
            count += 1
            if len(out) < limit:
                out.append(summary)
        return out, count

    def page(
        self,
        *,
        limit: int,
        before: str | None = None,
        workspace: str | None = None,
        statuses: frozenset[str] | None = None,
    ) -> list[RunSummary]:
        """Newest first: up to ``limit`` runs with an id below ``before``, filtered."""
        end = len(self._order) if before is None else bisect.bisect_left(self._order, before)
        out: list[RunSummary] = []
        for pos in range(end - 1, -1, -1):
            summary = self._runs[self._order[pos]]
            if workspace is not None and summary.workspace != workspace:
                continue
            if statuses is not None and summary.status not in statuses:
                continue
            out.append(summary)
            if len(out) >= limit:
                break
        return out
