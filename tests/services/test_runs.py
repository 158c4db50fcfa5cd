"""A finished run never has an open step, and a daemon killed mid-write leaves nothing behind.

Real daemons on real sockets; the leftovers and the older-version store are laid out on disk
by hand first, as a crash or an older daemon would have left them.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from simpleaided.app.daemon import Daemon
from simpleaided.domain import clock, names
from tests.support.daemon import make_daemon, running_daemon
from tests.support.files import plant
from tests.support.rpc import RpcClient
from tests.support.runs import lay_out_run, new_run, on_disk_steps, runs_dir, statuses
from tests.support.sandbox import Sandbox
from tests.support.waiting import eventually

INVALID_TRANSITION = -32010
FAST = {"runs.owner_check_seconds": 0.05}


async def run_with_steps(client: RpcClient, workspace: Path) -> str:
    """A running run: 01_plan completed, 02_code running, 03_test pending."""
    run_id: str = (await new_run(client, workspace, "plan", start=True))["id"]
    await client.call("steps.complete", runId=run_id, step=1)
    await client.call("steps.create", runId=run_id, name="code", start=True)
    await client.call("steps.create", runId=run_id, name="test")
    return run_id


def start_owner() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "60"])


# -- ending a run closes its steps -------------------------------------------------------------


async def test_complete_is_refused_while_a_step_is_open_and_force_closes_them(
    client: RpcClient, workspace: Path
) -> None:
    run_id = await run_with_steps(client, workspace)
    before = (runs_dir(workspace) / run_id / "metadata.json").read_bytes()
    refused = await client.error("runs.complete", runId=run_id)
    assert refused.code == INVALID_TRANSITION
    assert "02_code (running)" in refused.message and "03_test (pending)" in refused.message
    assert refused.message.endswith("finish them first, or force, which closes them)")
    assert (runs_dir(workspace) / run_id / "metadata.json").read_bytes() == before
    assert statuses(on_disk_steps(workspace, run_id))[1:] == [("running", None), ("pending", None)]

    run = await client.call("runs.complete", runId=run_id, force=True)
    assert run["status"] == "completed" and run.get("errorMessage") is None
    steps = on_disk_steps(workspace, run_id)
    assert statuses(steps) == [
        ("completed", None),
        ("failed", "run completed while the step was open"),
        ("skipped", None),
    ]
    assert all(step["completedAt"] for step in steps.values())
    listed = await client.call("steps.list", runId=run_id)
    assert [s["status"] for s in listed] == ["completed", "failed", "skipped"]


async def test_complete_without_open_steps_needs_no_force(
    client: RpcClient, workspace: Path
) -> None:
    run_id = await run_with_steps(client, workspace)
    await client.call("steps.complete", runId=run_id, step=2)
    await client.call("steps.start", runId=run_id, step=3)
    await client.call("steps.skip", runId=run_id, step=3)
    assert (await client.call("runs.complete", runId=run_id))["status"] == "completed"


@pytest.mark.parametrize(
    ("method", "params", "reason"),
    [
        ("runs.fail", {"errorMessage": "the tests broke"}, "the tests broke"),
        ("runs.cancel", {}, "run cancelled"),
    ],
)
async def test_fail_and_cancel_close_the_open_steps(
    client: RpcClient, workspace: Path, method: str, params: dict[str, Any], reason: str
) -> None:
    run_id = await run_with_steps(client, workspace)
    await client.call(method, runId=run_id, **params)
    assert statuses(on_disk_steps(workspace, run_id)) == [
        ("completed", None),
        ("failed", reason),
        ("skipped", None),
    ]
    # Nothing is left that a client could still move.
    refused = await client.error("steps.complete", runId=run_id, step=2)
    assert refused.code == INVALID_TRANSITION


async def test_a_step_failing_its_run_closes_the_other_open_steps(
    client: RpcClient, workspace: Path
) -> None:
    run_id = await run_with_steps(client, workspace)
    await client.call("steps.start", runId=run_id, step=3)
    change = await client.call("steps.fail", runId=run_id, step=3, errorMessage="red")
    assert change["run"]["status"] == "failed"
    assert statuses(on_disk_steps(workspace, run_id)) == [
        ("completed", None),
        ("failed", "step 03_test failed: red"),
        ("failed", "red"),
    ]


async def test_an_abandoned_run_closes_its_open_steps(
    isolated_env: Path, socket_path: Path, workspace: Path
) -> None:
    owner = start_owner()
    try:
        async with (
            running_daemon(socket_path, isolated_env / "state", **FAST),
            await RpcClient.connect(socket_path) as client,
        ):
            run = await new_run(client, workspace, "code", "test", start=True, ownerPid=owner.pid)
            run_id = run["id"]
            owner.kill()
            owner.wait(10)

            # The index (runs.list) changes once every file of the change is written; the
            # files themselves (runs.get) may show the run failed before its steps are closed.
            async def failed() -> bool:
                return bool((await client.call("runs.list"))["runs"][0]["status"] == "failed")

            await eventually(failed, 10)
            reason = f"interrupted: owner process {owner.pid} exited"
            assert statuses(on_disk_steps(workspace, run_id)) == [
                ("failed", reason),
                ("skipped", None),
            ]
    finally:
        owner.kill()
        owner.wait(10)


# -- start-up repairs -------------------------------------------------------------------------


async def test_start_up_closes_the_open_steps_of_finished_runs(
    isolated_env: Path,
    socket_path: Path,
    workspace: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # As an older daemon (or a crash between the run's write and its steps') left them.
    failed = lay_out_run(workspace, "failed", ["completed", "running", "pending"], error="boom")
    cancelled = lay_out_run(workspace, "cancelled", ["running"])
    completed = lay_out_run(workspace, "completed", ["pending"])
    running = lay_out_run(workspace, "running", ["completed", "running", "pending"])
    caplog.set_level(logging.WARNING)
    async with running_daemon(
        socket_path, isolated_env / "state", workspaces=[str(workspace)]
    ) as daemon:
        await stores_checked(daemon)
        assert statuses(on_disk_steps(workspace, failed)) == [
            ("completed", None),
            ("failed", "boom"),
            ("skipped", None),
        ]
        assert statuses(on_disk_steps(workspace, cancelled)) == [("failed", "run cancelled")]
        assert statuses(on_disk_steps(workspace, completed)) == [("skipped", None)]
        # An active run's open steps are its driver's business.
        assert statuses(on_disk_steps(workspace, running)) == [
            ("completed", None),
            ("running", None),
            ("pending", None),
        ]
        assert daemon.runs.index.get(failed) is not None
    repairs = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(failed in m and "02_s2" in m and "failed" in m for m in repairs), repairs
    assert any(completed in m and "01_s1" in m and "skipped" in m for m in repairs), repairs


async def test_start_up_removes_our_leftovers_and_only_ours(
    isolated_env: Path, socket_path: Path, workspace: Path
) -> None:
    run_id = lay_out_run(workspace, "running", ["running"])
    runs = runs_dir(workspace)
    step = runs / run_id / "01_s1"
    ours = [
        plant(runs / run_id / ".tmp-0123456789abcdef"),
        plant(step / ".tmp-fedcba9876543210"),
        plant(step / "artifacts" / ".tmp-00000000deadbeef", os.urandom(1 << 20)),
        plant(runs / ".deleting-0123456789abcdef" / "01_x" / "step.json"),
        plant(runs / run_id / ".deleting-aaaaaaaaaaaaaaaa" / "artifacts" / "log.txt"),
        plant(runs / ".creating-bbbbbbbbbbbbbbbb" / "metadata.json"),
    ]
    # A run folder an older daemon began and never finished: nothing but a temp file in it.
    half_built = names.new_run_id(clock.now_ms() + 1)
    ours.append(plant(runs / half_built / ".tmp-1111111111111111"))
    # Names like ours, but not ours: a user's files stay.
    theirs = [
        plant(runs / run_id / ".tmp-notes"),
        plant(step / "artifacts" / ".tmp-0123456789ABCDEF"),
        plant(step / "artifacts" / ".hidden"),
        plant(runs / ".deleting-mine" / "keep.txt"),
        plant(runs / run_id / ".tmp-0123456789abcdef0"),
    ]
    async with (
        gated_walk(socket_path, isolated_env / "state", workspaces=[str(workspace)]) as (
            daemon,
            walk,
        ),
        await RpcClient.connect(socket_path) as client,
    ):
        # In runs/ before the first answer; inside the run folders by the walk that follows.
        assert not (runs / ".creating-bbbbbbbbbbbbbbbb").exists()
        assert (await client.call("daemon.info"))["storesChecked"] is False
        walk.set()
        await stores_checked(daemon)
        assert (await client.call("daemon.info"))["storesChecked"] is True
        assert [p for p in ours if os.path.lexists(p)] == []
        assert not (runs / ".deleting-0123456789abcdef").exists()
        assert not (runs / half_built).exists()
        assert all(p.exists() for p in theirs)
        listed = await client.call("runs.list", workspace=str(workspace))
        assert [r["id"] for r in listed["runs"]] == [run_id]
        assert (await client.call("status.get"))["runs"]["total"] == 1
        # The run itself is whole and still served.
        assert (await client.call("runs.get", runId=run_id))["status"] == "running"


async def test_a_create_that_fails_part_way_leaves_no_run(
    client: RpcClient, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The run's record cannot be put in place (a full disk, say): before, the run folder
    # stayed behind without it, listed as corrupt and counted forever.
    rename = os.rename

    def failing(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        if dst == "metadata.json":
            raise OSError(errno.ENOSPC, "No space left on device")
        rename(src, dst, *args, **kwargs)

    await client.call("workspaces.add", path=str(workspace))
    monkeypatch.setattr(os, "rename", failing)
    await client.error("runs.create", workspace=str(workspace), title="torn")
    monkeypatch.undo()
    assert list(runs_dir(workspace).iterdir()) == []
    assert (await client.call("status.get"))["runs"]["total"] == 0
    run = await client.call("runs.create", workspace=str(workspace), title="whole")
    assert [p.name for p in runs_dir(workspace).iterdir()] == [run["id"]]


def test_cli_complete_names_force_and_force_closes_the_steps(sandbox: Sandbox) -> None:
    ws = sandbox.workspace()
    run_id = sandbox.new_run(ws)
    sandbox.ok("steps", "add", run_id, "code", "--start")
    refused = sandbox.run("runs", "complete", run_id)
    assert refused.code == 1 and refused.out == b""
    assert refused.err.count("\n") == 1
    assert "01_code (running)" in refused.err
    assert (
        f"or close them and complete it anyway with: simpleaide runs complete {run_id} --force"
        in refused.err
    )
    done = sandbox.ok("runs", "complete", run_id, "--force")
    assert done.stdout.strip() == f"run {run_id} has completed"
    steps = sandbox.ok("steps", "ls", run_id, "--json").json()
    assert [(s["status"], s["errorMessage"]) for s in steps] == [
        ("failed", "run completed while the step was open")
    ]


async def test_a_rescan_removes_older_leftovers_in_runs_never_a_write_in_progress(
    daemon: Daemon, client: RpcClient, workspace: Path
) -> None:
    run = await client.call("runs.create", workspace=str(workspace))
    runs = runs_dir(workspace)
    old = plant(runs / ".deleting-0123456789abcdef" / "01_x" / "step.json")
    # As if these were there before the daemon claimed the workspace (it removes only what
    # predates its claim).
    lock = daemon.runs.registry.lock(str(workspace))
    lock.claimed_ns = time.time_ns()
    # File times come from the kernel's coarse clock, a tick behind: wait for it to pass.
    probe = workspace / "probe"

    def ticked() -> bool:
        if plant(probe).stat().st_ctime_ns >= lock.claimed_ns:
            return True
        probe.unlink()
        return False

    await eventually(ticked, 5, interval=0.001)
    fresh = plant(runs / ".creating-0123456789abcdef" / "metadata.json")  # a create under way
    await daemon.runs.rescan(str(workspace))
    assert not old.parent.parent.exists()
    assert fresh.exists()
    assert [r["id"] for r in (await client.call("runs.list"))["runs"]] == [run["id"]]


async def test_after_a_clean_stop_the_next_start_skips_the_deep_walk(
    isolated_env: Path, socket_path: Path, workspace: Path
) -> None:
    state = isolated_env / "state"
    # The mark is the workspace's own, in its lock file: not the state folder's, which
    # another daemon may share.
    mark = workspace / ".simpleaide" / "daemon.lock"
    async with (
        running_daemon(socket_path, state, workspaces=[str(workspace)]),
        await RpcClient.connect(socket_path) as client,
    ):
        # Taken at claim (the holder's details replace it): a crash now is noticed next time.
        assert json.loads(mark.read_text())["pid"] == os.getpid()
        run_id = (await client.call("runs.create", workspace=str(workspace)))["id"]
    assert json.loads(mark.read_text()) == {"stopped": True}
    # Nothing of ours can be left after a clean stop; a file planted since is not looked for.
    inside = plant(runs_dir(workspace) / run_id / ".tmp-0123456789abcdef")
    async with running_daemon(socket_path, state, workspaces=[str(workspace)]) as daemon:
        assert daemon.runs.stores_checked()  # nothing to check after a clean stop
        assert daemon.watching.is_set() or await _watching(daemon)
        assert inside.exists()
    # A crash (the dead holder's details left in the lock) makes the next start walk every
    # run folder.
    mark.write_text(json.dumps({"pid": 1, "socket": "/gone/daemon.sock"}))
    async with running_daemon(socket_path, state, workspaces=[str(workspace)]) as daemon:
        await stores_checked(daemon)
        assert not inside.exists()
    assert json.loads(mark.read_text()) == {"stopped": True}
    # A daemon stopped before that walk ended leaves no mark: the next one walks again.
    mark.write_text("")
    async with gated_walk(socket_path, state, workspaces=[str(workspace)]) as (daemon, _):
        assert not daemon.runs.stores_checked()
        daemon.request_stop()
    assert mark.read_text() == ""


@contextlib.asynccontextmanager
async def gated_walk(
    socket_path: Path, state_dir: Path, **settings: object
) -> AsyncIterator[tuple[Daemon, anyio.Event]]:
    """A daemon whose deep walk (after a crash) waits until the event yielded is set."""
    daemon = make_daemon(socket_path, state_dir, **settings)
    gate = anyio.Event()
    walk = daemon.runs.check_all

    async def gated() -> None:
        await gate.wait()
        await walk()

    daemon.runs.check_all = gated  # type: ignore[method-assign]
    async with anyio.create_task_group() as tg:
        await tg.start(daemon.run)
        yield daemon, gate
        daemon.request_stop()


async def _watching(daemon: Daemon) -> bool:
    with anyio.fail_after(10):
        await daemon.watching.wait()
    return True


async def stores_checked(daemon: Daemon) -> None:
    """Wait for the walk through every run that follows the first answer after a crash."""
    # Per workspace, as each claim allows: no one event to wait on.
    await eventually(daemon.runs.stores_checked, 10)
