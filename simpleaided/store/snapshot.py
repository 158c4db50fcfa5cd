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
import io
import logging
import operator
import os
from pathlib import Path

import orjson

from simpleaided.domain.errors import NotFound, UnsafePath
from simpleaided.domain.index import RunSummary
from simpleaided.store import safefs
from simpleaided.store.runstore import Scanned

log = logging.getLogger(__name__)

FORMAT = 2  # 2: lines of rows, times as epoch milliseconds
_FIELDS = [f.name for f in dataclasses.fields(RunSummary)]
_WORKSPACE = _FIELDS.index("workspace")
_STATUS = _FIELDS.index("status")
_COMPLETED = _FIELDS.index("completed_ms")
_UPDATED = _FIELDS.index("updated_ms")
_values = operator.attrgetter(*_FIELDS)
# Rows are written in lines of this many: one dump per run costs a 4 KB buffer each, one
# dump for all runs holds every row's list at once.
ROWS_PER_LINE = 1000
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
        """Write ``workspace``'s snapshot atomically: a header line, then lines of rows."""
        header = {"format": FORMAT, "workspace": workspace, "fields": _FIELDS}
        lines = [orjson.dumps(header)]
        for start in range(0, len(rows), ROWS_PER_LINE):
            chunk = rows[start : start + ROWS_PER_LINE]
            lines.append(orjson.dumps([(*_values(summary), sig) for summary, sig in chunk]))
        lines.append(b"")
        with safefs.opened(self._open(create=True)) as fd:
            safefs.atomic_write(fd, snapshot_name(workspace), b"\n".join(lines))

    def exists(self, workspace: str) -> bool:
        """Whether ``workspace`` has a snapshot file (usable or not): a ``stat``."""
        return (self.folder / snapshot_name(workspace)).is_file()

    def load(self, workspace: str) -> list[Scanned] | None:
        """``workspace``'s snapshot, or ``None`` if there is none usable."""
        try:
            with safefs.opened(self._open(create=False)) as fd:
                name = snapshot_name(workspace)
                data = safefs.read_file(fd, name, "snapshot", MAX_SNAPSHOT_BYTES)
            lines = io.BytesIO(data)
            header = orjson.loads(lines.readline())
            if (
                not isinstance(header, dict)
                or header.get("format") != FORMAT
                or header.get("fields") != _FIELDS
                or header.get("workspace") != workspace
            ):
                return None
            # A line at a time, so each line's lists are freed before the next is parsed:
            # parsing the whole file at once left ~350 bytes a run of freed holes between the
            # kept objects (RSS that is never given back). One string object per distinct
            # status, and the workspace's, as a scan shares them.
            statuses: dict[str, str] = {}
            loaded: list[Scanned] = []
            for line in lines:
                for row in orjson.loads(line):
                    if not isinstance(row, list) or len(row) != len(_FIELDS) + 1:
                        raise ValueError(f"a row is not a list of {len(_FIELDS) + 1} values")
                    status = row[_STATUS]
                    row[_WORKSPACE] = workspace
                    row[_STATUS] = statuses.setdefault(status, status)
                    if row[_UPDATED] == row[_COMPLETED]:
                        row[_UPDATED] = row[_COMPLETED]  # one int object, as a scan shares it
                    signature = row.pop()
                    loaded.append((RunSummary(*row), signature))
            return loaded
        except (FileNotFoundError, NotFound):
            return None
        except (OSError, ValueError, TypeError, KeyError, UnsafePath) as exc:
            log.warning("ignoring the index snapshot of %s: %s", workspace, exc)
            return None
