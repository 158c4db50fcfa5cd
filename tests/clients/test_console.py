"""The web console (clients/web/index.html and clients/web/console/) in headless Chromium,
against the real daemon, its HTTP shim and its ``/rpc`` WebSocket: the key's way in, every
area, live updates, actions that change the store, the unreachable state, and what the pages
load (their own files only, no console error)."""

from __future__ import annotations

import base64
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    expect,
)

from simpleaided.app.daemon import Daemon
from tests.support.daemon import running_daemon
from tests.support.llm_servers import NOT_FOUND, OLLAMA_TAGS, LlmServer, Route
from tests.support.paths import ARTIFACTS
from tests.support.rpc import RpcClient
from tests.support.runs import new_run, runs_dir
from tests.support.sandbox import simpleaide_command
from tests.support.waiting import eventually

PASS = "correct horse battery staple"
FAST_KDF = {"vault.kdf_memory_kib": 8192, "vault.kdf_iterations": 1, "vault.kdf_lanes": 1}
AREAS = ["runs", "vault", "db", "llm", "shell", "env"]
HEADER = "simpleaide-status"
# What Chromium logs, as errors, when a WebSocket or a fetch cannot connect: expected while
# the daemon is stopped on purpose, and nowhere else.
CONNECTION_FAILED = re.compile(
    r"WebSocket connection to '.*' failed|Failed to load resource: net::ERR_CONNECTION_REFUSED"
)


def settings(short_tmp: Path, port: int = 0, **more: Any) -> dict[str, Any]:
    """A daemon with its shim on a free loopback port and a quick vault."""
    return {
        "http.listen": f"127.0.0.1:{port}",
        "vault.file": str(short_tmp / "data" / "vault.json"),
        "vault.failed_unlock_delay_seconds": 2,
        **FAST_KDF,
        **more,
    }


@dataclass
class Console:
    """A daemon, a socket client, and the console's URL with its key."""

    daemon: Daemon
    client: RpcClient
    url: str  # http://127.0.0.1:PORT/#token=…&area=runs
    base: str  # http://127.0.0.1:PORT
    token: str
    socket: Path


@dataclass
class Watched:
    """What a page logged and loaded."""

    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    allowed: re.Pattern[str] | None = None

    def clean(self) -> None:
        unexpected = [e for e in self.errors if not (self.allowed and self.allowed.search(e))]
        assert unexpected == [], "console errors:\n" + "\n".join(unexpected)


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    made = await browser.new_context(viewport={"width": 1024, "height": 720}, accept_downloads=True)
    try:
        yield made
    finally:
        await made.close()


@pytest.fixture
def watched() -> Iterator[Watched]:
    found = Watched()
    yield found
    found.clean()


@pytest.fixture
async def page(context: BrowserContext, watched: Watched) -> Page:
    opened = await context.new_page()
    watch(opened, watched)
    return opened


def watch(page: Page, into: Watched) -> None:
    """Note the page's console errors (CSP violations among them), uncaught exceptions and
    every request it makes."""

    def logged(message: ConsoleMessage) -> None:
        if message.type == "error":
            into.errors.append(message.text)

    page.on("console", logged)
    page.on("pageerror", lambda error: into.errors.append(f"uncaught: {error}"))
    page.on("request", lambda request: into.requests.append(request.url))


async def console_url(socket_path: Path, area: str = "runs") -> str:
    """The URL ``simpleaide open AREA --print`` prints (the CLI, against this daemon)."""
    done = await anyio.run_process(
        [simpleaide_command(), "--socket", str(socket_path), "open", area, "--print"],
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode().strip()


@contextlib.asynccontextmanager
async def console_daemon(
    isolated_env: Path, socket_path: Path, **more: Any
) -> AsyncIterator[Console]:
    async with running_daemon(
        socket_path, isolated_env / "state", **settings(isolated_env, **more)
    ) as daemon:
        async with await RpcClient.connect(socket_path) as client:
            url = await console_url(socket_path)
            parts = urlsplit(url)
            token = dict(p.split("=", 1) for p in parts.fragment.split("&"))["token"]
            base = f"{parts.scheme}://{parts.netloc}"
            yield Console(daemon, client, url, base, token, socket_path)


@pytest.fixture
async def console(isolated_env: Path, socket_path: Path) -> AsyncIterator[Console]:
    async with console_daemon(isolated_env, socket_path) as made:
        yield made


async def open_console(page: Page, console: Console, route: str = "#/runs") -> None:
    """Open the console with its key, then go to ``route``; wait for the header's chips."""
    await page.goto(console.url)
    await expect(page).to_have_url(f"{console.base}/#/runs")
    if route != "#/runs":
        await page.goto(f"{console.base}/{route}")
    await expect(page.locator(HEADER)).to_have_attribute("state", "ok")


def row(page: Page, run_id: str) -> Any:
    return page.locator(f".run-row[data-id='{run_id}']")


async def shoot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=ARTIFACTS / f"console-{name}.png", full_page=True)


# -- the key --------------------------------------------------------------------------------


