"""Abandoned runs: a run whose owner process exits is ended by the daemon, never left running.

Owners are real child processes; the daemon is the real one, checking every 50 ms here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from simpleaided.app.config import ConfigError, load_config
from simpleaided.app.daemon import Daemon
from simpleaided.services.processes import process_gone
from tests.support.daemon import running_daemon
from tests.support.rpc import RpcClient
from tests.support.runs import new_run
from tests.support.waiting import eventually, eventually_blocking

FAST = {"runs.owner_check_seconds": 0.05}


def start_owner() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "60"])


def end(owner: subprocess.Popen[bytes]) -> None:
    """Kill ``owner`` and reap it, so its pid no longer exists."""
    owner.kill()
    owner.wait(10)


@pytest.fixture
def owners() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Owner processes started by a test; all killed and reaped afterwards."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for owner in started:
        end(owner)


@pytest.fixture
async def fast_daemon(isolated_env: Path, socket_path: Path) -> AsyncIterator[Daemon]:
    async with running_daemon(socket_path, isolated_env / "state", **FAST) as started:
        yield started


@pytest.fixture
async def fast_client(fast_daemon: Daemon, socket_path: Path) -> AsyncIterator[RpcClient]:
    async with await RpcClient.connect(socket_path) as c:
        yield c


async def owned_run(client: RpcClient, workspace: Path, pid: int, *, running: bool = True) -> str:
    run = await new_run(client, workspace, *(["code"] if running else []), start=True, ownerPid=pid)
    assert run["ownerPid"] == pid
    return str(run["id"])


async def run_in_status(client: RpcClient, run_id: str, status: str) -> dict[str, Any]:
    """The run once it has ``status`` (within a bound)."""

    async def reached() -> dict[str, Any] | None:
        run: dict[str, Any] = await client.call("runs.get", runId=run_id)
        return run if run["status"] == status else None

    return await eventually(reached, 10)  # type: ignore[no-any-return]


async def test_a_running_run_fails_when_its_owner_exits(
    fast_client: RpcClient,
    fast_daemon: Daemon,
    workspace: Path,
    owners: list[subprocess.Popen[bytes]],
) -> None:
    doomed, alive = start_owner(), start_owner()
    owners += [doomed, alive]
    run_id = await owned_run(fast_client, workspace, doomed.pid)
    other_id = await owned_run(fast_client, workspace, alive.pid)
    metadata = workspace / ".simpleaide" / "runs" / run_id / "metadata.json"
    assert json.loads(metadata.read_text())["ownerPid"] == doomed.pid

    end(doomed)
    run = await run_in_status(fast_client, run_id, "failed")
    assert run["errorMessage"] == f"interrupted: owner process {doomed.pid} exited"
    assert run["completedAt"] is not None and run["ownerPid"] == doomed.pid
    on_disk = json.loads(metadata.read_text())
    assert on_disk["status"] == "failed" and on_disk["errorMessage"] == run["errorMessage"]
    listed = {r["id"]: r for r in (await fast_client.call("runs.list"))["runs"]}
    assert listed[run_id]["status"] == "failed"

    # The run with a live owner is untouched, check after check.
    for _ in range(3):
        assert await fast_daemon.owners.check() == []
    assert (await fast_client.call("runs.get", runId=other_id))["status"] == "running"
    assert (await fast_client.call("status.get"))["runs"]["active"] == 1


async def test_a_pending_run_is_cancelled_when_its_owner_exits(
    fast_client: RpcClient, workspace: Path, owners: list[subprocess.Popen[bytes]]
) -> None:
    owner = start_owner()
    owners.append(owner)
    run_id = await owned_run(fast_client, workspace, owner.pid, running=False)
    end(owner)
    run = await run_in_status(fast_client, run_id, "cancelled")
    assert run["errorMessage"] == f"interrupted: owner process {owner.pid} exited"


async def test_a_finished_run_stays_as_it_is(
    isolated_env: Path, socket_path: Path, workspace: Path, owners: list[subprocess.Popen[bytes]]
) -> None:
    owner = start_owner()
    owners.append(owner)
    # Checked only when asked (the interval is long): the check must leave the run alone.
    async with (
        running_daemon(socket_path, isolated_env / "s", **{"runs.owner_check_seconds": 3600}) as d,
        await RpcClient.connect(socket_path) as c,
    ):
        run_id = await owned_run(c, workspace, owner.pid)
        await c.call("steps.complete", runId=run_id, step=1)
        await c.call("runs.complete", runId=run_id)
        end(owner)
        assert await d.owners.check() == []
        run = await c.call("runs.get", runId=run_id)
        assert (run["status"], run["errorMessage"]) == ("completed", None)


async def test_owners_are_checked_at_start_up(
    isolated_env: Path, socket_path: Path, workspace: Path, owners: list[subprocess.Popen[bytes]]
) -> None:
    """An owner that exits while no daemon runs: the run is failed before the next daemon's
    first answer (its periodic check is far away)."""
    owner = start_owner()
    owners.append(owner)
    slow = {"runs.owner_check_seconds": 3600}
    state = isolated_env / "state"
    async with (
        running_daemon(socket_path, state, **slow),
        await RpcClient.connect(socket_path) as c,
    ):
        run_id = await owned_run(c, workspace, owner.pid)
    end(owner)
    async with (
        running_daemon(socket_path, state, **slow),
        await RpcClient.connect(socket_path) as c,
    ):
        run = await c.call("runs.get", runId=run_id)
        assert run["status"] == "failed"
        assert run["errorMessage"] == f"interrupted: owner process {owner.pid} exited"
        assert (await c.call("status.get"))["runs"]["active"] == 0


async def test_owner_pid_is_validated(fast_client: RpcClient, workspace: Path) -> None:
    gone = start_owner()
    end(gone)
    err = await fast_client.error("runs.create", workspace=str(workspace), ownerPid=gone.pid)
    assert err.code == -32602 and f"owner process {gone.pid} does not exist" in err.message
    for bad in (0, -1, True, "123", 1.5, 2**40):
        err = await fast_client.error("runs.create", workspace=str(workspace), ownerPid=bad)
        assert err.code == -32602, bad
    assert (await fast_client.call("runs.list"))["runs"] == []
    # Without an owner, a run is never abandoned (and the field is null).
    run = await fast_client.call("runs.create", workspace=str(workspace))
    assert run["ownerPid"] is None
    metadata = workspace / ".simpleaide" / "runs" / run["id"] / "metadata.json"
    assert "ownerPid" not in json.loads(metadata.read_text())


def start_time(pid: int) -> int:
    """Field 22 of ``/proc/<pid>/stat``: when the process started, in clock ticks after boot."""
    stat = Path(f"/proc/{pid}/stat").read_bytes()
    return int(stat[stat.rfind(b")") + 2 :].split()[19])


async def test_a_reused_pid_is_not_mistaken_for_the_owner(
    isolated_env: Path, socket_path: Path, workspace: Path, owners: list[subprocess.Popen[bytes]]
) -> None:
    """A run records its owner's start time with its pid: a process holding that pid now but
    started at another time is not the owner (the owner exited, its pid was reused)."""
    owner = start_owner()
    owners.append(owner)
    slow = {"runs.owner_check_seconds": 3600}
    state = isolated_env / "state"
    async with (
        running_daemon(socket_path, state, **slow),
        await RpcClient.connect(socket_path) as c,
    ):
        reused_id = await owned_run(c, workspace, owner.pid)
        legacy_id = await owned_run(c, workspace, owner.pid)
        run = await c.call("runs.get", runId=reused_id)
        assert run["ownerStartTime"] == start_time(owner.pid)
    runs = workspace / ".simpleaide" / "runs"
    # What the store holds once the owner has exited and a later process got its pid; and a
    # record written before start times were recorded.
    reused = json.loads((runs / reused_id / "metadata.json").read_text())
    assert reused["ownerStartTime"] == start_time(owner.pid)
    reused["ownerStartTime"] += 1
    (runs / reused_id / "metadata.json").write_text(json.dumps(reused))
    legacy = json.loads((runs / legacy_id / "metadata.json").read_text())
    del legacy["ownerStartTime"]
    (runs / legacy_id / "metadata.json").write_text(json.dumps(legacy))
    async with (
        running_daemon(socket_path, state, **slow),
        await RpcClient.connect(socket_path) as c,
    ):
        run = await c.call("runs.get", runId=reused_id)
        assert run["status"] == "failed"
        assert run["errorMessage"] == f"interrupted: owner process {owner.pid} exited"
        # Without a start time, the pid alone decides, as before.
        assert (await c.call("runs.get", runId=legacy_id))["status"] == "running"
        assert (await c.call("status.get"))["runs"]["active"] == 1


def test_process_gone() -> None:
    assert not process_gone(os.getpid())
    assert not process_gone(1)  # another user's process exists too (EPERM)
    child = start_owner()
    try:
        assert not process_gone(child.pid)
        os.kill(child.pid, signal.SIGKILL)
        # Exited but not reaped: a zombie counts as gone.
        eventually_blocking(lambda: process_gone(child.pid), 10, interval=0.005)
        assert Path(f"/proc/{child.pid}").exists()
    finally:
        end(child)
    assert process_gone(child.pid)
    with pytest.raises(ValueError):
        process_gone(0)


@pytest.mark.parametrize("seconds", [0, -1, 7200])
def test_the_check_interval_is_validated(isolated_env: Path, seconds: float) -> None:
    with pytest.raises(ConfigError, match="owner_check_seconds"):
        load_config(overrides={"runs.owner_check_seconds": seconds})


async def test_a_run_ended_at_start_is_saved_in_the_snapshot_at_once(
    isolated_env: Path,
    socket_path: Path,
    workspace: Path,
    owners: list[subprocess.Popen[bytes]],
) -> None:
    owners.append(start_owner())
    state = isolated_env / "state"
    async with running_daemon(socket_path, state, **FAST):
        async with await RpcClient.connect(socket_path) as client:
            run_id = await owned_run(client, workspace, owners[0].pid)
    (snapshot,) = (state / "snapshots").iterdir()  # written at the stop
    stopped = snapshot.stat().st_ino
    end(owners[0])
    async with running_daemon(socket_path, state, **FAST):
        # The run was ended before the first answer, after the snapshot was loaded: the
        # snapshot no longer says what the index holds and is written again, not at the stop.
        # A worker thread's file: nothing to wait on but the file.
        await eventually(lambda: snapshot.stat().st_ino != stopped, 5)
        rows = [json.loads(line) for line in snapshot.read_bytes().splitlines()[1:]]
        assert [row[2] for chunk in rows for row in chunk if row[0] == run_id] == ["failed"]
