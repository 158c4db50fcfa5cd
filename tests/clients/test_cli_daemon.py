"""``simpleaide daemon``: what ``status`` tells (who started the daemon, where it logs, the
HTTP side's address), and ``restart``, ``reload`` and ``logs``, run as installed against the
real daemon in a sandbox."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from tests.support.daemon import wait_until_answering
from tests.support.sandbox import Sandbox, interruptible, process_alive, simpleaide_command

DAEMON = [sys.executable, "-m", "simpleaided"]


def status_line(sandbox: Sandbox, name: str) -> str:
    """The value of ``name:`` in ``simpleaide daemon status``."""
    for line in sandbox.ok("daemon", "status").stdout.splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no {name!r} line in daemon status")


# -- status ------------------------------------------------------------------------------------


def test_status_tells_who_started_the_daemon_and_its_real_log_path(sandbox: Sandbox) -> None:
    sandbox.ok("daemon", "start")
    shown = sandbox.ok("daemon", "status").stdout
    assert "started by:  simpleaide daemon start\n" in shown
    assert f"log:         {sandbox.log}\n" in shown  # expanded: no $XDG_STATE_HOME
    assert "$" not in shown
    assert "http:        off\n" in shown
    info = sandbox.ok("daemon", "status", "--json").json()
    assert info["startMode"] == "daemon-start"
    assert info["log"] == {"to": "file", "path": str(sandbox.log)}
    assert info["httpUrl"] is None
    sandbox.ok("daemon", "stop")

    sandbox.ok("workspaces", "ls")  # no daemon: this command starts one, on demand
    assert status_line(sandbox, "started by") == (
        "simpleaide, on demand (a command found no daemon running)"
    )
    assert sandbox.ok("daemon", "status", "--json").json()["startMode"] == "cli"
    assert status_line(sandbox, "log") == str(sandbox.log)


def test_status_shows_the_http_address_never_the_token(sandbox: Sandbox) -> None:
    sandbox.ok("daemon", "start")
    link = sandbox.ok("open", "--print").stdout.strip()  # starts the HTTP side
    base, _, fragment = link.partition("#")
    token = fragment.split("token=", 1)[1].split("&")[0]
    assert base.startswith("http://127.0.0.1:") and base.endswith("/")
    token_file = (sandbox.socket.parent / "http-token").read_text().strip()

    human = sandbox.ok("daemon", "status")
    raw = sandbox.ok("daemon", "status", "--json")
    assert f"http:        {base}\n" in human.stdout
    assert raw.json()["httpUrl"] == base
    for output in (human.stdout, raw.stdout):
        assert token not in output
        assert token_file not in output


def start_by_hand(sandbox: Sandbox, stderr: int | IO[bytes]) -> subprocess.Popen[bytes]:
    """``simpleaided`` run directly (as from a terminal) on the sandbox's socket."""
    proc = subprocess.Popen(
        [*DAEMON, "--socket", str(sandbox.socket)],
        env=sandbox.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        cwd=sandbox.cwd,
    )
    sandbox.pids.add(proc.pid)
    wait_until_answering(sandbox.socket, proc)
    return proc


