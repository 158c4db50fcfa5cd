"""``terminals.*``: shells on PTYs hosted by the daemon, attached from any connection.

Attaching starts the connection's ``terminal.output`` and ``terminal.exited`` notifications
(after the reply, which carries the replay); closing the connection detaches it.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from simpleaided.domain.api import NoParams
from simpleaided.domain.api import terminals as api
from simpleaided.domain.errors import InvalidInput
from simpleaided.services.terminals import TerminalService
from simpleaided.transports.methods.base import MethodList
from simpleaided.transports.rpc import Method


def _decoded(data: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("data: not valid base64") from None


def terminal_methods(terminals: TerminalService) -> list[Method]:
    """Every ``terminals.*`` method."""
    methods = MethodList()
    add = methods.add

    @add(
        "terminals.create",
        api.CreateTerminalParams,
        api.TerminalCreated,
        "Start a program (the login shell by default) on a new PTY; attach to see it.",
    )
    def create(p: api.CreateTerminalParams, conn: Any) -> dict[str, Any]:
        terminal = terminals.create(
            cwd=p.cwd, argv=p.argv, env=p.env, name=p.name, size=(p.cols, p.rows)
        )
        return {"id": terminal.id, "name": terminal.name, "pid": terminal.pid}

    @add("terminals.list", NoParams, list[api.TerminalInfo], "Every terminal, oldest first.")
    def list_(p: NoParams, conn: Any) -> list[dict[str, Any]]:
        return terminals.describe()

    @add(
        "terminals.attach",
        api.AttachParams,
        api.Attached,
        "Attach this connection: the replay now, then terminal.output and terminal.exited.",
    )
    def attach(p: api.AttachParams, conn: Any) -> dict[str, Any]:
        size = (p.cols, p.rows) if p.cols is not None and p.rows is not None else None
        return terminals.get(p.id).attach(conn, size, p.read_only)

    @add("terminals.input", api.InputParams, api.Done, "Type into a terminal.")
    def input_(p: api.InputParams, conn: Any) -> dict[str, Any]:
        data = _decoded(p.data) if p.data is not None else (p.text or "").encode()
        terminals.get(p.id).write(conn, data)
        return {}

    @add("terminals.resize", api.ResizeParams, api.Done, "Resize a terminal.")
    def resize(p: api.ResizeParams, conn: Any) -> dict[str, Any]:
        terminals.get(p.id).resize(conn, p.cols, p.rows)
        return {}

    @add(
        "terminals.ack",
        api.AckParams,
        api.Done,
        "This client consumed the output up to offset (flow control).",
    )
    def ack(p: api.AckParams, conn: Any) -> dict[str, Any]:
        terminals.get(p.id).ack(conn, p.offset)
        return {}

    @add("terminals.detach", api.TerminalRef, api.Done, "Stop this connection's notifications.")
    def detach(p: api.TerminalRef, conn: Any) -> dict[str, Any]:
        terminals.get(p.id).detach(conn)
        return {}

    @add(
        "terminals.kill",
        api.KillParams,
        api.Done,
        "Signal a terminal's processes (HUP, then TERM and KILL); remove an exited one.",
    )
    def kill(p: api.KillParams, conn: Any) -> dict[str, Any]:
        terminals.kill(p.id, p.signal, remove=p.remove)
        return {}

    @add("terminals.rename", api.RenameParams, api.Done, "Rename a terminal.")
    def rename(p: api.RenameParams, conn: Any) -> dict[str, Any]:
        terminals.rename(p.id, p.name)
        return {}

    return methods
