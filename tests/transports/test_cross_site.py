"""A cross-site attempt, in a real browser: a page served from another loopback port (any
local program, or a site the user visits that found the port) tries to open the console's
WebSocket and to POST to the shim. Both are refused before anything is served, even with the
right token in hand, and nothing changes (README: Security of the HTTP side)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

import pytest
from playwright.async_api import Response

from simpleaided.app.daemon import Daemon
from tests.support.browser import chromium
from tests.support.daemon import running_daemon
from tests.support.http import token_of
from tests.support.rpc import RpcClient
from tests.support.waiting import eventually

# The attacker's page: it opens the console's WebSocket with the token (the worst case: it
# learned it somehow) and sends a request that would create a run, then POSTs to the shim.
ATTACK = """<!doctype html><meta charset="utf-8"><title>elsewhere</title>
<script>
window.outcome = {opened: false, closed: null, messages: [], posted: null};
const ws = new WebSocket("ws://127.0.0.1:%(port)d/rpc",
                         ["simpleaide.jsonrpc", "simpleaide.token.%(token)s"]);
ws.onopen = () => {
  window.outcome.opened = true;
  ws.send(JSON.stringify({jsonrpc: "2.0", id: 1, method: "runs.create",
                          params: {workspace: %(workspace)s}}));
};
ws.onmessage = (event) => window.outcome.messages.push(event.data);
ws.onclose = (event) => { window.outcome.closed = event.code; };
fetch("http://127.0.0.1:%(port)d/rpc", {
  method: "POST", mode: "no-cors", body: JSON.stringify({jsonrpc: "2.0", id: 2,
  method: "runs.create", params: {workspace: %(workspace)s}}),
}).then(() => { window.outcome.posted = "sent"; },
        () => { window.outcome.posted = "failed"; });
</script>"""


@pytest.fixture
async def shim(isolated_env: Path, socket_path: Path, workspace: Path) -> AsyncIterator[Daemon]:
    settings = {"http.listen": "127.0.0.1:0", "workspaces": [str(workspace)]}
    async with running_daemon(socket_path, isolated_env / "state", **settings) as daemon:
        yield daemon


@pytest.fixture
def elsewhere() -> Iterator[dict[str, Any]]:
    """A plain web server on another loopback port; ``page`` is the HTML it serves."""
    served: dict[str, Any] = {"page": ""}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = served["page"].encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Thread(target=server.serve_forever, daemon=True).start()
    served["url"] = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()


async def test_a_page_on_another_port_can_neither_connect_nor_post(
    shim: Daemon, socket_path: Path, workspace: Path, elsewhere: dict[str, Any]
) -> None:
    port = shim.http.port
    elsewhere["page"] = ATTACK % {
        "port": port,
        "token": token_of(shim),
        "workspace": json.dumps(str(workspace)),
    }
    answers: dict[str, int] = {}
    async with chromium() as browser:
        page = await browser.new_page()

        def answered(response: Response) -> None:
            answers.setdefault(f"{response.request.method} {response.url}", response.status)

        page.on("response", answered)
        await page.goto(elsewhere["url"])

        async def settled() -> Any:
            outcome = await page.evaluate("window.outcome")
            return outcome if outcome["closed"] is not None and outcome["posted"] else None

        outcome = await eventually(settled, 10)
    # The WebSocket never opened: refused at the handshake (the browser says 1006).
    assert outcome["opened"] is False
    assert outcome["messages"] == []
    assert outcome["closed"] == 1006
    # The POST reached the shim and was refused for its Origin, before anything else.
    assert answers[f"POST http://127.0.0.1:{port}/rpc"] == 403
    # Nothing changed: no run was made, and the daemon serves its own clients as before.
    async with await RpcClient.connect(socket_path) as client:
        assert (await client.call("runs.list", workspace=str(workspace)))["runs"] == []
        assert await client.call("daemon.ping") == "pong"
    assert not (workspace / ".simpleaide" / "runs").exists() or not any(
        (workspace / ".simpleaide" / "runs").iterdir()
    )
