"""``python -m tests.bench.console [--loads 7] [--idle-seconds 60]``: what the web console costs.

Two daemons are started as a user would (``python -m simpleaided``), one serving an empty
workspace and one serving 1,000 runs; each opens its HTTP side with ``http.open`` (as
``simpleaide open`` does), which hands out the console's URL and token. Then, in headless
Chromium:

- **Time to the runs list painted**: from ``page.goto`` (the navigation's start, the page's
  ``performance`` clock's zero) to the first frame painted after the list's first row (or the
  empty store's "No runs" words) is in the page, for a new browser context each time (nothing
  cached, the key taken from the URL as a first open does). Loads alternate between the two
  daemons; the table gives the medians and the 1,000 runs' against the empty store's.
- **An idle open console**: one page left open on the runs area for ``--idle-seconds``; the
  WebSocket messages it exchanged (counted by Chromium), and the daemon's CPU seconds from
  ``/proc`` against the same daemon's in a window of the same length with no console open,
  just before and just after (their mean).

Prints a table and writes every number to ``tests/bench/results/console.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from playwright.async_api import Browser, async_playwright

from tests.bench.client import connect, roundtrip
from tests.bench.procs import Server, cpu_seconds, running, start_daemon
from tests.bench.report import Row, table
from tests.support.browser import CHROMIUM

RESULTS = Path(__file__).resolve().parent / "results" / "console.json"
RUNS = 1000

# Notes, in the page's own clock, when the runs list (or its empty words) first shows and
# when the frame after it is painted. Injected before the page's scripts (an init script,
# outside the page's Content-Security-Policy).
PAINT_PROBE = """
(() => {
  const seen = () => document.querySelector(".run-row, .list-state .notice-empty");
  const observer = new MutationObserver(() => {
    if (!seen()) return;
    observer.disconnect();
    window.__listShown = performance.now();
    requestAnimationFrame(() => setTimeout(() => { window.__listPainted = performance.now(); }));
  });
  document.addEventListener("DOMContentLoaded", () =>
    observer.observe(document.body, { childList: true, subtree: true }));
})();
"""


def call(server: Server, method: str, **params: Any) -> Any:
    """One JSON-RPC call over the daemon's socket."""
    request = orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
    with connect(server.socket) as sock:
        answer = orjson.loads(roundtrip(sock, request + b"\n"))
    if "error" in answer:
        raise RuntimeError(f"{method}: {answer['error']}")
    return answer["result"]


def fill(server: Server, workspace: Path, count: int) -> None:
    """``count`` runs in ``workspace``, made through the socket (a third cancelled)."""
    with connect(server.socket) as sock:
        for n in range(count):
            made = {"workspace": str(workspace), "title": f"run {n}"}
            request = {"jsonrpc": "2.0", "id": n, "method": "runs.create", "params": made}
            run = orjson.loads(roundtrip(sock, orjson.dumps(request) + b"\n"))["result"]
            if n % 3 == 0:
                cancel = {"jsonrpc": "2.0", "id": n, "method": "runs.cancel"}
                cancel["params"] = {"runId": run["id"]}
                roundtrip(sock, orjson.dumps(cancel) + b"\n")


async def load_once(browser: Browser, url: str) -> float:
    """Milliseconds from ``page.goto`` to the runs list painted, in a new context."""
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        await context.add_init_script(PAINT_PROBE)
        page = await context.new_page()
        await page.goto(url)
        # Read from outside (wait_for_function would evaluate a string, which the page's CSP
        # refuses); the time was noted by the page itself, so the polling does not add to it.
        deadline = time.monotonic() + 30
        while (painted := await page.evaluate("window.__listPainted")) is None:
            if time.monotonic() > deadline:
                raise TimeoutError("the runs list did not show within 30 s")
            await asyncio.sleep(0.02)
        return float(painted)
    finally:
        await context.close()


