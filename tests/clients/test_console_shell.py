"""The console's Shell area (issue 18) in headless Chromium, against the real daemon, its shim
and real shells on PTYs: a terminal started from the page runs what is typed there and comes
back, screen and all, after a reload and after the WebSocket drops; what xterm.js answers to
the queries in a replay is not typed; a resync replay goes on from its end; output is
acknowledged (a flood runs to its end), and a hidden page drops what it cannot draw and comes
back with a fresh screen; a paste arrives whole and in order, or says how much did; switching
terminals leaves none attached behind; the keyboard can leave the terminal, and the focus is
not taken from elsewhere; a read-only viewer cannot type; the DOM renderer draws its colours
under the strict CSP without a violation; a terminal gone with the daemon is said in words;
the WebSocket without the key, or from another origin, reaches no terminal."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Dialog, Page, expect
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin, Subprotocol

from simpleaided.app.daemon import Daemon
from tests.support.daemon import running_daemon
from tests.support.paths import ARTIFACTS
from tests.support.rpc import RpcClient
from tests.support.sandbox import simpleaide_command
from tests.support.waiting import eventually

SHELL = ["bash", "--norc", "--noprofile", "-i"]  # a real shell, without the user's rc files
NOTES = Path("/work/notes/screens")  # where the lead looks at the screenshots
FAST_KDF = {"vault.kdf_memory_kib": 8192, "vault.kdf_iterations": 1, "vault.kdf_lanes": 1}
# What Chromium logs when a WebSocket or a fetch cannot connect: expected only while the
# daemon is stopped on purpose.
CONNECTION_FAILED = re.compile(
    r"WebSocket connection to '.*' failed|Failed to load resource: net::ERR_CONNECTION_REFUSED"
)
# The lines of the terminal's buffer (scrollback and screen), read through the xterm.js
# Terminal the page hands to its developer tools on the screen's element.
SCREEN = """() => {
    const term = document.querySelector(".terminal-host")?.terminal;
    if (!term) return null;
    const buffer = term.buffer.active;
    const lines = [];
    for (let i = 0; i < buffer.length; i++) lines.push(buffer.getLine(i).translateToString(true));
    return lines.join("\\n");
}"""
# The page's WebSocket in the test's hands: while `__hold` is true what the daemon sends waits
# (in order); `__release(count)` hands the page the first `count` messages waiting (all of
# them, and holding stops, without); `__held()` is their text; `__deliver(text)` hands the
# page a message as if the daemon had sent it.
HOLD = """(() => {
    const held = [];
    let deliver = null;
    window.__hold = false;
    window.__held = () => held.map(([event]) => event.data);
    window.__release = (count) => {
        if (count === undefined) window.__hold = false;
        for (const [event, handler] of held.splice(0, count ?? held.length)) handler(event);
    };
    window.__deliver = (text) => deliver({ data: text });
    const own = Object.getOwnPropertyDescriptor(WebSocket.prototype, "onmessage");
    Object.defineProperty(WebSocket.prototype, "onmessage", {
        configurable: true,
        get() { return own.get.call(this); },
        set(handler) {
            deliver = handler;
            own.set.call(this, (event) => {
                if (window.__hold) held.push([event, handler]);
                else handler(event);
            });
        },
    });
})()"""


@dataclass
class Shell:
    """A daemon with its shim, a socket client, and the console's address and key."""

    daemon: Daemon
    client: RpcClient
    base: str  # http://127.0.0.1:PORT
    url: str  # the address `simpleaide open shell --print` gives, with the key
    token: str
    socket: Path


def settings(short_tmp: Path, port: int = 0, **more: Any) -> dict[str, Any]:
    return {
        "http.listen": f"127.0.0.1:{port}",
        "vault.file": str(short_tmp / "data" / "vault.json"),
        **FAST_KDF,
        **more,
    }


@contextlib.asynccontextmanager
async def shell_daemon(
    isolated_env: Path, socket_path: Path, port: int = 0, **more: Any
) -> AsyncIterator[Shell]:
    async with running_daemon(
        socket_path, isolated_env / "state", **settings(isolated_env, port, **more)
    ) as daemon:
        async with await RpcClient.connect(socket_path) as client:
            done = await anyio.run_process(
                [simpleaide_command(), "--socket", str(socket_path), "open", "shell", "--print"],
                check=False,
            )
            assert done.returncode == 0, done.stderr.decode()
            url = done.stdout.decode().strip()
            parts = urlsplit(url)
            token = dict(p.split("=", 1) for p in parts.fragment.split("&"))["token"]
            base = f"{parts.scheme}://{parts.netloc}"
            yield Shell(daemon, client, base, url, token, socket_path)


@pytest.fixture
async def shell(isolated_env: Path, socket_path: Path) -> AsyncIterator[Shell]:
    async with shell_daemon(isolated_env, socket_path) as made:
        yield made


@pytest.fixture
async def patient(isolated_env: Path, socket_path: Path) -> AsyncIterator[Shell]:
    """A daemon that waits for a silent interactive client for 10 minutes (not 5 s): a page
    that did not acknowledge would pause the program for the whole test."""
    async with shell_daemon(isolated_env, socket_path, **{"terminals.stall_seconds": 600}) as made:
        yield made


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    made = await browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        yield made
    finally:
        await made.close()


class Errors(list[str]):
    """The page's console errors (CSP violations among them) and uncaught exceptions."""

    allowed: re.Pattern[str] | None = None

    def unexpected(self) -> list[str]:
        return [e for e in self if not (self.allowed and self.allowed.search(e))]


@pytest.fixture
def errors() -> Iterator[Errors]:
    found = Errors()
    yield found
    assert found.unexpected() == [], "console errors:\n" + "\n".join(found.unexpected())


@pytest.fixture
async def page(context: BrowserContext, errors: Errors) -> Page:
    opened = await context.new_page()

    def logged(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    opened.on("console", logged)
    opened.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
    return opened


class Sent:
    """The JSON-RPC methods (and params) the page sends over its WebSockets."""

    def __init__(self, page: Page) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        page.on("websocket", lambda ws: ws.on("framesent", self._frame))

    def _frame(self, payload: str | bytes) -> None:
        if isinstance(payload, str) and '"method"' in payload:
            message = json.loads(payload)
            self.calls.append((message["method"], message.get("params") or {}))

    def of(self, method: str) -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == method]


async def shoot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"console-shell-{name}.png"
    await page.evaluate("window.scrollTo(0, 0)")  # the sticky header where it belongs
    await page.screenshot(path=path, full_page=True)
    with contextlib.suppress(OSError):
        NOTES.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, NOTES / path.name)


async def screen(page: Page) -> str:
    text = await page.evaluate(SCREEN)
    return text or ""


async def wait_for_screen(page: Page, pattern: str, within: float = 10) -> str:
    """The buffer's text once ``pattern`` (a regular expression) matches in it."""
    found = re.compile(pattern)

    async def check() -> str | None:
        text = await screen(page)
        return text if found.search(text) else None

    try:
        return str(await eventually(check, within, interval=0.05))
    except TimeoutError:
        raise AssertionError(f"{pattern!r} not on the screen:\n{await screen(page)}") from None


