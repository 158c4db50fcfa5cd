"""Index snapshots: what a workspace's runs looked like when the daemon last stopped.

Loading 100k summaries from one file takes a fraction of a second, where parsing 100k
``metadata.json`` files takes seconds. A snapshot is never trusted as is: each row carries the
signature of the file it came from, and the daemon re-reads every run whose file differs now
(see ``WorkspaceStore.signatures``), so changes made while it was down are seen.

Snapshots live in the daemon's state folder, not in the workspace: the store stays exactly
format v1, shared with other tools.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from pathlib import Path

import orjson

from simpleaided.domain.errors import NotFound, UnsafePath
from simpleaided.domain.index import RunSummary
from simpleaided.store import safefs
from simpleaided.store.runstore import Scanned

log = logging.getLogger(__name__)

FORMAT = 1
_FIELDS = [f.name for f in dataclasses.fields(RunSummary)]
MAX_SNAPSHOT_BYTES = 1 << 30


def snapshot_name(workspace: str) -> str:
    """The snapshot file of ``workspace``: a hash of its path (paths may be long)."""
    return hashlib.sha256(workspace.encode()).hexdigest()[:32] + ".json"


class SnapshotStore:
    """Reads and writes snapshots in one private folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _open(self, *, create: bool) -> int:
        if create:
            self.folder.mkdir(mode=safefs.DIR_MODE, parents=True, exist_ok=True)
        parent = os.open(self.folder.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        with safefs.opened(parent):
            return safefs.open_dir(parent, self.folder.name, str(self.folder), create=create)

    def save(self, workspace: str, rows: list[Scanned]) -> None:
        """Write ``workspace``'s snapshot atomically."""
        data = orjson.dumps(
            {
                "format": FORMAT,
                "workspace": workspace,
                "fields": _FIELDS,
                "rows": [[*dataclasses.astuple(summary), sig] for summary, sig in rows],
            }
        )
        with safefs.opened(self._open(create=True)) as fd:
            safefs.atomic_write(fd, snapshot_name(workspace), data)

    def load(self, workspace: str) -> list[Scanned] | None:
        """``workspace``'s snapshot, or ``None`` if there is none usable."""
        try:
            with safefs.opened(self._open(create=False)) as fd:
                name = snapshot_name(workspace)
                data = safefs.read_file(fd, name, "snapshot", MAX_SNAPSHOT_BYTES)
            doc = orjson.loads(data)
            if (
                doc.get("format") != FORMAT
                or doc.get("fields") != _FIELDS
                or doc.get("workspace") != workspace
            ):
                return None
            rows = doc["rows"]
            # One string object per distinct status and for the workspace, as a scan shares
            # them, instead of one per row (some 100 bytes a run at 100k runs).
            statuses: dict[str, str] = {}
            workspace_field = _FIELDS.index("workspace")
            status_field = _FIELDS.index("status")
            for row in rows:
                row[workspace_field] = workspace
                row[status_field] = statuses.setdefault(row[status_field], row[status_field])
            return [(RunSummary(*row[:-1]), row[-1]) for row in rows]
        except (FileNotFoundError, NotFound):
            return None
        except (OSError, ValueError, TypeError, KeyError, UnsafePath) as exc:
            log.warning("ignoring the index snapshot of %s: %s", workspace, exc)
            return None
