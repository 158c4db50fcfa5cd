"""The HTTP shim on the real daemon: the document, ETag/304, the event stream, the Host
check, loopback-only binding, read-only routes, CORS only when configured, and a fuzz run of
its OpenAPI description (schemathesis). The token and the other refusals:
``test_http_security``."""

from __future__ import annotations

import gc
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig

from simpleaided.app.config import ConfigError, load_config
from simpleaided.app.daemon import Daemon
from simpleaided.transports.http.openapi import openapi_document
from simpleaided.transports.http.security import host_of
from simpleaided.transports.http.status import stable_view
from tests.support.daemon import make_daemon, running_daemon
from tests.support.http import bearer, raw_request
from tests.support.rpc import RpcClient

SHIM = {"http.listen": "127.0.0.1:0"}


@pytest.fixture
async def shim(isolated_env: Path, socket_path: Path) -> AsyncIterator[tuple[Daemon, str]]:
    """A daemon serving the shim on a free loopback port, and the shim's URL."""
    async with running_daemon(socket_path, isolated_env / "state", **SHIM) as daemon:
        yield daemon, daemon.http.url


async def test_the_document_is_status_get_with_an_etag(
    shim: tuple[Daemon, str], socket_path: Path, workspace: Path
) -> None:
    daemon, url = shim
    async with (
        httpx.AsyncClient(base_url=url, headers=bearer(daemon)) as http,
        await RpcClient.connect(socket_path) as rpc,
    ):
        reply = await http.get("/api/status")
        assert reply.status_code == 200
        assert reply.headers["content-type"] == "application/json"
        assert reply.headers["cache-control"] == "no-store"
        via_socket = await rpc.call("status.get")
        assert stable_view(reply.json()) == stable_view(via_socket)
        assert via_socket["api"] == {
            "enabled": True,
            "url": url,
            "port": int(url.rsplit(":", 1)[1]),
            "socket": str(socket_path),
        }

        etag = reply.headers["etag"]
        again = await http.get("/api/status", headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == etag and again.headers["cache-control"] == "no-store"

        await rpc.call("runs.create", workspace=str(workspace))
        changed = await http.get("/api/status", headers={"If-None-Match": etag})
        assert changed.status_code == 200 and changed.headers["etag"] != etag
        assert changed.json()["runs"]["total"] == 1


async def test_the_event_stream_delivers_each_change(
    shim: tuple[Daemon, str], socket_path: Path, workspace: Path
) -> None:
    daemon, url = shim
    async with (
        httpx.AsyncClient(base_url=url, timeout=10, headers=bearer(daemon)) as http,
        http.stream("GET", "/api/status/stream") as stream,
        await RpcClient.connect(socket_path) as rpc,
    ):
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.aiter_lines()

        async def next_document() -> dict[str, Any]:
            event = None
            async for line in lines:
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and event == "status":
                    doc: dict[str, Any] = json.loads(line.split(":", 1)[1])
                    return doc
            raise AssertionError("the stream ended")

        with anyio.fail_after(5):
            first = await next_document()
        assert first["runs"]["total"] == 0
        await rpc.call("runs.create", workspace=str(workspace))
        with anyio.fail_after(2):  # one change: delivered within the 50 ms coalescing, plus
            while (await next_document())["runs"]["total"] != 1:
                pass


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("localhost", True),
        ("127.0.0.1", True),
        ("[::1]", True),
        ("evil.example", False),
        ("127.0.0.1.evil.example", False),
        ("[::1]evil.example", False),
        ("localhost:evil", False),
        ("LOCALHOST", True),
        ("localhost.", False),
        ("", False),
    ],
)
async def test_a_foreign_host_header_is_refused(
    shim: tuple[Daemon, str], host: str, allowed: bool
) -> None:
    daemon, url = shim
    port = url.rsplit(":", 1)[1]
    async with httpx.AsyncClient(base_url=url, headers=bearer(daemon)) as http:
        for path in ("/api/status", "/api/status/stream", "/healthz", "/"):
            if path.endswith("stream") and allowed:
                continue  # an allowed stream never ends; covered above
            headers = {"Host": f"{host}:{port}" if host and ":evil" not in host else host}
            reply = await http.get(path, headers=headers)
            assert (reply.status_code != 403) is allowed, (path, reply.status_code)
            if not allowed:
                assert "runs" not in reply.text