async def test_the_open_url_lands_on_the_runs_with_the_key_gone_from_the_address(
    console: Console, page: Page
) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/#token=[0-9a-f]{64}&area=runs", console.url)
    before = "data:text/html,<title>before</title><link rel=icon href=data:,>"
    await page.goto(before)  # a page without a key first
    await page.goto(console.url)
    await expect(page).to_have_url(f"{console.base}/#/runs")
    assert console.token not in page.url
    assert await page.evaluate("localStorage.getItem('simpleaide.token')") == console.token
    await expect(page.locator("h1")).to_have_text("Runs")
    await expect(page.locator(".notice-empty")).to_contain_text("No runs")
    await expect(page.locator(f"{HEADER} .chip")).to_have_count(5)
    await expect(page.locator(HEADER)).to_have_attribute("transport", "feed")
    await expect(page.locator("nav.areas a[aria-current=page]")).to_have_text("Runs")
    # The history holds no address with the key either: back to the page before (one
    # without a key), then forward again.
    await page.go_back()
    await expect(page).to_have_url(before)
    await page.go_forward()
    await expect(page).to_have_url(f"{console.base}/#/runs")
    assert console.token not in page.url
    # Another area by its own URL (the CLI's `open vault`).
    await page.goto(await console_url(console.socket, "vault"))
    await expect(page).to_have_url(f"{console.base}/#/vault")
    await expect(page.locator("h1")).to_have_text("Vault")


async def test_without_a_key_the_page_says_how_to_get_one(
    console: Console, context: BrowserContext
) -> None:
    page = await context.new_page()
    seen = Watched()
    watch(page, seen)
    await page.goto(f"{console.base}/#/runs")
    words = page.locator(".keyless")
    await expect(words).to_contain_text("Run simpleaide open in a terminal")
    await expect(page.locator(HEADER)).to_be_hidden()
    seen.clean()
    # A wrong key: the WebSocket is refused (Chromium logs that), the page says the same.
    seen.allowed = re.compile(r"WebSocket connection to '.*' failed")
    # Given in the address of the page already open (a new key pasted in): taken at once.
    await page.goto(f"{console.base}/#token={'0' * 64}&area=vault")
    await expect(words).to_contain_text("refused the key")
    await expect(words).to_contain_text("simpleaide open")
    # Kept (the browser cannot tell why a handshake failed): a new key in the address replaces it.
    assert await page.evaluate("localStorage.getItem('simpleaide.token')") == "0" * 64
    await shoot(page, "no-key")
    seen.clean()


async def test_a_rotated_token_sends_the_page_to_how_to_get_a_new_one(
    console: Console, page: Page, watched: Watched
) -> None:
    watched.allowed = re.compile(r"WebSocket connection to '.*' failed")  # the old key, refused
    await open_console(page, console)
    await console.client.call("http.rotateToken")
    await expect(page.locator(".keyless")).to_contain_text("refused the key")
    # The old key stays (a failed handshake may have another cause) and is tried again, slowly.
    assert await page.evaluate("localStorage.getItem('simpleaide.token')") == console.token
    # The new URL works again, in the same page, and replaces the kept key.
    new_url = await console_url(console.socket)
    await page.goto(new_url)
    await expect(page.locator(HEADER)).to_have_attribute("state", "ok")
    await expect(page.locator("h1")).to_have_text("Runs")
    new_token = urlsplit(new_url).fragment.split("&")[0].removeprefix("token=")
    assert await page.evaluate("localStorage.getItem('simpleaide.token')") == new_token


async def test_a_refused_handshake_keeps_the_key_and_tries_again_slowly(
    console: Console, page: Page, watched: Watched
) -> None:
    """A failed handshake while /healthz answers may not be the key's fault (the browser
    cannot see why): the key is kept, the page says how to get one, and tries again every
    5 s, not in a burst."""
    watched.allowed = re.compile(r"WebSocket connection to '.*' failed")
    handshakes: list[float] = []
    page.on("websocket", lambda ws: handshakes.append(time.monotonic()))
    await open_console(page, console)
    await console.client.call("http.rotateToken")  # the open WebSocket closes with 1008
    await expect(page.locator(".keyless")).to_contain_text("refused the key", timeout=5000)
    assert await page.evaluate("localStorage.getItem('simpleaide.token')") == console.token
    await eventually(lambda: len(handshakes) >= 3, 15)
    gaps = [b - a for a, b in zip(handshakes[1:], handshakes[2:], strict=False)]
    assert gaps and all(gap > 4 for gap in gaps), gaps
    await expect(page.locator(".keyless")).to_be_visible()


# -- runs -----------------------------------------------------------------------------------


async def test_a_run_made_through_the_socket_appears_and_changes_live(
    console: Console, page: Page, workspace: Path
) -> None:
    await open_console(page, console)
    await expect(page.locator(".notice-empty")).to_be_visible()
    client = console.client
    # When each row appears, by the page's clock (the same wall clock as the test's): the
    # latency measured is the page's, not the test's round trips to the browser.
    await page.evaluate(
        """() => {
            window.rowsSeen = {};
            new MutationObserver(() => {
                for (const el of document.querySelectorAll(".run-row[data-id]")) {
                    window.rowsSeen[el.dataset.id] ??= Date.now();
                }
            }).observe(document.body, { childList: true, subtree: true });
        }"""
    )
    run = await client.call("runs.create", workspace=str(workspace), title="nightly build")
    created = time.time() * 1000  # runs.create's reply has arrived
    await expect(row(page, run["id"])).to_be_visible()
    appeared = await page.evaluate("(id) => window.rowsSeen[id]", run["id"])
    assert appeared - created < 1000, f"appeared {appeared - created:.0f} ms after the reply"
    await expect(row(page, run["id"]).locator(".badge")).to_have_text("pending")
    await client.call("steps.create", runId=run["id"], name="fetch", start=True)
    await expect(row(page, run["id"]).locator(".badge")).to_have_text("running", timeout=1000)
    await expect(row(page, run["id"])).to_contain_text("1 step")
    await client.call("steps.complete", runId=run["id"], step=1)
    await client.call("runs.complete", runId=run["id"])
    await expect(row(page, run["id"]).locator(".badge")).to_have_text("completed", timeout=1000)
    # Newest first: a later run goes on top.
    later = await new_run(client, workspace)
    await expect(page.locator(".run-row").first).to_have_attribute("data-id", later["id"])
    # Deleted elsewhere: gone from the list.
    await client.call("runs.delete", runId=later["id"])
    await expect(row(page, later["id"])).to_have_count(0)
    await shoot(page, "runs")


