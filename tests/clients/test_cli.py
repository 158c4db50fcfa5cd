"""The installed ``simpleaide`` command against a real daemon that it starts itself.

Each test gets a sandbox (short socket path, its own HOME and XDG dirs) and the daemon the CLI
spawned there is stopped at teardown. The sandbox fails any run whose stderr shows a traceback.
"""

from __future__ import annotations

import ast
import json
import os
import re
import socket
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from simpleaide.spawn import _accepts
from simpleaided.domain import chips as daemon_chips
from tests.support.paths import REPO
from tests.support.sandbox import (
    RUN_ID,
    Sandbox,
    process_alive,
    simpleaide_command,
    status_path_imports,
)

CLIENT_PACKAGE = REPO / "clients" / "python" / "simpleaide"


# -- reaching the daemon ------------------------------------------------------------------


def test_no_spawn_without_daemon_exits_3_with_a_hint(sandbox: Sandbox) -> None:
    result = sandbox.run("status", "--no-spawn")
    assert result.code == 3
    assert result.out == b""
    assert result.err.strip() == (
        f"simpleaide: no daemon answers on {sandbox.socket} "
        "(start it with: simpleaide daemon start)"
    )
    waybar = sandbox.run("status", "--format", "waybar", "--no-spawn")
    assert waybar.code == 0  # waybar would hide the module, OFF chip and all, on an error
    assert waybar.json()["class"] == ["offline"]
    assert sandbox.run("runs", "ls", "--no-spawn").code == 3
    assert not sandbox.socket.exists()


def test_any_command_spawns_the_daemon(sandbox: Sandbox) -> None:
    assert not sandbox.socket.exists()
    result = sandbox.ok("status")
    assert "DEV 🟢" in result.stdout
    assert "Run –" in result.stdout
    info = sandbox.ok("daemon", "status", "--json").json()
    assert info["socket"] == str(sandbox.socket)
    assert process_alive(info["pid"])
    # Its output went to the log, in a private folder.
    assert "serving" in sandbox.log.read_text()
    assert stat.S_IMODE(sandbox.log.parent.stat().st_mode) == 0o700


def test_socket_flag_and_variable_choose_the_socket(sandbox: Sandbox) -> None:
    flagged = sandbox.root / "f.sock"
    sandbox.extra_sockets.append(flagged)
    sandbox.ok("--socket", str(flagged), "daemon", "start")
    assert flagged.is_socket()
    assert not sandbox.socket.exists()
    info = sandbox.ok("daemon", "status", "--json", env={"SIMPLEAIDE_SOCKET": str(flagged)}).json()
    assert info["socket"] == str(flagged)
    assert sandbox.ok("daemon", "stop", "--socket", str(flagged)).code == 0
    assert not flagged.exists()


def test_a_daemon_that_cannot_start_is_reported_at_once_with_its_reason(
    sandbox: Sandbox,
) -> None:
    in_the_way = sandbox.root / "notes.txt"
    in_the_way.write_text("precious")
    for args in (["status"], ["daemon", "start"]):
        result = sandbox.run("--socket", str(in_the_way), *args)
        assert result.code == 3, result
        # Noticed when the daemon exited, not after the start timeout; its reason quoted on
        # a line of its own (the CLI's own line breaks are kept, not shown as escapes).
        assert result.err == (
            f"simpleaide: simpleaided exited with status 1 before answering on {in_the_way}; "
            f"from {sandbox.log}:\n"
            f"  | simpleaided: choose another --socket path ({in_the_way} is a file, "
            "not a socket)\n"
        ), result
    assert in_the_way.read_text() == "precious"
    assert sorted(p.name for p in sandbox.root.iterdir() if p.name.startswith("notes")) == [
        "notes.txt"
    ]


def test_control_characters_in_a_spawn_error_are_escaped_line_by_line(sandbox: Sandbox) -> None:
    # The path reaches the error twice: in the CLI's own summary and in the daemon's
    # reason quoted from its log. Both show the ESC as an escape; the line break the CLI
    # puts between them stays a line break.
    in_the_way = sandbox.root / "\x1b[31mred"
    in_the_way.write_text("precious")
    result = sandbox.run("--socket", str(in_the_way), "status")
    assert result.code == 3, result
    shown = str(sandbox.root / "\\x1b[31mred")
    assert result.err == (
        f"simpleaide: simpleaided exited with status 1 before answering on {shown}; "
        f"from {sandbox.log}:\n"
        f"  | simpleaided: choose another --socket path ({shown} is a file, not a socket)\n"
    ), result
    assert "\x1b" not in result.err


