"""What the HTTP shim refuses, and how (README: Security of the HTTP side).

A loopback port has no owner: any local user, and any page the user's browser visits, can
reach it. So, from the outside in, every request and WebSocket upgrade goes through:

- ``SecurityHeaders`` (``guarded``, around the whole application): every answer (refusals
  and server errors too) carries a strict Content-Security-Policy, ``X-Frame-Options:
  DENY``, ``Referrer-Policy: no-referrer``, ``nosniff``, and ``Cache-Control: no-store``
  unless it set its own; no cookie ever leaves.
- ``HostCheck``: a ``Host`` that is not a loopback name or a configured one is refused, on
  requests and on WebSocket upgrades alike (DNS rebinding).
- CORS headers, only for the configured origins.
- ``RequestGate``: a method other than GET/HEAD needs an ``Origin`` that is the shim's own or
  a configured one (missing and ``null`` refused), and is then refused anyway (405): no route
  writes. Every route but ``/healthz`` and the console's files (``/``, ``/static/...``,
  ``/favicon.ico``) needs the token as ``Authorization: Bearer`` (``http.public_status``
  opens the two status routes too); the token is never taken from a query string or a
  cookie. The WebSocket (``/rpc``) checks its Origin and token itself, before it accepts
  (``websocket``).

A query parameter that is refused gets a plain-text answer saying why (``refusal``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable

from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from simpleaided.domain.errors import NotFound, SimpleaideError
from simpleaided.domain.hosts import LOOPBACK_NAMES

_HOST_HEADER = re.compile(r"^(?:\[(?P<v6>[0-9a-f:.]+)\]|(?P<name>[^\[\]:]+))(?::[0-9]{1,5})?$")

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
}
READ_METHODS = frozenset({"GET", "HEAD"})
# Routes open without the token: the daemon answers, and the console's files (no data in
# them: a page must load to read its token from the address's fragment), its icon included.
OPEN_PATHS = frozenset({"/healthz", "/", "/favicon.ico"})
OPEN_PREFIX = "/static/"
STATUS_PATHS = frozenset({"/api/status", "/api/status/stream"})  # http.public_status

HOW_TO_GET_THE_TOKEN = (
    "run `simpleaide open` in a terminal to open the console with its key, or send "
    "`Authorization: Bearer <token>` with the token `simpleaide open --print` shows (made "
    "for this address from the file http-token beside the daemon's socket)"
)


def host_of(header: str) -> str | None:
    """The host of a ``Host`` header (``[::1]:80`` → ``::1``, ``a:80`` → ``a``), or ``None``
    when it is not one well-formed host and optional port."""
    found = _HOST_HEADER.fullmatch(header.strip().lower())
    if found is None:
        return None
    return found["v6"] or found["name"]


def served_hosts(host: str, configured: list[str]) -> frozenset[str]:
    """The ``Host`` names served: loopback's, the one the shim listens on, the configured."""
    return LOOPBACK_NAMES | {host.lower()} | {h.lower() for h in configured}


def listener_token(base: str, host: str, port: int) -> str:
    """The token a shim listening on ``host:port`` accepts: ``HMAC-SHA256(base,
    "<host>:<port>")`` in hex, where ``base`` is the token file's. One given out for this
    listener is worth nothing on any other port: a local user who takes the port once the
    daemon stopped (and so collects what a console still open offers on it) cannot use it
    against the daemon's next port. No base (not loaded yet) or no port yet: ``""``, which
    matches nothing."""
    if not base or not port:
        return ""
    message = f"{host}:{port}".encode()
    return hmac.new(base.encode(), message, hashlib.sha256).hexdigest()


def token_matches(offered: str | None, token: str) -> bool:
    """Whether ``offered`` is the token, compared in constant time; nothing offered, or no
    token to compare with (not loaded yet), never matches."""
    if not offered or not token:
        return False
    return hmac.compare_digest(offered.encode("utf-8", "replace"), token.encode())


