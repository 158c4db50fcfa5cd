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


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """A headless Chromium, closed on leaving."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"Chromium is not at {CHROMIUM} (CI is set: the web tests must run)")
        pytest.skip(f"Chromium is not at {CHROMIUM} (set CHROMIUM to its path)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            await launched.close()
