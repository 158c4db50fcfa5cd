"""The shim's icon in real Chromium: the demo page, the console and a JSON route opened in
the browser load with no failed request (browsers ask for an icon on every page, a JSON
answer included: without one, a 404 or a 401 in the console's log every time), and the icon
the pages name is an image the browser shows."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from simpleaided.transports.http import shim as shim_module
from simpleaided.transports.http.security import guarded
from tests.support.daemon import running_daemon
from tests.support.rpc import RpcClient
from tests.support.waiting import eventually

ANY_PORT = {"http.listen": "127.0.0.1:0", "http.public_status": True}
ICONS = {"/favicon.ico", "/static/favicon.ico", "/static/favicon.svg"}


@dataclass
class Served:
    """What the shim answered, path and status, in order: the browser's own requests (its
    icon) are not seen by the page's."""

    answers: list[tuple[str, int]] = field(default_factory=list)

    def around(self, app: ASGIApp) -> ASGIApp:
        async def noted(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return

            async def send_noted(message: Message) -> None:
                if message["type"] == "http.response.start":
                    self.answers.append((scope["path"], message["status"]))
                await send(message)

            await app(scope, receive, send_noted)

        return noted

    def icons_since(self, start: int) -> list[tuple[str, int]]:
        return [(path, status) for path, status in self.answers[start:] if path in ICONS]


@dataclass
class Site:
    url: str
    token: str
    served: Served


@pytest.fixture
async def site(
    isolated_env: Path, socket_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Site]:
    served = Served()
    # The shim wraps its application in the security headers (``security.guarded``) as it
    # starts serving: noted around that, the answers are seen as the browser gets them.
    monkeypatch.setattr(shim_module, "guarded", lambda app: served.around(guarded(app)))
    async with running_daemon(socket_path, isolated_env / "state", **ANY_PORT):
        async with await RpcClient.connect(socket_path) as client:
            url = (await client.call("status.get"))["api"]["url"]
            token = (await client.call("http.open"))["token"]
        yield Site(url, token, served)


async def named_icons_show(page: Page) -> list[tuple[str, int]]:
    """Each icon the page names (``<link rel=icon>``), loaded as an image: its width, 0 when
    it is no image."""
    return list(
        await page.evaluate(
            """() => Promise.all([...document.querySelectorAll("link[rel~=icon]")].map(link =>
                new Promise(done => {
                    const image = new Image();
                    image.onload = () => done([link.getAttribute("href"), image.naturalWidth]);
                    image.onerror = () => done([link.getAttribute("href"), 0]);
                    image.src = link.href;
                })))"""
        )
    )


async def visit(
    page: Page, site: Site, target: str, ready: Callable[[], Awaitable[None]] | None = None
) -> list[tuple[str, int]]:
    """Open ``target`` and wait for the browser to have asked for an icon: the icons it got."""
    start = len(site.served.answers)
    await page.goto(site.url + target)
    if ready is not None:
        await ready()
    return list(await eventually(lambda: site.served.icons_since(start), 10))


@pytest.mark.parametrize(
    ("target", "page_of_ours"),
    [
        ("/static/demo.html", True),
        ("/#token={token}&area=runs", True),  # the console
        ("/healthz", False),
        ("/api/status", False),
    ],
)
async def test_a_page_loads_with_its_icon_and_nothing_fails(
    site: Site, browser: Browser, target: str, page_of_ours: bool
) -> None:
    # A new context each time: nothing cached (the browser keeps icons it got).
    context = await browser.new_context()
    try:
        page = await context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        ready = None
        if page_of_ours:

            async def ready() -> None:
                await expect(page.locator("simpleaide-status")).to_have_attribute("state", "ok")

        icons = await visit(page, site, target.format(token=site.token), ready)
        assert all(status == 200 for _, status in icons), icons
        if page_of_ours:
            shown = await named_icons_show(page)
            assert shown and all(width > 0 for _, width in shown), shown
        failed = [(path, status) for path, status in site.served.answers if status >= 400]
        assert failed == []
        assert errors == []
    finally:
        await context.close()
