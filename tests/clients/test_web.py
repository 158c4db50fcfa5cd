"""The web header, ``<simpleaide-status>`` (clients/web/), on its own (its demo page,
``/static/demo.html``) in headless Chromium against the real daemon and its HTTP shim: chips,
tooltips, navigation, live updates, the unreachable state, the token attribute. Its "feed"
mode, fed by the console's WebSocket, is tested with the console (test_console.py)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import pytest
from playwright.async_api import Browser, Page, Response, expect

from simpleaided.app.daemon import Daemon
from tests.support.daemon import running_daemon
from tests.support.paths import ARTIFACTS
from tests.support.rpc import RpcClient
from tests.support.runs import new_run

# The element on its own reads the status routes: open with http.public_status (for status
# bars), or with its token attribute (test_the_token_attribute_...).
ANY_PORT = {"http.listen": "127.0.0.1:0", "http.public_status": True}
DEMO = "/static/demo.html"

# Playwright's CSS locators pierce the element's (open) shadow root.
HEADER = "simpleaide-status"
CHIPS = f"{HEADER} .chip"


def chip(page: Page, name: str) -> Any:
    return page.locator(f"{HEADER} .item[data-name={name}] .chip")


def tooltip(page: Page, name: str) -> Any:
    return page.locator(f"{HEADER} .item[data-name={name}] [role=tooltip]")


@dataclass
class Web:
    daemon: Daemon
    client: RpcClient
    url: str  # the shim's base URL, from the status document


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 960, "height": 320})
    try:
        yield await context.new_page()
    finally:
        await context.close()


@pytest.fixture
async def web(isolated_env: Path, socket_path: Path) -> AsyncIterator[Web]:
    """The daemon with its HTTP shim on a free port, and a socket client."""
    async with running_daemon(socket_path, isolated_env / "state", **ANY_PORT) as daemon:
        async with await RpcClient.connect(socket_path) as client:
            url = (await client.call("status.get"))["api"]["url"]
            yield Web(daemon, client, url)


async def open_header(page: Page, url: str, query: str = "") -> None:
    """Open the demo page and wait for the chips."""
    await page.goto(f"{url}{DEMO}{query}")
    await expect(page.locator(HEADER)).to_have_attribute("state", "ok")


async def test_the_five_chips_show_the_daemons_words_in_order(web: Web, page: Page) -> None:
    doc = await web.client.call("status.get")
    await open_header(page, web.url)
    await expect(page).to_have_title("SimpleAide status")
    chips = page.locator(CHIPS)
    await expect(chips).to_have_text([c["text"] for c in doc["chips"]])
    assert [c["name"] for c in doc["chips"]] == ["env", "vault", "db", "llm", "runs"]
    shown = await chips.evaluate_all(
        "chips => chips.map(c => [c.localName, c.dataset.level, c.getAttribute('href')])"
    )
    assert shown == [["a", c["level"], c["href"]] for c in doc["chips"]]
    # The element keeps what it was given, for scripts and tests.
    last = await page.locator(HEADER).evaluate("el => el.lastDocument")
    assert last["chips"] == doc["chips"]
    await expect(page.locator(HEADER)).to_have_attribute("transport", "stream")
    await expect(page.locator(f"{HEADER} .item[data-name=warnings]")).to_have_count(0)


async def test_warnings_show_as_one_marker_with_them_in_its_tooltip(
    isolated_env: Path, socket_path: Path, page: Page
) -> None:
    missing = isolated_env / "gone"
    settings = {**ANY_PORT, "workspaces": [str(missing)]}
    async with (
        running_daemon(socket_path, isolated_env / "state", **settings),
        await RpcClient.connect(socket_path) as client,
    ):
        doc = await client.call("status.get")
        assert doc["warnings"] and str(missing) in doc["warnings"][0]
        await open_header(page, doc["api"]["url"])
        marker = chip(page, "warnings")
        await expect(marker).to_have_text(f"⚠ {len(doc['warnings'])}")
        await expect(marker).to_have_attribute("data-level", "warn")
        await marker.hover()
        await expect(tooltip(page, "warnings")).to_have_text("\n".join(doc["warnings"]))


async def test_tooltips_show_on_hover_and_keyboard_focus(web: Web, page: Page) -> None:
    doc = await web.client.call("status.get")
    words = {c["name"]: c["tooltip"] for c in doc["chips"]}
    await open_header(page, web.url)
    for name in ("runs", "env"):
        await expect(tooltip(page, name)).to_be_hidden()
        await chip(page, name).hover()
        await expect(tooltip(page, name)).to_be_visible()
        await expect(tooltip(page, name)).to_have_text(words[name])
        await page.mouse.move(900, 300)  # away from the header
        await expect(tooltip(page, name)).to_be_hidden()
    # One tooltip, ours: no native title to double it; it describes the link for screen readers.
    runs = chip(page, "runs")
    assert await runs.get_attribute("title") is None
    assert await runs.get_attribute("aria-describedby") == "tip-runs"
    # Keyboard: focus shows it, Tab moves it to the next chip, Escape hides it.
    await chip(page, "db").focus()
    await expect(tooltip(page, "db")).to_be_visible()
    await expect(tooltip(page, "db")).to_have_text(words["db"])
    await page.keyboard.press("Tab")
    await expect(chip(page, "llm")).to_be_focused()
    await expect(tooltip(page, "llm")).to_be_visible()
    await expect(tooltip(page, "db")).to_be_hidden()
    await page.keyboard.press("Escape")
    await expect(tooltip(page, "llm")).to_be_hidden()
    await page.keyboard.press("Tab")  # dismissed until focus moves on
    await expect(tooltip(page, "runs")).to_be_visible()
    await page.keyboard.press("Shift+Tab")
    await expect(tooltip(page, "llm")).to_be_visible()


async def test_a_chip_navigates_to_its_area(web: Web, page: Page) -> None:
    await open_header(page, web.url)
    area = page.locator("#area")
    await expect(area).to_have_text("none")
    await chip(page, "runs").click()
    await expect(page).to_have_url(re.compile(r"#/runs$"))
    await expect(area).to_have_text("#/runs")
    await chip(page, "vault").click()
    await expect(area).to_have_text("#/vault")
    # href-runs overrides the chip's own link; a script link is refused (the default stays).
    header = page.locator(HEADER)
    await header.evaluate("el => el.setAttribute('href-runs', '#/pipelines')")
    await expect(chip(page, "runs")).to_have_attribute("href", "#/pipelines")
    await chip(page, "runs").click()
    await expect(area).to_have_text("#/pipelines")
    await header.evaluate("el => el.setAttribute('href-runs', 'javascript:alert(1)')")
    await expect(chip(page, "runs")).to_have_attribute("href", "#/runs")


async def record_arrival(page: Page) -> None:
    """Note, in the page's own clock, when the element first gets a document with an
    active run (measured there, the delay leaves out this process and Playwright)."""
    await page.evaluate(
        """() => document.querySelector("simpleaide-status").addEventListener(
            "statuschange", (e) => {
                if (e.detail.document?.runs?.active === 1 && window.__arrived === undefined)
                    window.__arrived = performance.now();
            })"""
    )


async def arrival_after_now(page: Page) -> Callable[[], Awaitable[float]]:
    """Mark the page's time now (the change is already made); the returned function gives
    the seconds from that mark to the arrival (negative: it came before the mark)."""
    mark = await page.evaluate("performance.now()")

    async def delay() -> float:
        arrived = await page.evaluate("window.__arrived")
        assert arrived is not None
        return float(arrived - mark) / 1000

    return delay


async def test_polling_shows_a_change_within_one_interval(
    web: Web, page: Page, workspace: Path
) -> None:
    statuses: list[int] = []
    unchanged = anyio.Event()

    def answered(response: Response) -> None:
        if urlsplit(response.url).path == "/api/status":
            statuses.append(response.status)
            if response.status == 304:
                unchanged.set()

    page.on("response", answered)
    await open_header(page, web.url, "?interval=500&stream=off")
    await expect(page.locator(HEADER)).to_have_attribute("transport", "poll")
    await expect(chip(page, "runs")).to_have_text("Run –")
    with anyio.fail_after(3):
        await unchanged.wait()  # the ETag spares the unchanged polls
    await record_arrival(page)
    await new_run(web.client, workspace, "plan", start=True)
    delay = await arrival_after_now(page)
    await expect(chip(page, "runs")).to_have_text("Run ⏳ 1", timeout=3000)
    assert await delay() < 0.5 + 0.3  # one interval, and the fetch
    assert statuses[0] == 200 and statuses.count(200) >= 2  # the change came whole


async def test_the_stream_shows_a_change_at_once(web: Web, page: Page, workspace: Path) -> None:
    polls: list[str] = []
    page.on(
        "request", lambda r: polls.append(r.url) if urlsplit(r.url).path == "/api/status" else None
    )
    await open_header(page, web.url, "?interval=5000")
    await expect(page.locator(HEADER)).to_have_attribute("transport", "stream")
    await record_arrival(page)
    await new_run(web.client, workspace, "plan", start=True)
    delay = await arrival_after_now(page)
    await expect(chip(page, "runs")).to_have_text("Run ⏳ 1", timeout=3000)
    assert await delay() < 1.0  # well under the 5 s interval
    assert polls == []  # it all came by the stream
    await expect(page.locator(HEADER)).to_have_attribute("transport", "stream")


async def test_unreachable_shows_and_clears_by_itself(
    isolated_env: Path, socket_path: Path, page: Page
) -> None:
    state_dir = isolated_env / "state"
    header = page.locator(HEADER)
    async with (
        running_daemon(socket_path, state_dir, **ANY_PORT),
        await RpcClient.connect(socket_path) as client,
    ):
        url = (await client.call("status.get"))["api"]["url"]
        await open_header(page, url, "?interval=500")
        await expect(header).to_have_attribute("transport", "stream")
    # The daemon has stopped: the stream ends, the polls it falls back to fail.
    await expect(header).to_have_attribute("state", "unreachable", timeout=5000)
    await expect(page.locator(CHIPS)).to_have_text(["daemon unreachable"])
    await expect(chip(page, "unreachable")).to_have_attribute("data-level", "bad")
    words = tooltip(page, "unreachable")
    await expect(words).to_contain_text(f"{url}/api/status")
    await expect(words).to_contain_text("Retrying every 0.5 s")
    ARTIFACTS.mkdir(exist_ok=True)
    await header.screenshot(path=ARTIFACTS / "web-header-unreachable.png")
    port = urlsplit(url).port
    same_port = {**ANY_PORT, "http.listen": f"127.0.0.1:{port}"}
    async with running_daemon(socket_path, state_dir, **same_port):
        await expect(header).to_have_attribute("state", "ok", timeout=5000)
        await expect(page.locator(CHIPS)).to_have_count(5)
        await expect(chip(page, "env")).to_have_text("DEV 🟢")
        await expect(header).to_have_attribute("transport", "stream", timeout=5000)


async def test_a_screenshot_of_the_header(web: Web, page: Page, workspace: Path) -> None:
    await new_run(web.client, workspace, "plan", start=True)
    await open_header(page, web.url)
    await expect(chip(page, "runs")).to_have_text("Run ⏳ 1")
    ARTIFACTS.mkdir(exist_ok=True)
    await page.locator("header").screenshot(path=ARTIFACTS / "web-header.png")
    await chip(page, "runs").hover()
    await expect(tooltip(page, "runs")).to_be_visible()
    await page.screenshot(
        path=ARTIFACTS / "web-header-tooltip.png", clip={"x": 0, "y": 0, "width": 960, "height": 90}
    )
    assert (ARTIFACTS / "web-header.png").stat().st_size > 1000


async def test_the_token_attribute_reads_the_status_without_public_status(
    isolated_env: Path, socket_path: Path, page: Page
) -> None:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    closed = {"http.listen": "127.0.0.1:0"}  # http.public_status off: the token is needed
    async with (
        running_daemon(socket_path, isolated_env / "state", **closed),
        await RpcClient.connect(socket_path) as client,
    ):
        url = (await client.call("status.get"))["api"]["url"]
        token = (await client.call("http.open"))["token"]  # what the shim accepts
        header = page.locator(HEADER)
        # Without it: refused, and said so.
        await page.goto(f"{url}{DEMO}?interval=500")
        await expect(header).to_have_attribute("state", "unreachable")
        await expect(tooltip(page, "unreachable")).to_contain_text("HTTP 401")
        assert errors and all("401" in e for e in errors)  # Chromium logs each refused fetch
        errors.clear()
        # With it (in the fragment, never sent): polled with Authorization (an EventSource
        # cannot send it); the key leaves the address at once.
        await page.goto(f"{url}{DEMO}?interval=500#token={token}")
        await expect(page).to_have_url(f"{url}{DEMO}?interval=500")
        await expect(header).to_have_attribute("state", "ok")
        await expect(header).to_have_attribute("transport", "poll")
        await expect(page.locator(CHIPS)).to_have_count(5)
        assert errors == []
