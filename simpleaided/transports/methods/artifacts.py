"""``artifacts.*``: save, read, list and delete a step's artifacts."""

from __future__ import annotations

from typing import Any

from simpleaided.domain import api
from simpleaided.services.runs import RunService
from simpleaided.transports.methods.base import MethodList
from simpleaided.transports.rpc import Method


def artifact_methods(runs: RunService) -> list[Method]:
    """Every ``artifacts.*`` method."""
    methods = MethodList()
    add = methods.add

    @add("artifacts.put", api.PutArtifactParams, api.ArtifactInfo, "Save a step's artifact.")
    async def artifacts_put(p: api.PutArtifactParams, conn: Any) -> dict[str, Any]:
        return await runs.put_artifact(p)

    @add("artifacts.get", api.GetArtifactParams, api.ArtifactContent, "Read an artifact.")
    async def artifacts_get(p: api.GetArtifactParams, conn: Any) -> dict[str, Any]:
        return await runs.get_artifact(p)

    @add("artifacts.list", api.ListArtifactsParams, list[api.ArtifactInfo], "List artifacts.")
    async def artifacts_list(p: api.ListArtifactsParams, conn: Any) -> list[dict[str, Any]]:
        return await runs.list_artifacts(p.run_id, p.step)

    @add(
        "artifacts.delete",
        api.DeleteArtifactParams,
        api.ArtifactDeleted,
        "Delete an artifact of a step.",
    )
    async def artifacts_delete(p: api.DeleteArtifactParams, conn: Any) -> dict[str, Any]:
        return await runs.delete_artifact(p.run_id, p.step, p.name)

    return methods
