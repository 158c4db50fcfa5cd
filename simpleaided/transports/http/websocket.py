"""JSON-RPC over a WebSocket at ``GET /rpc``: the web console's connection to the daemon.

The handshake is checked before it is accepted (README: Security of the HTTP side): its ``Host``
(``security``'s ``HostCheck``, as every request), its ``Origin`` (the shim's own or a configured
one; missing or ``null`` refused: 403), the ``simpleaide.jsonrpc`` subprotocol (403 without it)
and the token, offered as the subprotocol ``simpleaide.token.<token>`` (browsers cannot set
headers on a WebSocket) and compared in constant time (401). A refused handshake is answered
over HTTP, so the page sees a failed connection and nothing else; the token is never echoed back
(the accepted subprotocol is ``simpleaide.jsonrpc``).

Accepted, the connection is one more of the daemon's ``RpcServer``: counted against
``limits.max_connections`` (one more gets the ``-32040`` error, then close 1013), served by
its connection loop with the same dispatcher, subscriptions, limits and fairness as the
socket, except for ``REFUSED``, the methods that hand out secret values, the vault's keys or
the token itself (``-32060``). Each text frame is one message (a request, a notification or a
batch); replies and notifications are text frames. A binary frame is refused (parse error,
close 1003), a message over ``limits.max_message_bytes`` too (``-32040``, close 1009).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

import anyio
import websockets  # noqa: F401  (uvicorn serves /rpc with it: missing, the http extra is)
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from starlette.datastructures import Headers
from starlette.types import Message, Receive, Scope, Send

from simpleaided.transports.framing import FramingError, MessageTooLarge
from simpleaided.transports.http.security import origin_allowed, token_matches
from simpleaided.transports.rpc import LIMIT_EXCEEDED, error_response
from simpleaided.transports.server import RpcServer

log = logging.getLogger(__name__)

JSONRPC_SUBPROTOCOL = "simpleaide.jsonrpc"
TOKEN_SUBPROTOCOL = "simpleaide.token."  # followed by the token
# Methods the WebSocket refuses (README: Security of the HTTP side): secret values, the
# vault's keys and the token stay on the owner-only socket.
REFUSED = frozenset(
    {"vault.get", "vault.init", "vault.changePassphrase", "http.open", "http.rotateToken"}
)

# Close codes (RFC 6455 §7.4.1).
NORMAL = 1000
GOING_AWAY = 1001  # the daemon stops, or stopped reading
UNSUPPORTED_DATA = 1003  # a binary frame
POLICY_VIOLATION = 1008  # e.g. the token it opened with was replaced
TOO_BIG = 1009
TRY_AGAIN_LATER = 1013  # over limits.max_connections

CLOSE_SECONDS = 0.5  # how long a goodbye may wait for a peer that reads nothing
PING_SECONDS = 20.0  # a ping every 20 s; no pong within 20 s more: the connection is closed
_INBOX = 1  # messages read ahead of the one being handled (with the reader's, two)


class WebSocketMessageStream:
    """One accepted WebSocket as the ``MessageStream`` the connection loop serves
    (``transports.server``): text frames in and out, over ASGI's ``receive`` and ``send``.

    A reader task (``read_frames``) takes the frames as they come into a small bounded inbox,
    so ``buffered`` can tell a client that sends without waiting for its replies (which then
    takes turns with everyone else's), and so the peer's close is seen while a request runs.
    """

    def __init__(self, receive: Receive, send: Send, max_message_bytes: int) -> None:
        self._receive = receive
        self._send = send
        self._max = max_message_bytes
        self._inbox_in: MemoryObjectSendStream[bytes | Exception]
        self._inbox: MemoryObjectReceiveStream[bytes | Exception]
        self._inbox_in, self._inbox = anyio.create_memory_object_stream[bytes | Exception](_INBOX)
        self._close_code = NORMAL  # the code to close with (set by an error, or ``stop``)
        self.closed = False  # stopped: nothing more is read or sent but the close frame
        self.peer_gone = False  # the peer closed, or the connection broke
        self._gone = anyio.Event()  # set with peer_gone, or once we stopped
        self._close_sent = False

    @property
    def buffered(self) -> bool:
        """Whether a message waits behind the last one received: the peer pipelines."""
        return self._inbox.statistics().current_buffer_used > 0

    async def read_frames(self) -> None:
        """Take the peer's frames into the inbox until it closes or breaks the protocol."""
        try:
            while True:
                item = self._frame(await self._receive())
                await self._inbox_in.send(item)
                if not isinstance(item, bytes):
                    return
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass  # closed on our side: nothing more is read

    def _frame(self, message: Message) -> bytes | Exception:
        if message["type"] == "websocket.disconnect":
            self.peer_gone = True
            self._gone.set()
            return anyio.EndOfStream()
        text = message.get("text")
        if text is None:
            self._close_code = UNSUPPORTED_DATA
            return FramingError("binary frames are refused: send each message as a text frame")
        data: bytes = text.encode()
        if len(data) > self._max:
            self._close_code = TOO_BIG
            return MessageTooLarge(len(data), self._max)
        return data

    async def receive(self) -> bytes:
        """The next text frame's bytes; ``anyio.EndOfStream`` once the peer closed,
        ``anyio.ClosedResourceError`` once we did, ``MessageTooLarge`` or ``FramingError``."""
        if self.closed:
            raise anyio.ClosedResourceError
        item = await self._inbox.receive()
        if self.closed:
            raise anyio.ClosedResourceError
        if isinstance(item, bytes):
            return item
        raise item

    async def send(self, payload: bytes) -> None:
        """Send one message as a text frame."""
        if self.closed:
            raise anyio.ClosedResourceError
        try:
            await self._send({"type": "websocket.send", "text": payload.decode()})
        except OSError as exc:  # uvicorn's ClientDisconnected: the peer has gone
            raise anyio.BrokenResourceError from exc
        except RuntimeError:  # a send racing our close (the server refuses it once closed)
            if self.closed:
                raise anyio.ClosedResourceError from None
            raise

    async def wait_gone(self) -> None:
        """Return once the peer has closed or broken the connection, or we stopped serving
        it (the reader task sees the close while a request runs)."""
        await self._gone.wait()

    async def linger(self) -> None:
        """After a last error: close with the code that says why; the server keeps reading
        (and dropping) until the peer answers the close, so it reads the error first."""
        await self.close(self._close_code)

    def stop(self, code: int) -> None:
        """Serve nothing more, from any task: receives and sends fail from now on (a read
        loop waiting for a message ends), and ``close`` will say ``code``."""
        if self.closed:
            return
        self.closed = True
        self._close_code = code
        self._gone.set()
        self._inbox_in.close()  # a receive() waiting for a message wakes up (and fails)
        self._inbox.close()

    async def close(self, code: int | None = None) -> None:
        """Stop (with ``code``, unless stopped already) and send the close frame; by the
        connection's own task, which is the one that sends. Without ``code``: once stopped,
        the close frame says the code it was stopped with."""
        if code is not None:
            self.stop(code)
        elif not self.closed:
            self.stop(NORMAL)
        if self._close_sent or self.peer_gone:
            return
        self._close_sent = True
        with contextlib.suppress(OSError):  # the peer went away meanwhile
            await self._send({"type": "websocket.close", "code": self._close_code})


class RpcEndpoint:
    """The ASGI endpoint of ``GET /rpc``: checks a handshake, then serves the connection
    through ``server`` as long as it lasts. ``streams`` are the connections open now."""

    def __init__(
        self,
        server: RpcServer | None,
        *,
        token: Callable[[], str],
        cors_origins: list[str],
    ) -> None:
        self._server = server
        self._token = token
        self._cors_origins = cors_origins
        self.streams: set[WebSocketMessageStream] = set()

    def server_settings(self) -> dict[str, Any]:
        """uvicorn's WebSocket settings for this endpoint: the ``websockets`` library (its
        sans-I/O protocol; uvicorn's older ``websockets`` one is deprecated), pings every
        20 s, no compression (loopback: it would cost CPU for nothing), and a message
        limit above the daemon's, so a message over that one gets the daemon's ``-32040``
        error before the close 1009 (one over the library's, up to 16 MiB more, gets the
        close alone, before it is read whole)."""
        if self._server is None:
            return {"ws": "none"}
        limit = self._server.max_message_bytes
        return {
            "ws": "websockets-sansio",
            "ws_max_size": limit + min(limit, 1 << 24),
            "ws_ping_interval": PING_SECONDS,
            "ws_ping_timeout": PING_SECONDS,
            "ws_per_message_deflate": False,
        }

    def close_all(self, code: int) -> None:
        """Close every open connection with ``code`` (the token was rotated:
        ``POLICY_VIOLATION``; the daemon stops: ``GOING_AWAY``). Nothing more is served on
        them from now on; each one's own task sends its close frame as it ends."""
        for stream in list(self.streams):
            stream.stop(code)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            status, why = refusal
            log.info("refused a WebSocket connection on /rpc from %s: %s", _peer(scope), why)
            await _deny(scope, send, status, f"refused: {why}\n")
            return
        server = self._server
        assert server is not None  # else refused above
        if not server.admit():
            await _refuse_over_the_cap(send, server.over_the_cap())
            return
        # Among the open connections from the token check on, with no await in between: a
        # rotation while the accept is sent stops it too (it closes once accepted).
        stream = WebSocketMessageStream(receive, send, server.max_message_bytes)
        self.streams.add(stream)
        try:
            await send({"type": "websocket.accept", "subprotocol": JSONRPC_SUBPROTOCOL})
            await self._serve(server, stream, scope)
        except OSError:
            pass  # the peer went away during the handshake
        finally:
            stream.stop(GOING_AWAY)  # (if cancelled) its inbox is closed all the same
            self.streams.discard(stream)
            server.release()

    async def _serve(self, server: RpcServer, stream: WebSocketMessageStream, scope: Scope) -> None:
        if stream.closed:  # stopped while accepted (the token was rotated): nothing served
            with anyio.move_on_after(CLOSE_SECONDS):
                await stream.close()  # with the code it was stopped with
            return
        async with anyio.create_task_group() as tg:
            tg.start_soon(stream.read_frames)
            await server.serve_stream(stream, _peer(scope), refused=REFUSED)
            # The peer closed, or the server stopped reading (it stops): say goodbye, if the
            # peer takes it soon (one that reads nothing would hold the stop up).
            with anyio.move_on_after(CLOSE_SECONDS):
                await stream.close(GOING_AWAY)
            tg.cancel_scope.cancel()

    def _refusal(self, scope: Scope) -> tuple[int, str] | None:
        """Why the handshake is refused, with its HTTP status, or ``None`` to accept it."""
        if self._server is None:
            return 404, "no JSON-RPC server here"
        headers = Headers(scope=scope)
        if not origin_allowed(headers.get("origin"), headers.get("host"), self._cors_origins):
            return 403, "this Origin may not open the console's connection"
        offered: list[str] = list(scope.get("subprotocols") or [])
        if JSONRPC_SUBPROTOCOL not in offered:
            return 403, f"the {JSONRPC_SUBPROTOCOL!r} subprotocol is required"
        tokens = [p[len(TOKEN_SUBPROTOCOL) :] for p in offered if p.startswith(TOKEN_SUBPROTOCOL)]
        given = tokens[0] if len(tokens) == 1 else None
        if not token_matches(given, self._token()):
            return 401, "a valid token is required (run `simpleaide open` to get one)"
        return None


def _peer(scope: Scope) -> str:
    """The client as logs name it: ``websocket 127.0.0.1:PORT``."""
    client = scope.get("client")
    return f"websocket {client[0]}:{client[1]}" if client else "websocket"


async def _deny(scope: Scope, send: Send, status: int, text: str) -> None:
    """Refuse a handshake with an HTTP answer (a plain 403 where the server cannot send one)."""
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": POLICY_VIOLATION})
        return
    await send(
        {
            "type": "websocket.http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "websocket.http.response.body", "body": text.encode()})


async def _refuse_over_the_cap(send: Send, message: str) -> None:
    """Tell a client over ``limits.max_connections`` why, in its protocol, and close."""
    with contextlib.suppress(OSError):
        await send({"type": "websocket.accept", "subprotocol": JSONRPC_SUBPROTOCOL})
        await send(
            {"type": "websocket.send", "text": error_response(LIMIT_EXCEEDED, message).decode()}
        )
        await send({"type": "websocket.close", "code": TRY_AGAIN_LATER})
