"""``http.*``: the web console's address and token, for the ``simpleaide open`` command.

Both are served on the owner-only socket alone (the WebSocket refuses them): whoever holds the
token holds everything the console can do.
"""

from __future__ import annotations

from typing import Any, Protocol

from simpleaided.domain import api
from simpleaided.transports.methods.base import MethodList
from simpleaided.transports.rpc import Method


class HttpControl(Protocol):
    """The HTTP shim as the app runs it (``app.http_access.HttpAccess``)."""

    async def open(self) -> dict[str, Any]: ...

    async def rotate_token(self) -> dict[str, Any]: ...


def http_methods(http: HttpControl) -> list[Method]:
    """Every ``http.*`` method."""
    methods = MethodList()
    add = methods.add

    @add(
        "http.open",
        api.NoParams,
        api.ConsoleLink,
        "The web console's URL and token; starts the HTTP shim (127.0.0.1, a free port) "
        "if it is off.",
    )
    async def http_open(p: api.NoParams, conn: Any) -> dict[str, Any]:
        return await http.open()

    @add(
        "http.rotateToken",
        api.NoParams,
        api.ConsoleLink,
        "Replace the console's token: the old one is refused and open WebSockets closed "
        "(url and token: null while the shim is off).",
    )
    async def http_rotate_token(p: api.NoParams, conn: Any) -> dict[str, Any]:
        return await http.rotate_token()

    return methods