def test_a_stale_socket_file_does_not_hide_a_daemon_that_exits_at_once(
    sandbox: Sandbox,
) -> None:
    # What a daemon killed with SIGKILL leaves: a socket file nobody answers on.
    sandbox.socket.parent.mkdir(mode=0o700)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(sandbox.socket))
    stale.close()
    assert sandbox.socket.is_socket()
    sandbox.configure("nonsense = 1\n")
    started = time.monotonic()
    result = sandbox.run("runs", "ls")
    elapsed = time.monotonic() - started
    assert result.code == 3, result
    assert "simpleaided exited with status 2 before answering" in result.err, result
    assert "nonsense" in result.err, result
    # Reported when the daemon exited, not after the 10 s start timeout.
    assert elapsed < 5, (elapsed, result)


def test_daemon_start_status_stop(sandbox: Sandbox) -> None:
    assert sandbox.run("daemon", "status").code == 3
    started = sandbox.ok("daemon", "start")
    assert "started" in started.stdout
    pid = sandbox.ok("daemon", "status", "--json").json()["pid"]

    again = sandbox.ok("daemon", "start")
    assert "already running" in again.stdout
    assert f"pid {pid}" in again.stdout

    human = sandbox.ok("daemon", "status").stdout
    assert f"pid {pid}" in human
    assert str(sandbox.socket) in human
    assert "started by:  simpleaide daemon start\n" in human
    assert "protocol:    version 1\n" in human
    info = sandbox.ok("daemon", "status", "--json").json()
    assert (info["startMode"], info["apiVersion"]) == ("daemon-start", 1)

    stopped = sandbox.ok("daemon", "stop")
    assert "stopped" in stopped.stdout
    assert not process_alive(pid)
    assert not sandbox.socket.exists()

    after = sandbox.run("daemon", "status")
    assert after.code == 3
    assert "not running" in after.err
    not_running = sandbox.ok("daemon", "stop")
    assert "not running" in not_running.stdout