async def test_the_list_filters_by_status_and_loads_older_runs_as_it_scrolls(
    console: Console, page: Page, workspace: Path
) -> None:
    ids = [(await new_run(console.client, workspace))["id"] for _ in range(60)]
    await console.client.call("runs.cancel", runId=ids[0])
    await open_console(page, console)
    rows = page.locator(".run-row")
    await expect(rows).to_have_count(50)  # one page
    await expect(rows.first).to_have_attribute("data-id", ids[-1])
    await rows.last.scroll_into_view_if_needed()  # the next page comes as the end shows
    await expect(rows).to_have_count(60)
    await expect(rows.last).to_have_attribute("data-id", ids[0])
    await expect(page.locator("button.more")).to_be_hidden()
    await page.select_option("#status-filter", "cancelled")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_have_attribute("data-id", ids[0])
    await page.select_option("#status-filter", "failed")
    await expect(page.locator(".notice-empty")).to_contain_text("No runs with status “failed”")
    # The workspace picker lists the served workspace.
    await expect(page.locator("#workspace option")).to_contain_text(
        [
            "All workspaces",
            str(workspace),
        ]
    )


async def test_a_runs_page_shows_its_steps_and_artifacts(
    console: Console, page: Page, workspace: Path
) -> None:
    client = console.client
    run = await new_run(client, workspace, "build", "test", start=True, title="with files")
    rid = run["id"]
    long_text = "".join(f"line {n}: {'x' * 60}\n" for n in range(2000))  # ~140 KB
    binary = bytes(range(256)) * 3
    await client.call("artifacts.put", runId=rid, step=1, name="log.txt", text=long_text)
    put = {"runId": rid, "step": 1, "name": "blob.bin"}
    await client.call("artifacts.put", **put, base64=base64.b64encode(binary).decode())
    await client.call(
        "steps.fail", runId=rid, step=1, errorMessage="compiler exploded", failRun=False
    )
    await page.goto(console.url)
    await page.goto(f"{console.base}/#/runs/{rid}")
    await page.reload()  # a deep link survives a reload
    await expect(page.locator("h1")).to_have_text("Run with files")
    steps = page.locator(".step")
    await expect(steps).to_have_count(2)
    first = steps.nth(0)
    await expect(first.locator(".step-name")).to_have_text("build")
    await expect(first.locator(".badge")).to_have_text("failed")
    await expect(first.locator(".step-error")).to_have_text("compiler exploded")
    await expect(first.locator(".step-duration")).to_contain_text("took")
    await expect(steps.nth(1).locator(".badge")).to_have_text("pending")
    await expect(steps.nth(1)).to_contain_text("No artifacts.")
    # Text: shown up to the cap, whole as a download.
    log = first.locator(".artifact[data-name='log.txt']")
    await log.locator("button.show").click()
    await expect(log.locator(".artifact-text")).to_contain_text("line 0: xxx")
    await expect(log.locator(".cut")).to_contain_text("The first 64 KiB of 140 KiB")
    shown = await log.locator(".artifact-text").inner_text()
    assert len(shown.encode()) <= 64 * 1024 and long_text.startswith(shown.rstrip("\n"))
    async with page.expect_download() as caught:
        await log.locator("button.download").click()
    download = await caught.value
    assert download.suggested_filename == "log.txt"
    assert Path(await download.path()).read_text() == long_text
    # Binary: not shown, downloadable whole.
    blob = first.locator(".artifact[data-name='blob.bin']")
    await blob.locator("button.show").click()
    await expect(blob.locator(".artifact-body")).to_contain_text("Binary content")
    async with page.expect_download() as caught:
        await blob.locator("button.download").click()
    assert Path(await (await caught.value).path()).read_bytes() == binary
    # It follows the run: an artifact saved now shows without a reload.
    await client.call("artifacts.put", runId=rid, step=1, name="late.txt", text="late")
    await expect(first.locator(".artifact[data-name='late.txt']")).to_be_visible(timeout=2000)
    await shoot(page, "run")


async def test_cancelling_from_the_page_changes_the_run_on_disk(
    console: Console, page: Page, workspace: Path
) -> None:
    run = await new_run(console.client, workspace, "work", start=True)
    metadata = runs_dir(workspace) / run["id"] / "metadata.json"
    await open_console(page, console)
    await row(page, run["id"]).locator("a").click()
    await expect(page).to_have_url(f"{console.base}/#/runs/{run['id']}")
    await page.locator("button.act-cancel").click()
    dialog = page.locator("dialog.confirm")
    await expect(dialog).to_contain_text(f"Cancel run {run['id']}?")
    await dialog.locator("button.cancel").click()  # "Keep it": nothing happens
    await expect(dialog).to_have_count(0)
    assert json.loads(metadata.read_text())["status"] == "running"
    await page.locator("button.act-cancel").click()
    await page.locator("dialog.confirm button[type=submit]").click()
    await expect(page.locator(".run-body")).to_have_attribute("data-status", "cancelled")
    await expect(page.locator("#run-title")).to_be_focused()  # its button went: not lost

    def cancelled_on_disk() -> bool:
        return bool(json.loads(metadata.read_text())["status"] == "cancelled")

    await eventually(cancelled_on_disk, 5)
    # Deleting asks too, then the files are gone.
    await page.locator("button.act-delete").click()
    await page.locator("dialog.confirm button[type=submit]").click()
    await expect(page.locator(".run-body")).to_contain_text("This run was deleted.")
    assert not metadata.parent.exists()


