"""The CLI's errors in the user's words: a misspelt command or option gets the one meant, a
run id that cannot be one is said so, a refusal that ``--force`` overcomes names the command
with it, a folder that cannot be a workspace says why, and a socket path too long says its
length and the limit. Never the libraries' words ("Invalid params", "AF_UNIX path too long",
"storage error: No such file or directory")."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from simpleaide.client import RpcError, rpc_error
from simpleaide.session import describe
from tests.support.sandbox import Sandbox

# What none of these messages may say: the words of argparse, pydantic, jsonrpcserver, libc.
LIBRARY_WORDS = (
    "Invalid params",
    "Input should",
    "Value error",
    "invalid choice",
    "unrecognized arguments",
    "AF_UNIX",
    "storage error",
    "Errno",
)


def said(result_err: str) -> str:
    """The last line of stderr (argparse puts the usage first), checked for library words."""
    line = result_err.rstrip("\n").splitlines()[-1]
    for words in LIBRARY_WORDS:
        assert words not in line, line
    return line


# -- misspelt commands and options -----------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["rnus"], "simpleaide: 'rnus' is not a command. did you mean 'runs'?"),
        (["runs", "lss"], "simpleaide runs: 'lss' is not a runs command. did you mean 'ls'?"),
        (["Status"], "simpleaide: 'Status' is not a command. did you mean 'status'?"),
        (
            ["runs", "rm", "20261124T101500123Z-1a2b3c4d", "--forse"],
            "simpleaide runs rm: unrecognized option '--forse' (did you mean '--force'?)",
        ),
        (
            ["steps", "ls", "20261124T101500123Z-1a2b3c4d", "--jsn", "--socet=/x"],
            "simpleaide steps ls: unrecognized options '--jsn' (did you mean '--json'?), "
            "'--socet' (did you mean '--socket'?)",
        ),
        (
            ["--force", "runs", "rm", "20261124T101500123Z-1a2b3c4d"],
            "simpleaide runs rm: option '--force' goes after the command: "
            "simpleaide runs rm ... --force",
        ),
    ],
)
def test_a_misspelt_command_or_option_gets_the_one_meant(
    sandbox: Sandbox, args: list[str], line: str
) -> None:
    result = sandbox.run(*args)
    assert result.code == 2, result
    assert result.err.startswith("usage: simpleaide"), result
    assert said(result.err) == line
    assert not sandbox.socket.exists()  # a usage error asks no daemon anything


def test_a_command_nothing_is_close_to_lists_the_commands(sandbox: Sandbox) -> None:
    result = sandbox.run("frobnicate")
    assert result.code == 2
    line = said(result.err)
    assert line.startswith("simpleaide: 'frobnicate' is not a command (choose from status, ")
    assert "did you mean" not in line


def test_a_misspelt_choice_gets_the_one_meant(sandbox: Sandbox) -> None:
    result = sandbox.run("runs", "ls", "--status", "runing")
    assert result.code == 2
    assert result.err.rstrip().endswith("did you mean 'running'?"), result


# -- run ids ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["runs", "show", "nope"],
        ["runs", "rm", "nope", "--force"],
        ["steps", "ls", "nope"],
        ["artifacts", "ls", "nope"],
        ["runs", "ls", "--before", "nope"],
    ],
)
def test_a_run_id_that_cannot_be_one_is_said_so(sandbox: Sandbox, args: list[str]) -> None:
    sandbox.ok("daemon", "start")
    result = sandbox.run(*args)
    assert result.code == 1 and result.out == b"", result
    assert said(result.err) == (
        "simpleaide: no run 'nope': a run id looks like 20261124T101500123Z-1a2b3c4d "
        "(see simpleaide runs ls)"
    )


def test_invalid_params_from_the_daemon_lose_the_protocol_words() -> None:
    for message in ("Invalid params", "Invalid params: "):
        error = rpc_error(
            {
                "code": -32602,
                "message": message,
                "data": [
                    {"loc": ["runId"], "msg": "Field required", "type": "missing"},
                    {"loc": ["limit"], "msg": "Input should be less than or equal to 1000"},
                ],
            }
        )
        assert describe(error) == "run id is required; limit should be less than or equal to 1000"
    # A message the daemon worded itself is said as it is.
    error = rpc_error({"code": -32602, "message": "'X' is not a step name", "data": []})
    assert describe(error) == "'X' is not a step name"
    error = rpc_error({"code": -32602, "message": "Invalid params", "data": "bad things"})
    assert describe(error) == "bad things"
    errors = {"errors": [{"loc": ["step"], "msg": "Input should be greater than 0"}]}
    error = rpc_error({"code": -32602, "message": "Invalid params", "data": errors})
    assert describe(error) == "step should be greater than 0"


# -- refusals that --force overcomes ------------------------------------------------------------


def test_a_refusal_that_force_overcomes_names_the_command_with_force(sandbox: Sandbox) -> None:
    ws = sandbox.workspace()
    run_id = sandbox.new_run(ws)
    sandbox.ok("steps", "add", run_id, "plan", "--start")

    # Said once, reading naturally: not the daemon's "(..., or force)" and then the command.
    deleting = sandbox.run("runs", "rm", run_id)
    assert deleting.code == 1, deleting
    assert said(deleting.err) == (
        f"simpleaide: run {run_id} is running: cancel it first, or delete it anyway with: "
        f"simpleaide runs rm {run_id} --force"
    )

    completing = sandbox.run("runs", "complete", run_id, "--json")
    assert completing.code == 1, completing
    assert said(completing.err) == (
        f"simpleaide: run {run_id} is running: steps still open: 01_plan (running); finish "
        "them first, or close them and complete it anyway with: "
        f"simpleaide runs complete {run_id} --json --force"
    )

    # What the suggestion says does it.
    sandbox.ok("runs", "complete", run_id, "--json", "--force")
    # A refusal that force would not overcome suggests nothing of the kind.
    again = sandbox.run("runs", "complete", run_id)
    assert again.code == 1 and "--force" not in again.err, again


def test_the_daemon_marks_a_forcible_refusal_for_any_client(sandbox: Sandbox) -> None:
    """The daemon's words stay client-neutral ("or force"); ``data.hint`` says it."""
    from simpleaide.client import Client

    ws = sandbox.workspace()
    run_id = sandbox.new_run(ws)
    sandbox.ok("steps", "add", run_id, "plan", "--start")
    with Client(str(sandbox.socket)) as client:
        with pytest.raises(RpcError) as deleting:
            client.call("runs.delete", runId=run_id)
        with pytest.raises(RpcError) as completing:
            client.call("runs.complete", runId=run_id)
        client.call("steps.complete", runId=run_id, step=1)
        client.call("runs.cancel", runId=run_id)
        with pytest.raises(RpcError) as finished:
            client.call("runs.complete", runId=run_id)
    assert deleting.value.data["hint"] == "force" and "--force" not in deleting.value.message
    assert deleting.value.message.endswith("(cancel it first, or force)")
    assert completing.value.data["hint"] == "force" and "CLI" not in completing.value.message
    assert completing.value.message.endswith(
        "(steps still open: 01_plan (running); finish them first, or force, which closes them)"
    )
    assert "hint" not in (finished.value.data or {})


