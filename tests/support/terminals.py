"""A terminal client for the tests: attaches over a real socket, keeps every output byte in
order (checking the offsets are contiguous), acknowledges as a client must, and reads the
screen through ``pyte``, a headless terminal emulator."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import anyio
import pyte

from tests.support.rpc import RpcClient

SHELL = ["bash", "--norc", "--noprofile", "-i"]  # a real shell, without the user's rc files


class TerminalClient:
    """One connection attached (or not yet) to one terminal."""

    def __init__(self, rpc: RpcClient, terminal_id: str, cols: int = 80, rows: int = 24) -> None:
        self.rpc = rpc
        self.id = terminal_id
        self.output = bytearray()  # since ``start``: the replay's bytes, then the live ones
        self.start = 0
        self.offset = 0  # where the next live byte belongs
        self.exited: dict[str, Any] | None = None
        self.exited_at_offset: int | None = None
        self.replays = 0  # re-synchronisations from the scrollback (a lagging client)
        self.ack = True
        self.keep = True  # False: only count the bytes (a flood), keep the last 64 KiB
        self.received = 0  # live bytes received
        self.delay = 0.0  # seconds to sleep after each output notification (a slow reader)
        self.screen = pyte.Screen(cols, rows)
        self.stream = pyte.ByteStream(self.screen)

    @classmethod
    async def connect(cls, path: Path, terminal_id: str, **size: int) -> TerminalClient:
        return cls(await RpcClient.connect(path), terminal_id, **size)

    async def aclose(self) -> None:
        await self.rpc.stream.aclose()

    async def attach(self, **params: Any) -> dict[str, Any]:
        """Attach; the replay becomes the start of ``output`` and of the screen."""
        reply = await self.rpc.call("terminals.attach", id=self.id, **params)
        replay = base64.b64decode(reply["replay"])
        self.output = bytearray(replay)
        self.start = reply["start"]
        self.offset = reply["offset"]
        cols, rows = reply["cols"], reply["rows"]
        self.screen = pyte.Screen(cols, rows)
        self.stream = pyte.ByteStream(self.screen)
        self.stream.feed(replay)
        return reply  # type: ignore[no-any-return]

    async def call(self, method: str, **params: Any) -> Any:
        result = await self.rpc.call(method, id=self.id, **params)
        await self._take_kept()
        return result

    async def type(self, text: str) -> None:
        await self.call("terminals.input", text=text)

    async def _take_kept(self) -> None:
        kept, self.rpc.notifications = self.rpc.notifications, []
        for message in kept:
            await self._take(message)

    async def _take(self, message: dict[str, Any]) -> None:
        params = message["params"]
        if message["method"] == "terminal.exited":
            self.exited = params
            self.exited_at_offset = self.offset
            return
        assert message["method"] == "terminal.output", message
        data = base64.b64decode(params["data"])
        if params.get("replay"):
            self.replays += 1
            self.output = bytearray(data)
            self.start = params["offset"]
            self.screen.reset()
            self.stream.feed(data)
            self.offset = params["end"]  # the replay ends with the modes: live output goes on here
            return
        if params["offset"] + len(data) <= self.offset and params["offset"] < self.offset:
            return  # sent before a re-attach on this connection: what the replay holds
        assert params["offset"] == self.offset, (params["offset"], self.offset)
        self.output += data
        if not self.keep:
            del self.output[: max(0, len(self.output) - 65536)]
        self.offset += len(data)
        self.received += len(data)
        if self.keep:
            self.stream.feed(data)
        if self.delay:
            await anyio.sleep(self.delay)
        if self.ack:
            await self.rpc.send_message(
                _notification("terminals.ack", {"id": self.id, "offset": self.offset})
            )

    async def receive_one(self) -> None:
        """Take the next notification."""
        await self._take_kept()
        await self._take(await self.rpc.receive_message())

    async def until(self, predicate: Any, timeout: float = 10) -> None:  # noqa: ASYNC109 - a bound
        """Take notifications until ``predicate(self)`` holds."""
        with anyio.fail_after(timeout):
            await self._take_kept()
            while not predicate(self):
                await self._take(await self.rpc.receive_message())

    async def until_output(self, needle: bytes, timeout: float = 10) -> None:  # noqa: ASYNC109
        await self.until(lambda c: needle in c.output, timeout)

    async def until_exited(self, timeout: float = 10) -> dict[str, Any]:  # noqa: ASYNC109
        await self.until(lambda c: c.exited is not None, timeout)
        assert self.exited is not None
        return self.exited

    def text(self) -> str:
        """The screen, one line per row, right-trimmed."""
        return "\n".join(line.rstrip() for line in self.screen.display)


def _notification(method: str, params: dict[str, Any]) -> bytes:
    import json

    return json.dumps({"jsonrpc": "2.0", "method": method, "params": params}).encode()