async def type_into(page: Page, text: str) -> None:
    """Type ``text`` into the terminal as a user does (then Enter)."""
    await page.locator(".terminal-host .xterm-helper-textarea").focus()
    await page.keyboard.type(text)
    await page.keyboard.press("Enter")


async def open_shell(page: Page, shell: Shell, route: str = "#/shell") -> None:
    """Open the console with its key, then ``route``."""
    await page.goto(shell.url)
    await expect(page).to_have_url(f"{shell.base}/#/shell")
    if route != "#/shell":
        await page.goto(f"{shell.base}/{route}")
    await expect(page.locator("h1")).to_have_text("Shell")


async def new_terminal(shell: Shell, name: str, *argv: str) -> str:
    """A terminal started over the socket (a bash without rc files, by default)."""
    made = await shell.client.call("terminals.create", argv=list(argv or SHELL), name=name)
    return str(made["id"])


async def listed(shell: Shell, terminal_id: str) -> dict[str, Any] | None:
    for info in await shell.client.call("terminals.list"):
        if info["id"] == terminal_id:
            return dict(info)
    return None


async def scrollback(shell: Shell, terminal_id: str) -> dict[str, Any]:
    """What an attach answers now, its replay decoded as ``data``: seen from a connection of
    its own, read-only, that detaches at once."""
    async with await RpcClient.connect(shell.socket) as other:
        got = dict(await other.call("terminals.attach", id=terminal_id, readOnly=True))
        await other.call("terminals.detach", id=terminal_id)
    got["data"] = base64.b64decode(got["replay"])
    return got


async def printed(shell: Shell, terminal_id: str, text: bytes) -> bool:
    return text in (await scrollback(shell, terminal_id))["data"]


async def paste(page: Page, text: str) -> None:
    """Paste ``text`` into the terminal (the browser's paste event, as Ctrl+Shift+V gives)."""
    await page.locator(".terminal-host .xterm-helper-textarea").evaluate(
        """(area, text) => {
            const data = new DataTransfer();
            data.setData("text/plain", text);
            area.dispatchEvent(new ClipboardEvent("paste", { clipboardData: data, bubbles: true }));
        }""",
        text,
    )


# -- a terminal from the page -------------------------------------------------------------


async def test_a_terminal_started_from_the_page_runs_what_is_typed_and_survives_a_reload(
    shell: Shell, page: Page, isolated_env: Path
) -> None:
    sent = Sent(page)
    await open_shell(page, shell)
    await expect(page.locator(".notice-empty")).to_have_text(
        "No terminals yet — New starts your login shell."
    )
    await shoot(page, "empty")
    await page.locator("button.terminal-new").click()
    await page.locator("#terminal-name").fill("work")
    await page.locator(".terminal-form button[type=submit]").click()
    await expect(page).to_have_url(re.compile(r"#/shell/[0-9a-f]{8}$"))
    terminal_id = page.url.rsplit("/", 1)[1]
    view = page.locator(".terminal-view")
    await expect(view).to_have_attribute("data-state", "live")
    await expect(view).to_have_attribute("data-mode", "interactive")
    await expect(view).to_have_attribute("data-renderer", re.compile("^(webgl|dom)$"))
    row = page.locator(f".terminal-row[data-id='{terminal_id}']")
    await expect(row.locator(".terminal-name")).to_have_text("work")
    await expect(row.locator(".badge")).to_have_text("running")
    await expect(row.locator(".terminal-attached")).to_have_text("1 attached")
    await expect(row.locator(".terminal-folder")).to_have_text(str(isolated_env / "home"))
    info = await listed(shell, terminal_id)
    assert info is not None and info["attached"] == 1 and info["readOnly"] == 0
    # The login shell (the user's, from passwd) answers what is typed; the answer, not the
    # echo of the line typed, is what is looked for.
    await type_into(page, "echo hello $((6 * 7))")
    await wait_for_screen(page, r"(?m)^hello 42$")
    assert sent.of("terminals.input"), "typed keys travel as terminals.input"
    # The terminal's size is the page's: the attach carried it and the daemon applied it.
    cols, rows = await page.evaluate(
        "() => { const t = document.querySelector('.terminal-host').terminal;"
        " return [t.cols, t.rows]; }"
    )
    assert cols > 80 and rows > 10  # 1280 × 900 holds more than the default 80 × 24
    await type_into(page, "stty size")
    await wait_for_screen(page, rf"(?m)^{rows} {cols}$")
    await shoot(page, "attached")

    # A reload comes back to the same terminal, its screen restored from the replay.
    await page.reload()
    await expect(page).to_have_url(f"{shell.base}/#/shell/{terminal_id}")
    await expect(view).to_have_attribute("data-state", "live")
    await wait_for_screen(page, r"(?m)^hello 42$")
    await type_into(page, "echo again-$((1 + 1))")
    await wait_for_screen(page, r"(?m)^again-2$")
    # Away and back: `#/shell` returns to the terminal this tab had attached.
    await page.locator("nav.areas a[data-area=runs]").click()
    await expect(page.locator("h1")).to_have_text("Runs")
    await eventually(lambda: listed_attached(shell, terminal_id, 0), 5)  # detached on leaving
    await page.locator("nav.areas a[data-area=shell]").click()
    await expect(page).to_have_url(f"{shell.base}/#/shell/{terminal_id}")
    await wait_for_screen(page, r"(?m)^again-2$")
    # Detach: the list alone, and `#/shell` stays there.
    await page.locator("button.terminal-detach").click()
    await expect(page).to_have_url(f"{shell.base}/#/shell")
    await expect(view).to_have_count(0)
    await expect(row.locator(".terminal-attached")).to_have_text("no one attached")


async def listed_attached(shell: Shell, terminal_id: str, count: int) -> bool:
    info = await listed(shell, terminal_id)
    return info is not None and info["attached"] == count


# Asks the terminal for its device attributes, the cursor's position and its background colour
# before anyone attached (so every replay holds the questions), then says each line it reads;
# after the line "ask" it asks for the cursor's position again, live.
QUERIES = r"""printf '\033[c\033[6n\033]11;?\007ready\n'; stty -echo
while read -r line; do
  if [ "$line" = ask ]; then printf '\033[6n'; fi
  printf 'got:%q\n' "$line"
done"""


async def test_what_xterm_answers_to_the_queries_in_a_replay_is_not_typed(
    shell: Shell, page: Page
) -> None:
    """xterm.js answers the queries it reads (device attributes, cursor position, colours),
    those in a replay too: a program asked long ago, and every attach or reload would type
    the answers into it again. Only the answers to what it asks live reach it."""
    terminal_id = await new_terminal(
        shell, "queries", "bash", "--norc", "--noprofile", "-c", QUERIES
    )
    await eventually(lambda: printed(shell, terminal_id, b"ready"), 10)
    await open_shell(page, shell, f"#/shell/{terminal_id}")
    view = page.locator(".terminal-view")
    await expect(view).to_have_attribute("data-state", "live")
    await wait_for_screen(page, r"(?m)^ready$")
    await type_into(page, "one")
    await wait_for_screen(page, r"(?m)^got:one$")  # nothing came before it
    # Asked live, the cursor's position is answered, ahead of the next line typed.
    await type_into(page, "ask")
    await wait_for_screen(page, r"(?m)^got:ask$")
    await type_into(page, "two")
    await wait_for_screen(page, r"(?m)^got:\$'\\E\[\d+;\d+Rtwo'$")
    # Reloaded: the replay holds every query again, the live one too; none is answered.
    await page.reload()
    await expect(view).to_have_attribute("data-state", "live")
    await wait_for_screen(page, r"(?m)^got:\$'\\E\[\d+;\d+Rtwo'$")
    await type_into(page, "three")
    await wait_for_screen(page, r"(?m)^got:three$")


