"""The terminals' clients as the benchmark drives them: the daemon's over its Unix socket (as
the CLI's ``term attach`` talks: requests for input, notifications for acknowledgements, an
acknowledgement whenever what was received is consumed), the daemon's over the console's
WebSocket (as the web console talks: keys and acknowledgements as notifications, an
acknowledgement after each chunk written, other calls requests) and terminado's (JSON
arrays, ``["stdin", text]`` in, ``["stdout", text]`` out, no flow control).

Every client decodes what it receives (JSON, then base64 for the daemon's) and throws the
bytes away: what a real client would then draw is not what is measured.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import socket
import time
from collections.abc import Callable
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Origin, Subprotocol

from tests.bench.terminals_rivals import READY

TIMEOUT = 120.0  # no single wait of a measurement takes this long unless something broke
_RECV = 1 << 20


class RpcError(Exception):
    """An error reply."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class Tracker:
    """What a client received of one terminal's output: where it is, when the last byte came,
    and a tail to look for a marker in (across chunks)."""

    def __init__(self, offset: int = 0) -> None:
        self.offset = offset  # where the next live byte belongs
        self.received = 0  # live bytes since the tracker was made
        self.messages = 0  # output notifications since the tracker was made
        self.last_at = 0.0  # time.perf_counter() when the last byte arrived
        self.tail = b""  # the last bytes received, to find a marker split between chunks
        self.exited: dict[str, Any] | None = None

    def output(self, params: dict[str, Any], keep: int) -> bytes:
        """Take one ``terminal.output``; its bytes."""
        data = binascii.a2b_base64(params["data"])
        self.offset = params["end"] if params.get("replay") else params["offset"] + len(data)
        self.received += len(data)
        self.messages += 1
        self.last_at = time.perf_counter()
        if keep:
            self.tail = (self.tail + data)[-keep:]
        return data


# -- the daemon over its Unix socket --------------------------------------------------------


class SocketClient:
    """One blocking connection to the daemon: newline-delimited JSON-RPC."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(path)
        self._ids = itertools.count(1)
        self._buffer = bytearray()
        self._scanned = 0  # the buffer holds no newline before this

    def close(self) -> None:
        """Close the connection (the daemon detaches it from everything)."""
        self.sock.close()

    def request(self, method: str, params: dict[str, Any]) -> int:
        """Send a request; its id."""
        request_id = next(self._ids)
        document = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        self.sock.sendall(orjson.dumps(document) + b"\n")
        return request_id

    def notify(self, method: str, params: dict[str, Any]) -> None:
        """Send a notification."""
        document = {"jsonrpc": "2.0", "method": method, "params": params}
        self.sock.sendall(orjson.dumps(document) + b"\n")

    @property
    def pending(self) -> bool:
        """Whether a whole message waits in the buffer (no need to wait for the socket)."""
        return self._buffer.find(b"\n", self._scanned) >= 0

    def receive_line(self) -> bytes:
        """The next message, undecoded."""
        while True:
            newline = self._buffer.find(b"\n", self._scanned)
            if newline >= 0:
                line = bytes(self._buffer[:newline])
                del self._buffer[: newline + 1]
                self._scanned = 0
                return line
            self._scanned = len(self._buffer)
            chunk = self.sock.recv(_RECV)
            if not chunk:
                raise ConnectionError("the daemon closed the connection")
            self._buffer += chunk

    def receive(self) -> dict[str, Any]:
        """The next message, decoded."""
        message: dict[str, Any] = orjson.loads(self.receive_line())
        return message

    def call(self, method: str, **params: Any) -> Any:
        """One call; its result (notifications that come first are dropped)."""
        request_id = self.request(method, params)
        while True:
            message = self.receive()
            if message.get("id") == request_id:
                if "error" in message:
                    raise RpcError(f"{method}: {message['error']}")
                return message["result"]

    # -- a terminal ---------------------------------------------------------------------

    def attach(self, terminal_id: str, keep: int = 64) -> Tracker:
        """Attach interactively (80 × 24); a tracker from the replay's end, holding its tail."""
        attached = self.call("terminals.attach", id=terminal_id, cols=80, rows=24)
        tracker = Tracker(attached["offset"])
        tracker.tail = binascii.a2b_base64(attached["replay"])[-keep:] if keep else b""
        return tracker

    def take(self, terminal_id: str, tracker: Tracker, keep: int, ack: bool = True) -> Any:
        """Take the next message: output and the exit go to ``tracker`` (the consumed output
        acknowledged once nothing else waits, as the CLI acknowledges what it has shown);
        returns the message."""
        message = self.receive()
        method = message.get("method")
        if method == "terminal.output":
            tracker.output(message["params"], keep)
            if ack and not self.pending:
                self.notify("terminals.ack", {"id": terminal_id, "offset": tracker.offset})
        elif method == "terminal.exited":
            tracker.exited = message["params"]
        return message

    def until(
        self, terminal_id: str, tracker: Tracker, done: Callable[[Tracker], bool], keep: int = 64
    ) -> None:
        """Take messages until ``done(tracker)``."""
        while not done(tracker):
            self.take(terminal_id, tracker, keep)

    def type(self, terminal_id: str, data: bytes) -> int:
        """Send keys (a request, as the CLI does); the request's id."""
        return self.request("terminals.input", {"id": terminal_id, "data": _b64(data)})


