"""A minimal async JSON-RPC client for the tests: it speaks to the daemon as any client would."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
from anyio.abc import SocketStream


class RpcFailed(Exception):
    """The daemon answered with an error object."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error['code']}: {error['message']}")
        self.code: int = error["code"]
        self.message: str = error["message"]
        self.data: Any = error.get("data")


class Conversation:
    """What every test client of the daemon shares, whatever carries its messages: a reply
    awaited while the notifications that come first are kept, and a wait for one of those."""

    notifications: list[dict[str, Any]]

    async def send_message(self, data: bytes) -> None:
        raise NotImplementedError

    async def receive_message(self) -> Any:
        """The next whole message, decoded."""
        raise NotImplementedError

    async def exchange(self, message: Any) -> Any:
        """Send one message (object or batch) and return the decoded reply; notifications
        that arrive first are kept in ``notifications``."""
        await self.send_message(json.dumps(message).encode())
        while True:
            reply = await self.receive_message()
            if isinstance(reply, dict) and "method" in reply and "id" not in reply:
                self.notifications.append(reply)
                continue
            return reply

    async def notification(self, method: str) -> dict[str, Any]:
        """The next notification called ``method`` (its params), waiting up to 5 s."""
        with anyio.fail_after(5):
            while True:
                for n, message in enumerate(self.notifications):
                    if message["method"] == method:
                        del self.notifications[n]
                        return message["params"]  # type: ignore[no-any-return]
                self.notifications.append(await self.receive_message())


class RpcClient(Conversation):
    """Newline-delimited JSON over a Unix socket."""

    def __init__(self, stream: SocketStream) -> None:
        self.stream = stream
        self._ids = itertools.count(1)
        self._buffer = b""
        self.notifications: list[dict[str, Any]] = []

    @classmethod
    async def connect(cls, path: Path) -> RpcClient:
        return cls(await anyio.connect_unix(path))

    async def __aenter__(self) -> RpcClient:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stream.aclose()

    async def send_raw(self, data: bytes) -> None:
        await self.stream.send(data)

    async def receive_line(self) -> bytes:
        # Only new bytes are searched and joined once: a reply of megabytes stays linear.
        parts = [self._buffer]
        with anyio.fail_after(10):
            while b"\n" not in parts[-1]:
                parts.append(await self.stream.receive())
        line, _, self._buffer = b"".join(parts).partition(b"\n")
        return line

    async def send_message(self, data: bytes) -> None:
        await self.send_raw(data + b"\n")

    async def receive_message(self) -> Any:
        return json.loads(await self.receive_line())

    async def request(self, method: str, params: Any = None) -> dict[str, Any]:
        """The whole response object of one request."""
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": next(self._ids)}
        if params is not None:
            message["params"] = params
        reply = await self.exchange(message)
        assert reply["id"] == message["id"]
        return reply  # type: ignore[no-any-return]

    async def call(self, method: str, **params: Any) -> Any:
        """The result of one request; raises ``RpcFailed`` on an error reply."""
        reply = await self.request(method, params)
        if "error" in reply:
            raise RpcFailed(reply["error"])
        return reply["result"]

    async def error(self, method: str, **params: Any) -> RpcFailed:
        """The error of a request that must fail."""
        reply = await self.request(method, params)
        assert "error" in reply, f"{method} succeeded: {reply['result']!r}"
        return RpcFailed(reply["error"])


async def pings_meanwhile(
    other: RpcClient, work: Callable[[], Awaitable[Any]]
) -> tuple[Any, list[float]]:
    """Run ``work`` while ``other`` pings the daemon again and again: its result, and how long
    each ping took (a daemon sharing the caller's event loop and holding it shows here)."""
    done: list[Any] = []
    waits: list[float] = []

    async def run() -> None:
        done.append(await work())

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        while not done:
            start = time.monotonic()
            assert await other.call("daemon.ping") == "pong"
            waits.append(time.monotonic() - start)
            await anyio.sleep(0.005)
    return done[0], waits


async def answer_and_ping_waits(socket_path: Path, message: bytes) -> tuple[Any, list[float]]:
    """The daemon's answer to ``message`` (decoded), sent on one connection while another
    pings, and each ping's wait (see ``pings_meanwhile``)."""
    async with (
        await RpcClient.connect(socket_path) as sender,
        await RpcClient.connect(socket_path) as other,
    ):

        async def answered() -> Any:
            await sender.send_message(message)
            return await sender.receive_message()

        return await pings_meanwhile(other, answered)
