"""Keeps the index true when the store changes behind the daemon's back.

Built on watchdog's low-level inotify layer (``InotifyFD``: per-path callbacks on one thread),
not its recursive observer, because of what was measured here (DESIGN.md §8): the recursive
observer livelocks above ~4,100 folders with its default mask, stops silently at the kernel's
watch limit, and holds events back up to 0.5 s to pair renames. So:

* one watch on each workspace's ``runs/`` (runs created, deleted, renamed) and one on each run
  folder (its ``metadata.json`` rewritten or removed) — never on step or artifact folders;
* an explicit event mask: no open/access/close-nowrite noise;
* the inotify thread only names the run that changed and hands it to the event loop through a
  bounded stream; the loop re-reads that one record, under the run's lock;
* a record whose file signature (inode, mtime, size) is the one already indexed — the daemon's
  own write, seen again — costs a ``stat``, not a parse;
* queue overflow, a full hand-off stream or a dead watcher thread lead to a rate-limited full
  rescan, logged and counted; watches refused at the kernel's limit are reported loudly (log and
  ``warnings``) and the runs they miss are polled instead.

Where inotify is unavailable, watchdog's portable polling observer feeds the same path.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
from anyio.abc import TaskStatus

from simpleaided.domain import names
from simpleaided.store import safefs
from simpleaided.store.runstore import RUN_FILE, runs_path

log = logging.getLogger(__name__)

try:  # Linux only; elsewhere the polling observer serves.
    from watchdog.observers.inotify_c import (
        CallbackId,
        InotifyConstants,
        InotifyEvent,
        InotifyFD,
        Mask,
        WatchDescriptor,
    )

    HAVE_INOTIFY = True
except (ImportError, OSError):  # pragma: no cover - not on Linux
    HAVE_INOTIFY = False

RUNS_DIR_MASK = 0
RUN_DIR_MASK = 0
if HAVE_INOTIFY:
    _c = InotifyConstants
    RUNS_DIR_MASK = (
        _c.IN_CREATE
        | _c.IN_DELETE
        | _c.IN_MOVED_FROM
        | _c.IN_MOVED_TO
        | _c.IN_DELETE_SELF
        | _c.IN_MOVE_SELF
        | _c.IN_ONLYDIR
    )
    RUN_DIR_MASK = (
        _c.IN_CLOSE_WRITE
        | _c.IN_MOVED_TO
        | _c.IN_MOVED_FROM
        | _c.IN_DELETE
        | _c.IN_DELETE_SELF
        | _c.IN_MOVE_SELF
        | _c.IN_ONLYDIR
    )

WATCH_LIMIT_HINT = (
    "the inotify watch limit is reached; raise fs.inotify.max_user_watches "
    "(sysctl fs.inotify.max_user_watches=524288); meanwhile unwatched runs are polled"
)


@dataclass(frozen=True, slots=True)
class Change:
    """What the watcher thread hands to the event loop."""

    workspace: str
    run_id: str | None  # None: rescan the whole workspace


@dataclass
class WatchStats:
    """Counters shown in ``daemon.info``."""

    backend: str = "none"
    watches: int = 0
    unwatched: int = 0
    overflows: int = 0
    rescans: int = 0
    restarts: int = 0
    events: int = 0
    skipped_own: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def file_signature(path: str) -> int | None:
    """The store's signature of the file at ``path`` (``None`` if it cannot be stat'ed)."""
    try:
        return safefs.signature(os.stat(path, follow_symlinks=False))
    except OSError:
        return None


class _Callback:
    """A watchdog ``WatchCallback`` for one watched folder."""

    def __init__(self, watcher: RunWatcher, workspace: str, run_id: str | None) -> None:
        self.watcher = watcher
        self.workspace = workspace
        self.run_id = run_id

    def on_event(self, event: InotifyEvent) -> None:
        self.watcher._thread_event(self, event)

    def on_watch_deleted(self, wd: WatchDescriptor) -> None:
        self.watcher._thread_watch_deleted(self, wd)

    def on_queue_overflow(self) -> None:
        self.watcher._thread_overflow()


@dataclass
class _Workspace:
    """The watches of one workspace."""

    path: str
    runs_wd: int | None = None
    run_wds: dict[str, int] = field(default_factory=dict)
    unwatched: set[str] = field(default_factory=set)


class RunWatcher:
    """Watches every served workspace and applies what changes to the run service."""

    def __init__(
        self,
        *,
        refresh: Callable[[str, str], Any],
        rescan: Callable[[str], Any],
        known_runs: Callable[[str], list[str]],
        signatures: dict[str, int],
        warn: Callable[[str], None],
        use_inotify: bool = True,
        poll_seconds: float = 5.0,
        min_rescan_interval: float = 1.0,
        queue_size: int = 4096,
    ) -> None:
        self._refresh = refresh  # async (workspace, run_id) -> None
        self._rescan = rescan  # async (workspace) -> None
        self._known_runs = known_runs
        self._warn = warn
        self._use_inotify = use_inotify and HAVE_INOTIFY
        self._poll_seconds = poll_seconds
        self._min_rescan_interval = min_rescan_interval
        self._queue_size = queue_size
        self.stats = WatchStats()
        self.signatures = signatures  # owned by the run service: what the index reflects
        self._workspaces: dict[str, _Workspace] = {}
        self._inotify: InotifyFD | None = None
        self._observer: Any = None
        self._token: Any = None
        self._send: Any = None
        self._overflowed = anyio.Event()
        self._rescan_all_wanted = False
        self._limit_reported = False
        self._watch_lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Watch until cancelled; ``task_status.started`` once events are being received."""
        send, receive = anyio.create_memory_object_stream[Change](self._queue_size)
        self._send = send
        self._token = anyio.lowlevel.current_token()
        try:
            await self._start_backend()
            async with receive, anyio.create_task_group() as tg:
                tg.start_soon(self._consume, receive)
                tg.start_soon(self._supervise)
                tg.start_soon(self._poll_unwatched)
                task_status.started()
        finally:
            self._stop_backend()
            send.close()

    async def _start_backend(self) -> None:
        if self._use_inotify:
            try:
                self._inotify = InotifyFD()
            except OSError as exc:
                self._warn(f"inotify is unavailable ({exc}); watching by polling instead")
                self._use_inotify = False
        if self._inotify is not None:
            self._inotify.daemon = True
            self._inotify.start()
            self.stats.backend = "inotify"
        else:
            from watchdog.observers.polling import PollingObserver

            self._observer = PollingObserver(timeout=self._poll_seconds)
            self._observer.daemon = True
            self._observer.start()
            self.stats.backend = "polling"
        for ws in list(self._workspaces.values()):
            # A restart: watch again, then re-check what changed while nobody watched.
            await self.watch_workspace(ws.path)
            await self._rescan(ws.path)

    def _stop_backend(self) -> None:
        inotify, self._inotify = self._inotify, None
        if inotify is not None:
            inotify.stop()
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()

    # -- workspaces --------------------------------------------------------------------------

    async def watch_workspace(self, path: str) -> None:
        """Watch ``path``'s runs. Call it before reading them: a change before the watch is
        then seen by that read, one after it by the watch."""
        ws = self._workspaces.setdefault(path, _Workspace(path))
        if self._observer is not None:
            self._watch_polling(ws)
        elif self._inotify is not None:
            await anyio.to_thread.run_sync(self._add_watches, ws)

    def unwatch_workspace(self, path: str) -> None:
        """Stop watching ``path``."""
        ws = self._workspaces.pop(path, None)
        if ws is None:
            return
        if self._inotify is not None:
            wds = [(WatchDescriptor(wd), CallbackId(0)) for wd in ws.run_wds.values()]
            if ws.runs_wd is not None:
                wds.append((WatchDescriptor(ws.runs_wd), CallbackId(0)))
            self._inotify.remove_callbacks(wds)
        self.stats.watches -= len(ws.run_wds) + (ws.runs_wd is not None)
        self.stats.unwatched -= len(ws.unwatched)

    def _add_watches(self, ws: _Workspace) -> None:
        runs = runs_path(ws.path)
        if ws.runs_wd is None:
            ws.runs_wd = self._add(runs, RUNS_DIR_MASK, _Callback(self, ws.path, None), ws)
        try:
            entries = os.listdir(runs)
        except OSError:
            return
        for name in entries:
            if names.RUN_ID_RE.match(name):
                self._watch_run(ws, name)

    def _watch_run(self, ws: _Workspace, run_id: str) -> None:
        with self._watch_lock:  # the inotify thread and a worker may add the same run
            if run_id in ws.run_wds:
                return
            self._watch_run_locked(ws, run_id)

    def _watch_run_locked(self, ws: _Workspace, run_id: str) -> None:
        wd = self._add(
            os.path.join(runs_path(ws.path), run_id),
            RUN_DIR_MASK,
            _Callback(self, ws.path, run_id),
            ws,
            run_id,
        )
        if wd is not None:
            ws.run_wds[run_id] = wd

    def _add(
        self, path: str, mask: int, callback: _Callback, ws: _Workspace, run_id: str | None = None
    ) -> int | None:
        assert self._inotify is not None
        try:
            wd = self._inotify.add_callback(
                os.fsencode(path),
                Mask(mask | InotifyConstants.IN_DONT_FOLLOW),
                callback,
                CallbackId(0),
            )
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                if run_id is not None and run_id not in ws.unwatched:
                    ws.unwatched.add(run_id)
                    self.stats.unwatched += 1
                if not self._limit_reported:
                    self._limit_reported = True
                    self._warn(WATCH_LIMIT_HINT)
            elif exc.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                log.warning("cannot watch %s: %s", path, exc)
            return None
        self.stats.watches += 1
        return int(wd)

    def _watch_polling(self, ws: _Workspace) -> None:
        from watchdog.events import FileSystemEvent, FileSystemEventHandler

        watcher = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                src = os.fsdecode(event.src_path)
                rel = os.path.relpath(src, runs_path(ws.path)).split(os.sep)
                if rel and names.RUN_ID_RE.match(rel[0]):
                    watcher._hand_over(Change(ws.path, rel[0]))

        if os.path.isdir(runs_path(ws.path)):
            self._observer.schedule(Handler(), runs_path(ws.path), recursive=True)

    # -- the watcher thread's side -----------------------------------------------------------

    def _thread_event(self, callback: _Callback, event: InotifyEvent) -> None:
        name = os.fsdecode(event.name) if event.name else ""
        if callback.run_id is None:
            # In runs/: a run folder appeared, went away or was renamed; or runs/ itself did.
            if event.is_delete_self or event.is_move_self:
                self._hand_over(Change(callback.workspace, None))
                return
            if not names.RUN_ID_RE.match(name):
                return
            ws = self._workspaces.get(callback.workspace)
            if ws is not None and (event.is_create or event.is_moved_to):
                self._watch_run(ws, name)  # at once, so no rewrite in it is missed
            self._hand_over(Change(callback.workspace, name))
        elif event.is_delete_self or event.is_move_self or name == RUN_FILE:
            self._hand_over(Change(callback.workspace, callback.run_id))

    def _thread_watch_deleted(self, callback: _Callback, wd: WatchDescriptor) -> None:
        ws = self._workspaces.get(callback.workspace)
        if ws is None:
            return
        if callback.run_id is None:
            if ws.runs_wd == wd:
                ws.runs_wd = None
                self.stats.watches -= 1
        elif ws.run_wds.get(callback.run_id) == wd:
            del ws.run_wds[callback.run_id]
            self.stats.watches -= 1

    def _thread_overflow(self) -> None:
        try:
            anyio.from_thread.run_sync(self._note_overflow, token=self._token)
        except RuntimeError:
            pass  # the event loop is gone: we are shutting down

    def _hand_over(self, change: Change) -> None:
        try:
            anyio.from_thread.run_sync(self._enqueue, change, token=self._token)
        except RuntimeError:
            pass  # the event loop is gone: we are shutting down

    # -- the event loop's side ---------------------------------------------------------------

    def _enqueue(self, change: Change) -> None:
        try:
            self._send.send_nowait(change)
        except anyio.WouldBlock:
            self._note_overflow()  # too many changes at once: a rescan sorts them out

    def _note_overflow(self) -> None:
        self.stats.overflows += 1
        self._rescan_all_wanted = True
        self._overflowed.set()

    async def _consume(self, receive: Any) -> None:
        async for change in receive:
            self.stats.events += 1
            batch = {change}
            while True:  # take what else has arrived, once each
                try:
                    batch.add(receive.receive_nowait())
                except anyio.WouldBlock:
                    break
            for item in batch:
                if item.workspace not in self._workspaces:
                    continue
                if item.run_id is None:
                    await self._rescan_now(item.workspace)
                else:
                    await self._apply(item.workspace, item.run_id)
                await anyio.lowlevel.checkpoint()  # a burst must not starve the clients

    async def _apply(self, workspace: str, run_id: str) -> None:
        path = os.path.join(runs_path(workspace), run_id, RUN_FILE)
        signature = file_signature(path)
        if signature is not None and self.signatures.get(run_id) == signature:
            self.stats.skipped_own += 1
            return
        if not await self._refresh(workspace, run_id):
            self.stats.skipped_own += 1  # the write it echoes was indexed meanwhile

    async def _rescan_now(self, workspace: str) -> None:
        self.stats.rescans += 1
        log.info("rescanning %s", workspace)
        await self._rescan(workspace)
        ws = self._workspaces.get(workspace)
        if ws is not None and self._inotify is not None and ws.runs_wd is None:
            # runs/ itself was deleted or moved: watch it again if it is back.
            await anyio.to_thread.run_sync(self._add_watches, ws)

    async def _supervise(self) -> None:
        """Rescan after overflows (at most once per interval) and revive a dead thread."""
        last_rescan = -float("inf")
        while True:
            with anyio.move_on_after(1.0):
                await self._overflowed.wait()
            if self._inotify is not None and not self._inotify.is_alive():
                self.stats.restarts += 1
                log.warning("the inotify watcher thread died; restarting it and rescanning")
                self._inotify = None
                for ws in self._workspaces.values():
                    ws.runs_wd, ws.run_wds = None, {}
                self.stats.watches = 0
                await self._start_backend()
                continue
            if not self._rescan_all_wanted:
                continue
            wait = last_rescan + self._min_rescan_interval - anyio.current_time()
            if wait > 0:
                await anyio.sleep(wait)  # rate limit: an overflow storm cannot loop us
            self._rescan_all_wanted = False
            self._overflowed = anyio.Event()
            log.warning("inotify events were lost (queue overflow); rescanning")
            last_rescan = anyio.current_time()
            for path in list(self._workspaces):
                await self._rescan_now(path)

    async def _poll_unwatched(self) -> None:
        """Re-read, now and then, the runs that could not be watched (watch limit)."""
        while True:
            await anyio.sleep(self._poll_seconds)
            for ws in list(self._workspaces.values()):
                for run_id in list(ws.unwatched):
                    await self._apply(ws.path, run_id)
                if ws.unwatched and self._inotify is not None:
                    # New runs are caught by the runs/ watch; retry watches that failed.
                    await anyio.to_thread.run_sync(self._retry_unwatched, ws)

    def _retry_unwatched(self, ws: _Workspace) -> None:
        known = set(self._known_runs(ws.path))
        for run_id in list(ws.unwatched):
            if run_id not in known:
                ws.unwatched.discard(run_id)
                self.stats.unwatched -= 1
                continue
            self._watch_run(ws, run_id)
            if run_id in ws.run_wds:
                ws.unwatched.discard(run_id)
                self.stats.unwatched -= 1
