"""The HTTP shim's guard on the real daemon, over real loopback HTTP (README: Security of the
HTTP side): the token on every route but /healthz and the console's files, and nowhere else than the
``Authorization`` header; ``Origin`` on anything but GET/HEAD, then 405; ``Host`` on requests
and WebSocket upgrades; ``http.public_status``; the headers on every answer; the static files
and their traversal; the token file across restarts and rotations, never in a log line or in
``status.get``; ``http.open`` starting the shim at run time."""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import socket
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import pytest
from starlette.requests import Request
from starlette.types import Message, Scope

from simpleaided.app.daemon import Daemon
from simpleaided.store.tokenfile import TOKEN_FILE
from simpleaided.transports.http import status as status_routes
from simpleaided.transports.http import web
from simpleaided.transports.http.security import CONTENT_SECURITY_POLICY, listener_token
from tests.support.daemon import ConfigSource, running_daemon
from tests.support.http import bearer, file_token_of, raw_request, token_of
from tests.support.rpc import RpcClient, RpcFailed
from tests.support.waiting import eventually

SHIM = {"http.listen": "127.0.0.1:0"}
DATA_ROUTES = ("/api/status", "/openapi.json", "/api/nothing-here", "/rpc", "/static")


@pytest.fixture
async def shim(isolated_env: Path, socket_path: Path) -> AsyncIterator[Daemon]:
    """A daemon serving the shim on a free loopback port."""
    async with running_daemon(socket_path, isolated_env / "state", **SHIM) as daemon:
        yield daemon


def assert_guarded(reply: httpx.Response) -> None:
    """Every answer's headers, refusals included (README: The web console)."""
    headers = reply.headers
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY, reply.url
    assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
    assert "connect-src 'self'" in CONTENT_SECURITY_POLICY
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-content-type-options"] == "nosniff"
    assert "cache-control" in headers
    assert "set-cookie" not in headers


def assert_refused_401(reply: httpx.Response) -> None:
    assert reply.status_code == 401, (reply.request.url, reply.status_code)
    assert reply.headers["www-authenticate"] == "Bearer"
    assert reply.headers["content-type"] == "application/json"
    assert "simpleaide open" in reply.json()["error"]
    assert '"runs"' not in reply.text
    assert_guarded(reply)


# -- the token -------------------------------------------------------------------------------


async def test_no_token_a_wrong_one_or_one_in_the_wrong_place_is_refused(shim: Daemon) -> None:
    url, token = shim.http.url, token_of(shim)
    wrong = "0" * 64 if token != "0" * 64 else "1" * 64
    attempts: list[dict[str, object]] = [
        {},
        {"headers": {"Authorization": f"Bearer {wrong}"}},
        {"headers": {"Authorization": f"Bearer {token[:-1]}"}},  # one digit short
        {"headers": {"Authorization": f"Bearer {token}0"}},
        {"headers": {"Authorization": f"Bearer {token.upper()}"}},
        {"headers": {"Authorization": "Bearer"}},
        {"headers": {"Authorization": f"Bearer  {wrong}"}},
        {"headers": {"Authorization": token}},  # no scheme
        {"headers": {"Authorization": f"Basic {token}"}},
        {"headers": {"Authorization": f"Token {token}"}},
        {"headers": {"X-Token": token}},
        {"params": {"token": token}},
        {"params": {"access_token": token}},
        {"headers": {"Cookie": f"token={token}"}},
        {"headers": {"Cookie": f"simpleaide.token={token}; Authorization=Bearer {token}"}},
    ]
    async with httpx.AsyncClient(base_url=url) as http:
        for attempt in attempts:
            for path in DATA_ROUTES:
                reply = await http.get(path, **attempt)  # type: ignore[arg-type]
                assert_refused_401(reply)
                assert token not in reply.text
        head = await http.head("/api/status/stream")
        assert head.status_code == 401 and head.headers["www-authenticate"] == "Bearer"
        # The right one, in its place (the scheme in any case), is let through.
        for scheme in ("Bearer", "bearer"):
            good = await http.get("/api/status", headers={"Authorization": f"{scheme} {token}"})
            assert good.status_code == 200 and good.json()["runs"]["total"] == 0
    assert shim.events.subscriptions == 0  # no refused stream subscribed