async def test_new_starts_in_the_folder_given_and_says_why_it_cannot(
    shell: Shell, page: Page, workspace: Path
) -> None:
    await open_shell(page, shell)
    form = page.locator(".terminal-form")
    await page.locator("button.terminal-new").click()
    await expect(page.locator("#terminal-name")).to_be_focused()
    await page.locator("#terminal-folder").fill("relative/path")
    await form.locator("button[type=submit]").click()
    await expect(form.locator(".notice-error")).to_have_text(
        "The folder must be a full path, starting with / (or empty: your home)."
    )
    await page.locator("#terminal-folder").fill(str(workspace / "missing"))
    await form.locator("button[type=submit]").click()
    await expect(form.locator(".notice-error")).to_have_text(
        f"Cannot start a terminal: no such folder: {workspace / 'missing'}."
    )
    assert await shell.client.call("terminals.list") == []  # nothing was started
    await page.locator("#terminal-folder").fill(str(workspace))
    await form.locator("button[type=submit]").click()
    await expect(page).to_have_url(re.compile(r"#/shell/[0-9a-f]{8}$"))
    await expect(page.locator(".terminal-view")).to_have_attribute("data-state", "live")
    await expect(page.locator(".terminal-row .terminal-folder")).to_have_text(str(workspace))
    await type_into(page, "pwd")
    await wait_for_screen(page, rf"(?m)^{re.escape(str(workspace))}$")


async def test_search_copy_and_paste_work_in_the_terminal(
    shell: Shell, page: Page, context: BrowserContext
) -> None:
    await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=shell.base)
    terminal_id = await new_terminal(shell, "tools")
    sent = Sent(page)
    await open_shell(page, shell, f"#/shell/{terminal_id}")
    await expect(page.locator(".terminal-view")).to_have_attribute("data-state", "live")
    await type_into(page, "for w in alpha beta alpha; do echo word-$w; done")
    await wait_for_screen(page, r"(?m)^word-alpha\nword-beta\nword-alpha$")
    # Ctrl+Shift+F opens the search; matches are counted.
    await page.locator(".terminal-host .xterm-helper-textarea").focus()
    await page.keyboard.press("Control+Shift+F")
    search = page.locator(".terminal-search")
    await expect(search).to_be_visible()
    await expect(page.locator(".terminal-search-text")).to_be_focused()
    await page.locator(".terminal-search-text").fill("word-alpha")
    await page.keyboard.press("Enter")
    # The command line holds "word-$w", not "word-alpha": two matches, in the output.
    await expect(page.locator(".terminal-search-count")).to_have_text(re.compile(r"^\d of 2$"))
    await shoot(page, "search")
    await page.keyboard.press("Escape")
    await expect(search).to_be_hidden()
    # Ctrl+Shift+C copies the selection.
    await page.evaluate("() => document.querySelector('.terminal-host').terminal.selectAll()")
    await page.locator(".terminal-host .xterm-helper-textarea").focus()
    await page.keyboard.press("Control+Shift+C")
    copied = await page.evaluate("navigator.clipboard.readText()")
    assert "word-beta" in copied
    # A paste (the browser's paste event) is typed into the terminal.
    before = len(sent.of("terminals.input"))
    await page.locator(".terminal-host .xterm-helper-textarea").evaluate(
        """(area) => {
            const data = new DataTransfer();
            data.setData("text/plain", "echo pasted-$((2 * 21))");
            area.dispatchEvent(new ClipboardEvent("paste", { clipboardData: data, bubbles: true }));
        }"""
    )
    await page.keyboard.press("Enter")
    await wait_for_screen(page, r"(?m)^pasted-42$")
    assert len(sent.of("terminals.input")) > before
    # A link opens on Ctrl+click (a plain click is the terminal's: select, focus).
    link = f"{shell.base}/healthz"
    await type_into(page, f"clear; echo '  {link}'")
    await wait_for_screen(page, rf"(?m)^  {re.escape(link)}$")
    where = await page.evaluate(
        """(link) => {
            const term = document.querySelector(".terminal-host").terminal;
            const box = document.querySelector(".terminal-host .xterm-screen")
                .getBoundingClientRect();
            const buffer = term.buffer.active;
            for (let y = 0; y < term.rows; y++) {
                const line = buffer.getLine(buffer.viewportY + y).translateToString(true);
                if (line === "  " + link) {
                    return {
                        x: box.left + 6.5 * (box.width / term.cols),
                        y: box.top + (y + 0.5) * (box.height / term.rows),
                    };
                }
            }
            return null;
        }""",
        link,
    )
    assert where is not None
    pages = len(context.pages)
    await page.mouse.move(where["x"], where["y"])
    await page.mouse.click(where["x"], where["y"])
    await page.wait_for_timeout(300)
    assert len(context.pages) == pages, "a plain click opens nothing"
    async with context.expect_page() as opened:
        await page.mouse.move(where["x"] + 2, where["y"])
        await page.keyboard.down("Control")
        await page.mouse.click(where["x"] + 2, where["y"])
        await page.keyboard.up("Control")
    popup = await opened.value
    await popup.wait_for_load_state()
    assert popup.url == link
    await popup.close()


async def test_the_terminal_fits_a_narrow_dark_screen_and_follows_its_size(
    shell: Shell, page: Page
) -> None:
    terminal_id = await new_terminal(shell, "narrow")
    sent = Sent(page)
    await page.emulate_media(color_scheme="dark")
    await page.set_viewport_size({"width": 360, "height": 720})
    await open_shell(page, shell, f"#/shell/{terminal_id}")
    await expect(page.locator(".terminal-view")).to_have_attribute("data-state", "live")
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"the page scrolls sideways by {overflow} px"
    size = (
        "() => { const t = document.querySelector('.terminal-host').terminal;"
        " return [t.cols, t.rows, t.options.theme.background]; }"
    )
    cols, rows, background = await page.evaluate(size)
    assert 20 < cols < 50 and background == "#0d1117"
    await type_into(page, "stty size")
    await wait_for_screen(page, rf"(?m)^{rows} {cols}$")
    await shoot(page, "narrow-dark")
    # A wider window: the terminal follows, and so does the program's idea of its size.
    await page.set_viewport_size({"width": 1024, "height": 720})

    async def resized() -> tuple[int, int] | None:
        wide, high, _ = await page.evaluate(size)
        told = sent.of("terminals.resize")
        last = {"id": terminal_id, "cols": wide, "rows": high}
        return (wide, high) if wide > 100 and told and told[-1] == last else None

    wide, high = await eventually(resized, 5)
    await type_into(page, "clear; stty size")
    await wait_for_screen(page, rf"(?m)^{high} {wide}$")


# -- flow control ---------------------------------------------------------------------------


