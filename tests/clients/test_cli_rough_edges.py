"""The CLI where its surroundings go wrong: a current folder deleted, a standard output that
cannot be written, arguments and folder names that are not UTF-8, a misspelt option before
the command, Ctrl-C on ``daemon logs -f``, a daemon started by hand on another socket, a
socket path that is a folder. Each ends in one line in the user's words, never a traceback
nor the protocol's words (``errorMessage``, "Parse error")."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.daemon import DAEMON, wait_until_answering
from tests.support.ptys import CliPty
from tests.support.sandbox import (
    RUN_TIMEOUT,
    Sandbox,
    process_alive,
    run_to_full_disk,
    simpleaide_command,
)

CWD_GONE = "simpleaide: the current folder no longer exists (cd somewhere else)\n"
FULL = "simpleaide: cannot write standard output: No space left on device\n"


def run_in_deleted_folder(sandbox: Sandbox, *args: str) -> subprocess.CompletedProcess[str]:
    """``simpleaide ARGS`` run in a folder deleted after it was entered (``mkdir g && cd g
    && rmdir ../g``): a shell enters it, removes it, then becomes the command."""
    folder = sandbox.root / "gone"
    folder.mkdir()
    script = 'cd "$1" && rmdir "$1" && shift && exec "$@"'
    try:
        return subprocess.run(
            ["sh", "-c", script, "sh", str(folder), simpleaide_command(), *args],
            capture_output=True,
            text=True,
            env=sandbox.env,
            timeout=RUN_TIMEOUT,
            check=False,
        )
    finally:
        assert not folder.exists()


# -- a current folder deleted -----------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["runs", "show", "@"],
        ["runs", "ls"],
        ["runs", "watch"],
        ["runs", "create"],
        ["runs", "prune", "--keep", "1"],
        ["runs", "ls", "--workspace", "."],
        ["--socket", "relative.sock", "status"],
    ],
)
def test_a_deleted_current_folder_is_said_for_a_command_that_needs_it(
    sandbox: Sandbox, args: list[str]
) -> None:
    sandbox.new_run(sandbox.workspace())  # a daemon, with a run: none is shown or made
    done = run_in_deleted_folder(sandbox, *args)
    assert (done.returncode, done.stdout, done.stderr) == (1, "", CWD_GONE)
    listed = sandbox.ok("runs", "ls", "--all", "--json").json()["runs"]
    assert len(listed) == 1


def test_a_command_that_needs_no_current_folder_works_in_a_deleted_one(
    sandbox: Sandbox,
) -> None:
    ws = sandbox.workspace()
    run_id = sandbox.new_run(ws)
    for args in (["runs", "ls", "--all"], ["runs", "show", run_id], ["status"]):
        done = run_in_deleted_folder(sandbox, *args)
        assert done.returncode == 0 and done.stderr == "", (args, done)
    done = run_in_deleted_folder(sandbox, "runs", "ls", "--all")
    assert run_id in done.stdout
    # A run the daemon does not know is looked for in the current folder's workspace
    # (session.unserved_run): there is none.
    missing = "20261124T101500123Z-1a2b3c4d"
    done = run_in_deleted_folder(sandbox, "runs", "show", missing)
    assert (done.returncode, done.stderr) == (1, f"simpleaide: run {missing} does not exist\n")


# -- a standard output that cannot be written -------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["runs", "ls", "--all"],
        ["completion", "bash"],
        ["daemon", "logs"],
        ["--help"],
        ["status"],
    ],
)
def test_a_standard_output_that_cannot_be_written_is_said_in_one_line(
    sandbox: Sandbox, args: list[str]
) -> None:
    sandbox.new_run(sandbox.workspace())  # a daemon started by the CLI (a log), and a run
    assert run_to_full_disk(sandbox, *args) == (1, FULL)


def test_an_artifact_to_a_full_standard_output_is_said_in_one_line(sandbox: Sandbox) -> None:
    run_id = sandbox.new_run(sandbox.workspace())
    sandbox.ok("steps", "add", run_id, "plan")
    sandbox.ok("artifacts", "put", run_id, "plan", "big.bin", "-", input=os.urandom(300_000))
    assert run_to_full_disk(sandbox, "artifacts", "get", run_id, "plan", "big.bin") == (1, FULL)


# -- text that is not UTF-8 -------------------------------------------------------------------


def not_utf8(raw: bytes) -> str:
    """An argument of bytes that are not UTF-8, as Python passes it on (surrogateescape)."""
    return os.fsdecode(raw)


def test_an_argument_that_is_not_utf8_is_named_by_its_option(sandbox: Sandbox) -> None:
    ws = sandbox.workspace()
    run_id = sandbox.new_run(ws)
    cases = [
        (
            ["runs", "create", "--workspace", str(ws), "--title", not_utf8(b"caf\xe9")],
            "simpleaide: the title (--title) is not UTF-8 text (byte \\xe9): caf\\xe9\n",
        ),
        (
            ["steps", "add", run_id, not_utf8(b"\xff")],
            "simpleaide: NAME is not UTF-8 text (byte \\xff): \\xff\n",
        ),
        (
            ["runs", "fail", run_id, "-m", not_utf8(b"disk \xfe full")],
            "simpleaide: the message (--message) is not UTF-8 text (byte \\xfe): disk \\xfe full\n",
        ),
    ]
    for args, said in cases:
        result = sandbox.run(*args)
        assert (result.code, result.out, result.err) == (1, b"", said), result
    sandbox.ok("steps", "add", run_id, "plan")
    result = sandbox.run("artifacts", "put", run_id, "plan", not_utf8(b"a\xe9.txt"), "-")
    assert result.err == "simpleaide: NAME is not UTF-8 text (byte \\xe9): a\\xe9.txt\n", result
    shown = sandbox.ok("runs", "show", run_id, "--json").json()
    assert shown["status"] == "running" and shown["stepCount"] == 1  # nothing was sent


def test_a_folder_whose_name_is_not_utf8_is_said_so(sandbox: Sandbox) -> None:
    sandbox.ok("daemon", "start")
    folder = Path(os.fsdecode(bytes(sandbox.root) + b"/caf\xe9"))
    (folder / ".simpleaide").mkdir(parents=True)
    shown = os.fsdecode(bytes(sandbox.root)) + "/caf\\xe9"
    said = (
        f"simpleaide: the folder's name {shown} is not UTF-8 (byte \\xe9); the daemon keeps "
        "paths as UTF-8 text: rename the folder, or use one with a UTF-8 name\n"
    )
    for args in (["runs", "ls"], ["runs", "create"], ["runs", "watch"]):
        result = sandbox.run(*args, cwd=folder)
        assert (result.code, result.err) == (1, said), result
    result = sandbox.run("workspaces", "add", str(folder))
    assert (result.code, result.err) == (1, said), result


# -- the daemon's refusals in the CLI's words ---------------------------------------------------


def test_a_refused_parameter_is_named_by_the_option_typed(sandbox: Sandbox) -> None:
    ws = sandbox.workspace()
    run_id = sandbox.new_run(ws)
    for option in ("--message", "-m"):
        result = sandbox.run("runs", "fail", run_id, option, "")
        assert result.err == (
            "simpleaide: --message: must be text of 1 to 10000 characters, not 0 characters\n"
        ), result
    result = sandbox.run("runs", "create", "--workspace", str(ws), "--title", "")
    assert result.err == (
        "simpleaide: --title: must be text of 1 to 500 characters, not 0 characters\n"
    ), result
    result = sandbox.run("steps", "add", run_id, "Not A Name")
    assert result.err.startswith("simpleaide: NAME: 'Not A Name' is not a step name"), result


def test_a_suggested_command_quotes_its_path_and_keeps_its_spaces(sandbox: Sandbox) -> None:
    missing = f"{sandbox.root}/a  b"
    result = sandbox.run("workspaces", "add", missing)
    assert result.code == 1, result
    assert result.err == (
        f"simpleaide: workspace {missing} does not exist (create the folder first: "
        f"mkdir -p '{missing}')\n"
    )
    ws = sandbox.workspace("my  ws")
    sandbox.new_run(ws)
    sandbox.ok("workspaces", "rm", str(ws))
    result = sandbox.run("runs", "ls", "--workspace", str(ws))
    assert result.code == 1, result
    assert result.err.rstrip("\n").endswith(f"simpleaide workspaces add '{ws}'"), result


# -- a misspelt option before the command ---------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--verison"], "simpleaide: unrecognized option '--verison' (did you mean '--version'?)"),
        (
            ["--sockt", "x", "status"],
            "simpleaide: unrecognized option '--sockt' (did you mean '--socket'?)",
        ),
        (
            ["--sockt=x", "rnus"],
            "simpleaide: unrecognized option '--sockt' (did you mean '--socket'?)",
        ),
    ],
)
def test_a_misspelt_option_before_the_command_is_said_first(
    sandbox: Sandbox, args: list[str], line: str
) -> None:
    result = sandbox.run(*args)
    assert result.code == 2, result
    assert result.err.startswith("usage: simpleaide"), result
    assert result.err.rstrip("\n").splitlines()[-1] == line
    assert not sandbox.socket.exists()


def test_options_given_before_the_command_still_work(sandbox: Sandbox) -> None:
    # An abbreviation argparse takes, and an option of the command put before it.
    result = sandbox.run(f"--sock={sandbox.socket}", "--no-spawn", "status")
    assert result.code == 3, result
    result = sandbox.run("--json", "runs", "ls")
    assert result.code == 2
    assert result.err.rstrip("\n").endswith(
        "option '--json' goes after the command: simpleaide runs ls ... --json"
    ), result


# -- runs watch: its options are checked before its RUN_ID ----------------------------------------


def test_runs_watch_with_a_run_id_and_all_is_a_usage_error_first(sandbox: Sandbox) -> None:
    ws = sandbox.workspace()
    first, second = sandbox.new_run(ws), sandbox.new_run(ws)
    prefix = os.path.commonprefix([first, second])
    ambiguous = sandbox.run("runs", "show", prefix)
    assert ambiguous.code == 1 and "give more of the one you mean" in ambiguous.err
    result = sandbox.run("runs", "watch", prefix, "--all")
    assert (result.code, result.err) == (
        2,
        "simpleaide: give RUN_ID, or --workspace / --all, not both\n",
    ), result
    result = sandbox.run("runs", "watch", "--exit-status", "--all")
    assert result.code == 2 and "--exit-status is for watching one run" in result.err


# -- daemon logs -f on a terminal ----------------------------------------------------------------


def test_ctrl_c_on_daemon_logs_follow_leaves_no_caret_c(sandbox: Sandbox) -> None:
    sandbox.ok("daemon", "start")
    with sandbox.log.open("a") as log:
        log.write("the last line\n")
    shown = CliPty(sandbox, "daemon", "logs", "-f", "-n", "1")
    try:
        shown.until_line("the last line")
        shown.type(b"\x03")  # the terminal echoes ^C, then interrupts the command
        assert shown.wait() == 0
        assert b"^C" in shown.output  # echoed, then wiped
        assert "^C" not in shown.text
        assert "the last line" in shown.lines
        # The cursor at the start of a fresh, empty line below the log.
        assert shown.screen.cursor.x == 0 and shown.lines[shown.screen.cursor.y] == ""
        assert shown.lines.index("the last line") < shown.screen.cursor.y
    finally:
        shown.close()


# -- daemon restart of a daemon started by hand --------------------------------------------------


def test_restart_of_a_daemon_by_hand_names_its_socket_in_the_commands(
    sandbox: Sandbox,
) -> None:
    socket = sandbox.root / "by hand.sock"
    sandbox.extra_sockets.append(socket)
    proc = subprocess.Popen(
        [*DAEMON, "--socket", str(socket)],
        env=sandbox.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=sandbox.cwd,
    )
    try:
        sandbox.pids.add(proc.pid)
        wait_until_answering(socket, proc)
        refused = sandbox.run("--socket", str(socket), "daemon", "restart")
        assert refused.code == 1, refused
        flag = f"--socket '{socket}'"
        assert refused.err.rstrip("\n").endswith(
            f"replace it with one simpleaide starts: simpleaide daemon stop {flag} && "
            f"simpleaide daemon start {flag}"
        ), refused
        assert process_alive(proc.pid)
        # On the default socket, the commands need no --socket.
        default = sandbox.run(
            "--socket", str(socket), "daemon", "restart", env={"SIMPLEAIDE_SOCKET": str(socket)}
        )
        assert default.err.rstrip("\n").endswith(
            "simpleaide daemon stop && simpleaide daemon start"
        ), default
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


# -- a socket path that is a folder ---------------------------------------------------------------


def test_a_socket_path_that_is_a_folder_is_never_to_be_removed(sandbox: Sandbox) -> None:
    folder = sandbox.root / "a folder"
    (folder / "keep").mkdir(parents=True)
    result = sandbox.run("--socket", str(folder), "status")
    assert result.code == 3, result
    assert result.err.endswith(
        f"  | simpleaided: choose another --socket path ({folder} is a folder, not a socket)\n"
    ), result
    assert "remove" not in result.err
    assert (folder / "keep").is_dir()
