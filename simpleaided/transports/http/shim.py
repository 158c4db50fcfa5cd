"""The HTTP shim: the status document for browsers, read-only, on loopback.

Routes: ``GET /api/status`` and ``GET /api/status/stream`` (``status``); ``GET /healthz``;
``GET /openapi.json`` describes them (``openapi``); ``GET /`` is a demo page carrying the
``<simpleaide-status>`` element (``clients/web/``).

Security (DESIGN.md §7): the shim binds loopback unless configured otherwise (checked with the
configuration), refuses requests whose ``Host`` is not a loopback name or a configured one
(DNS rebinding), sends CORS headers only to configured origins (``security``), and has no
route that writes or reveals a secret: the status document holds none.

Starlette and uvicorn (the ``http`` extra) serve it inside the daemon's event loop; uvicorn's
own signal handling is switched off, the daemon's stays in charge.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import anyio
import uvicorn
from anyio.abc import TaskStatus
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from simpleaided.services.events import EventHub
from simpleaided.services.status import StatusService
from simpleaided.transports.http.openapi import openapi_document
from simpleaided.transports.http.security import middleware, served_hosts
from simpleaided.transports.http.status import StatusRoutes

log = logging.getLogger(__name__)

# The web header's files: inside the installed package (the wheel carries them as
# simpleaided/web), else in the repository's clients/web (an editable install, a checkout).
_PACKAGED_WEB = Path(__file__).resolve().parents[2] / "web"
WEB_ROOT = (
    _PACKAGED_WEB
    if _PACKAGED_WEB.is_dir()
    else Path(__file__).resolve().parents[3] / "clients" / "web"
)
SHUTDOWN_GRACE_SECONDS = 1


class _QuietServer(uvicorn.Server):
    """uvicorn without its signal handlers: the daemon handles SIGTERM/SIGINT itself."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


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
    ) -> None:
        self._status_routes = StatusRoutes(status, events, scope)
        self.host = host
        self.port = port
        self._cors_origins = cors_origins
        self._allowed = served_hosts(host, allowed_hosts)
        self._sock: socket.socket | None = None  # bound, not yet served

    @property
    def url(self) -> str:
        """The shim's base URL."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def section(self, socket_path: str) -> dict[str, Any]:
        """The status document's ``api`` section while the shim serves."""
        return {"enabled": True, "url": self.url, "port": self.port, "socket": socket_path}

    def app(self) -> Starlette:
        """The ASGI application."""
        routes = [
            *self._status_routes.routes(),
            Route("/healthz", self._health, methods=["GET"]),
            Route("/openapi.json", self._openapi, methods=["GET"]),
            Route("/", self._web_file("index.html", "text/html"), methods=["GET"]),
            Route(
                "/simpleaide-status.js",
                self._web_file("simpleaide-status.js", "text/javascript"),
                methods=["GET"],
            ),
        ]
        return Starlette(routes=routes, middleware=middleware(self._allowed, self._cors_origins))

    # -- routes ----------------------------------------------------------------------------

    async def _health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})

    async def _openapi(self, request: Request) -> Response:
        return JSONResponse(openapi_document(self.url))

    def _web_file(
        self, name: str, media_type: str
    ) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        async def serve(request: Request) -> Response:
            path = WEB_ROOT / name
            if not path.is_file():
                return Response(f"{name} is not installed\n", 404, media_type="text/plain")
            return FileResponse(path, media_type=media_type, headers={"Cache-Control": "no-cache"})

        return serve

    # -- lifecycle -------------------------------------------------------------------------

    def bind(self) -> None:
        """Listen on ``host:port`` now, before anything else starts: a port in use is one
        clear error, ``port`` is known (port 0), and clients queue until served."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(128)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            where = f"{self.host}:{self.port}"
            raise OSError(f"cannot listen on {where} for the HTTP shim: {exc.strerror}") from None
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
        )
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
                server.should_exit = True
                with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                    await done.wait()
