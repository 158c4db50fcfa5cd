"""``runs.*``: create, read, find by prefix, finish, delete and prune runs; follow their
events."""

from __future__ import annotations

from typing import Any

from simpleaided.domain import api
from simpleaided.domain.models import RunStatus
from simpleaided.services.events import EventHub
from simpleaided.services.retention import prune_runs
from simpleaided.services.runs import RunService
from simpleaided.transports.methods.base import MethodList
from simpleaided.transports.rpc import Method


def run_methods(runs: RunService, events: EventHub) -> list[Method]:
    """Every ``runs.*`` method."""
    methods = MethodList()
    add = methods.add

    @add("runs.create", api.CreateRunParams, api.RunView, "Create a pending run.")
    async def runs_create(p: api.CreateRunParams, conn: Any) -> dict[str, Any]:
        return await runs.create_run(p.workspace, p.title, p.owner_pid)

    @add("runs.get", api.GetRunParams, api.RunView, "A run (with its steps if asked).")
    async def runs_get(p: api.GetRunParams, conn: Any) -> dict[str, Any]:
        return await runs.get_run(p.run_id, steps=p.steps)

    @add("runs.list", api.ListRunsParams, api.RunPage, "Runs, newest first, paginated.")
    def runs_list(p: api.ListRunsParams, conn: Any) -> dict[str, Any]:
        return runs.list_runs(p)

    @add(
        "runs.resolve",
        api.ResolveRunsParams,
        api.RunMatches,
        "The runs whose id starts with a prefix (newest first) and how many match.",
    )
    def runs_resolve(p: api.ResolveRunsParams, conn: Any) -> dict[str, Any]:
        return runs.resolve_runs(p)

    @add(
        "runs.complete",
        api.CompleteRunParams,
        api.RunView,
        "Mark a running run completed; refused while a step is open, unless force (which "
        "closes them).",
    )
    async def runs_complete(p: api.CompleteRunParams, conn: Any) -> dict[str, Any]:
        return await runs.finish_run(p.run_id, RunStatus.COMPLETED, force=p.force)

    @add("runs.fail", api.FailRunParams, api.RunView, "Mark a running run failed.")
    async def runs_fail(p: api.FailRunParams, conn: Any) -> dict[str, Any]:
        return await runs.finish_run(p.run_id, RunStatus.FAILED, p.error_message)

    @add("runs.cancel", api.RunRef, api.RunView, "Cancel a pending or running run.")
    async def runs_cancel(p: api.RunRef, conn: Any) -> dict[str, Any]:
        return await runs.finish_run(p.run_id, RunStatus.CANCELLED)

    @add("runs.delete", api.DeleteRunParams, api.Deleted, "Delete a run (running: with force).")
    async def runs_delete(p: api.DeleteRunParams, conn: Any) -> dict[str, Any]:
        return await runs.delete_run(p.run_id, force=p.force)

    @add("runs.prune", api.PruneRunsParams, api.PruneResult, "Delete old finished runs.")
    async def runs_prune(p: api.PruneRunsParams, conn: Any) -> dict[str, Any]:
        return await prune_runs(runs, p)

    @add("runs.activeCount", api.ScopeParams, int, "How many runs are running.")
    def runs_active_count(p: api.ScopeParams, conn: Any) -> int:
        return runs.active_count(p.workspace)

    @add("runs.latest", api.ScopeParams, api.LatestRun | None, "The most recently started run.")
    def runs_latest(p: api.ScopeParams, conn: Any) -> dict[str, Any] | None:
        return runs.latest(p.workspace)

    @add(
        "runs.subscribe",
        api.RunScopeParams,
        api.RunSubscribed,
        "Stream run.event notifications (one run, or all) on this connection.",
    )
    def runs_subscribe(p: api.RunScopeParams, conn: Any) -> dict[str, Any]:
        return events.subscribe_runs(conn, p.run_id)

    @add("runs.unsubscribe", api.NoParams, api.Unsubscribed, "Stop run.event notifications.")
    def runs_unsubscribe(p: api.NoParams, conn: Any) -> dict[str, Any]:
        return {"unsubscribed": events.unsubscribe_runs(conn)}

    @add("runs.busy", api.ScopeParams, bool, "Whether any run is running.")
    def runs_busy(p: api.ScopeParams, conn: Any) -> bool:
        return runs.active_count(p.workspace) > 0

    return methods