async def test_a_flood_is_acknowledged_as_it_is_drawn_and_runs_to_its_end(
    patient: Shell, page: Page
) -> None:
    """The daemon stops reading a terminal while an interactive client is 256 KiB behind:
    without the page's acknowledgements the flood would stall and the marker never show."""
    shell = patient
    terminal_id = await new_terminal(shell, "flood")
    sent = Sent(page)
    outputs: list[int] = []

    def received(payload: str | bytes) -> None:
        if isinstance(payload, str) and '"terminal.output"' in payload:
            outputs.append(1)

    page.on("websocket", lambda ws: ws.on("framereceived", received))
    await open_shell(page, shell, f"#/shell/{terminal_id}")
    await expect(page.locator(".terminal-view")).to_have_attribute("data-state", "live")
    await type_into(page, "seq 1 300000; echo flood-done-$((40 + 2))")  # ~2 MB
    await wait_for_screen(page, r"(?m)^flood-done-42$", within=60)
    acks = [params["offset"] for params in sent.of("terminals.ack")]
    assert acks == sorted(acks) and len(set(acks)) == len(acks), "acks only move forward"
    assert acks[-1] > 2_000_000
    # At most one per chunk written (fewer while xterm.js is busy), and never so far apart
    # that the daemon would have paused the program (256 KiB behind).
    assert len(acks) <= len(outputs), (len(acks), len(outputs))
    gaps = [b - a for a, b in zip(acks, acks[1:], strict=False)]
    assert max(gaps) < 256 * 1024, max(gaps)


async def test_a_hidden_page_does_not_stall_the_program_behind_its_throttled_timers(
    patient: Shell, page: Page, short_tmp: Path
) -> None:
    """A hidden tab's timers are throttled, and xterm.js parses on timers: while hidden the
    page acknowledges what arrives (up to 8 MiB not yet parsed). Seen with a parser that never
    finishes: hidden, the flood runs to its end; visible, the daemon pauses it."""
    shell = patient
    terminal_id = await new_terminal(shell, "hidden")
    await open_shell(page, shell, f"#/shell/{terminal_id}")
    await expect(page.locator(".terminal-view")).to_have_attribute("data-state", "live")
    await page.evaluate(
        """() => {
            document.querySelector(".terminal-host").terminal.write = () => {};  // never parsed
            Object.defineProperty(document, "hidden", { configurable: true, get: () => true });
        }"""
    )
    hidden, shown = short_tmp / "hidden-done", short_tmp / "shown-done"
    flood = "seq 1 200000; touch {}\r"  # ~1.3 MB
    await shell.client.call("terminals.input", id=terminal_id, text=flood.format(hidden))
    await eventually(hidden.exists, 30)
    await page.evaluate("() => Object.defineProperty(document, 'hidden', { get: () => false })")
    await shell.client.call("terminals.input", id=terminal_id, text=flood.format(shown))
    await anyio.sleep(3)
    assert not shown.exists(), "visible, what xterm.js has not parsed is not acknowledged"


async def test_a_resync_replay_starts_the_screen_again_and_output_goes_on_from_its_end(
    shell: Shell, page: Page
) -> None:
    """A client the daemon could not keep up with gets `terminal.output {offset, end, data,
    replay: true}`, whose data is the scrollback followed by the modes in force: live output
    goes on from `end`, not from `offset` plus the data's length. What xterm.js still held
    of the output before it is parsed before the screen starts again, not drawn above it.
    (The page is handed one, built from a real attach's answer, between the live output
    before it and the live output it stands for.)"""
    echo = r"printf 'ready\e[?2004h\n'; exec cat"  # says each line back; bracketed paste on
    terminal_id = await new_terminal(shell, "resync", "bash", "--norc", "--noprofile", "-c", echo)
    await page.add_init_script(HOLD)
    await open_shell(page, shell, f"#/shell/{terminal_id}")
    await expect(page.locator(".terminal-view")).to_have_attribute("data-state", "live")
    await shell.client.call("terminals.input", id=terminal_id, text="one\r")
    await wait_for_screen(page, r"(?m)^one\none$")
    # The output of "two", then of "three", reaches the page and waits there.
    await page.evaluate("() => { window.__hold = true; }")

    async def held(text: bytes) -> int:
        """How many messages wait, once their output holds ``text``."""
        waiting = await page.evaluate("() => window.__held()")
        data = b""
        for message in map(json.loads, waiting):
            if message.get("method") == "terminal.output":
                data += base64.b64decode(message["params"]["data"])
        return len(waiting) if text in data else 0

    await shell.client.call("terminals.input", id=terminal_id, text="two\r")
    before = await eventually(lambda: held(b"two\r\ntwo\r\n"), 10)
    await shell.client.call("terminals.input", id=terminal_id, text="three\r")
    await eventually(lambda: held(b"three\r\nthree\r\n"), 10)
    got = await scrollback(shell, terminal_id)
    assert got["data"].endswith(b"\x1b[?2004h")  # bracketed paste: longer than end - start
    replay = {
        "jsonrpc": "2.0",
        "method": "terminal.output",
        "params": {
            "id": terminal_id,
            "offset": got["start"],
            "end": got["offset"],
            "data": got["replay"],
            "replay": True,
        },
    }
    # In one task: the output of "two" handed to xterm.js (not parsed yet), the replay, then
    # the output of "three" (already in the replay).
    await page.evaluate(
        """([before, replay]) => {
            window.__release(before);
            window.__deliver(replay);
            window.__release();
        }""",
        [before, json.dumps(replay)],
    )
    await shell.client.call("terminals.input", id=terminal_id, text="four\r")
    await wait_for_screen(page, r"(?m)^four\nfour$")
    lines = "ready\none\none\ntwo\ntwo\nthree\nthree\nfour\nfour"
    assert (await screen(page)).rstrip("\n") == lines


async def test_a_hidden_page_drops_what_it_cannot_draw_and_comes_back_with_a_fresh_screen(
    patient: Shell, page: Page, short_tmp: Path
) -> None:
    """Hidden, xterm.js parses next to nothing (its timers are throttled): the page gives it
    at most 2 MiB it has not parsed, then drops what arrives (acknowledged all the same: the
    program is not paused for a tab no one looks at) and the view is stale. Shown again, it
    attaches again: the screen is the terminal's, from the replay."""
    shell = patient
    terminal_id = await new_terminal(shell, "away")
    sent = Sent(page)
    await open_shell(page, shell, f"#/shell/{terminal_id}")
    view = page.locator(".terminal-view")
    await expect(view).to_have_attribute("data-state", "live")
    # Hidden: what xterm.js is given waits, not parsed, until the page is shown again.
    await page.evaluate(
        """() => {
            const term = document.querySelector(".terminal-host").terminal;
            window.__given = [];
            term.write = (data, done) => window.__given.push([data, done]);
            Object.defineProperty(document, "hidden", { configurable: true, get: () => true });
            document.dispatchEvent(new Event("visibilitychange"));
        }"""
    )
    done = short_tmp / "flood-done"
    flood = f"head -c 12000000 /dev/zero | tr '\\0' x; echo; echo flood-end; touch {done}\r"
    await shell.client.call("terminals.input", id=terminal_id, text=flood)
    await eventually(done.exists, 30)
    await expect(view).to_have_attribute("data-stale", "true")
    given = await page.evaluate("() => window.__given.reduce((n, [data]) => n + data.length, 0)")
    assert 0 < given <= 2 * 1024 * 1024
    await eventually(lambda: sent.of("terminals.ack")[-1]["offset"] > 12_000_000, 10)
    # Shown again: xterm.js parses what it was given, then the terminal is attached again.
    await page.evaluate(
        """() => {
            const term = document.querySelector(".terminal-host").terminal;
            delete term.write;
            for (const [data, done] of window.__given) term.write(data, done);
            Object.defineProperty(document, "hidden", { configurable: true, get: () => false });
            document.dispatchEvent(new Event("visibilitychange"));
        }"""
    )
    await eventually(lambda: len(sent.of("terminals.attach")) == 2, 10)
    await expect(view).to_have_attribute("data-state", "live")
    await expect(view).not_to_have_attribute("data-stale", "true")
    await wait_for_screen(page, r"(?m)^flood-end$")
    await type_into(page, "echo back-$((2 + 3))")
    await wait_for_screen(page, r"(?m)^back-5$")


