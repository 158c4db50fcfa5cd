"""The CLI's answers that must name what the user meant: a ``--force`` hint names the run
resolved (not ``latest``, which may name a newer run by then), a failed write of ``-o FILE``
is one line, ``runs ls`` outside a workspace names the workspace of each run, a passed-over
marker is said, a new run's id survives a standard output that cannot be written, and a
misspelt option gets its "did you mean"."""

from __future__ import annotations

import re
import shlex

from tests.support.sandbox import RUN_ID, Sandbox, run_to_full_disk

# -- a --force hint names the run resolved ------------------------------------------------


def test_a_force_hint_for_latest_names_the_run_resolved(sandbox: Sandbox) -> None:
    ws = sandbox.workspace()
    first = sandbox.ok("runs", "create", cwd=ws).stdout.strip()
    sandbox.ok("steps", "add", first, "s", "--start", cwd=ws)
    refused = sandbox.run("runs", "rm", "@", cwd=ws)
    assert refused.code == 1, str(refused)
    hint = refused.err.rstrip("\n").rpartition(" with: ")[2]
    assert hint == f"simpleaide runs rm {first} --force", str(refused)

    second = sandbox.ok("runs", "create", cwd=ws).stdout.strip()
    sandbox.ok("steps", "add", second, "s", "--start", cwd=ws)
    sandbox.ok(*shlex.split(hint)[1:], cwd=ws)  # the hint, run as said
    ids = [run["id"] for run in sandbox.ok("runs", "ls", "--json", cwd=ws).json()["runs"]]
    assert ids == [second], ids


def test_a_force_hint_for_a_prefix_names_the_whole_id(sandbox: Sandbox) -> None:
    ws = sandbox.workspace()
    run_id = sandbox.ok("runs", "create", cwd=ws).stdout.strip()
    sandbox.ok("steps", "add", run_id, "s", "--start", cwd=ws)
    refused = sandbox.run("runs", "rm", run_id[:16], cwd=ws)
    assert refused.code == 1, str(refused)
    assert refused.err.rstrip("\n").endswith(f" with: simpleaide runs rm {run_id} --force")


# -- a failed write of -o FILE is one line ------------------------------------------------

NO_SPACE = "No space left on device"


def test_artifacts_get_to_a_full_disk_is_one_line(sandbox: Sandbox) -> None:
    ws = sandbox.workspace()
    run_id = sandbox.new_run(ws)
    sandbox.ok("steps", "add", run_id, "plan")
    small, big = sandbox.root / "a.txt", sandbox.root / "big.bin"
    small.write_text("a plan\n")
    big.write_bytes(bytes(range(256)) * 1024)  # written past any buffer: write() fails
    sandbox.ok("artifacts", "put", run_id, "plan", "a.txt", str(small))
    sandbox.ok("artifacts", "put", run_id, "plan", "big.bin", str(big))
    for name in ("a.txt", "big.bin"):
        result = sandbox.run("artifacts", "get", run_id, "1", name, "-o", "/dev/full")
        assert result.code == 1, str(result)
        assert result.err == f"simpleaide: cannot write /dev/full: {NO_SPACE}\n", str(result)


def test_db_export_to_a_full_disk_is_one_line(sandbox: Sandbox) -> None:
    import sqlite3

    path = sandbox.root / "app.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, label TEXT)")
        db.executemany("INSERT INTO items (label) VALUES (?)", [(f"item {i}",) for i in range(50)])
    db.close()
    sandbox.configure(f'[db]\nprobe_seconds = 600\n[db.DEV]\nurl = "sqlite://{path}"\n')
    sandbox.ok("daemon", "start")
    for fmt in ("csv", "jsonl"):
        result = sandbox.run("db", "export", "items", "--format", fmt, "-o", "/dev/full")
        assert result.code == 1, str(result)
        assert result.err == f"simpleaide: cannot write /dev/full: {NO_SPACE}\n", str(result)


# -- runs outside a workspace, markers passed over ----------------------------------------


def test_runs_ls_outside_any_workspace_names_the_workspace_of_one(sandbox: Sandbox) -> None:
    ws = sandbox.workspace()
    sandbox.new_run(ws)
    for args in (["runs", "ls"], ["runs", "ls", "--all"]):
        shown = sandbox.ok(*args).stdout.splitlines()  # run in sandbox.cwd: no workspace
        assert "WORKSPACE" in shown[0].split(), shown
        assert str(ws) in shown[1] or "~" in shown[1], shown
    inside = sandbox.ok("runs", "ls", cwd=ws).stdout.splitlines()
    assert "WORKSPACE" not in inside[0].split(), inside


def test_runs_show_latest_says_a_marker_passed_over(sandbox: Sandbox) -> None:
    ws = sandbox.workspace()
    run_id = sandbox.new_run(ws)
    shared = ws / "shared"
    (shared / ".simpleaide").mkdir(parents=True)
    shared.chmod(0o777)  # everyone may write in it: its marker is passed over
    listed = sandbox.ok("runs", "ls", cwd=shared)
    said = f"simpleaide: the .simpleaide/ in {shared} is passed over: everyone may write"
    assert listed.err.startswith(said), str(listed)
    for word in ("latest", "@"):
        shown = sandbox.ok("runs", "show", word, cwd=shared)
        assert shown.err.startswith(said), str(shown)
        assert re.search(rf"^id:\s+{run_id}$", shown.stdout, re.M), str(shown)


# -- a new run's id survives a standard output that cannot be written ------------------------


def test_runs_create_to_a_full_disk_says_the_new_runs_id(sandbox: Sandbox) -> None:
    ws = sandbox.workspace()
    sandbox.ok("daemon", "start")
    for extra in ([], ["--json"]):
        code, err = run_to_full_disk(
            sandbox, "runs", "create", "--workspace", str(ws), "--title", "x", *extra
        )
        assert code == 1, err
        said = re.fullmatch(
            r"simpleaide: run (\S+) was created, but standard output cannot be written: "
            r"No space left on device\n",
            err,
        )
        assert said and RUN_ID.match(said[1]), err
        assert sandbox.ok("runs", "show", said[1], "--json").json()["title"] == "x"


# -- "did you mean" at every level ----------------------------------------------------------


def test_a_misspelt_top_option_after_the_command_gets_its_hint(sandbox: Sandbox) -> None:
    for args, said in [
        (["--verison", "status"], "simpleaide status: unrecognized option '--verison' "),
        (["runs", "ls", "--verison"], "simpleaide runs ls: unrecognized option '--verison' "),
    ]:
        result = sandbox.run("--no-spawn", *args)
        assert result.code == 2, str(result)
        last = result.err.splitlines()[-1]
        assert last == f"{said}(did you mean '--version'?)", str(result)
    result = sandbox.run("--no-spawn", "status", "--version")
    assert result.code == 2, str(result)
    assert result.err.splitlines()[-1] == (
        "simpleaide status: option '--version' goes before the command: simpleaide --version"
    ), str(result)


def test_an_unknown_option_before_a_nouns_command_is_said(sandbox: Sandbox) -> None:
    for noun, command in [("runs", "ls"), ("vault", "status")]:
        result = sandbox.run("--no-spawn", noun, "--sockt", "x", command)
        assert result.code == 2, str(result)
        assert result.err.splitlines()[-1] == (
            f"simpleaide {noun}: unrecognized option '--sockt' (did you mean '--socket'?)"
        ), str(result)
