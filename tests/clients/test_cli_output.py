"""The CLI's human output: tables aligned by display width, a WORKSPACE column when runs of
several workspaces are listed, human sizes, times to the second, status colours only on a
terminal that wants them, binary artifacts kept off the terminal, and plain English.

The formatting functions are tested alone; the commands run as the installed ``simpleaide``
against a daemon it starts (``tests/support/sandbox.py``), on a pipe or on a real PTY."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
import wcwidth

from simpleaide import tables
from tests.support.sandbox import Sandbox, simpleaide_command, status_path_imports

BOUND = 30.0  # seconds: generous, only a failing test waits this long
SGR = re.compile(r"\x1b\[[0-9;]*m")
SECOND = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"


def columns(text: str) -> int:
    return int(wcwidth.width(text))


def starts(lines: list[str], cells: list[str]) -> list[int]:
    """The display column at which (the last) ``cells[i]`` starts in ``lines[i]``."""
    return [columns(line[: line.rindex(cell)]) for line, cell in zip(lines, cells, strict=True)]


# -- formatting, alone ---------------------------------------------------------------------


def test_tables_align_wide_characters_by_display_width() -> None:
    rows = [["東京", "completed", "a"], ["🟢 ok", "failed", "b"], ["plain", "running", "c"]]
    lines = tables.render(["NAME", "STATUS", "LAST"], rows, width=None).splitlines()
    assert len(set(starts(lines, ["STATUS", "completed", "failed", "running"]))) == 1
    assert len(set(starts(lines, ["LAST", "a", "b", "c"]))) == 1
    # len() would have padded 東京 (2 characters, 4 columns) to the width of "plain".
    assert lines[1].startswith("東京   completed")


def test_an_elastic_column_is_cut_to_the_display_width() -> None:
    rows = [["1", "東京" * 20], ["2", "🟢" * 20], ["3", "ascii " * 10]]
    lines = tables.render(["#", "TITLE"], rows, elastic=1, width=30).splitlines()
    for line in lines[1:]:
        assert columns(line) <= 30 and line.endswith(tables.ELLIPSIS), line
    assert lines[1] == "1  " + "東京" * 6 + "東…"  # 3 + 26 + 1 columns: never half a character


@pytest.mark.parametrize(
    ("text", "width", "cut"),
    [
        ("東京東京", 5, "東京…"),
        ("東京東京", 8, "東京東京"),
        ("ab東京", 3, "ab…"),
        ("a👨‍👩‍👧b", 3, "a…"),  # an emoji sequence is one character of two columns
        ("a👨‍👩‍👧bc", 4, "a👨‍👩‍👧…"),
        ("abcdef", 4, "abc…"),
        ("abc", 0, ""),
    ],
)
def test_clip_counts_columns_and_never_splits_a_character(text: str, width: int, cut: str) -> None:
    assert tables.clip(text, width) == cut
    assert columns(tables.clip(text, width)) <= width


@pytest.mark.parametrize(
    ("count", "shown"),
    [
        (0, "0 B"),
        (1, "1 B"),
        (512, "512 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (100_000, "97.7 KiB"),
        (1024 * 1024 - 1, "1.0 MiB"),  # 1023.999 KiB rounds to the next unit
        (3 * 1024 * 1024 // 2, "1.5 MiB"),
        (5 * 1024**3, "5.0 GiB"),
        (2 * 1024**4, "2.0 TiB"),
    ],
)
def test_human_sizes(count: int, shown: str) -> None:
    assert tables.size(count) == shown


def test_times_are_shown_to_the_second(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        assert tables.local_time("2026-12-07T14:09:03.456Z") == "2026-12-07 14:09:03"
        assert tables.local_time(None) == "-"
        now = datetime.fromisoformat("2026-12-07T14:12:03Z")
        assert tables.time_and_age("2026-12-07T14:09:03Z", now) == "2026-12-07 14:09:03 (3m ago)"
        assert tables.time_and_age(None, now) == "-"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_counts_and_statuses_in_plain_english() -> None:
    assert [tables.plural(n, "run") for n in (0, 1, 2)] == ["0 runs", "1 run", "2 runs"]
    assert tables.plural(1, "secret") == "1 secret"
    assert {s: tables.status_phrase(s) for s in ("failed", "completed", "skipped")} == {
        "failed": "has failed",
        "completed": "has completed",
        "skipped": "was skipped",
    }


def test_home_is_shown_as_a_tilde() -> None:
    assert tables.home_path("/home/ann/src/app", "/home/ann") == "~/src/app"
    assert tables.home_path("/home/ann", "/home/ann/") == "~"
    assert tables.home_path("/home/anna/x", "/home/ann") == "/home/anna/x"
    assert tables.home_path("/srv/x", "/") == "/srv/x"


class _Terminal:
    def isatty(self) -> bool:
        return True


class _Pipe:
    def isatty(self) -> bool:
        return False


@pytest.mark.parametrize(
    ("no_color", "stream", "wanted"),
    [
        (None, _Terminal(), True),
        ("", _Terminal(), True),  # no-color.org: only a non-empty value disables colour
        ("1", _Terminal(), False),
        ("0", _Terminal(), False),  # any non-empty value
        (None, _Pipe(), False),
    ],
)
def test_colour_only_on_a_terminal_without_no_color(
    monkeypatch: pytest.MonkeyPatch, no_color: str | None, stream: object, wanted: bool
) -> None:
    if no_color is None:
        monkeypatch.delenv("NO_COLOR", raising=False)
    else:
        monkeypatch.setenv("NO_COLOR", no_color)
    assert tables.colour_wanted(stream) is wanted  # type: ignore[arg-type]


def test_colour_keeps_the_columns_aligned() -> None:
    rows = [["a", "completed", "x"], ["東京", "failed", "y"], ["c", "cancelled", "z"]]
    plain = tables.render(["N", "STATUS", "Z"], rows, status=1, colour=False)
    painted = tables.render(["N", "STATUS", "Z"], rows, status=1, colour=True)
    assert "\x1b[32mcompleted\x1b[0m" in painted and "\x1b[31mfailed\x1b[0m" in painted
    assert "\x1b[2mcancelled\x1b[0m" in painted
    assert SGR.sub("", painted) == plain
    assert "\x1b" not in plain


def test_the_status_path_never_loads_wcwidth(sandbox: Sandbox) -> None:
    """``simpleaide status`` runs every few seconds: the width library is for tables."""
    imported = status_path_imports(sandbox)
    assert not {m for m in imported if m.split(".")[0] == "wcwidth" or m == "simpleaide.tables"}


# -- the commands, on a pipe ----------------------------------------------------------------


def home_workspace(sandbox: Sandbox, name: str) -> Path:
    path = Path(sandbox.env["HOME"]) / name
    (path / ".simpleaide").mkdir(parents=True)
    return path


def test_runs_of_several_workspaces_show_which(sandbox: Sandbox) -> None:
    tokyo, other = home_workspace(sandbox, "東京"), home_workspace(sandbox, "ab")
    first = sandbox.new_run(tokyo, "--title", "first")
    second = sandbox.new_run(other, "--title", "second")
    for args, cwd in ((("--all",), tokyo), ((), sandbox.cwd)):  # outside any workspace: all
        lines = sandbox.ok("runs", "ls", *args, cwd=cwd).stdout.splitlines()
        assert lines[0].split() == ["ID", "STATUS", "STEPS", "STARTED", "AGE", "WORKSPACE", "TITLE"]
        by_id = {line.split()[0]: line for line in lines[1:]}
        assert by_id.keys() == {first, second}
        assert by_id[first].split()[-2:] == ["~/東京", "first"]
        assert by_id[second].split()[-2:] == ["~/ab", "second"]
        # TITLE starts in the same column on every line, whatever the width of the path.
        titles = [line.split()[-1] for line in lines[1:]]
        assert len(set(starts(lines, ["TITLE", *titles]))) == 1, lines
    # The runs of one workspace need no such column.
    inside = sandbox.ok("runs", "ls", cwd=tokyo).stdout.splitlines()
    assert inside[0].split() == ["ID", "STATUS", "STEPS", "STARTED", "AGE", "TITLE"]
    sandbox.ok("runs", "cancel", first)
    # No workspace chosen: whose the runs are is said, even when they are all one's.
    alone = sandbox.ok("runs", "ls", "--all", "--status", "cancelled").stdout.splitlines()
    assert len(alone) == 2 and alone[1].startswith(first) and "WORKSPACE" in alone[0].split()
    # --json is the daemon's answer, as it was.
    assert {r["workspace"] for r in sandbox.ok("runs", "ls", "--all", "--json").json()["runs"]} == {
        str(tokyo),
        str(other),
    }


def test_wide_titles_are_cut_to_the_terminal_width(sandbox: Sandbox) -> None:
    ws = sandbox.workspace()
    sandbox.new_run(ws, "--title", "東京" * 40)
    sandbox.new_run(ws, "--title", "🟢 " * 40)
    lines = sandbox.ok("runs", "ls", cwd=ws, env={"COLUMNS": "80"}).stdout.splitlines()
    assert len(lines) == 3
    for line in lines[1:]:
        assert columns(line) <= 80 and line.endswith(tables.ELLIPSIS), line


def test_sizes_are_human_and_json_stays_raw(sandbox: Sandbox) -> None:
    ws = sandbox.workspace()
    run_id = sandbox.new_run(ws)
    sandbox.ok("steps", "add", run_id, "build", "--start")
    saved = sandbox.ok("artifacts", "put", run_id, "1", "big.bin", input=b"x" * 100_000)
    assert saved.stdout == "saved big.bin (97.7 KiB) in step 1\n"
    sandbox.ok("artifacts", "put", run_id, "1", "small.txt", input=b"y" * 512)
    lines = sandbox.ok("artifacts", "ls", run_id).stdout.splitlines()
    assert lines[0].split() == ["STEP", "NAME", "SIZE", "MODIFIED"]
    rows = {line.split()[1]: line for line in lines[1:]}
    assert re.search(rf"\s97\.7 KiB  {SECOND}$", rows["big.bin"]), rows
    assert re.search(rf"\s512 B  {SECOND}$", rows["small.txt"]), rows
    # Sizes are aligned right, so that units line up.
    big, small = rows["big.bin"], rows["small.txt"]
    assert big.index("97.7") + len("97.7 KiB") == small.index("512") + len("512 B")
    listed = sandbox.ok("artifacts", "ls", run_id, "--json").json()
    assert {a["name"]: a["size"] for a in listed} == {"big.bin": 100_000, "small.txt": 512}


def test_times_to_the_second_in_tables_and_show(sandbox: Sandbox) -> None:
    ws = sandbox.workspace()
    run_id = sandbox.new_run(ws)
    sandbox.ok("steps", "add", run_id, "build", "--start")
    sandbox.ok("steps", "done", run_id, "build")
    sandbox.ok("runs", "complete", run_id)
    listed = sandbox.ok("runs", "ls", cwd=ws).stdout.splitlines()[1]
    assert re.search(rf"^{run_id}\s+completed\s+1\s+{SECOND}\s", listed), listed
    steps = sandbox.ok("steps", "ls", run_id).stdout.splitlines()[1]
    assert re.search(rf"^1\s+01_build\s+completed\s+{SECOND}\s", steps), steps
    shown = sandbox.ok("runs", "show", run_id).stdout
    assert re.search(rf"^started:\s+{SECOND} \(\d+s ago\)$", shown, re.M), shown
    assert re.search(rf"^completed:\s+{SECOND}$", shown, re.M), shown


# -- plain English ----------------------------------------------------------------------------


def test_step_and_run_moves_read_as_english(sandbox: Sandbox) -> None:
    ws = sandbox.workspace()
    run_id = sandbox.new_run(ws)
    sandbox.ok("steps", "add", run_id, "build", "--start")
    failed = sandbox.ok("steps", "fail", run_id, "build", "-m", "boom")
    assert failed.stdout == f"step 01_build has failed (run {run_id} has failed)\n"
    refused = sandbox.run("steps", "done", run_id, "build")
    assert refused.code == 1
    assert refused.err == (
        f"simpleaide: step 01_build of run {run_id} has failed; cannot move to completed\n"
    )

    other = sandbox.new_run(ws)
    sandbox.ok("steps", "add", other, "plan", "--start")
    skipped = sandbox.ok("steps", "skip", other, "plan").stdout
    assert skipped == f"step 01_plan was skipped (run {other} is running)\n"
    sandbox.ok("steps", "add", other, "code", "--start")
    done = sandbox.ok("steps", "done", other, "code").stdout
    assert done == f"step 02_code has completed (run {other} is running)\n"
    assert sandbox.ok("runs", "cancel", other).stdout == f"run {other} was cancelled\n"
    refused = sandbox.run("steps", "start", other, "plan")
    assert refused.code == 1 and "step 01_plan of run" in refused.err
    assert f"{other} was skipped; cannot move to running" in refused.err


def test_counts_are_singular_or_plural(sandbox: Sandbox) -> None:
    ws = sandbox.root / "served"
    ws.mkdir()
    sandbox.new_run(ws)
    again = sandbox.ok("workspaces", "add", str(ws)).stdout
    assert again == f"serving {ws} (1 run)\n"
    sandbox.new_run(ws)
    assert sandbox.ok("workspaces", "add", str(ws)).stdout == f"serving {ws} (2 runs)\n"


def test_a_corrupt_run_shows_no_time_and_no_age(sandbox: Sandbox) -> None:
    ws = sandbox.workspace()
    run_id = sandbox.new_run(ws)
    (ws / ".simpleaide" / "runs" / run_id / "metadata.json").write_text("{broken")
    shown = sandbox.ok("runs", "show", run_id).stdout
    assert re.search(r"^status:\s+corrupt$", shown, re.M), shown
    assert re.search(r"^started:\s+-$", shown, re.M), shown
    assert "ago" not in shown


# -- the commands, on a terminal --------------------------------------------------------------


@dataclass
class Shown:
    code: int
    out: bytes  # as the terminal got it, line endings made \n again
    err: str

    @property
    def text(self) -> str:
        return self.out.decode("utf-8")


def on_terminal(
    sandbox: Sandbox, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Shown:
    """``simpleaide ARGS`` with its stdout on a PTY 200 columns wide (stderr a pipe)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    try:
        proc = subprocess.Popen(
            [simpleaide_command(), *args],
            stdin=subprocess.DEVNULL,
            stdout=slave,
            stderr=subprocess.PIPE,
            env={**sandbox.env, **(env or {})},
            cwd=cwd or sandbox.cwd,
        )
    finally:
        os.close(slave)
    out = b""
    try:
        deadline = time.monotonic() + BOUND
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"simpleaide {args} did not finish: {out!r}"
            if not select.select([master], [], [], left)[0]:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the last writer closed its side
                break
            if not chunk:
                break
            out += chunk
        code = proc.wait(BOUND)
        assert proc.stderr is not None
        err = proc.stderr.read().decode("utf-8", "replace")
        proc.stderr.close()
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait(BOUND)
    assert "Traceback" not in err, err
    return Shown(code, out.replace(b"\r\n", b"\n"), err)