# -- vault, LLM, the others -----------------------------------------------------------------


async def vault_state(socket_path: Path) -> str:
    done = await anyio.run_process(
        [simpleaide_command(), "--socket", str(socket_path), "vault", "status", "--json"]
    )
    return str(json.loads(done.stdout)["state"])


async def test_the_vault_unlocks_and_locks_from_the_page(console: Console, page: Page) -> None:
    await console.client.call("vault.init", passphrase=PASS)
    await console.client.call("vault.set", name="API_KEY", value="s3cr3t-value")
    await console.client.call("vault.lock")
    await open_console(page, console, "#/vault")
    body = page.locator(".vault-body")
    await expect(body).to_have_attribute("data-state", "locked")
    # A wrong passphrase: said so, and the slow-down shown as such.
    await page.fill("#passphrase", "not the passphrase")
    await page.press("#passphrase", "Enter")
    await expect(body.locator(".notice-error")).to_have_text("Wrong passphrase.")
    await expect(page.locator(".slowdown")).to_contain_text("Slowed down after a wrong passphrase")
    await expect(page.locator("form.unlock button")).to_be_disabled()
    await shoot(page, "vault-slowed")
    await expect(page.locator(".slowdown")).to_be_hidden(timeout=5000)
    await page.fill("#passphrase", PASS)
    await page.locator("form.unlock button").click()
    await expect(body).to_have_attribute("data-state", "unlocked")
    assert await vault_state(console.socket) == "unlocked"
    await expect(page.locator(".secret-names li")).to_have_text(["API_KEY"])
    await expect(page.locator(".countdown")).to_contain_text("in ")
    assert "s3cr3t-value" not in await page.content()
    await shoot(page, "vault")
    await page.locator("button.lock").click()
    await expect(body).to_have_attribute("data-state", "locked")
    assert await vault_state(console.socket) == "locked"
    # Unlocked elsewhere (the socket): the page follows through the status document.
    await console.client.call("vault.unlock", passphrase=PASS)
    await expect(body).to_have_attribute("data-state", "unlocked")


async def test_the_llm_area_shows_each_backend_and_probes_on_demand(
    isolated_env: Path, socket_path: Path, page: Page
) -> None:
    with LlmServer({"/api/tags": NOT_FOUND}) as server:
        backends = [{"name": "local", "kind": "ollama", "url": server.url}]
        more = {"llm.backends": backends, "llm.probe_seconds": 3600}
        async with console_daemon(isolated_env, socket_path, **more) as console:
            await open_console(page, console, "#/llm")
            card = page.locator(".backend[data-name=local]")
            await expect(card).to_have_attribute("data-state", "offline")
            await expect(card.locator(".url")).to_have_text(server.url)
            await expect(card.locator(".backend-error")).not_to_be_empty()
            server.routes["/api/tags"] = Route(body=OLLAMA_TAGS)
            await page.locator("button.probe").click()
            await expect(card).to_have_attribute("data-state", "online")
            await expect(card.locator(".models")).to_have_text("llama3:latest, qwen2.5-coder:7b")
            await expect(card).to_contain_text("ms")
            await expect(page.locator(".probe-state")).to_contain_text("Probed at")
            await shoot(page, "llm")
            await page.close()  # before the daemon stops


async def test_probe_now_stays_disabled_until_the_probe_answers(
    isolated_env: Path, socket_path: Path, page: Page
) -> None:
    """A status update while a probe runs (one backend answered, the other not yet) leaves
    "Probe now" disabled until llm.probe's answer."""
    with (
        LlmServer({"/api/tags": NOT_FOUND}) as fast,
        LlmServer({"/api/tags": Route(body=OLLAMA_TAGS, delay=2.5)}) as slow,
    ):
        backends = [
            {"name": "fast", "kind": "ollama", "url": fast.url},
            {"name": "slow", "kind": "ollama", "url": slow.url},
        ]
        more = {"llm.backends": backends, "llm.probe_seconds": 3600}
        async with console_daemon(isolated_env, socket_path, **more) as console:
            await open_console(page, console, "#/llm")
            await expect(page.locator(".backend[data-name=slow]")).to_have_attribute(
                "data-state", "online", timeout=10_000
            )
            fast.routes["/api/tags"] = Route(body=OLLAMA_TAGS)
            probe = page.locator("button.probe")
            await expect(probe).to_be_enabled()
            # Every state the button and the probe's words go through, as the page shows them.
            await page.evaluate(
                """() => {
                    const button = document.querySelector("button.probe");
                    const words = document.querySelector(".probe-state");
                    window.probeStates = [];
                    new MutationObserver(() => {
                        const state = button.disabled ? "disabled" : "enabled";
                        const now = `${state}: ${words.textContent}`;
                        if (window.probeStates.at(-1) !== now) window.probeStates.push(now);
                    }).observe(document.body, {
                        subtree: true, childList: true, attributes: true, characterData: true,
                    });
                }"""
            )
            await probe.click()
            # The fast one's result comes through status.changed while the slow one runs.
            await expect(page.locator(".backend[data-name=fast]")).to_have_attribute(
                "data-state", "online"
            )
            await expect(probe).to_be_disabled()
            await expect(page.locator(".probe-state")).to_contain_text("Probed at", timeout=10_000)
            await expect(probe).to_be_enabled()
            # Enabled again only with the probe's answer, never before it.
            states = await page.evaluate("window.probeStates")
            enabled = [n for n, state in enumerate(states) if state.startswith("enabled")]
            assert enabled and "Probed at" in states[enabled[0]], states
            assert any("Probing" in state for state in states[: enabled[0]]), states
            await page.close()  # before the daemon stops


