"""The ``workspaces.*`` contract: the workspaces the daemon serves."""

from __future__ import annotations

from pydantic import BaseModel

from simpleaided.domain.api.base import Params, WorkspacePath
from simpleaided.domain.vocabulary import WorkspaceSource


class WorkspaceParams(Params):
    path: WorkspacePath


class WorkspaceInfo(BaseModel):
    """A workspace the daemon serves."""

    path: str
    runs: int
    source: WorkspaceSource


class WorkspaceRemoved(BaseModel):
    """A workspace no longer served (its files stay), until added again (``workspaces.add``,
    or ``runs.create`` there)."""

    path: str
    removed: bool
