"""The filesystem watcher, for real: other processes change the store, the daemon follows."""

from __future__ import annotations

import errno
import json
import os
import shutil
import struct
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from watchdog.observers.inotify_c import InotifyConstants

from simpleaided.app.daemon import Daemon
from simpleaided.domain import clock, names
from tests.support.daemon import running_daemon
from tests.support.rpc import RpcClient
from tests.support.runs import new_run
from tests.support.waiting import eventually

BOUND = 5  # seconds: generous, the point is that it happens without a restart


def write_run(workspace: Path, status: str = "running", run_id: str | None = None) -> str:
    """Write a run the way another tool would (its own atomic replace)."""
    run_id = run_id or names.new_run_id(clock.now_ms())
    folder = workspace / ".simpleaide" / "runs" / run_id
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    now = clock.format_ms(clock.now_ms())
    record = {
        "schemaVersion": 1,
        "id": run_id,
        "status": status,
        "startedAt": now,
        "updatedAt": now,
        "stepCount": 0,
    }
    if status in ("completed", "failed", "cancelled"):
        record["completedAt"] = now
    tmp = folder / ".tmp-external"
    tmp.write_text(json.dumps(record))
    tmp.chmod(0o600)
    os.replace(tmp, folder / "metadata.json")
    return run_id


@pytest.fixture
async def served(client: RpcClient, workspace: Path) -> AsyncIterator[RpcClient]:
    await client.call("workspaces.add", path=str(workspace))
    yield client


async def test_external_create_rewrite_and_delete_are_seen(
    served: RpcClient, workspace: Path
) -> None:
    client = served
    run_id = await anyio.to_thread.run_sync(write_run, workspace)

    async def listed() -> bool:
        return bool((await client.call("status.get"))["runs"]["active"] == 1)

    await eventually(listed, BOUND, interval=0.005)
    assert (await client.call("runs.get", runId=run_id))["status"] == "running"
    assert [r["id"] for r in (await client.call("runs.list"))["runs"]] == [run_id]

    await anyio.to_thread.run_sync(lambda: write_run(workspace, "completed", run_id))

    async def completed() -> bool:
        last = (await client.call("status.get"))["runs"]["last"]
        return bool(last["status"] == "completed")

    await eventually(completed, BOUND, interval=0.005)
    assert (await client.call("runs.busy")) is False

    await anyio.to_thread.run_sync(shutil.rmtree, workspace / ".simpleaide" / "runs" / run_id)

    async def gone() -> bool:
        return bool((await client.call("status.get"))["runs"]["total"] == 0)

    await eventually(gone, BOUND, interval=0.005)
    assert (await client.error("runs.get", runId=run_id)).code == -32001


async def test_a_corrupted_rewrite_is_reported(served: RpcClient, workspace: Path) -> None:
    run_id = await anyio.to_thread.run_sync(write_run, workspace)
    await eventually(lambda: _total(served, 1), BOUND, interval=0.005)
    (workspace / ".simpleaide" / "runs" / run_id / "metadata.json").write_text("{garbage")

    async def corrupt() -> bool:
        rows = (await served.call("runs.list"))["runs"]
        return bool(rows and rows[0]["status"] == "corrupt")

    await eventually(corrupt, BOUND, interval=0.005)


async def _total(client: RpcClient, n: int) -> bool:
    return bool((await client.call("status.get"))["runs"]["total"] == n)


async def test_own_writes_are_not_read_twice(
    served: RpcClient, daemon: Daemon, workspace: Path
) -> None:
    await served.call("runs.subscribe")
    stats = daemon.watcher.stats
    run = await new_run(served, workspace, "a", start=True)
    await served.call("steps.complete", runId=run["id"], step=1)
    await served.call("runs.complete", runId=run["id"])

    async def echoes_seen() -> bool:
        return stats.skipped_own >= 1  # the kernel reported our writes back to us...

    await eventually(echoes_seen, BOUND, interval=0.005)
    events: list[dict[str, Any]] = []
    with anyio.move_on_after(0.3):  # (let every echo arrive)
        while True:
            events += (await served.notification("run.event"))["events"]
    assert stats.rereads == 0  # ...and none of them cost a read of the record
    kinds = [e["type"] for e in events]
    assert kinds.count("created") == 1 and kinds.count("status") == 2  # nor a second event


