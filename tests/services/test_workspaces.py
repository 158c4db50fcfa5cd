"""Per-workspace crash recovery: the clean-stop mark in each workspace's lock, the deep walk
of a workspace added at run time, workspaces refused by another daemon retried and still
remembered, and leftovers that resist removal."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from simpleaided.app.daemon import Daemon
from simpleaided.services.workspaces import MAX_REMOVED, WorkspaceRegistry
from simpleaided.store import safefs
from simpleaided.store.runstore import WorkspaceLock, WorkspaceStore
from tests.support.daemon import (
    DAEMON,
    ConfigSource,
    daemon_env,
    running_daemon,
    wait_until_answering,
)
from tests.support.files import plant
from tests.support.rpc import RpcClient, RpcFailed
from tests.support.runs import lay_out_run, on_disk_steps, runs_dir, statuses
from tests.support.waiting import eventually


async def test_a_workspace_added_after_a_crash_is_walked_before_the_add_answers(
    daemon: Daemon, client: RpcClient, short_tmp: Path
) -> None:
    # Laid out after the daemon started: what counts as left over is what predates the claim.
    other = short_tmp / "other"
    other.mkdir()
    failed = lay_out_run(other, "failed", ["completed", "running"], error="boom")
    left = plant(runs_dir(other) / failed / ".tmp-0123456789abcdef")
    await client.call("workspaces.add", path=str(other))
    assert not left.exists()
    assert statuses(on_disk_steps(other, failed)) == [("completed", None), ("failed", "boom")]
    assert (await client.call("daemon.info"))["storesChecked"] is True
    # Removed (a clean release), then added again: nothing to walk, nothing looked for.
    await client.call("workspaces.remove", path=str(other))
    assert json.loads((other / ".simpleaide" / "daemon.lock").read_text()) == {"stopped": True}
    planted = plant(runs_dir(other) / failed / ".tmp-fedcba9876543210")
    await client.call("workspaces.add", path=str(other))
    assert planted.exists()


async def _info(socket_path: Path) -> dict[str, Any]:
    async with await RpcClient.connect(socket_path) as client:
        info: dict[str, Any] = await client.call("daemon.info")
        return info


async def test_a_refused_workspace_is_served_once_the_other_daemon_lets_it_go(
    isolated_env: Path, socket_path: Path, workspace: Path
) -> None:
    held = WorkspaceStore(str(workspace)).claim("/elsewhere/daemon.sock")
    try:
        async with running_daemon(socket_path, isolated_env / "state", workspaces=[str(workspace)]):
            info = await _info(socket_path)
            assert info["workspaces"] == 0
            assert [w for w in info["warnings"] if "/elsewhere/daemon.sock" in w]
            held.release()

            async def served() -> dict[str, Any] | None:
                info = await _info(socket_path)
                return info if info["workspaces"] != 0 else None

            # The retry runs on its own period; no event to wait on from outside.
            info = await eventually(served, 15, interval=0.05)
            assert info["warnings"] == []

            # Held by a daemon that never released it cleanly: walked as after a crash.
            async def stores_checked() -> bool:
                return bool((await _info(socket_path))["storesChecked"])

            await eventually(stores_checked, 10, interval=0.02)
    finally:
        held.release()


async def test_a_remembered_workspace_refused_stays_remembered(
    isolated_env: Path, socket_path: Path, workspace: Path, short_tmp: Path
) -> None:
    state = isolated_env / "state"
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    remembered = state / "workspaces.json"
    remembered.write_text(json.dumps({"workspaces": [str(workspace)]}))
    other = short_tmp / "other"
    other.mkdir()
    held = WorkspaceStore(str(workspace)).claim("/elsewhere/daemon.sock")
    try:
        async with (
            running_daemon(socket_path, state) as daemon,
            await RpcClient.connect(socket_path) as client,
        ):
            assert (await client.call("daemon.info"))["workspaces"] == 0
            await client.call("workspaces.add", path=str(other))
            saved = json.loads(remembered.read_text())["workspaces"]
            assert sorted(saved) == sorted([str(workspace), str(other)])
            # Forgotten on request: not remembered, not tried again, no warning left.
            await client.call("workspaces.remove", path=str(workspace))
            assert json.loads(remembered.read_text())["workspaces"] == [str(other)]
            info = await client.call("daemon.info")
            assert info["warnings"] == []
            assert daemon.runs.registry.refused() == []
    finally:
        held.release()


@pytest.fixture
def immutable(short_tmp: Path) -> Iterator[list[Path]]:
    """Files made immutable (``chattr +i``: not even root removes them); undone after."""
    made: list[Path] = []
    yield made
    for path in made:
        subprocess.run(["chattr", "-i", str(path)], check=False)


async def test_a_leftover_that_cannot_be_removed_stops_neither_an_add_nor_a_rescan(
    daemon: Daemon,
    client: RpcClient,
    short_tmp: Path,
    immutable: list[Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    other = short_tmp / "other"
    other.mkdir()
    runs = runs_dir(other)
    stuck = plant(runs / ".deleting-0123456789abcdef" / "step.json")
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed")
    made = await anyio.run_process(["chattr", "+i", str(stuck)], check=False)
    if made.returncode != 0:
        pytest.skip("this filesystem has no immutable files")
    immutable.append(stuck)
    gone = plant(runs / ".tmp-fedcba9876543210")
    run_id = lay_out_run(other, "failed", ["running"], error="boom")
    caplog.set_level(logging.WARNING)
    added = await client.call("workspaces.add", path=str(other))
    assert added["runs"] == 1
    assert stuck.exists() and not gone.exists()
    assert statuses(on_disk_steps(other, run_id)) == [("failed", "boom")]
    assert any(".deleting-0123456789abcdef" in r.getMessage() for r in caplog.records)
    # A rescan (after lost events) tidies too: it goes on past the stuck entry.
    later = lay_out_run(other, "completed", [])
    caplog.clear()
    await daemon.runs.rescan(str(other))
    assert any(".deleting-0123456789abcdef" in r.getMessage() for r in caplog.records)
    assert (await client.call("runs.get", runId=later))["status"] == "completed"


def _no_override_daemon(home: Path, sock: Path) -> subprocess.Popen[bytes]:
    """The daemon as a process that meets file modes (root without the capabilities that
    bypass them): a 0555 folder stops it as it stops any user's."""
    dropped = "-dac_override,-dac_read_search"
    argv = [*DAEMON, "--socket", str(sock)]
    if os.getuid() == 0:
        argv = ["setpriv", f"--bounding-set={dropped}", f"--inh-caps={dropped}", *argv]
    return subprocess.Popen(
        argv,
        env=daemon_env(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.mark.skipif(
    os.getuid() == 0 and shutil.which("setpriv") is None,
    reason="root bypasses file modes, and setpriv (to drop that) is not installed",
)
def test_read_only_folders_are_deleted_with_their_run_and_as_leftovers(short_tmp: Path) -> None:
    ws = short_tmp / "ws"
    ws.mkdir()
    runs = runs_dir(ws)
    left = runs / ".deleting-0123456789abcdef"
    plant(left / "ro" / "f")
    (left / "ro").chmod(0o555)
    sock = short_tmp / "run" / "d.sock"
    proc = _no_override_daemon(short_tmp, sock)
    try:
        wait_until_answering(sock, proc)
        with anyio.from_thread.start_blocking_portal() as portal:
            portal.call(_add_and_delete, sock, ws)
        assert sorted(p.name for p in runs.iterdir()) == []
    finally:
        proc.terminate()
        proc.wait()
        if proc.stderr:
            proc.stderr.close()


async def _add_and_delete(sock: Path, ws: Path) -> None:
    async with await RpcClient.connect(sock) as client:
        await client.call("workspaces.add", path=str(ws))
        assert not (runs_dir(ws) / ".deleting-0123456789abcdef").exists()
        run_id = (await client.call("runs.create", workspace=str(ws)))["id"]
        plant(runs_dir(ws) / run_id / "ro" / "f")
        (runs_dir(ws) / run_id / "ro").chmod(0o555)
        await client.call("runs.delete", runId=run_id)


async def test_a_reload_walks_a_workspace_it_adds_and_marks_one_it_drops(
    isolated_env: Path, socket_path: Path, workspace: Path
) -> None:
    failed = lay_out_run(workspace, "failed", ["running"], error="boom")
    source = ConfigSource(socket_path, isolated_env / "state")
    daemon = Daemon(source.load(), handle_signals=False, load_config=source.load)
    async with anyio.create_task_group() as tg:
        await tg.start(daemon.run)
        source.workspaces = [str(workspace)]
        assert await daemon.reload()
        assert statuses(on_disk_steps(workspace, failed)) == [("failed", "boom")]
        assert daemon.runs.stores_checked()
        source.workspaces = []
        assert await daemon.reload()
        lock = workspace / ".simpleaide" / "daemon.lock"
        assert json.loads(lock.read_text()) == {"stopped": True}
        daemon.request_stop()


async def test_removing_a_refused_configured_workspace_is_refused_and_its_retry_goes_on(
    isolated_env: Path, socket_path: Path, workspace: Path
) -> None:
    held = WorkspaceStore(str(workspace)).claim("/elsewhere/daemon.sock")
    try:
        async with (
            running_daemon(
                socket_path, isolated_env / "state", workspaces=[str(workspace)]
            ) as daemon,
            await RpcClient.connect(socket_path) as client,
        ):
            with pytest.raises(RpcFailed) as refused:
                await client.call("workspaces.remove", path=str(workspace))
            assert refused.value.code == -32602
            assert "config file" in refused.value.message
            assert daemon.runs.registry.refused() == [(str(workspace), "config")]
    finally:
        held.release()


async def test_a_workspace_removed_while_its_retry_claims_it_is_not_served(
    isolated_env: Path, socket_path: Path, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = isolated_env / "state"
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    remembered = state / "workspaces.json"
    remembered.write_text(json.dumps({"workspaces": [str(workspace)]}))
    held = WorkspaceStore(str(workspace)).claim("/elsewhere/daemon.sock")
    claiming, go_on = threading.Event(), threading.Event()
    claim = WorkspaceStore.claim

    def held_up_claim(self: WorkspaceStore, socket: str) -> WorkspaceLock:
        claiming.set()
        go_on.wait(10)  # the retry is inside its claim while the remove comes
        return claim(self, socket)

    try:
        async with (
            running_daemon(socket_path, state) as daemon,
            await RpcClient.connect(socket_path) as client,
        ):
            assert daemon.runs.registry.refused() != []
            monkeypatch.setattr(WorkspaceStore, "claim", held_up_claim)
            held.release()
            await eventually(claiming.is_set, 15, interval=0.02)
            async with anyio.create_task_group() as tg:
                # Called in-process: a socket round trip would leave no point at which the
                # remove is known to have arrived while the claim is still held up.
                tg.start_soon(daemon.runs.remove_workspace, str(workspace))
                await anyio.wait_all_tasks_blocked()
                go_on.set()
            async with daemon._reloading:  # the retry's round (it holds this) has ended
                pass
            assert (await client.call("daemon.info"))["workspaces"] == 0
            assert daemon.runs.registry.refused() == []
            assert json.loads(remembered.read_text())["workspaces"] == []
    finally:
        go_on.set()
        held.release()


def test_a_refused_added_workspace_the_config_lists_stays_remembered(short_tmp: Path) -> None:
    state = short_tmp / "state"
    state.mkdir(mode=0o700)
    ws = short_tmp / "ws"
    ws.mkdir()
    (state / "workspaces.json").write_text(json.dumps({"workspaces": [str(ws)]}))
    registry = WorkspaceRegistry([], state)
    assert registry.initial() == [(str(ws), "added")]
    registry.refuse(str(ws), "added")  # another daemon holds it
    registry.configure([str(ws)])  # the reloaded config lists it too
    registry.save()
    assert json.loads((state / "workspaces.json").read_text())["workspaces"] == [str(ws)]
    registry.configure([])  # and drops it again: back to added, still remembered
    assert registry.refused() == [(str(ws), "added")]
    registry.save()
    assert json.loads((state / "workspaces.json").read_text())["workspaces"] == [str(ws)]
    registry.drop_refused(str(ws))  # forgotten on request
    registry.save()
    assert json.loads((state / "workspaces.json").read_text())["workspaces"] == []


async def test_no_clean_mark_while_a_write_of_the_removed_workspace_is_in_flight(
    daemon: Daemon,
    client: RpcClient,
    short_tmp: Path,
    socket_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other = short_tmp / "other"
    other.mkdir()
    await client.call("workspaces.add", path=str(other))
    writing, go_on = threading.Event(), threading.Event()
    write = safefs.atomic_write

    def held_up_write(fd: int, name: str, data: bytes, *args: Any, **kwargs: Any) -> None:
        if name != "workspaces.json":
            writing.set()
            go_on.wait(10)  # the run's write is in flight while the remove comes
        write(fd, name, data, *args, **kwargs)

    monkeypatch.setattr(safefs, "atomic_write", held_up_write)
    lock_file = other / ".simpleaide" / "daemon.lock"
    try:
        async with await RpcClient.connect(socket_path) as writer, anyio.create_task_group() as tg:

            async def create() -> None:
                with contextlib.suppress(RpcFailed):  # its workspace went meanwhile
                    await writer.call("runs.create", workspace=str(other), title="t")

            tg.start_soon(create)
            await eventually(writing.is_set, 10, interval=0.02)
            await client.call("workspaces.remove", path=str(other))
            assert "stopped" not in lock_file.read_text()
            go_on.set()
    finally:
        go_on.set()


async def test_a_leftover_inside_a_run_that_resists_is_tried_again_by_the_next_holder(
    daemon: Daemon, client: RpcClient, short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = short_tmp / "other"
    other.mkdir()
    failed = lay_out_run(other, "failed", ["completed"], error="boom")
    left = plant(runs_dir(other) / failed / ".tmp-0123456789abcdef")
    remove = safefs.remove_leftover

    def stubborn(parent: int, name: str, before_ns: int) -> bool:
        if name == left.name:
            raise PermissionError(1, "Operation not permitted")
        return remove(parent, name, before_ns)

    monkeypatch.setattr(safefs, "remove_leftover", stubborn)
    await client.call("workspaces.add", path=str(other))
    assert left.exists()
    assert (await client.call("daemon.info"))["storesChecked"] is False
    await client.call("workspaces.remove", path=str(other))
    assert "stopped" not in (other / ".simpleaide" / "daemon.lock").read_text()
    monkeypatch.setattr(safefs, "remove_leftover", remove)
    await client.call("workspaces.add", path=str(other))
    assert not left.exists()
    assert (await client.call("daemon.info"))["storesChecked"] is True


async def test_a_configured_workspace_added_by_a_client_stays_configured(
    isolated_env: Path, socket_path: Path, short_tmp: Path
) -> None:
    # Listed by the config but missing at start: not served. Once it exists, a client adds it
    # (as runs.create would): it is still the config's, which a client cannot remove.
    later = short_tmp / "later"
    async with (
        running_daemon(socket_path, isolated_env / "state", workspaces=[str(later)]),
        await RpcClient.connect(socket_path) as client,
    ):
        assert await client.call("workspaces.list") == []
        later.mkdir()
        await client.call("workspaces.add", path=str(later))
        [listed] = await client.call("workspaces.list")
        assert listed["source"] == "config"
        with pytest.raises(RpcFailed, match="comes from the config file"):
            await client.call("workspaces.remove", path=str(later))
        assert [w["path"] for w in await client.call("workspaces.list")] == [str(later)]


async def test_a_workspace_the_reloaded_config_drops_is_not_served_again_by_a_read(
    isolated_env: Path, socket_path: Path, workspace: Path
) -> None:
    run_id = lay_out_run(workspace, "completed", ["completed"])
    source = ConfigSource(socket_path, isolated_env / "state")
    source.workspaces = [str(workspace)]
    daemon = Daemon(source.load(), handle_signals=False, load_config=source.load)
    async with anyio.create_task_group() as tg:
        await tg.start(daemon.run)
        async with await RpcClient.connect(socket_path) as client:
            source.workspaces = []
            assert await daemon.reload()
            with pytest.raises(RpcFailed) as scoped:
                await client.call("runs.list", workspace=str(workspace))
            assert scoped.value.code == -32001
            assert scoped.value.data == {"workspace": str(workspace), "removed": "config"}
            assert scoped.value.message == (
                f"workspace {workspace} is not served: the config file no longer lists it; "
                f"serve it again with: simpleaide workspaces add {workspace}"
            )
            with pytest.raises(RpcFailed) as run:
                await client.call("runs.get", runId=run_id)
            assert run.value.data == {
                "runId": run_id,
                "workspace": str(workspace),
                "removed": "config",
            }
            await client.call("workspaces.add", path=str(workspace))  # explicit: served
            assert (await client.call("runs.get", runId=run_id))["id"] == run_id
        daemon.request_stop()


async def test_a_run_in_a_workspace_another_daemon_serves_is_named_so(
    isolated_env: Path, socket_path: Path, workspace: Path
) -> None:
    run_id = lay_out_run(workspace, "completed", ["completed"])
    held = WorkspaceStore(str(workspace)).claim("/elsewhere/daemon.sock")
    try:
        async with (
            running_daemon(socket_path, isolated_env / "state", workspaces=[str(workspace)]),
            await RpcClient.connect(socket_path) as client,
        ):
            with pytest.raises(RpcFailed) as failed:
                await client.call("steps.list", runId=run_id)
            assert failed.value.code == -32001
            assert failed.value.message == (
                f"run {run_id} is in workspace {workspace}, which this daemon does not serve: "
                "another simpleaided serves it; use that daemon's socket "
                "(named in: simpleaide daemon status)"
            )
            with pytest.raises(RpcFailed) as unknown:
                await client.call("runs.get", runId="20260101T000000000Z-00000000")
            assert unknown.value.message == "run 20260101T000000000Z-00000000 does not exist"
            assert unknown.value.data == {"runId": "20260101T000000000Z-00000000"}
    finally:
        held.release()


def test_removed_workspaces_are_remembered_newest_first_and_bounded(short_tmp: Path) -> None:
    state = short_tmp / "state"
    state.mkdir(mode=0o700)
    folders = []
    for n in range(MAX_REMOVED + 2):
        folder = short_tmp / f"w{n}"
        folder.mkdir()
        folders.append(str(folder))
    # A state file of an older daemon: no "removed" key.
    (state / "workspaces.json").write_text(json.dumps({"workspaces": folders}))
    registry = WorkspaceRegistry([], state)
    assert [p for p, _ in registry.initial()] == folders
    for path in folders:
        registry.register(path, "added", WorkspaceStore(path).claim("/x.sock"))
    for path in folders:
        registry.unregister(path)
    registry.save()
    again = WorkspaceRegistry([folders[-1]], state)  # the config lists the newest one now
    assert again.initial() == [(folders[-1], "config")]
    assert again.removed() == folders[-2:1:-1]  # the oldest two forgotten, the listed one too
    assert again.removed_by(folders[5]) == "remove"
    assert again.removed_by(folders[0]) is None and again.removed_by(folders[-1]) is None
