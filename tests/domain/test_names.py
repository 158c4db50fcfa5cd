"""Path rules: names that become paths."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from simpleaided.domain import clock, names
from simpleaided.domain.errors import InvalidInput


def test_run_ids_sort_by_creation_time_and_match_the_pattern() -> None:
    earlier = names.new_run_id(1_795_000_000_000)
    later = names.new_run_id(1_795_000_000_001)
    assert names.RUN_ID_RE.fullmatch(earlier) and names.RUN_ID_RE.fullmatch(later)
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
        # Digits of other scripts: Python's ``\d`` takes every Unicode digit.
        "２０２６１２０６T２２０３０６４３４Z-c00cb50f",  # fullwidth
        "٢٠٢٦١٢٠٦T٢٢٠٣٠٦٤٣٤Z-c00cb50f",  # Arabic-Indic
        "2026120६T220306434Z-c00cb50f",  # one Devanagari six
        "20261206T22030643𝟒Z-c00cb50f",  # one mathematical bold four
    ],
)
def test_bad_run_ids(bad: str) -> None:
    with pytest.raises(InvalidInput, match="is not a run id"):
        names.check_run_id(bad)


@pytest.mark.parametrize("good", ["plan", "0", "code-review", "a_b", "x" * 64])
def test_good_step_names(good: str) -> None:
    assert names.check_step_name(good) == good


@pytest.mark.parametrize("bad", ["", "Plan", "-x", "_x", "a/b", "..", "a b", "x" * 65, "a\x00"])
def test_bad_step_names(bad: str) -> None:
    with pytest.raises(InvalidInput, match="is not a step name"):
        names.check_step_name(bad)


def test_step_folders() -> None:
    assert names.step_dir_name(2, "code") == "02_code"
    assert names.parse_step_dir("02_code") == (2, "code")
    assert names.parse_step_dir("00_code") is None
    assert names.parse_step_dir("2_code") is None
    assert names.parse_step_dir("artifacts") is None
    with pytest.raises(InvalidInput):
        names.step_dir_name(100, "x")


# A folder numbered in another script's digits would read as step 2 and could shadow
# ``02_code``: it is no step folder.
@pytest.mark.parametrize("folder", ["٠٢_code", "０２_code", "0٢_code", "۰۲_code", "०२_code"])
def test_step_folders_are_numbered_in_ascii_digits(folder: str) -> None:
    assert names.parse_step_dir(folder) is None


@pytest.mark.parametrize("good", ["plan.md", "diff.patch", "a" * 255, "résumé.txt", "x..y"])
def test_good_artifact_names(good: str) -> None:
    assert names.check_artifact_name(good) == good


@pytest.mark.parametrize(
    "bad", ["", ".", "..", ".hidden", "a/b", "/etc/passwd", "a\x00b", "a\nb", "é" * 128, "a\\b"]
)
def test_bad_artifact_names(bad: str) -> None:
    with pytest.raises(InvalidInput, match="artifact name"):
        names.check_artifact_name(bad)


@pytest.mark.parametrize("bad", ["relative/path", "/a/../b", "/a\x00b", "/" + "x" * 5000])
def test_bad_workspace_paths(bad: str) -> None:
    with pytest.raises(InvalidInput, match="is not a workspace path"):
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


# -- the corpus: names that look harmless but are not -----------------------------------


# Every regex-based rule must match the whole name: ``$`` alone lets a final newline through.
@pytest.mark.parametrize(
    ("check", "value"),
    [
        (names.check_step_name, "code\n"),
        (names.check_run_id, "20261124T101500123Z-1a2b3c4d\n"),
    ],
)
def test_a_trailing_newline_is_refused(check: Callable[[str], str], value: str) -> None:
    with pytest.raises(InvalidInput):
        check(value)


def test_a_step_folder_with_a_trailing_newline_is_not_a_step() -> None:
    assert names.parse_step_dir("02_code\n") is None


ARTIFACT_CORPUS_BAD = {
    "C1 CSI": "a\u009bb",
    "C1 NEL": "a\u0085b",
    "C1 first": "a\u0080",
    "C1 last": "\u009f",
    "DEL": "a\x7fb",
    "ESC": "\x1b[31mred",
    "tab": "a\tb",
    "trailing newline": "plan.md\n",
    "carriage return": "a\rb",
    "right-to-left override": "evil\u202egpj.exe",
    "left-to-right embedding": "a\u202ab",
    "first strong isolate": "a\u2068b",
    "pop directional isolate": "a\u2069b",
    "right-to-left mark": "a\u200fb",
    "zero-width space": "plan\u200b.md",
    "zero-width joiner": "a\u200db",
    "zero-width non-joiner": "a\u200cb",
    "word joiner": "a\u2060b",
    "byte order mark": "\ufeffplan.md",
    "soft hyphen": "pl\u00adan.md",
    "line separator": "a\u2028b",
    "paragraph separator": "a\u2029b",
    "lone surrogate": "a\udcffb",
    "interlinear annotation": "a\ufff9b",
    "tag character": "a\U000e0041b",
    "decomposed (NFD) é": "re\u0301sume\u0301.txt",
    "Angstrom sign (NFC is U+00C5)": "\u212b.txt",
    "256 bytes": "a" * 256,
    "256 bytes of two-byte characters": "é" * 128,
    "257 bytes, ending mid-character at 256": "a" * 254 + "€",
    "backslash": "a\\xffb",
}

ARTIFACT_CORPUS_GOOD = {
    "ascii": "plan.md",
    "255 bytes": "a" * 255,
    "255 bytes of mixed width": "a" + "é" * 127,
    "255 bytes ending in a 3-byte character": "a" * 252 + "€",
    "composed (NFC) é": "r\u00e9sum\u00e9.txt",
    "Å composed": "\u00c5.txt",
    "CJK": "計画.md",
    "emoji": "✅ done.txt",
    "emoji with variation selector": "\u2714\ufe0f.txt",  # a Mn mark, visible, not a format char
    "Arabic letters (right-to-left, no override)": "خطة.md",
    "spaces inside": "my plan.md",
    "no-break space": "my\u00a0plan.md",
    "private use": "\ue000.txt",
    "dots inside": "x..y",
}


@pytest.mark.parametrize("value", ARTIFACT_CORPUS_BAD.values(), ids=ARTIFACT_CORPUS_BAD.keys())
def test_artifact_name_corpus_refused(value: str) -> None:
    with pytest.raises(InvalidInput, match="artifact name"):
        names.check_artifact_name(value)


@pytest.mark.parametrize("value", ARTIFACT_CORPUS_GOOD.values(), ids=ARTIFACT_CORPUS_GOOD.keys())
def test_artifact_name_corpus_accepted(value: str) -> None:
    assert names.check_artifact_name(value) == value


def test_refusals_say_why() -> None:
    with pytest.raises(InvalidInput, match=r"U\+202E"):
        names.check_artifact_name("evil\u202egpj.exe")
    with pytest.raises(InvalidInput, match="NFC"):
        names.check_artifact_name("re\u0301sume\u0301.txt")
    with pytest.raises(InvalidInput, match="255 bytes"):
        names.check_artifact_name("é" * 128)


@pytest.mark.parametrize("value", ["\u009b", "\u0085", "\u202e", "\u200b", "\ufeff", "\x7f"])
def test_step_names_refuse_the_same_characters(value: str) -> None:
    with pytest.raises(InvalidInput):
        names.check_step_name(f"code{value}")