async def idle_cost(browser: Browser, server: Server, url: str, seconds: float) -> dict[str, Any]:
    """The daemon's CPU seconds over ``seconds`` with one idle console, against the mean of
    the same window just before and just after it with none; and the WebSocket messages the
    console exchanged (data frames: the server's pings every 20 s are not counted)."""

    async def quiet_window() -> float:
        start = cpu_seconds(server.pid)
        await asyncio.sleep(seconds)
        return cpu_seconds(server.pid) - start

    before = await quiet_window()
    context = await browser.new_context()
    frames = {"in": 0, "out": 0, "bytes_in": 0}
    try:
        page = await context.new_page()

        def on_socket(ws: Any) -> None:
            def received(payload: str | bytes) -> None:
                frames["in"] += 1
                frames["bytes_in"] += len(payload)

            def sent(payload: str | bytes) -> None:
                frames["out"] += 1

            ws.on("framereceived", received)
            ws.on("framesent", sent)

        page.on("websocket", on_socket)
        await page.goto(url)
        await page.wait_for_selector(".run-row, .list-state .notice-empty")
        await asyncio.sleep(2)  # the first answers are in: what follows is idle
        start = dict(frames)
        busy_start = cpu_seconds(server.pid)
        await asyncio.sleep(seconds)
        busy = cpu_seconds(server.pid) - busy_start
        end = dict(frames)
    finally:
        await context.close()
    after = await quiet_window()
    per_minute = 60 / seconds
    return {
        "seconds": seconds,
        "cpuWithoutConsoleBefore": before,
        "cpuWithoutConsoleAfter": after,
        "cpuWithoutConsole": (before + after) / 2,
        "cpuWithConsole": busy,
        "messagesInPerMinute": (end["in"] - start["in"]) * per_minute,
        "messagesOutPerMinute": (end["out"] - start["out"]) * per_minute,
        "bytesInPerMinute": (end["bytes_in"] - start["bytes_in"]) * per_minute,
    }


async def measure(loads: int, idle_seconds: float, home: Path) -> dict[str, Any]:
    empty_ws = home / "empty-ws"
    full_ws = home / "full-ws"
    for ws in (empty_ws, full_ws):
        (ws / ".simpleaide").mkdir(parents=True)
    with (
        running(start_daemon(home / "empty", empty_ws, name="empty")) as empty,
        running(start_daemon(home / "full", full_ws, name="full")) as full,
    ):
        fill(full, full_ws, RUNS)
        await asyncio.sleep(5)  # the writes of the fill settle (snapshot, watcher)
        urls = {}
        for name, server in (("empty", empty), ("full", full)):
            opened = call(server, "http.open")
            urls[name] = f"{opened['url'].rstrip('/')}/#token={opened['token']}&area=runs"
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox"]
            )
            try:
                times: dict[str, list[float]] = {"empty": [], "full": []}
                await load_once(browser, urls["empty"])  # warm up Chromium itself
                for _ in range(loads):
                    for name in ("empty", "full"):
                        times[name].append(await load_once(browser, urls[name]))
                idle = await idle_cost(browser, full, urls["full"], idle_seconds)
            finally:
                await browser.close()
    return {"runs": RUNS, "loads": loads, "paintMs": times, "idle": idle}


def rows(result: dict[str, Any]) -> list[Row]:
    empty = statistics.median(result["paintMs"]["empty"])
    full = statistics.median(result["paintMs"]["full"])
    idle = result["idle"]
    minute = 60 / idle["seconds"]
    return [
        Row("page.goto → runs list painted, empty store (median)", empty, "ms"),
        Row(
            f"page.goto → runs list painted, {result['runs']:,} runs (median) / empty",
            full,
            "ms",
            baseline=empty,
        ),
        Row("idle console: WebSocket messages in per minute", idle["messagesInPerMinute"], "count"),
        Row(
            "idle console: WebSocket messages out per minute", idle["messagesOutPerMinute"], "count"
        ),
        Row(
            "idle console: daemon CPU per minute / no console",
            idle["cpuWithConsole"] * minute * 1000,
            "ms",
            baseline=idle["cpuWithoutConsole"] * minute * 1000,
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.console", description=__doc__)
    parser.add_argument("--loads", type=int, default=7, help="loads per store (default 7)")
    parser.add_argument(
        "--idle-seconds", type=float, default=60.0, help="the idle window (default 60)"
    )
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"Chromium is not at {CHROMIUM}", file=sys.stderr)
        return 2
    home = Path(tempfile.mkdtemp(prefix="sa-bench-console-", dir="/tmp"))
    try:
        started = time.monotonic()
        result = asyncio.run(measure(args.loads, args.idle_seconds, home))
    finally:
        shutil.rmtree(home, ignore_errors=True)
    found = rows(result)
    print(table(found))
    print(
        f"\n({time.monotonic() - started:.0f} s; loads in ms, empty: {result['paintMs']['empty']})"
    )
    print(f"(1,000 runs: {result['paintMs']['full']})")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps({**result, "rows": [r.to_json() for r in found]}, indent=2) + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
