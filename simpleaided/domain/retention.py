"""Retention: which finished runs a prune removes.

Only finished runs (completed, failed, cancelled) are ever selected: never a pending or
running one, and never a corrupt one (its status is unknown; ``runs.delete`` removes it).
A run goes when it is beyond either limit:

* ``keep``: more than ``keep`` finished runs are newer than it in its workspace;
* ``older_than_ms``: it ended (or, without an end, started) longer ago than that.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from simpleaided.domain.index import RunSummary
from simpleaided.domain.states import FINISHED_RUN

MS_PER_DAY = 86_400_000
_FINISHED = frozenset(status.value for status in FINISHED_RUN)


def select_for_pruning(
    summaries: Iterable[RunSummary],
    *,
    now_ms: int,
    keep: int | None = None,
    older_than_ms: int | None = None,
) -> list[RunSummary]:
    """The finished runs beyond ``keep`` (per workspace) or older than ``older_than_ms``,
    newest first; with neither limit, none."""
    if keep is None and older_than_ms is None:
        return []
    by_workspace: defaultdict[str, list[RunSummary]] = defaultdict(list)
    for summary in summaries:
        if summary.status in _FINISHED:
            by_workspace[summary.workspace].append(summary)
    chosen: list[RunSummary] = []
    for runs in by_workspace.values():
        runs.sort(key=RunSummary.latest_key, reverse=True)
        for rank, summary in enumerate(runs):
            beyond_keep = keep is not None and rank >= keep
            too_old = older_than_ms is not None and _age_ms(summary, now_ms) > older_than_ms
            if beyond_keep or too_old:
                chosen.append(summary)
    chosen.sort(key=RunSummary.latest_key, reverse=True)
    return chosen


def _age_ms(summary: RunSummary, now_ms: int) -> int:
    """How long ago the run ended, or started if it has no end (never negative)."""
    end = summary.completed_ms if summary.completed_ms is not None else summary.started_ms
    return max(now_ms - end, 0)
