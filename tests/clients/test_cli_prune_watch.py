"""The installed ``simpleaide`` command: ``runs create --owner-pid``, ``runs prune`` and
``watch``, against a real daemon that it starts itself (see ``tests/clients/test_cli.py``)."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.sandbox import Sandbox, Watcher, interruptible, simpleaide_command
from tests.support.waiting import eventually_blocking

BOUND = 15.0  # seconds: generous, only a failing test waits this long


def run_dir(workspace: Path, run_id: str) -> Path:
    return workspace / ".simpleaide" / "runs" / run_id


# -- abandoned runs -----------------------------------------------------------------------


def test_a_run_fails_when_its_owner_pid_exits(sandbox: Sandbox) -> None:
    config = Path(sandbox.env["XDG_CONFIG_HOME"]) / "simpleaide" / "config.toml"
    config.parent.mkdir()
    config.write_text("[runs]\nowner_check_seconds = 0.05\n")
    ws = sandbox.workspace()
    owner = subprocess.Popen(["sleep", "60"])
    try:
        run_id = sandbox.new_run(ws, "--owner-pid", str(owner.pid))
        sandbox.ok("steps", "add", run_id, "code", "--start")
        assert sandbox.ok("runs", "show", run_id, "--json").json()["ownerPid"] == owner.pid
    finally:
        owner.kill()
        owner.wait(10)

    def ended() -> dict[str, Any] | None:
        run: dict[str, Any] = sandbox.ok("runs", "show", run_id, "--json").json()
        return run if run["status"] != "running" else None

    run = eventually_blocking(ended, BOUND, interval=0)
    assert run["status"] == "failed"
    assert run["errorMessage"] == f"interrupted: owner process {owner.pid} exited"
    shown = sandbox.ok("runs", "show", run_id).stdout
    assert f"interrupted: owner process {owner.pid} exited" in shown

    # A process that does not exist is refused; so is something that is not a pid.
    refused = sandbox.run("runs", "create", "--workspace", str(ws), "--owner-pid", str(owner.pid))
    assert refused.code == 1 and "does not exist" in refused.err
    assert sandbox.run("runs", "create", "--owner-pid", "0").code == 2
    assert sandbox.run("runs", "create", "--owner-pid", "me").code == 2


# -- retention ----------------------------------------------------------------------------


def test_runs_prune(sandbox: Sandbox) -> None:
    ws = sandbox.workspace()
    finished = []
    for _ in range(3):
        run_id = sandbox.new_run(ws)
        sandbox.ok("runs", "cancel", run_id)
        finished.append(run_id)
    running = sandbox.new_run(ws)
    sandbox.ok("steps", "add", running, "code", "--start")

    dry = sandbox.ok("runs", "prune", "--keep", "1", "--dry-run", cwd=ws).stdout.splitlines()
    assert dry[0].split() == ["ID", "STATUS", "STARTED", "ENDED"]
    assert [line.split()[0] for line in dry[1:-1]] == [finished[1], finished[0]]
    assert dry[-1] == "2 runs would be deleted (dry run: nothing was deleted)"
    for run_id in finished:
        assert run_dir(ws, run_id).is_dir()

    done = sandbox.ok("runs", "prune", "--keep", "1", cwd=ws).stdout.splitlines()
    assert [line.split()[0] for line in done[1:-1]] == [finished[1], finished[0]]
    assert done[-1] == "2 runs deleted"
    assert not run_dir(ws, finished[0]).exists() and not run_dir(ws, finished[1]).exists()

    # Everything finished, everywhere: the running run stays whatever the limits.
    everything = sandbox.ok(
        "runs", "prune", "--all", "--keep", "0", "--older-than", "0.5", "--json"
    )
    result = everything.json()
    assert (result["dryRun"], result["count"]) == (False, 1)
    assert result["runs"][0]["id"] == finished[2]
    assert run_dir(ws, running).is_dir()
    assert sandbox.ok("runs", "prune", "--workspace", str(ws), "--keep", "0").stdout == (
        "nothing to prune\n"
    )
    assert [r["id"] for r in sandbox.ok("runs", "ls", "--all", "--json").json()["runs"]] == [
        running
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["runs", "prune", "--all"], "give --keep N, --older-than DAYS or both"),
        (["runs", "prune", "--keep", "1"], "not inside a workspace"),
        (["runs", "prune", "--all", "--keep", "-1"], "must be 0 or more"),
        (["runs", "prune", "--all", "--older-than", "0"], "not a positive number of days"),
        (["runs", "prune", "--all", "--workspace", "/tmp", "--keep", "1"], "not allowed with"),
    ],
)
def test_runs_prune_usage(sandbox: Sandbox, args: list[str], message: str) -> None:
    result = sandbox.run(*args)
    assert result.code == 2, str(result)
    assert message in result.err


# -- watch --------------------------------------------------------------------------------


@pytest.fixture
def watchers() -> Iterator[list[Watcher]]:
    started: list[Watcher] = []
    yield started
    for watcher in started:
        watcher.kill()


def test_watch_shows_the_chips_live(sandbox: Sandbox, watchers: list[Watcher]) -> None:
    ws = sandbox.workspace()
    sandbox.ok("daemon", "start")
    watcher = Watcher(sandbox)
    watchers.append(watcher)
    first = watcher.next_line()
    assert "DEV 🟢" in first and "Run –" in first

    # Another client starts a run: a new line shows it, without polling.
    run_id = sandbox.new_run(ws)
    sandbox.ok("steps", "add", run_id, "plan", "--start")
    busy = watcher.wait_for("Run ⏳ 1")
    assert busy.startswith("DEV 🟢 · ")
    sandbox.ok("steps", "done", run_id, "plan")
    sandbox.ok("runs", "complete", run_id)
    watcher.wait_for("Run ✓")

    # Ctrl-C: exit 0, nothing on stderr.
    watcher.proc.send_signal(signal.SIGINT)
    code, err = watcher.finish()
    assert (code, err) == (0, "")


def test_watch_formats(sandbox: Sandbox, watchers: list[Watcher]) -> None:
    sandbox.ok("daemon", "start")
    tmux = Watcher(sandbox, "--format", "tmux")
    waybar = Watcher(sandbox, "--format", "waybar")
    as_json = Watcher(sandbox, "--json")
    watchers += [tmux, waybar, as_json]
    assert tmux.next_line().startswith("#[fg=green]DEV 🟢#[default]")
    assert set(json.loads(waybar.next_line())) == {"text", "tooltip", "class"}
    doc = json.loads(as_json.next_line())
    assert doc["env"] == "DEV" and doc["runs"]["total"] == 0
    sandbox.new_run(sandbox.workspace())
    assert json.loads(as_json.wait_for('"total":1'))["runs"]["total"] == 1


def test_watch_rewrites_the_line_in_place_on_a_terminal(sandbox: Sandbox) -> None:
    sandbox.ok("daemon", "start")
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        interruptible([simpleaide_command(), "watch"]),
        stdout=slave,
        stderr=subprocess.PIPE,
        env=sandbox.env,
        cwd=sandbox.cwd,
    )
    os.close(slave)
    seen = b""
    try:

        def read_until(text: bytes) -> None:
            nonlocal seen
            deadline = time.monotonic() + BOUND
            while text not in seen:
                left = deadline - time.monotonic()
                assert left > 0, f"never saw {text!r} in {seen!r}"
                if select.select([master], [], [], left)[0]:
                    seen += os.read(master, 4096)

        read_until("Run –\x1b[K".encode())
        sandbox.new_run(sandbox.workspace())
        read_until("Run ⏸\x1b[K".encode())
        proc.send_signal(signal.SIGINT)
        assert proc.wait(BOUND) == 0
        read_until(b"\r\n")  # a fresh line for the shell prompt
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(BOUND)
        assert proc.stderr is not None
        err = proc.stderr.read()
        proc.stderr.close()
        os.close(master)
    assert err == b""
    # Each status rewrote the one line: a carriage return, never a line feed, before it;
    # the last one is drawn again at the end, over the ^C a terminal echoes.
    draws = seen.rstrip(b"\r\n").split(b"\r")[1:]
    assert seen.startswith(b"\rDEV") and all(draw.startswith(b"DEV") for draw in draws)
    assert b"Run \xe2\x80\x93" in draws[0] and b"Run \xe2\x8f\xb8" in draws[-1]
    assert draws[-1] == draws[-2]
    assert b"\n" not in seen.rstrip(b"\r\n")


def test_watch_exits_3_when_the_daemon_goes_away(sandbox: Sandbox, watchers: list[Watcher]) -> None:
    sandbox.ok("daemon", "start")
    watcher = Watcher(sandbox)
    watchers.append(watcher)
    assert "DEV 🟢" in watcher.next_line()
    sandbox.ok("daemon", "stop")
    code, err = watcher.finish()
    assert code == 3
    assert err.count("\n") == 1 and err.startswith("simpleaide: ") and "went away" in err


def test_watch_without_a_daemon(sandbox: Sandbox) -> None:
    result = sandbox.run("watch", "--no-spawn")
    assert result.code == 3
    assert "no daemon answers" in result.err
    assert os.listdir(sandbox.root / "run") == []
