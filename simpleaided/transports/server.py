"""Serves JSON-RPC on a listening Unix socket: one task per connection, peer uid checked.

The connection loop (``RpcServer.serve_stream``) serves any ``MessageStream``: whole messages
in, whole messages out. The Unix socket is one transport: each accepted socket has its peer
checked, then is read and written in its framing (``FramedStream``) and handed to the loop;
the HTTP shim's WebSocket (``transports.http.websocket``) is another, with the same
dispatcher, subscriptions and limits, and methods it refuses (``Connection.refused``).

Each connection is served in its own task and handles its messages in order. Requests that
arrive behind others on a connection (pipelined) first wait for a turn in one lane shared by
all connections (so do a batch's requests after the first), which only hands out turns: a
slow request never holds it. On shutdown the
server stops accepting, lets requests in progress finish (bounded by a grace period), then
closes every connection.

Limits: at most ``max_connections`` connections are served; one more gets a ``-32040`` error
and is closed (a few such refusals at a time; beyond them, the connection is closed at once).
Running out of file descriptors (``EMFILE``, ``ENFILE``) never stops the server: it says so
once, frees a spare descriptor kept for that, and waits for a client to connect; each client
that connects meanwhile is answered with an error in that descriptor, until descriptors are
free again and new clients are served.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import os
import resource
import socket
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio
import orjson
from anyio.abc import SocketAttribute, SocketListener, SocketStream, TaskGroup, TaskStatus

from simpleaided.transports.framing import (
    DISCARD_LIMIT,
    FramedStream,
    Framing,
    FramingError,
    MessageTooLarge,
    detect_framing,
    frame,
)
from simpleaided.transports.rpc import (
    INVALID_REQUEST,
    LIMIT_EXCEEDED,
    PARSE_ERROR,
    Dispatcher,
    error_response,
)
from simpleaided.transports.unix_socket import peer_credentials

log = logging.getLogger(__name__)
_ids = itertools.count(1)

# accept() failures that mean "no descriptor (or memory) for one more connection now".
_OUT_OF_DESCRIPTORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_BACKOFF_SECONDS = (0.01, 1.0)  # first and longest wait before accepting again
_MAX_REFUSING = 8  # refusals over the cap that may each hold a descriptor at once
_FRAMING_WAIT_SECONDS = 0.1  # how long a refused client may take to send its first bytes
FD_RESERVE = 64  # descriptors besides the connections: files, inotify, threads, the shim


class MessageStream(Protocol):
    """One client connection as whole messages: what the connection loop needs of a
    transport. A Unix socket's is a ``FramedStream``."""

    @property
    def buffered(self) -> bool:
        """Whether input waits behind the last message received: the peer sends without
        waiting for replies (pipelines)."""
        ...

    async def receive(self) -> bytes:
        """The next whole message; ``anyio.EndOfStream`` when the peer closed cleanly,
        ``MessageTooLarge`` for one over the server's ``max_message_bytes``,
        ``FramingError`` for broken framing.

        A peer that went away must surface (here or from ``send``) as ``anyio.EndOfStream``,
        ``anyio.BrokenResourceError`` or ``anyio.ClosedResourceError``: the loop takes those
        for a client leaving, and anything else for a bug, which it logs."""
        ...

    async def send(self, payload: bytes) -> None:
        """Send one whole message."""
        ...

    async def linger(self) -> None:
        """After a last message, before the stream is closed: let the peer read it (stop
        sending, take what it still sends until it closes). The caller bounds the wait."""
        ...

    async def wait_gone(self) -> None:
        """Return once the peer has closed or broken the connection, taking none of its
        input; called while a request runs (a long query stops when its client leaves).
        Where the transport cannot tell without reading, it never returns."""
        ...