def socket_flood(client: SocketClient, terminal_id: str) -> tuple[float, int, int]:
    """Attach to the flood program, type its line, take the output until the exit: the
    seconds from the line typed to the last byte received, the bytes received and the
    messages that carried them."""
    tracker = client.attach(terminal_id, keep=0)
    began = time.perf_counter()
    client.type(terminal_id, b"\n")
    while tracker.exited is None:
        client.take(terminal_id, tracker, keep=0)
    return tracker.last_at - began, tracker.received, tracker.messages


def socket_echo(
    client: SocketClient, terminal_id: str, keys: list[bytes], warmup: int
) -> list[float]:
    """Each key typed and its echo waited for (and the input's reply, before the next key):
    each echo's round trip in µs."""
    tracker = client.attach(terminal_id)
    client.until(terminal_id, tracker, lambda t: READY in t.tail)
    samples: list[float] = []
    clock = time.perf_counter
    for k, key in enumerate(keys[:warmup] + keys):
        began = clock()
        request_id = client.type(terminal_id, key)
        echoed = replied = False
        tracker.tail = b""
        while not (echoed and replied):
            message = client.take(terminal_id, tracker, keep=16)
            if message.get("id") == request_id:
                replied = True
            if not echoed and key in tracker.tail:
                echoed = True
                if k >= warmup:
                    samples.append((tracker.last_at - began) * 1e6)
    return samples


# -- the daemon over the console's WebSocket ----------------------------------------------


def ws_connect(url: str, token: str) -> Any:
    """The console's WebSocket to the daemon at ``url`` (``http://host:port/``), opened as
    the page opens it: both subprotocols, the shim's own Origin."""
    base = url.rstrip("/")
    return connect(
        base.replace("http://", "ws://", 1) + "/rpc",
        subprotocols=[Subprotocol("simpleaide.jsonrpc"), Subprotocol(f"simpleaide.token.{token}")],
        origin=Origin(base),
        proxy=None,
        compression=None,
        max_size=None,
        open_timeout=30,
    )


class WsClient:
    """JSON-RPC over the console's WebSocket: one text frame per message."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._ids = itertools.count(1)

    async def request(self, method: str, params: dict[str, Any]) -> int:
        """Send a request; its id."""
        request_id = next(self._ids)
        document = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        await self.ws.send(orjson.dumps(document).decode())
        return request_id

    async def notify(self, method: str, params: dict[str, Any]) -> None:
        """Send a notification (no reply)."""
        document = {"jsonrpc": "2.0", "method": method, "params": params}
        await self.ws.send(orjson.dumps(document).decode())

    async def receive(self) -> dict[str, Any]:
        """The next message, decoded."""
        message: dict[str, Any] = orjson.loads(await self.ws.recv())
        return message

    async def call(self, method: str, **params: Any) -> Any:
        """One call; its result (notifications that come first are dropped)."""
        request_id = await self.request(method, params)
        while True:
            message = await self.receive()
            if message.get("id") == request_id:
                if "error" in message:
                    raise RpcError(f"{method}: {message['error']}")
                return message["result"]

    async def attach(self, terminal_id: str, keep: int = 64) -> Tracker:
        """Attach interactively (80 × 24); a tracker from the replay's end."""
        attached = await self.call("terminals.attach", id=terminal_id, cols=80, rows=24)
        tracker = Tracker(attached["offset"])
        tracker.tail = binascii.a2b_base64(attached["replay"])[-keep:] if keep else b""
        return tracker

    async def take(self, terminal_id: str, tracker: Tracker, keep: int) -> dict[str, Any]:
        """Take the next message; output is acknowledged at once (the console acknowledges
        each chunk once xterm.js has written it, with a notification)."""
        message = await self.receive()
        method = message.get("method")
        if method == "terminal.output":
            tracker.output(message["params"], keep)
            await self.notify("terminals.ack", {"id": terminal_id, "offset": tracker.offset})
        elif method == "terminal.exited":
            tracker.exited = message["params"]
        return message


