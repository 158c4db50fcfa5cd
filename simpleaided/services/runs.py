"""The run service: every run, step and artifact operation, and the index that mirrors them.

Writes run in a worker thread (they fsync) under a per-run lock, inside a shielded scope so a
shutdown never leaves a write applied on disk but missing from the index. The index is
changed in exactly one place, ``_index_put``/``_index_drop``.

A run that ends leaves no step open (``states.end_run``). Closing a run's open steps touches
several files, written in this order: the run's ``metadata.json`` first, then each closed
step's ``step.json`` in step order (for ``steps.fail`` with ``failRun``, the failing step
first among them). A crash before the first write changes nothing; a crash after it leaves a
finished run with open steps, which start-up (``tidy``) closes exactly as the transition
would have, with the run's reason, and logs. A store written by an older daemon, which left
steps open, is repaired the same way. A crash mid-write otherwise leaves only hidden temp
entries of exact names (``.tmp-<hex>``, ``.deleting-<hex>``, ``.creating-<hex>``), which
``tidy`` removes.

Events go out in the opposite order: a change's step events before its run's event, so the
``status`` event that says a run ended comes after those of the steps its end closed (and of
the step whose failure ended it): a client that stops at the run's end has seen them all.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import shlex
import stat
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, TypeVar

import anyio
import anyio.lowlevel

from simpleaided.domain import api, clock, names, states, status
from simpleaided.domain.errors import (
    InvalidInput,
    InvalidTransition,
    NotFound,
    UnsafePath,
    WorkspaceTaken,
)
from simpleaided.domain.index import RunIndex, RunSummary
from simpleaided.domain.models import CORRUPT, RunMetadata, RunStatus, StepMetadata, StepStatus
from simpleaided.domain.vocabulary import WorkspaceSource
from simpleaided.services.events import EventHub
from simpleaided.services.fairness import TimeSlices
from simpleaided.services.processes import process_gone, process_start_time
from simpleaided.services.warnings import Warnings
from simpleaided.services.watcher import RunWatcher
from simpleaided.services.workspaces import RemovedBy, WorkspaceRegistry, canonical_workspace
from simpleaided.store.runstore import (
    CorruptRecord,
    RunHandle,
    Scanned,
    WorkspaceStore,
    artifact_info,
    check_workspace_root,
    encode_artifact,
    runs_path,
)
from simpleaided.store.snapshot import SnapshotStore

log = logging.getLogger(__name__)

T = TypeVar("T")
A = TypeVar("A")
B = TypeVar("B")


def _scanned_id(scanned: Scanned) -> str:
    return scanned[0].id


_LOCK_STRIPES = 64


def _read_steps(handle: RunHandle, run: RunMetadata) -> list[StepMetadata]:
    """The readable records of steps ``1..stepCount``; a missing or corrupt one is left as is
    (it is reported as such; nothing says whether it is open)."""
    dirs = handle.step_dirs()
    found = []
    for number in range(1, run.step_count + 1):
        dir_name = dirs.get(number)
        if dir_name is None:
            continue
        try:
            found.append(handle.read_step(number, dir_name))
        except (CorruptRecord, NotFound, UnsafePath):
            continue
    return found


def _forcible(exc: InvalidTransition) -> InvalidTransition:
    """``exc``, marked as a refusal that the call's ``force`` would overcome (``data.hint``):
    a client words that its own way (the CLI names its ``--force``)."""
    exc.data = {**(exc.data or {}), "hint": "force"}
    return exc


def _read_for_change(handle: RunHandle, requested: str) -> RunMetadata:
    try:
        return handle.read()
    except CorruptRecord as exc:
        raise InvalidTransition(f"run {handle.run_id}", CORRUPT, requested, exc.reason) from None


class RunService:
    """Runs, steps and artifacts across every served workspace."""

    def __init__(
        self,
        registry: WorkspaceRegistry,
        *,
        events: EventHub,
        warnings: Warnings,
        max_artifact_bytes: int,
        count_pending_as_active: bool = False,
        signatures: dict[str, int] | None = None,
        watcher: RunWatcher | None = None,
        snapshots: SnapshotStore | None = None,
        socket_path: str = "",
        on_workspace_served: Callable[[str], None] | None = None,
        on_workspace_unserved: Callable[[str, list[str]], Awaitable[None]] | None = None,
    ) -> None:
        self.registry = registry
        self.events = events
        self.index = RunIndex()
        self.warnings = warnings
        self.count_pending_as_active = count_pending_as_active
        # The most artifact bytes one artifacts.get answers with (larger: read in ranges).
        self.max_artifact_bytes = max_artifact_bytes
        # Taken without a trip through the event loop when free: a watcher's re-read then
        # costs the loop only its own work (every change that waits for a thread yields anyway).
        self._locks = [anyio.Lock(fast_acquire=True) for _ in range(_LOCK_STRIPES)]
        self._last_id_ms = 0
        # The signature of the metadata.json each indexed summary was read from (or written
        # as): a watcher event whose file still has it needs no re-read (the watcher is
        # given the same dictionary).
        self.signatures: dict[str, int] = {} if signatures is None else signatures
        self.watcher = watcher
        self.snapshots = snapshots
        # Whether every workspace came from its snapshot with nothing re-read: then the
        # snapshots already say what the index holds (saving them again only churns memory).
        self.snapshots_current = True
        # Told of every workspace served from now on (the database's default file lives there),
        # and of every one no longer served, with those still served (sorted): the database
        # lets go of a default file there.
        self.on_workspace_served = on_workspace_served
        self.on_workspace_unserved = on_workspace_unserved
        # The daemon's socket, written into the lock of each workspace served, so that another
        # daemon refused it can say which daemon serves it.
        self.socket_path = socket_path
        self._claiming = anyio.Lock()
        # Adds, removes and the retries of refused workspaces one at a time: a remove that
        # came during a retry's claim would otherwise be undone by it.
        self._adding_removing = anyio.Lock()
        # Writes in flight in each workspace: one let go meanwhile is not marked as let go
        # cleanly (its next holder walks it).
        self._writing: Counter[str] = Counter()
        # One write of the state file at a time, each with what the registry held when it
        # began: two could otherwise land in the wrong order.
        self._saving = anyio.Lock()

    # -- the index, changed here only ------------------------------------------------------

    def _index_put(
        self,
        summary: RunSummary,
        signature: int | None = None,
        steps: Sequence[dict[str, Any]] = (),
    ) -> None:
        """Index ``summary``; ``steps`` (as the wire shows them) changed with it, and their
        events go out before the run's."""
        if self.registry.find_canonical(summary.workspace) is None:
            # The workspace was removed while this write was in flight: its runs are not
            # served any more, and must not come back through a late update.
            return
        for step in steps:
            self.events.step_changed(summary.id, step)
        if signature is None:
            self.signatures.pop(summary.id, None)
        else:
            self.signatures[summary.id] = signature
        old = self.index.put(summary)
        if old != summary:  # re-reading an unchanged record (our own write, seen again) is quiet
            self.events.run_changed(old, summary)

    def _index_drop(self, run_id: str) -> None:
        self.signatures.pop(run_id, None)
        old = self.index.discard(run_id)
        if old is not None:
            self.events.run_changed(old, None)

    # -- workspaces -----------------------------------------------------------------------

    async def load(self) -> None:
        """Serve the configured and remembered workspaces and index their runs.

        Their watches are not added yet (at 100k runs that takes longer than reading them):
        call ``watch_loaded`` once the daemon answers.
        """
        for path, source in self.registry.initial():
            await self._serve_or_warn(path, source, watch=False)
        if self.registry.changed_at_start:
            await self._remember_or_warn()

    async def _remember(self) -> None:
        """Write the registry's state file: its contents made here, on the loop (where the
        registry changes), only the write in a worker thread."""
        async with self._saving:
            data = self.registry.encode()
            await anyio.to_thread.run_sync(self.registry.write, data)

    async def _remember_or_warn(self) -> None:
        try:
            await self._remember()
        except (OSError, UnsafePath) as exc:
            log.warning("cannot remember the added workspaces: %s", exc)

    async def _unserved(self, path: str) -> None:
        """Tell ``on_workspace_unserved`` that ``path`` is no longer served."""
        if self.on_workspace_unserved is not None:
            served = sorted(p for p, _ in self.registry.items())
            await self.on_workspace_unserved(path, served)

    async def _serve_or_warn(
        self, path: str, source: WorkspaceSource, *, watch: bool = True
    ) -> None:
        """Serve ``path``; if it cannot be, say why in a warning (the daemon serves on)."""
        try:
            await self._serve_workspace(path, source, watch=watch)
            return
        except WorkspaceTaken as exc:
            self.registry.refuse(path, source)  # tried again until the other lets it go
            holder = exc.data
            reason = "another simpleaided serves it" + (
                f" (pid {holder['pid']}, socket {holder['socket']})" if holder else ""
            )
        except (NotFound, InvalidInput, OSError) as exc:
            reason = _unusable_reason(exc)
        if source == "added" and self.registry.refused_source(path) is None:
            # Remembered still (a save must not forget it), and tried again as a refused one
            # is: a disk mounted later, a folder's mode put right.
            self.registry.refuse(path, source, unusable=reason)
            reason += (
                "; it stays added and is tried again until it can be served (to forget it: "
                f"simpleaide workspaces rm {path})"
            )
        message = f"workspace {path} is not served: {reason}"
        log.warning("%s", message)
        self.warnings.set(_not_served(path), message)

    async def _serve_workspace(
        self, path: str, source: WorkspaceSource, *, watch: bool = True
    ) -> int:
        """Serve ``path``: register it, watch it, then read it (a snapshot checked against
        the disk, or a full scan). In that order no change can slip between read and watch;
        a run that a watcher event already refreshed meanwhile is not overwritten.

        Without ``watch``, the caller must ``watch_loaded`` later (it re-checks after).
        ``WorkspaceTaken`` if another daemon serves ``path``: its lock is held meanwhile.

        If the daemon that held it before did not let it go cleanly, its store is walked in
        depth before this returns (when ``watch``; else ``check_all`` does it later)."""
        # A configured folder whose real path is not UTF-8 text (kept as written): refused
        # here, in words, before anything is written of it.
        names.check_folder_text(await anyio.to_thread.run_sync(os.path.realpath, path))
        store = WorkspaceStore(path)
        # One claim at a time: a concurrent add of the same path waits, then finds it served
        # (two claims by this daemon would refuse each other). Shielded: a lock taken by a
        # thread that a cancellation no longer waits for would be held by nobody.
        async with self._claiming:
            if self.registry.find_canonical(path) is not None:
                return 0  # already served (a concurrent add won)
            with anyio.CancelScope(shield=True):
                lock = await anyio.to_thread.run_sync(store.claim, self.socket_path)
                self.registry.register(path, source, lock)
                # Served from here on: a warning that it is not (refused, missing) is stale.
                self._clear_not_served(path)
        if self.on_workspace_served is not None:
            self.on_workspace_served(path)
        if self.watcher is not None and watch:
            await self.watcher.watch_workspace(path)
        snapshot = None
        on_disk: dict[str, int | None] | None = None
        if self.snapshots is not None and self.snapshots.exists(path):
            # The snapshot is checked against the disk: the files' signatures are read (a
            # stat each, the GIL let go) while the snapshot is parsed, in two threads.
            snapshot, on_disk = await _in_threads(
                partial(self.snapshots.load, path), store.signatures
            )
        summaries = snapshot if snapshot is not None else await anyio.to_thread.run_sync(store.scan)
        self._fill(path, summaries)
        if snapshot is None:
            self.snapshots_current = False
        if snapshot is not None or watch:
            # A snapshot is checked against the disk; a scan is re-checked too once watched,
            # since an event during the scan may have found nothing yet to change.
            changed = await self.rescan(path, on_disk if snapshot is not None else None)
            if changed:
                self.snapshots_current = False
            if snapshot is not None:
                log.info(
                    "%s: %d run(s) from the snapshot, %d re-read", path, len(snapshot), changed
                )
        if watch:
            await self.check(path)
        return len(summaries)

    def _fill(self, path: str, summaries: list[Scanned]) -> None:
        # In id order, each run joins the index's ordered ids at the end: in the order of a
        # directory listing, 100k of them cost half a second of list moves.
        if self.registry.find_canonical(path) is None:
            return  # removed while it was read: its runs are not served
        summaries.sort(key=_scanned_id)
        fresh: list[RunSummary] = []
        for summary, signature in summaries:
            known = self.index.get(summary.id)
            if known is not None and known.workspace != path:
                message = (
                    f"run id {summary.id} is in both {known.workspace} and {path}; "
                    f"only the first is served"
                )
                log.warning("%s", message)
                self.warnings.set(f"duplicate run {summary.id} in {path}", message)
                continue
            if known is not None:
                continue  # refreshed by a watcher event while we read: that is newer
            if self.events.follows_runs():
                self._index_put(summary, signature)  # each run is announced as created
                continue
            fresh.append(summary)
            if signature is not None:
                self.signatures[summary.id] = signature
        if fresh:
            # Nobody follows run events (always so at start-up): one bulk insert, and one
            # change for the status subscribers.
            self.index.put_new(fresh)
            self.events.section_changed()

    async def watch_loaded(self) -> None:
        """Watch the workspaces ``load`` read, then re-check them against the disk: a change
        between the read and the watch is caught by the re-check, one after it by the watch."""
        if self.watcher is None:
            return
        for path, _ in self.registry.items():
            if self.registry.find_canonical(path) is None:
                continue  # no longer served (a reload dropped it meanwhile)
            try:
                await self.watcher.watch_workspace(path)
                changed = await self.rescan(path)
            except Exception:
                log.exception("cannot watch %s", path)
                continue
            if changed:
                self.snapshots_current = False
                log.info("%s: %d run(s) changed while the daemon started", path, changed)

    async def save_snapshots(self) -> None:
        """Write every workspace's index snapshot (for a fast start next time)."""
        if self.snapshots is None:
            return
        for path, _ in self.registry.items():
            rows = [
                (summary, self.signatures.get(summary.id)) for summary in self.index.summaries(path)
            ]
            try:
                await anyio.to_thread.run_sync(self.snapshots.save, path, rows)
            except (OSError, InvalidInput) as exc:
                log.warning("cannot save the index snapshot of %s: %s", path, exc)

    async def add_workspace(self, path: str) -> dict[str, Any]:
        """Serve ``path`` (creating its ``.simpleaide/runs``) and remember it."""
        canonical = canonical_workspace(path)
        async with self._adding_removing:
            if self.registry.find(canonical) is None:
                self.registry.check_room(canonical)
                await self._serve_workspace(canonical, "added")
                await self._remember()
        return self._workspace_info(canonical)

    async def configure_workspaces(
        self, configured: list[str], flagged: list[str] | None = None
    ) -> None:
        """Serve what a reloaded configuration lists (``flagged``: those of them the command
        line gave) and stop serving the configured workspaces it no longer lists (their
        files stay)."""
        before = self.registry.configured
        new, dropped = self.registry.configure(configured, flagged)
        # Those that could not be served are tried again (or are not wanted any more).
        for path in {*before, *self.registry.configured}:
            self.warnings.clear(_not_served(path))
        for path in dropped:
            self.registry.unregister(path, configured=True, clean=not self._writing[path])
            self._forget_workspace(path)
            log.info("workspace %s is no longer configured: not served any more", path)
        for path in new:
            await self._serve_or_warn(path, "config")
        for path in dropped:
            if self.registry.find_canonical(path) is None:  # not served again meanwhile
                await self._unserved(path)
        await self._remember_or_warn()

    async def remove_workspace(self, path: str) -> dict[str, Any]:
        """Stop serving ``path`` (its files stay) and forget it."""
        canonical = canonical_workspace(path)
        async with self._adding_removing:
            refused = self.registry.refused_source(canonical)
            if refused == "config":
                raise InvalidInput(
                    f"workspace {canonical} comes from the config file; remove it there"
                )
            if refused == "added":
                # Remembered, but another daemon holds it: forgotten here, not tried again.
                self.registry.drop_refused(canonical)
                self.registry.mark_removed(canonical, "remove")
                self._clear_not_served(canonical)
            else:
                self.registry.unregister(canonical, clean=not self._writing[canonical])
                self._forget_workspace(canonical)
                await self._unserved(canonical)
            await self._remember()
        return {"path": canonical, "removed": True}

    def _forget_workspace(self, canonical: str) -> None:
        """Drop a workspace that is no longer served from the watches and the index."""
        if self.watcher is not None:
            self.watcher.unwatch_workspace(canonical)
        for run_id in self.index.ids_in_workspace(canonical):
            self._index_drop(run_id)
        # Subscribers scoped to it hear of it now (their subscription ends), even if it held
        # no runs to drop.
        self.events.section_changed()

    def list_workspaces(self) -> list[dict[str, Any]]:
        """Every served workspace with its run count."""
        return [self._workspace_info(path) for path, _ in sorted(self.registry.items())]

    def _workspace_info(self, path: str) -> dict[str, Any]:
        source = self.registry.source(path)
        return {"path": path, "runs": self.index.tally(path).total, "source": source}

    def scope(self, workspace: str | None) -> str | None:
        """The canonical served path of ``workspace``; ``NotFound`` if it is not served,
        saying whether the user stopped serving it (``data.removed``: then a client must
        not add it again on its own) and how to serve it."""
        if workspace is None:
            return None
        canonical = canonical_workspace(workspace)
        found = self.registry.find_canonical(canonical)
        if found is None and self.registry.refused_source(canonical) is not None:
            why, todo = self._refused_words(canonical)
            raise NotFound(
                f"workspace {canonical} is not served: {why}; {todo}",
                {"workspace": canonical, "removed": None},
            )
        if found is None:
            self._check_could_serve(canonical)
            removed = self.registry.removed_by(canonical)
            why = f": {_REMOVED_WORDS[removed]}" if removed else ""
            again = " again" if removed else ""
            raise NotFound(
                f"workspace {canonical} is not served{why}; serve it{again} with: "
                f"simpleaide workspaces add {shlex.quote(canonical)}",
                {"workspace": canonical, "removed": removed},
            )
        return found

    @staticmethod
    def _check_could_serve(canonical: str) -> None:
        """``NotFound`` saying why unserved ``canonical`` cannot be a workspace (shared, not
        yours, or open to others), rather than a ``workspaces add`` that would be refused.
        The cheap checks only (a stat); a folder that cannot be opened is not judged."""
        try:
            check_workspace_root(canonical)
        except InvalidInput as exc:
            why = exc.message.removeprefix(f"refusing workspace {canonical}: ")
            raise NotFound(
                f"workspace {canonical} is not served, and cannot be: {why}",
                {"workspace": canonical, "removed": None},
            ) from None

    def _refused_words(self, path: str) -> tuple[str, str]:
        """Why refused ``path`` is not served, and what to do."""
        unusable = self.registry.refused_why(path)
        if unusable is None:
            return (
                "another simpleaided serves it",
                "use that daemon's socket (named in: simpleaide daemon status)",
            )
        return (
            unusable,
            "it stays added and is tried again until it can be served (to forget it: "
            f"simpleaide workspaces rm {shlex.quote(path)})",
        )

    # -- plumbing -------------------------------------------------------------------------

    async def _locate(self, run_id: str) -> WorkspaceStore:
        summary = self.index.get(run_id)
        if summary is None:
            raise await self._run_not_found(run_id)
        return self.registry.store(summary.workspace)

    async def _run_not_found(self, run_id: str) -> NotFound:
        """The error for a run the index lacks: it may lie in a workspace this daemon does
        not serve (removed by the user, or held by another daemon), which it then names,
        with what to do (``data``: ``runId``, and ``workspace`` and ``removed`` if so).

        Those folders are looked in from a worker thread: one on a mount that hangs must
        not stop the daemon."""
        unserved = [(path, self.registry.removed_by(path)) for path in self.registry.removed()]
        unserved += [(path, None) for path, _ in self.registry.refused()]
        if not unserved:
            return NotFound(f"run {run_id} does not exist", {"runId": run_id})
        found = await anyio.to_thread.run_sync(_holding_run, [path for path, _ in unserved], run_id)
        if found is None:
            return NotFound(f"run {run_id} does not exist", {"runId": run_id})
        path, removed = unserved[found]
        if removed is None:
            why, todo = self._refused_words(path)
        else:
            why = _REMOVED_WORDS[removed]
            todo = f"serve it again with: simpleaide workspaces add {shlex.quote(path)}"
        return NotFound(
            f"run {run_id} is in workspace {path}, which this daemon does not serve: {why}; {todo}",
            {"runId": run_id, "workspace": path, "removed": removed},
        )

    def _lock(self, run_id: str) -> anyio.Lock:
        return self._locks[hash(run_id) % _LOCK_STRIPES]

    async def _change(
        self,
        run_id: str,
        op: Callable[[RunHandle], tuple[RunMetadata, T]],
        steps: Callable[[T], Sequence[dict[str, Any]]] = lambda _: (),
    ) -> tuple[dict[str, Any], T]:
        """Run ``op`` on the open run folder in a thread, then index the run it returns;
        ``steps`` gives, from what ``op`` returned besides, the steps it changed (their
        events go out first).

        Returns the run as the wire shows it, and what ``op`` returned besides.
        """
        store = await self._locate(run_id)

        def in_thread() -> tuple[tuple[RunMetadata, T], int | None]:
            with store.open_run(run_id) as handle:
                return op(handle), handle.signature

        async with self._writing_in(store), self._lock(run_id):
            with anyio.CancelScope(shield=True):
                try:
                    (run, result), signature = await anyio.to_thread.run_sync(in_thread)
                except NotFound:
                    await self._refresh(store, run_id)
                    raise
                self._index_put(RunSummary.of(run, store.path), signature, steps(result))
        return api.run_view(run, store.path), result

    @asynccontextmanager
    async def _writing_in(self, store: WorkspaceStore) -> AsyncIterator[None]:
        """Count a write in flight in ``store``'s workspace, from before it waits for its
        run's lock (it may write once that is free, even if the workspace went meanwhile)."""
        self._writing[store.path] += 1
        try:
            yield
        finally:
            self._writing[store.path] -= 1
            if not self._writing[store.path]:
                del self._writing[store.path]

    async def _refresh(self, store: WorkspaceStore, run_id: str) -> None:
        scanned = await anyio.to_thread.run_sync(store.summarize, run_id)
        if scanned is None:
            self._index_drop(run_id)
        else:
            self._index_put(*scanned)

    # -- changes made behind our back (the watcher) -----------------------------------------

    async def refresh(self, workspace: str, run_id: str, observed: int | None = None) -> bool:
        """Re-read one run after a filesystem event, under its lock (never racing a write).

        Returns false when the file is the version already indexed (typically the daemon's
        own write, seen again): then it costs one ``stat`` and nothing is read. ``observed``
        is the signature the caller has just seen, with no await since: used instead of a
        ``stat`` when the lock is free, as no write of ours can be in flight then.
        """
        if self.registry.find_canonical(workspace) is None:
            return False
        known = self.index.get(run_id)
        if known is not None and known.workspace != workspace:
            return False  # the same id in another workspace: the first one is served
        store = self.registry.store(workspace)
        lock = self._lock(run_id)
        fresh = observed is not None and not lock.locked()
        async with lock:
            signature = observed if fresh else store.signature(run_id)
            if signature is not None and self.signatures.get(run_id) == signature:
                return False
            # A few small reads: cheaper on the loop than a thread hop.
            scanned = store.summarize(run_id)
            if scanned is None:
                if run_id in self.index:
                    self._index_drop(run_id)
            else:
                self._index_put(*scanned)
            return True

    async def rescan(self, workspace: str, on_disk: dict[str, int | None] | None = None) -> int:
        """Bring a workspace's index in line with the disk (after lost events, or to check
        what was loaded): a ``stat`` per run, a re-read only where the file changed. Returns
        how many runs were re-read. ``on_disk``: the signatures, if the caller read them
        after the workspace was watched (or before it is, if it will be re-checked then)."""
        if self.registry.find_canonical(workspace) is None:
            return 0
        store = self.registry.store(workspace)
        if on_disk is None:
            on_disk = await anyio.to_thread.run_sync(store.signatures)
            # Not on the start-up path (which passes ``on_disk``): one more listing of runs/.
            await self.tidy(workspace, deep=False)
        stale = [
            run_id
            for run_id, signature in on_disk.items()
            if signature is None or self.signatures.get(run_id) != signature
        ]
        stale += [
            run_id for run_id in self.index.ids_in_workspace(workspace) if run_id not in on_disk
        ]
        slices = TimeSlices()  # a big checkout must not starve clients
        for run_id in stale:
            await self.refresh(workspace, run_id)  # under the lock: never older than a write
            await slices.tick()
        return len(stale)

    async def retry_refused(self) -> None:
        """Try again to serve the workspaces another daemon held; one served now loses its
        warning. Cheap while they stay held (a ``flock`` attempt each)."""
        async with self._adding_removing:
            for path, source in self.registry.refused():
                try:
                    await self._serve_workspace(path, source)
                except WorkspaceTaken:
                    self.registry.refuse(path, source)  # held (now) by another daemon
                    continue
                except (NotFound, InvalidInput, OSError) as exc:
                    # Unusable (for now): its warning stays, and the reason is kept current.
                    if self.registry.refused_why(path) is not None:
                        self.registry.refuse(path, source, unusable=_unusable_reason(exc))
                    continue
                self.registry.drop_refused(path)
                self._clear_not_served(path)
                log.info("workspace %s is free again: served", path)

    def _clear_not_served(self, path: str) -> None:
        self.warnings.clear(_not_served(path))

    async def tidy_all(self) -> None:
        """``tidy`` every served workspace (the leftovers directly in ``runs/``)."""
        for path, _ in self.registry.items():
            await self.tidy(path, deep=False)

    async def check_all(self) -> None:
        """``check`` every served workspace."""
        for path, _ in self.registry.items():
            await self.check(path)

    async def check(self, workspace: str) -> None:
        """Walk ``workspace``'s store in depth (``tidy`` with ``deep``) unless the daemon
        that held it before let it go cleanly, or it was walked already with nothing left
        behind (a walk that left something is done again next time, and no clean mark is
        written meanwhile)."""
        if self.registry.find_canonical(workspace) is None:
            return
        lock = self.registry.lock(workspace)
        if lock.checked:
            return
        if await self.tidy(workspace, deep=True):
            lock.checked = True
            log.info("%s was checked for what a daemon stopped mid-write left", workspace)

    def stores_checked(self) -> bool:
        """Whether no served workspace still waits for its deep walk."""
        return all(self.registry.lock(path).checked for path, _ in self.registry.items())

    async def tidy(self, workspace: str, *, deep: bool) -> bool:
        """Remove a previous daemon's leftovers from ``workspace``'s store (see
        ``WorkspaceStore.tidy``; what predates this daemon's claim) and, when ``deep``, close
        the open steps of its finished runs (left by a crash between a run's write and its
        steps', or by an older daemon). Every repair is logged as a warning, and so is what
        cannot be removed (skipped). Returns whether the store was walked with nothing
        left behind (what resisted, or a run that could not be read, is tried again by the
        next walk)."""
        if self.registry.find_canonical(workspace) is None:
            return False
        store = self.registry.store(workspace)
        before_ns = self.registry.lock(workspace).claimed_ns
        finished = None
        if deep:
            finished = frozenset(
                summary.id
                for summary in self.index.summaries(workspace)
                if summary.status in states.FINISHED_RUN
            )
        try:
            async with self._writing_in(store):
                tidied = await anyio.to_thread.run_sync(store.tidy, before_ns, finished)
        except (OSError, UnsafePath) as exc:  # never the end of a rescan or an add
            log.warning("cannot tidy the run store of %s: %s", workspace, exc)
            return False
        for path in tidied.removed:
            log.warning("%s: removed %s, left by a daemon stopped mid-write", workspace, path)
        for stuck in tidied.stuck:  # tried again on the next rescan and start
            log.warning("%s: cannot remove %s (a daemon's leftover)", workspace, stuck)
        for run_id in tidied.half_built:
            await self.refresh(workspace, run_id)
        for run_id in tidied.unclosed:
            await self._close_left_open(run_id)
        return not tidied.stuck

    async def _close_left_open(self, run_id: str) -> None:
        """Close the open steps of finished run ``run_id`` as its end would have."""

        def op(handle: RunHandle) -> tuple[RunMetadata, list[StepMetadata]]:
            run = _read_for_change(handle, "repaired")
            closed = states.repair_open_steps(run, _read_steps(handle, run), self._now())
            for step in closed:
                handle.write_step(step)
            return run, closed

        try:
            view, closed = await self._change(run_id, op, _step_views)
        except (NotFound, InvalidTransition) as exc:  # gone or corrupt meanwhile
            log.warning("cannot close the open steps of run %s: %s", run_id, exc)
            return
        for step in closed:
            log.warning(
                "run %s is %s but its step %s was open: marked %s%s",
                run_id,
                view["status"],
                step.dir_name,
                step.status,
                f" ({step.error_message})" if step.error_message else "",
            )

    def run_ids(self, workspace: str) -> list[str]:
        """The ids of the runs indexed for ``workspace``."""
        return self.index.ids_in_workspace(workspace)

    def _now(self) -> str:
        return clock.format_ms(clock.now_ms())

    # -- runs -----------------------------------------------------------------------------

    async def create_run(
        self, workspace: str, title: str | None, owner_pid: int | None = None
    ) -> dict[str, Any]:
        """Create a pending run in ``workspace`` (served from now on if it was not), owned
        by process ``owner_pid`` if given (it must exist)."""
        owner_start_time = None
        if owner_pid is not None:
            if process_gone(owner_pid):
                raise InvalidInput(f"owner process {owner_pid} does not exist")
            owner_start_time = process_start_time(owner_pid)
        canonical = canonical_workspace(workspace)
        if self.registry.find(canonical) is None:
            await self.add_workspace(canonical)
        store = self.registry.store(canonical)
        now_ms = clock.now_ms()
        now = clock.format_ms(now_ms)
        # Ids sort by creation: within one millisecond, the next id takes the next one.
        self._last_id_ms = max(now_ms, self._last_id_ms + 1)
        run_id = names.new_run_id(self._last_id_ms)
        while run_id in self.index:
            run_id = names.new_run_id(self._last_id_ms)
        run = RunMetadata(
            id=run_id,
            title=title,
            status=RunStatus.PENDING,
            started_at=now,
            updated_at=now,
            owner_pid=owner_pid,
            owner_start_time=owner_start_time,
        )
        # Under the run's lock, so the watcher never reads a half-created run.
        async with self._writing_in(store), self._lock(run_id):
            with anyio.CancelScope(shield=True):
                signature = await anyio.to_thread.run_sync(store.create_run, run)
                self._index_put(RunSummary.of(run, canonical), signature)
        log.info("run %s created in %s", run_id, canonical)
        return api.run_view(run, canonical)

    async def get_run(self, run_id: str, *, steps: bool = False) -> dict[str, Any]:
        """A run's metadata from disk (and its steps if asked); corrupt runs say why."""
        store = await self._locate(run_id)

        def in_thread() -> dict[str, Any]:
            with store.open_run(run_id) as handle:
                run = handle.read()
                listed = handle.read_steps(run.step_count) if steps else None
                return api.run_view(run, store.path, listed)

        try:
            # Under the run's lock: a transition writes several files (the run, then the
            # steps it closes) before the index follows, and a reader must see it whole.
            async with self._lock(run_id):
                return await anyio.to_thread.run_sync(in_thread)
        except CorruptRecord as exc:
            return RunSummary.corrupt(run_id, store.path, exc.reason).to_wire()
        except NotFound:
            await self._refresh(store, run_id)
            raise

    def list_runs(self, params: api.ListRunsParams) -> dict[str, Any]:
        """A page of runs from memory, newest first."""
        rows = self.index.page(
            limit=params.limit,
            before=params.before,
            workspace=self.scope(params.workspace),
            statuses=params.statuses(),
        )
        next_before = rows[-1].id if len(rows) == params.limit else None
        return {"runs": [row.to_wire() for row in rows], "nextBefore": next_before}

    def resolve_runs(self, params: api.ResolveRunsParams) -> dict[str, Any]:
        """The runs whose id starts with a prefix, from memory, newest first, and how many."""
        rows, count = self.index.matching(
            params.prefix, limit=params.limit, workspace=self.scope(params.workspace)
        )
        return {"runs": [row.to_wire() for row in rows], "count": count}

    async def finish_run(
        self,
        run_id: str,
        target: RunStatus,
        error_message: str | None = None,
        *,
        force: bool = False,
    ) -> dict[str, Any]:
        """Complete, fail or cancel a run, closing its open steps (completing one with an
        open step only with ``force``)."""

        def op(handle: RunHandle) -> tuple[RunMetadata, list[StepMetadata]]:
            current = _read_for_change(handle, target)
            steps = _read_steps(handle, current)
            try:
                run, closed = states.end_run(
                    current, steps, target, self._now(), error_message, force=force
                )
            except InvalidTransition as exc:
                if not force and current.status is RunStatus.RUNNING:
                    if any(step.status in states.OPEN_STEP for step in steps):
                        _forcible(exc)  # refused for its open steps, which force closes
                raise
            _write_closing(handle, run, closed)
            return run, closed

        view, _ = await self._change(run_id, op, _step_views)
        log.info("run %s %s", run_id, target)
        return view

    async def abandon_run(self, run_id: str, owner_pid: int, error_message: str) -> bool:
        """End a run whose owner process ``owner_pid`` is gone (see ``states.abandon_run``),
        unless it finished or changed owner meanwhile; returns whether it did."""

        def op(handle: RunHandle) -> tuple[RunMetadata, list[StepMetadata] | None]:
            current = _read_for_change(handle, RunStatus.FAILED)
            if current.owner_pid != owner_pid or current.status not in states.ACTIVE_RUN:
                return current, None
            now = self._now()
            run = states.abandon_run(current, now, error_message)
            closed = states.repair_open_steps(run, _read_steps(handle, current), now)
            _write_closing(handle, run, closed)
            return run, closed

        _, closed = await self._change(run_id, op, lambda closed: _step_views(closed or []))
        if closed is None:
            return False
        log.warning("run %s abandoned: %s", run_id, error_message)
        return True

    async def delete_run(
        self, run_id: str, *, force: bool = False, finished_only: bool = False
    ) -> dict[str, Any]:
        """Delete a run and its files; a running one only with ``force``. With
        ``finished_only`` (for prune) the run must have finished, as read under its lock."""
        store = await self._locate(run_id)

        def in_thread() -> None:
            if finished_only:
                with store.open_run(run_id) as handle:
                    current = _read_for_change(handle, "deleted")
                if current.status not in states.FINISHED_RUN:
                    raise InvalidTransition(
                        f"run {run_id}", current.status, "deleted", "it has not finished"
                    )
            store.delete_run(run_id)

        async with self._writing_in(store), self._lock(run_id):
            summary = self.index.get(run_id)
            if summary is not None and summary.status == RunStatus.RUNNING and not force:
                raise _forcible(
                    InvalidTransition(
                        f"run {run_id}", RunStatus.RUNNING, "deleted", "cancel it first, or force"
                    )
                )
            with anyio.CancelScope(shield=True):
                try:
                    await anyio.to_thread.run_sync(in_thread)
                finally:
                    await self._refresh(store, run_id)
        log.info("run %s deleted", run_id)
        return {"runId": run_id, "deleted": True}

    def active_count(self, workspace: str | None) -> int:
        """How many runs are active: running (and pending, when so configured)."""
        return status.active_count(
            self.index.tally(self.scope(workspace)), count_pending=self.count_pending_as_active
        )

    def latest(self, workspace: str | None) -> dict[str, Any] | None:
        """The most recently started run, or ``None``."""
        found = self.index.latest(self.scope(workspace))
        if found is None:
            return None
        return {
            "id": found.id,
            "status": found.status,
            "startedAt": found.started_at,
            "completedAt": found.completed_at,
        }

    # -- steps ----------------------------------------------------------------------------

    async def create_step(self, run_id: str, name: str, *, start: bool) -> dict[str, Any]:
        """Add the next step to a run; the run becomes running."""

        def op(handle: RunHandle) -> tuple[RunMetadata, dict[str, Any]]:
            current = _read_for_change(handle, RunStatus.RUNNING)
            run, step = states.create_step(current, name, self._now(), start=start)
            handle.create_step(step)
            handle.write(run)
            return run, api.step_view(step)

        view, step = await self._change(run_id, op, lambda step: [step])
        return {"run": view, "step": step}

    async def transition_step(
        self,
        run_id: str,
        number: int,
        target: StepStatus,
        *,
        error_message: str | None = None,
        fail_run: bool = True,
    ) -> dict[str, Any]:
        """Start, complete, fail or skip a step (failing it fails the run unless told not to)."""

        def op(
            handle: RunHandle,
        ) -> tuple[RunMetadata, tuple[dict[str, Any], list[StepMetadata]]]:
            current = _read_for_change(handle, f"step {target}")
            if number > current.step_count:
                raise NotFound(f"run {run_id} has no step {number}")
            try:
                step = handle.read_step(number)
            except CorruptRecord as exc:
                raise InvalidTransition(
                    f"step {number} of run {run_id}", CORRUPT, target, exc.reason
                ) from None
            now = self._now()
            run, new_step = states.transition_step(
                current,
                step,
                target,
                now,
                error_message=error_message,
                fail_run=fail_run,
            )
            if run.status in states.FINISHED_RUN:
                # The step failed its run: the run first, then this step, then the others.
                others = [s for s in _read_steps(handle, current) if s.number != number]
                closed = states.repair_open_steps(run, others, now)
                _write_closing(handle, run, [new_step, *closed])
                return run, (api.step_view(new_step), closed)
            handle.write_step(new_step)
            if run != current:
                handle.write(run)
            return run, (api.step_view(new_step), [])

        view, (step, _) = await self._change(
            run_id, op, lambda changed: [changed[0], *_step_views(changed[1])]
        )
        return {"run": view, "step": step}

    async def list_steps(self, run_id: str) -> list[dict[str, Any]]:
        """Every step of a run, read from disk."""
        run = await self.get_run(run_id, steps=True)
        if run["status"] == CORRUPT:
            raise InvalidTransition(f"run {run_id}", CORRUPT, "listed", run["errorMessage"])
        steps: list[dict[str, Any]] = run["steps"]
        return steps

    async def delete_steps_from(self, run_id: str, from_step: int) -> dict[str, Any]:
        """Rerun from a checkpoint: delete steps ``from_step`` and later; the run is pending."""

        def op(handle: RunHandle) -> tuple[RunMetadata, None]:
            run = states.delete_steps_from(
                _read_for_change(handle, RunStatus.PENDING), from_step, self._now()
            )
            # The record first: a crash before the folders go leaves them beyond stepCount,
            # where nothing lists them and the next step replaces them.
            handle.write(run)
            handle.delete_steps_from(from_step)
            return run, None

        view, _ = await self._change(run_id, op)
        log.info("run %s: steps from %d deleted", run_id, from_step)
        return view

    # -- artifacts ------------------------------------------------------------------------

    async def put_artifact(self, params: api.PutArtifactParams) -> dict[str, Any]:
        """Save an artifact of a step: whole (atomically replacing one of the same name), one
        chunk of a staged upload, or an append (see ``api.PutArtifactParams``)."""
        # Decoding megabytes takes milliseconds: in a worker thread, so other clients are
        # answered meanwhile, and before the run's lock is taken.
        data = await anyio.to_thread.run_sync(_put_body, params)
        store = await self._locate(params.run_id)

        def in_thread() -> dict[str, Any]:
            with store.open_run(params.run_id) as handle:
                if params.append:
                    entry = handle.append_artifact(params.step, params.name, data, params.offset)
                elif params.offset is not None:
                    entry = handle.put_artifact_chunk(
                        params.step,
                        params.name,
                        data,
                        params.offset,
                        bool(params.final),
                        params.upload_id,
                    )
                else:
                    entry = handle.put_artifact(params.step, params.name, data)
                return artifact_info(params.run_id, params.step, entry)

        async with self._writing_in(store), self._lock(params.run_id):
            with anyio.CancelScope(shield=True):
                saved = await anyio.to_thread.run_sync(in_thread)
        if not saved["staged"]:  # a staged chunk changes nothing anyone can see yet
            self.events.artifact_saved(params.run_id, saved)
        return saved

    async def get_artifact(self, params: api.GetArtifactParams) -> dict[str, Any]:
        """An artifact's content (or a range of it), as text when it is UTF-8 and fits one
        message (or as asked)."""
        store = await self._locate(params.run_id)
        # What base64 makes of the largest chunk, which fits one message by construction.
        budget = (self.max_artifact_bytes + 2) // 3 * 4

        def in_thread() -> dict[str, Any]:
            with store.open_run(params.run_id) as handle:
                data, entry = handle.get_artifact(
                    params.step,
                    params.name,
                    self.max_artifact_bytes,
                    params.offset,
                    params.length,
                    params.version,
                )
            # Encoding megabytes is done here too, off the event loop.
            body, length = encode_artifact(data, params.encoding, budget)
            return {
                "name": params.name,
                "size": entry.size,
                "modifiedAt": clock.format_ms(entry.modified_ms),
                "version": entry.version,
                "offset": params.offset,
                "length": length,
                **body,
            }

        return await anyio.to_thread.run_sync(in_thread)

    async def delete_artifact(self, run_id: str, step: int, name: str) -> dict[str, Any]:
        """Delete an artifact of a step, whatever the run's status: artifacts may be saved
        to a finished run too (a report written after it ended), so they may be removed
        from one (a log too large to keep). The run's record is not changed, as a put does
        not change it: the index and the status stay as they are."""
        store = await self._locate(run_id)

        def in_thread() -> None:
            with store.open_run(run_id) as handle:
                handle.delete_artifact(step, name)

        async with self._writing_in(store), self._lock(run_id):
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(in_thread)
        deleted = {"runId": run_id, "step": step, "name": name, "deleted": True}
        # Followers hear of it as of any change to an artifact: an "artifact" event, whose
        # entry says it was deleted.
        self.events.artifact_saved(run_id, deleted)
        log.info("run %s: artifact %r of step %d deleted", run_id, name, step)
        return deleted

    async def list_artifacts(self, run_id: str, step: int | None) -> list[dict[str, Any]]:
        """The artifacts of one step, or of every step of the run."""
        store = await self._locate(run_id)

        def in_thread() -> list[dict[str, Any]]:
            with store.open_run(run_id) as handle:
                if step is not None:
                    numbers = [step]
                else:
                    try:
                        step_count = handle.read().step_count
                    except CorruptRecord as exc:
                        raise InvalidTransition(
                            f"run {run_id}", CORRUPT, "listed", exc.reason
                        ) from None
                    listed = handle.step_dirs()
                    numbers = [n for n in range(1, step_count + 1) if n in listed]
                rows: list[dict[str, Any]] = []
                for number in numbers:
                    try:
                        entries = handle.list_artifacts(number)
                    except NotFound:
                        if step is not None:
                            raise
                        continue  # a step deleted while the run was listed
                    rows.extend(artifact_info(run_id, number, entry) for entry in entries)
                return rows

        return await anyio.to_thread.run_sync(in_thread)


