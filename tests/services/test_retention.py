"""Retention through the real daemon: ``runs.prune`` deletes finished runs beyond the limits,
never a pending or running one, and a dry run deletes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from simpleaided.app.daemon import Daemon
from simpleaided.domain import clock, names
from simpleaided.domain.errors import InvalidTransition
from simpleaided.domain.index import RunSummary
from simpleaided.domain.models import RunMetadata, RunStatus
from simpleaided.domain.retention import MS_PER_DAY
from simpleaided.store.runstore import WorkspaceStore
from tests.support.rpc import RpcClient


def write_run(workspace: Path, status: RunStatus, days_ago: float) -> str:
    """A run written straight into the store, started ``days_ago`` days ago and, if it
    finished, ended then too."""
    at_ms = clock.now_ms() - int(days_ago * MS_PER_DAY)
    at = clock.format_ms(at_ms)
    finished = status not in (RunStatus.PENDING, RunStatus.RUNNING)
    run = RunMetadata(
        id=names.new_run_id(at_ms),
        status=status,
        started_at=at,
        updated_at=at,
        completed_at=at if finished else None,
    )
    store = WorkspaceStore(str(workspace))
    store.init()
    store.create_run(run)
    return run.id


def run_dir(workspace: Path, run_id: str) -> Path:
    return workspace / ".simpleaide" / "runs" / run_id


def pruned(result: dict[str, Any]) -> list[str]:
    assert result["count"] == len(result["runs"])
    return [r["id"] for r in result["runs"]]


@pytest.fixture
async def history(client: RpcClient, workspace: Path) -> dict[str, str]:
    """Finished runs that ended 1, 3, 10 and 40 days ago, and a running and a pending run
    older than all of them, served by the daemon."""
    runs = {
        "d1": write_run(workspace, RunStatus.COMPLETED, 1),
        "d3": write_run(workspace, RunStatus.FAILED, 3),
        "d10": write_run(workspace, RunStatus.CANCELLED, 10),
        "d40": write_run(workspace, RunStatus.COMPLETED, 40),
        "running": write_run(workspace, RunStatus.RUNNING, 100),
        "pending": write_run(workspace, RunStatus.PENDING, 200),
    }
    await client.call("workspaces.add", path=str(workspace))
    return runs


async def test_dry_run_lists_without_deleting(
    client: RpcClient, workspace: Path, history: dict[str, str]
) -> None:
    result = await client.call("runs.prune", keep=2, dryRun=True)
    assert result["dryRun"] is True
    assert pruned(result) == [history["d10"], history["d40"]]  # newest first
    row = result["runs"][0]
    assert set(row) == {"id", "workspace", "status", "startedAt", "completedAt"}
    assert (row["workspace"], row["status"]) == (str(workspace), "cancelled")

    older = await client.call("runs.prune", olderThanDays=5, dryRun=True)
    assert pruned(older) == [history["d10"], history["d40"]]
    fractional = await client.call("runs.prune", olderThanDays=2.5, dryRun=True)
    assert pruned(fractional) == [history["d3"], history["d10"], history["d40"]]
    # Either limit selects: keep 3 spares d10, older than 5 days does not.
    both = await client.call("runs.prune", keep=3, olderThanDays=5, dryRun=True)
    assert pruned(both) == [history["d10"], history["d40"]]

    # Nothing went: on disk and in the index.
    for run_id in history.values():
        assert (run_dir(workspace, run_id) / "metadata.json").is_file()
    assert (await client.call("status.get"))["runs"]["total"] == 6


async def test_prune_deletes_and_never_touches_active_runs(
    client: RpcClient, workspace: Path, history: dict[str, str]
) -> None:
    result = await client.call("runs.prune", workspace=str(workspace), keep=0)
    assert result["dryRun"] is False
    finished = [history[k] for k in ("d1", "d3", "d10", "d40")]
    assert pruned(result) == finished
    for run_id in finished:
        assert not run_dir(workspace, run_id).exists()
    # The oldest runs of all, pending and running, stay.
    left = {r["id"]: r["status"] for r in (await client.call("runs.list"))["runs"]}
    assert left == {history["running"]: "running", history["pending"]: "pending"}
    assert run_dir(workspace, history["running"]).is_dir()
    assert run_dir(workspace, history["pending"]).is_dir()
    doc = await client.call("status.get")
    assert (doc["runs"]["total"], doc["runs"]["active"]) == (2, 1)
    # Again: nothing left to prune.
    assert pruned(await client.call("runs.prune", keep=0, olderThanDays=0.001)) == []


async def test_keep_applies_per_workspace(client: RpcClient, short_tmp: Path) -> None:
    a, b = short_tmp / "a", short_tmp / "b"
    a.mkdir()
    b.mkdir()
    runs_a = [write_run(a, RunStatus.COMPLETED, days) for days in (1, 2, 3)]
    runs_b = [write_run(b, RunStatus.FAILED, days) for days in (1.5, 2.5, 3.5)]
    for path in (a, b):
        await client.call("workspaces.add", path=str(path))

    only_a = await client.call("runs.prune", workspace=str(a), keep=1, dryRun=True)
    assert pruned(only_a) == runs_a[1:]
    everywhere = await client.call("runs.prune", keep=1)
    assert set(pruned(everywhere)) == {*runs_a[1:], *runs_b[1:]}
    left = {r["id"] for r in (await client.call("runs.list"))["runs"]}
    assert left == {runs_a[0], runs_b[0]}


async def test_a_run_that_became_active_meanwhile_is_kept(
    client: RpcClient,
    daemon: Daemon,
    workspace: Path,
    history: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The run service re-reads each run under its lock before deleting it: a selection
    that went stale (here: forced to include active runs) never deletes an active run."""
    from simpleaided.services import retention

    def stale(summaries: Any, **limits: Any) -> list[RunSummary]:
        return sorted(summaries, key=RunSummary.latest_key, reverse=True)

    monkeypatch.setattr(retention, "select_for_pruning", stale)
    result = await client.call("runs.prune", keep=0)
    assert set(pruned(result)) == {history[k] for k in ("d1", "d3", "d10", "d40")}
    for key in ("running", "pending"):
        assert run_dir(workspace, history[key]).is_dir()
        with pytest.raises(InvalidTransition, match="cannot move to deleted"):
            await daemon.runs.delete_run(history[key], finished_only=True)
    # A plain delete of a pending run still works as before.
    await client.call("runs.delete", runId=history["pending"])
    assert not run_dir(workspace, history["pending"]).exists()


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"dryRun": True},
        {"keep": -1},
        {"keep": 1.5},
        {"olderThanDays": 0},
        {"olderThanDays": -2},
        {"olderThanDays": 1e9},
        {"keep": 1, "force": True},
        {"keep": 1, "workspace": "relative/path"},
    ],
)
async def test_invalid_params(client: RpcClient, params: dict[str, Any]) -> None:
    err = await client.error("runs.prune", **params)
    assert err.code == -32602


async def test_unknown_workspace(client: RpcClient, short_tmp: Path) -> None:
    err = await client.error("runs.prune", workspace=str(short_tmp / "nope"), keep=1)
    assert err.code == -32001