async def ws_flood(client: WsClient, terminal_id: str) -> tuple[float, int, int]:
    """``socket_flood`` over the WebSocket."""
    tracker = await client.attach(terminal_id, keep=0)
    began = time.perf_counter()
    await client.request("terminals.input", {"id": terminal_id, "data": _b64(b"\n")})
    while tracker.exited is None:
        await client.take(terminal_id, tracker, keep=0)
    return tracker.last_at - began, tracker.received, tracker.messages


async def ws_echo(
    client: WsClient, terminal_id: str, keys: list[bytes], warmup: int
) -> list[float]:
    """``socket_echo`` over the WebSocket."""
    tracker = await client.attach(terminal_id)
    while READY not in tracker.tail:
        await client.take(terminal_id, tracker, keep=64)
    samples: list[float] = []
    clock = time.perf_counter
    for k, key in enumerate(keys[:warmup] + keys):
        began = clock()
        # A key goes as a notification, as the console sends one.
        await client.notify("terminals.input", {"id": terminal_id, "data": _b64(key)})
        echoed = False
        tracker.tail = b""
        while not echoed:
            await client.take(terminal_id, tracker, keep=16)
            if key in tracker.tail:
                echoed = True
                if k >= warmup:
                    samples.append((tracker.last_at - began) * 1e6)
    return samples


# -- terminado ------------------------------------------------------------------------------


def terminado_connect(url: str, origin: str) -> Any:
    """A WebSocket to one of terminado's routes (a new terminal for each)."""
    return connect(
        url, origin=Origin(origin), proxy=None, compression=None, max_size=None, open_timeout=30
    )


async def _terminado_setup(ws: ClientConnection) -> None:
    first = orjson.loads(await ws.recv())
    if first[0] != "setup":
        raise RuntimeError(f"terminado said {first!r} first")


async def terminado_flood(ws: ClientConnection) -> tuple[float, int, int]:
    """``socket_flood`` with terminado: the output until its ``disconnect`` (which it sends
    a tenth of a second after the end: ptyprocess's ``delayafterclose``, not counted)."""
    await _terminado_setup(ws)
    clock = time.perf_counter
    received = messages = 0
    began = last = clock()
    await ws.send('["stdin", "\\n"]')
    while True:
        message = orjson.loads(await ws.recv())
        if message[0] == "stdout":
            received += len(message[1].encode())
            messages += 1
            last = clock()
        elif message[0] == "disconnect":
            return last - began, received, messages


async def terminado_echo(ws: ClientConnection, keys: list[bytes], warmup: int) -> list[float]:
    """``socket_echo`` with terminado."""
    await _terminado_setup(ws)
    seen = ""
    while READY.decode() not in seen:
        message = orjson.loads(await ws.recv())
        if message[0] == "stdout":
            seen += message[1]
    samples: list[float] = []
    clock = time.perf_counter
    for k, key in enumerate(keys[:warmup] + keys):
        text = key.decode()
        began = clock()
        await ws.send(orjson.dumps(["stdin", text]).decode())
        got = ""
        while text not in got:
            message = orjson.loads(await ws.recv())
            if message[0] == "stdout":
                got += message[1]
        if k >= warmup:
            samples.append((clock() - began) * 1e6)
    return samples