async def test_the_env_warnings_follow_the_status_document(console: Console, page: Page) -> None:
    await open_console(page, console, "#/env")
    env = page.locator(".env-body")
    await expect(env).to_contain_text("No warnings.")
    console.daemon.warnings.set("test", "a warning raised after the page opened")
    console.daemon.events.section_changed()
    await expect(env.locator(".warnings li")).to_have_text(
        ["a warning raised after the page opened"]
    )
    console.daemon.warnings.clear("test")
    console.daemon.events.section_changed()
    await expect(env).to_contain_text("No warnings.")


async def test_every_area_renders_with_the_pages_own_files_only(
    console: Console, context: BrowserContext, page: Page, watched: Watched, workspace: Path
) -> None:
    run = await new_run(console.client, workspace, "one", start=True, title="screenshot")
    await open_console(page, console)
    routes = [f"#/{area}" for area in AREAS] + [f"#/runs/{run['id']}"]
    heads = {
        "#/runs": "Runs",
        "#/vault": "Vault",
        "#/db": "Database",
        "#/llm": "LLM backends",
        "#/shell": "Shell",
        "#/env": "Environment",
    }
    for scheme in ("light", "dark"):
        await page.emulate_media(color_scheme=scheme)
        for width in (1024, 360):
            await page.set_viewport_size({"width": width, "height": 720})
            for route in routes:
                await page.goto(f"{console.base}/{route}")
                await expect(page.locator("h1")).to_have_text(heads.get(route, "Run screenshot"))
                await expect(page.locator(".notice-loading")).to_have_count(0)
                await expect(page.locator(".notice-error")).to_have_count(0)
                # Nothing wider than the screen at 360 px.
                overflow = await page.evaluate(
                    "document.documentElement.scrollWidth - document.documentElement.clientWidth"
                )
                assert overflow <= 0, f"{route} at {width} px scrolls sideways by {overflow} px"
                name = route.strip("#/").replace("/", "-").replace(run["id"], "one")
                await shoot(page, f"{name}-{width}-{scheme}")
    env = page.locator(".env-body")
    await page.goto(f"{console.base}/#/env")
    await expect(env).to_contain_text(str(console.socket))
    await expect(env).to_contain_text(console.base)
    await expect(env).to_contain_text("DEV")
    await page.goto(f"{console.base}/#/db")
    await expect(page.locator(".db-body")).to_contain_text("sqlite")  # DEV's default
    await page.goto(f"{console.base}/#/nowhere")
    await expect(page.locator("h1")).to_have_text("No such page")
    # Every script, style sheet and image in the pages, and every request made, is the shim's.
    sources = await page.evaluate(
        """() => [...document.querySelectorAll("script[src], link[href], img[src]")]
                 .map((el) => el.src || el.href)"""
    )
    assert sources and all(
        s.startswith(console.base + "/static/") or s.startswith("data:") for s in sources
    ), sources
    for url in watched.requests:
        parts = urlsplit(url)
        assert parts.scheme in ("data", "blob") or f"{parts.scheme}://{parts.netloc}" in (
            console.base,
            console.base.replace("http", "ws"),
        ), url
    assert any(u.endswith("/static/console/main.js") for u in watched.requests)


async def test_the_keyboard_reaches_every_area_with_visible_focus(
    console: Console, page: Page
) -> None:
    await open_console(page, console)
    await page.keyboard.press("Tab")  # the skip link
    await expect(page.locator("a.skip")).to_be_focused()
    links = page.locator("nav.areas a")
    await links.nth(1).focus()
    outline = await links.nth(1).evaluate("el => getComputedStyle(el).outlineStyle")
    assert outline == "solid"
    await page.keyboard.press("Enter")
    await expect(page).to_have_url(f"{console.base}/#/vault")
    await expect(page.locator("#passphrase, .vault-body .notice-empty").first).to_be_visible()
    await expect(page.locator("h1")).to_be_focused()  # a new page: the focus on its heading
    await links.nth(2).focus()  # on to the next area
    await page.keyboard.press("Enter")
    await expect(page.locator("h1")).to_have_text("Database")
    await expect(page.locator("h1")).to_be_focused()
    # The skip link goes to the content and leaves the page where it is.
    await links.nth(0).focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("h1")).to_have_text("Runs")
    await page.locator("a.skip").focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("main")).to_be_focused()
    await expect(page).to_have_url(f"{console.base}/#/runs")
    await expect(page.locator("h1")).to_have_text("Runs")
    await page.keyboard.press("Tab")  # from the content on, not from the top
    await expect(page.locator("#workspace")).to_be_focused()


async def test_a_broken_address_says_no_such_page(console: Console, page: Page) -> None:
    await open_console(page, console)
    await page.goto(f"{console.base}/#/runs/%ZZ")
    await expect(page.locator("h1")).to_have_text("No such page")
    await expect(page.locator(".notice-loading")).to_have_count(0)
    # And the header still works from there.
    await page.locator("nav.areas a[data-area=vault]").click()
    await expect(page.locator("h1")).to_have_text("Vault")


