"""The store's refusals in words: a folder that cannot hold a run store says why and what to
do, whatever the reason (the ones a test running as root cannot cause, read-only disks and
permissions, included); a record that does not parse says what is wrong in it, not in
pydantic's words."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from simpleaided.domain.errors import InvalidInput
from simpleaided.store import safefs
from simpleaided.store.runstore import WorkspaceStore
from tests.support.runs import lay_out_run, runs_dir


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (errno.EROFS, "it is on a read-only file system; choose a folder on a writable disk"),
        (
            errno.EACCES,
            "you may not write in it (permission denied); choose a folder of your own, or give "
            "yourself write permission (chmod u+rwx)",
        ),
        (errno.ENOSPC, "its disk is full; free some space, or choose a folder on another disk"),
        (errno.EIO, "input/output error; choose another folder"),
    ],
)
def test_each_reason_is_said_with_what_to_do(code: int, words: str) -> None:
    refusal = safefs.unusable_workspace("/srv/x", OSError(code, os.strerror(code), ".simpleaide"))
    assert isinstance(refusal, InvalidInput)  # refused as the caller's input, never a crash
    assert refusal.message == f"cannot use /srv/x as a workspace: {words}"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"status": "paused"}, "metadata.json: status must be 'pending', 'running', "),
        ({"id": None}, "metadata.json: id is missing"),
        ({"stepCount": "many"}, "metadata.json: stepCount must be a valid integer"),
    ],
)
def test_a_record_that_does_not_parse_says_what_is_wrong(
    tmp_path: Path, change: dict[str, object], reason: str
) -> None:
    (tmp_path / ".simpleaide").mkdir()
    run_id = lay_out_run(tmp_path, "running", [])
    record = runs_dir(tmp_path) / run_id / "metadata.json"
    data = json.loads(record.read_text())
    data.update(change)
    record.write_text(json.dumps({k: v for k, v in data.items() if v is not None}))
    [(summary, _)] = WorkspaceStore(str(tmp_path)).scan()
    assert summary.status == "corrupt"
    assert (summary.error_message or "").startswith(reason), summary.error_message
    for words in ("Input should", "Field required"):
        assert words not in (summary.error_message or "")
