"""JSON-RPC over the shim's WebSocket (``GET /rpc``) on the real daemon: the same methods,
subscriptions, errors, limits and fairness as the socket; the handshake's checks (token,
Origin, Host, subprotocol); the methods refused there; closing on stop and on rotation."""

from __future__ import annotations

import base64
import itertools
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from starlette.types import Message
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin, Subprotocol

from simpleaided.app.daemon import Daemon
from simpleaided.transports.http.websocket import POLICY_VIOLATION, RpcEndpoint
from tests.support.daemon import make_daemon, running_daemon
from tests.support.dispatch import record_handled
from tests.support.rpc import Conversation, RpcClient
from tests.support.waiting import eventually

SHIM = {"http.listen": "127.0.0.1:0"}
JSONRPC = "simpleaide.jsonrpc"
PASS = "correct horse battery staple"
SECRET = "s3cr3t-value-0f-the-api-key"
PING = {"jsonrpc": "2.0", "method": "daemon.ping", "id": 1}
FAST_KDF = {"vault.kdf_memory_kib": 8192, "vault.kdf_iterations": 1, "vault.kdf_lanes": 1}


def token_of(daemon: Daemon) -> str:
    token: str = daemon.http.token()
    assert len(token) == 64
    return token


def ws_connect(
    daemon: Daemon,
    *,
    token: str | None = None,
    subprotocols: list[str] | None = None,
    origin: str | None = "own",
    query: str = "",
    host: str | None = None,
) -> connect:
    """A WebSocket connection to ``/rpc`` as the console opens it, unless told otherwise:
    both subprotocols, the shim's own Origin. ``host``: the name in the URL (and so in the
    ``Host`` header); the connection goes to the shim's port on 127.0.0.1 anyway."""
    url = daemon.http.url
    port = int(url.rsplit(":", 1)[1])
    if subprotocols is None:
        subprotocols = [JSONRPC, f"simpleaide.token.{token or token_of(daemon)}"]
    return connect(
        f"ws://{host or '127.0.0.1'}:{port}/rpc{query}",
        host="127.0.0.1",
        port=port,
        subprotocols=[Subprotocol(p) for p in subprotocols],
        origin=Origin(url) if origin == "own" else Origin(origin) if origin else None,
        proxy=None,
        compression=None,
        open_timeout=5,
        max_size=None,
    )