async def test_the_unreachable_state_appears_and_clears(
    isolated_env: Path, socket_path: Path, page: Page, watched: Watched, workspace: Path
) -> None:
    watched.allowed = CONNECTION_FAILED  # the daemon is stopped on purpose
    banner = page.locator("#banner")
    async with console_daemon(isolated_env, socket_path) as console:
        await open_console(page, console)
        await expect(banner).to_be_hidden()
        port = urlsplit(console.base).port
        assert port is not None
    await expect(banner).to_be_visible(timeout=5000)
    await expect(banner).to_contain_text("The daemon is unreachable")
    await expect(page.locator(f"{HEADER} .chip")).to_have_text(["daemon unreachable"])
    await page.goto(f"{console.base}/#/vault")  # an area opened meanwhile says so too
    await expect(page.locator(".notice-error")).to_contain_text("the daemon is unreachable")
    await shoot(page, "unreachable")
    # What the page sends once back: its subscriptions before the area reads anything.
    sent: list[str] = []

    def frame(payload: str | bytes) -> None:
        if isinstance(payload, str) and '"method"' in payload:
            sent.append(json.loads(payload)["method"])

    page.on("websocket", lambda ws: ws.on("framesent", frame))
    async with running_daemon(
        socket_path, isolated_env / "state", **settings(isolated_env, port=port)
    ):
        await expect(banner).to_be_hidden(timeout=5000)
        await eventually(lambda: "vault.status" in sent, 5)
        assert sent.index("runs.subscribe") < sent.index("vault.status"), sent
        assert sent.index("status.subscribe") < sent.index("vault.status"), sent
        await expect(page.locator(f"{HEADER} .chip")).to_have_count(5)
        await expect(page.locator(".vault-body")).to_have_attribute("data-state", "uninitialized")
        # Live again: a run made now shows in the runs.
        await page.goto(f"{console.base}/#/runs")
        async with await RpcClient.connect(socket_path) as client:
            run = await new_run(client, workspace)
            await expect(row(page, run["id"])).to_be_visible(timeout=2000)


WEB = Path(__file__).resolve().parents[2] / "clients" / "web"
LINKS = re.compile(r'(?:src|href)\s*=\s*"([^"]+)"')
# `import … from "x"`, `export … from "x"` and `import "x"`.
IMPORTS = re.compile(r'^\s*(?:(?:import|export)\b[^"\']*?from\s*|import\s*)"([^"]+)"', re.M)


def test_the_pages_name_only_their_own_files() -> None:
    """Every script, style sheet and module the console names is one of its own files (no CDN,
    no other origin), and no style or script is written inline (the CSP refuses them)."""
    page = (WEB / "index.html").read_text()
    for link in LINKS.findall(page):
        if link.startswith("#") or link == "data:,":
            continue
        assert link.startswith("/static/"), link
        assert (WEB / link.removeprefix("/static/")).is_file(), link
    assert "<style" not in page and " style=" not in page
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page) is None  # no inline script
    modules = [*WEB.glob("console/**/*.js"), WEB / "simpleaide-status.js"]
    assert len(modules) > 5
    for module in modules:
        for target in IMPORTS.findall(module.read_text()):
            if target.startswith("/static/"):
                assert (WEB / target.removeprefix("/static/")).is_file(), (module, target)
            else:
                assert target.startswith("./") or target.startswith("../"), (module, target)
                assert (module.parent / target).resolve().is_file(), (module, target)
    styles = [(WEB / "console" / "console.css").read_text()]
    for text in [page, *(m.read_text() for m in modules), *styles]:
        assert re.search(r"https?://(?!127\.0\.0\.1)[a-z]", text) is None
        assert "@import" not in text and "url(http" not in text


# -- what the review asked for: the vault's idle limit, in-place updates, hostile text ------


async def test_an_idle_open_vault_page_lets_the_vault_lock_on_time(
    isolated_env: Path, socket_path: Path, page: Page
) -> None:
    """vault.list counts as a use: the page reads the names once, and then only vault.status,
    so the vault locks after its idle limit even with the page open (seen over the socket)."""
    async with console_daemon(isolated_env, socket_path, **{"vault.idle_lock_seconds": 3}) as c:
        await c.client.call("vault.init", passphrase=PASS)
        await c.client.call("vault.set", name="API_KEY", value="v")
        lists: list[str] = []
        statuses: list[str] = []

        def frame(payload: str | bytes) -> None:
            if isinstance(payload, str) and '"vault.list"' in payload:
                lists.append(payload)
            if isinstance(payload, str) and '"vault.status"' in payload:
                statuses.append(payload)

        # When the vault locks itself, by its own clock, and the last use it counted.
        vault = c.daemon.vault
        locks: list[tuple[float, float, str]] = []
        lock = vault.lock

        def noted_lock(reason: str = "asked to") -> bool:
            locks.append((time.monotonic(), vault._used_at, reason))
            return lock(reason)

        vault.lock = noted_lock  # type: ignore[method-assign]  # a wrapper
        page.on("websocket", lambda ws: ws.on("framesent", frame))
        await page.clock.install()
        await open_console(page, c, "#/vault")
        body = page.locator(".vault-body")
        await expect(page.locator(".secret-names li")).to_have_text(["API_KEY"])
        shown = time.monotonic()
        # The countdown is read after the names (the list restarted the timer): about 3 s.
        countdown = await page.locator(".countdown").inner_text()
        seconds = float(re.search(r"in ([\d.]+) s", countdown)[1])  # type: ignore[index]
        assert 1.5 <= seconds <= 3.0, countdown
        # The page's countdown reaches 0 before the daemon's (its clock runs ahead here): it
        # reads the state again (seen), never the names (a use, which would keep it open).
        read = len(statuses)
        await page.clock.fast_forward(5000)
        await eventually(lambda: len(statuses) > read, 5)
        # The vault locks itself for want of use; the page shows it. Its last use was the
        # page's one vault.list (none since), and it locked its idle time (3 s) after that, by
        # the vault's own clock: measured from that use, not from the test's steps.
        await expect(body).to_have_attribute("data-state", "locked", timeout=6000)
        assert len(lists) == 1, lists
        assert len(locks) == 1, locks
        locked_at, used_at, reason = locks[0]
        assert reason == "unused for its idle time"
        assert used_at <= shown  # no use after the names were shown
        assert 3.0 <= locked_at - used_at < 4.0, locked_at - used_at  # the timer's lateness
        # And it stays locked while the page stays open: its clock runs on (its timers fire),
        # then a later change the page must show (a warning in the header); by then it has
        # done whatever it would have done before.
        await page.clock.fast_forward(5000)
        c.daemon.warnings.set("test", "a change after the lock")
        c.daemon.events.section_changed()
        await expect(page.locator(f"{HEADER} .chip")).to_have_count(6)
        assert (await c.client.call("vault.status"))["state"] == "locked"
        assert len(lists) == 1 and len(locks) == 1, (lists, locks)
        await page.close()  # before the daemon stops


