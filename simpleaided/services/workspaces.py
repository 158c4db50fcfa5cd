"""The workspaces the daemon serves: those in the config file plus those added at run time.

Added workspaces are remembered in ``<state dir>/workspaces.json`` so they survive restarts,
and so are those the user stopped serving (``workspaces.remove``, or a reload whose config
file no longer lists them): a client that finds one of those folders again (a reading command
run inside it) must not serve it again on its own, only on an explicit add.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Literal

import orjson

from simpleaided.domain import names
from simpleaided.domain.errors import InvalidInput, LimitExceeded, NotFound, UnsafePath
from simpleaided.domain.vocabulary import WorkspaceSource
from simpleaided.store import safefs
from simpleaided.store.runstore import WorkspaceLock, WorkspaceStore

log = logging.getLogger(__name__)

STATE_FILE = "workspaces.json"

# How many removed workspaces are remembered (the newest): enough for any user's folders,
# while a state file that only grows would not be.
MAX_REMOVED = 256
# How many workspaces may be added (remembered as such): a later add is refused, never one
# already added forgotten.
MAX_ADDED = 1024
# The most one path takes in the state file: the longest, every byte escaped (\u00XX), with
# its quotes, key and indent.
_MAX_ENTRY_BYTES = 6 * names.MAX_WORKSPACE_PATH_BYTES + 64
# The most of the state file that is read: the added and removed lists at their fullest fit
# with room to spare (about 31 MB of 64 MiB), so neither is ever lost to this limit; the
# configured list is left out of a file that would not fit (it only serves to notice a
# workspace the config file dropped while the daemon was down).
MAX_STATE_BYTES = 64 << 20

# Why a workspace is no longer served: removed by a client, or dropped by the config file.
RemovedBy = Literal["remove", "config"]


def canonical_workspace(path: str) -> str:
    """The canonical form of a workspace path given by a client or the config; ``/`` and
    paths in /proc, /sys and /dev are refused, before the path is resolved (``/proc/self/cwd``
    would name the daemon's own folder) and after (a symlink may lead there)."""
    checked = names.check_workspace_folder(names.check_workspace_path(path))
    return names.check_workspace_folder(os.path.realpath(checked))


def _configured_workspace(path: str) -> str:
    """The canonical form of a configured workspace (the config file refused what
    ``canonical_workspace`` refuses before resolving); one a symlink leads to ``/`` is kept,
    for the store to refuse with a warning (the daemon serves on without it), and one whose
    real path is not UTF-8 text is kept as written, for the service to refuse so."""
    try:
        return canonical_workspace(path)
    except InvalidInput:
        given = names.check_workspace_path(path)
        resolved = os.path.realpath(given)
        try:
            return names.check_folder_text(resolved)
        except InvalidInput:  # kept as written (UTF-8 text), for the service to refuse
            return given


def _flagged(paths: list[str] | None) -> frozenset[str]:
    """The canonical forms of the command line's workspaces."""
    out = set()
    for path in paths or []:
        with contextlib.suppress(InvalidInput):  # refused as configured: nothing to keep out
            out.add(_configured_workspace(path))
    return frozenset(out)


class WorkspaceRegistry:
    """Known workspaces by canonical path, each with its store and the lock that makes it
    this daemon's while served."""

    def __init__(
        self, configured: list[str], state_dir: Path, flagged: list[str] | None = None
    ) -> None:
        self._state_dir = state_dir
        self._stores: dict[str, WorkspaceStore] = {}
        self._sources: dict[str, WorkspaceSource] = {}
        self._locks: dict[str, WorkspaceLock] = {}  # the lock of each served workspace
        self._configured = [_configured_workspace(p) for p in configured]
        # Those of the configured ones the command line gave (``--workspace``): served as
        # configured, never remembered as configured (see ``_from_file``).
        self._flagged = _flagged(flagged)
        # Added by a client, then listed in the config too: added again when the config
        # drops them, and remembered meanwhile.
        self._was_added: set[str] = set()
        # Refused because another daemon held them, or (added ones) because they could not be
        # served (a folder made unsafe, a disk not mounted): tried again until served, and
        # the added ones still remembered meanwhile.
        self._refused: dict[str, WorkspaceSource] = {}
        # Why each refused workspace could not be served, when it was not held by another
        # daemon: the message that said so.
        self._unusable: dict[str, str] = {}
        # No longer served at the user's wish, oldest first, and why: served again only
        # when added explicitly (or configured again).
        self._removed: dict[str, RemovedBy] = {}
        # Whether the state file must be written once loading ends (the configured
        # workspaces changed since it was: it remembers them to notice those dropped).
        self.changed_at_start = False

    @property
    def configured(self) -> list[str]:
        """The workspaces the configuration lists (canonical)."""
        return list(self._configured)

    def initial(self) -> list[tuple[str, WorkspaceSource]]:
        """The workspaces to load at start: the configured ones, then the remembered ones.

        A workspace the config file listed when the state file was last written, and no
        longer lists, is remembered as removed by the config (as a reload would have)."""
        out: list[tuple[str, WorkspaceSource]] = [(p, "config") for p in self._configured]
        remembered, self._removed, configured_before = self._load_remembered()
        for path in configured_before or []:
            if path not in self._configured and path not in remembered:
                self.mark_removed(path, "config")
        for path in self._configured:
            self._removed.pop(path, None)  # listed in the config file again
        self.changed_at_start = (configured_before or []) != self._from_file()
        for path in remembered:
            if path not in self._configured:
                out.append((path, "added"))
            else:
                self._was_added.add(path)
        return out

    def register(self, path: str, source: WorkspaceSource, lock: WorkspaceLock) -> WorkspaceStore:
        """Remember ``path`` (canonical) as served, holding its ``lock`` (released when it
        is unregistered); returns its store."""
        self._refused.pop(path, None)
        self._unusable.pop(path, None)
        self._removed.pop(path, None)  # served again (added, or configured again)
        if source == "added" and path in self._configured:
            # The config lists it (a client added it before the config's own attempt got
            # there): it stays the config's, and is remembered as added too.
            source = "config"
            self._was_added.add(path)
        store = self._stores.get(path)
        if store is None:
            store = self._stores[path] = WorkspaceStore(path)
            self._sources[path] = source
            self._locks[path] = lock
        else:
            lock.release()  # already held, through the first registration
        return store

    def unregister(self, path: str, *, configured: bool = False, clean: bool = True) -> None:
        """Stop serving ``path``; configured workspaces only when the configuration dropped
        them (``configured``), never on a client's request. ``clean``: no write of this
        daemon is in flight there (else its next holder walks it)."""
        if path not in self._stores:
            raise NotFound(f"workspace {path} is not served")
        if self._sources[path] == "config" and not configured:
            raise InvalidInput(f"workspace {path} comes from the config file; remove it there")
        del self._stores[path]
        del self._sources[path]
        self._locks.pop(path).release(clean=clean)
        self.mark_removed(path, "config" if configured else "remove")

    def mark_removed(self, path: str, by: RemovedBy) -> None:
        """Remember that the user stopped serving ``path`` (canonical), and how."""
        self._removed.pop(path, None)  # the newest last
        self._removed[path] = by
        while len(self._removed) > MAX_REMOVED:
            del self._removed[next(iter(self._removed))]

    def removed_by(self, path: str) -> RemovedBy | None:
        """How the user stopped serving ``path`` (canonical), or ``None`` if they did not
        (or added it again since)."""
        return self._removed.get(path)

    def removed(self) -> list[str]:
        """The workspaces the user stopped serving (canonical), newest first."""
        return list(reversed(self._removed))

    def _added(self) -> list[str]:
        """The workspaces remembered as added (another daemon's for now included)."""
        known = [*self._sources.items(), *self._refused.items()]
        return sorted({p for p, source in known if source == "added" or p in self._was_added})

    def check_room(self, path: str) -> None:
        """``LimitExceeded`` if ``path`` (canonical, not served) cannot be added: as many
        workspaces as may be are added already."""
        if path in self._configured or path in self._refused:
            return  # remembered already, or the config's
        if len(self._added()) >= MAX_ADDED:
            raise LimitExceeded(
                f"cannot add workspace {path}: {MAX_ADDED} workspaces are added already; "
                "remove those you no longer use (simpleaide workspaces rm PATH)"
            )

    def release_all(self, *, clean: bool) -> None:
        """Let every served workspace go, for another daemon to serve (at stop); ``clean``:
        every write has ended."""
        for lock in self._locks.values():
            lock.release(clean=clean)

    def lock(self, path: str) -> WorkspaceLock:
        """The lock held on served workspace ``path``."""
        try:
            return self._locks[path]
        except KeyError:
            raise NotFound(f"workspace {path} is not served") from None

    def refuse(self, path: str, source: WorkspaceSource, unusable: str | None = None) -> None:
        """Note ``path`` (canonical) as refused: because another daemon holds it, or, given
        ``unusable`` (why, in words), because it cannot be served as it is."""
        self._refused[path] = source
        if unusable is None:
            self._unusable.pop(path, None)
        else:
            self._unusable[path] = unusable

    def refused_why(self, path: str) -> str | None:
        """Why refused ``path`` cannot be served, or ``None`` if another daemon holds it (or
        it is not refused)."""
        return self._unusable.get(path)

    def refused(self) -> list[tuple[str, WorkspaceSource]]:
        """The workspaces another daemon held when last tried, and where each came from."""
        return list(self._refused.items())

    def refused_source(self, path: str) -> WorkspaceSource | None:
        """Where refused ``path`` came from, or ``None`` if it is not refused."""
        return self._refused.get(path)

    def drop_refused(self, path: str) -> WorkspaceSource | None:
        """Stop trying ``path`` again; where it came from, or ``None`` if it was not refused."""
        self._unusable.pop(path, None)
        return self._refused.pop(path, None)

    def configure(
        self, configured: list[str], flagged: list[str] | None = None
    ) -> tuple[list[str], list[str]]:
        """Take a reloaded configuration's workspaces (``flagged``: those of them the command
        line gave): ``(to serve, to stop serving)``.

        A newly configured workspace that a client had added becomes configured in place,
        and goes back to being added (still served) when the configuration drops it.
        """
        wanted = [_configured_workspace(p) for p in configured]
        self._configured = wanted
        self._flagged = _flagged(flagged)
        for path in wanted:
            self._removed.pop(path, None)  # listed in the config file again
        # A refused configured workspace the configuration dropped is not wanted any more
        # (one it still lists is tried again now, as new).
        refused: dict[str, WorkspaceSource] = {}
        for path, source in self._refused.items():
            if path in wanted:
                if source == "added":  # remembered meanwhile, as a served one would be
                    self._was_added.add(path)
                refused[path] = "config"
            elif source == "added" or path in self._was_added:
                self._was_added.discard(path)
                refused[path] = "added"
            else:
                self.mark_removed(path, "config")
        self._refused = refused
        self._unusable = {p: why for p, why in self._unusable.items() if p in refused}
        dropped = []
        for path, source in list(self._sources.items()):
            if source != "config" or path in wanted:
                continue
            if path in self._was_added:
                self._sources[path] = "added"
                self._was_added.discard(path)
            else:
                dropped.append(path)
        new = []
        for path in wanted:
            if path not in self._sources:
                new.append(path)
            elif self._sources[path] == "added":
                self._sources[path] = "config"
                self._was_added.add(path)
        return new, dropped

    def store(self, path: str) -> WorkspaceStore:
        """The store of served workspace ``path``."""
        try:
            return self._stores[path]
        except KeyError:
            raise NotFound(f"workspace {path} is not served") from None

    def find(self, path: str) -> str | None:
        """The canonical path of ``path`` if it is served, else ``None``."""
        return self.find_canonical(canonical_workspace(path))

    def find_canonical(self, canonical: str) -> str | None:
        """``canonical`` if that (already canonical) path is served, else ``None``."""
        return canonical if canonical in self._stores else None

    def source(self, path: str) -> WorkspaceSource:
        """Where served workspace ``path`` came from."""
        return self._sources[path]

    def items(self) -> list[tuple[str, WorkspaceSource]]:
        """Served workspaces and where each came from."""
        return list(self._sources.items())

    def __len__(self) -> int:
        return len(self._stores)

    def _load_remembered(self) -> tuple[list[str], dict[str, RemovedBy], list[str] | None]:
        """The added workspaces of the state file, the removed ones (oldest first), and the
        configured ones when it was written (``None`` if it does not say)."""
        try:
            with safefs.opened(self._open_state_dir(create=False)) as fd:
                data = orjson.loads(safefs.read_file(fd, STATE_FILE, STATE_FILE, MAX_STATE_BYTES))
        except (NotFound, FileNotFoundError):
            return [], {}, None
        except (OSError, orjson.JSONDecodeError, UnsafePath) as exc:
            log.warning("ignoring %s/%s: %s", self._state_dir, STATE_FILE, exc)
            return [], {}, None
        if not isinstance(data, dict):
            data = {}
        paths = data.get("workspaces")
        out = []
        for path in paths if isinstance(paths, list) else []:
            try:
                out.append(canonical_workspace(str(path)))
            except InvalidInput as exc:
                log.warning("ignoring remembered workspace: %s", exc.message)
        removed: dict[str, RemovedBy] = {}
        listed = data.get("removed")
        for entry in listed if isinstance(listed, list) else []:
            if not isinstance(entry, dict) or entry.get("by") not in ("remove", "config"):
                continue
            try:
                removed[canonical_workspace(str(entry.get("path")))] = entry["by"]
            except InvalidInput:
                continue  # no longer a valid path: nothing to keep it from
        for path in out:
            removed.pop(path, None)
        configured: list[str] | None = None
        listed = data.get("configured")
        if isinstance(listed, list):
            configured = []
            for path in listed:
                with contextlib.suppress(InvalidInput):  # nothing to notice about it
                    configured.append(_configured_workspace(str(path)))
        return out, removed, configured

    def _from_file(self) -> list[str]:
        """The configured workspaces the config file lists (not only ``--workspace``): those
        a later start without them may take as dropped by the config file."""
        return [p for p in self._configured if p not in self._flagged]

    def encode(self) -> bytes:
        """The state file's contents: the added workspaces (those another daemon holds for
        now included), the configured ones, and the removed ones. Made on the event loop,
        where the registry changes (``write`` it in a worker thread)."""
        state: dict[str, object] = {
            "workspaces": self._added(),
            "configured": self._from_file(),
            "removed": [{"path": path, "by": by} for path, by in self._removed.items()],
        }
        data = orjson.dumps(state, option=orjson.OPT_INDENT_2) + b"\n"
        if len(data) > MAX_STATE_BYTES:  # only with a config file of thousands of workspaces
            del state["configured"]
            data = orjson.dumps(state, option=orjson.OPT_INDENT_2) + b"\n"
        return data

    def write(self, data: bytes) -> None:
        """Write ``data`` (from ``encode``) to the state file, atomically; may block."""
        with safefs.opened(self._open_state_dir(create=True)) as fd:
            safefs.atomic_write(fd, STATE_FILE, data)

    def save(self) -> None:
        """Write the state file now (``encode``, then ``write``)."""
        self.write(self.encode())

    def _open_state_dir(self, *, create: bool) -> int:
        if create:
            self._state_dir.mkdir(mode=safefs.DIR_MODE, parents=True, exist_ok=True)
        parent = os.open(self._state_dir.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        with safefs.opened(parent):
            return safefs.open_dir(
                parent, self._state_dir.name, str(self._state_dir), create=create
            )