async def test_one_watch_per_run_not_per_step(
    served: RpcClient, daemon: Daemon, workspace: Path
) -> None:
    for _ in range(10):
        await new_run(served, workspace, "plan", "code", "test")
    external = await anyio.to_thread.run_sync(write_run, workspace)
    await eventually(lambda: _total(served, 11), BOUND, interval=0.005)
    inotify = daemon.watcher._inotify
    assert inotify is not None
    assert (str(workspace), external) in inotify.by_wd.values()
    # The kernel's own count for this process (the daemon runs in it): runs/ + 11 runs.
    kernel = 0
    for fd in os.listdir("/proc/self/fdinfo"):
        try:  # descriptors come and go while we look
            kernel += Path(f"/proc/self/fdinfo/{fd}").read_text().count("inotify wd:")
        except FileNotFoundError:
            continue
    assert daemon.watcher.watches == 12
    assert kernel == 12


async def test_an_overflow_leads_to_a_rate_limited_rescan(
    served: RpcClient, daemon: Daemon, workspace: Path
) -> None:
    run = await served.call("runs.create", workspace=str(workspace))
    daemon.runs._index_drop(run["id"])  # as if its creation event had been lost
    assert (await served.call("status.get"))["runs"]["total"] == 0
    inotify = daemon.watcher._inotify
    assert inotify is not None
    overflow = struct.pack("iIII", -1, InotifyConstants.IN_Q_OVERFLOW, 0, 0)
    for _ in range(50):  # an overflow storm, as the kernel reports it
        daemon.watcher._dispatch(inotify, overflow)
    await eventually(lambda: _total(served, 1), BOUND, interval=0.005)
    await anyio.sleep(0.5)
    stats = daemon.watcher.stats
    assert stats.overflows == 50
    assert 1 <= stats.rescans <= 2  # one per interval, not one per overflow


async def test_a_burst_of_changes_lets_clients_in_between(
    client: RpcClient, daemon: Daemon, workspace: Path
) -> None:
    """A re-read takes its run's lock without a trip through the loop, so a burst (a big
    checkout) must yield on its own: other tasks run while it is applied, every half ms."""
    from simpleaided.services.watcher import Change
    from simpleaided.services.workspaces import canonical_workspace

    run_ids = [names.new_run_id(clock.now_ms() - k) for k in range(200)]
    for run_id in run_ids:  # before the workspace is served: no events pending after this
        await anyio.to_thread.run_sync(write_run, workspace, "running", run_id)
    await client.call("workspaces.add", path=str(workspace))
    assert await _total(client, 200)
    ticks = 0
    seen: list[int] = []
    watcher = daemon.watcher
    refresh = watcher._refresh

    all_applied = anyio.Event()

    async def slow_refresh(ws: str, run_id: str, observed: int | None) -> bool:
        seen.append(ticks)
        if len(seen) == len(run_ids):
            all_applied.set()
        time.sleep(0.0002)  # noqa: ASYNC251 - work that holds the loop, as a big re-read
        return await refresh(ws, run_id, observed)

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.lowlevel.checkpoint()

    watcher._refresh = slow_refresh
    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        for run_id in run_ids:  # as if each had changed: each goes to the refresh
            watcher.signatures.pop(run_id)
            watcher._note(Change(canonical_workspace(str(workspace)), run_id))
        with anyio.fail_after(BOUND):
            await all_applied.wait()
        tg.cancel_scope.cancel()
    # 200 x 0.2 ms of work, in slices of 0.5 ms: the ticker ran between them.
    assert len(set(seen)) >= 20


