"""The workspaces the daemon serves: those in the config file plus those added at run time.

Added workspaces are remembered in ``<state dir>/workspaces.json`` so they survive restarts.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import orjson

from simpleaided.domain import names
from simpleaided.domain.errors import InvalidInput, NotFound, UnsafePath
from simpleaided.domain.vocabulary import WorkspaceSource
from simpleaided.store import safefs
from simpleaided.store.runstore import WorkspaceLock, WorkspaceStore

log = logging.getLogger(__name__)

STATE_FILE = "workspaces.json"


def canonical_workspace(path: str) -> str:
    """The canonical form of a workspace path given by a client or the config."""
    return os.path.realpath(names.check_workspace_path(path))


class WorkspaceRegistry:
    """Known workspaces by canonical path, each with its store and the lock that makes it
    this daemon's while served."""

    def __init__(self, configured: list[str], state_dir: Path) -> None:
        self._state_dir = state_dir
        self._stores: dict[str, WorkspaceStore] = {}
        self._sources: dict[str, WorkspaceSource] = {}
        self._locks: dict[str, WorkspaceLock] = {}  # the lock of each served workspace
        self._configured = [canonical_workspace(p) for p in configured]
        # Added by a client, then listed in the config too: added again when the config
        # drops them, and remembered meanwhile.
        self._was_added: set[str] = set()
        # Refused because another daemon held them: tried again until served, and the added
        # ones still remembered meanwhile.
        self._refused: dict[str, WorkspaceSource] = {}

    @property
    def configured(self) -> list[str]:
        """The workspaces the configuration lists (canonical)."""
        return list(self._configured)

    def initial(self) -> list[tuple[str, WorkspaceSource]]:
        """The workspaces to load at start: the configured ones, then the remembered ones."""
        out: list[tuple[str, WorkspaceSource]] = [(p, "config") for p in self._configured]
        for path in self._load_remembered():
            if path not in self._configured:
                out.append((path, "added"))
            else:
                self._was_added.add(path)
        return out

    def register(self, path: str, source: WorkspaceSource, lock: WorkspaceLock) -> WorkspaceStore:
        """Remember ``path`` (canonical) as served, holding its ``lock`` (released when it
        is unregistered); returns its store."""
        self._refused.pop(path, None)
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

    def refuse(self, path: str, source: WorkspaceSource) -> None:
        """Note ``path`` (canonical) as refused because another daemon holds it."""
        self._refused[path] = source

    def refused(self) -> list[tuple[str, WorkspaceSource]]:
        """The workspaces another daemon held when last tried, and where each came from."""
        return list(self._refused.items())

    def refused_source(self, path: str) -> WorkspaceSource | None:
        """Where refused ``path`` came from, or ``None`` if it is not refused."""
        return self._refused.get(path)

    def drop_refused(self, path: str) -> WorkspaceSource | None:
        """Stop trying ``path`` again; where it came from, or ``None`` if it was not refused."""
        return self._refused.pop(path, None)

    def configure(self, configured: list[str]) -> tuple[list[str], list[str]]:
        """Take a reloaded configuration's workspaces: ``(to serve, to stop serving)``.

        A newly configured workspace that a client had added becomes configured in place,
        and goes back to being added (still served) when the configuration drops it.
        """
        wanted = [canonical_workspace(p) for p in configured]
        self._configured = wanted
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
        self._refused = refused
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

    def _load_remembered(self) -> list[str]:
        try:
            with safefs.opened(self._open_state_dir(create=False)) as fd:
                data = orjson.loads(safefs.read_file(fd, STATE_FILE, STATE_FILE, 1 << 20))
        except (NotFound, FileNotFoundError):
            return []
        except (OSError, orjson.JSONDecodeError, UnsafePath) as exc:
            log.warning("ignoring %s/%s: %s", self._state_dir, STATE_FILE, exc)
            return []
        paths = data.get("workspaces", []) if isinstance(data, dict) else []
        out = []
        for path in paths:
            try:
                out.append(canonical_workspace(str(path)))
            except InvalidInput as exc:
                log.warning("ignoring remembered workspace: %s", exc.message)
        return out

    def save(self) -> None:
        """Write the added workspaces to the state file (atomically), those another daemon
        holds for now included."""
        known = [*self._sources.items(), *self._refused.items()]
        added = sorted({p for p, source in known if source == "added" or p in self._was_added})
        data = orjson.dumps({"workspaces": added}, option=orjson.OPT_INDENT_2) + b"\n"
        with safefs.opened(self._open_state_dir(create=True)) as fd:
            safefs.atomic_write(fd, STATE_FILE, data)

    def _open_state_dir(self, *, create: bool) -> int:
        if create:
            self._state_dir.mkdir(mode=safefs.DIR_MODE, parents=True, exist_ok=True)
        parent = os.open(self._state_dir.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        with safefs.opened(parent):
            return safefs.open_dir(
                parent, self._state_dir.name, str(self._state_dir), create=create
            )