@dataclass(eq=False)
class Connection:
    """One client connection: who it is, how to send it messages, and its own tasks
    (subscription pumps), which end with it.

    Messages are sent by the connection's read loop (replies) and by the tasks it started
    with ``start_after_reply`` (notifications), never by other tasks.
    """

    id: int
    peer: object  # who the client is, as its transport knows it (logs only)
    stream: MessageStream = field(repr=False)
    # Methods this connection may not call (the web's refuses those handing out secrets):
    # they answer -32060 (``rpc``).
    refused: frozenset[str] = field(default=frozenset(), repr=False)
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

    async def wait_gone(self) -> None:
        """Return once the client has gone, while one of its requests runs."""
        await self.stream.wait_gone()

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

    def __init__(
        self,
        dispatcher: Dispatcher,
        *,
        max_message_bytes: int,
        max_connections: int,
    ) -> None:
        self._dispatcher = dispatcher
        self.max_message_bytes = max_message_bytes  # every transport refuses a message over it
        self.max_connections = max_connections  # a reload may change it
        self._uid = os.getuid()
        self._in_flight = 0
        self._idle: anyio.Event | None = None  # made by drain() only when it has to wait
        self._accepting = True
        self._lane = anyio.Lock()  # pipelined messages take turns through it (never held long)
        dispatcher.between_batch_items = self._take_turn  # a batch's items take turns too
        self.connections: set[Connection] = set()
        self.open = 0  # connections being served (the peer check included)
        self.accepted = 0
        self.refused = 0  # over max_connections
        self.refusing = 0  # of those, being told so now (each holds a descriptor meanwhile)
        self.refused_no_descriptors = 0  # while out of file descriptors
        self._spare: int | None = None  # a descriptor freed to answer clients when out
        self._serving = 0  # listeners being served (two while a socket is renewed)
        self._out_since: int | None = None  # refused_no_descriptors when that began
        self._closed_one: anyio.Event | None = None  # set when a connection ends
        self._accept_failing = False  # accept() fails for another reason: said once

    def report(self) -> dict[str, Any]:
        """Connection counts for ``daemon.info``."""
        return {
            "open": self.open,
            "limit": self.max_connections,
            "accepted": self.accepted,
            "refused": self.refused,
            "refusing": self.refusing,
            "refusedNoDescriptors": self.refused_no_descriptors,
            "fdLimit": _fd_limit(),
        }

    async def serve(
        self,
        listener: SocketListener,
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Accept connections until cancelled, or until ``listener`` is closed (its socket
        was replaced): then the connections it accepted are served until they end."""
        if self._spare is None:
            self._spare = _open_spare()
        self._serving += 1
        try:
            await self._accept(listener, task_status)
        finally:
            self._serving -= 1
            if not self._serving and self._spare is not None:
                os.close(self._spare)
                self._spare = None

    async def _accept(self, listener: SocketListener, task_status: TaskStatus[None]) -> None:
        backoff = _BACKOFF_SECONDS[0]
        async with anyio.create_task_group() as tg, listener:
            task_status.started()
            while True:
                try:
                    stream = await listener.accept()
                except anyio.ClosedResourceError:
                    return
                except anyio.BrokenResourceError as exc:
                    # accept() failed, the listener is fine: never a reason to stop serving.
                    cause = exc.__cause__
                    if not isinstance(cause, OSError):
                        raise
                    if cause.errno in _OUT_OF_DESCRIPTORS:
                        self._out_of_descriptors(cause.errno)
                        if self._spare is not None:
                            # Linux fails accept() with EMFILE before it looks at the queue,
                            # so retrying at once would spin. With the spare freed, the next
                            # accept() waits in the event loop for a client to connect (or
                            # for the listener to close), and the client gets the spare's
                            # place, to be answered there. (Waiting on the raw listening
                            # socket instead would register it with the event loop behind
                            # the listener's back, and a listener is closed under us when
                            # the socket is renewed or the daemon stops.)
                            os.close(self._spare)
                            self._spare = None
                            continue
                    elif not self._accept_failing:
                        self._accept_failing = True
                        log.warning(
                            "accepting a connection failed: %s (retrying until it works)", cause
                        )
                    # The spare's place was taken (or another error): nothing to wait on but
                    # a descriptor freed, or time.
                    await self._wait_for_a_close(backoff)
                    backoff = min(backoff * 2, _BACKOFF_SECONDS[1])
                    if self._spare is None:
                        self._spare = _open_spare()
                    continue
                backoff = _BACKOFF_SECONDS[0]
                if self._spare is None:
                    self._spare = _open_spare()
                    if self._spare is None:
                        # This client took the last descriptor: answer it from there and
                        # close it, so that the next client finds that descriptor free too.
                        self._out_of_descriptors(errno.EMFILE)
                        self.refused_no_descriptors += 1
                        await self._refuse_for_want_of_descriptors(stream)
                        continue
                self._accepting_again()
                if not self.admit():
                    self._refuse_over_the_cap(stream, tg)
                    continue
                tg.start_soon(self._serve_connection, stream)

    def admit(self) -> bool:
        """Count a new connection, of any transport, against ``max_connections``.

        ``False`` (counted as refused) when the limit is reached: the transport tells the
        client ``over_the_cap()`` and closes it. After ``True``, the transport serves the
        connection and calls ``release()`` once it has closed it.
        """
        if self.open >= self.max_connections:
            self.refused += 1
            return False
        self.open += 1
        self.accepted += 1
        return True

    def release(self) -> None:
        """An admitted connection has closed: its place and its descriptor are free."""
        self.open -= 1
        self._descriptor_freed()

    def over_the_cap(self) -> str:
        """What a client refused by ``admit()`` is told."""
        return (
            f"too many connections: {self.open} open, the limit is "
            f"{self.max_connections} (limits.max_connections)"
        )

    def _accepting_again(self) -> None:
        if self._out_since is not None:
            log.info(
                "accepting connections again (%d refused while out of file descriptors)",
                self.refused_no_descriptors - self._out_since,
            )
            self._out_since = None
        if self._accept_failing:
            self._accept_failing = False
            log.info("accepting connections again")

    def _out_of_descriptors(self, error: int | None) -> None:
        """No descriptor for a new connection: say so once for the episode."""
        if self._out_since is None:
            self._out_since = self.refused_no_descriptors
            log.warning(
                "out of file descriptors (%s; %d connections open, fd limit %s): new "
                "connections are refused until some close",
                os.strerror(error or errno.EMFILE),
                self.open,
                _fd_limit(),
            )

    async def _refuse_for_want_of_descriptors(self, stream: SocketStream) -> None:
        """Answer a client that holds the last descriptor with an error, and close it.

        Done in line, not in a task of its own: there is one descriptor for it, and the next
        client needs it back; the wait for the client's framing is short and bounded.
        """
        message = error_response(
            LIMIT_EXCEEDED,
            f"the daemon is out of file descriptors ({self.open} connections open, fd limit "
            f"{_fd_limit()}); try again later",
        )
        try:
            await _refuse_briefly(stream, message)
        finally:
            self._descriptor_freed()

    def _refuse_over_the_cap(self, stream: SocketStream, tg: TaskGroup) -> None:
        if self.refusing >= _MAX_REFUSING:
            # Enough refusals are telling their clients why; each holds a descriptor for up
            # to a second, and a burst of them must not run the daemon out of descriptors.
            stream.extra(SocketAttribute.raw_socket).close()
            return
        self.refusing += 1
        tg.start_soon(self._refuse_unframed, stream, self.over_the_cap())

    async def _refuse_unframed(self, stream: SocketStream, message: str) -> None:
        try:
            await _refuse_unframed(stream, message)
        finally:
            self.refusing -= 1
            self._descriptor_freed()

    def _descriptor_freed(self) -> None:
        if self._closed_one is not None:
            self._closed_one.set()
            self._closed_one = None

    async def _wait_for_a_close(self, seconds: float) -> None:
        """Wait until a connection ends (its descriptor is free again), at most ``seconds``."""
        self._closed_one = event = anyio.Event()
        with anyio.move_on_after(seconds):
            await event.wait()

    async def _take_turn(self) -> None:
        """Wait for a turn in the lane and pass it on at once, like a turnstile.

        The lock yields to the event loop once taken (anyio's ``Lock.acquire`` checkpoints),
        so the waiters queue behind and go through one per trip; never held while a request
        is handled, so a slow request (a probe, an unlock) delays only its own connection.
        """
        await self._lane.acquire()
        self._lane.release()

    async def drain(self, grace_seconds: float) -> None:
        """Stop reading new requests and wait (bounded) for those in progress to finish."""
        self._accepting = False
        if self._in_flight:
            self._idle = anyio.Event()
            with anyio.move_on_after(grace_seconds):
                await self._idle.wait()

    async def _serve_connection(self, raw: SocketStream) -> None:
        try:
            await self._serve_socket(raw)
        finally:
            self.release()

    async def _serve_socket(self, raw: SocketStream) -> None:
        """The Unix socket's side of a connection: its peer checked, its messages read and
        written in its framing, and handed to the connection loop."""
        async with raw:
            sock = raw.extra(SocketAttribute.raw_socket)
            peer = peer_credentials(sock)
            framed = FramedStream(raw, self.max_message_bytes, sock)
            if peer.uid != self._uid:
                log.warning("refused a connection from uid %d (pid %d)", peer.uid, peer.pid)
                message = f"connections from uid {peer.uid} are refused"
                await _refuse(framed, framed.send, error_response(INVALID_REQUEST, message))
                return
            await self.serve_stream(framed, peer)

    async def serve_stream(
        self, stream: MessageStream, peer: object, *, refused: frozenset[str] = frozenset()
    ) -> None:
        """Serve one client's messages until it leaves, breaks the framing, or the server
        drains: the loop every transport shares. The transport admits the connection first
        (``admit``), closes ``stream`` afterwards and then calls ``release``. ``refused``:
        the methods this connection may not call."""
        conn = Connection(next(_ids), peer, stream, refused)
        self.connections.add(conn)
        try:
            async with anyio.create_task_group() as tg:
                conn.task_group = tg
                try:
                    await self._read_loop(conn)
                except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                    pass
                except Exception:
                    # A bug must cost this connection, never the server and its clients.
                    log.exception("connection %d failed; closing it", conn.id)
                tg.cancel_scope.cancel()  # the connection's subscriptions end with it
        finally:
            self.connections.discard(conn)
            conn._closed()

    async def _read_loop(self, conn: Connection) -> None:
        while self._accepting:
            try:
                message = await conn.stream.receive()
            except MessageTooLarge as exc:
                await _refuse(conn.stream, conn.send, error_response(LIMIT_EXCEEDED, str(exc)))
                return
            except FramingError as exc:
                await _refuse(conn.stream, conn.send, error_response(PARSE_ERROR, str(exc)))
                return
            if not self._accepting:
                return
            self._in_flight += 1
            try:
                if conn.stream.buffered:
                    # Pipelined: all such messages, of every connection, wait for a turn in
                    # one lane, so that clients sending faster than they read (a flood, a
                    # bulk script) cannot fill a trip through the event loop with work ahead
                    # of a client waiting for its reply.
                    await self._take_turn()
                reply = await self._dispatcher.handle(message, conn)
                if reply is not None:
                    await conn.send(reply)
                if conn._after_reply:
                    conn._start_pending()
            finally:
                self._in_flight -= 1
                if not self._in_flight and self._idle is not None:
                    self._idle.set()


_PEEK_CHUNK = 1 << 16


def _fd_limit() -> int | None:
    """This process's soft ``RLIMIT_NOFILE`` (``None``: unlimited)."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return None if soft == resource.RLIM_INFINITY else soft


def warn_if_short_of_descriptors(max_connections: int) -> None:
    """Log a warning when ``max_connections`` clients, with the daemon's own files, need more
    file descriptors than this process's limit allows."""
    limit = _fd_limit()
    wanted = max_connections + FD_RESERVE
    if limit is not None and limit < wanted:
        log.warning(
            "limits.max_connections (%d) needs about %d file descriptors, the limit is %d: "
            "beyond that, new clients are refused until others leave (raise LimitNOFILE= "
            "or ulimit -n, or lower limits.max_connections)",
            max_connections,
            wanted,
            limit,
        )


def _open_spare() -> int | None:
    """A descriptor held in reserve, to be freed when the others run out; ``None`` if even
    that one cannot be had now."""
    try:
        return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None


def _peeked_framing(sock: socket.socket) -> bytes:
    """The first bytes the client sent, if any yet, without taking them."""
    try:
        return sock.recv(64, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except OSError:
        return b""


async def _framing_of(sock: socket.socket) -> Framing:
    """The framing a just-accepted client uses, from its first bytes: it gets a moment to send
    them (an editor's client sends at once); an error in the wrong framing would reach it as
    garbage."""
    with anyio.move_on_after(_FRAMING_WAIT_SECONDS):
        await anyio.wait_readable(sock)
    return detect_framing(_peeked_framing(sock))


async def _refuse_briefly(raw: SocketStream, payload: bytes) -> None:
    """Answer ``payload`` (an error) in the client's framing and close at once, without the
    wait for the client to read it that ``_refuse`` allows: its descriptor is needed."""
    async with raw:
        sock = raw.extra(SocketAttribute.raw_socket)
        framing = await _framing_of(sock)
        # Take what it sent (its request, most likely): closing over unread input would
        # reset the connection, and the client might lose the error.
        with contextlib.suppress(OSError):
            for _ in range(DISCARD_LIMIT // _PEEK_CHUNK):
                if not sock.recv(_PEEK_CHUNK, socket.MSG_DONTWAIT):
                    break
        with contextlib.suppress(OSError):
            sock.send(frame(payload, framing), socket.MSG_DONTWAIT)  # it fits: a new socket


async def _refuse_unframed(raw: SocketStream, message: str) -> None:
    """Refuse a connection that is not served (over the connection limit): an error in
    the framing of what it sent so far, then the connection is closed."""
    async with raw:
        framed = FramedStream(raw, 0)  # sends only, and through the stream
        framed.framing = await _framing_of(raw.extra(SocketAttribute.raw_socket))
        await _refuse(framed, framed.send, error_response(LIMIT_EXCEEDED, message))


async def _refuse(
    stream: MessageStream, send: Callable[[bytes], Awaitable[None]], payload: bytes
) -> None:
    """Send a last error (with ``send``: the connection's, so it cannot cut into a
    notification), and let the peer read it before the stream is closed, briefly."""
    try:
        with anyio.move_on_after(1):
            await send(payload)
            await stream.linger()
    except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
        pass