# -- folders that cannot be workspaces ----------------------------------------------------------


@pytest.mark.parametrize(
    ("folder", "words"),
    [
        (
            "/proc",
            "cannot use /proc as a workspace: it is in /proc, which the kernel "
            "makes up (no project lives there); choose a folder of your own, such as one in "
            "your home folder",
        ),
        (
            "/sys",
            "cannot use /sys as a workspace: it is in /sys, which the kernel makes "
            "up (no project lives there); choose a folder of your own, such as one in your "
            "home folder",
        ),
    ],
)
def test_a_folder_that_cannot_hold_a_store_says_why_and_what_to_do(
    sandbox: Sandbox, folder: str, words: str
) -> None:
    # Refused by the param's check (before the daemon looks on disk), named as typed.
    for args, label in (
        (["workspaces", "add", folder], "PATH"),
        (["runs", "create", "--workspace", folder], "--workspace"),
    ):
        result = sandbox.run(*args)
        assert result.code == 1 and result.out == b"", result
        assert said(result.err) == f"simpleaide: {label}: {words}"
    assert sandbox.ok("workspaces", "ls", "--json").json() == []


def test_a_missing_path_or_a_file_says_what_to_give(sandbox: Sandbox) -> None:
    missing = sandbox.root / "no" / "such"
    result = sandbox.run("workspaces", "add", str(missing))
    assert result.code == 1
    assert said(result.err) == (
        f"simpleaide: workspace {missing} does not exist (create the folder first: "
        f"mkdir -p {missing})"
    )
    a_file = sandbox.root / "notes.txt"
    a_file.write_text("x")
    result = sandbox.run("workspaces", "add", str(a_file))
    assert result.code == 1
    assert said(result.err) == (
        f"simpleaide: workspace {a_file} is not a folder (a workspace is the folder that "
        "holds .simpleaide/: give your project's folder)"
    )


# -- socket paths too long ----------------------------------------------------------------------


def long_socket(sandbox: Sandbox) -> Path:
    """A socket path of 130 bytes in a private folder."""
    folder = sandbox.root / "run"
    path = folder / ("s" * (130 - len(os.fsencode(folder)) - 1))
    assert len(os.fsencode(path)) == 130
    return path


def test_a_socket_path_too_long_says_its_length_and_the_limit(sandbox: Sandbox) -> None:
    path = long_socket(sandbox)
    for args in (["status"], ["runs", "ls"], ["workspaces", "ls", "--no-spawn"]):
        result = sandbox.run("--socket", str(path), *args)
        assert result.code == 1 and result.out == b"", result
        assert said(result.err) == (
            f"simpleaide: socket path too long (130 bytes; the limit is 107): {path}; "
            "use a shorter --socket or SIMPLEAIDE_SOCKET, or a shorter XDG_RUNTIME_DIR"
        )
    result = sandbox.run("status", env={"SIMPLEAIDE_SOCKET": str(path)})
    assert "socket path too long (130 bytes; the limit is 107)" in said(result.err)
    assert sorted(p.name for p in path.parent.iterdir()) == []  # no daemon was started


def test_the_daemon_says_so_too(sandbox: Sandbox) -> None:
    path = long_socket(sandbox)
    sandbox.extra_sockets.append(path)
    result = sandbox.run("--socket", str(path), "daemon", "start")
    assert result.code == 3, result
    assert (
        f"simpleaided: socket path too long (130 bytes; the limit is 107): {path}; "
        "use a shorter --socket" in result.err
    ), result
    assert "AF_UNIX" not in result.err
    assert sorted(p.name for p in path.parent.iterdir()) == []  # nothing made beside it
