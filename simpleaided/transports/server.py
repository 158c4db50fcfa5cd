"""Serves JSON-RPC on a listening Unix socket: one task per connection, peer uid checked.

Each connection is served in its own task and handles its messages in order, so a slow or
stuck client only ever delays itself. On shutdown the server stops accepting, lets requests
in progress finish (bounded by a grace period), then closes every connection.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import anyio
import orjson
from anyio.abc import SocketAttribute, SocketListener, SocketStream, TaskGroup, TaskStatus

from simpleaided.transports.framing import FramedStream, FramingError, MessageTooLarge
from simpleaided.transports.rpc import (
    INVALID_REQUEST,
    LIMIT_EXCEEDED,
    PARSE_ERROR,
    Dispatcher,
    error_response,
)
from simpleaided.transports.unix_socket import PeerCredentials, peer_credentials

log = logging.getLogger(__name__)
_ids = itertools.count(1)


@dataclass(eq=False)
class Connection:
    """One client connection: who it is, how to send it messages, and its own tasks
    (subscription pumps), which end with it.

    Messages are sent by the connection's read loop (replies) and by the tasks it started
    with ``start_after_reply`` (notifications), never by other tasks.
    """

    id: int
    peer: PeerCredentials
    stream: FramedStream = field(repr=False)
    send_lock: anyio.Lock = field(default_factory=anyio.Lock, repr=False)
    task_group: TaskGroup | None = field(default=None, repr=False)
    _after_reply: list[Callable[[], Coroutine[Any, Any, None]]] = field(
        default_factory=list, repr=False
    )
    _on_close: dict[str, Callable[[], object]] = field(default_factory=dict, repr=False)
    _helpers: int = field(default=0, repr=False)  # tasks started after a reply, still running

    async def send(self, payload: bytes) -> None:
        """Send one message; replies and notifications never interleave."""
        if not self._helpers:
            # The read loop is the only sender (it starts helpers only between its sends),
            # and it sends one message at a time: nothing to interleave with.
            await self.stream.send(payload)
            return
        lock = self.send_lock
        try:
            # Not ``async with``: its checkpoint would cost every message a trip through the
            # event loop, on top of the one the stream's send makes anyway.
            lock.acquire_nowait()
        except anyio.WouldBlock:
            await lock.acquire()
        try:
            await self.stream.send(payload)
        finally:
            lock.release()

    async def notify(self, method: str, params: dict[str, Any]) -> None:
        """Send a JSON-RPC notification."""
        await self.send(orjson.dumps({"jsonrpc": "2.0", "method": method, "params": params}))

    def start_after_reply(self, task: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Start ``task`` once the reply to the current request has been sent."""
        self._after_reply.append(task)

    def on_close(self, key: str, callback: Callable[[], object]) -> None:
        """Call ``callback`` when the connection closes."""
        self._on_close[key] = callback

    def _start_pending(self) -> None:
        tasks, self._after_reply = self._after_reply, []
        if self.task_group is not None:
            for task in tasks:
                self._helpers += 1  # counted now: from here on, every send takes the lock
                self.task_group.start_soon(self._run_helper, task)

    async def _run_helper(self, task: Callable[[], Coroutine[Any, Any, None]]) -> None:
        try:
            await task()
        finally:
            self._helpers -= 1

    def _closed(self) -> None:
        callbacks, self._on_close = self._on_close, {}
        for callback in callbacks.values():
            callback()


class RpcServer:
    """Accepts connections and feeds their messages to the dispatcher."""

    def __init__(self, dispatcher: Dispatcher, *, max_message_bytes: int) -> None:
        self._dispatcher = dispatcher
        self._max = max_message_bytes
        self._uid = os.getuid()
        self._in_flight = 0
        self._idle: anyio.Event | None = None  # made by drain() only when it has to wait
        self._accepting = True
        self.connections: set[Connection] = set()

    async def serve(
        self,
        listener: SocketListener,
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Accept connections until cancelled, or until ``listener`` is closed (its socket
        was replaced): then the connections it accepted are served until they end."""
        async with anyio.create_task_group() as tg, listener:
            task_status.started()
            while True:
                try:
                    stream = await listener.accept()
                except anyio.ClosedResourceError:
                    return
                tg.start_soon(self._serve_connection, stream)

    async def drain(self, grace_seconds: float) -> None:
        """Stop reading new requests and wait (bounded) for those in progress to finish."""
        self._accepting = False
        if self._in_flight:
            self._idle = anyio.Event()
            with anyio.move_on_after(grace_seconds):
                await self._idle.wait()

    async def _serve_connection(self, raw: SocketStream) -> None:
        async with raw:
            sock = raw.extra(SocketAttribute.raw_socket)
            peer = peer_credentials(sock)
            framed = FramedStream(raw, self._max, sock)
            if peer.uid != self._uid:
                log.warning("refused a connection from uid %d (pid %d)", peer.uid, peer.pid)
                message = f"connections from uid {peer.uid} are refused"
                await _refuse(raw, framed.send, error_response(INVALID_REQUEST, message))
                return
            conn = Connection(next(_ids), peer, framed)
            self.connections.add(conn)
            try:
                async with anyio.create_task_group() as tg:
                    conn.task_group = tg
                    try:
                        await self._read_loop(conn, raw)
                    except (
                        anyio.EndOfStream,
                        anyio.BrokenResourceError,
                        anyio.ClosedResourceError,
                    ):
                        pass
                    except Exception:
                        # A bug must cost this connection, never the server and its clients.
                        log.exception("connection %d failed; closing it", conn.id)
                    tg.cancel_scope.cancel()  # the connection's subscriptions end with it
            finally:
                self.connections.discard(conn)
                conn._closed()

    async def _read_loop(self, conn: Connection, raw: SocketStream) -> None:
        while self._accepting:
            try:
                message = await conn.stream.receive()
            except MessageTooLarge as exc:
                await _refuse(raw, conn.send, error_response(LIMIT_EXCEEDED, str(exc)))
                return
            except FramingError as exc:
                await _refuse(raw, conn.send, error_response(PARSE_ERROR, str(exc)))
                return
            if not self._accepting:
                return
            self._in_flight += 1
            try:
                reply = await self._dispatcher.handle(message, conn)
                if reply is not None:
                    await conn.send(reply)
                if conn._after_reply:
                    conn._start_pending()
            finally:
                self._in_flight -= 1
                if not self._in_flight and self._idle is not None:
                    self._idle.set()


_DISCARD_LIMIT = 1 << 20


async def _refuse(
    raw: SocketStream, send: Callable[[bytes], Awaitable[None]], payload: bytes
) -> None:
    """Send a last error (with ``send``: the connection's, so it cannot cut into a
    notification) and close without losing it.

    Closing a socket with unread input makes the kernel reset the connection, and the peer
    may then never read our error; so we half-close and discard what it still sends, briefly.
    """
    try:
        with anyio.move_on_after(1):
            await send(payload)
            await raw.send_eof()
            discarded = 0
            while discarded < _DISCARD_LIMIT:
                discarded += len(await raw.receive())
    except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
        pass
