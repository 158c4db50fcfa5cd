"""Debian's Chromium, headless, through Playwright: the one way the tests start a browser.

Without Chromium the browser tests skip with the reason, unless ``CI`` is set: then they
fail, because CI must run them (``.ci/run`` installs it)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
HOW_TO_GET_IT = (
    "install it (Debian, Ubuntu: sudo apt-get install chromium), or run `bash .ci/run`, "
    "which installs what the tests need; or set CHROMIUM to a Chromium elsewhere"
)


def missing(path: str) -> str | None:
    """Why the browser tests cannot run with the Chromium at ``path``, or ``None``."""
    if Path(path).exists():
        return None
    return f"Chromium is not at {path}: {HOW_TO_GET_IT}"


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """A headless Chromium, closed on leaving."""
    reason = missing(CHROMIUM)
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set: the web tests must run)")
        pytest.skip(reason)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            await launched.close()