def test_a_host_port_is_ascii_digits() -> None:
    # The header arrives as Latin-1, which has no other digits; the rule holds on its own.
    assert host_of("localhost:8080") == "localhost"
    assert host_of("localhost:٨٠") is None
    assert host_of("[::1]:８０") is None


async def test_only_reads_are_served_and_no_secret_shows(
    isolated_env: Path, socket_path: Path, short_tmp: Path
) -> None:
    settings = {
        **SHIM,
        "vault.file": str(short_tmp / "vault.json"),
        "vault.kdf_memory_kib": 8192,
        "vault.kdf_iterations": 1,
        "vault.kdf_lanes": 1,
    }
    async with (
        running_daemon(socket_path, isolated_env / "state", **settings) as daemon,
        await RpcClient.connect(socket_path) as rpc,
        httpx.AsyncClient(base_url=daemon.http.url, headers=bearer(daemon)) as http,
    ):
        await rpc.call("vault.init", passphrase="a long passphrase")
        await rpc.call("vault.set", name="token", value="the-secret-value")
        own = {"Origin": daemon.http.url}
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            for path in ("/api/status", "/healthz", "/", "/rpc"):
                assert (await http.request(method, path, headers=own)).status_code == 405
        for path in ("/api/vault", "/rpc", "/api/runs"):
            assert (await http.get(path)).status_code == 404
        auth = b"\r\nAuthorization: " + bearer(daemon)["Authorization"].encode()
        for raw in (
            b"/api/status/../vault",
            b"/../clients/web/index.html",
            b"/%2e%2e/pyproject.toml",
        ):
            answer = await anyio.to_thread.run_sync(raw_get, daemon.http.url, raw, auth)
            assert answer.startswith(b"HTTP/1.1 404"), answer[:80]
        seen = (await http.get("/api/status")).text + (await http.get("/openapi.json")).text
        assert "the-secret-value" not in seen and "a long passphrase" not in seen
        assert (await http.get("/api/status")).json()["vault"]["state"] == "unlocked"


async def test_no_cors_headers_unless_origins_are_configured(
    isolated_env: Path, socket_path: Path
) -> None:
    origin = {"Origin": "http://app.example"}
    async with running_daemon(socket_path, isolated_env / "a", **SHIM) as daemon:
        async with httpx.AsyncClient(base_url=daemon.http.url, headers=bearer(daemon)) as http:
            reply = await http.get("/api/status", headers=origin)
            assert not [h for h in reply.headers if h.startswith("access-control-")]
    settings = {**SHIM, "http.cors_origins": ["http://app.example"]}
    async with running_daemon(socket_path, isolated_env / "b", **settings) as daemon:
        async with httpx.AsyncClient(base_url=daemon.http.url, headers=bearer(daemon)) as http:
            reply = await http.get("/api/status", headers=origin)
            assert reply.headers["access-control-allow-origin"] == "http://app.example"
            other = await http.get("/api/status", headers={"Origin": "http://evil.example"})
            assert "access-control-allow-origin" not in other.headers


async def test_health_and_openapi(shim: tuple[Daemon, str]) -> None:
    daemon, url = shim
    async with httpx.AsyncClient(base_url=url, headers=bearer(daemon)) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        spec = (await http.get("/openapi.json")).json()
        assert spec["openapi"] == "3.2.0"
        assert set(spec["paths"]) == {
            "/api/status",
            "/api/status/stream",
            "/healthz",
            "/openapi.json",
        }
        assert spec["servers"] == [{"url": url}]
        assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
        assert spec["security"] == [{"bearer": []}]
        assert spec["paths"]["/healthz"]["get"]["security"] == []
        assert spec["paths"]["/api/status"]["get"]["security"] == [{"bearer": []}]


def test_a_non_loopback_address_needs_explicit_configuration() -> None:
    for listen in ("0.0.0.0:7433", "192.168.1.10:7433", "example.com:80", "[::]:7433"):
        with pytest.raises(ConfigError, match="loopback only"):
            load_config(environ={}, overrides={"http.listen": listen})
    allowed = load_config(
        environ={}, overrides={"http.listen": "0.0.0.0:0", "http.allow_remote": True}
    )
    assert allowed.http.enabled and allowed.http.address == ("0.0.0.0", 0)
    for listen, address in [("7433", ("127.0.0.1", 7433)), ("[::1]:80", ("::1", 80))]:
        assert load_config(environ={}, overrides={"http.listen": listen}).http.address == address
    env = load_config(environ={"SIMPLEAIDE_HTTP": "localhost:9000"}).http
    assert env.enabled and env.address == ("localhost", 9000)


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("٨٠٨٠", "is not HOST:PORT or PORT"),
        ("²", "is not HOST:PORT or PORT"),
        ("127.0.0.1:８０", "the port must be 0-65535"),
        ("127.0.0.1:²", "the port must be 0-65535"),
    ],
)
def test_a_listen_port_is_ascii_digits(listen: str, expected: str) -> None:
    # ``str.isdigit`` takes any script's digits and superscripts (``int("²")`` fails).
    with pytest.raises(ConfigError, match=expected):
        load_config(environ={}, overrides={"http.listen": listen})