async def test_the_slow_down_shows_after_a_reload_too(
    isolated_env: Path, socket_path: Path, page: Page
) -> None:
    more = {"vault.failed_unlock_delay_seconds": 30}
    async with console_daemon(isolated_env, socket_path, **more) as c:
        await c.client.call("vault.init", passphrase=PASS)
        await c.client.call("vault.lock")
        await open_console(page, c, "#/vault")
        await page.fill("#passphrase", "wrong")
        await page.press("#passphrase", "Enter")
        slowdown = page.locator(".slowdown")
        await expect(slowdown).to_contain_text("Slowed down after a wrong passphrase")
        await page.reload()
        await expect(page.locator(".vault-body")).to_have_attribute("data-state", "locked")
        await expect(slowdown).to_contain_text("Slowed down after a wrong passphrase")
        await expect(slowdown).to_contain_text(re.compile(r"waits (2\d|30) s"))
        await expect(page.locator("form.unlock button")).to_be_disabled()
        await page.close()  # before the daemon stops


async def test_a_runs_page_changes_in_place(
    console: Console, page: Page, watched: Watched, workspace: Path
) -> None:
    """A change to the run updates what changed: an open preview is read again only when its
    artifact changed, its box (scroll) stays; only the status is announced."""
    client = console.client
    run = await new_run(client, workspace, "build", "test", start=True)
    rid = run["id"]
    text = "".join(f"line {n}\n" for n in range(400))
    await client.call("artifacts.put", runId=rid, step=1, name="log.txt", text=text)
    reads: list[str] = []

    def frame(payload: str | bytes) -> None:
        if isinstance(payload, str) and '"artifacts.get"' in payload:
            reads.append(json.loads(payload)["params"]["name"])

    page.on("websocket", lambda ws: ws.on("framesent", frame))
    await open_console(page, console, f"#/runs/{rid}")
    assert await page.locator(".run-body[aria-live]").count() == 0
    log = page.locator(".artifact[data-name='log.txt']")
    await log.locator("button.show").click()
    pre = log.locator(".artifact-text")
    await expect(pre).to_contain_text("line 0")
    await pre.evaluate("el => { el.scrollTop = 200; el.dataset.mark = 'same'; }")
    await page.locator(".step[data-number='1'] .step-name").evaluate("el => el.dataset.mark = 1")
    assert reads == ["log.txt"]
    # Another artifact and a step change: the open preview is not read again.
    await client.call("artifacts.put", runId=rid, step=1, name="other.txt", text="x")
    await client.call("steps.complete", runId=rid, step=1)
    await expect(page.locator(".artifact[data-name='other.txt']")).to_be_visible()
    await expect(page.locator(".step[data-number='1'] .badge")).to_have_text("completed")
    # A later change, once shown, means the page has handled the ones before it.
    await client.call("steps.start", runId=rid, step=2)
    await expect(page.locator(".step[data-number='2'] .badge")).to_have_text("running")
    assert reads == ["log.txt"]
    await expect(pre).to_have_attribute("data-mark", "same")
    assert await pre.evaluate("el => el.scrollTop") == 200
    # The artifact itself changes: read again, in the same box.
    await client.call("artifacts.put", runId=rid, step=1, name="log.txt", text="fresh\n" + text)
    await expect(pre).to_contain_text("fresh")
    await expect(pre).to_have_attribute("data-mark", "same")
    assert reads == ["log.txt", "log.txt"]
    # The run's status is announced, in a small live region of its own.
    await client.call("runs.cancel", runId=rid)
    await expect(page.locator(".run-announce[role=status]")).to_have_text(
        "The run is now cancelled."
    )


async def test_a_download_keeps_its_state_and_its_link_goes_with_its_url(
    console: Console, page: Page, workspace: Path
) -> None:
    client = console.client
    run = await new_run(client, workspace, "build", start=True)
    rid = run["id"]
    await client.call("artifacts.put", runId=rid, step=1, name="out.txt", text="data")
    await page.clock.install()
    await open_console(page, console, f"#/runs/{rid}")
    item = page.locator(".artifact[data-name='out.txt']")
    async with page.expect_download():
        await item.locator("button.download").click()
    saved = item.locator("a.saved")
    await expect(saved).to_have_text("Save out.txt again")
    # A change to the run meanwhile leaves the link where it is.
    await client.call("artifacts.put", runId=rid, step=1, name="more.txt", text="x")
    await expect(page.locator(".artifact[data-name='more.txt']")).to_be_visible()
    await expect(saved).to_be_visible()
    # Its Blob URL is revoked after a minute: the link goes with it.
    await page.clock.fast_forward(61_000)
    await expect(saved).to_have_count(0)


