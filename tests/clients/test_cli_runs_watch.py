"""``simpleaide runs watch``: runs' events, live, one line each; the installed command
against a real daemon it starts."""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Iterator

import pytest

from simpleaide import paths
from tests.support.ptys import CliPty
from tests.support.sandbox import Sandbox, Watcher

LINE = re.compile(r"^[0-9]{2}:[0-9]{2}:[0-9]{2}  (?P<run>\S+)  (?P<said>.*)\n$")


@pytest.fixture
def watchers() -> Iterator[list[Watcher]]:
    started: list[Watcher] = []
    yield started
    for watcher in started:
        watcher.kill()


def watch(sandbox: Sandbox, watchers: list[Watcher], *args: str) -> Watcher:
    watcher = Watcher(sandbox, "watch", *args, command="runs")
    watchers.append(watcher)
    return watcher


def said(watcher: Watcher, run_id: str) -> str:
    """What the next line says about ``run_id`` (it must be about that run)."""
    match = LINE.match(watcher.next_line())
    assert match is not None and match["run"] == run_id, match
    return match["said"]


def test_one_run_is_followed_until_it_ends(sandbox: Sandbox, watchers: list[Watcher]) -> None:
    ws = sandbox.workspace()
    run_id = sandbox.new_run(ws, "--title", "Refactor parser")
    watcher = watch(sandbox, watchers, run_id)
    assert said(watcher, run_id) == 'is pending, 0 steps "Refactor parser"'
    sandbox.ok("steps", "add", run_id, "plan", "--start")
    assert said(watcher, run_id) == "step 01_plan running"  # a step first, then its run
    assert said(watcher, run_id) == "pending → running"
    sandbox.ok("artifacts", "put", run_id, "plan", "plan.md", input=b"# plan\n")
    assert said(watcher, run_id) == "step 1 artifact plan.md saved (7 B)"
    sandbox.ok("artifacts", "put", run_id, "plan", "log.txt", input=b"x" * 3000)
    assert said(watcher, run_id) == "step 1 artifact log.txt saved (2.9 KiB)"
    sandbox.ok("artifacts", "rm", run_id, "plan", "plan.md")
    assert said(watcher, run_id) == "step 1 artifact plan.md deleted"
    sandbox.ok("steps", "fail", run_id, "plan", "-m", "tests are red", "--keep-run")
    assert said(watcher, run_id) == "step 01_plan failed: tests are red"
    other = sandbox.new_run(ws)  # another run's events are not this watch's
    sandbox.ok("runs", "cancel", other)
    sandbox.ok("runs", "complete", run_id)
    assert said(watcher, run_id) == "running → completed"
    assert watcher.finish() == (0, "")  # the run ended: so does the watch


@pytest.mark.parametrize(
    ("end", "code"),
    [
        (["runs", "complete", "--force"], 0),
        (["runs", "fail", "-m", "no"], 1),
        (["runs", "cancel"], 1),
    ],
)
def test_exit_status_tells_how_the_run_ended(
    sandbox: Sandbox, watchers: list[Watcher], end: list[str], code: int
) -> None:
    run_id = sandbox.new_run(sandbox.workspace())
    sandbox.ok("steps", "add", run_id, "plan")
    watcher = watch(sandbox, watchers, run_id, "--exit-status")
    assert said(watcher, run_id) == "is running, 1 step"
    sandbox.ok(*end, run_id)
    assert said(watcher, run_id) == "step 01_plan skipped"  # closed by the run's end, first
    assert said(watcher, run_id).startswith("running → ")
    assert watcher.finish() == (code, "")
    # Without --exit-status, any end is a normal one.
    assert sandbox.ok("runs", "watch", run_id).stdout.count("\n") == 1


def test_a_run_that_ended_already_ends_the_watch_at_once(sandbox: Sandbox) -> None:
    run_id = sandbox.new_run(sandbox.workspace())
    sandbox.ok("steps", "add", run_id, "plan", "--start")
    sandbox.ok("runs", "fail", run_id, "-m", "gave up")
    shown = sandbox.run("runs", "watch", run_id, "--exit-status")
    assert shown.code == 1
    match = LINE.match(shown.stdout)
    assert match is not None and match["said"] == "has failed, 1 step: gave up"
    done = sandbox.new_run(sandbox.workspace("other"))
    sandbox.ok("steps", "add", done, "plan")
    sandbox.ok("steps", "add", done, "code")
    sandbox.ok("runs", "complete", done, "--force")
    again = LINE.match(sandbox.ok("runs", "watch", done).stdout)
    assert again is not None and again["said"] == "has completed, 2 steps"


def test_the_step_that_fails_the_run_is_shown_before_the_watch_ends(
    sandbox: Sandbox, watchers: list[Watcher]
) -> None:
    run_id = sandbox.new_run(sandbox.workspace())
    sandbox.ok("steps", "add", run_id, "build", "--start")
    sandbox.ok("steps", "done", run_id, "build")
    sandbox.ok("steps", "add", run_id, "test", "--start")
    words = watch(sandbox, watchers, run_id, "--exit-status")
    assert said(words, run_id) == "is running, 2 steps"
    as_json = watch(sandbox, watchers, run_id, "--json")
    assert json.loads(as_json.next_line())["type"] == "current"
    sandbox.ok("steps", "fail", run_id, "test", "-m", "tests are red")
    assert said(words, run_id) == "step 02_test failed: tests are red"
    ended = said(words, run_id)
    assert ended.startswith("running → failed: ") and "tests are red" in ended
    assert words.finish() == (1, "")
    assert as_json.finish() == (0, "")  # the watch ended: every line it printed is read
    events = [json.loads(line) for line in iter(as_json.lines.get_nowait, None)]
    assert [(e["type"], (e.get("step") or e.get("run"))["status"]) for e in events] == [
        ("step", "failed"),
        ("status", "failed"),
    ]
    assert events[0]["step"]["errorMessage"] == "tests are red"