@pytest.fixture
def by_hand(sandbox: Sandbox) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def test_a_daemon_run_by_hand_is_said_to_be_and_logs_where_its_stderr_goes(
    sandbox: Sandbox, by_hand: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    proc = start_by_hand(sandbox, subprocess.DEVNULL)
    by_hand.append(proc)
    assert status_line(sandbox, "started by") == "hand (simpleaided run directly)"
    assert status_line(sandbox, "log") == "nowhere (its stderr is /dev/null)"
    info = sandbox.ok("daemon", "status", "--json").json()
    assert (info["startMode"], info["log"]) == ("foreground", {"to": "none", "path": None})
    logs = sandbox.run("daemon", "logs")
    assert logs.code == 1, logs
    assert (
        logs.err
        == f"simpleaide: simpleaided (pid {proc.pid}) keeps no log: its stderr is /dev/null\n"
    )
    # Restarting one started by hand would take it from where the user runs it.
    refused = sandbox.run("daemon", "restart")
    assert refused.code == 1, refused
    assert "was started by hand: restart it where it runs" in refused.err
    assert process_alive(proc.pid)
    sandbox.ok("daemon", "stop")
    proc.wait(10)

    proc = start_by_hand(sandbox, subprocess.PIPE)  # a terminal, a pipe: its stderr
    by_hand.append(proc)
    assert status_line(sandbox, "log") == "its stderr (the terminal or program that started it)"
    logs = sandbox.run("daemon", "logs")
    assert logs.code == 1 and "was started by hand and logs to its stderr" in logs.err, logs
    sandbox.ok("daemon", "stop")
    proc.wait(10)

    own_log = tmp_path / "by hand.log"
    with own_log.open("ab") as f:  # simpleaided 2>>"by hand.log"
        proc = start_by_hand(sandbox, f)
    by_hand.append(proc)
    assert status_line(sandbox, "log") == str(own_log)
    assert sandbox.ok("daemon", "status", "--json").json()["log"]["path"] == str(own_log)
    tail = sandbox.ok("daemon", "logs", "-n", "1").stdout
    assert tail == own_log.read_text().splitlines(keepends=True)[-1]


# -- restart -----------------------------------------------------------------------------------


def test_restart_replaces_the_daemon_and_returns_once_the_new_one_answers(
    sandbox: Sandbox,
) -> None:
    first = sandbox.ok("daemon", "restart")  # none running: it starts one
    assert "simpleaided was not running; started on" in first.stdout
    old = sandbox.ok("daemon", "status", "--json").json()["pid"]

    restarted = sandbox.ok("daemon", "restart")
    info = sandbox.ok(
        "daemon", "status", "--json"
    ).json()  # it answers: restart returned late enough
    new = info["pid"]
    assert new != old
    assert not process_alive(old)
    assert restarted.stdout == (
        f"simpleaided restarted on {sandbox.socket} (pid {new}, was {old}); log: {sandbox.log}\n"
    )
    assert info["startMode"] == "daemon-restart"
    assert status_line(sandbox, "started by") == "simpleaide daemon restart"


# -- reload ------------------------------------------------------------------------------------


def test_reload_applies_the_configuration_or_says_why_it_was_refused(sandbox: Sandbox) -> None:
    config = Path(sandbox.env["XDG_CONFIG_HOME"]) / "simpleaide" / "config.toml"
    sandbox.configure('env = "DEV"\n')
    sandbox.ok("daemon", "start")
    sandbox.configure('env = "PROD"\n')
    reloaded = sandbox.ok("daemon", "reload")
    assert reloaded.stdout == f"configuration reloaded ({config})\n"
    assert sandbox.ok("daemon", "status", "--json").json()["env"] == "PROD"

    sandbox.configure('env = "DEV"\nnonsense = 1\n')
    refused = sandbox.run("daemon", "reload")
    assert refused.code == 1, refused
    assert refused.stdout == ""
    assert refused.err.startswith(
        "simpleaide: configuration not reloaded, the running one stays: "
    ), refused
    assert "nonsense" in refused.err
    as_json = sandbox.run("daemon", "reload", "--json")
    assert as_json.code == 1, as_json
    answer = as_json.json()
    assert answer["reloaded"] is False and "nonsense" in answer["error"]
    assert any("configuration not reloaded" in w for w in answer["warnings"])
    assert sandbox.ok("daemon", "status", "--json").json()["env"] == "PROD"  # kept

    sandbox.configure('env = "DEV"\n')
    assert sandbox.ok("daemon", "reload", "--json").json()["reloaded"] is True
    info = sandbox.ok("daemon", "status", "--json").json()
    assert (info["env"], info["warnings"]) == ("DEV", [])


def test_reload_with_no_daemon_says_so(sandbox: Sandbox) -> None:
    result = sandbox.run("daemon", "reload")
    assert result.code == 3, result
    assert (
        result.err
        == f"simpleaide: simpleaided is not running (no daemon answers on {sandbox.socket})\n"
    )
    assert not sandbox.socket.exists()  # none was started for it


# -- logs --------------------------------------------------------------------------------------


def test_logs_prints_the_last_lines_of_the_log(sandbox: Sandbox) -> None:
    none = sandbox.run("daemon", "logs")
    assert none.code == 3, none
    assert none.err == (
        f"simpleaide: no daemon answers on {sandbox.socket}, and there is no log at "
        f"{sandbox.log} (where a daemon started by simpleaide writes)\n"
    )

    sandbox.ok("daemon", "start")
    with sandbox.log.open("a") as log:
        log.write("".join(f"line {n}\n" for n in range(80)))
        log.write("an \x1b[31mescape\n")
    assert sandbox.ok("daemon", "logs", "-n", "2").stdout == "line 79\nan \\x1b[31mescape\n"
    assert sandbox.ok("daemon", "logs", "-n", "0").stdout == ""
    default = sandbox.ok("daemon", "logs").stdout.splitlines()
    assert len(default) == 50 and default[-2] == "line 79"
    everything = sandbox.ok("daemon", "logs", "-n", "100000").stdout
    assert everything == sandbox.log.read_text().replace("\x1b", "\\x1b")
    bad = sandbox.run("daemon", "logs", "-n", "-3")
    assert bad.code == 2 and "is not a number of lines" in bad.err, bad

    sandbox.ok("daemon", "stop")  # gone: the log of the last one is still worth reading
    after = sandbox.ok("daemon", "logs", "-n", "1")
    assert after.stdout.endswith(" INFO simpleaided.app.daemon: stopped\n"), after
    assert after.err == (
        f"simpleaide: no daemon answers on {sandbox.socket}; the log of the last one "
        f"simpleaide started, {sandbox.log}:\n"
    )


def test_logs_follow_prints_new_lines_and_ctrl_c_ends_it_quietly(sandbox: Sandbox) -> None:
    sandbox.ok("daemon", "start")
    with sandbox.log.open("a") as log:
        log.write("before\n")
    proc = subprocess.Popen(
        interruptible([simpleaide_command(), "daemon", "logs", "-f", "-n", "1"]),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=sandbox.env,
        cwd=sandbox.cwd,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"before\n"
        with sandbox.log.open("a") as log:
            log.write("after\n")
        assert proc.stdout.readline() == b"after\n"
        # The log replaced (rotated): the new file is followed from its start.
        sandbox.log.rename(sandbox.log.with_suffix(".log.1"))
        sandbox.log.write_text("rotated\n")
        assert proc.stdout.readline() == b"rotated\n"
        # Truncated (copytruncate), then shorter than what was read: read from the start.
        with sandbox.log.open("r+") as log:
            log.truncate(0)
            log.write("again\n")
        assert proc.stdout.readline() == b"again\n"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 0
        assert proc.stderr is not None
        assert proc.stderr.read() == b""  # silently: no "interrupted"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_the_new_commands_have_help(sandbox: Sandbox) -> None:
    listed = sandbox.ok("daemon", "--help").stdout
    for command in ("restart", "reload", "logs"):
        assert command in listed
    assert (
        "systemctl --user restart simpleaided" in sandbox.ok("daemon", "restart", "--help").stdout
    )
    assert "SIGHUP" in sandbox.ok("daemon", "reload", "--help").stdout
    logs_help = sandbox.ok("daemon", "logs", "--help").stdout
    assert "journalctl --user -u simpleaided" in logs_help
    assert "-f, --follow" in logs_help and "-n N, --lines N" in logs_help