def test_concurrent_commands_share_one_daemon(sandbox: Sandbox) -> None:
    """Status lines in several panes may all find no daemon at once: each gets its answer
    from the one daemon that wins the start-up race, and one stop ends it."""
    procs = [
        subprocess.Popen(
            [simpleaide_command(), "status"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=sandbox.env,
            cwd=sandbox.cwd,
        )
        for _ in range(6)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert "DEV 🟢" in out.decode()
    # Stop at once, while daemons that lost the race could still be booting.
    assert sandbox.ok("daemon", "stop").stdout.startswith("simpleaided stopped")
    assert sandbox.run("daemon", "status").code == 3


def run_with_stdout(sandbox: Sandbox, args: list[str], stdout: int) -> tuple[int, str]:
    """Run ``simpleaide ARGS`` with ``stdout`` as its fd 1 (-1: closed, as ``>&-`` does);
    returns the exit status and stderr."""
    command = [simpleaide_command(), *args]
    if stdout < 0:
        command = ["sh", "-c", 'exec "$0" "$@" >&-', *command]
    proc = subprocess.run(
        command,
        stdin=subprocess.DEVNULL,
        stdout=None if stdout < 0 else stdout,
        stderr=subprocess.PIPE,
        env=sandbox.env,
        cwd=sandbox.cwd,
        timeout=60,
        check=False,
    )
    return proc.returncode, proc.stderr.decode()


def test_a_closed_stdout_refuses_quietly_and_changes_nothing(sandbox: Sandbox) -> None:
    ws = sandbox.workspace()
    sandbox.new_run(ws)
    read_only = os.open(os.devnull, os.O_RDONLY)
    try:
        for args in (
            ["status"],
            ["status", "--format", "tmux"],
            ["runs", "ls", "--all"],
            ["daemon", "status"],
            ["runs", "create", "--workspace", str(ws)],
        ):
            for fd in (-1, read_only):
                code, err = run_with_stdout(sandbox, args, fd)
                assert code == 1, (args, fd, err)
                assert err == "simpleaide: standard output is closed or read-only\n", (args, err)
    finally:
        os.close(read_only)
    assert len(sandbox.ok("runs", "ls", "--all", "--json").json()["runs"]) == 1


def test_a_reader_that_went_away_ends_quietly_with_141(sandbox: Sandbox) -> None:
    """``simpleaide runs ls | head -1``: once the reader has gone, the next write ends the
    command, silently, with the status a shell gives a process killed by SIGPIPE."""
    ws = sandbox.workspace()
    run_id = sandbox.new_run(ws)
    sandbox.ok("steps", "add", run_id, "plan")
    sandbox.ok("artifacts", "put", run_id, "1", "big.bin", "-", input=os.urandom(300_000))
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written: no race
    try:
        for args in (
            ["status"],
            ["runs", "ls", "--all"],
            ["runs", "show", run_id, "--json"],
            ["artifacts", "get", run_id, "1", "big.bin"],
            ["watch", "--format", "plain"],
        ):
            code, err = run_with_stdout(sandbox, args, write_end)
            assert (code, err) == (141, ""), args
    finally:
        os.close(write_end)


# -- status -------------------------------------------------------------------------------


def test_status_shows_an_active_run(sandbox: Sandbox) -> None:
    ws = sandbox.workspace()
    run_id = sandbox.new_run(ws)
    assert sandbox.ok("steps", "add", run_id, "plan", "--start").stdout.strip() == "1"

    line = sandbox.ok("status").stdout
    assert line.count("\n") == 1
    assert "DEV 🟢" in line
    assert "Run ⏳ 1" in line

    doc = sandbox.ok("status", "--json").json()
    assert doc["runs"]["active"] == 1
    assert doc["runs"]["last"]["id"] == run_id

    tmux = sandbox.ok("status", "--format", "tmux").stdout
    assert "#[fg=yellow]Run ⏳ 1#[default]" in tmux

    waybar = sandbox.ok("status", "--format", "waybar").json()
    assert set(waybar) == {"text", "tooltip", "class"}
    assert "Run ⏳ 1" in waybar["text"]
    assert "busy" in waybar["class"]


def test_status_tooltip_tells_why_the_last_run_failed(sandbox: Sandbox) -> None:
    ws = sandbox.workspace()
    run_id = sandbox.new_run(ws)
    sandbox.ok("steps", "add", run_id, "test", "--start")
    sandbox.ok("steps", "fail", run_id, "test", "--message", "3 tests failed")

    assert "Run ✗" in sandbox.ok("status").stdout
    waybar = sandbox.ok("status", "--format", "waybar").json()
    assert "failed" in waybar["class"]
    assert re.search(r"Last run failed \d+s ago: .*3 tests failed", waybar["tooltip"])


def test_status_of_one_workspace(sandbox: Sandbox) -> None:
    busy, idle = sandbox.workspace("busy"), sandbox.workspace("idle")
    sandbox.ok("steps", "add", sandbox.new_run(busy), "plan", "--start")
    sandbox.new_run(idle)
    assert "Run ⏳ 1" in sandbox.ok("status").stdout
    assert "Run ⏳" not in sandbox.ok("status", "--workspace", str(idle)).stdout


# -- a run's life -------------------------------------------------------------------------


def test_full_run_lifecycle(sandbox: Sandbox) -> None:
    ws = sandbox.workspace()
    run_id = sandbox.new_run(ws, "--title", "Refactor the parser")
    assert sandbox.ok("steps", "add", run_id, "plan", "--start").stdout.strip() == "1"

    plan = sandbox.root / "plan.md"
    plan.write_text("# Plan\n\n1. read\n2. änder\n", encoding="utf-8")
    sandbox.ok("artifacts", "put", run_id, "1", "plan.md", str(plan))
    binary = bytes(range(256)) + b"\xff\xfe\x00not utf-8\x80\n"
    sandbox.ok("artifacts", "put", run_id, "01_plan", "blob.bin", input=binary)
    sandbox.ok("artifacts", "put", run_id, "plan", "empty.txt", "-", input=b"")

    # Round trips, to a pipe and to a file, are byte-exact.
    assert sandbox.ok("artifacts", "get", run_id, "plan", "blob.bin").out == binary
    assert sandbox.ok("artifacts", "get", run_id, "1", "plan.md").out == plan.read_bytes()
    copy = sandbox.root / "copy.bin"
    sandbox.ok("artifacts", "get", run_id, "1", "blob.bin", "-o", str(copy))
    assert copy.read_bytes() == binary
    assert sandbox.ok("artifacts", "get", run_id, "1", "empty.txt").out == b""

    listed = sandbox.ok("artifacts", "ls", run_id, "--json").json()
    assert {(a["name"], a["size"]) for a in listed} == {
        ("plan.md", len(plan.read_bytes())),
        ("blob.bin", len(binary)),
        ("empty.txt", 0),
    }
    assert "blob.bin" in sandbox.ok("artifacts", "ls", run_id, "1").stdout

    done = sandbox.ok("steps", "done", run_id, "plan")
    assert "completed" in done.stdout
    assert "completed" in sandbox.ok("runs", "complete", run_id).stdout

    shown = sandbox.ok("runs", "show", run_id).stdout
    assert "Refactor the parser" in shown
    assert re.search(r"^status:\s+completed$", shown, re.M)
    assert re.search(r"^1\s+01_plan\s+completed", shown, re.M)

    page = sandbox.ok("runs", "ls", "--json", cwd=ws).json()
    assert [(r["id"], r["status"], r["stepCount"]) for r in page["runs"]] == [
        (run_id, "completed", 1)
    ]
    table = sandbox.ok("runs", "ls", cwd=ws).stdout.splitlines()
    assert table[0].split() == ["ID", "STATUS", "STEPS", "STARTED", "AGE", "TITLE"]
    assert table[1].startswith(run_id) and "Refactor the parser" in table[1]
    assert "Run ✓" in sandbox.ok("status").stdout

    # The run is on disk where the design says.
    metadata = json.loads((ws / ".simpleaide" / "runs" / run_id / "metadata.json").read_text())
    assert metadata["status"] == "completed"


def test_rerun_from_a_step_and_keep_run(sandbox: Sandbox) -> None:
    ws = sandbox.workspace()
    run_id = sandbox.new_run(ws)
    for name in ("plan", "code", "test"):
        sandbox.ok("steps", "add", run_id, name, "--start")
    kept = sandbox.ok("steps", "fail", run_id, "3", "-m", "flaky", "--keep-run", "--json").json()
    assert kept["step"]["status"] == "failed"
    assert kept["run"]["status"] == "running"

    rerun = sandbox.ok("steps", "rm-from", run_id, "02_code", "--json").json()
    assert (rerun["status"], rerun["stepCount"]) == ("pending", 1)
    steps = sandbox.ok("steps", "ls", run_id, "--json").json()
    assert [s["folder"] for s in steps] == ["01_plan"]

    sandbox.ok("runs", "cancel", run_id)
    assert sandbox.ok("runs", "show", run_id, "--json").json()["status"] == "cancelled"
    sandbox.ok("runs", "rm", run_id)
    assert not (ws / ".simpleaide" / "runs" / run_id).exists()


def test_runs_ls_defaults_to_the_nearest_workspace(sandbox: Sandbox) -> None:
    mine, other = sandbox.workspace("mine"), sandbox.workspace("other")
    here = sandbox.new_run(mine)
    there = sandbox.new_run(other)
    inside = mine / "src" / "deep"
    inside.mkdir(parents=True)

    listed = sandbox.ok("runs", "ls", "--json", cwd=inside).json()["runs"]
    assert [r["id"] for r in listed] == [here]
    everything = sandbox.ok("runs", "ls", "--all", "--json", cwd=inside).json()["runs"]
    assert {r["id"] for r in everything} == {here, there}
    # Outside any workspace: every run.
    assert len(sandbox.ok("runs", "ls", "--json").json()["runs"]) == 2
    # runs create picks the nearest workspace too, and prints the id alone.
    made = sandbox.ok("runs", "create", cwd=inside).stdout
    assert RUN_ID.match(made.strip()) and made.endswith("\n") and made.count("\n") == 1
    assert (mine / ".simpleaide" / "runs" / made.strip()).is_dir()


# -- errors -------------------------------------------------------------------------------


def test_illegal_transition_is_one_line_exit_1(sandbox: Sandbox) -> None:
    ws = sandbox.workspace()
    run_id = sandbox.new_run(ws)
    result = sandbox.run("runs", "complete", run_id)
    assert result.code == 1
    assert result.out == b""
    assert result.err.count("\n") == 1
    assert result.err.startswith("simpleaide: ")
    assert "pending" in result.err and "completed" in result.err


def test_bad_step_name_is_refused_and_nothing_is_created(sandbox: Sandbox) -> None:
    ws = sandbox.workspace()
    run_id = sandbox.new_run(ws)
    result = sandbox.run("steps", "add", run_id, "../Bad Name")
    assert result.code == 1
    assert result.err.count("\n") == 1
    assert "NAME: '../Bad Name' is not a step name" in result.err
    assert sandbox.ok("steps", "ls", run_id, "--json").json() == []
    run = sandbox.ok("runs", "show", run_id, "--json").json()
    assert (run["status"], run["stepCount"]) == ("pending", 0)
    assert sorted(p.name for p in (ws / ".simpleaide" / "runs" / run_id).iterdir()) == [
        "metadata.json"
    ]


def test_unknown_run_and_step(sandbox: Sandbox) -> None:
    missing = sandbox.run("runs", "show", "20200101T000000000Z-00000000")
    assert missing.code == 1
    assert "does not exist" in missing.err
    malformed = sandbox.run("runs", "show", "nope")
    assert malformed.code == 1
    assert "no run 'nope': a run id looks like" in malformed.err

    run_id = sandbox.new_run(sandbox.workspace())
    no_step = sandbox.run("steps", "start", run_id, "code")
    assert no_step.code == 1
    assert "no step named 'code'" in no_step.err
    unreadable = sandbox.run("artifacts", "put", run_id, "1", "x", str(sandbox.root / "nope"))
    assert unreadable.code == 1
    assert "cannot read" in unreadable.err


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["bogus"],
        ["runs"],
        ["runs", "fail", "20200101T000000000Z-00000000"],
        ["runs", "ls", "--limit", "0"],
        ["runs", "ls", "--all", "--workspace", "/tmp"],
        ["status", "--format", "html"],
        ["steps", "add"],
    ],
)
def test_usage_errors_exit_2_without_a_daemon(sandbox: Sandbox, args: list[str]) -> None:
    result = sandbox.run(*args)
    assert result.code == 2
    assert "usage:" in result.err
    assert not sandbox.socket.exists()


