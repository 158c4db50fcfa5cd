"""A command's ``RUN_ID``: any unique start of a run id, or ``latest`` / ``@`` for the newest
run of the current workspace; the installed ``simpleaide`` against a real daemon it starts."""

from __future__ import annotations

import pytest

from simpleaide import paths
from tests.support.runs import lay_out_run
from tests.support.sandbox import RUN_ID, Sandbox


def common_start(ids: list[str]) -> str:
    first, last = min(ids), max(ids)
    n = 0
    while first[n] == last[n]:
        n += 1
    return first[:n]


def unique_start(run_id: str, others: list[str]) -> str:
    """The shortest start of ``run_id`` that no id of ``others`` shares."""
    for n in range(1, len(run_id) + 1):
        if not any(other.startswith(run_id[:n]) for other in others):
            return run_id[:n]
    raise AssertionError(f"{run_id} is the start of another id")


def test_every_command_takes_a_unique_start_of_a_run_id(sandbox: Sandbox) -> None:
    ws, elsewhere = sandbox.workspace("ws"), sandbox.workspace("other")
    mine = sandbox.new_run(ws, "--title", "mine")
    others = [sandbox.new_run(ws), sandbox.new_run(elsewhere)]
    short = unique_start(mine, others)
    assert len(short) < len(mine)

    assert sandbox.ok("runs", "show", short, "--json").json()["id"] == mine
    assert sandbox.ok("steps", "add", short, "plan", "--start").stdout.strip() == "1"
    sandbox.ok("artifacts", "put", short, "plan", "notes.md", input=b"hello\n")
    assert sandbox.ok("artifacts", "get", short, "1", "notes.md").out == b"hello\n"
    assert [a["name"] for a in sandbox.ok("artifacts", "ls", short, "--json").json()] == [
        "notes.md"
    ]
    assert sandbox.ok("steps", "done", short, "plan", "--json").json()["run"]["id"] == mine
    assert sandbox.ok("runs", "complete", short).stdout.startswith(f"run {mine} ")
    # Ids are unique across workspaces, and so is a start of one: resolved from anywhere.
    far = unique_start(others[1], [mine, others[0]])
    assert sandbox.ok("runs", "show", far, "--json").json()["id"] == others[1]


def test_latest_and_at_are_the_newest_run_of_the_current_workspace(sandbox: Sandbox) -> None:
    ws, elsewhere = sandbox.workspace("ws"), sandbox.workspace("other")
    sandbox.new_run(ws)
    newest = sandbox.new_run(ws, "--title", "newest here")
    sandbox.new_run(elsewhere)  # newer still, but in another workspace
    below = ws / "src" / "deep"
    below.mkdir(parents=True)
    for word in ("latest", "@"):
        shown = sandbox.ok("runs", "show", word, "--json", cwd=below).json()
        assert shown["id"] == newest, word
    sandbox.ok("steps", "add", "@", "plan", cwd=ws)
    assert sandbox.ok("runs", "show", "latest", "--json", cwd=ws).json()["stepCount"] == 1


def test_latest_outside_a_workspace_or_in_one_without_runs_is_refused_in_words(
    sandbox: Sandbox,
) -> None:
    if paths.find_workspace(str(sandbox.cwd)) is not None:
        pytest.fail(
            f"a folder above {sandbox.cwd} holds .simpleaide/: remove it "
            "(it makes every folder below it a workspace)"
        )
    outside = sandbox.run("runs", "show", "latest")
    assert outside.code == 1 and outside.out == b""
    assert "newest run of the current workspace" in outside.err
    assert ".simpleaide/" in outside.err and outside.err.count("\n") == 1
    empty = sandbox.workspace("empty")
    none_yet = sandbox.run("runs", "show", "@", cwd=empty)
    assert none_yet.code == 1 and f"workspace {empty} has no runs yet" in none_yet.err