# -- pastes ---------------------------------------------------------------------------------

# A program that reads nothing until its gate exists, then copies what it reads to a file.
GATED = "stty -icanon -echo; echo ready; until [ -e {gate} ]; do sleep 0.05; done; exec cat > {out}"


async def test_a_large_paste_arrives_whole_and_in_order_or_says_how_much_did(
    shell: Shell, page: Page, short_tmp: Path
) -> None:
    """A paste goes in pieces, each once the daemon took the one before. The daemon refuses
    input while a program leaves 1 MiB of it unread: the piece is offered again a few times,
    so a program that reads again gets all of it, in order, and then what was typed
    meanwhile; one that does not gets the start of it, without holes, and the page says how
    much."""
    text = "".join(f"{i:07d}" for i in range(300_000))  # 2.1 MB
    refusals: list[str] = []

    def received(payload: str | bytes) -> None:
        if isinstance(payload, str) and "not reading its input" in payload:
            refusals.append(payload)

    page.on("websocket", lambda ws: ws.on("framereceived", received))
    area = page.locator(".terminal-host .xterm-helper-textarea")
    view = page.locator(".terminal-view")
    # Reading again once refused.
    gate, out = short_tmp / "later.gate", short_tmp / "later.out"
    later = await new_terminal(shell, "later", "sh", "-c", GATED.format(gate=gate, out=out))
    await open_shell(page, shell, f"#/shell/{later}")
    await expect(view).to_have_attribute("data-state", "live")
    await wait_for_screen(page, r"(?m)^ready$")
    await paste(page, text)
    await area.focus()
    await page.keyboard.type("Z")  # typed while the paste is on its way: it comes after it
    await eventually(lambda: refusals, 10)
    gate.touch()
    await eventually(lambda: out.exists() and out.stat().st_size == len(text) + 1, 30)
    assert out.read_text() == text + "Z"
    await expect(view.locator(".terminal-note")).to_be_hidden()
    # Never reading: the start of the paste, and the words for it.
    gate, out = short_tmp / "never.gate", short_tmp / "never.out"
    never = await new_terminal(shell, "never", "sh", "-c", GATED.format(gate=gate, out=out))
    await page.goto(f"{shell.base}/#/shell/{never}")
    await expect(view).to_have_attribute("data-id", never)
    await expect(view).to_have_attribute("data-state", "live")
    await wait_for_screen(page, r"(?m)^ready$")
    await paste(page, text)
    note = view.locator(".terminal-note")
    await expect(note).to_contain_text("The program is not reading its input", timeout=15_000)
    words = await note.text_content() or ""
    found = re.search(
        r": ([\d,]+) of 2,100,000 characters of the paste reached it; the rest", words
    )
    assert found, words
    reached = int(found[1].replace(",", ""))
    assert 0 < reached < len(text)
    gate.touch()
    await eventually(lambda: out.exists() and out.stat().st_size == reached, 10)
    assert out.read_text() == text[:reached]


async def test_a_paste_goes_in_pieces_a_lower_input_limit_takes(
    isolated_env: Path, socket_path: Path, page: Page, short_tmp: Path
) -> None:
    """`terminals.max_input_bytes` may be as low as 1 KiB: the daemon's refusal names its
    limit, and the paste goes on in pieces that fit, never splitting a character."""
    limit = {"terminals.max_input_bytes": 1024}
    async with shell_daemon(isolated_env, socket_path, **limit) as shell:
        out = short_tmp / "small.out"
        argv = ["sh", "-c", f"stty -icanon -echo; echo ready; exec cat > {out}"]
        terminal_id = await new_terminal(shell, "small", *argv)
        await open_shell(page, shell, f"#/shell/{terminal_id}")
        await expect(page.locator(".terminal-view")).to_have_attribute("data-state", "live")
        await wait_for_screen(page, r"(?m)^ready$")
        text = "".join(f"{i:04d} é€😀 " for i in range(1000))  # 1, 2, 3 and 4 bytes a character
        await paste(page, text)
        expected = text.encode()
        await eventually(lambda: out.exists() and out.stat().st_size == len(expected), 10)
        assert out.read_bytes() == expected
        await page.close()  # before the daemon stops


# -- switching, focus and keys --------------------------------------------------------------


async def test_switching_terminals_while_attaching_leaves_none_attached_behind(
    shell: Shell, page: Page
) -> None:
    """Another terminal asked for while the first one's attach is on its way: the first is
    detached all the same (the daemon answers a connection's requests in order)."""
    first = await new_terminal(shell, "first")
    second = await new_terminal(shell, "second")
    await page.add_init_script(HOLD)
    sent = Sent(page)
    await open_shell(page, shell)
    await expect(page.locator(f".terminal-row[data-id='{second}']")).to_be_visible()
    await page.evaluate("(id) => { window.__hold = true; location.hash = `#/shell/${id}`; }", first)
    await eventually(lambda: [p["id"] for p in sent.of("terminals.attach")] == [first], 5)
    await page.evaluate("(id) => { location.hash = `#/shell/${id}`; }", second)
    await eventually(lambda: [p["id"] for p in sent.of("terminals.attach")] == [first, second], 5)
    await page.evaluate("() => window.__release()")
    view = page.locator(".terminal-view")
    await expect(view).to_have_attribute("data-id", second)
    await expect(view).to_have_attribute("data-state", "live")
    assert (await listed(shell, first) or {})["attached"] == 0
    assert (await listed(shell, second) or {})["attached"] == 1


async def test_a_resize_while_the_attach_is_on_its_way_reaches_the_terminal(
    shell: Shell, page: Page
) -> None:
    terminal_id = await new_terminal(shell, "resized")
    await page.add_init_script(HOLD)
    sent = Sent(page)
    await open_shell(page, shell)
    await page.evaluate(
        "(id) => { window.__hold = true; location.hash = `#/shell/${id}`; }", terminal_id
    )
    await eventually(lambda: sent.of("terminals.attach"), 5)
    attach = sent.of("terminals.attach")[0]
    await page.set_viewport_size({"width": 800, "height": 600})
    size = (
        "() => { const t = document.querySelector('.terminal-host').terminal;"
        " return [t.cols, t.rows]; }"
    )

    async def fitted() -> tuple[int, int] | None:
        cols, rows = await page.evaluate(size)
        return (cols, rows) if cols < attach["cols"] else None

    cols, rows = await eventually(fitted, 5)  # fitted again before the attach was answered
    await page.evaluate("() => window.__release()")
    await expect(page.locator(".terminal-view")).to_have_attribute("data-state", "live")
    told = {"id": terminal_id, "cols": cols, "rows": rows}
    await eventually(lambda: sent.of("terminals.resize")[-1:] == [told], 5)
    await type_into(page, "stty size")
    await wait_for_screen(page, rf"(?m)^{rows} {cols}$")


