"""The file-backed run store, on a real filesystem."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from simpleaided.domain import names, states
from simpleaided.domain.errors import Conflict, NotFound, UnsafePath
from simpleaided.domain.index import RunSummary
from simpleaided.domain.models import RunMetadata, RunStatus
from simpleaided.store import safefs
from simpleaided.store.runstore import CorruptRecord, WorkspaceStore, upload_name
from simpleaided.store.snapshot import ROWS_PER_LINE, SnapshotStore
from tests.support.paths import REPO

T0 = "2026-11-24T10:00:00.000Z"


def new_run(n: int = 0) -> RunMetadata:
    return RunMetadata(
        id=names.new_run_id(1_795_000_000_000 + n),
        status=RunStatus.PENDING,
        started_at=T0,
        updated_at=T0,
    )


@pytest.fixture
def store(tmp_path: Path) -> WorkspaceStore:
    ws = tmp_path / "ws"
    ws.mkdir()
    return WorkspaceStore(str(ws))


def runs_dir(store: WorkspaceStore) -> Path:
    return Path(store.path, ".simpleaide", "runs")


def scanned(store: WorkspaceStore) -> list[RunSummary]:
    return [summary for summary, _ in store.scan()]


def create_with_step(store: WorkspaceStore) -> RunMetadata:
    run = new_run()
    store.create_run(run)
    with store.open_run(run.id) as handle:
        run2, step = states.create_step(handle.read(), "plan", T0, start=True)
        handle.create_step(step)
        handle.write(run2)
        handle.put_artifact(1, "plan.md", b"# plan\n")
    return run2


@pytest.fixture
def umask_000() -> Iterator[None]:
    old = os.umask(0)
    yield
    os.umask(old)


def test_modes_are_private_whatever_the_umask(store: WorkspaceStore, umask_000: None) -> None:
    run = create_with_step(store)
    top = Path(store.path, ".simpleaide")
    for folder in (
        top,
        top / "runs",
        top / "runs" / run.id,
        top / "runs" / run.id / "01_plan",
        top / "runs" / run.id / "01_plan" / "artifacts",
    ):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    for file in (
        top / "runs" / run.id / "metadata.json",
        top / "runs" / run.id / "01_plan" / "step.json",
        top / "runs" / run.id / "01_plan" / "artifacts" / "plan.md",
    ):
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file


def test_records_are_camel_case_json(store: WorkspaceStore) -> None:
    run = create_with_step(store)
    data = json.loads((runs_dir(store) / run.id / "metadata.json").read_text())
    assert data == {
        "schemaVersion": 1,
        "id": run.id,
        "status": "running",
        "startedAt": T0,
        "updatedAt": T0,
        "stepCount": 1,
    }
    step = json.loads((runs_dir(store) / run.id / "01_plan" / "step.json").read_text())
    assert step == {"number": 1, "name": "plan", "status": "running", "startedAt": T0}


def test_unknown_keys_from_a_newer_writer_are_kept(store: WorkspaceStore) -> None:
    run = new_run()
    store.create_run(run)
    path = runs_dir(store) / run.id / "metadata.json"
    data = json.loads(path.read_text())
    data["agentModel"] = "x-1"
    path.write_text(json.dumps(data))
    with store.open_run(run.id) as handle:
        handle.write(
            states.finish_run(
                states.create_step(handle.read(), "a", T0)[0], RunStatus.COMPLETED, T0
            )
        )
    assert json.loads(path.read_text())["agentModel"] == "x-1"


def test_create_run_twice_conflicts(store: WorkspaceStore) -> None:
    run = new_run()
    store.create_run(run)
    with pytest.raises(Conflict):
        store.create_run(run)


CRASH = """
import os, sys
sys.path.insert(0, {root!r})
from simpleaided.store import safefs
def crash(*args, **kwargs):
    os._exit(17)  # the process dies between the temp write and the rename
