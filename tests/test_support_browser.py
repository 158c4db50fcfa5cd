"""What a machine without Chromium is told when the browser tests cannot run."""

from __future__ import annotations

from pathlib import Path

from tests.support.browser import missing


def test_a_missing_chromium_says_how_to_get_it(tmp_path: Path) -> None:
    reason = missing(str(tmp_path / "chromium"))
    assert reason is not None
    assert reason.startswith(f"Chromium is not at {tmp_path / 'chromium'}: ")
    assert "apt-get install chromium" in reason
    assert "bash .ci/run" in reason


def test_a_present_chromium_is_not_missing(tmp_path: Path) -> None:
    (tmp_path / "chromium").touch()
    assert missing(str(tmp_path / "chromium")) is None