class WsRpc(Conversation):
    """JSON-RPC over an open WebSocket: one text frame per message."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self.notifications: list[dict[str, Any]] = []

    async def send_message(self, data: bytes) -> None:
        await self.ws.send(data.decode())

    async def receive_message(self) -> Any:
        with anyio.fail_after(10):
            frame = await self.ws.recv()
        assert isinstance(frame, str), "a text frame"
        return json.loads(frame)

    async def request(self, method: str, **params: Any) -> dict[str, Any]:
        message = {"jsonrpc": "2.0", "method": method, "params": params, "id": next(self._ids)}
        reply: dict[str, Any] = await self.exchange(message)
        assert reply["id"] == message["id"]
        return reply

    async def call(self, method: str, **params: Any) -> Any:
        reply = await self.request(method, **params)
        assert "error" not in reply, reply
        return reply["result"]


async def closed_with(ws: ClientConnection) -> int | None:
    """The close code the server sent, once the connection is closed (within 5 s)."""
    with anyio.fail_after(5):
        try:
            while True:
                await ws.recv()
        except ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd is not None else None


@pytest.fixture
async def daemon(isolated_env: Path, socket_path: Path) -> AsyncIterator[Daemon]:
    """A daemon serving the shim on a free loopback port."""
    async with running_daemon(socket_path, isolated_env / "state", **SHIM) as started:
        yield started


async def test_a_method_answers_over_the_websocket(daemon: Daemon, socket_path: Path) -> None:
    async with ws_connect(daemon) as ws:
        assert ws.subprotocol == JSONRPC  # the token is never echoed back
        assert ws.response is not None
        assert token_of(daemon) not in str(ws.response.headers)
        rpc = WsRpc(ws)
        assert await rpc.call("daemon.ping") == await _socket_call(socket_path, "daemon.ping")
        info = await rpc.call("daemon.info")
        assert info["connections"]["open"] == 1
        # Errors are the socket's: unknown method, invalid params.
        assert (await rpc.request("no.such"))["error"]["code"] == -32601
        assert (await rpc.request("runs.get", runId=5))["error"]["code"] == -32602


async def test_run_events_arrive_over_the_websocket(
    daemon: Daemon, socket_path: Path, workspace: Path
) -> None:
    async with ws_connect(daemon) as ws, await RpcClient.connect(socket_path) as sock:
        rpc = WsRpc(ws)
        await rpc.call("runs.subscribe")
        run = await sock.call("runs.create", workspace=str(workspace))
        events = (await rpc.notification("run.event"))["events"]
        assert [(e["type"], e["run"]["id"]) for e in events] == [("created", run["id"])]
        await sock.call("runs.cancel", runId=run["id"])
        kinds: list[str] = []
        with anyio.fail_after(5):
            while "status" not in kinds:
                kinds += [e["type"] for e in (await rpc.notification("run.event"))["events"]]


async def test_a_batch_is_one_text_frame(daemon: Daemon) -> None:
    async with ws_connect(daemon) as ws:
        rpc = WsRpc(ws)
        replies = await rpc.exchange(
            [
                {"jsonrpc": "2.0", "method": "daemon.ping", "id": 1},
                {"jsonrpc": "2.0", "method": "daemon.ping"},  # a notification: no reply
                {"jsonrpc": "2.0", "method": "no.such", "id": 2},
                {"jsonrpc": "2.0", "method": "vault.get", "params": {"name": "x"}, "id": 3},
            ]
        )
        assert [r["id"] for r in replies] == [1, 2, 3]
        assert "result" in replies[0]
        assert replies[1]["error"]["code"] == -32601
        assert replies[2]["error"]["code"] == -32060  # refused in a batch too


async def test_a_malformed_message_gets_a_parse_error_and_the_daemon_goes_on(
    daemon: Daemon, socket_path: Path
) -> None:
    async with ws_connect(daemon) as ws, await RpcClient.connect(socket_path) as sock:
        rpc = WsRpc(ws)
        await ws.send("{not json")
        assert (await rpc.receive_message())["error"]["code"] == -32700
        await ws.send("")
        assert (await rpc.receive_message())["error"]["code"] == -32700
        assert await rpc.call("daemon.ping")  # the same connection goes on
        # A binary frame breaks the protocol: a parse error, then the connection closes.
        await ws.send(b'{"jsonrpc": "2.0", "method": "daemon.ping", "id": 9}')
        error = await rpc.receive_message()
        assert error["error"]["code"] == -32700 and "text frame" in error["error"]["message"]
        assert await closed_with(ws) == 1003
        assert await sock.call("daemon.ping")  # everyone else is served


async def test_an_oversized_message_gets_32040_then_close_1009(
    isolated_env: Path, socket_path: Path
) -> None:
    limit = 4096
    settings = {**SHIM, "limits.max_message_bytes": limit}
    async with running_daemon(socket_path, isolated_env / "state", **settings) as daemon:
        big = {
            "jsonrpc": "2.0",
            "method": "daemon.ping",
            "params": {"x": "é" * (limit // 2)},
            "id": 1,
        }
        async with ws_connect(daemon) as ws:
            await ws.send(json.dumps(big, ensure_ascii=False))  # over in bytes, not in chars
            error = await WsRpc(ws).receive_message()
            assert error["error"]["code"] == -32040 and str(limit) in error["error"]["message"]
            assert await closed_with(ws) == 1009
        async with ws_connect(daemon) as ws:  # far over: the protocol's own limit, same code
            await ws.send("x" * (3 * limit))
            assert await closed_with(ws) == 1009
        async with ws_connect(daemon) as ws:  # just under: read and answered (refused params)
            fits = {"jsonrpc": "2.0", "method": "daemon.ping", "params": {}, "id": 1}
            fits["params"] = {"x": "a" * (limit - len(json.dumps(fits)) - 10)}
            assert (await WsRpc(ws).exchange(fits))["error"]["code"] == -32602
            assert await WsRpc(ws).call("daemon.ping")
        assert await _socket_call(socket_path, "daemon.ping")


async def test_methods_that_hand_out_secrets_are_refused_and_change_nothing(
    isolated_env: Path, socket_path: Path, short_tmp: Path
) -> None:
    vault_file = short_tmp / "data" / "vault.json"
    settings = {**SHIM, **FAST_KDF, "vault.file": str(vault_file)}
    async with (
        running_daemon(socket_path, isolated_env / "state", **settings) as daemon,
        ws_connect(daemon) as ws,
        await RpcClient.connect(socket_path) as sock,
    ):
        rpc = WsRpc(ws)
        refused = await rpc.request("vault.init", passphrase=PASS)
        assert refused["error"]["code"] == -32060
        assert "`simpleaide`" in refused["error"]["message"]
        assert not vault_file.exists()
        assert (await sock.call("vault.status"))["state"] == "uninitialized"

        await sock.call("vault.init", passphrase=PASS)
        await sock.call("vault.set", name="API_KEY", value=SECRET)
        before = vault_file.read_bytes()
        for method, params in [
            ("vault.get", {"name": "API_KEY"}),
            ("vault.changePassphrase", {"passphrase": PASS, "newPassphrase": PASS + " 2"}),
            ("vault.init", {"passphrase": PASS + " 2"}),
            ("http.open", {}),
            ("http.rotateToken", {}),
            ("vault.get", {}),  # refused before its params are read
        ]:
            reply = await rpc.request(method, **params)
            assert reply["error"]["code"] == -32060, (method, reply)
            assert method in reply["error"]["message"]
            assert SECRET not in json.dumps(reply)
        assert vault_file.read_bytes() == before
        assert (await sock.call("vault.get", name="API_KEY"))["value"] == SECRET
        old_token = token_of(daemon)
        assert daemon.http.token() == old_token  # http.rotateToken did not happen
        # What is not refused works as on the socket: the names, never the values.
        assert await rpc.call("vault.list") == {"names": ["API_KEY"]}
        await rpc.call("vault.lock")
        assert (await sock.call("vault.status"))["state"] == "locked"


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("no token", 401),
        ("wrong token", 401),
        ("a token one character short", 401),
        ("two tokens", 401),
        ("the token only in the query string", 401),
        ("no jsonrpc subprotocol", 403),
        ("a foreign Origin", 403),
        ("the Origin of another loopback port", 403),
        ("Origin null", 403),
        ("no Origin", 403),
        ("a foreign Host", 403),
    ],
)
async def test_a_bad_handshake_is_refused_before_it_is_accepted(
    daemon: Daemon, case: str, status: int
) -> None:
    token = token_of(daemon)
    port = int(daemon.http.url.rsplit(":", 1)[1])
    token_proto = f"simpleaide.token.{token}"
    cases: dict[str, dict[str, Any]] = {
        "no token": {"subprotocols": [JSONRPC]},
        "wrong token": {"token": "0" * 64},
        "a token one character short": {"token": token[:-1]},
        "two tokens": {"subprotocols": [JSONRPC, token_proto, "simpleaide.token.x"]},
        "the token only in the query string": {
            "subprotocols": [JSONRPC],
            "query": f"?token={token}",
        },
        "no jsonrpc subprotocol": {"subprotocols": [token_proto]},
        "a foreign Origin": {"origin": "http://evil.example"},
        "the Origin of another loopback port": {"origin": f"http://127.0.0.1:{port + 1}"},
        "Origin null": {"origin": "null"},
        "no Origin": {"origin": None},
        "a foreign Host": {"host": "evil.example"},
    }
    options = cases[case]
    accepted = daemon.server.accepted
    with pytest.raises(InvalidStatus) as refused:
        async with ws_connect(daemon, **options):
            pass
    response = refused.value.response
    assert response.status_code == status
    assert token not in response.body.decode() and token not in str(response.headers)
    assert daemon.server.accepted == accepted and daemon.server.open == 0


async def test_the_connection_limit_counts_socket_and_websocket_alike(
    isolated_env: Path, socket_path: Path
) -> None:
    settings = {**SHIM, "limits.max_connections": 2}
    async with (
        running_daemon(socket_path, isolated_env / "state", **settings) as daemon,
        await RpcClient.connect(socket_path) as sock,
    ):
        async with ws_connect(daemon) as ws:
            info = await sock.call("daemon.info")
            assert info["connections"]["open"] == 2
            async with ws_connect(daemon) as third:  # over the limit: told why, then closed
                error = await WsRpc(third).receive_message()
                assert error["error"]["code"] == -32040
                assert "limits.max_connections" in error["error"]["message"]
                assert await closed_with(third) == 1013
            async with await RpcClient.connect(socket_path) as another:
                refused = await another.exchange(PING)
                assert refused["error"]["code"] == -32040
            assert await WsRpc(ws).call("daemon.ping")
        await _wait_for_connections(daemon, 1)  # the WebSocket's place is free again
        async with await RpcClient.connect(socket_path) as another:
            info = await another.call("daemon.info")
            assert info["connections"]["open"] == 2
            assert info["connections"]["refused"] == 2


async def test_a_flooding_websocket_does_not_starve_a_socket_client(
    daemon: Daemon, socket_path: Path
) -> None:
    """Counted, not timed (as the socket's fairness tests): flood requests handled per round
    trip of a socket client that waits for each reply."""
    handled = record_handled(daemon)
    ping = json.dumps({"jsonrpc": "2.0", "method": "daemon.ping", "id": "flood"})
    sent = answered = 0
    flooding = anyio.Event()
    stop = anyio.Event()
    stopped = anyio.Event()

    async with ws_connect(daemon) as ws, await RpcClient.connect(socket_path) as sock:

        async def flood() -> None:
            # Bursts that never wait for their replies (the client shares the test's event
            # loop with the daemon: each burst must let the others run).
            nonlocal sent
            while not stop.is_set():
                for _ in range(100):
                    await ws.send(ping)
                sent += 100
                await anyio.lowlevel.checkpoint()
            stopped.set()

        async def count() -> None:
            nonlocal answered
            while True:
                await ws.recv()
                answered += 1
                if answered == 100:
                    flooding.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(flood)
            tg.start_soon(count)
            with anyio.fail_after(10):
                await flooding.wait()
            during = answered
            per_round_trip = []
            for _ in range(30):
                before = handled.count("flood")
                assert await sock.call("daemon.ping") == "pong"
                per_round_trip.append(handled.count("flood") - before)
            served_meanwhile = answered - during
            stop.set()
            await stopped.wait()
            await eventually(lambda: answered == sent, 10)  # every request is answered
            tg.cancel_scope.cancel()
    assert served_meanwhile > 30  # the flood went on all along
    # A round trip spans a few trips through the event loop: a flood request in each, not
    # a whole burst of them ahead of the waiting client's request.
    assert sorted(per_round_trip)[len(per_round_trip) // 2] <= 10, per_round_trip


async def test_the_token_never_reaches_the_log(
    daemon: Daemon, socket_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = token_of(daemon)
    async with ws_connect(daemon) as ws:
        rpc = WsRpc(ws)
        await rpc.call("daemon.ping")
        await rpc.request("vault.get", name="x")
        await ws.send(b"binary")
        await closed_with(ws)
    for options in (
        {"subprotocols": [JSONRPC], "query": f"?token={token}"},
        {"subprotocols": [JSONRPC, f"simpleaide.token.{token}"], "origin": "http://evil.x"},
        {"subprotocols": [f"simpleaide.token.{token}"]},
        {"token": token[:-1] + ("1" if token.endswith("0") else "0")},
    ):
        with pytest.raises(InvalidStatus):
            async with ws_connect(daemon, **options):
                pass
    # The daemon's records (the test's own client logs what it sends, the token included).
    logged = [r.getMessage() for r in caplog.records if not r.name.startswith("websockets.")]
    assert any("refused a WebSocket connection on /rpc" in line for line in logged)
    assert not [line for line in logged if token[:-1] in line]


async def test_the_websockets_close_when_the_daemon_stops(
    isolated_env: Path, socket_path: Path
) -> None:
    daemon = make_daemon(socket_path, isolated_env / "state", **SHIM)
    async with anyio.create_task_group() as tg:
        await tg.start(daemon.run)
        async with ws_connect(daemon) as ws, ws_connect(daemon) as subscribed:
            rpc = WsRpc(subscribed)
            await rpc.call("status.subscribe")
            assert await WsRpc(ws).call("daemon.ping")
            started = anyio.current_time()
            daemon.request_stop()
            assert await closed_with(ws) == 1001
            assert await closed_with(subscribed) == 1001
            assert anyio.current_time() - started < 3
    # (the task group returned: the daemon stopped)


async def test_rotating_the_token_closes_the_websockets_opened_with_it(
    daemon: Daemon, socket_path: Path
) -> None:
    old = token_of(daemon)
    async with ws_connect(daemon) as ws, await RpcClient.connect(socket_path) as sock:
        rpc = WsRpc(ws)
        await rpc.call("runs.subscribe")
        rotated = await sock.call("http.rotateToken")
        assert rotated["token"] != old
        assert await closed_with(ws) == 1008
    with pytest.raises(InvalidStatus) as refused:
        async with ws_connect(daemon, token=old):
            pass
    assert refused.value.response.status_code == 401
    async with ws_connect(daemon, token=rotated["token"]) as ws:
        assert await WsRpc(ws).call("daemon.ping")
    await _wait_for_connections(daemon, 0)


async def test_a_rotation_while_the_handshake_is_accepted_closes_it_too(daemon: Daemon) -> None:
    # The token is checked, then the accept is sent (an await): a rotation in between must
    # still close the connection, with nothing served on it. Driven at the ASGI level, the
    # rotation made by the server's own send of the accept.
    endpoint = RpcEndpoint(daemon.server, token=lambda: "t" * 64, cors_origins=[])
    scope = {
        "type": "websocket",
        "path": "/rpc",
        "headers": [(b"host", b"127.0.0.1:1"), (b"origin", b"http://127.0.0.1:1")],
        "subprotocols": [JSONRPC, "simpleaide.token." + "t" * 64],
        "client": ("127.0.0.1", 1),
    }
    incoming: list[dict[str, Any]] = [
        {"type": "websocket.connect"},
        {"type": "websocket.receive", "text": json.dumps(PING)},
        {"type": "websocket.disconnect", "code": 1000},
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0) if incoming else {"type": "websocket.disconnect", "code": 1000}

    async def send(message: Message) -> None:
        sent.append(message)
        if message["type"] == "websocket.accept":
            endpoint.close_all(POLICY_VIOLATION)  # http.rotateToken, during the accept
            await anyio.lowlevel.checkpoint()

    with anyio.fail_after(5):
        await endpoint(scope, receive, send)
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.close"], sent
    assert sent[1]["code"] == POLICY_VIOLATION
    assert not endpoint.streams and daemon.server.open == 0


async def _wait_for_connections(daemon: Daemon, count: int) -> None:
    await eventually(lambda: daemon.server.open == count, 5)


async def _socket_call(socket_path: Path, method: str, **params: Any) -> Any:
    async with await RpcClient.connect(socket_path) as sock:
        return await sock.call(method, **params)


async def test_a_terminal_is_driven_over_the_websocket_as_over_the_socket(
    daemon: Daemon, socket_path: Path
) -> None:
    async with ws_connect(daemon) as ws, await RpcClient.connect(socket_path) as sock:
        created = await sock.call(
            "terminals.create", argv=["bash", "--norc", "--noprofile", "-i"], env={"PS1": "$ "}
        )
        rpc = WsRpc(ws)
        attached = await rpc.call("terminals.attach", id=created["id"], cols=90, rows=20)
        await rpc.call("terminals.input", id=created["id"], text="echo over-the-$((6*7))-web\n")
        seen = base64.b64decode(attached["replay"])
        with anyio.fail_after(5):
            while b"over-the-42-web" not in seen:
                output = await rpc.notification("terminal.output")
                data = base64.b64decode(output["data"])
                seen += data
                await rpc.call(
                    "terminals.ack", id=created["id"], offset=output["offset"] + len(data)
                )
        listed = await sock.call("terminals.list")
        assert (listed[0]["attached"], listed[0]["cols"]) == (1, 90)
    # Without the token, or from a foreign Origin, the handshake fails: no terminal method
    # is reached, nothing is created.
    for options in ({"subprotocols": [JSONRPC]}, {"origin": "http://evil.example"}):
        with pytest.raises(InvalidStatus):
            async with ws_connect(daemon, **options):
                pass
    assert len(daemon.terminals) == 1


async def test_small_frames_in_a_row_are_not_held_back_by_nagle(daemon: Daemon) -> None:
    """Two replies in a row (a keystroke's reply, then its echo) leave at once: with Nagle's
    algorithm on, the second waits for the client's delayed ACK, ~40 ms each time."""
    async with ws_connect(daemon) as ws:
        rpc = WsRpc(ws)
        await rpc.call("daemon.ping")
        started = anyio.current_time()
        for _ in range(5):
            for n in (1, 2):  # two requests sent before either reply is read
                await ws.send(json.dumps({**PING, "id": n}))
            assert {json.loads(await ws.recv())["id"] for _ in (1, 2)} == {1, 2}
        took = anyio.current_time() - started
    assert took < 0.15, f"5 pairs took {took * 1000:.0f} ms (Nagle's 40 ms each?)"
