"""Watching what the daemon's dispatcher handles, in order: for the tests that count how
requests of flooding clients and of a client waiting for its replies take turns."""

from __future__ import annotations

from typing import Any

from simpleaided.app.daemon import Daemon


def record_handled(daemon: Daemon) -> list[str]:
    """From now on, every message the daemon handles adds ``"flood"`` (its id is
    ``"flood"``) or ``"healthy"`` to the list returned."""
    handled: list[str] = []
    handle = daemon.server._dispatcher.handle

    async def recording(message: bytes, conn: Any) -> bytes | None:
        handled.append("flood" if b'"flood"' in message else "healthy")
        return await handle(message, conn)

    daemon.server._dispatcher.handle = recording  # type: ignore[method-assign,assignment]  # a wrapper
    return handled
