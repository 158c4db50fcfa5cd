"""Keeps the index true when the store changes behind the daemon's back.

Built on watchdog's low-level inotify bindings (``inotify_init``, ``inotify_add_watch``, its
event constants), read on the event loop, not on watchdog's observer threads, because of what
was measured here (README: Benchmarks): the recursive observer livelocks above ~4,100 folders with
its default mask, stops silently at the kernel's watch limit, and holds events back up to
0.5 s to pair renames; a watcher thread costs a thread hop (and GIL contention) per event and
hundreds of bytes of bookkeeping per watch. So:

* one watch on each workspace's ``runs/`` (runs created, deleted, renamed) and one on each run
  folder (its ``metadata.json`` rewritten or removed) — never on step or artifact folders —
  and one small ``wd → run`` entry each;
* an explicit event mask: no open/access/close-nowrite noise;
* the inotify descriptor is non-blocking and read when the event loop says it is readable;
  every read's events collapse into a set of runs to re-read, each re-read under the run's
  lock; the kernel's queue is the only buffer;
* a record whose file signature (inode, mtime, size) is the one already indexed — the daemon's
  own write, seen again — costs a ``stat``, not a parse;
* a queue overflow leads to a rate-limited rescan, a failing reader to a restart and a rescan,
  both logged and counted; watches refused at the kernel's limit are reported loudly (log and
  ``warnings``) and the runs they miss are polled instead.

Where inotify is unavailable, watchdog's portable polling observer feeds the same path.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import logging
import os
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
from anyio.abc import TaskStatus

from simpleaided.domain import names
from simpleaided.services.fairness import TimeSlices
from simpleaided.services.warnings import Warnings
from simpleaided.store.runstore import RUN_FILE, metadata_signature, runs_path

log = logging.getLogger(__name__)

try:  # Linux only; elsewhere the polling observer serves.
    from watchdog.observers.inotify_c import (
        InotifyConstants,
        WatchDescriptor,
        inotify_add_watch,
        inotify_init,
        inotify_rm_watch,
    )

    HAVE_INOTIFY = True
except (ImportError, OSError):  # pragma: no cover - not on Linux
    HAVE_INOTIFY = False

RUNS_DIR_MASK = 0
RUN_DIR_MASK = 0
if HAVE_INOTIFY:
    _c = InotifyConstants
    _COMMON = _c.IN_DELETE_SELF | _c.IN_MOVE_SELF | _c.IN_ONLYDIR | _c.IN_DONT_FOLLOW
    RUNS_DIR_MASK = _c.IN_CREATE | _c.IN_DELETE | _c.IN_MOVED_FROM | _c.IN_MOVED_TO | _COMMON
    RUN_DIR_MASK = _c.IN_CLOSE_WRITE | _c.IN_MOVED_TO | _c.IN_MOVED_FROM | _c.IN_DELETE | _COMMON
    _SELF_GONE = _c.IN_DELETE_SELF | _c.IN_MOVE_SELF
    _APPEARED = _c.IN_CREATE | _c.IN_MOVED_TO

_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len; then the name
_READ_SIZE = 1 << 16
_RUN_FILE = RUN_FILE.encode()
MIN_RESCAN_SECONDS = 1.0  # the least time between two full rescans

WATCH_LIMIT_HINT = (
    "the inotify watch limit is reached; raise fs.inotify.max_user_watches "
    "(sysctl fs.inotify.max_user_watches=524288); meanwhile unwatched runs are polled"
)


@dataclass(frozen=True, slots=True)
class Change:
    """A run to re-read, or (``run_id`` None) a whole workspace to rescan."""

    workspace: str
    run_id: str | None


@dataclass
class WatchStats:
    """Counters shown in ``daemon.info``."""

    backend: str = "none"
    overflows: int = 0
    rescans: int = 0
    restarts: int = 0
    events: int = 0
    skipped_own: int = 0  # events for a version already indexed: a stat, no read
    rereads: int = 0  # events that made the daemon read a record again

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _signatures(workspace: str, run_ids: list[str]) -> dict[str, int | None]:
    """The signature of each run's ``metadata.json`` (``None`` if it cannot be stat'ed)."""
    return {run_id: metadata_signature(workspace, run_id) for run_id in run_ids}


def parse_events(buffer: bytes) -> list[tuple[int, int, bytes]]:
    """``(wd, mask, name)`` of every ``struct inotify_event`` in ``buffer``."""
    out = []
    pos, end = 0, len(buffer)
    while pos + _EVENT.size <= end:
        wd, mask, _cookie, length = _EVENT.unpack_from(buffer, pos)
        start = pos + _EVENT.size
        out.append((wd, mask, buffer[start : start + length].rstrip(b"\0")))
        pos = start + length
    return out


class _Inotify:
    """One non-blocking inotify descriptor and its watches (``wd → (workspace, run)``)."""

    def __init__(self) -> None:
        fd = inotify_init()
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
        fcntl.fcntl(fd, fcntl.F_SETFD, fcntl.FD_CLOEXEC)
        self.fd = fd
        self.by_wd: dict[int, tuple[str, str | None]] = {}
        self.runs_wd: dict[str, int] = {}  # workspace → the wd of its runs/ folder

    def add(self, path: str, mask: int, owner: tuple[str, str | None]) -> int:
        """Watch ``path`` (the same folder twice gives the same wd); ``OSError`` if refused."""
        wd = inotify_add_watch(self.fd, os.fsencode(path), mask)
        if wd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        self.by_wd[wd] = owner
        if owner[1] is None:
            self.runs_wd[owner[0]] = wd
        return int(wd)

    def forget(self, wd: int) -> None:
        """Drop ``wd`` from the books (the kernel has dropped the watch)."""
        owner = self.by_wd.pop(wd, None)
        if owner is not None and owner[1] is None and self.runs_wd.get(owner[0]) == wd:
            del self.runs_wd[owner[0]]

    def remove(self, wd: int) -> None:
        if wd in self.by_wd:
            self.forget(wd)
            # EINVAL if the kernel already dropped it: fine.
            inotify_rm_watch(self.fd, WatchDescriptor(wd))

    def read(self) -> bytes:
        """Whatever events are queued (``b""`` if none)."""
        chunks = []
        while True:
            try:
                chunk = os.read(self.fd, _READ_SIZE)
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk)
            if len(chunk) < _READ_SIZE // 2:
                break
        return b"".join(chunks)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self.by_wd.clear()
        self.runs_wd.clear()


class RunWatcher:
    """Watches every served workspace and applies what changes to the run service."""

    def __init__(
        self,
        *,
        refresh: Callable[[str, str, int | None], Awaitable[bool]],
        rescan: Callable[[str], Awaitable[int]],
        known_runs: Callable[[str], list[str]],
        signatures: dict[str, int],
        warnings: Warnings,
        use_inotify: bool = True,
        poll_seconds: float = 5.0,
    ) -> None:
        self._refresh = refresh
        self._rescan = rescan
        self._known_runs = known_runs
        self.signatures = signatures  # owned by the run service: what the index reflects
        self._warnings = warnings
        self._use_inotify = use_inotify and HAVE_INOTIFY
        self._poll_seconds = poll_seconds
        self.stats = WatchStats()
        self.workspaces: set[str] = set()
        self.unwatched: dict[str, set[str]] = {}
        self._inotify: _Inotify | None = None
        self._observer: Any = None
        self._token: Any = None
        self._pending: set[Change] = set()
        self._wake = anyio.Event()
        self._trouble = anyio.Event()  # an overflow or a failed reader: the supervisor acts
        self._rescan_all_wanted = False
        self._failing: set[str] = set()  # workspaces to rescan until it succeeds
        self._reader_failed = False
        self._limit_reported = False

    @property
    def watches(self) -> int:
        """Watches held now (``runs/`` folders and run folders)."""
        return len(self._inotify.by_wd) if self._inotify is not None else 0

    def report(self) -> dict[str, Any]:
        """The watcher's state for ``daemon.info``."""
        unwatched = sum(len(missed) for missed in self.unwatched.values())
        return {**self.stats.as_dict(), "watches": self.watches, "unwatched": unwatched}

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Watch until cancelled; ``task_status.started`` once events are being received."""
        self._token = anyio.lowlevel.current_token()
        try:
            self._start_backend()
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._consume)
                tg.start_soon(self._supervise)
                tg.start_soon(self._poll_unwatched)
                if self._inotify is not None:
                    tg.start_soon(self._read, self._inotify)
                task_status.started()
        finally:
            self._stop_backend()

    def _warn(self, source: str, message: str) -> None:
        """A lasting problem: logged, and listed in the daemon's warnings (it may come from
        a worker thread)."""
        log.warning("%s", message)
        self._warnings.set(source, message)

    def _start_backend(self) -> None:
        if self._use_inotify:
            try:
                self._inotify = _Inotify()
                self.stats.backend = "inotify"
                return
            except OSError as exc:
                message = f"inotify is unavailable ({exc}); watching by polling instead"
                self._warn("watcher backend", message)
                self._use_inotify = False
        from watchdog.observers.polling import PollingObserver

        self._observer = PollingObserver(timeout=self._poll_seconds)
        self._observer.daemon = True
        self._observer.start()
        self.stats.backend = "polling"

    def _stop_backend(self) -> None:
        inotify, self._inotify = self._inotify, None
        if inotify is not None:
            inotify.close()
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join()

    # -- workspaces --------------------------------------------------------------------------

    async def watch_workspace(self, path: str) -> None:
        """Watch ``path``'s runs. Call it before reading them: a change before the watch is
        then seen by that read, one after it by the watch."""
        self.workspaces.add(path)
        if self._observer is not None:
            # Scheduling walks the tree once (seconds at 100k runs): off the event loop.
            await anyio.to_thread.run_sync(self._watch_polling, path)
        elif self._inotify is not None:
            # Up to one syscall per run (0.3 s at 100k): off the event loop.
            await anyio.to_thread.run_sync(self._add_watches, self._inotify, path)

    def unwatch_workspace(self, path: str) -> None:
        """Stop watching ``path``."""
        self.workspaces.discard(path)
        self.unwatched.pop(path, None)
        inotify = self._inotify
        if inotify is not None:
            for wd, (workspace, _) in list(inotify.by_wd.items()):
                if workspace == path:
                    inotify.remove(wd)

    def _add_watches(self, inotify: _Inotify, path: str) -> None:
        runs = runs_path(path)
        if not self._add(inotify, runs, RUNS_DIR_MASK, path, None):
            return
        try:
            entries = set(os.listdir(runs))
        except OSError:
            return
        # The index's own id strings where it has them: one string per run, not two.
        indexed = [run_id for run_id in self._known_runs(path) if run_id in entries]
        others = entries.difference(indexed)
        for run_id in [*indexed, *(name for name in others if names.RUN_ID_RE.fullmatch(name))]:
            self._add(inotify, os.path.join(runs, run_id), RUN_DIR_MASK, path, run_id)

    def _add(
        self, inotify: _Inotify, path: str, mask: int, workspace: str, run_id: str | None
    ) -> bool:
        try:
            inotify.add(path, mask, (workspace, run_id))
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                if run_id is not None:
                    self.unwatched.setdefault(workspace, set()).add(run_id)
                if not self._limit_reported:
                    self._limit_reported = True
                    self._warn("watch limit", WATCH_LIMIT_HINT)
            elif exc.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EBADF):
                log.warning("cannot watch %s: %s", path, exc)
            return False
        return True

    def _watch_polling(self, path: str) -> None:
        from watchdog.events import FileSystemEvent, FileSystemEventHandler

        runs = runs_path(path)
        watcher = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                for where in (event.src_path, getattr(event, "dest_path", "")):
                    if not where:
                        continue  # dest_path: a move's target, where the run now is
                    rel = os.path.relpath(os.fsdecode(where), runs).split(os.sep)
                    if rel and names.RUN_ID_RE.fullmatch(rel[0]):
                        watcher._from_thread(Change(path, rel[0]))

        if os.path.isdir(runs):
            self._observer.schedule(Handler(), runs, recursive=True)

    def _from_thread(self, change: Change) -> None:
        try:
            anyio.from_thread.run_sync(self._note, change, token=self._token)
        except RuntimeError:
            pass  # the event loop is gone: we are shutting down

    # -- reading events (on the event loop) --------------------------------------------------

    async def _read(self, inotify: _Inotify) -> None:
        try:
            while True:
                await anyio.wait_readable(inotify.fd)
                self._dispatch(inotify, inotify.read())
        except Exception:
            if self._inotify is inotify:  # not a deliberate stop
                log.exception("the inotify reader failed; restarting it and rescanning")
                self._reader_failed = True
                self._trouble.set()

    def _dispatch(self, inotify: _Inotify, buffer: bytes) -> None:
        # Run folders renamed away from runs/ in this buffer. The kernel reports a rename as
        # IN_MOVED_FROM, IN_MOVED_TO, then the folder's own IN_MOVE_SELF, all at once; by
        # then a folder renamed within runs/ is watched under its new name again (same wd),
        # while one moved out still has its old one: its watch goes.
        moved_away: set[tuple[str, str]] = set()
        for wd, mask, name in parse_events(buffer):
            if mask & _c.IN_Q_OVERFLOW:
                self._note_overflow()
                continue
            if mask & _c.IN_IGNORED:
                inotify.forget(wd)  # the kernel dropped the watch (folder gone)
                continue
            owner = inotify.by_wd.get(wd)
            if owner is None:
                continue
            workspace, run_id = owner
            if run_id is not None:
                if mask & _SELF_GONE or name == _RUN_FILE:
                    self._note(Change(workspace, run_id))
                if mask & _c.IN_MOVE_SELF and (workspace, run_id) in moved_away:
                    moved_away.discard((workspace, run_id))
                    inotify.remove(wd)  # the kernel would go on watching it wherever it is
                continue
            # In runs/: a run folder appeared, went away or was renamed; or runs/ itself did.
            if mask & _SELF_GONE:
                if mask & _c.IN_MOVE_SELF:
                    # Moved away whole: its watches go (deleted, the kernel drops them
                    # itself). The rescan watches a runs/ found in its place.
                    self._drop_workspace_watches(inotify, workspace)
                self._note(Change(workspace, None))
                continue
            new_run = os.fsdecode(name)
            if not names.RUN_ID_RE.fullmatch(new_run):
                continue
            if mask & _c.IN_MOVED_FROM:
                moved_away.add((workspace, new_run))
            if mask & _APPEARED:
                moved_away.discard((workspace, new_run))
                # At once, so no rewrite inside it is missed; the re-read comes after.
                path = os.path.join(runs_path(workspace), new_run)
                self._add(inotify, path, RUN_DIR_MASK, workspace, new_run)
            self._note(Change(workspace, new_run))

    @staticmethod
    def _drop_workspace_watches(inotify: _Inotify, workspace: str) -> None:
        for wd, (owner, _) in list(inotify.by_wd.items()):
            if owner == workspace:
                inotify.remove(wd)

    def _note(self, change: Change) -> None:
        self.stats.events += 1
        self._pending.add(change)
        self._wake.set()

    def _note_overflow(self) -> None:
        self.stats.overflows += 1
        self._rescan_all_wanted = True
        self._trouble.set()

    # -- applying changes --------------------------------------------------------------------

    async def _consume(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            batch, self._pending = self._pending, set()
            # A change rarely waits (a run's lock is taken without a trip through the loop
            # when free): a big checkout must not hold clients back meanwhile.
            slices = TimeSlices()
            for change in batch:
                await slices.tick()
                if change.workspace not in self.workspaces:
                    continue
                try:
                    if change.run_id is None:
                        await self._rescan_now(change.workspace)
                    else:
                        await self._apply(change.workspace, change.run_id)
                except Exception:
                    # A store gone unsafe, a permission error...: logged, the watch goes on,
                    # and the workspace is rescanned until that succeeds.
                    self._failed(change.workspace, "cannot apply a change in")

    async def _apply(self, workspace: str, run_id: str) -> None:
        signature = metadata_signature(workspace, run_id)
        if signature is not None and self.signatures.get(run_id) == signature:
            self.stats.skipped_own += 1  # our own write, seen again: no lock, nothing read
            return
        # The refresh reuses this signature if it gets the run's lock at once (then no write
        # of ours can have moved the file since), and looks again if it has to wait.
        if await self._refresh(workspace, run_id, signature):
            self.stats.rereads += 1
        else:
            self.stats.skipped_own += 1  # the write it echoes was indexed meanwhile

    async def _rescan_now(self, workspace: str) -> None:
        self.stats.rescans += 1
        log.info("rescanning %s", workspace)
        inotify = self._inotify
        if inotify is not None and workspace not in inotify.runs_wd:
            # runs/ itself was deleted or moved: watch it (and its runs) again if it is back.
            await anyio.to_thread.run_sync(self._add_watches, inotify, workspace)
        await self._rescan(workspace)

    def _failed(self, workspace: str, what: str) -> None:
        if workspace not in self._failing:
            log.exception("%s %s; it will be rescanned until that succeeds", what, workspace)
        self._failing.add(workspace)
        self._trouble.set()

    async def _supervise(self) -> None:
        """Restart a failed reader; rescan after lost events, and retry workspaces whose
        changes could not be applied — at most once per interval, so nothing can loop us."""
        last_rescan = -float("inf")
        async with anyio.create_task_group() as tg:
            while True:
                await self._trouble.wait()
                self._trouble = anyio.Event()
                if self._reader_failed:
                    self._reader_failed = False
                    self.stats.restarts += 1
                    self._stop_backend()
                    self._start_backend()
                    if self._inotify is not None:
                        tg.start_soon(self._read, self._inotify)
                    for path in list(self.workspaces):
                        await self.watch_workspace(path)
                    self._rescan_all_wanted = True
                if not self._rescan_all_wanted and not self._failing:
                    continue
                wait = last_rescan + MIN_RESCAN_SECONDS - anyio.current_time()
                if wait > 0:
                    await anyio.sleep(wait)  # rate limit: an overflow storm cannot loop us
                todo = set(self.workspaces) if self._rescan_all_wanted else set(self._failing)
                if self._rescan_all_wanted:
                    log.warning("filesystem events were lost; rescanning")
                self._rescan_all_wanted = False
                self._trouble = anyio.Event()  # overflows meanwhile are covered by this rescan
                last_rescan = anyio.current_time()
                for path in todo & self.workspaces:
                    try:
                        await self._rescan_now(path)
                    except Exception:
                        self._failed(path, "cannot rescan")
                    else:
                        if path in self._failing:
                            self._failing.discard(path)
                            log.info("%s can be read again", path)
                self._failing &= self.workspaces

    async def _poll_unwatched(self) -> None:
        """Now and then: re-read the runs that could not be watched (watch limit), and watch
        again a ``runs/`` that was deleted and has come back."""
        while True:
            await anyio.sleep(self._poll_seconds)
            for path in list(self.workspaces):
                try:
                    await self._poll_workspace(path)
                except Exception:
                    log.exception("cannot poll %s", path)

    async def _poll_workspace(self, path: str) -> None:
        inotify = self._inotify
        if inotify is None:
            return
        if path not in inotify.runs_wd:
            if await anyio.to_thread.run_sync(os.path.isdir, runs_path(path)):
                await self._rescan_now(path)  # re-adds the watches, then re-reads
            return
        missed = list(self.unwatched.get(path, ()))
        if not missed:
            return
        # The stats off the loop (there may be many); the re-reads on it, under run locks.
        signatures = await anyio.to_thread.run_sync(_signatures, path, missed)
        slices = TimeSlices()
        for run_id in missed:
            if signatures[run_id] is None or self.signatures.get(run_id) != signatures[run_id]:
                await self._apply(path, run_id)
            await slices.tick()
        known = set(self._known_runs(path))  # read on the loop: the index is not thread-safe
        await anyio.to_thread.run_sync(self._retry_unwatched, inotify, path, known)

    def _retry_unwatched(self, inotify: _Inotify, path: str, known: set[str]) -> None:
        missed = self.unwatched.get(path, set())
        for run_id in list(missed):
            run_path = os.path.join(runs_path(path), run_id)
            if run_id not in known or self._add(inotify, run_path, RUN_DIR_MASK, path, run_id):
                missed.discard(run_id)
