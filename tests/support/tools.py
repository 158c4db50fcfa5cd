"""Programs some tests need beside Python: skipped with how to get them when run by hand,
a failure when ``CI`` is set (``.ci/run`` installs them)."""

from __future__ import annotations

import os
import shutil

import pytest


def require(program: str, package: str | None = None) -> str:
    """The path of ``program``; without it, a skip saying how to install it (a failure on CI)."""
    found = shutil.which(program)
    if found:
        return found
    reason = (
        f"{program} is not installed: install it (Debian, Ubuntu: sudo apt-get install "
        f"{package or program}), or run `bash .ci/run`, which installs what the tests need"
    )
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: these tests must run)")
    pytest.skip(reason)
