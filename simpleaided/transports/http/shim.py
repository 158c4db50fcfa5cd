"""The HTTP shim: the status document for browsers, read-only, on loopback.

Routes: ``GET /api/status`` and ``GET /api/status/stream`` (``status``); ``GET /healthz``;
``GET /openapi.json`` describes them (``openapi``); ``GET /``, ``GET /static/<path>`` and
``GET /favicon.ico`` are the console's files (``web``, from ``clients/web/``).

Security (README: Security of the HTTP side): the shim binds loopback unless configured
otherwise (checked with the configuration); every route but ``/healthz`` and the console's files
needs the token (``token()``: the one in the file beside the socket, bound to the shim's
address), a ``Host`` that is not a loopback name or a configured one is refused (DNS rebinding),
a method other than GET/HEAD is refused after an ``Origin`` check, and every answer carries a
strict CSP and its companions (``security``). No route writes or reveals a secret: the status
document holds none.

Starlette and uvicorn (the ``http`` extra) serve it inside the daemon's event loop; uvicorn's
own signal handling is switched off, the daemon's stays in charge.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import orjson
import uvicorn
from anyio.abc import TaskStatus
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp

from simpleaided.services.events import EventHub
from simpleaided.services.status import StatusService
from simpleaided.transports.http.etags import not_modified
from simpleaided.transports.http.openapi import openapi_document
from simpleaided.transports.http.security import (
    guarded,
    listener_token,
    middleware,
    served_hosts,
)
from simpleaided.transports.http.status import StatusRoutes
from simpleaided.transports.http.web import WebFiles
from simpleaided.transports.http.websocket import GOING_AWAY, POLICY_VIOLATION, RpcEndpoint
from simpleaided.transports.server import RpcServer

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 1


class _QuietServer(uvicorn.Server):
    """uvicorn without its signal handlers: the daemon handles SIGTERM/SIGINT itself."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class CannotListen(OSError):
    """The shim's address cannot be listened on; ``reason`` is the system's word for why."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class HttpShim:
    """Serves the shim on ``host:port`` (port 0: any free one, then ``port`` says which)."""

    def __init__(
        self,
        status: StatusService,
        events: EventHub,
        scope: Callable[[str | None], str | None],
        *,
        host: str,
        port: int,
        allowed_hosts: list[str],
        cors_origins: list[str],
        token: Callable[[], str],
        public_status: bool = False,
        web_root: Path | None = None,
        rpc: RpcServer | None = None,
    ) -> None:
        """``token()`` is the token file's (read at each request: a rotation takes effect
        at once); the shim accepts the one derived from it for its own address (``token``);
        ``public_status`` opens the status routes without it; ``web_root``: the console's
        files (``web.WEB_ROOT`` unless given)."""
        self._status_routes = StatusRoutes(status, events, scope)
        self._web = WebFiles(web_root)
        self.host = host
        self.port = port
        self._file_token = token
        self._derived = ("", 0, "")  # the file's token and the port it was derived for, and it
        self.public_status = public_status
        self.cors_origins = cors_origins
        # Called once the token was rotated: what authenticated with the old one (the open
        # event streams and WebSockets) is closed by them.
        self.on_rotate: list[Callable[[], object]] = [self._status_routes.close_streams]
        # JSON-RPC over a WebSocket at /rpc: one more connection of the daemon's ``rpc``.
        self.rpc = RpcEndpoint(rpc, token=self.token, cors_origins=cors_origins)
        self.on_rotate.append(lambda: self.rpc.close_all(POLICY_VIOLATION))
        self._allowed = served_hosts(host, allowed_hosts)
        self._sock: socket.socket | None = None  # bound, not yet served

    @property
    def url(self) -> str:
        """The shim's base URL."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def token(self) -> str:
        """The token this shim accepts, and ``http.open`` hands out: the token file's, bound
        to the address listened on (``security.listener_token``). Derived once per start
        (and again after a rotation); ``""`` (matches nothing) before ``bind``."""
        base = self._file_token()
        if (base, self.port) != self._derived[:2]:
            self._derived = (base, self.port, listener_token(base, self.host, self.port))
        return self._derived[2]

    def section(self, socket_path: str) -> dict[str, Any]:
        """The status document's ``api`` section while the shim serves."""
        return {"enabled": True, "url": self.url, "port": self.port, "socket": socket_path}

    def app(self) -> ASGIApp:
        """The ASGI application (the security headers on every answer, its errors too)."""
        routes = [
            *self._status_routes.routes(),
            Route("/healthz", self._health, methods=["GET"]),
            Route("/openapi.json", self._openapi, methods=["GET"]),
            *self._web.routes(),
            WebSocketRoute("/rpc", self.rpc),
        ]
        checks = middleware(
            self._allowed, self.cors_origins, token=self.token, public_status=self.public_status
        )
        return guarded(Starlette(routes=routes, middleware=checks))

    def token_rotated(self) -> None:
        """The token was replaced: tell ``on_rotate``'s callbacks (requests check the new
        one already, through ``token()``)."""
        for callback in list(self.on_rotate):
            callback()

    # -- routes ----------------------------------------------------------------------------

    async def _health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})

    async def _openapi(self, request: Request) -> Response:
        body = orjson.dumps(openapi_document(self.url, public_status=self.public_status))
        etag = f'"{hashlib.blake2b(body, digest_size=12).hexdigest()}"'
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        if not_modified(request.headers, etag):
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="application/json", headers=headers)

    # -- lifecycle -------------------------------------------------------------------------

    def bind(self) -> None:
        """Listen on ``host:port`` now, before anything else starts: a port in use is one
        clear error, ``port`` is known (port 0), and clients queue until served."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # IPPROTO_TCP named, not 0: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on
        # sockets that say TCP, and accepted ones inherit it. With Nagle on, a second small
        # frame (a keystroke's echo after the input's reply) waits ~40 ms for a delayed ACK.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(128)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            where = f"{self.host}:{self.port}"
            message = f"cannot listen on {where} for the HTTP shim: {exc.strerror}"
            raise CannotListen(message, exc.strerror or str(exc)) from None
        self.port = sock.getsockname()[1]
        self._sock = sock

    def close(self) -> None:
        """Release the socket of a shim that was bound but never served."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled, then let requests finish (streams are ended)."""
        if self._sock is None:
            self.bind()
        sock, self._sock = self._sock, None
        assert sock is not None
        config = uvicorn.Config(
            self.app(),
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
            **self.rpc.server_settings(),
        )
        # uvicorn's informational lines, and the websockets library's below them, show
        # request paths and headers: a token offered in a query string, or a WebSocket's.
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
        server = _QuietServer(config)
        done = anyio.Event()

        async def run() -> None:
            # Shielded: uvicorn stops itself when told to (should_exit), closing what it opened.
            with anyio.CancelScope(shield=True):
                try:
                    await server.serve(sockets=[sock])
                finally:
                    sock.close()
                    done.set()

        log.info("HTTP shim serving %s", self.url)
        async with anyio.create_task_group() as tg:
            self._status_routes.start(tg)
            tg.start_soon(run)
            task_status.started()
            try:
                await anyio.sleep_forever()
            finally:
                self._status_routes.close()  # the event streams end now
                self.rpc.close_all(GOING_AWAY)  # and the WebSockets
                server.should_exit = True
                with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                    await done.wait()
