"""Every method, against the real daemon on a real socket."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest

from simpleaided.app.daemon import Daemon
from simpleaided.domain import clock
from simpleaided.domain.api import ArtifactInfo, DaemonInfo, RunPage, RunView, StepChange
from simpleaided.domain.status import StatusDocument
from tests.support.daemon import running_daemon
from tests.support.files import tree
from tests.support.rpc import RpcClient
from tests.support.runs import new_run


async def test_ping_info_and_discover(client: RpcClient, daemon: Daemon, socket_path: Path) -> None:
    assert await client.call("daemon.ping") == "pong"
    info = DaemonInfo.model_validate(await client.call("daemon.info"))
    assert info.pid == os.getpid() and info.uid == os.getuid()
    assert info.socket == str(socket_path)
    assert info.maxMessageBytes == 16 * 1024 * 1024
    assert set(info.framings) == {"ndjson", "content-length"}
    doc = await client.call("rpc.discover")
    assert doc["openrpc"].startswith("1.")
    names = {m["name"] for m in doc["methods"]}
    assert names == set(daemon.dispatcher.methods)
    create = next(m for m in doc["methods"] if m["name"] == "runs.create")
    assert {p["name"]: p["required"] for p in create["params"]} == {
        "workspace": True,
        "title": False,
        "ownerPid": False,
    }
    fail = next(m for m in doc["methods"] if m["name"] == "steps.fail")
    assert {p["name"] for p in fail["params"]} == {"runId", "step", "errorMessage", "failRun"}
    # Every $ref in the document resolves inside it.
    refs = {r.split("/")[-1] for r in _refs(doc)}
    assert refs and refs <= set(doc["components"]["schemas"])


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if "$ref" in node else []
        return own + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


async def test_workspaces(client: RpcClient, workspace: Path, short_tmp: Path) -> None:
    assert await client.call("workspaces.list") == []
    added = await client.call("workspaces.add", path=str(workspace))
    assert added == {"path": str(workspace), "runs": 0, "source": "added"}
    assert (workspace / ".simpleaide" / "runs").is_dir()
    # A second add is idempotent; a symlinked path is the same workspace.
    (short_tmp / "link").symlink_to(workspace)
    assert (await client.call("workspaces.add", path=str(short_tmp / "link")))["path"] == str(
        workspace
    )
    assert len(await client.call("workspaces.list")) == 1
    await new_run(client, workspace)
    assert (await client.call("workspaces.list"))[0]["runs"] == 1
    # Remembered across restarts in the state file.
    state = json.loads((short_tmp / "state" / "workspaces.json").read_text())
    assert state == {"workspaces": [str(workspace)], "configured": [], "removed": []}
    removed = await client.call("workspaces.remove", path=str(workspace))
    assert removed == {"path": str(workspace), "removed": True}
    # Remembered as removed: no client serves it again on its own.
    state = json.loads((short_tmp / "state" / "workspaces.json").read_text())
    assert state == {
        "workspaces": [],
        "configured": [],
        "removed": [{"path": str(workspace), "by": "remove"}],
    }
    assert await client.call("workspaces.list") == []
    assert (await client.call("status.get"))["runs"]["total"] == 0
    assert (workspace / ".simpleaide" / "runs").is_dir()  # files stay
    err = await client.error("workspaces.remove", path=str(workspace))
    assert err.code == -32001
    err = await client.error("workspaces.add", path=str(short_tmp / "missing"))
    assert err.code == -32001 and "does not exist" in err.message


async def test_run_lifecycle_and_status(client: RpcClient, workspace: Path) -> None:
    run = RunView.model_validate(await new_run(client, workspace, title="first"))
    assert run.status == "pending" and run.step_count == 0 and run.workspace == str(workspace)
    assert run.title == "first"
    assert await client.call("runs.activeCount") == 0
    assert await client.call("runs.busy") is False

    change = StepChange.model_validate(
        await client.call("steps.create", runId=run.id, name="plan", start=True)
    )
    assert change.step.number == 1 and change.step.folder == "01_plan"
    assert change.run.status == "running"  # the bug of the original storage: never left pending
    assert await client.call("runs.activeCount") == 1
    assert await client.call("runs.busy") is True
    latest = await client.call("runs.latest")
    assert latest == {
        "id": run.id,
        "status": "running",
        "startedAt": run.started_at,
        "completedAt": None,
    }

    doc = StatusDocument.model_validate(await client.call("status.get"))
    assert doc.env == "DEV"
    assert doc.runs.active == 1 and doc.runs.busy and doc.runs.total == 1
    assert doc.runs.last is not None and doc.runs.last.id == run.id and doc.runs.last.ageMs >= 0
    assert doc.vault.state == "uninitialized"
    assert doc.db.type == "sqlite"  # the default file of the workspace runs.create served
    assert doc.llm.total == 0 and doc.api.enabled is False

    await client.call("steps.complete", runId=run.id, step=1)
    await client.call("steps.create", runId=run.id, name="code")
    await client.call("steps.start", runId=run.id, step=2)
    await client.call("steps.complete", runId=run.id, step=2)
    done = await client.call("runs.complete", runId=run.id)
    assert done["status"] == "completed" and done["completedAt"] is not None
    assert await client.call("runs.busy") is False

    got = await client.call("runs.get", runId=run.id, steps=True)
    assert [(s["number"], s["name"], s["status"]) for s in got["steps"]] == [
        (1, "plan", "completed"),
        (2, "code", "completed"),
    ]
    assert "steps" not in await client.call("runs.get", runId=run.id)
    assert await client.call("steps.list", runId=run.id) == got["steps"]
    on_disk = json.loads(
        (workspace / ".simpleaide" / "runs" / run.id / "metadata.json").read_text()
    )
    assert on_disk["status"] == "completed" and on_disk["stepCount"] == 2


async def test_failing_and_cancelling(client: RpcClient, workspace: Path) -> None:
    a = await new_run(client, workspace)
    await client.call("steps.create", runId=a["id"], name="test", start=True)
    failed = await client.call("steps.fail", runId=a["id"], step=1, errorMessage="3 tests failed")
    assert failed["step"]["status"] == "failed"
    assert failed["run"]["status"] == "failed"
    assert failed["run"]["errorMessage"] == "step 01_test failed: 3 tests failed"

    b = await new_run(client, workspace)
    await client.call("steps.create", runId=b["id"], name="test", start=True)
    kept = await client.call(
        "steps.fail", runId=b["id"], step=1, errorMessage="flaky", failRun=False
    )
    assert kept["run"]["status"] == "running"
    failed_run = await client.call("runs.fail", runId=b["id"], errorMessage="gave up")
    assert failed_run["status"] == "failed" and failed_run["errorMessage"] == "gave up"

    c = await new_run(client, workspace)
    assert (await client.call("runs.cancel", runId=c["id"]))["status"] == "cancelled"

    d = await new_run(client, workspace)
    await client.call("steps.create", runId=d["id"], name="x")
    err = await client.error("steps.skip", runId=d["id"], step=1)
    assert err.code == -32010 and "is pending; cannot move to skipped" in err.message
    await client.call("steps.start", runId=d["id"], step=1)
    assert (await client.call("steps.skip", runId=d["id"], step=1))["step"]["status"] == "skipped"

    last = (await client.call("status.get"))["runs"]["last"]
    assert last["id"] == d["id"]


async def test_illegal_transitions_are_refused_and_change_nothing(
    client: RpcClient, workspace: Path
) -> None:
    run = await new_run(client, workspace)
    await client.call("steps.create", runId=run["id"], name="plan", start=True)
    await client.call("steps.complete", runId=run["id"], step=1)
    await client.call("runs.complete", runId=run["id"])
    before = tree(workspace)
    cases = [
        ("runs.complete", {"runId": run["id"]}, "completed", "completed"),
        ("runs.cancel", {"runId": run["id"]}, "completed", "cancelled"),
        ("runs.fail", {"runId": run["id"], "errorMessage": "x"}, "completed", "failed"),
        ("steps.create", {"runId": run["id"], "name": "more"}, "completed", "running"),
        ("steps.complete", {"runId": run["id"], "step": 1}, "completed", "completed"),
    ]
    for method, params, current, requested in cases:
        err = await client.error(method, **params)
        assert err.code == -32010, (method, err.message)
        assert f"has {current}; cannot move to {requested}" in err.message
        assert err.data == {"current": current, "requested": requested}
    pending = await new_run(client, workspace)
    err = await client.error("runs.complete", runId=pending["id"])
    assert err.code == -32010 and "is pending; cannot move to completed" in err.message
    after = tree(workspace)
    del after[f".simpleaide/runs/{pending['id']}"]
    del after[f".simpleaide/runs/{pending['id']}/metadata.json"]
    assert after == before


async def test_delete_steps_from_reruns(client: RpcClient, workspace: Path) -> None:
    run = await new_run(client, workspace)
    for name in ("plan", "code", "test"):
        await client.call("steps.create", runId=run["id"], name=name, start=True)
        await client.call(
            "steps.complete",
            runId=run["id"],
            step=1 if name == "plan" else 2 if name == "code" else 3,
        )
    await client.call("artifacts.put", runId=run["id"], step=2, name="diff.patch", text="+x")
    rerun = await client.call("steps.deleteFrom", runId=run["id"], fromStep=2)
    assert rerun["status"] == "pending" and rerun["stepCount"] == 1
    folders = sorted(p.name for p in (workspace / ".simpleaide" / "runs" / run["id"]).iterdir())
    assert folders == ["01_plan", "metadata.json"]
    again = await client.call("steps.create", runId=run["id"], name="code2")
    assert again["step"]["number"] == 2 and again["run"]["status"] == "running"
    err = await client.error("steps.deleteFrom", runId=run["id"], fromStep=5)
    assert err.code == -32001


async def test_artifacts(client: RpcClient, workspace: Path) -> None:
    run = await new_run(client, workspace)
    await client.call("steps.create", runId=run["id"], name="plan", start=True)
    info = ArtifactInfo.model_validate(
        await client.call(
            "artifacts.put", runId=run["id"], step=1, name="plan.md", text="# Plan ✓\n"
        )
    )
    assert info.size == len("# Plan ✓\n".encode()) and info.step == 1
    blob = bytes(range(256))
    await client.call(
        "artifacts.put",
        runId=run["id"],
        step=1,
        name="blob.bin",
        base64=base64.b64encode(blob).decode(),
    )
    text = await client.call("artifacts.get", runId=run["id"], step=1, name="plan.md")
    assert {k: text[k] for k in ("name", "size", "offset", "length", "encoding", "text")} == {
        "name": "plan.md",
        "size": 11,
        "offset": 0,
        "length": 11,
        "encoding": "text",
        "text": "# Plan ✓\n",
    }
    binary = await client.call("artifacts.get", runId=run["id"], step=1, name="blob.bin")
    assert binary["encoding"] == "base64" and base64.b64decode(binary["base64"]) == blob
    as_b64 = await client.call(
        "artifacts.get", runId=run["id"], step=1, name="plan.md", encoding="base64"
    )
    assert base64.b64decode(as_b64["base64"]).decode() == "# Plan ✓\n"
    listed = await client.call("artifacts.list", runId=run["id"])
    assert [(a["step"], a["name"], a["size"]) for a in listed] == [
        (1, "blob.bin", 256),
        (1, "plan.md", 11),
    ]
    assert await client.call("artifacts.list", runId=run["id"], step=1) == listed
    # Replacing keeps one file.
    await client.call("artifacts.put", runId=run["id"], step=1, name="plan.md", text="v2")
    assert (await client.call("artifacts.get", runId=run["id"], step=1, name="plan.md"))[
        "text"
    ] == "v2"
    err = await client.error("artifacts.get", runId=run["id"], step=1, name="nope")
    assert err.code == -32001
    err = await client.error(
        "artifacts.get", runId=run["id"], step=1, name="blob.bin", encoding="text"
    )
    assert err.code == -32602 and "not UTF-8" in err.message
    err = await client.error("artifacts.put", runId=run["id"], step=9, name="x", text="x")
    assert err.code == -32001
    err = await client.error("artifacts.put", runId=run["id"], step=1, name="x", base64="!!!")
    assert err.code == -32602
    err = await client.error("artifacts.put", runId=run["id"], step=1, name="x")
    assert err.code == -32602 and "exactly one" in json.dumps(err.data)


async def test_runs_list_paginates_and_filters(client: RpcClient, short_tmp: Path) -> None:
    ws_a, ws_b = short_tmp / "a", short_tmp / "b"
    ws_a.mkdir()
    ws_b.mkdir()
    ids = []
    for n in range(7):
        run = await new_run(client, ws_a if n % 2 == 0 else ws_b, title=f"run {n}")
        ids.append(run["id"])
        if n % 3 == 0:
            await client.call("runs.cancel", runId=run["id"])
    assert len(set(ids)) == 7 and ids == sorted(ids)
    page = RunPage.model_validate(await client.call("runs.list", limit=3))
    assert [r.id for r in page.runs] == ids[::-1][:3]
    page2 = await client.call("runs.list", limit=3, before=page.nextBefore)
    page3 = await client.call("runs.list", limit=3, before=page2["nextBefore"])
    assert [r["id"] for r in page2["runs"] + page3["runs"]] == ids[::-1][3:]
    assert page3["nextBefore"] is None
    only_a = await client.call("runs.list", workspace=str(ws_a))
    assert [r["id"] for r in only_a["runs"]] == ids[::-2]
    cancelled = await client.call("runs.list", status="cancelled")
    assert [r["id"] for r in cancelled["runs"]] == [ids[6], ids[3], ids[0]]
    both = await client.call("runs.list", status=["cancelled", "pending"], workspace=str(ws_b))
    assert [r["id"] for r in both["runs"]] == [ids[5], ids[3], ids[1]]
    assert (await client.call("status.get", workspace=str(ws_b)))["runs"]["total"] == 3
    assert await client.call("runs.activeCount", workspace=str(ws_a)) == 0
    err = await client.error("runs.list", workspace=str(short_tmp / "unknown"))
    assert err.code == -32001


async def test_delete_run(client: RpcClient, workspace: Path) -> None:
    run = await new_run(client, workspace)
    await client.call("steps.create", runId=run["id"], name="x", start=True)
    err = await client.error("runs.delete", runId=run["id"])
    assert err.code == -32010 and "running" in err.message
    assert (await client.call("runs.delete", runId=run["id"], force=True)) == {
        "runId": run["id"],
        "deleted": True,
    }
    assert not (workspace / ".simpleaide" / "runs" / run["id"]).exists()
    assert (await client.call("status.get"))["runs"]["total"] == 0
    err = await client.error("runs.get", runId=run["id"])
    assert err.code == -32001


async def test_corrupt_runs_are_listed_and_refuse_changes(
    client: RpcClient, workspace: Path
) -> None:
    run = await new_run(client, workspace)
    (workspace / ".simpleaide" / "runs" / run["id"] / "metadata.json").write_text("{oops")
    got = await client.call("runs.get", runId=run["id"])
    assert got["status"] == "corrupt" and "metadata.json" in got["errorMessage"]
    err = await client.error("runs.complete", runId=run["id"])
    assert err.code == -32010 and "is corrupt" in err.message
    assert (await client.call("runs.delete", runId=run["id"]))["deleted"] is True


async def test_unknown_run(client: RpcClient) -> None:
    err = await client.error("runs.get", runId="20261124T101500123Z-00000000")
    assert err.code == -32001 and "does not exist" in err.message


async def test_one_daemon_serves_many_workspaces_with_unique_ids(
    client: RpcClient, short_tmp: Path
) -> None:
    runs = []
    for n in range(3):
        ws = short_tmp / f"w{n}"
        ws.mkdir()
        for _ in range(5):
            runs.append(await new_run(client, ws))
    assert len({r["id"] for r in runs}) == 15
    assert len(await client.call("workspaces.list")) == 3
    for r in runs:
        assert (await client.call("runs.get", runId=r["id"]))["workspace"] == r["workspace"]


@pytest.mark.parametrize("env", ["PROD", "DEV"])
async def test_env_profile_comes_from_config(
    env: str, isolated_env: Path, socket_path: Path
) -> None:
    async with (
        running_daemon(socket_path, isolated_env / "s", env=env),
        await RpcClient.connect(socket_path) as c,
    ):
        doc = await c.call("status.get")
        assert doc["env"] == env and doc["db"]["readOnly"] is (env == "PROD")


async def test_ids_follow_creation_order_within_a_millisecond(
    client: RpcClient, workspace: Path
) -> None:
    create = {"jsonrpc": "2.0", "method": "runs.create", "params": {"workspace": str(workspace)}}
    replies = await client.exchange([{**create, "id": n} for n in range(300)])
    ids = [r["result"]["id"] for r in replies]
    assert ids == sorted(ids) and len(set(ids)) == 300
    assert (await client.call("runs.latest"))["id"] == ids[-1]


async def test_pending_runs_count_as_active_when_configured(
    isolated_env: Path, socket_path: Path, workspace: Path
) -> None:
    settings = {"runs.count_pending_as_active": True}
    async with (
        running_daemon(socket_path, isolated_env / "s", **settings),
        await RpcClient.connect(socket_path) as c,
    ):
        await new_run(c, workspace)
        assert await c.call("runs.activeCount") == 1
        assert await c.call("runs.busy") is True
        assert (await c.call("status.get"))["runs"]["active"] == 1


async def test_a_write_in_flight_does_not_bring_back_a_removed_workspace(
    client: RpcClient, daemon: Daemon, socket_path: Path, workspace: Path, monkeypatch: Any
) -> None:
    import threading

    import anyio

    from simpleaided.store.runstore import RunHandle

    run = await new_run(client, workspace)
    await client.call("steps.create", runId=run["id"], name="x", start=True)
    entered, release = threading.Event(), threading.Event()
    original = RunHandle.write

    def slow_write(self: RunHandle, record: Any) -> None:
        entered.set()
        release.wait(10)
        original(self, record)

    monkeypatch.setattr(RunHandle, "write", slow_write)
    async with await RpcClient.connect(socket_path) as writer, anyio.create_task_group() as tg:
        tg.start_soon(writer.request, "runs.complete", {"runId": run["id"]})
        await anyio.to_thread.run_sync(entered.wait, 10)
        await client.call("workspaces.remove", path=str(workspace))
        release.set()
    doc = await client.call("status.get")
    assert doc["runs"]["total"] == 0 and doc["runs"]["last"] is None
    assert (await client.call("runs.list"))["runs"] == []


async def test_a_vanished_store_drops_its_runs(client: RpcClient, workspace: Path) -> None:
    import shutil

    run = await new_run(client, workspace)
    shutil.rmtree(workspace / ".simpleaide")
    err = await client.error("runs.get", runId=run["id"])
    assert err.code == -32001
    assert (await client.call("status.get"))["runs"]["total"] == 0


class _FrozenClock:
    """The status service's clock, stopped: every query falls in the same millisecond."""

    ms = clock.now_ms()
    format_ms = staticmethod(clock.format_ms)

    @classmethod
    def now_ms(cls) -> int:
        return cls.ms