# -- help and the client's own rules ------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        "status",
        "runs ls",
        "runs show",
        "runs create",
        "runs complete",
        "runs fail",
        "runs cancel",
        "runs rm",
        "steps add",
        "steps start",
        "steps done",
        "steps skip",
        "steps fail",
        "steps rm-from",
        "steps ls",
        "artifacts put",
        "artifacts get",
        "artifacts ls",
        "workspaces ls",
        "workspaces add",
        "workspaces rm",
        "daemon start",
        "daemon stop",
        "daemon restart",
        "daemon reload",
        "daemon status",
        "daemon logs",
    ],
)
def test_every_command_has_help(sandbox: Sandbox, command: str) -> None:
    result = sandbox.ok(*command.split(), "--help")
    text = result.stdout
    assert text.startswith(f"usage: simpleaide {command}")
    assert "--socket" in text and "--no-spawn" in text
    # A description line after the usage block.
    assert len(text.split("\n\n")[1].strip()) > 10
    assert not sandbox.socket.exists()


def test_top_level_help_lists_commands(sandbox: Sandbox) -> None:
    text = sandbox.ok("--help").stdout
    for command in ("status", "runs", "steps", "artifacts", "workspaces", "daemon"):
        assert re.search(rf"^\s+{command}\s+\S", text, re.M), command
    assert "exit status" in text


