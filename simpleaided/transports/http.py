"""The HTTP shim: the status document for browsers, read-only, on loopback.

``GET /api/status`` answers the status document (the same as ``status.get``) with an
``ETag``, so a header polling every few seconds gets ``304 Not Modified`` for next to
nothing; ``GET /api/status/stream`` sends it as Server-Sent Events whenever it changes;
``GET /healthz``; ``GET /openapi.json`` describes these; ``GET /`` is a demo page carrying the
``<simpleaide-status>`` element (``clients/web/``).

Security (DESIGN.md §7): the shim binds loopback unless configured otherwise (checked with the
configuration), refuses requests whose ``Host`` is not a loopback name or a configured one
(DNS rebinding), sends CORS headers only to configured origins, and has no route that writes
or reveals a secret: the status document holds none.

Starlette and uvicorn (the ``http`` extra) serve it inside the daemon's event loop; uvicorn's
own signal handling is switched off, the daemon's stays in charge.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import socket
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import anyio
import orjson
import uvicorn
from anyio.abc import TaskGroup, TaskStatus
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from simpleaided import __version__
from simpleaided.domain.errors import NotFound, SimpleaideError
from simpleaided.domain.names import MAX_WORKSPACE_PATH_BYTES
from simpleaided.domain.status import StatusDocument
from simpleaided.services.events import EventHub
from simpleaided.services.status import StatusService

log = logging.getLogger(__name__)

# The web header's files: inside the installed package (the wheel carries them as
# simpleaided/web), else in the repository's clients/web (an editable install, a checkout).
_PACKAGED_WEB = Path(__file__).resolve().parents[1] / "web"
WEB_ROOT = (
    _PACKAGED_WEB
    if _PACKAGED_WEB.is_dir()
    else Path(__file__).resolve().parents[2] / "clients" / "web"
)
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
# How often an event stream checks its document: sent again when what it shows changed (ages
# in the chips' words, the vault's countdown), else a "ping" event, which a page can see (a
# comment it cannot), so it can tell a silent daemon from a quiet one.
HEARTBEAT_SECONDS = 5.0
SHUTDOWN_GRACE_SECONDS = 1


_HOST_HEADER = re.compile(r"^(?:\[(?P<v6>[0-9a-f:.]+)\]|(?P<name>[^\[\]:]+))(?::[0-9]{1,5})?$")


def host_of(header: str) -> str | None:
    """The host of a ``Host`` header (``[::1]:80`` → ``::1``, ``a:80`` → ``a``), or ``None``
    when it is not one well-formed host and optional port."""
    found = _HOST_HEADER.fullmatch(header.strip().lower())
    if found is None:
        return None
    return found["v6"] or found["name"]


class HostCheck:
    """Refuse requests whose ``Host`` is not one of ours: a page on another site that
    re-points its own name at 127.0.0.1 (DNS rebinding) must not read the status."""

    def __init__(self, app: ASGIApp, allowed: frozenset[str]) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            host = host_of(headers.get(b"host", b"").decode("latin-1"))
            if host not in self.allowed:
                response = Response(
                    "refused: this Host is not served here\n", 403, media_type="text/plain"
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def stable_view(doc: dict[str, Any]) -> dict[str, Any]:
    """The document without what changes by the millisecond (answer time, ages, latencies):
    what the ``ETag`` is made of. The chips stay: their words change with ages in whole
    units ("2m ago"), so a header still updates when they do."""
    runs = doc["runs"]
    last = runs.get("last")
    llm = doc["llm"]
    return {
        **doc,
        "generatedAt": None,
        "runs": {**runs, "last": {**last, "ageMs": None} if last else None},
        "vault": {**doc["vault"], "autoLockRemainingMs": None},
        "db": {**doc["db"], "latencyMs": None, "checkedAt": None},
        "llm": {
            **llm,
            "backends": [{**b, "latencyMs": None, "checkedAt": None} for b in llm["backends"]],
        },
    }


def etag_of(doc: dict[str, Any]) -> str:
    """A weak validator of the document's meaning (see ``stable_view``)."""
    digest = hashlib.blake2b(orjson.dumps(stable_view(doc)), digest_size=12).hexdigest()
    return f'W/"{digest}"'


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    tags = {tag.strip() for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags or etag.removeprefix("W/") in tags


class _StreamSubscriber:
    """Plays the part of a connection for ``EventHub``: its notifications go to a stream."""

    def __init__(self) -> None:
        self.send, self.receive = anyio.create_memory_object_stream[dict[str, Any]](16)
        self.pumps: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self.closers: dict[str, Callable[[], object]] = {}

    async def notify(self, method: str, params: dict[str, Any]) -> None:
        await self.send.send(params)

    def start_after_reply(self, task: Callable[[], Coroutine[Any, Any, None]]) -> None:
        async def pump() -> None:
            try:
                await task()
            finally:
                # The hub ended the subscription (its workspace was removed, say): end the
                # stream too, so the client reconnects and learns why.
                self.send.close()

        self.pumps.append(pump)

    def on_close(self, key: str, callback: Callable[[], object]) -> None:
        self.closers[key] = callback

    def close(self) -> None:
        """End the subscription and the stream (twice is harmless)."""
        closers, self.closers = self.closers, {}
        for callback in closers.values():
            callback()
        self.send.close()
        self.receive.close()


def openapi_document(base: str) -> dict[str, Any]:
    """The OpenAPI description of the shim, with the status document's schema."""
    schema = StatusDocument.model_json_schema(ref_template="#/components/schemas/{model}")
    components = schema.pop("$defs", {})
    components["StatusDocument"] = schema
    workspace = {
        "name": "workspace",
        "in": "query",
        "required": False,
        "description": "count only the runs of this served workspace (an absolute path)",
        # What the daemon accepts as a workspace path: absolute, no NUL, no ".." segment.
        "schema": {
            "type": "string",
            "pattern": r"^(?!.*(^|/)\.\.(/|$))/[^\x00]*$",
            "maxLength": MAX_WORKSPACE_PATH_BYTES // 4,  # 4 bytes a character at most
        },
    }
    status_ref = {"$ref": "#/components/schemas/StatusDocument"}
    text = {"text/plain": {"schema": {"type": "string"}}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "simpleaided HTTP shim",
            "version": __version__,
            "description": "Read-only status of the SimpleAide daemon, for browser headers.",
        },
        "servers": [{"url": base}],
        "paths": {
            "/api/status": {
                "get": {
                    "summary": "The status document (as status.get)",
                    "operationId": "getStatus",
                    "parameters": [
                        workspace,
                        {
                            "name": "If-None-Match",
                            "in": "header",
                            "required": False,
                            "schema": {"type": "string"},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "The document; ETag names its meaning",
                            "content": {"application/json": {"schema": status_ref}},
                        },
                        "304": {"description": "Not modified since the ETag given"},
                        "400": {
                            "description": "The workspace is not a valid path",
                            "content": text,
                        },
                        "404": {"description": "The workspace is not served", "content": text},
                    },
                }
            },
            "/api/status/stream": {
                "get": {
                    "summary": "The status document as Server-Sent Events, on every change",
                    "operationId": "streamStatus",
                    "parameters": [workspace],
                    "responses": {
                        "200": {
                            "description": "event: status, data: the document (JSON)",
                            "content": {"text/event-stream": {"schema": {"type": "string"}}},
                        },
                        "400": {
                            "description": "The workspace is not a valid path",
                            "content": text,
                        },
                        "404": {"description": "The workspace is not served", "content": text},
                    },
                }
            },
            "/healthz": {
                "get": {
                    "summary": "The daemon answers",
                    "operationId": "health",
                    "responses": {
                        "200": {
                            "description": "ok",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {"status": {"const": "ok"}},
                                        "required": ["status"],
                                    }
                                }
                            },
                        }
                    },
                }
            },
        },
        "components": {"schemas": components},
    }


