"""``simpleaide watch`` in a terminal window: a real PTY that is its controlling terminal,
its screen read through pyte, against a real daemon."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from wcwidth import wcswidth

from simpleaide.commands.watch import fit
from tests.support.ptys import CliPty
from tests.support.sandbox import Sandbox


@pytest.fixture
def watching(sandbox: Sandbox) -> Iterator[CliPty]:
    """``simpleaide watch`` on a PTY 30 columns wide: narrower than the chip line."""
    sandbox.ok("daemon", "start")
    shown = CliPty(sandbox, "watch", cols=30, rows=6)
    yield shown
    shown.close()


def redrawn(screen: CliPty, draws: int) -> Callable[[], bool]:
    """Whether the line was drawn more than ``draws`` times."""
    return lambda: screen.output.count(b"\r") > draws


def rows_used(screen: CliPty) -> list[str]:
    return [line for line in screen.lines if line]


def test_a_narrow_terminal_shows_one_line_cut_to_its_width(
    sandbox: Sandbox, watching: CliPty
) -> None:
    watching.until_shown("DEV 🟢")
    run_id = sandbox.new_run(sandbox.workspace())
    changes = (["steps", "add", run_id, "plan", "--start"], ["runs", "cancel", run_id])
    for change in changes:  # each changes the Run chip, cut off the line but drawn again
        draws = watching.output.count(b"\r")
        sandbox.ok(*change)
        watching.until(redrawn(watching, draws), "a rewrite")
    watching.until_shown("…")
    (line,) = rows_used(watching)
    assert line.startswith("DEV 🟢 ·") and line.endswith("…")
    assert wcswidth(line) <= 27


def test_a_resize_redraws_the_line_at_the_new_width(watching: CliPty) -> None:
    watching.until_shown("…")
    watching.resize(100, 6)  # the kernel sends SIGWINCH to the watch
    watching.until_shown("Run –")
    (line,) = rows_used(watching)
    assert "…" not in line and line.startswith("DEV 🟢 ·")


def test_ctrl_c_leaves_the_line_clean_and_a_fresh_line_below(watching: CliPty) -> None:
    watching.until_shown("DEV 🟢")
    watching.type(b"\x03")  # the terminal echoes ^C, then interrupts the watch
    assert watching.wait() == 0
    assert b"^C" in watching.output  # echoed, then drawn over
    assert "^C" not in watching.text
    (line,) = rows_used(watching)
    assert line.startswith("DEV 🟢 ·")
    assert watching.screen.cursor.y == 1 and watching.screen.cursor.x == 0


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        (None, "DEV 🟢 · 東京"),
        (40, "DEV 🟢 · 東京"),
        (16, "DEV 🟢 · 東京"),  # 13 cells, the last three columns left free
        (15, "DEV 🟢 · 東…"),
        (14, "DEV 🟢 · …"),  # 東 and … would take 12: one of the last three
        (11, "DEV 🟢 …"),
        (4, "…"),
        (1, "…"),
    ],
)
def test_fit_counts_display_columns(columns: int | None, expected: str) -> None:
    assert fit("DEV 🟢 · 東京", columns) == expected