async def test_a_failing_reader_is_restarted(
    served: RpcClient, daemon: Daemon, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from simpleaided.services.watcher import _Inotify

    original = _Inotify.read
    failures = {"left": 1}

    def failing(self: _Inotify) -> bytes:
        if failures["left"]:
            failures["left"] -= 1
            raise OSError(errno.EIO, "simulated failure")
        return original(self)

    monkeypatch.setattr(_Inotify, "read", failing)
    inotify = daemon.watcher._inotify
    # This change makes the reader fail: it is only seen through the restart's rescan.
    await anyio.to_thread.run_sync(write_run, workspace)
    await eventually(lambda: _total(served, 1), BOUND, interval=0.005)
    assert daemon.watcher.stats.restarts == 1
    assert daemon.watcher._inotify is not inotify
    await anyio.to_thread.run_sync(write_run, workspace)  # and watching goes on
    await eventually(lambda: _total(served, 2), BOUND, interval=0.005)


async def test_the_watch_limit_is_reported_and_polled(
    isolated_env: Path, socket_path: Path, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from simpleaided.services.watcher import _Inotify

    original = _Inotify.add
    allowed = {"n": 3}  # runs/ and two runs, then the kernel says no

    def limited(self: _Inotify, path: str, *args: Any) -> int:
        if allowed["n"] <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        allowed["n"] -= 1
        return original(self, path, *args)

    monkeypatch.setattr(_Inotify, "add", limited)
    ids = [write_run(workspace) for _ in range(4)]
    settings = {"watch.poll_seconds": 0.1, "workspaces": [str(workspace)]}
    async with (
        running_daemon(socket_path, isolated_env / "s", **settings) as daemon,
        await RpcClient.connect(socket_path) as client,
    ):
        with anyio.fail_after(BOUND):
            await daemon.watching.wait()
        info = await client.call("daemon.info")
        assert any("fs.inotify.max_user_watches" in w for w in info["warnings"])
        doc = await client.call("status.get")
        assert any("fs.inotify.max_user_watches" in w for w in doc["warnings"])
        assert info["watcher"]["unwatched"] == 2
        unwatched = daemon.watcher.unwatched[str(workspace)]
        victim = next(iter(unwatched))
        assert victim in ids
        await anyio.to_thread.run_sync(lambda: write_run(workspace, "completed", victim))

        async def polled() -> bool:
            return bool((await client.call("runs.get", runId=victim))["status"] == "completed")

        await eventually(polled, BOUND, interval=0.005)


async def test_the_polling_fallback(isolated_env: Path, socket_path: Path, workspace: Path) -> None:
    settings = {"watch.use_inotify": False, "watch.poll_seconds": 0.1}
    async with (
        running_daemon(socket_path, isolated_env / "s", **settings) as daemon,
        await RpcClient.connect(socket_path) as client,
    ):
        assert daemon.watcher.stats.backend == "polling"
        await client.call("workspaces.add", path=str(workspace))
        run_id = await anyio.to_thread.run_sync(write_run, workspace)
        await eventually(lambda: _total(client, 1), BOUND, interval=0.005)
        await anyio.to_thread.run_sync(lambda: write_run(workspace, "failed", run_id))

        async def failed() -> bool:
            return bool((await client.call("runs.get", runId=run_id))["status"] == "failed")

        await eventually(failed, BOUND, interval=0.005)


async def test_changes_while_the_daemon_was_down_are_seen_at_start(
    isolated_env: Path, socket_path: Path, workspace: Path
) -> None:
    keep = write_run(workspace, "completed")
    settings = {"workspaces": [str(workspace)]}
    async with (
        running_daemon(socket_path, isolated_env / "s", **settings),
        await RpcClient.connect(socket_path) as client,
    ):
        assert (await client.call("status.get"))["runs"]["total"] == 1
    write_run(workspace, "failed", keep)
    added = write_run(workspace, "running")
    async with (
        running_daemon(socket_path, isolated_env / "s", **settings),
        await RpcClient.connect(socket_path) as client,
    ):
        assert (await client.call("runs.get", runId=keep))["status"] == "failed"
        assert (await client.call("runs.get", runId=added))["status"] == "running"


async def test_a_snapshot_speeds_the_start_and_is_checked_against_the_disk(
    isolated_env: Path, socket_path: Path, workspace: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    runs = [write_run(workspace, "completed") for _ in range(20)]
    settings = {"workspaces": [str(workspace)]}
    async with running_daemon(socket_path, isolated_env / "s", **settings):
        pass  # stopping writes the snapshot
    snapshots = list((isolated_env / "s" / "snapshots").iterdir())
    assert len(snapshots) == 1 and snapshots[0].stat().st_mode & 0o777 == 0o600
    # While the daemon is down: one rewritten, one deleted, one corrupted, one added.
    write_run(workspace, "failed", runs[0])
    shutil.rmtree(workspace / ".simpleaide" / "runs" / runs[1])
    (workspace / ".simpleaide" / "runs" / runs[2] / "metadata.json").write_text("{")
    added = write_run(workspace, "running")
    caplog.clear()
    async with (
        running_daemon(socket_path, isolated_env / "s", **settings),
        await RpcClient.connect(socket_path) as client,
    ):
        assert "20 run(s) from the snapshot, 4 re-read" in caplog.text
        by_id = {r["id"]: r for r in (await client.call("runs.list", limit=100))["runs"]}
        assert set(by_id) == (set(runs) - {runs[1]}) | {added}
        assert by_id[runs[0]]["status"] == "failed"
        assert by_id[runs[2]]["status"] == "corrupt"
        assert by_id[added]["status"] == "running"
        assert by_id[runs[3]]["status"] == "completed"


async def test_a_damaged_snapshot_is_ignored(
    isolated_env: Path, socket_path: Path, workspace: Path
) -> None:
    run_id = write_run(workspace, "completed")
    settings = {"workspaces": [str(workspace)]}
    async with running_daemon(socket_path, isolated_env / "s", **settings):
        pass
    for snapshot in (isolated_env / "s" / "snapshots").iterdir():
        snapshot.write_text('{"format": 1, "rows": [[1, 2]]')
    async with (
        running_daemon(socket_path, isolated_env / "s", **settings),
        await RpcClient.connect(socket_path) as client,
    ):
        assert (await client.call("runs.get", runId=run_id))["status"] == "completed"


async def test_store_errors_seen_by_the_watcher_do_not_stop_the_daemon(
    served: RpcClient, workspace: Path
) -> None:
    runs = workspace / ".simpleaide" / "runs"
    await anyio.to_thread.run_sync(write_run, workspace)
    await eventually(lambda: _total(served, 1), BOUND, interval=0.005)
    runs.chmod(0o777)  # now the store refuses this tree...
    await anyio.to_thread.run_sync(write_run, workspace)  # ...and the watcher sees a change
    await anyio.sleep(0.2)
    assert await served.call("daemon.ping") == "pong"
    runs.chmod(0o700)
    await anyio.to_thread.run_sync(write_run, workspace)
    await eventually(lambda: _total(served, 3), BOUND, interval=0.005)


async def test_a_recreated_runs_folder_is_watched_again(
    isolated_env: Path, socket_path: Path, workspace: Path
) -> None:
    settings = {"watch.poll_seconds": 0.1}
    async with (
        running_daemon(socket_path, isolated_env / "s", **settings),
        await RpcClient.connect(socket_path) as client,
    ):
        await client.call("workspaces.add", path=str(workspace))
        await anyio.to_thread.run_sync(write_run, workspace)
        await eventually(lambda: _total(client, 1), BOUND, interval=0.005)
        await anyio.to_thread.run_sync(shutil.rmtree, workspace / ".simpleaide" / "runs")
        await eventually(lambda: _total(client, 0), BOUND, interval=0.005)
        run_id = await anyio.to_thread.run_sync(write_run, workspace)  # recreates runs/
        await eventually(lambda: _total(client, 1), BOUND, interval=0.005)
        await anyio.to_thread.run_sync(lambda: write_run(workspace, "failed", run_id))

        async def failed() -> bool:
            return bool((await client.call("runs.get", runId=run_id))["status"] == "failed")

        await eventually(failed, BOUND, interval=0.005)


async def test_a_run_folder_replaced_by_rename_stays_watched(
    served: RpcClient, workspace: Path
) -> None:
    runs = workspace / ".simpleaide" / "runs"
    run_id = await anyio.to_thread.run_sync(write_run, workspace)
    await eventually(lambda: _total(served, 1), BOUND, interval=0.005)
    staging = workspace / "staging"
    staging.mkdir()
    await anyio.to_thread.run_sync(lambda: write_run(staging, "running", run_id))

    def swap() -> None:
        os.rename(runs / run_id, runs / ".old")
        os.rename(staging / ".simpleaide" / "runs" / run_id, runs / run_id)
        shutil.rmtree(runs / ".old")

    await anyio.to_thread.run_sync(swap)
    await anyio.to_thread.run_sync(lambda: write_run(workspace, "completed", run_id))

    async def completed() -> bool:
        return bool((await served.call("runs.get", runId=run_id))["status"] == "completed")

    await eventually(completed, BOUND, interval=0.005)
    rows = (await served.call("runs.list"))["runs"]
    assert [(r["id"], r["status"]) for r in rows] == [(run_id, "completed")]


async def test_a_snapshot_is_saved_after_a_scan_and_not_again_while_it_holds(
    isolated_env: Path, socket_path: Path, workspace: Path
) -> None:
    for _ in range(5):
        write_run(workspace, "completed")
    settings = {"workspaces": [str(workspace)]}
    folder = isolated_env / "s" / "snapshots"

    async def saved() -> bool:
        return folder.is_dir() and any(folder.iterdir())

    async def snapshot_saved() -> int:
        # Written by a worker thread: nothing to wait on but the file.
        await eventually(saved, BOUND, interval=0.005)
        return next(folder.iterdir()).stat().st_ino  # each save replaces the file

    async with running_daemon(socket_path, isolated_env / "s", **settings):
        scanned = await snapshot_saved()  # a scan is saved at once, not only at the stop
    stopped = await snapshot_saved()
    assert stopped != scanned
    async with running_daemon(socket_path, isolated_env / "s", **settings) as daemon:
        await daemon.watching.wait()
        await anyio.sleep(0.3)  # the first save would follow at once
        # Loaded from it with nothing re-read: rewriting it would only churn memory.
        assert await snapshot_saved() == stopped


def _kernel_watches() -> int:
    """Inotify watches this process holds, as the kernel counts them (the daemon runs here)."""
    kernel = 0
    for fd in os.listdir("/proc/self/fdinfo"):
        try:  # descriptors come and go while we look
            kernel += Path(f"/proc/self/fdinfo/{fd}").read_text().count("inotify wd:")
        except FileNotFoundError:
            continue
    return kernel


async def test_run_folders_moved_out_of_runs_are_no_longer_watched(
    served: RpcClient, daemon: Daemon, workspace: Path
) -> None:
    runs = workspace / ".simpleaide" / "runs"
    ids = [await anyio.to_thread.run_sync(write_run, workspace) for _ in range(5)]
    await eventually(lambda: _total(served, 5), BOUND, interval=0.005)
    assert daemon.watcher.watches == 6  # runs/ and five runs
    archive = workspace / "archive"
    archive.mkdir()
    for run_id in ids[:2]:  # archived by hand, or by another tool
        await anyio.to_thread.run_sync(os.rename, runs / run_id, archive / run_id)
    # Renamed inside runs/: still the same run folder, still watched (under its new name).
    renamed = names.new_run_id(clock.now_ms() + 1000)
    await anyio.to_thread.run_sync(os.rename, runs / ids[2], runs / renamed)
    await eventually(lambda: _total(served, 3), BOUND, interval=0.005)

    async def watches_dropped() -> bool:
        return daemon.watcher.watches == 4

    await eventually(watches_dropped, BOUND, interval=0.005)
    assert await anyio.to_thread.run_sync(_kernel_watches) == 4
    # What moved away is not followed: changes there are not this workspace's.
    moved = archive / ids[0] / "metadata.json"
    record = json.loads(moved.read_text())
    await anyio.to_thread.run_sync(moved.write_text, json.dumps({**record, "status": "failed"}))
    # The renamed one is followed under its new name.
    await anyio.to_thread.run_sync(lambda: write_run(workspace, "failed", renamed))

    async def renamed_followed() -> bool:
        return bool((await served.call("runs.get", runId=renamed))["status"] == "failed")

    await eventually(renamed_followed, BOUND, interval=0.005)
    assert (await served.call("status.get"))["runs"]["total"] == 3
    assert daemon.watcher.watches == 4

    # runs/ itself moved away: none of its watches stay; a new runs/ is watched again.
    await anyio.to_thread.run_sync(os.rename, runs, workspace / "runs.old")
    await eventually(lambda: _total(served, 0), BOUND, interval=0.005)

    async def none_left() -> bool:
        return daemon.watcher.watches == 0

    await eventually(none_left, BOUND, interval=0.005)
    assert await anyio.to_thread.run_sync(_kernel_watches) == 0