def test_json_is_one_event_per_line(sandbox: Sandbox, watchers: list[Watcher]) -> None:
    run_id = sandbox.new_run(sandbox.workspace())
    watcher = watch(sandbox, watchers, run_id, "--json")
    current = json.loads(watcher.next_line())
    assert current["type"] == "current" and current["run"]["id"] == run_id
    sandbox.ok("steps", "add", run_id, "plan", "--start")
    sandbox.ok("runs", "complete", run_id, "--force")
    kinds: list[str] = []
    while not kinds or kinds[-1] != "status" or len(kinds) < 3:
        event = json.loads(watcher.next_line())
        assert event["runId"] == run_id and isinstance(event["seq"], int)
        kinds.append(event["type"])
    assert event["run"]["status"] == "completed"
    assert watcher.finish() == (0, "")


def test_the_workspace_is_followed_and_only_it(sandbox: Sandbox, watchers: list[Watcher]) -> None:
    ws, elsewhere = sandbox.workspace("ws"), sandbox.workspace("other")
    before_here = sandbox.new_run(ws)
    # Runs with a step already: an artifact event names no workspace, so the watch asks.
    quiet_here, quiet_there = sandbox.new_run(ws), sandbox.new_run(elsewhere)
    for run_id in (quiet_here, quiet_there):
        sandbox.ok("steps", "add", run_id, "plan")
    sandbox.cwd = ws  # the watch runs here: the nearest workspace is ws
    watcher = watch(sandbox, watchers)
    assert watcher.next_line().endswith(f"  following the runs of {ws}; Ctrl-C to stop\n")
    sandbox.ok("steps", "add", before_here, "plan")
    assert said(watcher, before_here) == "step 01_plan pending"
    assert said(watcher, before_here) == "pending → running"
    # What happens elsewhere is not shown, whether the event names its workspace or not:
    # the next line shown must be about the next change here.
    there = sandbox.new_run(elsewhere)
    sandbox.ok("artifacts", "put", quiet_there, "plan", "x.md", input=b"x")
    sandbox.ok("artifacts", "put", quiet_here, "plan", "y.md", input=b"y")
    assert said(watcher, quiet_here) == "step 1 artifact y.md saved (1 B)"
    here = sandbox.new_run(ws, "--title", "new here")
    assert said(watcher, here) == 'created, pending "new here"'
    sandbox.ok("runs", "cancel", there)
    sandbox.ok("runs", "rm", here)
    assert said(watcher, here) == "deleted"
    watcher.proc.send_signal(signal.SIGINT)
    assert watcher.finish() == (0, "")


def test_all_runs_are_followed_with_where_they_are(
    sandbox: Sandbox, watchers: list[Watcher]
) -> None:
    sandbox.ok("daemon", "start")
    watcher = watch(sandbox, watchers, "--all")
    assert "following the runs of every workspace" in watcher.next_line()
    ws = sandbox.workspace()
    run_id = sandbox.new_run(ws)
    assert said(watcher, run_id) == f"created, pending in {ws}"
    watcher.proc.send_signal(signal.SIGINT)
    assert watcher.finish() == (0, "")


def test_a_deleted_run_ends_its_watch(sandbox: Sandbox, watchers: list[Watcher]) -> None:
    run_id = sandbox.new_run(sandbox.workspace())
    watcher = watch(sandbox, watchers, run_id)
    said(watcher, run_id)
    sandbox.ok("runs", "rm", run_id)
    assert said(watcher, run_id) == "deleted"
    assert watcher.finish() == (1, f"simpleaide: run {run_id} was deleted\n")


def test_the_daemon_going_away_ends_it_with_exit_3(
    sandbox: Sandbox, watchers: list[Watcher]
) -> None:
    run_id = sandbox.new_run(sandbox.workspace())
    watcher = watch(sandbox, watchers, run_id)
    said(watcher, run_id)
    sandbox.ok("daemon", "stop")
    code, err = watcher.finish()
    assert code == 3
    assert err.count("\n") == 1 and err.startswith("simpleaide: ") and "went away" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["20261124T101500123Z-1a2b3c4d", "--all"], "not both"),
        (["--all", "--exit-status"], "--exit-status is for watching one run"),
        ([], "not inside a workspace"),
    ],
)
def test_usage(sandbox: Sandbox, args: list[str], message: str) -> None:
    if not args and paths.find_workspace(str(sandbox.cwd)) is not None:
        pytest.fail(
            f"a folder above {sandbox.cwd} holds .simpleaide/: remove it "
            "(it makes every folder below it a workspace)"
        )
    result = sandbox.run("runs", "watch", *args)
    assert result.code == 2 and message in result.err


def test_ctrl_c_on_a_terminal_ends_it_cleanly(sandbox: Sandbox) -> None:
    sandbox.ok("daemon", "start")
    shown = CliPty(sandbox, "runs", "watch", "--all", cols=200)
    try:
        shown.until_shown("following the runs of every workspace")
        run_id = sandbox.new_run(sandbox.workspace())
        shown.until_shown(f"{run_id}  created")
        shown.type(b"\x03")  # the terminal echoes ^C, then interrupts the watch
        assert shown.wait() == 0
        assert b"^C" in shown.output  # echoed, then wiped
        assert "^C" not in shown.text and "Traceback" not in shown.text
        (_, line) = [line for line in shown.lines if line]
        assert line.endswith(f"{run_id}  created, pending in {sandbox.root / 'ws'}")
    finally:
        shown.close()