def test_an_ambiguous_start_is_refused_with_the_runs_it_may_mean(sandbox: Sandbox) -> None:
    ws = sandbox.workspace()
    ids = [sandbox.new_run(ws, "--title", f"run number {n}") for n in range(7)]
    start = common_start(ids)
    result = sandbox.run("runs", "show", start)
    assert result.code == 1 and result.out == b""
    first, *listed = result.err.splitlines()
    assert first == (
        f"simpleaide: '{start}' is the start of 7 run ids; give more of the one you mean:"
    )
    # Newest first, a few of them: id, workspace, title, status; then how many more.
    newest = sorted(ids, reverse=True)
    for line, run_id in zip(listed[:5], newest[:5], strict=True):
        assert line.split() == [run_id, str(ws), "run", "number", str(ids.index(run_id)), "pending"]
    assert listed[5:] == ["  and 2 more"]


def test_a_start_of_no_run_says_no_run_matches(sandbox: Sandbox) -> None:
    sandbox.new_run(sandbox.workspace())
    result = sandbox.run("runs", "show", "19990101T12")
    assert result.code == 1
    assert result.err == (
        "simpleaide: no run matches '19990101T12': no run id starts so (see simpleaide runs ls)\n"
    )


def test_a_whole_id_goes_to_the_command_as_it_is(sandbox: Sandbox) -> None:
    """A whole id is not looked up first: a missing run is the daemon's own answer to the
    command, not the CLI's "no run matches" (which a lookup would have said)."""
    sandbox.new_run(sandbox.workspace())
    missing = "20000101T000000000Z-00000000"
    assert RUN_ID.match(missing)
    result = sandbox.run("runs", "show", missing)
    assert result.code == 1
    assert result.err == f"simpleaide: run {missing} does not exist\n"
    # What is no run id at all is the daemon's to refuse, in its words.
    odd = sandbox.run("runs", "show", "yesterday")
    assert odd.code == 1 and "'yesterday'" in odd.err and "no run matches" not in odd.err


def test_a_start_of_a_run_in_a_removed_workspace_says_so_as_its_whole_id_does(
    sandbox: Sandbox,
) -> None:
    ws, served = sandbox.workspace("proj"), sandbox.workspace("served")
    mine = sandbox.new_run(ws)
    other = sandbox.new_run(served)
    sandbox.ok("workspaces", "rm", str(ws))
    whole = sandbox.run("runs", "show", mine, cwd=ws)
    assert whole.code == 1 and "which this daemon does not serve: it was removed" in whole.err
    short = unique_start(mine, [other])
    assert len(short) < len(mine)
    for args in (["runs", "show", short], ["steps", "add", short, "plan"]):
        result = sandbox.run(*args, cwd=ws)
        assert (result.code, result.out, result.err) == (1, b"", whole.err), args
    # Matching no run anywhere is still "no run matches".
    none = sandbox.run("runs", "show", "19990101T12", cwd=ws)
    assert none.code == 1 and "no run matches '19990101T12'" in none.err


def test_a_start_of_a_run_in_a_folder_never_served_names_the_workspace(
    sandbox: Sandbox,
) -> None:
    ws = sandbox.workspace("elsewhere")
    first = lay_out_run(ws, "completed", ["completed"])  # written by another tool
    second = lay_out_run(ws, "running", ["running"])
    short = unique_start(second, [first])
    result = sandbox.run("runs", "show", short, cwd=ws)
    assert (result.code, result.out) == (1, b""), str(result)
    assert result.err == (
        f"simpleaide: run {second} is in workspace {ws}, which the daemon does not serve; "
        f"serve it with: simpleaide workspaces add {ws}\n"
    )
    both = sandbox.run("runs", "show", common_start([first, second]), cwd=ws)
    assert both.code == 1 and both.out == b""
    head, *listed = both.err.splitlines()
    assert head == (
        f"simpleaide: '{common_start([first, second])}' is the start of 2 run ids in "
        f"workspace {ws}, which the daemon does not serve; give more of the one you mean:"
    )
    newest_first = sorted([first, second], reverse=True)
    assert [line.split() for line in listed] == [[run_id, str(ws)] for run_id in newest_first]
