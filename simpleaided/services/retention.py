"""``runs.prune``: delete the finished runs beyond the retention limits.

The selection is ``domain.retention``'s, over the index. Each run is then deleted through the
run service, which re-reads it under its lock: a run that was rerun (pending again) or
started meanwhile is kept, and left out of the answer.
"""

from __future__ import annotations

import logging
from typing import Any

from simpleaided.domain import api, clock
from simpleaided.domain.errors import SimpleaideError
from simpleaided.domain.index import RunSummary
from simpleaided.domain.retention import MS_PER_DAY, select_for_pruning
from simpleaided.services.runs import RunService

log = logging.getLogger(__name__)


def _row(summary: RunSummary) -> dict[str, Any]:
    return {
        "id": summary.id,
        "workspace": summary.workspace,
        "status": summary.status,
        "startedAt": summary.started_at,
        "completedAt": summary.completed_at,
    }


async def prune_runs(runs: RunService, params: api.PruneRunsParams) -> dict[str, Any]:
    """Delete (or, in a dry run, list) the finished runs beyond ``keep`` per workspace or
    older than ``olderThanDays``, newest first."""
    older_than_ms = None
    if params.older_than_days is not None:
        older_than_ms = int(params.older_than_days * MS_PER_DAY)
    selected = select_for_pruning(
        runs.index.summaries(runs.scope(params.workspace)),
        now_ms=clock.now_ms(),
        keep=params.keep,
        older_than_ms=older_than_ms,
    )
    if not params.dry_run:
        deleted: list[RunSummary] = []
        for summary in selected:
            try:
                await runs.delete_run(summary.id, finished_only=True)
            except SimpleaideError as exc:
                log.info("prune: run %s kept: %s", summary.id, exc)
                continue
            deleted.append(summary)
        selected = deleted
        if deleted:
            log.info("prune: %d run(s) deleted", len(deleted))
    rows = [_row(summary) for summary in selected]
    return {"dryRun": params.dry_run, "runs": rows, "count": len(rows)}