def simpleaided(short_tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the daemon's command to its end (these runs fail at start-up)."""
    argv = [sys.executable, "-m", "simpleaided", "--socket", str(short_tmp / "s.sock"), *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIMPLEAIDE_", "XDG_"))}
    env["HOME"] = str(short_tmp)  # never the user's own folders
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env, check=False)


def test_the_command_refuses_a_remote_bind_with_one_line(short_tmp: Path) -> None:
    done = simpleaided(short_tmp, "--http", "0.0.0.0:7433")
    assert done.returncode == 2
    assert "loopback only" in done.stderr and "Traceback" not in done.stderr


# -- fuzzing the described API ----------------------------------------------------------------


@pytest.fixture(scope="module")
def shim_url() -> Iterator[tuple[str, str]]:
    """A real daemon process with the shim on a free port, and its token (schemathesis calls
    are synchronous, so the daemon runs beside the test, not in its event loop)."""
    from simpleaide.client import Client

    home = Path(tempfile.mkdtemp(prefix="sa-", dir="/tmp"))
    sock = home / "d.sock"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIMPLEAIDE_", "XDG_"))}
    env.update(HOME=str(home), XDG_STATE_HOME=str(home / "state"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "simpleaided", "--socket", str(sock), "--http", "127.0.0.1:0"],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    try:
        with Client(str(sock), timeout=10) as client:
            for _ in range(200):
                if sock.exists() and client.ping():
                    break
                anyio.run(anyio.sleep, 0.05)
            url: str = client.call("status.get")["api"]["url"]
            token: str = client.call("http.open")["token"]  # bound to this shim's address
        yield url, token
    finally:
        proc.terminate()
        proc.wait(timeout=15)


_FUZZED = openapi_document("http://127.0.0.1")
# Every call carries the token (going without it is test_http_security's): the fuzzer is not
# told of it, or it would try calls that lack it and still send it.
del _FUZZED["security"]
for _operations in _FUZZED["paths"].values():
    for _operation in _operations.values():
        _operation.pop("security", None)
# The event stream never ends: schemathesis reads it up to this many events (each checked
# against the description's itemSchema), then hangs up. The first comes at once.
STREAM_EVENTS = 1
# A workspace path the schema takes may still be refused with 400, as its description says in
# words, for the two rules a JSON Schema cannot state: a path in a kernel tree (/proc: no
# pattern without lookaround can refuse a prefix), and over 4096 bytes in UTF-8 (maxLength
# counts characters).
ACCEPTED = ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]
schema = schemathesis.openapi.from_dict(
    _FUZZED,
    config=SchemathesisConfig.from_dict(
        {
            "max-stream-events": STREAM_EVENTS,
            "checks": {"positive_data_acceptance": {"expected-statuses": ACCEPTED}},
        }
    ),
)


@schema.parametrize()
def test_the_api_keeps_to_its_description(
    case: schemathesis.Case, shim_url: tuple[str, str]
) -> None:
    url, token = shim_url
    # As the console's page calls: with the token, from the shim's own origin (so a method
    # that is not served is told 405, not refused for a foreign origin first).
    headers = {"Authorization": f"Bearer {token}", "Origin": url}
    case.call_and_validate(base_url=url, headers=headers)


async def test_the_streams_events_keep_to_their_description(
    shim: tuple[Daemon, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both kinds of event (``status``, then ``ping`` when nothing changes), read by
    schemathesis against the description's ``itemSchema``, after a reconnection."""
    from simpleaided.transports.http import status as status_routes

    monkeypatch.setattr(status_routes, "HEARTBEAT_SECONDS", 0.2)
    daemon, url = shim
    described = schemathesis.openapi.from_dict(
        _FUZZED, config=SchemathesisConfig.from_dict({"max-stream-events": 3})
    )
    case = described["/api/status/stream"]["GET"].Case(headers={"Last-Event-ID": "7"})
    reply = await anyio.to_thread.run_sync(
        lambda: case.call_and_validate(base_url=url, headers=bearer(daemon))
    )
    names = [line for line in reply.text.splitlines() if line.startswith("event:")]
    assert names == ["event: status", "event: ping", "event: ping"]


async def test_the_icon_is_served_without_the_token_and_kept_a_day(
    shim: tuple[Daemon, str],
) -> None:
    daemon, url = shim
    async with httpx.AsyncClient(base_url=url) as http:  # no token: the console's files
        icon = await http.get("/favicon.ico")
        assert icon.status_code == 200
        assert icon.headers["content-type"] == "image/x-icon"
        assert icon.headers["cache-control"] == "max-age=86400"
        assert icon.content[:4] == b"\x00\x00\x01\x00"  # an icon resource
        again = await http.get("/favicon.ico", headers={"If-None-Match": icon.headers["etag"]})
        assert again.status_code == 304
        assert (await http.get("/static/favicon.ico")).content == icon.content
        svg = await http.get("/static/favicon.svg")
        assert svg.status_code == 200 and svg.headers["content-type"] == "image/svg+xml"
        assert svg.headers["cache-control"] == "no-cache"


def raw_get(url: str, target: bytes, headers: bytes = b"") -> bytes:
    """One GET with the request target sent exactly as given (clients normalise ``..``),
    and ``headers`` (header lines, each after a CRLF)."""
    return raw_request(url, b"GET " + target + b" HTTP/1.1\r\nHost: localhost" + headers)


async def test_if_none_match_lists_star_and_weak_tags(shim: tuple[Daemon, str]) -> None:
    # Every answer with an ETag: the status document's (a weak one), the description's and the
    # console's files' (strong ones). If-None-Match compares weakly (RFC 9110, 13.1.2).
    daemon, url = shim
    async with httpx.AsyncClient(base_url=url, headers=bearer(daemon)) as http:
        assert (await http.get("/api/status")).headers["etag"].startswith('W/"')
        for path in ("/api/status", "/openapi.json", "/", "/favicon.ico", "/static/favicon.svg"):
            etag = (await http.get(path)).headers["etag"]
            opaque = etag.removeprefix("W/")
            for header in (f'"other", {etag}', "*", opaque, f"W/{opaque}", f'"a",W/{opaque} ,"b"'):
                reply = await http.get(path, headers={"If-None-Match": header})
                assert reply.status_code == 304, (path, header)
                assert reply.headers["etag"] == etag and reply.content == b""
            # The list in two header fields.
            both = [("If-None-Match", '"other"'), ("If-None-Match", f"W/{opaque}")]
            assert (await http.get(path, headers=both)).status_code == 304, path
            # A "*" matches all only as the whole field: not in a malformed one, nor in a list.
            for header in ('"other"', f'"x{opaque[1:]}', opaque[:-2] + '"', "xyz*", '"other", *'):
                reply = await http.get(path, headers={"If-None-Match": header})
                assert reply.status_code == 200, (path, header)


async def test_a_head_request_on_the_stream_leaves_nothing_behind(
    shim: tuple[Daemon, str],
) -> None:
    daemon, url = shim
    async with httpx.AsyncClient(base_url=url, timeout=5, headers=bearer(daemon)) as http:
        head = await http.head("/api/status/stream")
        assert head.status_code == 200
        assert head.headers["content-type"].startswith("text/event-stream")
        assert (await http.get("/healthz")).status_code == 200  # the connection still serves
    assert daemon.events.subscriptions == 0


async def test_event_streams_that_end_leave_no_subscription(shim: tuple[Daemon, str]) -> None:
    daemon, url = shim
    for _ in range(5):
        async with (
            httpx.AsyncClient(base_url=url, timeout=5, headers=bearer(daemon)) as http,
            http.stream("GET", "/api/status/stream") as stream,
        ):
            await anext(stream.aiter_lines())
    with anyio.fail_after(5):
        while daemon.events.subscriptions:  # noqa: ASYNC110  # a count, no event to wait on
            await anyio.sleep(0.02)


async def test_the_stream_refreshes_words_that_age_and_pings_otherwise(
    shim: tuple[Daemon, str],
    socket_path: Path,
    workspace: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from simpleaided.transports.http import status as status_routes

    monkeypatch.setattr(status_routes, "HEARTBEAT_SECONDS", 0.3)
    daemon, url = shim
    async with (
        await RpcClient.connect(socket_path) as rpc,
        httpx.AsyncClient(base_url=url, timeout=10, headers=bearer(daemon)) as http,
        http.stream("GET", "/api/status/stream") as stream,
    ):
        events: list[tuple[str, str]] = []
        lines = stream.aiter_lines()

        async def next_event() -> tuple[str, str]:
            name = ""
            async for line in lines:
                if line.startswith("event:"):
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("data:"):
                    return name, line.split(":", 1)[1]
            raise AssertionError("the stream ended")

        assert (await next_event())[0] == "status"
        with anyio.fail_after(3):
            while (await next_event())[0] != "ping":
                pass  # nothing changes: pings, so a page knows the daemon is there
        await rpc.call("runs.create", workspace=str(workspace))
        with anyio.fail_after(4):
            # No further change is made: the run's age goes from 0s to 1s in the chips' words,
            # and the stream sends the document again for that alone.
            while True:
                name, data = await next_event()
                if name == "status":
                    runs_chip = json.loads(data)["chips"][4]
                    events.append((name, runs_chip["tooltip"]))
                    if runs_chip["tooltip"].endswith(" 1s ago"):
                        break


async def test_a_stream_ends_when_its_workspace_is_removed(
    shim: tuple[Daemon, str], socket_path: Path, workspace: Path
) -> None:
    daemon, url = shim
    async with await RpcClient.connect(socket_path) as rpc:
        await rpc.call("workspaces.add", path=str(workspace))
        async with (
            httpx.AsyncClient(base_url=url, timeout=10, headers=bearer(daemon)) as http,
            http.stream("GET", "/api/status/stream", params={"workspace": str(workspace)}) as s,
        ):
            lines = s.aiter_lines()
            await anext(lines)
            await rpc.call("workspaces.remove", path=str(workspace))
            with anyio.fail_after(3):
                async for _ in lines:
                    pass  # ends: the client reconnects and learns why (404)
            again = await http.get("/api/status/stream", params={"workspace": str(workspace)})
            assert again.status_code == 404
    assert daemon.events.subscriptions == 0


async def test_a_workspace_removed_before_its_stream_starts_ends_the_stream_cleanly(
    shim: tuple[Daemon, str],
    socket_path: Path,
    workspace: Path,
    short_tmp: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Removed between the route's check and the stream's first chunk: the subscription is
    refused (NotFound); the stream ends at once, nothing is left open, nothing is logged as
    an error (the client reconnects and learns why)."""
    daemon, url = shim
    subscribe = daemon.events.subscribe_status
    gone = str(short_tmp / "gone")

    def removed_meanwhile(subscriber: Any, workspace: str | None) -> dict[str, Any]:
        return subscribe(subscriber, gone)  # as if removed: NotFound, from the hub itself

    async with await RpcClient.connect(socket_path) as rpc:
        await rpc.call("workspaces.add", path=str(workspace))
    monkeypatch.setattr(daemon.events, "subscribe_status", removed_meanwhile)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with httpx.AsyncClient(base_url=url, timeout=10, headers=bearer(daemon)) as http:
            with anyio.fail_after(5):
                reply = await http.get("/api/status/stream", params={"workspace": str(workspace)})
            assert reply.status_code == 200 and reply.content == b""
            assert (await http.get("/healthz")).status_code == 200
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
    assert daemon.events.subscriptions == 0
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_a_port_in_use_stops_the_start_with_one_clear_error(
    isolated_env: Path, socket_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        daemon = make_daemon(
            socket_path, isolated_env / "state", **{"http.listen": f"127.0.0.1:{port}"}
        )
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port} for the HTTP shim"):
            await daemon.run()
    assert not socket_path.exists()  # nothing was served


def test_the_command_says_so_too(short_tmp: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = simpleaided(short_tmp, "--http", str(port))
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"simpleaided: cannot start: cannot listen on 127.0.0.1:{port} for the HTTP shim: "
        "Address already in use"
    )
    assert "Traceback" not in done.stderr


def test_a_remote_bind_in_the_config_file_or_environment_is_refused(short_tmp: Path) -> None:
    config = short_tmp / "config.toml"
    config.write_text('[http]\nenabled = true\nlisten = "0.0.0.0:7433"\n')
    with pytest.raises(ConfigError, match="loopback only"):
        load_config(config_file=str(config), environ={})
    with pytest.raises(ConfigError, match="loopback only"):
        load_config(environ={"SIMPLEAIDE_HTTP": "10.0.0.1:7433"})
