"""Path rules: names that become paths."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from simpleaided.domain import clock, names
from simpleaided.domain.errors import InvalidInput


def test_run_ids_sort_by_creation_time_and_match_the_pattern() -> None:
    earlier = names.new_run_id(1_795_000_000_000)
    later = names.new_run_id(1_795_000_000_001)
    assert names.RUN_ID_RE.match(earlier) and names.RUN_ID_RE.match(later)
    assert earlier < later


def test_run_id_encodes_utc_milliseconds() -> None:
    ms = clock.parse_ms("2026-11-24T10:15:00.123Z")
    assert names.new_run_id(ms).startswith("20261124T101500123Z-")


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "..",
        "../x",
        "/etc",
        "20261124T101500123Z-1a2b3c4d/..",
        "x" * 300,
        "20261124T101500123Z-1A2B3C4D",
        "20261124T101500123Z-1a2b3c4d\x00",
    ],
)
def test_bad_run_ids(bad: str) -> None:
    with pytest.raises(InvalidInput, match="invalid run id"):
        names.check_run_id(bad)


@pytest.mark.parametrize("good", ["plan", "0", "code-review", "a_b", "x" * 64])
def test_good_step_names(good: str) -> None:
    assert names.check_step_name(good) == good


@pytest.mark.parametrize("bad", ["", "Plan", "-x", "_x", "a/b", "..", "a b", "x" * 65, "a\x00"])
def test_bad_step_names(bad: str) -> None:
    with pytest.raises(InvalidInput, match="invalid step name"):
        names.check_step_name(bad)


def test_step_folders() -> None:
    assert names.step_dir_name(2, "code") == "02_code"
    assert names.parse_step_dir("02_code") == (2, "code")
    assert names.parse_step_dir("00_code") is None
    assert names.parse_step_dir("2_code") is None
    assert names.parse_step_dir("artifacts") is None
    with pytest.raises(InvalidInput):
        names.step_dir_name(100, "x")


@pytest.mark.parametrize("good", ["plan.md", "diff.patch", "a" * 255, "résumé.txt", "x..y"])
def test_good_artifact_names(good: str) -> None:
    assert names.check_artifact_name(good) == good


@pytest.mark.parametrize(
    "bad", ["", ".", "..", ".hidden", "a/b", "/etc/passwd", "a\x00b", "a\nb", "é" * 128, "a\\b"]
)
def test_bad_artifact_names(bad: str) -> None:
    with pytest.raises(InvalidInput, match="invalid artifact name"):
        names.check_artifact_name(bad)


@pytest.mark.parametrize("bad", ["relative/path", "/a/../b", "/a\x00b", "/" + "x" * 5000])
def test_bad_workspace_paths(bad: str) -> None:
    with pytest.raises(InvalidInput, match="invalid workspace path"):
        names.check_workspace_path(bad)


def test_workspace_paths_are_normalised() -> None:
    assert names.check_workspace_path("/a//b/./c/") == "/a/b/c"


def test_timestamps_round_trip_in_utc_with_milliseconds() -> None:
    assert clock.format_ms(clock.parse_ms("2026-11-24T10:15:00.123Z")) == "2026-11-24T10:15:00.123Z"
    assert clock.parse_ms("2026-11-24T11:15:00.123+01:00") == clock.parse_ms(
        "2026-11-24T10:15:00.123Z"
    )
    assert clock.age_ms(10, 5) == 0


def test_formatting_is_right_across_seconds_and_days() -> None:
    # format_ms remembers the days it rendered: moving on, and back, must not reuse one.
    base = clock.parse_ms("2026-11-24T23:59:59.998Z")
    rendered = [clock.format_ms(base + step) for step in (0, 1, 2, 3, 1, 1003, -1)]
    assert rendered == [
        "2026-11-24T23:59:59.998Z",
        "2026-11-24T23:59:59.999Z",
        "2026-11-25T00:00:00.000Z",
        "2026-11-25T00:00:00.001Z",
        "2026-11-24T23:59:59.999Z",
        "2026-11-25T00:00:01.001Z",
        "2026-11-24T23:59:59.997Z",
    ]
    assert clock.format_ms(0) == "1970-01-01T00:00:00.000Z"
    assert clock.format_ms(-1) == "1969-12-31T23:59:59.999Z"


def test_formatting_agrees_with_datetime_over_random_times() -> None:
    rng = random.Random(7)
    for _ in range(2_000):
        epoch_ms = rng.randrange(-(10**12), 253_402_300_800_000)  # 1938 .. year 9999
        expected = datetime.fromtimestamp(0, UTC) + timedelta(milliseconds=epoch_ms)
        assert clock.format_ms(epoch_ms) == expected.isoformat(timespec="milliseconds")[:-6] + "Z"
        assert clock.parse_ms(clock.format_ms(epoch_ms)) == epoch_ms