async def test_fail_and_complete_from_the_page_change_the_run(
    console: Console, page: Page, workspace: Path
) -> None:
    client = console.client
    failing = await new_run(client, workspace, "work", start=True)
    completing = await new_run(client, workspace, "work", "more", start=True)
    await open_console(page, console, f"#/runs/{failing['id']}")
    await page.locator("button.act-fail").click()
    dialog = page.locator("dialog.confirm")
    await dialog.locator("input").fill("the disk is full")
    await dialog.locator("button[type=submit]").click()
    await expect(page.locator(".run-body")).to_have_attribute("data-status", "failed")
    await expect(page.locator(".run-error")).to_have_text("the disk is full")
    metadata = json.loads((runs_dir(workspace) / failing["id"] / "metadata.json").read_text())
    assert metadata["status"] == "failed" and metadata["errorMessage"] == "the disk is full"
    await page.goto(f"{console.base}/#/runs/{completing['id']}")
    await page.locator("button.act-complete").click()
    await page.locator("dialog.confirm button[type=submit]").click()
    await expect(page.locator(".run-body")).to_have_attribute("data-status", "completed")
    got = await client.call("runs.get", runId=completing["id"], steps=True)
    assert got["status"] == "completed"
    assert [s["status"] for s in got["steps"]] == ["failed", "skipped"]


async def test_the_workspace_picker_filters_the_runs(
    console: Console, page: Page, workspace: Path, short_tmp: Path
) -> None:
    other = short_tmp / "ws2"
    other.mkdir()
    here = await new_run(console.client, workspace)
    there = await new_run(console.client, other)
    await open_console(page, console)
    rows = page.locator(".run-row")
    await expect(rows).to_have_count(2)
    await page.select_option("#workspace", str(other))
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_have_attribute("data-id", there["id"])
    # Live too: a run in the other workspace does not show here. A run made after it in
    # this one does: once it shows, the first one's event was handled too.
    elsewhere = await new_run(console.client, workspace)
    later = await new_run(console.client, other)
    await expect(rows.first).to_have_attribute("data-id", later["id"])
    await expect(rows).to_have_count(2)
    assert await row(page, elsewhere["id"]).count() == 0
    await page.select_option("#workspace", str(workspace))
    await expect(rows).to_have_count(2)
    await expect(rows.first).to_have_attribute("data-id", elsewhere["id"])
    await expect(rows.last).to_have_attribute("data-id", here["id"])


HOSTILE = '<img src=x onerror="window.__x=1"><script>window.__x=2</script>'


async def test_hostile_text_is_shown_as_text(console: Console, page: Page, workspace: Path) -> None:
    client = console.client
    run = await new_run(client, workspace, "build", start=True, title=HOSTILE)
    rid = run["id"]
    name = "<b>x<script>.txt"  # an artifact name has no spaces or slashes
    await client.call("artifacts.put", runId=rid, step=1, name=name, text=HOSTILE)
    await client.call("steps.fail", runId=rid, step=1, errorMessage=HOSTILE, failRun=False)
    await open_console(page, console)
    await expect(row(page, rid).locator(".run-title")).to_have_text(HOSTILE)
    await page.goto(f"{console.base}/#/runs/{rid}")
    await expect(page.locator("h1")).to_have_text(f"Run {HOSTILE}")
    await expect(page.locator(".step-error")).to_have_text(HOSTILE)
    item = page.locator(".artifact").first
    await expect(item.locator(".artifact-name")).to_have_text(name)
    await item.locator("button.show").click()
    await expect(item.locator(".artifact-text")).to_have_text(HOSTILE)
    main = page.locator("main")
    assert await main.locator("img, script, b").count() == 0
    assert await page.evaluate("window.__x") is None


async def test_the_key_is_in_no_request_header_or_console_message(
    console: Console, context: BrowserContext, workspace: Path
) -> None:
    """Outside the address given (the fragment, never sent) the key appears in no request URL,
    in no request header but the WebSocket's Sec-WebSocket-Protocol, and in no console
    message."""
    page = await context.new_page()
    seen = Watched()
    watch(page, seen)
    leaks: list[str] = []
    messages: list[str] = []
    page.on("console", lambda m: messages.append(m.text))

    async def check(request: Any) -> None:
        if console.token in request.url:
            leaks.append(f"url: {request.url}")
        for name, value in (await request.all_headers()).items():
            if console.token in value and name.lower() != "sec-websocket-protocol":
                leaks.append(f"header {name} of {request.url}")

    checks: list[Any] = []
    page.on("request", lambda request: checks.append(check(request)))
    upgrades: list[str] = []
    page.on("websocket", lambda ws: upgrades.append(ws.url))
    run = await new_run(console.client, workspace, "one", start=True)
    await open_console(page, console)
    for route in [*(f"#/{area}" for area in AREAS), f"#/runs/{run['id']}"]:
        await page.goto(f"{console.base}/{route}")
        await expect(page.locator(".notice-loading")).to_have_count(0)
    for pending in checks:
        await pending
    assert checks and leaks == []
    assert upgrades and all(console.token not in url for url in upgrades)
    assert all(console.token not in text for text in messages)
    seen.clean()