def finished_runs(sandbox: Sandbox, ws: Path) -> dict[str, str]:
    """Runs of ``ws`` in each colour-worthy status."""
    made = {}
    for status in ("completed", "failed", "cancelled", "running"):
        run_id = sandbox.new_run(ws, "--title", status)
        made[status] = run_id
        if status == "cancelled":
            sandbox.ok("runs", "cancel", run_id)
            continue
        sandbox.ok("steps", "add", run_id, "build", "--start")
        if status == "completed":
            sandbox.ok("steps", "done", run_id, "build")
            sandbox.ok("runs", "complete", run_id)
        elif status == "failed":
            sandbox.ok("steps", "fail", run_id, "build", "-m", "boom")
    return made


def test_statuses_are_coloured_only_on_a_terminal(sandbox: Sandbox) -> None:
    ws = sandbox.workspace()
    made = finished_runs(sandbox, ws)
    painted = on_terminal(sandbox, "runs", "ls", cwd=ws)
    assert painted.code == 0, painted
    lines = painted.text.splitlines()
    colours = {"completed": "32", "failed": "31", "cancelled": "2", "running": "33"}
    for status, run_id in made.items():
        (line,) = [line for line in lines if line.startswith(run_id)]
        assert f"\x1b[{colours[status]}m{status}\x1b[0m" in line, line
    # Padded by what shows: the columns after STATUS still line up.
    plain = [SGR.sub("", line) for line in lines]
    started = {plain[0].index("STARTED")}
    started |= {match.start() for line in plain[1:] if (match := re.search(SECOND, line))}
    assert len(started) == 1, plain
    titles = [line.rsplit(" ", 1)[-1] for line in plain[1:]]
    assert len(set(starts(plain, ["TITLE", *titles]))) == 1, plain

    steps = on_terminal(sandbox, "steps", "ls", made["failed"]).text
    assert "\x1b[31mfailed\x1b[0m" in steps
    shown = on_terminal(sandbox, "runs", "show", made["completed"]).text
    assert re.search(r"^status:\s+\x1b\[32mcompleted\x1b\[0m$", shown, re.M), shown

    # NO_COLOR (any non-empty value) and a pipe: no colour at all.
    for env in ({"NO_COLOR": "1"}, {"NO_COLOR": "yes"}):
        quiet = on_terminal(sandbox, "runs", "ls", cwd=ws, env=env)
        assert quiet.code == 0 and "\x1b" not in quiet.text and "completed" in quiet.text
        assert "\x1b" not in on_terminal(sandbox, "runs", "show", made["failed"], env=env).text
        assert "\x1b" not in on_terminal(sandbox, "steps", "ls", made["failed"], env=env).text
    piped = sandbox.ok("runs", "ls", cwd=ws).stdout
    assert "\x1b" not in piped and "completed" in piped
    assert "\x1b" not in sandbox.ok("steps", "ls", made["failed"]).stdout
    # An empty NO_COLOR does not disable it (no-color.org).
    assert "\x1b[32m" in on_terminal(sandbox, "runs", "ls", cwd=ws, env={"NO_COLOR": ""}).text