async def test_the_list_redrawn_keeps_the_focus_on_the_same_control(
    shell: Shell, page: Page
) -> None:
    terminal_id = await new_terminal(shell, "focused")
    await open_shell(page, shell)
    row = page.locator(f".terminal-row[data-id='{terminal_id}']")
    await row.locator("a.watch").focus()
    async with await RpcClient.connect(shell.socket) as other:
        await other.call("terminals.attach", id=terminal_id, readOnly=True)
        attached = row.locator(".terminal-attached")
        await expect(attached).to_have_text("1 attached (1 read-only)", timeout=10_000)
        await expect(row.locator("a.watch")).to_be_focused()
        # Kill ended it: its successor, Remove, has the focus.
        await row.locator("button.kill").focus()
        await shell.client.call("terminals.kill", id=terminal_id, signal="KILL")
        await expect(row.locator("button.remove")).to_be_visible(timeout=10_000)
        await expect(row.locator("button.remove")).to_be_focused()


async def test_ctrl_shift_x_leaves_the_terminal_and_its_keys_work_on_any_layout(
    shell: Shell, page: Page, errors: Errors
) -> None:
    """Tab and Esc are the program's: Ctrl+Shift+X (said under the terminal) moves the focus
    to the Detach button. The shortcuts are found by the key's place on layouts without
    Latin letters. An attach asked for gives the terminal the keys; attached again after a
    lost connection, it leaves the focus where the user put it."""
    errors.allowed = CONNECTION_FAILED
    terminal_id = await new_terminal(shell, "keys")
    sent = Sent(page)
    await open_shell(page, shell, f"#/shell/{terminal_id}")
    view = page.locator(".terminal-view")
    await expect(view).to_have_attribute("data-state", "live")
    area = page.locator(".terminal-host .xterm-helper-textarea")
    await expect(area).to_be_focused()
    await expect(view.locator(".terminal-hint")).to_contain_text("Ctrl+Shift+X leaves the terminal")
    await page.keyboard.press("Tab")
    await expect(area).to_be_focused()
    await page.keyboard.press("Control+Shift+X")
    await expect(view.locator("button.terminal-detach")).to_be_focused()
    # Russian: Ф where F is.
    await area.focus()
    await area.evaluate(
        """(area) => area.dispatchEvent(new KeyboardEvent("keydown", {
            key: "Ф", code: "KeyF", ctrlKey: true, shiftKey: true, bubbles: true, cancelable: true,
        }))"""
    )
    await expect(page.locator(".terminal-search-text")).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(area).to_be_focused()
    # The focus in the header when the WebSocket drops: it stays there.
    runs = page.locator("nav.areas a[data-area=runs]")
    await runs.focus()
    shell.daemon.http.rpc.close_all(1001)
    await eventually(lambda: len(sent.of("terminals.attach")) == 2, 10)
    await expect(view).to_have_attribute("data-state", "live")
    await expect(runs).to_be_focused()


