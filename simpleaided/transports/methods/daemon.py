"""``daemon.*`` and ``rpc.discover``: the daemon itself (alive, its facts, a reload of its
configuration), and the API as an OpenRPC document."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from simpleaided.domain import api
from simpleaided.transports.methods.base import MethodList
from simpleaided.transports.openrpc import openrpc_document
from simpleaided.transports.rpc import Method


class DaemonFacts(Protocol):
    """What ``daemon.info`` reports and how ``daemon.reload`` reloads, from the app layer."""

    def info(self) -> dict[str, Any]: ...

    async def reload_now(self) -> dict[str, Any]: ...


def daemon_methods(daemon: DaemonFacts, table: Callable[[], Sequence[Method]]) -> list[Method]:
    """``daemon.*`` and ``rpc.discover``, which describes ``table()``: the whole method table."""
    methods = MethodList()
    add = methods.add
    described: list[dict[str, Any]] = []  # the OpenRPC document, once made

    @add("daemon.ping", api.NoParams, str, 'Answer "pong": the daemon is alive.')
    def ping(p: api.NoParams, conn: Any) -> str:
        return "pong"

    @add("daemon.info", api.NoParams, api.DaemonInfo, "Version, pid, socket, uptime, warnings.")
    def info(p: api.NoParams, conn: Any) -> dict[str, Any]:
        return daemon.info()

    @add(
        "daemon.reload",
        api.NoParams,
        api.ReloadResult,
        "Read the configuration again and apply it, as SIGHUP does; whether it was applied.",
    )
    async def reload(p: api.NoParams, conn: Any) -> dict[str, Any]:
        return await daemon.reload_now()

    @add("rpc.discover", api.NoParams, dict, "This API as an OpenRPC document.")
    def discover(p: api.NoParams, conn: Any) -> dict[str, Any]:
        if not described:  # made on first use: generating the schemas slows every start
            described.append(openrpc_document(table()))
        return described[0]

    return methods
