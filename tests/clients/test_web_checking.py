"""The DB chip's "checking" state in the browser, against the real daemon and a PostgreSQL
server that takes the connection and says nothing yet: the web header on its own (its demo
page), the console's header and its DB area say "checking", never OFF, until the first
answer, then the real state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import pytest
from playwright.async_api import Browser, BrowserContext, Locator, Page, expect

from tests.support.daemon import running_daemon
from tests.support.pgproxy import PG_HOST, PG_PORT, TcpProxy
from tests.support.rpc import RpcClient
from tests.support.sandbox import simpleaide_command

HEADER = "simpleaide-status"


def db_chip(page: Page) -> Locator:
    return page.locator(f"{HEADER} .item[data-name=db] .chip")


def db_tooltip(page: Page) -> Locator:
    return page.locator(f"{HEADER} .item[data-name=db] [role=tooltip]")


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    made = await browser.new_context(viewport={"width": 1100, "height": 700})
    try:
        yield made
    finally:
        await made.close()


async def test_the_header_and_the_db_area_say_checking_until_the_database_answers(
    isolated_env: Path, socket_path: Path, postgres: str, context: BrowserContext, tmp_path: Path
) -> None:
    async with TcpProxy((PG_HOST, PG_PORT)) as proxy:
        proxy.freeze()  # connections are taken; no byte goes through until thawed
        settings = {
            "db.DEV.url": f"postgresql://postgres@127.0.0.1:{proxy.port}/test",
            "db.timeout_seconds": 60,
            "db.probe_seconds": 3600,
            "http.listen": "127.0.0.1:0",
            "http.public_status": True,
        }
        async with (
            running_daemon(socket_path, isolated_env / "state", **settings),
            await RpcClient.connect(socket_path) as client,
        ):
            try:
                assert (await client.call("status.get"))["db"]["checking"] is True
                done = await anyio.run_process(
                    [simpleaide_command(), "--socket", str(socket_path), "open", "db", "--print"],
                    check=False,
                )
                assert done.returncode == 0, done.stderr.decode()
                console_url = done.stdout.decode().strip()
                parts = urlsplit(console_url)
                demo = await context.new_page()
                await demo.goto(f"{parts.scheme}://{parts.netloc}/static/demo.html")
                console = await context.new_page()
                await console.goto(console_url)

                for page in (demo, console):
                    await expect(db_chip(page)).to_have_text("DB …")
                    await expect(db_chip(page)).to_have_attribute("data-level", "checking")
                    await db_chip(page).hover()
                    await expect(db_tooltip(page)).to_have_text(
                        "DEV database (postgres): checking, no answer yet"
                    )
                area = console.locator("#main")
                await expect(area.get_by_text("checking (no answer yet)")).to_be_visible()
                await expect(
                    area.get_by_text("The database is being checked: its tables show here")
                ).to_be_visible()
                await expect(area.get_by_text("not connected")).to_have_count(0)
                await console.screenshot(path=tmp_path / "db-checking.png")

                proxy.thaw()
                for page in (demo, console):
                    await expect(db_chip(page)).to_have_text("DB ✅", timeout=30_000)
                    await expect(db_chip(page)).to_have_attribute("data-level", "ok")
                await expect(area.get_by_text("connected", exact=True)).to_be_visible()
            finally:
                proxy.thaw()  # a failed test: the daemon's stop need not wait for the probe