async def test_healthz_and_the_console_files_need_no_token(shim: Daemon) -> None:
    async with httpx.AsyncClient(base_url=shim.http.url) as http:
        health = await http.get("/healthz")
        assert health.json() == {"status": "ok"}
        assert_guarded(health)
        page = await http.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert_guarded(page)
        assert token_of(shim) not in page.text


async def test_refused_requests_change_nothing(
    shim: Daemon, socket_path: Path, workspace: Path
) -> None:
    async with (
        httpx.AsyncClient(base_url=shim.http.url) as http,
        await RpcClient.connect(socket_path) as rpc,
    ):
        await rpc.call("workspaces.add", path=str(workspace))
        before = await rpc.call("status.get")
        token_file = (socket_path.parent / TOKEN_FILE).read_bytes()
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            for path in ("/api/status", "/rpc", "/api/runs", "/"):
                reply = await http.request(method, path, json={"method": "runs.create"})
                assert reply.status_code == 403
        after = await rpc.call("status.get")
        assert after["runs"] == before["runs"] and after["vault"] == before["vault"]
        assert (await rpc.call("runs.list", workspace=str(workspace)))["runs"] == []
        assert (socket_path.parent / TOKEN_FILE).read_bytes() == token_file


# -- Origin on anything but GET and HEAD -----------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"])
async def test_a_method_that_could_write_needs_our_origin_then_is_refused(
    shim: Daemon, method: str
) -> None:
    url = shim.http.url
    port = int(url.rsplit(":", 1)[1])
    with socket.socket() as other:  # a page served from another loopback port
        other.bind(("127.0.0.1", 0))
        other_port = other.getsockname()[1]
    foreign = [
        None,
        "null",
        "http://evil.example",
        f"http://127.0.0.1:{other_port}",
        f"http://localhost:{other_port}",
        f"https://127.0.0.1:{port}",
        f"http://127.0.0.1:{port}.evil.example",
    ]
    async with httpx.AsyncClient(base_url=url, headers=bearer(shim)) as http:
        for origin in foreign:
            headers = {} if origin is None else {"Origin": origin}
            reply = await http.request(method, "/api/status", headers=headers)
            assert reply.status_code == 403, (origin, reply.status_code)
            assert "Origin" in reply.json()["error"]
            assert_guarded(reply)
        for own in (url, url.upper().replace("HTTP://", "http://")):
            reply = await http.request(method, "/api/status", headers={"Origin": own})
            assert reply.status_code == 405, own  # past the check: still nothing writes
            assert reply.headers["allow"] == "GET, HEAD"
            assert_guarded(reply)
        # The own origin follows the Host header the browser sent.
        local = {"Host": f"localhost:{port}", "Origin": f"http://localhost:{port}"}
        assert (await http.request(method, "/", headers=local)).status_code == 405
        mixed = {"Host": f"localhost:{port}", "Origin": f"http://127.0.0.1:{port}"}
        assert (await http.request(method, "/", headers=mixed)).status_code == 403


async def test_a_configured_origin_passes_the_origin_check(
    isolated_env: Path, socket_path: Path
) -> None:
    settings = {**SHIM, "http.cors_origins": ["http://app.example"]}
    async with (
        running_daemon(socket_path, isolated_env / "state", **settings) as daemon,
        httpx.AsyncClient(base_url=daemon.http.url) as http,
    ):
        post = await http.post("/api/status", headers={"Origin": "http://app.example"})
        assert post.status_code == 405
        other = await http.post("/api/status", headers={"Origin": "http://other.example"})
        assert other.status_code == 403
        # CORS lets that page read a refusal, and send the token on a GET.
        reply = await http.get("/api/status", headers={"Origin": "http://app.example"})
        assert reply.status_code == 401
        assert reply.headers["access-control-allow-origin"] == "http://app.example"
        preflight = await http.options(
            "/api/status",
            headers={
                "Origin": "http://app.example",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        assert preflight.status_code == 200
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
        assert_guarded(preflight)


# -- Host, on requests and WebSocket upgrades ------------------------------------------------


def upgrade(url: str, host: bytes, origin: bytes, token: str) -> bytes:
    """A WebSocket handshake for ``/rpc`` sent byte for byte; the answer's head."""
    head = (
        b"GET /rpc HTTP/1.1\r\nHost: " + host + b"\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Protocol: simpleaide.jsonrpc, simpleaide.token." + token.encode() + b"\r\n"
        b"Origin: " + origin
    )
    answer = b""
    host_part, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host_part, int(port)), timeout=5) as sock:
        sock.sendall(head + b"\r\n\r\n")
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer


async def test_a_foreign_host_is_refused_on_requests_and_upgrades(shim: Daemon) -> None:
    url, token = shim.http.url, token_of(shim)
    port = url.rsplit(":", 1)[1].encode()
    for host in (b"evil.example:" + port, b"127.0.0.1.evil.example:" + port, b""):
        origin = b"http://" + host
        answer = await anyio.to_thread.run_sync(upgrade, url, host, origin, token)
        assert answer.startswith(b"HTTP/1.1 403"), answer[:80]
        assert b"101" not in answer.split(b"\r\n", 1)[0]
        for target in (b"/api/status", b"/", b"/healthz", b"/static/x.js"):
            reply = await anyio.to_thread.run_sync(
                raw_request,
                url,
                b"GET " + target + b" HTTP/1.1\r\nHost: " + host + b"\r\n"
                b"Authorization: Bearer " + token.encode(),
            )
            assert reply.startswith(b"HTTP/1.1 403"), (target, reply[:80])
            assert b'"runs"' not in reply and b"<html" not in reply.lower()
            assert b"content-security-policy: " in reply.lower()
    # The same handshake with our Host passes the Host check (to the WebSocket's own checks).
    own = b"127.0.0.1:" + port
    answer = await anyio.to_thread.run_sync(upgrade, url, own, b"http://" + own, token)
    assert answer.startswith(b"HTTP/1.1 101"), answer[:80]
    # ... and a foreign Origin with it does not.
    answer = await anyio.to_thread.run_sync(upgrade, url, own, b"http://evil.example", token)
    assert answer.startswith(b"HTTP/1.1 403"), answer[:80]


# -- http.public_status ----------------------------------------------------------------------


async def test_public_status_opens_the_two_status_routes_only(
    isolated_env: Path, socket_path: Path
) -> None:
    settings = {**SHIM, "http.public_status": True}
    async with (
        running_daemon(socket_path, isolated_env / "state", **settings) as daemon,
        httpx.AsyncClient(base_url=daemon.http.url, timeout=10) as http,
    ):
        reply = await http.get("/api/status")
        assert reply.status_code == 200 and reply.json()["runs"]["total"] == 0
        assert_guarded(reply)
        again = await http.get("/api/status", headers={"If-None-Match": reply.headers["etag"]})
        assert again.status_code == 304
        async with http.stream("GET", "/api/status/stream") as stream:
            assert stream.status_code == 200
            assert_guarded(stream)
            assert (await anext(stream.aiter_lines())).startswith("retry:")
        for path in ("/openapi.json", "/api/status/other", "/api", "/rpc"):
            assert_refused_401(await http.get(path))
        assert (await http.post("/api/status", headers={"Origin": "null"})).status_code == 403
        spec = (await http.get("/openapi.json", headers=bearer(daemon))).json()
        assert spec["paths"]["/api/status"]["get"]["security"] == []
        assert spec["paths"]["/api/status/stream"]["get"]["security"] == []
    async with (
        running_daemon(socket_path, isolated_env / "state", **SHIM) as daemon,
        httpx.AsyncClient(base_url=daemon.http.url) as http,
    ):
        assert_refused_401(await http.get("/api/status"))  # off by default
        spec = (await http.get("/openapi.json", headers=bearer(daemon))).json()
        assert spec["paths"]["/api/status"]["get"]["security"] == [{"bearer": []}]


