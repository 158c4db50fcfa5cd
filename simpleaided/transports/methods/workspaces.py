"""``workspaces.*``: the workspaces the daemon serves."""

from __future__ import annotations

from typing import Any

from simpleaided.domain import api
from simpleaided.services.runs import RunService
from simpleaided.transports.methods.base import MethodList
from simpleaided.transports.rpc import Method


def workspace_methods(runs: RunService) -> list[Method]:
    """List, add and remove served workspaces."""
    methods = MethodList()
    add = methods.add

    @add("workspaces.list", api.NoParams, list[api.WorkspaceInfo], "Served workspaces.")
    def workspaces_list(p: api.NoParams, conn: Any) -> list[dict[str, Any]]:
        return runs.list_workspaces()

    @add("workspaces.add", api.WorkspaceParams, api.WorkspaceInfo, "Serve a workspace.")
    async def workspaces_add(p: api.WorkspaceParams, conn: Any) -> dict[str, Any]:
        return await runs.add_workspace(p.path)

    @add(
        "workspaces.remove",
        api.WorkspaceParams,
        api.WorkspaceRemoved,
        "Stop serving a workspace (files stay); remembered as removed, so that no client"
        " serves it again on its own (scoped calls there answer -32001 with data.removed)"
        " until workspaces.add or runs.create there.",
    )
    async def workspaces_remove(p: api.WorkspaceParams, conn: Any) -> dict[str, Any]:
        return await runs.remove_workspace(p.path)

    return methods