def test_binary_artifacts_stay_off_the_terminal(sandbox: Sandbox) -> None:
    ws = sandbox.workspace()
    run_id = sandbox.new_run(ws)
    sandbox.ok("steps", "add", run_id, "build", "--start")
    blob = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 40
    latin1 = "café au lait\n".encode("latin-1")  # not UTF-8, no NUL
    text = "Résumé: 東京 🟢\n\x1b[31mred\x1b[0m\tok\n".encode()
    for name, data in (("blob.png", blob), ("latin1.txt", latin1), ("notes.md", text)):
        sandbox.ok("artifacts", "put", run_id, "build", name, input=data)

    for name in ("blob.png", "latin1.txt"):
        refused = on_terminal(sandbox, "artifacts", "get", run_id, "build", name)
        assert refused.code == 1 and refused.out == b"", refused
        assert refused.err == (
            f"simpleaide: {name} is binary and would garble the terminal; "
            "use -o FILE to save it, or --force to show it escaped\n"
        )
    # --force shows it, escaped as any text on a terminal is.
    forced = on_terminal(sandbox, "artifacts", "get", run_id, "build", "blob.png", "--force")
    assert forced.code == 0 and forced.err == ""
    assert forced.out.startswith(b"\\x89PNG\\x0d\n\\x1a\n\\x00\\x00\\x00\\x0dIHDR"), forced.out[:80]
    assert b"\x00" not in forced.out and b"\x1b" not in forced.out
    # -o FILE writes the exact bytes, even from a terminal.
    copy = sandbox.root / "copy.png"
    saved = on_terminal(sandbox, "artifacts", "get", run_id, "build", "blob.png", "-o", str(copy))
    assert saved.code == 0 and saved.out == b"" and copy.read_bytes() == blob
    # Text still prints on a terminal, its control characters escaped.
    shown = on_terminal(sandbox, "artifacts", "get", run_id, "build", "notes.md")
    assert shown.code == 0 and shown.err == ""
    assert shown.text == "Résumé: 東京 🟢\n\\x1b[31mred\\x1b[0m\tok\n"
    # Into a pipe: the exact bytes, binary or not.
    assert sandbox.ok("artifacts", "get", run_id, "build", "blob.png").out == blob
    assert sandbox.ok("artifacts", "get", run_id, "build", "latin1.txt").out == latin1


def test_a_text_artifact_larger_than_the_sample_is_text(sandbox: Sandbox) -> None:
    """A multi-byte character cut by the end of the first few KiB is not taken for binary."""
    ws = sandbox.workspace()
    run_id = sandbox.new_run(ws)
    sandbox.ok("steps", "add", run_id, "build", "--start")
    data = ("a" + "東" * 5000 + "\n").encode()  # 8192 falls inside a character
    sandbox.ok("artifacts", "put", run_id, "build", "wide.txt", input=data)
    shown = on_terminal(sandbox, "artifacts", "get", run_id, "build", "wide.txt")
    assert shown.code == 0 and shown.out == data and shown.err == "", shown.err