def test_status_path_imports_nothing_heavy(sandbox: Sandbox) -> None:
    """Status lines run ``simpleaide status`` every few seconds: keep its imports small."""
    imported = status_path_imports(sandbox)
    heavy = {"argparse", "subprocess", "typing", "socket", "datetime", "shutil", "pathlib"}
    forbidden = {"simpleaided", "pydantic", "anyio", "orjson"}
    assert not imported & (heavy | forbidden)


def test_client_never_imports_the_daemon() -> None:
    for path in CLIENT_PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in {"simpleaided", "pydantic", "anyio"}, (
                    f"{path.name} imports {name}"
                )


def test_console_script_is_installed() -> None:
    assert os.access(simpleaide_command(), os.X_OK)


# -- the client's pure parts --------------------------------------------------------------


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"XDG_RUNTIME_DIR": "/run/user/1000"},
        {"XDG_RUNTIME_DIR": "relative"},
        {"XDG_RUNTIME_DIR": ""},
    ],
)
def test_default_socket_path_mirrors_the_daemon(environ: dict[str, str]) -> None:
    from simpleaide.paths import default_socket_path as client_rule
    from simpleaided.app.config import default_socket_path as daemon_rule

    assert client_rule(environ) == str(daemon_rule(environ))


def test_socket_path_precedence() -> None:
    from simpleaide.paths import socket_path

    env = {"SIMPLEAIDE_SOCKET": "/tmp/from-env.sock", "XDG_RUNTIME_DIR": "/run/user/7"}
    assert socket_path("/tmp/flag.sock", env) == "/tmp/flag.sock"
    assert socket_path(None, env) == "/tmp/from-env.sock"
    assert socket_path(None, {"XDG_RUNTIME_DIR": "/run/user/7"}) == (
        "/run/user/7/simpleaide/daemon.sock"
    )