def _refusal(exc: SimpleaideError) -> Response:
    """A refused query parameter: 404 for a workspace not served, 400 for a bad one."""
    code = 404 if isinstance(exc, NotFound) else 400
    return Response(exc.message + "\n", code, media_type="text/plain")


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
        web_root: Path = WEB_ROOT,
    ) -> None:
        self._status = status
        self._events = events
        self._scope = scope
        self.host = host
        self.port = port
        self._web_root = web_root
        self._cors_origins = cors_origins
        self._allowed = LOOPBACK_NAMES | {host.lower()} | {h.lower() for h in allowed_hosts}
        self._tasks: TaskGroup | None = None  # runs the event streams' senders
        self._streams: set[_StreamSubscriber] = set()
        self._closing = False
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
        middleware = [Middleware(HostCheck, allowed=frozenset(self._allowed))]
        if self._cors_origins:
            middleware.append(
                Middleware(
                    CORSMiddleware,
                    allow_origins=self._cors_origins,
                    allow_methods=["GET"],
                    allow_headers=["If-None-Match"],
                    expose_headers=["ETag"],
                )
            )
        routes = [
            Route("/api/status", self._get_status, methods=["GET"]),
            Route("/api/status/stream", self._stream_status, methods=["GET"]),
            Route("/healthz", self._health, methods=["GET"]),
            Route("/openapi.json", self._openapi, methods=["GET"]),
            Route("/", self._web_file("index.html", "text/html"), methods=["GET"]),
            Route(
                "/simpleaide-status.js",
                self._web_file("simpleaide-status.js", "text/javascript"),
                methods=["GET"],
            ),
        ]
        return Starlette(routes=routes, middleware=middleware)

    # -- routes ----------------------------------------------------------------------------

    def _workspace(self, request: Request) -> str | None:
        return self._scope(request.query_params.get("workspace"))

    async def _get_status(self, request: Request) -> Response:
        try:
            doc = self._status.document(self._workspace(request))
        except SimpleaideError as exc:
            return _refusal(exc)
        etag = etag_of(doc)
        headers = {"ETag": etag, "Cache-Control": "no-store"}
        if _matches(request.headers.get("if-none-match"), etag):
            return Response(status_code=304, headers=headers)
        return Response(orjson.dumps(doc), media_type="application/json", headers=headers)

    async def _stream_status(self, request: Request) -> Response:
        try:
            workspace = self._workspace(request)
        except SimpleaideError as exc:
            return _refusal(exc)
        if self._tasks is None or self._closing:
            return Response("shutting down\n", 503, media_type="text/plain")
        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        if request.method == "HEAD":  # the headers only: an endless body is never started
            return Response(media_type="text/event-stream", headers=headers)
        return StreamingResponse(
            self._events_of(workspace), media_type="text/event-stream", headers=headers
        )

    async def _events_of(self, workspace: str | None) -> AsyncIterator[bytes]:
        """The event stream of one client: the document now, then after each change, and
        every ``HEARTBEAT_SECONDS`` either the document (if what it shows moved on) or a
        ``ping``, which also keeps proxies from timing the stream out.

        The subscription is made here, when the stream starts, so a client gone before
        that leaves nothing behind."""

        def event(params: dict[str, Any]) -> bytes:
            data = orjson.dumps(params["status"])
            return b"event: status\nid: %d\ndata: %s\n\n" % (params["seq"], data)

        assert self._tasks is not None
        subscriber = _StreamSubscriber()
        snapshot = self._events.subscribe_status(subscriber, workspace)
        for pump in subscriber.pumps:  # the hub's sender for this subscription
            self._tasks.start_soon(pump)
        self._streams.add(subscriber)
        try:
            yield b"retry: 2000\n" + event(snapshot)
            sent = etag_of(snapshot["status"])
            while True:
                params = None
                with anyio.move_on_after(HEARTBEAT_SECONDS):
                    params = await subscriber.receive.receive()
                if params is None:
                    try:
                        doc = self._status.document(workspace)
                    except SimpleaideError:
                        return  # its workspace is no longer served: the reconnect says so
                    if etag_of(doc) == sent:
                        yield b"event: ping\ndata: {}\n\n"
                        continue
                    params = {"seq": self._events.seq, "status": doc}
                sent = etag_of(params["status"])
                yield event(params)
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            return  # the shim is stopping
        finally:
            self._streams.discard(subscriber)
            subscriber.close()

    async def _health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})

    async def _openapi(self, request: Request) -> Response:
        return JSONResponse(openapi_document(self.url))

    def _web_file(
        self, name: str, media_type: str
    ) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        async def serve(request: Request) -> Response:
            path = self._web_root / name
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
            self._tasks = tg
            tg.start_soon(run)
            task_status.started()
            try:
                await anyio.sleep_forever()
            finally:
                self._closing = True
                for subscriber in list(self._streams):
                    subscriber.close()  # their streams end now
                server.should_exit = True
                with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                    await done.wait()