async def test_event_streams_are_capped(
    isolated_env: Path, socket_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With http.public_status anyone may open one: they are counted, whoever opens them.
    monkeypatch.setattr(status_routes, "MAX_EVENT_STREAMS", 2)
    settings = {**SHIM, "http.public_status": True}
    async with (
        running_daemon(socket_path, isolated_env / "state", **settings) as daemon,
        httpx.AsyncClient(base_url=daemon.http.url, timeout=10) as http,
    ):
        # (Each one's lines are kept: an abandoned reader closes its connection.)
        async with http.stream("GET", "/api/status/stream") as first:
            first_lines = first.aiter_lines()
            assert (await anext(first_lines)).startswith("retry:")
            async with http.stream("GET", "/api/status/stream", headers=bearer(daemon)) as second:
                second_lines = second.aiter_lines()
                assert (await anext(second_lines)).startswith("retry:")
                for headers in ({}, bearer(daemon)):
                    with anyio.fail_after(5):  # (a stream let through never ends)
                        over = await http.get("/api/status/stream", headers=headers)
                    assert over.status_code == 503
                    assert over.headers["content-type"] == "application/json"
                    assert "too many event streams" in over.json()["error"]
                    assert_guarded(over)
                assert (await http.head("/api/status/stream")).status_code == 200  # no body
                assert (await http.get("/api/status")).status_code == 200  # not a stream
                assert await anext(first_lines) and await anext(second_lines)  # still open
        # Those that ended make room again.

        async def one_opens() -> bool:
            async with http.stream("GET", "/api/status/stream") as stream:
                return stream.status_code == 200

        await eventually(one_opens, 5)
    await eventually(lambda: daemon.events.subscriptions == 0, 5)


# -- the headers on every answer -------------------------------------------------------------


async def test_every_answer_carries_the_security_headers(shim: Daemon) -> None:
    url = shim.http.url
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        authed = bearer(shim)
        status = await http.get("/api/status", headers=authed)
        answers = [
            status,
            await http.get(
                "/api/status", headers={**authed, "If-None-Match": status.headers["etag"]}
            ),
            await http.get("/openapi.json", headers=authed),
            await http.get("/healthz"),
            await http.head("/healthz"),
            await http.get("/"),
            await http.get("/static/no-such-file.js"),
            await http.get("/api/status"),  # 401
            await http.get("/nowhere", headers=authed),  # 404
            await http.get("/api/status", params={"workspace": "relative"}, headers=authed),
            await http.post("/api/status", headers={"Origin": url}),  # 405
            await http.post("/api/status"),  # 403: no Origin
            await http.get("/", headers={"Host": "evil.example"}),  # 403: Host
            await http.head("/api/status/stream", headers=authed),
        ]
        async with http.stream("GET", "/api/status/stream", headers=authed) as stream:
            answers.append(stream)
        codes = sorted({a.status_code for a in answers})
        assert codes == [200, 304, 400, 401, 403, 404, 405]
        for answer in answers:
            assert_guarded(answer)
        data = [status, answers[1], answers[3], answers[7], stream]
        assert all(a.headers["cache-control"] == "no-store" for a in data)
        # The description changes only with the daemon: kept, and asked again by its ETag.
        assert answers[2].headers["cache-control"] == "no-cache" and answers[2].headers["etag"]


async def test_a_server_error_carries_the_security_headers_too(
    shim: Daemon, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Starlette answers an unexpected error (500) from outside its middleware: the headers
    # are added around the whole application, so that answer carries them as well.
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug in a route")

    monkeypatch.setattr(shim.status, "document", broken)
    caplog.set_level(logging.CRITICAL, logger="uvicorn.error")  # the traceback, expected
    async with httpx.AsyncClient(base_url=shim.http.url, headers=bearer(shim)) as http:
        reply = await http.get("/api/status")
    assert reply.status_code == 500
    assert_guarded(reply)
    assert reply.headers["cache-control"] == "no-store"
    assert "a bug in a route" not in reply.text


# -- the console's files ----------------------------------------------------------------------


@pytest.fixture
def web_root(short_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A console folder of our own, with a secret file beside it and links out of it."""
    root = short_tmp / "web"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><title>console</title>")
    files = {
        "app.js": b"export const a = 1;\n",
        "sub/deeper/mod.mjs": b"export const b = 2;\n",
        "style.css": b"body { color: black }\n",
        "icon.svg": b"<svg xmlns='http://www.w3.org/2000/svg'/>",
        "img.png": b"\x89PNG\r\n\x1a\n",
        "font.woff2": b"wOF2",
        "data.bin": b"\x00\x01",
        ".hidden.js": b"hidden",
    }
    for name, data in files.items():
        (root / name).write_bytes(data)
    secret = short_tmp / "secret.txt"
    secret.write_text("THE-SECRET")
    (root / "link.js").symlink_to(secret)
    (root / "linkdir").symlink_to(short_tmp)
    os.mkfifo(root / "fifo.js")
    monkeypatch.setattr(web, "WEB_ROOT", root)
    return root


async def test_static_files_are_served_with_their_types_and_no_token(
    web_root: Path, isolated_env: Path, socket_path: Path
) -> None:
    expected = {
        "/": "text/html; charset=utf-8",
        "/static/index.html": "text/html; charset=utf-8",
        "/static/app.js": "text/javascript; charset=utf-8",
        "/static/sub/deeper/mod.mjs": "text/javascript; charset=utf-8",
        "/static/style.css": "text/css; charset=utf-8",
        "/static/icon.svg": "image/svg+xml",
        "/static/img.png": "image/png",
        "/static/font.woff2": "font/woff2",
        "/static/data.bin": "application/octet-stream",
    }
    async with (
        running_daemon(socket_path, isolated_env / "state", **SHIM) as daemon,
        httpx.AsyncClient(base_url=daemon.http.url) as http,
    ):
        for path, media in expected.items():
            reply = await http.get(path)
            assert reply.status_code == 200, path
            assert reply.headers["content-type"] == media, path
            relative = "index.html" if path == "/" else path.removeprefix("/static/")
            assert reply.content == (web_root / relative).read_bytes()
            assert_guarded(reply)
            assert reply.headers["cache-control"] == "no-cache"
            cached = await http.get(path, headers={"If-None-Match": reply.headers["etag"]})
            assert cached.status_code == 304 and cached.content == b""
        (web_root / "app.js").write_bytes(b"export const a = 2;\n")  # a new version
        reply = await http.get("/static/app.js", headers={"If-None-Match": '"stale"'})
        assert reply.content == b"export const a = 2;\n"
        assert (await http.head("/static/app.js")).status_code == 200


async def test_static_paths_cannot_leave_the_folder(
    web_root: Path, isolated_env: Path, socket_path: Path
) -> None:
    targets = [
        b"/static/../secret.txt",
        b"/static/%2e%2e/secret.txt",
        b"/static/sub/../../secret.txt",
        b"/static/sub/%2e%2e/%2e%2e/secret.txt",
        b"/static/..%2fsecret.txt",
        b"/static//etc/passwd",
        b"/static/%2fetc/passwd",
        b"/static/./app.js",
        b"/static/link.js",
        b"/static/linkdir/secret.txt",
        b"/static/.hidden.js",
        b"/static/app.js%00.png",
        b"/static/sub%5c..%5c..%5csecret.txt",
        b"/static/fifo.js",
        b"/static/sub",
        b"/static/sub/",
        b"/static/",
        b"/static/" + b"a/" * 40 + b"x.js",
        b"/static/" + b"x" * 5000,
        b"/static/" + b"x" * 300 + b".js",  # longer than a file name may be
    ]
    async with running_daemon(socket_path, isolated_env / "state", **SHIM) as daemon:
        for target in targets:
            answer = await anyio.to_thread.run_sync(
                raw_request, daemon.http.url, b"GET " + target + b" HTTP/1.1\r\nHost: localhost"
            )
            status = answer.split(b" ", 2)[1]
            assert status in (b"404", b"400"), (target, answer[:80])
            assert b"THE-SECRET" not in answer and b"root:" not in answer
            assert b"hidden" not in answer.split(b"\r\n\r\n", 1)[-1]


# -- the token file: made once, kept, rotated, never shown -----------------------------------


async def test_the_token_file_is_private_and_survives_a_restart(
    isolated_env: Path, socket_path: Path
) -> None:
    path = socket_path.parent / TOKEN_FILE
    async with running_daemon(socket_path, isolated_env / "state") as daemon:  # no shim: made too
        first = file_token_of(daemon)
    assert re.fullmatch(r"[0-9a-f]{64}", first)
    assert path.read_text() == first + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    async with running_daemon(socket_path, isolated_env / "state", **SHIM) as daemon:
        assert file_token_of(daemon) == first
        port = int(daemon.http.url.rsplit(":", 1)[1])
        assert token_of(daemon) == listener_token(first, "127.0.0.1", port)
        async with httpx.AsyncClient(base_url=daemon.http.url) as http:
            reply = await http.get("/api/status", headers=bearer(daemon))
            assert reply.status_code == 200
            # The file's own token is not the shim's: it is accepted nowhere.
            assert_refused_401(
                await http.get("/api/status", headers={"Authorization": f"Bearer {first}"})
            )


async def test_rotation_replaces_the_token_and_the_old_one_stops_working(
    shim: Daemon, socket_path: Path
) -> None:
    path = socket_path.parent / TOKEN_FILE
    old, old_file = token_of(shim), path.read_text()
    port = int(shim.http.url.rsplit(":", 1)[1])
    async with (
        httpx.AsyncClient(base_url=shim.http.url) as http,
        await RpcClient.connect(socket_path) as rpc,
    ):
        assert (await http.get("/api/status", headers=bearer(shim))).status_code == 200
        rotated = await rpc.call("http.rotateToken")
        new = rotated["token"]
        assert rotated == {"url": shim.http.url + "/", "token": new}
        assert re.fullmatch(r"[0-9a-f]{64}", new) and new != old
        # The file holds a new base, and the shim's token is derived from it.
        assert path.read_text() != old_file
        assert new == listener_token(path.read_text().strip(), "127.0.0.1", port)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert_refused_401(
            await http.get("/api/status", headers={"Authorization": f"Bearer {old}"})
        )
        ok = await http.get("/api/status", headers={"Authorization": f"Bearer {new}"})
        assert ok.status_code == 200
        assert (await rpc.call("http.open"))["token"] == new


async def test_rotation_ends_the_event_streams_opened_with_the_old_token(
    shim: Daemon, socket_path: Path
) -> None:
    async with (
        httpx.AsyncClient(base_url=shim.http.url, timeout=10, headers=bearer(shim)) as http,
        http.stream("GET", "/api/status/stream") as stream,
        await RpcClient.connect(socket_path) as rpc,
    ):
        lines = stream.aiter_lines()
        assert (await anext(lines)).startswith("retry:")
        while await anext(lines):  # the first event, to the blank line that ends it
            pass
        assert shim.events.subscriptions == 1
        new = (await rpc.call("http.rotateToken"))["token"]
        with anyio.fail_after(5):
            rest = [line async for line in lines]  # ends: no heartbeat comes to wait for
        assert not [line for line in rest if line.startswith("event:")], rest
        await eventually(lambda: shim.events.subscriptions == 0, 5)
        # The new token opens one again.
        headers = {"Authorization": f"Bearer {new}"}
        async with http.stream("GET", "/api/status/stream", headers=headers) as again:
            assert again.status_code == 200
            assert (await anext(again.aiter_lines())).startswith("retry:")


async def test_a_stream_answered_before_a_rotation_but_not_started_ends_too(
    shim: Daemon,
) -> None:
    # The token is checked, the stream answered; a rotation comes before its first byte.
    routes = shim.http._status_routes
    scope: Scope = {"type": "http", "method": "GET", "path": "/api/status/stream"}
    scope.update(headers=[], query_string=b"")
    response = await routes._stream_status(Request(scope))
    shim.http.token_rotated()
    sent: list[Message] = []

    async def receive() -> Message:
        await anyio.sleep_forever()
        raise AssertionError

    async def send(message: Message) -> None:
        sent.append(message)

    with anyio.fail_after(5):
        await response(scope, receive, send)
    assert [m.get("body", b"") for m in sent if m["type"] == "http.response.body"] in (
        [b""],
        [b"", b""],
    ), sent
    assert shim.events.subscriptions == 0 and routes._reserved == 0


async def test_the_token_is_bound_to_the_port_it_was_given_for(
    shim: Daemon, socket_path: Path
) -> None:
    # A console left open after the daemon stopped offers its token to whoever then listens
    # on that port: that token must be worth nothing on the daemon's next port.
    url = shim.http.url
    port = int(url.rsplit(":", 1)[1])
    base = (socket_path.parent / TOKEN_FILE).read_text().strip()
    async with await RpcClient.connect(socket_path) as rpc:
        opened = await rpc.call("http.open")
    assert opened["token"] == token_of(shim) == listener_token(base, "127.0.0.1", port)
    assert opened["token"] != base
    others = [
        listener_token(base, "127.0.0.1", port + 1),
        listener_token(base, "127.0.0.1", port - 1),
        listener_token(base, "localhost", port),
        base,
    ]
    async with httpx.AsyncClient(base_url=url) as http:
        for other in others:
            assert_refused_401(
                await http.get("/api/status", headers={"Authorization": f"Bearer {other}"})
            )
            own = f"127.0.0.1:{port}".encode()
            answer = await anyio.to_thread.run_sync(upgrade, url, own, b"http://" + own, other)
            assert answer.startswith(b"HTTP/1.1 401"), answer[:80]
        assert (await http.get("/api/status", headers=bearer(shim))).status_code == 200


async def test_on_a_fixed_port_the_token_stays_valid_across_restarts(
    isolated_env: Path, socket_path: Path
) -> None:
    # The residual risk the README states: a configured port keeps its token until rotated.
    async with running_daemon(socket_path, isolated_env / "state", **SHIM) as daemon:
        port = int(daemon.http.url.rsplit(":", 1)[1])
        first = token_of(daemon)
    fixed = {"http.listen": f"127.0.0.1:{port}"}
    for _ in range(2):
        async with (
            running_daemon(socket_path, isolated_env / "state", **fixed) as daemon,
            await RpcClient.connect(socket_path) as rpc,
            httpx.AsyncClient(base_url=daemon.http.url) as http,
        ):
            assert (await rpc.call("http.open"))["token"] == first
            reply = await http.get("/api/status", headers={"Authorization": f"Bearer {first}"})
            assert reply.status_code == 200
    # Rotated, it changes on that port too.
    async with (
        running_daemon(socket_path, isolated_env / "state", **fixed) as daemon,
        await RpcClient.connect(socket_path) as rpc,
        httpx.AsyncClient(base_url=daemon.http.url) as http,
    ):
        rotated = (await rpc.call("http.rotateToken"))["token"]
        assert rotated != first and rotated == token_of(daemon)
        assert_refused_401(
            await http.get("/api/status", headers={"Authorization": f"Bearer {first}"})
        )


async def test_the_token_never_shows_in_logs_status_or_info(
    isolated_env: Path, socket_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    tokens = []
    async with running_daemon(socket_path, isolated_env / "state") as daemon:
        tokens.append(file_token_of(daemon))
        async with await RpcClient.connect(socket_path) as rpc:
            opened = await rpc.call("http.open")
            tokens.append(opened["token"])
            tokens.append((await rpc.call("http.rotateToken"))["token"])
            tokens.append(file_token_of(daemon))
            async with httpx.AsyncClient(base_url=opened["url"]) as http:
                for token in tokens:  # the old one refused, the new one served
                    await http.get("/api/status", headers={"Authorization": f"Bearer {token}"})
                    await http.get("/api/status", params={"token": token})
                    await http.get("/nowhere", headers={"Authorization": f"Bearer {token}x"})
            shown = [
                await rpc.call("status.get"),
                await rpc.call("daemon.info"),
                await rpc.call("rpc.discover"),
            ]
    shown_text = json.dumps(shown)
    # The daemon's lines (and its servers'), not the test's own client's.
    daemon_records = [
        r for r in caplog.records if r.name.split(".")[0] in ("simpleaided", "uvicorn", "starlette")
    ]
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in daemon_records)
    for token in tokens:
        assert token not in shown_text
        assert token not in logged
    assert "HTTP shim started on request" in logged  # the daemon's log was captured


# -- http.open ----------------------------------------------------------------------------------


async def test_http_open_starts_the_shim_when_it_is_off(
    isolated_env: Path, socket_path: Path
) -> None:
    async with (
        running_daemon(socket_path, isolated_env / "state") as daemon,
        await RpcClient.connect(socket_path) as rpc,
    ):
        off = (await rpc.call("status.get"))["api"]
        assert off == {"enabled": False, "url": None, "port": None, "socket": str(socket_path)}
        assert daemon.http is None
        rotated = await rpc.call("http.rotateToken")  # no shim: a new token, no address
        assert rotated == {"url": None, "token": None}  # (nothing accepts a token yet)
        async with anyio.create_task_group() as tg:  # two at once start one shim
            answers: list[dict[str, str]] = []

            async def ask() -> None:
                async with await RpcClient.connect(socket_path) as other:
                    answers.append(await other.call("http.open"))

            for _ in range(3):
                tg.start_soon(ask)
        assert len({a["url"] for a in answers}) == 1
        url, token = answers[0]["url"], answers[0]["token"]
        found = re.fullmatch(r"http://127\.0\.0\.1:(\d+)/", url)
        assert found is not None
        port = int(found[1])
        file_token = (socket_path.parent / TOKEN_FILE).read_text().strip()
        assert token == listener_token(file_token, "127.0.0.1", port) != file_token
        api = (await rpc.call("status.get"))["api"]
        assert api == {
            "enabled": True,
            "url": url.rstrip("/"),
            "port": port,
            "socket": str(socket_path),
        }
        assert (await rpc.call("http.open")) == answers[0]  # the running one again
        async with httpx.AsyncClient(base_url=url) as http:
            reply = await http.get("/api/status", headers={"Authorization": f"Bearer {token}"})
            assert reply.status_code == 200 and reply.json()["api"]["port"] == port
            assert_refused_401(await http.get("/api/status"))
    # Stopped with the daemon.
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


async def test_http_open_answers_the_configured_shim(shim: Daemon, socket_path: Path) -> None:
    async with await RpcClient.connect(socket_path) as rpc:
        opened = await rpc.call("http.open")
    assert opened == {"url": shim.http.url + "/", "token": token_of(shim)}


async def test_a_reload_keeps_the_shim_http_open_started(
    isolated_env: Path, socket_path: Path
) -> None:
    # ``http`` is restart-only: a reload neither starts nor stops the shim, whatever it says.
    source = ConfigSource(socket_path, isolated_env / "state")
    daemon = Daemon(source.load(), handle_signals=False, load_config=source.load)
    async with anyio.create_task_group() as tg:
        await tg.start(daemon.run)
        async with await RpcClient.connect(socket_path) as rpc:
            url = (await rpc.call("http.open"))["url"]
            source.settings = {"http.enabled": False, "http.public_status": True}
            assert await daemon.reload()
            assert (await rpc.call("http.open"))["url"] == url
            assert (await rpc.call("status.get"))["api"]["enabled"] is True
        async with httpx.AsyncClient(base_url=url) as http:
            assert (await http.get("/api/status", headers=bearer(daemon))).status_code == 200
            assert_refused_401(await http.get("/api/status"))  # public_status waits too
        daemon.request_stop()


async def test_http_open_and_rotation_say_why_when_the_system_refuses(
    isolated_env: Path,
    socket_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An address that cannot be bound, a token file that cannot be written: an error the
    user can act on (-32050, the system's reason), not "Internal error" and a traceback."""
    from simpleaided.app import http_access
    from simpleaided.store import tokenfile

    caplog.set_level(logging.INFO)
    # TEST-NET-1 (RFC 5737): assigned to no interface here, so bind fails with EADDRNOTAVAIL.
    monkeypatch.setattr(http_access, "OPEN_HOST", "192.0.2.1")

    def no_space(parent: int) -> str:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    async with (
        running_daemon(socket_path, isolated_env / "state") as daemon,
        await RpcClient.connect(socket_path) as rpc,
    ):
        with pytest.raises(RpcFailed) as raised:
            await rpc.call("http.open")
        assert raised.value.code == -32050
        assert raised.value.message == (
            f"cannot start the HTTP side on 192.0.2.1: {os.strerror(errno.EADDRNOTAVAIL)}"
        )
        assert daemon.http is None
        assert (await rpc.call("status.get"))["api"]["enabled"] is False
        path = socket_path.parent / TOKEN_FILE
        before = path.read_text()
        monkeypatch.setattr(tokenfile, "_write_new", no_space)  # the file's write fails
        with pytest.raises(RpcFailed) as raised:
            await rpc.call("http.rotateToken")
        assert raised.value.code == -32050
        assert raised.value.message == (
            f"cannot write the HTTP token file {path} (No space left on device); "
            "the token was not changed"
        )
        assert path.read_text() == before
        assert daemon.http_access.token.current() == before.strip()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not [r for r in caplog.records if "Internal error" in r.getMessage()]
