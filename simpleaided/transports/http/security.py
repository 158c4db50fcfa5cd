"""What the HTTP shim refuses, and how (DESIGN.md §7).

Requests whose ``Host`` is not a loopback name or a configured one are refused (DNS
rebinding); CORS headers go only to configured origins; a query parameter that is refused gets
a plain-text answer saying why.
"""

from __future__ import annotations

import re

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from simpleaided.domain.errors import NotFound, SimpleaideError
from simpleaided.domain.hosts import LOOPBACK_NAMES

_HOST_HEADER = re.compile(r"^(?:\[(?P<v6>[0-9a-f:.]+)\]|(?P<name>[^\[\]:]+))(?::[0-9]{1,5})?$")


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


def middleware(allowed: frozenset[str], cors_origins: list[str]) -> list[Middleware]:
    """The checks every request goes through: its ``Host``, then CORS for the configured
    origins (none: no CORS headers at all)."""
    checks = [Middleware(HostCheck, allowed=allowed)]
    if cors_origins:
        checks.append(
            Middleware(
                CORSMiddleware,
                allow_origins=cors_origins,
                allow_methods=["GET"],
                allow_headers=["If-None-Match"],
                expose_headers=["ETag"],
            )
        )
    return checks


def refusal(exc: SimpleaideError) -> Response:
    """A refused query parameter: 404 for a workspace not served, 400 for a bad one."""
    code = 404 if isinstance(exc, NotFound) else 400
    return Response(exc.message + "\n", code, media_type="text/plain")
