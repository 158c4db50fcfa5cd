"""``simpleaide workspaces rm`` sticks: no reading command run inside the folder serves it
again, nor does a daemon restart; only an explicit act does (``workspaces add``, or a
``runs create`` there). A run in a workspace the daemon does not serve is named with its
workspace and what to add, never "does not exist"."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from simpleaide import paths
from tests.support.runs import lay_out_run
from tests.support.sandbox import Sandbox


def served(sandbox: Sandbox) -> list[str]:
    """The paths the daemon serves (``workspaces ls --json``)."""
    return [w["path"] for w in sandbox.ok("workspaces", "ls", "--json").json()]


def refused(sandbox: Sandbox, *args: str, cwd: Path) -> str:
    """The one error line of a command that must fail (exit 1)."""
    result = sandbox.run(*args, cwd=cwd)
    assert result.code == 1, str(result)
    assert result.out == b"", str(result)
    return result.err


def test_a_removed_workspace_stays_removed_by_reading_commands_and_restarts(
    sandbox: Sandbox,
) -> None:
    ws = sandbox.workspace("proj")
    run_id = sandbox.new_run(ws, "--title", "fix the parser")
    assert served(sandbox) == [str(ws)]
    sandbox.ok("workspaces", "rm", str(ws))
    add = f"simpleaide workspaces add {ws}"

    for restart in (False, True):
        if restart:
            sandbox.ok("daemon", "stop")  # the next command starts a new daemon
        # Reading commands inside the folder: refused, saying why and what to do.
        err = refused(sandbox, "runs", "ls", cwd=ws)
        assert err == (
            f"simpleaide: workspace {ws} is not served: it was removed "
            f"(simpleaide workspaces rm); serve it again with: {add}\n"
        )
        assert refused(sandbox, "status", "--workspace", str(ws), cwd=ws) == err
        assert refused(sandbox, "runs", "prune", "--keep", "1", cwd=ws) == err
        assert refused(sandbox, "runs", "show", run_id, cwd=ws) == (
            f"simpleaide: run {run_id} is in workspace {ws}, which this daemon does not serve: "
            f"it was removed (simpleaide workspaces rm); serve it again with: {add}\n"
        )
        # From elsewhere too: the daemon remembers where the run lies.
        assert f"is in workspace {ws}" in refused(sandbox, "steps", "ls", run_id, cwd=sandbox.cwd)
        sandbox.ok("status", cwd=ws)  # not scoped to it: answers, serves nothing
        assert served(sandbox) == []

    sandbox.ok("workspaces", "add", str(ws))
    assert sandbox.ok("runs", "ls", "--json", cwd=ws).json()["runs"][0]["id"] == run_id
    assert sandbox.ok("runs", "show", run_id, "--json").json()["title"] == "fix the parser"
    sandbox.ok("daemon", "stop")
    assert served(sandbox) == [str(ws)]  # added again: remembered again


def test_runs_create_serves_a_removed_workspace_again(sandbox: Sandbox) -> None:
    ws = sandbox.workspace("proj")
    first = sandbox.new_run(ws)
    sandbox.ok("workspaces", "rm", str(ws))
    second = sandbox.ok("runs", "create", cwd=ws).stdout.strip()  # an explicit act
    assert served(sandbox) == [str(ws)]
    listed = sandbox.ok("runs", "ls", "--json", cwd=ws).json()["runs"]
    assert [r["id"] for r in listed] == [second, first]
    sandbox.ok("daemon", "stop")
    assert served(sandbox) == [str(ws)]


def test_a_run_in_a_folder_the_daemon_never_served_is_named_with_its_workspace(
    sandbox: Sandbox,
) -> None:
    ws = sandbox.workspace("elsewhere")
    run_id = lay_out_run(ws, "completed", ["completed"])  # written by another tool
    assert served(sandbox) == []
    assert refused(sandbox, "runs", "show", run_id, cwd=ws / ".simpleaide") == (
        f"simpleaide: run {run_id} is in workspace {ws}, which the daemon does not serve; "
        f"serve it with: simpleaide workspaces add {ws}\n"
    )
    # Outside that folder the CLI cannot know: the daemon's words.
    assert refused(sandbox, "runs", "show", run_id, cwd=sandbox.cwd) == (
        f"simpleaide: run {run_id} does not exist\n"
    )
    # A folder holding .simpleaide/ that was never removed: a reading command inside it
    # serves it, as before.
    listed = sandbox.ok("runs", "ls", "--json", cwd=ws).json()["runs"]
    assert [r["id"] for r in listed] == [run_id]
    assert served(sandbox) == [str(ws)]


def test_runs_create_in_a_folder_others_may_write_in_says_why_and_what_to_do(
    sandbox: Sandbox,
) -> None:
    folder = sandbox.root / "open"
    folder.mkdir()
    folder.chmod(0o777)
    assert refused(sandbox, "runs", "create", cwd=folder) == (
        f"simpleaide: refusing workspace {folder}: everyone may write in it, so others could "
        f"tamper with its .simpleaide/; make it yours alone (chmod o-w {folder}) or choose "
        "another folder\n"
    )
    assert not (folder / ".simpleaide").exists()
    folder.chmod(0o755)
    sandbox.ok("runs", "create", cwd=folder)
    assert served(sandbox) == [str(folder)]


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to give a folder to another user")
def test_reading_commands_pass_over_a_marker_that_cannot_be_the_users(sandbox: Sandbox) -> None:
    theirs = sandbox.workspace("theirs")
    os.chown(theirs / ".simpleaide", 65534, 65534)
    shared = sandbox.workspace("shared")
    shared.chmod(0o777)
    for folder in (theirs, shared):
        inside = folder / "src"
        inside.mkdir()
        # Not that folder's runs: the command is not scoped to it, and serves nothing.
        assert sandbox.ok("runs", "ls", "--json", cwd=inside).json()["runs"] == []
        sandbox.ok("status", cwd=inside)
    assert served(sandbox) == []


def test_a_marker_passed_over_is_said_and_no_workspace_is_made_inside_it(
    sandbox: Sandbox,
) -> None:
    shared = sandbox.workspace("project")
    shared.chmod(0o777)  # as every folder looks on WSL's /mnt/c without "metadata"
    inside = shared / "src"
    inside.mkdir()
    why = (
        f"the .simpleaide/ in {shared} is passed over: everyone may write in {shared} "
        f"(chmod o-w {shared}); on a file system without Unix permissions (such as WSL's "
        "/mnt/c, mounted without the metadata option) every folder looks so: keep the "
        "project elsewhere, such as in your Linux home folder"
    )
    for cwd in (shared, inside):
        listed = sandbox.run("runs", "ls", cwd=cwd)
        assert listed.code == 0 and listed.err.startswith(f"simpleaide: {why}\n"), listed
        latest = sandbox.run("runs", "show", "latest", cwd=cwd)
        assert latest.code == 1 and latest.err == (
            f"simpleaide: 'latest' is the newest run of the current workspace, but {why}\n"
        )
    # Not a second workspace made inside the one passed over.
    assert refused(sandbox, "runs", "create", cwd=inside) == (
        f"simpleaide: {why}; or give --workspace PATH\n"
    )
    assert not (inside / ".simpleaide").exists()
    assert served(sandbox) == []
    shared.chmod(0o755)
    run_id = sandbox.ok("runs", "create", cwd=inside).out.decode().strip()
    assert served(sandbox) == [str(shared)]
    assert sandbox.ok("runs", "show", "latest", cwd=inside).out.decode().count(run_id) == 1


def test_a_marker_at_the_root_is_never_a_workspace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A /.simpleaide/ of the user's (left by an older daemon, run as root) is pretended:
    # none may be made at / by a test.
    ours = tmp_path / "store"
    ours.mkdir()
    real_stat = os.stat

    def stat(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if os.fspath(path) == "/.simpleaide":
            return real_stat(ours)
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat)
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert os.path.isdir("/.simpleaide")  # as the CLI would see it
    assert paths.find_workspace(str(deep)) is None
    (tmp_path / "a" / ".simpleaide").mkdir()
    assert paths.find_workspace(str(deep)) == str(tmp_path / "a")