async def test_an_osc8_hyperlink_opens_on_ctrl_click_and_only_over_http(
    shell: Shell, page: Page
) -> None:
    """Links a program marks up (OSC 8) open as the ones found in the text do: on Ctrl+click,
    http(s) only, without xterm.js's own confirm() on a plain click."""
    await page.add_init_script(
        """(() => {
            window.__opened = [];
            window.open = (url) => { window.__opened.push(url); return null; };
        })()"""
    )
    dialogs: list[str] = []

    async def asked(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        await dialog.dismiss()

    page.on("dialog", asked)
    terminal_id = await new_terminal(shell, "hyperlinks")
    await open_shell(page, shell, f"#/shell/{terminal_id}")
    await expect(page.locator(".terminal-view")).to_have_attribute("data-state", "live")
    link = f"{shell.base}/healthz"
    await type_into(
        page,
        rf"clear; printf '\e]8;;{link}\e\\open-me\e]8;;\e\\ \e]8;;file:///etc/passwd\e\\not-me"
        r"\e]8;;\e\\\n'",
    )
    await wait_for_screen(page, r"(?m)^open-me not-me$")
    where = await page.evaluate(
        """() => {
            const term = document.querySelector(".terminal-host").terminal;
            const box = document.querySelector(".terminal-host .xterm-screen")
                .getBoundingClientRect();
            const buffer = term.buffer.active;
            for (let y = 0; y < term.rows; y++) {
                const line = buffer.getLine(buffer.viewportY + y).translateToString(true);
                if (line === "open-me not-me") {
                    const width = box.width / term.cols;
                    return {
                        open: box.left + 3.5 * width,
                        not: box.left + 11.5 * width,
                        y: box.top + (y + 0.5) * (box.height / term.rows),
                    };
                }
            }
            return null;
        }"""
    )
    assert where is not None

    async def click(x: float, ctrl: bool) -> None:
        await page.mouse.move(x, where["y"])
        await page.mouse.move(x + 1, where["y"])
        if ctrl:
            await page.keyboard.down("Control")
        await page.mouse.click(x + 1, where["y"])
        if ctrl:
            await page.keyboard.up("Control")

    await click(where["open"], ctrl=False)  # a plain click: the terminal's
    await click(where["not"], ctrl=True)  # not http(s): not a link
    await click(where["open"], ctrl=True)
    await eventually(lambda: page.evaluate("() => window.__opened.length"), 5)
    assert await page.evaluate("() => window.__opened") == [link]
    assert dialogs == []


# -- read-only ------------------------------------------------------------------------------


async def test_a_read_only_viewer_watches_and_cannot_type(shell: Shell, page: Page) -> None:
    terminal_id = await new_terminal(shell, "watched")
    sent = Sent(page)
    await open_shell(page, shell, f"#/shell/{terminal_id}/watch")
    view = page.locator(".terminal-view")
    await expect(view).to_have_attribute("data-state", "live")
    await expect(view).to_have_attribute("data-mode", "read-only")
    await expect(view.locator(".badge-readonly")).to_have_text("read-only")
    attach = sent.of("terminals.attach")
    assert attach == [{"id": terminal_id, "readOnly": True}]  # no size: a viewer never resizes
    row = page.locator(f".terminal-row[data-id='{terminal_id}']")
    await expect(row.locator(".terminal-attached")).to_have_text("1 attached (1 read-only)")
    # Typed on the page: nothing leaves it.
    await type_into(page, "echo from-the-viewer")
    await page.set_viewport_size({"width": 900, "height": 700})  # nor does a resize
    # ...once the page has seen its new size and the 80 ms an interactive view waits before it
    # fits (terminal.js FIT_DELAY_MS) have passed: this observer and its timer come after any
    # of the view's.
    await page.evaluate(
        """() => new Promise((resolve) => {
            const observer = new ResizeObserver(() => {
                observer.disconnect();
                setTimeout(resolve, 80);
            });
            observer.observe(document.querySelector(".terminal-host"));
        })"""
    )
    # What is typed elsewhere shows.
    await shell.client.call("terminals.input", id=terminal_id, text="echo from-$((3 * 3))\r")
    await wait_for_screen(page, r"(?m)^from-9$")
    assert "from-the-viewer" not in await screen(page)
    assert sent.of("terminals.input") == [] and sent.of("terminals.resize") == []
    await shoot(page, "read-only")


# -- renderers and the CSP ----------------------------------------------------------------


async def test_the_dom_renderer_draws_colours_under_the_csp_without_a_violation(
    shell: Shell, page: Page, errors: Errors
) -> None:
    """xterm.js writes its rules into <style> elements and true colours into style
    attributes, which the console's CSP refuses: the page carries them over without one
    violation (the page's securitypolicyviolation events are counted, and the `errors`
    fixture fails the test on any console error)."""
    await page.add_init_script(
        """(() => {
            window.__violations = [];
            document.addEventListener("securitypolicyviolation", (event) => {
                window.__violations.push(`${event.violatedDirective} ${event.blockedURI}`);
            });
        })()"""
    )
    terminal_id = await new_terminal(shell, "colours")
    await open_shell(page, shell)
    await page.evaluate("localStorage.setItem('simpleaide.shell.webgl', 'off')")
    await page.goto(f"{shell.base}/#/shell/{terminal_id}")
    view = page.locator(".terminal-view")
    await expect(view).to_have_attribute("data-state", "live")
    await expect(view).to_have_attribute("data-renderer", "dom")
    await expect(view.locator(".terminal-webgl")).not_to_be_checked()
    await type_into(
        page,
        r"printf 'plain \e[31mred\e[0m \e[38;2;10;200;30mtrue\e[0m \e[1mbold\e[0m end\n'",
    )
    await wait_for_screen(page, r"(?m)^plain red true bold end$")
    rows = page.locator(".terminal-host .xterm-rows")
    await expect(rows).to_contain_text("plain red true bold end")  # drawn (on the next frame)
    looks = await page.evaluate(
        """() => {
            const spans = [...document.querySelectorAll(".terminal-host .xterm-rows span")];
            const colour = (text) => {
                const span = spans.find((s) => s.textContent === text);
                return span ? getComputedStyle(span).color : null;
            };
            const rows = document.querySelector(".terminal-host .xterm-rows");
            return {
                red: colour("red"),
                truecolor: colour("true"),
                bold: spans.find((s) => s.textContent === "bold")
                    ? getComputedStyle(spans.find((s) => s.textContent === "bold")).fontWeight
                    : null,
                foreground: getComputedStyle(rows).color,
                styles: document.querySelectorAll(".terminal-host style").length,
                adopted: document.adoptedStyleSheets.length,
            };
        }"""
    )
    # The light theme's red and foreground (terminal.js THEMES.light), the true colour as sent.
    assert looks["red"] == "rgb(207, 34, 46)", looks
    assert looks["truecolor"] == "rgb(10, 200, 30)", looks
    assert looks["bold"] == "700", looks
    assert looks["foreground"] == "rgb(31, 35, 40)", looks
    assert looks["styles"] == 0 and looks["adopted"] == 1, looks
    # Switched to WebGL and back on the fly: still drawn, still no violation.
    await view.locator(".terminal-webgl").check()
    await expect(view).to_have_attribute("data-renderer", re.compile("^(webgl|dom)$"))
    await view.locator(".terminal-webgl").uncheck()
    await expect(view).to_have_attribute("data-renderer", "dom")
    await type_into(page, r"printf '\e[38;2;1;2;3mdeep\e[0m\n'")
    await wait_for_screen(page, r"(?m)^deep$")
    await expect(rows).to_contain_text("deep")
    deep = await page.evaluate(
        """() => getComputedStyle([...document.querySelectorAll(
            ".terminal-host .xterm-rows span")].find((s) => s.textContent === "deep")).color"""
    )
    assert deep == "rgb(1, 2, 3)"
    await shoot(page, "dom-renderer")
    assert await page.evaluate("() => window.__violations") == []
    assert errors.unexpected() == []


async def test_without_webgl_the_dom_draws_the_terminal(shell: Shell, page: Page) -> None:
    """A browser with no WebGL2 (stood in for by a canvas that has none): the addon fails
    to load and the terminal is drawn by the DOM, saying nothing alarming."""
    await page.add_init_script(
        """(() => {
            const getContext = HTMLCanvasElement.prototype.getContext;
            HTMLCanvasElement.prototype.getContext = function (kind, ...rest) {
                return kind === "webgl2" ? null : getContext.call(this, kind, ...rest);
            };
        })()"""
    )
    terminal_id = await new_terminal(shell, "no-gpu")
    await open_shell(page, shell, f"#/shell/{terminal_id}")
    view = page.locator(".terminal-view")
    await expect(view).to_have_attribute("data-state", "live")
    await expect(view).to_have_attribute("data-renderer", "dom")
    await expect(view.locator(".terminal-webgl")).not_to_be_checked()
    await type_into(page, "echo drawn-$((9 * 9))")
    await wait_for_screen(page, r"(?m)^drawn-81$")
    await expect(page.locator(".terminal-host .xterm-rows")).to_contain_text("drawn-81")
    # Still wanted: the next terminal tries WebGL again.
    assert await page.evaluate("localStorage.getItem('simpleaide.shell.webgl')") is None


# -- losing the connection ------------------------------------------------------------------


async def test_the_terminal_comes_back_when_the_websocket_drops(
    shell: Shell, page: Page, errors: Errors
) -> None:
    errors.allowed = CONNECTION_FAILED
    terminal_id = await new_terminal(shell, "blip")
    await open_shell(page, shell, f"#/shell/{terminal_id}")
    view = page.locator(".terminal-view")
    await expect(view).to_have_attribute("data-state", "live")
    await type_into(page, "echo before-$((5 * 5))")
    await wait_for_screen(page, r"(?m)^before-25$")
    # Output while the page is away is in the replay when it is back.
    shell.daemon.http.rpc.close_all(1001)
    await shell.client.call("terminals.input", id=terminal_id, text="echo during-$((7 * 7))\r")
    await expect(view).to_have_attribute("data-state", "live", timeout=10_000)
    await wait_for_screen(page, r"(?m)^before-25$")
    await wait_for_screen(page, r"(?m)^during-49$")
    await type_into(page, "echo after-$((8 * 8))")
    await wait_for_screen(page, r"(?m)^after-64$")
    await eventually(lambda: listed_attached(shell, terminal_id, 1), 5)


async def test_a_terminal_gone_with_the_daemon_is_said_in_words(
    isolated_env: Path, socket_path: Path, page: Page, errors: Errors
) -> None:
    errors.allowed = CONNECTION_FAILED  # the daemon is stopped on purpose
    async with shell_daemon(isolated_env, socket_path) as first:
        terminal_id = await new_terminal(first, "ephemeral")
        await open_shell(page, first, f"#/shell/{terminal_id}")
        await expect(page.locator(".terminal-view")).to_have_attribute("data-state", "live")
        port = urlsplit(first.base).port
        assert port is not None
    view = page.locator(".terminal-view")
    await expect(view).to_have_attribute("data-state", "offline", timeout=5000)
    await expect(view.locator(".terminal-state")).to_contain_text("Connection lost")
    await expect(page.locator("#banner")).to_contain_text("The daemon is unreachable")
    await shoot(page, "offline")
    async with shell_daemon(isolated_env, socket_path, port=port):
        gone = page.locator(".terminal-gone")
        await expect(gone).to_contain_text(f"The terminal {terminal_id} is gone", timeout=10_000)
        await expect(gone).to_contain_text("terminals end when the daemon stops")
        await expect(page.locator(".notice-empty")).to_have_text(
            "No terminals yet — New starts your login shell."
        )
        await shoot(page, "gone")
        # Forgotten: `#/shell` shows the list, it does not go back to the dead terminal.
        await page.locator("nav.areas a[data-area=shell]").click()
        await expect(page).to_have_url(re.compile(r"#/shell$"))
        await expect(page.locator(".terminal-gone")).to_have_count(0)
        await page.close()  # before the daemon stops


# -- the list's actions ---------------------------------------------------------------------


async def test_rename_and_kill_from_the_list(shell: Shell, page: Page) -> None:
    terminal_id = await new_terminal(shell, "old-name")
    ended = await new_terminal(shell, "short", "sh", "-c", "exit 3")
    await open_shell(page, shell)
    row = page.locator(f".terminal-row[data-id='{terminal_id}']")
    await expect(row.locator(".badge")).to_have_text("running")
    await expect(row.locator(".terminal-command")).to_have_text("bash --norc --noprofile -i")
    done = page.locator(f".terminal-row[data-id='{ended}']")
    await expect(done.locator(".badge")).to_have_text("exited with code 3", timeout=10_000)
    await expect(done.locator("button.remove")).to_have_text("Remove")
    # Rename: the dialog holds the old name.
    await row.locator("button.rename").click()
    field = page.locator("dialog.confirm input")
    await expect(field).to_have_value("old-name")
    await field.fill("new-name")
    await page.locator("dialog.confirm button[type=submit]").click()
    await expect(row.locator(".terminal-name")).to_have_text("new-name")
    assert (await listed(shell, terminal_id) or {})["name"] == "new-name"
    # A name taken: said, nothing changed.
    await row.locator("button.rename").click()
    await page.locator("dialog.confirm input").fill("short")
    await page.locator("dialog.confirm button[type=submit]").click()
    await expect(page.locator(".shell-message .notice-error")).to_contain_text(
        "Cannot rename the terminal “new-name”"
    )
    # Kill asks first; kept, nothing happens.
    await row.locator("button.kill").click()
    await expect(page.locator("dialog.confirm")).to_contain_text("Kill the terminal “new-name”?")
    await page.locator("dialog.confirm button.cancel").click()
    assert await listed(shell, terminal_id) is not None
    await row.locator("button.kill").click()
    await page.locator("dialog.confirm button[type=submit]").click()
    await expect(row).to_have_count(0, timeout=10_000)
    await eventually(lambda: _absent(shell, terminal_id), 10)
    # An ended one is removed at once.
    await done.locator("button.remove").click()
    await expect(done).to_have_count(0)
    await expect(page.locator(".notice-empty")).to_be_visible()


async def _absent(shell: Shell, terminal_id: str) -> bool:
    return await listed(shell, terminal_id) is None


async def test_an_attached_terminal_that_ends_says_so(shell: Shell, page: Page) -> None:
    terminal_id = await new_terminal(shell, "ending")
    await open_shell(page, shell, f"#/shell/{terminal_id}")
    view = page.locator(".terminal-view")
    await expect(view).to_have_attribute("data-state", "live")
    await type_into(page, "exit 7")
    await expect(view).to_have_attribute("data-state", "exited", timeout=10_000)
    await expect(view.locator(".terminal-state")).to_have_text("The program exited with code 7.")
    await wait_for_screen(page, r"\[process exited with code 7\]")
    row = page.locator(f".terminal-row[data-id='{terminal_id}']")
    await expect(row.locator(".badge")).to_have_text("exited with code 7")
    # Attached again later: the last screen, and the same words.
    await page.reload()
    await expect(view).to_have_attribute("data-state", "exited")
    await wait_for_screen(page, r"\[process exited with code 7\]")


# -- the vendored files ---------------------------------------------------------------------

VENDOR = Path(__file__).resolve().parents[2] / "clients" / "web" / "vendor" / "xterm"


async def test_the_vendored_xterm_files_are_served_unchanged_as_modules(shell: Shell) -> None:
    sums = {}
    for line in (VENDOR / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split("  ", 1)
        sums[name] = digest
    assert {p.relative_to(VENDOR).as_posix() for p in VENDOR.glob("*/*")} == set(sums)
    assert {name.split("/")[0] for name in sums} == {
        "xterm",
        "addon-fit",
        "addon-webgl",
        "addon-search",
        "addon-web-links",
    }
    async with httpx.AsyncClient(base_url=shell.base) as http:
        for name, digest in sums.items():
            answer = await http.get(f"/static/vendor/xterm/{name}")
            assert answer.status_code == 200, name
            assert hashlib.sha256(answer.content).hexdigest() == digest, name
            if name.endswith(".mjs"):
                assert answer.headers["content-type"].startswith("text/javascript"), name
            elif name.endswith(".css"):
                assert answer.headers["content-type"].startswith("text/css"), name
            else:
                assert b"Permission is hereby granted" in answer.content, name  # MIT
            assert "style-src 'self';" in answer.headers["content-security-policy"]


# -- the WebSocket's gate -------------------------------------------------------------------


async def test_the_websocket_without_the_key_or_from_another_origin_reaches_no_terminal(
    shell: Shell,
) -> None:
    terminal_id = await new_terminal(shell, "private")
    port = urlsplit(shell.base).port
    create = {"jsonrpc": "2.0", "id": 1, "method": "terminals.create", "params": {}}
    attach = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "terminals.attach",
        "params": {"id": terminal_id},
    }

    def ws(token: str | None, origin: str) -> Any:
        protocols = ["simpleaide.jsonrpc"] + ([f"simpleaide.token.{token}"] if token else [])
        return connect(
            f"ws://127.0.0.1:{port}/rpc",
            subprotocols=[Subprotocol(p) for p in protocols],
            origin=Origin(origin),
            proxy=None,
            open_timeout=5,
        )

    for token, origin, status in [
        (None, shell.base, 401),
        ("0" * 64, shell.base, 401),
        (shell.token, "http://evil.example", 403),
        (shell.token, f"http://127.0.0.1:{(port or 0) + 1}", 403),
    ]:
        with pytest.raises(InvalidStatus) as refused:
            async with ws(token, origin) as socket:
                await socket.send(json.dumps(create))  # never reached
        assert refused.value.response.status_code == status
    assert [t["id"] for t in await shell.client.call("terminals.list")] == [terminal_id]
    assert (await listed(shell, terminal_id) or {})["attached"] == 0
    # With the key, from the console's own origin: the same calls answer.
    async with ws(shell.token, shell.base) as socket:
        await socket.send(json.dumps(attach))
        with anyio.fail_after(5):
            reply = json.loads(await socket.recv())
        assert reply["id"] == 2 and "replay" in reply["result"], reply
        base64.b64decode(reply["result"]["replay"])
        assert (await listed(shell, terminal_id) or {})["attached"] == 1