def status_doc(**changes: Any) -> dict[str, Any]:
    """A status document with its chips, as the daemon sends it."""
    doc: dict[str, Any] = {
        "env": "DEV",
        "runs": {"active": 0, "busy": False, "pending": 0, "total": 0, "last": None},
        "vault": {"state": "uninitialized", "autoLockRemainingMs": None},
        "db": {"connected": False, "type": None, "env": "DEV", "readOnly": False, "error": "x"},
        "llm": {"online": 0, "total": 0, "backends": []},
        "warnings": [],
    }
    doc.update(changes)
    doc["chips"] = daemon_chips.chips(doc)
    return doc


def last_run(status: str, age_ms: int = 120_000, error: str | None = None) -> dict[str, Any]:
    last = {"id": "r", "status": status, "startedAt": "", "completedAt": "", "ageMs": age_ms}
    return {"active": 0, "pending": 0, "total": 1, "last": {**last, "errorMessage": error}}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, "DEV 🟢 · Vault – · DB OFF · LLM – · Run –"),
        (
            {
                "env": "PROD",
                "vault": {"state": "locked"},
                "db": {"connected": True, "readOnly": True},
                "llm": {"online": 2, "total": 3, "backends": [{"name": "a", "online": True}] * 3},
                "runs": {"active": 4},
            },
            "PROD 🔴 · Vault 🔒 · DB ✅ RO · LLM 2/3 · Run ⏳ 4",
        ),
        ({"vault": {"state": "unlocked"}, "runs": last_run("completed")}, "Vault 🔓"),
        ({"runs": last_run("failed")}, "Run ✗"),
        ({"runs": last_run("cancelled")}, "Run ⊘"),
        ({"runs": last_run("completed")}, "Run ✓"),
        ({"warnings": ["a", "b"]}, "⚠ 2"),
    ],
)
def test_chips_lay_out_the_daemons_words(changes: dict[str, Any], expected: str) -> None:
    from simpleaide import chips

    line = chips.plain(status_doc(**changes))
    assert expected in line
    assert "\n" not in line
    assert chips.tmux(status_doc(**changes)).count("#[default]") == line.count(" · ") + 1


def test_waybar_tooltip_and_classes() -> None:
    from simpleaide import chips

    shown = chips.waybar(status_doc(runs=last_run("failed", 125_000, "tests broke")))
    assert "Last run failed 2m ago: tests broke" in shown["tooltip"].splitlines()
    assert shown["class"] == ["dev", "failed"]
    assert shown["text"] == chips.plain(status_doc(runs=last_run("failed")))


def test_fastjson_matches_json() -> None:
    from simpleaide import fastjson

    value = {"t": 'é😀\n\x00"\\', "n": [1, -2.5, None, True, False, 1e300], "d": {"": {}}}
    encoded = fastjson.dumps(value)
    assert encoded == json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    assert fastjson.loads(encoded) == value
    assert fastjson.loads(b' \n{"a": [1]}\r\n') == {"a": [1]}
    for bad in ["", "{", "[1,]", "1 2", "nul"]:
        with pytest.raises(ValueError):
            fastjson.loads(bad)


@pytest.mark.parametrize(
    "argv",
    [
        ["status"],
        ["status", "--json"],
        ["--no-spawn", "status", "--format", "tmux"],
        ["--socket", "/tmp/a.sock", "status", "--format=waybar", "--workspace", "/w"],
        ["status", "--socket=/tmp/b.sock", "--no-spawn", "--timeout", "2.5"],
    ],
)
def test_fast_status_parsing_agrees_with_argparse(argv: list[str]) -> None:
    from simpleaide import cli

    fast = vars(cli._fast_status_args(argv))
    slow = vars(cli.build_parser().parse_args(argv))
    assert fast == slow


