"""Where things are: the repository's root and the folder that keeps browser screenshots."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts"  # ignored by git: screenshots to look at by hand
