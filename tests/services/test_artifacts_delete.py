"""``artifacts.delete``: one artifact removed, durably, safely, with the caches left true;
against the real daemon on a real socket."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from simpleaided.domain.api import ArtifactDeleted
from tests.support.rpc import RpcClient
from tests.support.runs import new_run


def artifacts_dir(workspace: Path, run_id: str) -> Path:
    return workspace / ".simpleaide" / "runs" / run_id / "01_plan" / "artifacts"


async def run_with(client: RpcClient, workspace: Path, *names: str) -> str:
    run_id = str((await new_run(client, workspace, "plan", start=True))["id"])
    for name in names:
        await client.call("artifacts.put", runId=run_id, step=1, name=name, text=f"{name}\n")
    return run_id


async def listed(client: RpcClient, run_id: str) -> list[str]:
    return [a["name"] for a in await client.call("artifacts.list", runId=run_id)]


async def test_delete_removes_the_file_and_only_it(client: RpcClient, workspace: Path) -> None:
    run_id = await run_with(client, workspace, "plan.md", "notes.md")
    gone = ArtifactDeleted.model_validate(
        await client.call("artifacts.delete", runId=run_id, step=1, name="plan.md")
    )
    assert gone == ArtifactDeleted(runId=run_id, step=1, name="plan.md", deleted=True)
    assert sorted(os.listdir(artifacts_dir(workspace, run_id))) == ["notes.md"]
    assert await listed(client, run_id) == ["notes.md"]
    err = await client.error("artifacts.get", runId=run_id, step=1, name="plan.md")
    assert err.code == -32001
    # A second delete, or one of a name never saved, says there is no such artifact.
    for name in ("plan.md", "never.md"):
        err = await client.error("artifacts.delete", runId=run_id, step=1, name=name)
        assert err.code == -32001 and f"has no artifact '{name}'" in err.message
    err = await client.error("artifacts.delete", runId=run_id, step=2, name="notes.md")
    assert err.code == -32001 and "no step 2" in err.message
    err = await client.error(
        "artifacts.delete", runId="20261124T101500123Z-1a2b3c4d", step=1, name="notes.md"
    )
    assert err.code == -32001


async def test_the_folder_is_synced_after_the_name_is_gone(
    client: RpcClient, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Durable as every write of the store: once answered, the unlink survives a crash,
    because the folder that held the name was fsync'd after it went."""
    run_id = await run_with(client, workspace, "plan.md")
    folder = artifacts_dir(workspace, run_id)
    synced: list[tuple[str, bool]] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        target = os.readlink(f"/proc/self/fd/{fd}")
        synced.append((target, (folder / "plan.md").exists()))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)  # the daemon runs in this process
    await client.call("artifacts.delete", runId=run_id, step=1, name="plan.md")
    assert (str(folder), False) in synced


@pytest.mark.parametrize(
    "name", ["../../step.json", "a/b", ".hidden", "..", "", "x\u202eY", "e\u0301"]
)
async def test_a_name_that_is_not_one_artifact_is_refused_and_nothing_goes(
    client: RpcClient, workspace: Path, name: str
) -> None:
    run_id = await run_with(client, workspace, "plan.md")
    before = sorted(p.name for p in artifacts_dir(workspace, run_id).parent.rglob("*"))
    err = await client.error("artifacts.delete", runId=run_id, step=1, name=name)
    assert err.code == -32602
    assert "artifact name" in err.message
    assert sorted(p.name for p in artifacts_dir(workspace, run_id).parent.rglob("*")) == before


async def test_a_symlink_or_folder_in_its_place_is_refused_and_left_alone(
    client: RpcClient, workspace: Path, short_tmp: Path
) -> None:
    run_id = await run_with(client, workspace)
    folder = artifacts_dir(workspace, run_id)
    outside = short_tmp / "precious.txt"
    outside.write_text("keep me")
    (folder / "link.md").symlink_to(outside)
    (folder / "dir.md").mkdir()
    for name in ("link.md", "dir.md"):
        err = await client.error("artifacts.delete", runId=run_id, step=1, name=name)
        assert err.code == -32602 and "symlink or folder" in err.message, err.message
    assert (folder / "link.md").is_symlink() and (folder / "dir.md").is_dir()
    assert outside.read_text() == "keep me"


async def test_a_finished_run_may_lose_an_artifact_and_its_record_stays_as_it_was(
    client: RpcClient, workspace: Path
) -> None:
    run_id = await run_with(client, workspace, "big.log", "report.md")
    await client.call("steps.complete", runId=run_id, step=1)
    await client.call("runs.complete", runId=run_id)

    async def seen() -> tuple[Any, ...]:
        row = (await client.call("runs.list"))["runs"][0]
        run = await client.call("runs.get", runId=run_id, steps=True)
        runs = (await client.call("status.get"))["runs"]
        return row, run, {k: v for k, v in runs.items() if k != "last"}, runs["last"]["id"]

    before = await seen()
    await client.call("artifacts.delete", runId=run_id, step=1, name="big.log")
    assert await seen() == before
    assert await listed(client, run_id) == ["report.md"]


async def test_followers_hear_of_it(client: RpcClient, workspace: Path) -> None:
    run_id = await run_with(client, workspace, "plan.md")
    await client.call("runs.subscribe", runId=run_id)
    await client.call("artifacts.delete", runId=run_id, step=1, name="plan.md")
    note = await client.notification("run.event")
    (event,) = note["events"]
    assert event["type"] == "artifact" and event["runId"] == run_id
    assert event["artifact"] == {"runId": run_id, "step": 1, "name": "plan.md", "deleted": True}