os.rename = crash
fd = os.open({folder!r}, os.O_RDONLY | os.O_DIRECTORY)
safefs.atomic_write(fd, "metadata.json", b'{{"new": true}}')
"""


def test_a_crash_between_temp_write_and_rename_keeps_the_old_file(store: WorkspaceStore) -> None:
    run = new_run()
    store.create_run(run)
    folder = runs_dir(store) / run.id
    before = (folder / "metadata.json").read_bytes()
    script = CRASH.format(root=str(REPO), folder=str(folder))
    result = subprocess.run([sys.executable, "-c", script], check=False)
    assert result.returncode == 17
    assert (folder / "metadata.json").read_bytes() == before
    leftovers = [p.name for p in folder.iterdir() if p.name != "metadata.json"]
    assert len(leftovers) == 1 and leftovers[0].startswith(safefs.TMP_PREFIX)
    # The leftover temp file is invisible to readers and scans.
    with store.open_run(run.id) as handle:
        assert handle.read() == run
    assert [s.status for s in scanned(store)] == ["pending"]


def test_symlinked_run_folder_is_refused(store: WorkspaceStore, tmp_path: Path) -> None:
    real = create_with_step(store)
    elsewhere = tmp_path / "elsewhere"
    (runs_dir(store) / real.id).rename(elsewhere)
    fake_id = real.id
    (runs_dir(store) / fake_id).symlink_to(elsewhere)
    with pytest.raises(UnsafePath, match="symlink"), store.open_run(fake_id):
        pass
    [summary] = scanned(store)
    assert summary.status == "corrupt" and "symlink" in (summary.error_message or "")


def test_symlinked_step_and_artifact_folders_are_refused(
    store: WorkspaceStore, tmp_path: Path
) -> None:
    run = create_with_step(store)
    step_dir = runs_dir(store) / run.id / "01_plan"
    target = tmp_path / "target"
    target.mkdir()
    # An artifacts folder replaced by a symlink: nothing is written through it.
    (step_dir / "artifacts" / "plan.md").unlink()
    (step_dir / "artifacts").rmdir()
    (step_dir / "artifacts").symlink_to(target)
    with store.open_run(run.id) as handle, pytest.raises(UnsafePath):
        handle.put_artifact(1, "evil.txt", b"x")
    assert list(target.iterdir()) == []
    # A step folder replaced by a symlink.
    (step_dir / "artifacts").unlink()
    step_dir.rename(tmp_path / "moved")
    step_dir.symlink_to(tmp_path / "moved")
    with store.open_run(run.id) as handle, pytest.raises(UnsafePath):
        handle.read_step(1)


def test_symlinked_artifact_file_is_refused(store: WorkspaceStore, tmp_path: Path) -> None:
    run = create_with_step(store)
    secret = tmp_path / "secret"
    secret.write_text("do not read")
    (runs_dir(store) / run.id / "01_plan" / "artifacts" / "leak").symlink_to(secret)
    with store.open_run(run.id) as handle:
        with pytest.raises(UnsafePath):
            handle.get_artifact(1, "leak", 1 << 20)
        with pytest.raises(UnsafePath):
            handle.put_artifact(1, "leak", b"overwrite")
        with pytest.raises(UnsafePath):
            handle.append_artifact(1, "leak", b"more", None)
        with pytest.raises(UnsafePath):
            handle.put_artifact_chunk(1, "leak", b"overwrite", 0, True, None)
        assert [a.name for a in handle.list_artifacts(1)] == ["plan.md"]
    assert secret.read_text() == "do not read"


def test_a_symlink_in_place_of_a_staged_upload_is_refused(
    store: WorkspaceStore, tmp_path: Path
) -> None:
    run = create_with_step(store)
    secret = tmp_path / "secret"
    secret.write_text("do not touch")
    artifacts = runs_dir(store) / run.id / "01_plan" / "artifacts"
    planted = "1f-0123456789abcdef"
    (artifacts / upload_name("big.bin", planted)).symlink_to(secret)
    with store.open_run(run.id) as handle:
        for offset in (0, 5):
            with pytest.raises(UnsafePath):
                handle.put_artifact_chunk(1, "big.bin", b"data", offset, False, planted)
    assert secret.read_text() == "do not touch"


def test_a_hard_link_in_place_of_a_staged_upload_is_refused(
    store: WorkspaceStore, tmp_path: Path
) -> None:
    run = create_with_step(store)
    victim = tmp_path / "victim"
    victim.write_text("precious")
    artifacts = runs_dir(store) / run.id / "01_plan" / "artifacts"
    with store.open_run(run.id) as handle:
        started = handle.put_artifact_chunk(1, "big.bin", b"data", 0, False, None)
        assert started.upload_id
        staged = artifacts / upload_name("big.bin", started.upload_id)
        staged.unlink()
        os.link(victim, staged)
        with pytest.raises(UnsafePath, match="hard link"):
            handle.put_artifact_chunk(1, "big.bin", b"more", 0, False, started.upload_id)
    assert victim.read_text() == "precious"


def test_a_failed_append_is_undone_and_can_be_retried(store: WorkspaceStore) -> None:
    import resource
    import signal

    run = create_with_step(store)
    with store.open_run(run.id) as handle:
        handle.append_artifact(1, "app.log", b"a" * 1000, None)
        old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1500, hard))
        try:
            with pytest.raises(OSError):
                handle.append_artifact(1, "app.log", b"b" * 1000, 1000)
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
            signal.signal(signal.SIGXFSZ, old_handler)
        # Nothing of the failed append is left: the retry lands where it was meant to.
        assert handle.append_artifact(1, "app.log", b"b" * 1000, 1000).size == 2000
        data, _ = handle.get_artifact(1, "app.log", 1 << 20)
    assert data == b"a" * 1000 + b"b" * 1000


def test_tidy_removes_uploads_abandoned_for_a_day_only(store: WorkspaceStore) -> None:
    import time

    run = create_with_step(store)
    artifacts = runs_dir(store) / run.id / "01_plan" / "artifacts"
    with store.open_run(run.id) as handle:
        old = handle.put_artifact_chunk(1, "old.bin", b"x", 0, False, None)
        recent = handle.put_artifact_chunk(1, "recent.bin", b"x", 0, False, None)
    assert old.upload_id and recent.upload_id
    old_file = artifacts / upload_name("old.bin", old.upload_id)
    day_ago = time.time() - 25 * 3600
    os.utime(old_file, (day_ago, day_ago))
    (artifacts / ".upload-notes").write_text("a user's file")
    tidied = store.tidy(time.time_ns(), frozenset())
    assert not old_file.exists()
    assert any(old.upload_id in path for path in tidied.removed)
    assert (artifacts / upload_name("recent.bin", recent.upload_id)).exists()
    assert (artifacts / ".upload-notes").exists()


def test_symlinked_store_folder_is_refused(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (tmp_path / "other").mkdir()
    (ws / ".simpleaide").symlink_to(tmp_path / "other")
    with pytest.raises(UnsafePath):
        WorkspaceStore(str(ws)).init()
    assert list((tmp_path / "other").iterdir()) == []


def test_a_tree_writable_by_others_is_refused(store: WorkspaceStore) -> None:
    store.init()
    os.chmod(runs_dir(store), 0o777)
    with pytest.raises(UnsafePath, match="writable by others"):
        store.create_run(new_run())
    assert list(runs_dir(store).iterdir()) == []


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to give a folder to another user")
def test_a_tree_owned_by_another_user_is_refused(store: WorkspaceStore) -> None:
    store.init()
    os.chown(runs_dir(store), 65534, 65534)
    with pytest.raises(UnsafePath, match="owned by uid 65534"):
        store.create_run(new_run())


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"{not json", "Invalid JSON"),
        (b'{"schemaVersion": 1}', "id is missing"),
        (b'{"schemaVersion": 1, "id": "X", "status": "nope"}', "is not a run id"),
        (b"", "EOF while parsing"),
    ],
)
def test_corrupt_metadata_is_reported_not_dropped(
    store: WorkspaceStore, content: bytes, reason: str
) -> None:
    good, bad = new_run(1), new_run(2)
    store.create_run(good)
    store.create_run(bad)
    (runs_dir(store) / bad.id / "metadata.json").write_bytes(content)
    by_id = {s.id: s for s in scanned(store)}
    assert by_id[good.id].status == "pending"
    assert by_id[bad.id].status == "corrupt"
    assert reason in (by_id[bad.id].error_message or "")
    with store.open_run(bad.id) as handle, pytest.raises(CorruptRecord):
        handle.read()


def test_missing_metadata_and_mismatched_id_are_corrupt(store: WorkspaceStore) -> None:
    a, b = new_run(1), new_run(2)
    store.create_run(a)
    store.create_run(b)
    (runs_dir(store) / a.id / "metadata.json").unlink()
    data = json.loads((runs_dir(store) / b.id / "metadata.json").read_text())
    data["id"] = a.id
    (runs_dir(store) / b.id / "metadata.json").write_text(json.dumps(data))
    reasons = {s.id: s.error_message for s in scanned(store)}
    assert "missing" in (reasons[a.id] or "")
    assert "not its folder" in (reasons[b.id] or "")


def test_other_entries_in_runs_are_ignored(store: WorkspaceStore) -> None:
    store.create_run(new_run())
    (runs_dir(store) / "README").write_text("x")
    (runs_dir(store) / ".deleting-x").mkdir()
    assert len(scanned(store)) == 1


def test_delete_run_removes_everything(store: WorkspaceStore) -> None:
    run = create_with_step(store)
    store.delete_run(run.id)
    assert list(runs_dir(store).iterdir()) == []
    with pytest.raises(NotFound):
        store.delete_run(run.id)


def test_delete_of_a_symlinked_run_removes_only_the_link(
    store: WorkspaceStore, tmp_path: Path
) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep.txt").write_text("keep")
    fake = names.new_run_id(1_795_000_000_000)
    store.init()
    (runs_dir(store) / fake).symlink_to(precious)
    store.delete_run(fake)
    assert (precious / "keep.txt").read_text() == "keep"
    assert not (runs_dir(store) / fake).exists()


def test_read_file_refuses_oversized(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(b"x" * 100)
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    with safefs.opened(fd), pytest.raises(OSError, match="over 10"):
        safefs.read_file(fd, "big", "big", 10)


def test_the_longest_artifact_name_fits(store: WorkspaceStore) -> None:
    run = create_with_step(store)
    name = "a" * 251 + ".txt"
    assert len(name.encode()) == 255
    with store.open_run(run.id) as handle:
        handle.put_artifact(1, name, b"x")
        assert handle.get_artifact(1, name, 10)[0] == b"x"


def test_deleting_steps_unlinks_a_symlinked_step_folder(
    store: WorkspaceStore, tmp_path: Path
) -> None:
    run = create_with_step(store)
    target = tmp_path / "target"
    target.mkdir()
    (target / "keep").write_text("keep")
    (runs_dir(store) / run.id / "02_code").symlink_to(target)
    with store.open_run(run.id) as handle:
        handle.delete_steps_from(1)
    assert sorted(p.name for p in (runs_dir(store) / run.id).iterdir()) == ["metadata.json"]
    assert (target / "keep").read_text() == "keep"


def test_a_snapshot_round_trips_many_lines_of_rows(tmp_path: Path) -> None:
    snapshots = SnapshotStore(tmp_path / "snapshots")
    rows: list[tuple[RunSummary, int | None]] = []
    for n in range(2 * ROWS_PER_LINE + 345):  # three lines of rows
        if n % 100 == 5:
            summary = RunSummary.corrupt(names.new_run_id(n), "/ws", "unreadable")
        else:
            run = new_run(n).model_copy(
                update={"status": RunStatus.COMPLETED, "title": f"run {n}", "completed_at": T0}
            )
            summary = RunSummary.of(run, "/ws")
        rows.append((summary, None if n == 7 else n * 7919))
    snapshots.save("/ws", rows)
    assert snapshots.load("/ws") == rows
    assert snapshots.load("/other") is None  # another workspace's file does not exist


def test_a_truncated_snapshot_is_ignored_not_half_loaded(tmp_path: Path) -> None:
    snapshots = SnapshotStore(tmp_path / "snapshots")
    summary = RunSummary.of(new_run(), "/ws")
    snapshots.save("/ws", [(summary, 1)] * (ROWS_PER_LINE + 1))
    (path,) = (tmp_path / "snapshots").iterdir()
    path.write_bytes(path.read_bytes()[:-10])
    assert snapshots.load("/ws") is None
