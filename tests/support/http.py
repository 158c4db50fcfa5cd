"""Talking to the HTTP shim as its clients do: the token a daemon serves with (and the token
file's it is derived from), as the header that carries it, and a request sent byte for byte
(clients normalise what a test must not)."""

from __future__ import annotations

import socket

from simpleaided.app.daemon import Daemon


def token_of(daemon: Daemon) -> str:
    """The token the daemon's shim checks now (the token file's, bound to its address)."""
    token: str = daemon.http.token()
    assert len(token) == 64
    return token


def file_token_of(daemon: Daemon) -> str:
    """The token in the daemon's token file, from which its shim's is derived."""
    return daemon.http_access.token.current()


def bearer(daemon: Daemon) -> dict[str, str]:
    """The ``Authorization`` header the shim wants on every route but the open ones."""
    return {"Authorization": f"Bearer {token_of(daemon)}"}


def raw_request(url: str, head: bytes) -> bytes:
    """Send ``head`` (request line and headers, without the blank line that ends them) to
    the shim at ``url`` exactly as given, and return the whole answer."""
    host, port = url.removeprefix("http://").rstrip("/").rsplit(":", 1)
    with socket.create_connection((host.strip("[]"), int(port)), timeout=5) as sock:
        sock.sendall(head + b"\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data