@pytest.mark.parametrize(
    "argv",
    [["status", "--help"], ["status", "--format", "html"], ["runs", "ls"], ["--json", "status"]],
)
def test_fast_status_parsing_leaves_the_rest_to_argparse(argv: list[str]) -> None:
    from simpleaide import cli

    assert cli._fast_status_args(argv) is None


def test_invalid_params_are_described_on_one_line() -> None:
    from simpleaide.client import rpc_error
    from simpleaide.session import describe

    error = rpc_error(
        {
            "code": -32602,
            "message": "Invalid params",
            "data": [
                {"loc": ["name"], "msg": "Value error, invalid step name 'X'\nuse a-z"},
                {"loc": ["step"], "msg": "Input should be greater than 0"},
            ],
        }
    )
    assert type(error).__name__ == "InvalidParams"
    # The reasons alone, in words: not the protocol's "Invalid params", nor pydantic's "Input".
    assert describe(error) == "invalid step name 'X' use a-z; step should be greater than 0"


def test_a_daemon_of_another_protocol_version_is_named(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from simpleaide import cli

    sandbox.ok("daemon", "start")
    args = ["--socket", str(sandbox.socket), "--no-spawn"]
    assert cli.main([*args, "workspaces", "ls"]) == 0
    assert capsys.readouterr().err == "no workspaces served yet\n"  # nothing else to say

    monkeypatch.setattr("simpleaide.client.API_VERSION", 2)  # a newer client
    assert cli.main([*args, "workspaces", "ls"]) == 0  # it still works, with a warning
    assert capsys.readouterr().err == (
        "simpleaide: warning: simpleaided 0.1.0 speaks protocol version 1, this simpleaide "
        "speaks version 2; restart the daemon to run the installed version: "
        "simpleaide daemon stop\nno workspaces served yet\n"
    )
    assert cli.main([*args, "status"]) == 0
    assert capsys.readouterr().err == ""  # status lines pay for no extra round trip
    assert cli.main([*args, "daemon", "status"]) == 0
    shown = capsys.readouterr().out
    assert "protocol:    version 1 (mismatch: see below)" in shown
    assert "  ! simpleaided 0.1.0 speaks protocol version 1" in shown

    monkeypatch.setattr("simpleaide.client.API_VERSION", 0)  # an older client
    assert cli.main([*args, "workspaces", "ls"]) == 0
    assert "this simpleaide speaks version 0; upgrade simpleaide" in capsys.readouterr().err


def test_a_daemon_started_from_inside_a_service_is_not_that_services(sandbox: Sandbox) -> None:
    # The CLI run by some systemd service (a CI runner, a script): the service's variables
    # are for that service's process, not for the daemon the CLI starts.
    import socket

    manager = sandbox.root / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(manager))
        listener.setblocking(False)
        service = {"INVOCATION_ID": "0123abcd", "NOTIFY_SOCKET": str(manager)}
        sandbox.ok("daemon", "start", env=service)
        info = sandbox.ok("daemon", "status", "--json").json()
        assert info["startMode"] == "daemon-start"
        sandbox.ok("daemon", "stop")
        with pytest.raises(BlockingIOError):
            listener.recv(4096)  # the service's manager never heard from our daemon


def test_a_daemon_run_by_systemd_is_upgraded_through_its_unit() -> None:
    from simpleaide.session import version_mismatch

    info = {"version": "0.0.9", "apiVersion": 0, "startMode": "socket-activation"}
    assert version_mismatch(info) == (
        "simpleaided 0.0.9 speaks protocol version 0, this simpleaide speaks version 1; "
        "point systemd at this installation: simpleaide daemon install-units --force, "
        "then systemctl --user daemon-reload && systemctl --user restart simpleaided"
    )
    assert version_mismatch({**info, "apiVersion": 1}) is None


def test_a_socket_whose_backlog_is_full_counts_as_a_live_daemon(short_tmp: Path) -> None:
    path = str(short_tmp / "full.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        server.listen(0)
        queued: list[socket.socket] = []
        try:
            while True:  # fill the backlog (nobody accepts)
                waiting = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                waiting.setblocking(False)
                queued.append(waiting)
                try:
                    waiting.connect(path)
                except BlockingIOError:
                    break
            assert _accepts(path) is True
        finally:
            for waiting in queued:
                waiting.close()