def _put_body(params: api.PutArtifactParams) -> bytes:
    """The bytes an ``artifacts.put`` carries."""
    if params.text is not None:
        return params.text.encode("utf-8", "surrogatepass")
    try:
        return base64.b64decode(params.base64 or "", validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("'base64' is not valid base64") from None


async def _in_threads(first: Callable[[], A], second: Callable[[], B]) -> tuple[A, B]:
    """Call ``first`` and ``second`` in two worker threads at once; both results."""
    results: dict[int, Any] = {}

    async def call(slot: int, function: Callable[[], Any]) -> None:
        results[slot] = await anyio.to_thread.run_sync(function)

    async with anyio.create_task_group() as tg:
        tg.start_soon(call, 0, first)
        tg.start_soon(call, 1, second)
    return results[0], results[1]


def _step_views(steps: list[StepMetadata]) -> list[dict[str, Any]]:
    return [api.step_view(step) for step in steps]


def _write_closing(handle: RunHandle, run: RunMetadata, steps: list[StepMetadata]) -> None:
    """Write a run that has ended and the steps it closed, in the order the module docstring
    gives (the run first), so that any crash between them is repaired the same way."""
    handle.write(run)
    for step in steps:
        handle.write_step(step)


# Why a workspace the user stopped serving is not served, in words.
_REMOVED_WORDS: dict[RemovedBy, str] = {
    "remove": "it was removed (simpleaide workspaces rm)",
    "config": "the config file no longer lists it",
}


def _holding_run(workspaces: list[str], run_id: str) -> int | None:
    """The place in ``workspaces`` of the first whose store holds a folder for run
    ``run_id``; blocks on the disk (a worker thread's)."""
    for n, path in enumerate(workspaces):
        try:
            if stat.S_ISDIR(os.lstat(os.path.join(runs_path(path), run_id)).st_mode):
                return n
        except OSError:
            continue
    return None


def _unusable_reason(exc: NotFound | InvalidInput | OSError) -> str:
    """Why a workspace cannot be served, in words, from what serving it raised."""
    if isinstance(exc, NotFound | InvalidInput):
        return exc.message
    return f"cannot read it: {exc.strerror or exc}"


def _not_served(path: str) -> str:
    """The source of the warning that workspace ``path`` cannot be served."""
    return f"workspace {path}"
