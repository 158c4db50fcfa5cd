"""The connection loop serves any message stream: here one in memory, on the real daemon."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import anyio
import orjson

from simpleaided.app.daemon import Daemon
from simpleaided.transports.framing import MessageTooLarge
from simpleaided.transports.server import MessageStream
from tests.support.rpc import RpcClient


class MemoryMessageStream:
    """A ``MessageStream`` over two in-memory queues; the test is the client at their ends."""

    def __init__(self, max_message_bytes: int) -> None:
        self.to_server, self._inbox = anyio.create_memory_object_stream[bytes](16)
        self._outbox, self.from_server = anyio.create_memory_object_stream[bytes](16)
        self._max = max_message_bytes
        self.lingered = False
        self.notifications: list[dict[str, Any]] = []  # received while awaiting a reply

    @property
    def buffered(self) -> bool:
        return self._inbox.statistics().current_buffer_used > 0

    async def receive(self) -> bytes:
        message = await self._inbox.receive()
        if len(message) > self._max:
            raise MessageTooLarge(len(message), self._max)
        return message

    async def send(self, payload: bytes) -> None:
        await self._outbox.send(payload)

    async def wait_gone(self) -> None:
        await anyio.sleep_forever()  # a memory stream cannot tell

    async def linger(self) -> None:
        self.lingered = True
        self._outbox.close()  # the client reads what was sent, then the end

    def close(self) -> None:
        for end in (self.to_server, self._inbox, self._outbox, self.from_server):
            end.close()

    async def call(self, method: str, id: int, **params: Any) -> dict[str, Any]:
        """Send a request and return its reply, keeping notifications that come first."""
        request = {"jsonrpc": "2.0", "method": method, "id": id, "params": params}
        await self.to_server.send(orjson.dumps(request))
        while True:
            message: dict[str, Any] = orjson.loads(await self.from_server.receive())
            if message.get("id") == id:
                return message
            self.notifications.append(message)


async def test_the_loop_serves_a_message_stream(daemon: Daemon, workspace: Path) -> None:
    limit = daemon.server.max_message_bytes  # the limit every transport enforces
    assert limit == daemon.config.limits.max_message_bytes
    stream = MemoryMessageStream(limit)
    _: MessageStream = stream  # what mypy checks: the seam's protocol is met
    with anyio.fail_after(10), contextlib.closing(stream):
        async with anyio.create_task_group() as tg:
            tg.start_soon(daemon.server.serve_stream, stream, "memory")
            assert await stream.call("daemon.ping", 1) == {
                "jsonrpc": "2.0",
                "result": "pong",
                "id": 1,
            }
            assert len(daemon.server.connections) == 1  # served as a socket connection is

            # A subscription's notifications flow over the same stream, after its reply.
            subscribed = await stream.call("runs.subscribe", 2)
            assert "result" in subscribed
            created = await stream.call("runs.create", 3, workspace=str(workspace))
            run_id = created["result"]["id"]
            while not stream.notifications:
                stream.notifications.append(orjson.loads(await stream.from_server.receive()))
            note = stream.notifications[0]
            assert note["method"] == "run.event" and "id" not in note
            assert note["params"]["events"][0]["runId"] == run_id
            assert note["params"]["events"][0]["type"] == "created"

            # One message over the limit: an error, then the stream is let go.
            big = orjson.dumps(
                {"jsonrpc": "2.0", "method": "daemon.ping", "id": 4, "params": {"x": "x" * limit}}
            )
            await stream.to_server.send(big)
            error = orjson.loads(await stream.from_server.receive())
            assert error["error"]["code"] == -32040
            assert f"{limit}-byte limit" in error["error"]["message"]
            assert error["id"] is None
            async for extra in stream.from_server:  # nothing more, then the end
                raise AssertionError(f"sent after the refusal: {extra!r}")
    # The loop returned on its own: the connection and its subscription are gone.
    assert stream.lingered
    assert daemon.server.connections == set()
    assert daemon.events.subscriptions == 0


async def test_every_transport_counts_against_one_connection_cap(
    daemon: Daemon, socket_path: Path
) -> None:
    server = daemon.server
    server.max_connections = server.open + 1
    assert server.admit()  # another transport's client takes the last place
    try:
        before = daemon.info()["connections"]
        assert before["open"] == server.max_connections
        assert not server.admit()  # a second one of its clients is refused, and counted
        assert server.over_the_cap() == (
            f"too many connections: {server.open} open, the limit is "
            f"{server.max_connections} (limits.max_connections)"
        )
        # A Unix socket client meets the same cap.
        with anyio.fail_after(10):
            async with await RpcClient.connect(socket_path) as client:
                await client.send_raw(b'{"jsonrpc":"2.0","method":"daemon.ping","id":1}\n')
                reply = orjson.loads(await client.receive_line())
        assert reply["error"] == {"code": -32040, "message": server.over_the_cap()}
        after = daemon.info()["connections"]
        assert after["refused"] == before["refused"] + 2
        assert after["accepted"] == before["accepted"]
    finally:
        server.release()
    assert server.open == server.max_connections - 1
    async with await RpcClient.connect(socket_path) as client:  # room again
        assert await client.call("daemon.ping") == "pong"