async def test_status_within_one_millisecond_follows_every_change(
    client: RpcClient,
    daemon: Daemon,
    workspace: Path,
    short_tmp: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The document is reused within a millisecond only while nothing it shows changed."""
    other = short_tmp / "other"
    other.mkdir()
    await client.call("workspaces.add", path=str(other))
    monkeypatch.setattr("simpleaided.services.status.clock", _FrozenClock)
    first = await client.call("status.get")
    assert await client.call("status.get") == first
    assert daemon.status.document() is daemon.status.document()  # built once

    run = await new_run(client, workspace)
    created = await client.call("status.get")
    assert created["runs"]["total"] == first["runs"]["total"] + 1
    assert created["runs"]["last"]["id"] == run["id"]
    assert created["generatedAt"] == first["generatedAt"]  # still the same millisecond

    await client.call("steps.create", runId=run["id"], name="plan", start=True)
    running = await client.call("status.get")
    assert running["runs"]["active"] == 1 and running["runs"]["last"]["status"] == "running"
    scoped = await client.call("status.get", workspace=str(workspace))
    assert scoped["runs"] == running["runs"]
    empty = await client.call("status.get", workspace=str(other))
    assert empty["runs"]["total"] == 0 and empty["runs"]["last"] is None

    # Each change below follows an identical query, so a stale reuse would show.
    assert await client.call("status.get") == running
    daemon.warnings.set("disk", "disk almost full")
    assert (await client.call("status.get"))["warnings"] == ["disk almost full"]

    moved = {**running["api"], "enabled": True, "url": "http://127.0.0.1:1/", "port": 1}
    monkeypatch.setitem(daemon.status.sections, "api", lambda: moved)
    assert (await client.call("status.get"))["api"] == moved

    daemon.status.env = "PROD"
    assert (await client.call("status.get"))["env"] == "PROD"

    await client.call("runs.fail", runId=run["id"], errorMessage="boom")
    failed = await client.call("status.get")
    assert failed["runs"]["active"] == 0 and failed["runs"]["last"]["errorMessage"] == "boom"
    assert StatusDocument.model_validate(failed).chips[4].text == "Run ✗"

    await new_run(client, workspace)  # pending
    pending = await client.call("status.get")
    assert pending["runs"]["pending"] == 1 and pending["runs"]["active"] == 0
    monkeypatch.setattr(daemon.runs, "count_pending_as_active", True)
    assert (await client.call("status.get"))["runs"]["active"] == 1