def origin_allowed(origin: str | None, host_header: str | None, cors_origins: list[str]) -> bool:
    """Whether a request from ``origin`` may change state or open the WebSocket: the shim's
    own origin (``http://`` and the ``Host`` header) or a configured one. A missing origin
    and ``null`` (sandboxed frames, ``file:`` pages, some redirects) are refused."""
    if not origin or origin.strip().lower() == "null":
        return False
    origin = origin.strip().lower()
    if host_header and origin == "http://" + host_header.strip().lower():
        return True
    return origin in {o.strip().lower().rstrip("/") for o in cors_origins}


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (the scheme in any case)."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _refused(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"error": message}, status, headers=headers)


class SecurityHeaders:
    """Adds the security headers to every answer, and takes any cookie out."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.http.response.start"):
                headers = MutableHeaders(raw=list(message.get("headers", [])))
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
                if "cache-control" not in headers:
                    headers["cache-control"] = "no-store"
                del headers["set-cookie"]
                message["headers"] = headers.raw
            await send(message)

        await self.app(scope, receive, send_with_headers)


class HostCheck:
    """Refuse requests and WebSocket upgrades whose ``Host`` is not one of ours: a page on
    another site that re-points its own name at 127.0.0.1 (DNS rebinding) must not reach the
    shim."""

    def __init__(self, app: ASGIApp, allowed: frozenset[str]) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            host = host_of(_header(scope, b"host") or "")
            if host not in self.allowed:
                if scope["type"] == "websocket":
                    # Before accepting: the upgrade is answered 403 and no WebSocket opens.
                    await send({"type": "websocket.close", "code": 1008})
                    return
                response = Response(
                    "refused: this Host is not served here\n", 403, media_type="text/plain"
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class RequestGate:
    """Fail closed: a method that could change state is refused (after its ``Origin`` is
    checked, so a cross-site attempt is told apart in the log of the browser), and every
    route but the open ones needs the token."""

    def __init__(
        self,
        app: ASGIApp,
        token: Callable[[], str],
        cors_origins: list[str],
        public_status: bool,
    ) -> None:
        self.app = app
        self.token = token
        self.cors_origins = cors_origins
        self.open_paths = OPEN_PATHS | (STATUS_PATHS if public_status else frozenset())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = self._refusal(scope)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> Response | None:
        if scope["method"] not in READ_METHODS:
            origin = _header(scope, b"origin")
            if not origin_allowed(origin, _header(scope, b"host"), self.cors_origins):
                return _refused(
                    403,
                    "refused: a request that could change something must come from the "
                    "console's own page (its Origin header is missing, null or foreign)",
                )
            return _refused(
                405, "only GET and HEAD are served here", headers={"Allow": "GET, HEAD"}
            )
        path = scope["path"]
        if path in self.open_paths or path.startswith(OPEN_PREFIX):
            return None
        offered = bearer_token(_header(scope, b"authorization"))
        if token_matches(offered, self.token()):
            return None
        said = "no key (token) was given" if offered is None else "this key (token) is not valid"
        return _refused(
            401, f"{said}: {HOW_TO_GET_THE_TOKEN}", headers={"WWW-Authenticate": "Bearer"}
        )


def guarded(app: ASGIApp) -> ASGIApp:
    """``app`` (the whole application) with the security headers on every answer: outside
    Starlette's own error handler, whose ``500`` answers would go out without them if they
    were added by one of its middleware (``middleware``'s run inside it)."""
    return SecurityHeaders(app)


def middleware(
    allowed: frozenset[str],
    cors_origins: list[str],
    *,
    token: Callable[[], str],
    public_status: bool,
) -> list[Middleware]:
    """The checks every request goes through, outermost first: its ``Host``, CORS for the
    configured origins (none: no CORS headers at all), then the method, ``Origin`` and token
    (``RequestGate``). The headers every answer carries are added around the application
    (``guarded``)."""
    checks = [Middleware(HostCheck, allowed=allowed)]
    if cors_origins:
        checks.append(
            Middleware(
                CORSMiddleware,
                allow_origins=cors_origins,
                allow_methods=["GET"],
                allow_headers=["If-None-Match", "Authorization"],
                expose_headers=["ETag"],
            )
        )
    checks.append(
        Middleware(RequestGate, token=token, cors_origins=cors_origins, public_status=public_status)
    )
    return checks


def refusal(exc: SimpleaideError) -> Response:
    """A refused query parameter: 404 for a workspace not served, 400 for a bad one."""
    code = 404 if isinstance(exc, NotFound) else 400
    return Response(exc.message + "\n", code, media_type="text/plain")
