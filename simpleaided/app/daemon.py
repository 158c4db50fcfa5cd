"""Lifecycle: claim the socket, load the index, serve, and stop cleanly.

``Daemon.run`` is what both the command and the tests start (``await tg.start(daemon.run)``);
process-wide side effects (signal handlers) are switchable so tests run it in-process. The
services are built in ``wiring``; a reload (``SIGHUP``) is applied by ``reload``.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
from collections.abc import Callable
from typing import Any

import anyio
from anyio.abc import SocketListener, TaskGroup, TaskStatus

from simpleaided import __version__
from simpleaided.app import wiring
from simpleaided.app.config import Config
from simpleaided.app.reload import Reloader
from simpleaided.app.systemd import Notifier
from simpleaided.domain import clock
from simpleaided.domain.api import API_VERSION, LogDestination, StartMode
from simpleaided.domain.errors import BackendUnavailable
from simpleaided.services.events import COALESCE_SECONDS
from simpleaided.transports.unix_socket import SocketClaim, SocketInUse, SocketTaken

log = logging.getLogger(__name__)

SNAPSHOT_SECONDS = 60.0
REFUSED_RETRY_SECONDS = 2.0  # how often workspaces another daemon held are tried again
SOCKET_CHECK_SECONDS = 1.0  # how often the socket file is checked (a /tmp cleaner may take it)
STATUS_SECONDS = 2.0  # how often the service manager's STATUS= is brought up to date
AGE_SECONDS = 1.0  # the longest wait between checks of the ages the chips show ("45s ago")


def _trim_heap() -> None:
    """Give the C heap's free pages back to the system (glibc's ``malloc_trim``; elsewhere
    there is nothing to do)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except AttributeError:
        return
    trim(0)


class Daemon:
    """One daemon: its configuration, services and socket."""

    def __init__(
        self,
        config: Config,
        *,
        handle_signals: bool = True,
        notifier: Notifier | None = None,
        start_mode: StartMode = "foreground",
        load_config: Callable[[], Config] | None = None,
        log_destination: LogDestination | None = None,
    ) -> None:
        """``load_config`` is how a reload (``SIGHUP``) reads the configuration again;
        ``log_destination`` where the log goes (``main.log_destination``: said by
        ``daemon.info``)."""
        self.handle_signals = handle_signals
        self.notifier = notifier or Notifier({})  # a disabled one: nobody to tell
        self.start_mode: StartMode = start_mode
        self.log_destination = log_destination or LogDestination(to="stderr", path=None)
        services = wiring.build(config, self)
        self.warnings = services.warnings
        self.events = services.events
        self.vault = services.vault
        self.database = services.database
        self.grid = services.grid
        self.terminals = services.terminals
        self.llm = services.llm
        self.watcher = services.watcher
        self.runs = services.runs
        self.owners = services.owners
        self.status = services.status
        self.http_access = services.http
        self.dispatcher = services.dispatcher
        self.server = services.server
        self._reloader = Reloader(
            config, services, load_config=load_config, notifier=self.notifier, summary=self.summary
        )
        self.started_ms = clock.now_ms()
        self.claim: SocketClaim | None = None  # the socket served, once run() has it
        self._listener: SocketListener | None = None  # accepting on that socket
        self._stop = anyio.Event()
        self._reloading = anyio.Lock()  # one reload at a time
        self.watching = anyio.Event()  # set once the loaded workspaces are watched

    @property
    def http(self) -> Any:
        """The HTTP shim (``transports.http.HttpShim``) while it serves, else ``None``."""
        return self.http_access.shim

    @property
    def config(self) -> Config:
        """The configuration the daemon runs with (the last one reloaded)."""
        return self._reloader.config

    @property
    def config_loaded_ms(self) -> int:
        """When that configuration was read (epoch ms)."""
        return self._reloader.loaded_ms

    @property
    def reload_error(self) -> str | None:
        """Why the last reload was refused, if it was."""
        return self._reloader.error

    def info(self) -> dict[str, Any]:
        """What ``daemon.info`` answers."""
        now = clock.now_ms()
        return {
            "version": __version__,
            "apiVersion": API_VERSION,
            "pid": os.getpid(),
            "uid": os.getuid(),
            "startMode": self.start_mode,
            "socket": str(self.config.socket_path),
            "configFile": str(self.config.config_file) if self.config.config_file else None,
            "configLoadedAt": clock.format_ms(self.config_loaded_ms),
            "reloadError": self.reload_error,
            "env": self.config.env,
            "startedAt": clock.format_ms(self.started_ms),
            "uptimeMs": clock.age_ms(self.started_ms, now),
            "workspaces": len(self.runs.registry),
            "runs": len(self.runs.index),
            "maxMessageBytes": self.config.limits.max_message_bytes,
            "connections": self.server.report(),
            "maxArtifactChunkBytes": self.runs.max_artifact_bytes,
            "framings": ["ndjson", "content-length"],
            "warnings": list(self.warnings),
            "watcher": self.watcher.report(),
            # After a crash: whether every run was checked for its leftovers yet.
            "storesChecked": self.runs.stores_checked(),
            "log": self.log_destination.model_dump(),
            "httpUrl": self._http_url(),
        }

    def _http_url(self) -> str | None:
        """Where the HTTP shim serves (its address only: the token stays out)."""
        url = self.http_access.section().get("url")
        return f"{url}/" if isinstance(url, str) and url else None

    def request_stop(self) -> None:
        """Begin a graceful stop (what SIGTERM and SIGINT do)."""
        self._stop.set()

    def summary(self) -> str:
        """One line for the service manager's ``STATUS=`` (``systemctl --user status``)."""
        warnings = len(self.warnings)
        return (
            f"{self.config.env}: {len(self.runs.index)} runs in {len(self.runs.registry)} "
            f"workspaces, {self.runs.active_count(None)} active; {self.watcher.watches} watches; "
            f"{warnings} warning{'' if warnings == 1 else 's'}"
        )

    async def run(
        self,
        *,
        claim: SocketClaim | None = None,
        task_status: TaskStatus[Daemon] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve until stopped; ``task_status.started`` once the socket answers.

        ``claim`` is a socket made beforehand (one passed by systemd); else one is bound.
        """
        self.http_access.bind()  # first: a port in use stops the start before anything is served
        try:
            self.claim = claim or SocketClaim.bind(self.config.socket_path)
            self.http_access.load_token()  # beside the socket, in its folder now ours
        except BaseException:
            self.http_access.close()
            if self.claim is not None:
                self.claim.release()
            raise
        clean = False  # stopped with every write ended
        try:
            async with anyio.create_task_group() as tg:
                # Signals first: a stop during a long start-up scan must still clean up.
                if self.handle_signals:
                    tg.start_soon(self._watch_signals, tg)
                tg.start_soon(self._stop_when_asked, tg.cancel_scope)
                await tg.start(self.watcher.run)  # watching before loading: no change is missed
                # Each workspace's lock says whether the daemon that held it stopped cleanly
                # (taking it clears that, before any write of ours).
                await self.runs.load()
                # The leftovers in ``runs/`` go before any answer (a listing each); after a
                # crash, the walk through every run (a crash's temp files, steps it left
                # open) follows the first answer, as it takes ~3x a full scan.
                await self.runs.tidy_all()
                loaded_version = self.runs.index.version  # what the snapshots hold, if current
                await self.vault.load()
                await tg.start(self.vault.run)
                await tg.start(self.grid.run)  # deadlines and cancels of db.* calls
                await tg.start(self.owners.run)  # runs whose owner died end before any answer
                await tg.start(self._serve, self.claim)
                await self.http_access.start(tg)
                tg.start_soon(self._after_start, tg, loaded_version)
                tg.start_soon(self._keep_socket, tg)
                tg.start_soon(self._retry_refused)
                tg.start_soon(self._refresh_aged)
                log.info(
                    "simpleaided %s serving %s (env %s, %d workspace(s), %d run(s), %s)",
                    __version__,
                    self.claim.path,
                    self.config.env,
                    len(self.runs.registry),
                    len(self.runs.index),
                    self.start_mode,
                )
                self.notifier.ready(self.summary())
                if self.notifier.watchdog_seconds:
                    tg.start_soon(self._ping_watchdog, self.notifier.watchdog_seconds / 2)
                if self.notifier.enabled:
                    tg.start_soon(self._report_status)
                task_status.started(self)
            # Every write has ended (the task group waited for them): each workspace walked
            # (if it had to be) is let go with the mark of a clean stop.
            clean = self._stop.is_set()
        finally:
            with anyio.CancelScope(shield=True):
                await self.terminals.aclose()  # hung up at the stop's start; gone by now
                await self.grid.aclose()
                await self.database.aclose()
                await self.llm.aclose()
            # Nothing is written any more: the workspaces go first, so a daemon that takes
            # over the socket (systemd's next one) finds them free.
            self.runs.registry.release_all(clean=clean)
            self.claim.release()
            self.http_access.close()  # bound but never served, if start-up failed before
            self.notifier.close()
            log.info("stopped")

    async def _serve(
        self, claim: SocketClaim, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Accept connections on ``claim``'s socket until the daemon stops, or until this
        socket is replaced (its listener closed): its connections are then served to their
        end."""
        self._listener = listener = await SocketListener.from_socket(claim.sock)
        await self.server.serve(listener, task_status=task_status)

    async def _keep_socket(self, tg: TaskGroup) -> None:
        """Bring the socket file back if it is deleted under the daemon; stop if another
        daemon has taken its path (two daemons must never own the same store)."""
        assert self.claim is not None
        path = self.claim.path
        blocked: str | None = None  # why the socket cannot be renewed, once said
        while True:
            await anyio.sleep(SOCKET_CHECK_SECONDS)
            if self.claim.intact() or self._stop.is_set():
                continue
            try:
                # In a thread: it may probe a socket file found in the way (up to a second).
                renewed = await anyio.to_thread.run_sync(self.claim.renew)
            except SocketTaken as exc:
                log.error("%s; stopping: another daemon now serves this socket", exc)
                self.request_stop()
                return
            except (SocketInUse, OSError) as exc:  # a file in the way, a folder not ours...
                if str(exc) != blocked:
                    blocked = str(exc)
                    log.warning("the socket file was deleted and cannot be renewed: %s", exc)
                continue
            blocked = None
            old, old_listener = self.claim, self._listener
            self.claim = renewed
            await tg.start(self._serve, renewed)
            if old_listener is not None:
                await old_listener.aclose()  # no new connections there; the accepted go on
            old.release()
            if old.owned:
                log.warning("the socket file %s was deleted: serving on a new one", path)
            else:
                log.warning(
                    "systemd's socket file %s was deleted: serving on a new one; "
                    "systemctl --user restart simpleaided.socket restores socket activation",
                    path,
                )

    async def _retry_refused(self) -> None:
        """Serve, once free, the workspaces another daemon held (after a socket takeover,
        the one that took over is left with none): a ``flock`` attempt each, now and then."""
        while True:
            await anyio.sleep(REFUSED_RETRY_SECONDS)
            if not self._stop.is_set() and self.runs.registry.refused():
                async with self._reloading:  # not beside a reload serving the same paths
                    await self.runs.retry_refused()

    async def _stop_when_asked(self, scope: anyio.CancelScope) -> None:
        await self._stop.wait()
        self.notifier.stopping()
        log.info("stopping: finishing requests in progress")
        if self._listener is not None:
            # No new connections: under socket activation they wait in systemd's queue for
            # the next daemon rather than being accepted and dropped.
            await self._listener.aclose()
        self.grid.stop_all()  # running queries end now (cancelled), not at the grace's end
        self.terminals.hang_up_all()  # their programs end beside the requests in progress
        await self.server.drain(self.config.daemon.shutdown_grace_seconds)
        with anyio.CancelScope(shield=True):
            await self.runs.save_snapshots()
        scope.cancel()

    async def _after_start(self, tg: TaskGroup, loaded_version: int) -> None:
        """Once answering: watch what was loaded, then start the database and LLM probes,
        then keep the snapshots recent, so even a crash leaves a fast start behind.

        ``loaded_version`` is the index's version once loaded: if the snapshots were what
        was loaded, they are saved again only when the index moves on from there (an owner
        gone, a client's change, an event meanwhile), not at once."""
        await self.runs.watch_loaded()
        self.watching.set()
        await self.runs.check_all()  # the workspaces a daemon did not let go cleanly
        saved_at = loaded_version if self.runs.snapshots_current else -1
        trimmed = False
        probing = False
        while True:
            version = self.runs.index.version
            if version != saved_at:
                saved_at = version
                await self.runs.save_snapshots()
                trimmed = False
            if not trimmed:
                # Loading and saving free tens of MB at 100k runs that the C heap would keep.
                await anyio.to_thread.run_sync(_trim_heap)
                trimmed = True
            if not probing:
                # After the bulk of start-up: probe threads allocating beside the index load
                # left ~9 MB (90 bytes a run at 100k) of fragments the heap could not return.
                probing = True
                await tg.start(self.database.run)
                await tg.start(self.llm.run)
            await anyio.sleep(SNAPSHOT_SECONDS)

    async def _refresh_aged(self) -> None:
        """Subscribers' documents follow time too: "failed 2m ago" must not stay "0s ago".

        Checked when the words next change, as the documents tell, rather than every second:
        a free-running tick, out of phase with the ages, sent each change up to a second
        late. After a change (which may bring a nearer moment) the check waits as the pumps
        coalesce, so a burst of changes costs one check."""
        while True:
            until = self.events.refresh_aged()
            with anyio.move_on_after(AGE_SECONDS if until is None else until):
                await self.events.retimed.wait()
                await anyio.sleep(COALESCE_SECONDS)

    async def _ping_watchdog(self, period: float) -> None:
        """``WATCHDOG=1`` from the event loop itself: a loop that hangs stops the pings, and
        systemd restarts the daemon."""
        while True:
            self.notifier.send("WATCHDOG=1")
            await anyio.sleep(period)

    async def _report_status(self) -> None:
        shown = self.summary()
        while True:
            await anyio.sleep(STATUS_SECONDS)
            summary = self.summary()
            if summary != shown and self.notifier.send(f"STATUS={summary}"):
                shown = summary

    async def _watch_signals(self, tg: TaskGroup) -> None:
        signals_wanted = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        with anyio.open_signal_receiver(*signals_wanted) as signals:
            async for signum in signals:
                if signum == signal.SIGHUP:
                    if self._stop.is_set():
                        log.info("received SIGHUP while stopping: not reloading")
                    else:
                        log.info("received SIGHUP: reloading the configuration")
                        tg.start_soon(self._reload_once_started)
                    continue
                log.info("received %s", signal.Signals(signum).name)
                self.request_stop()

    async def _reload_once_started(self) -> None:
        # A reload during start-up (the scan, then the watches) would race it: it waits, as
        # do the reloads behind it.
        await self.watching.wait()
        async with self._reloading:
            if not self._stop.is_set():
                await self.reload()

    async def reload_now(self) -> dict[str, Any]:
        """``daemon.reload``: a reload as ``SIGHUP`` makes one (after start-up, one at a
        time), and what it came to."""
        await self.watching.wait()
        async with self._reloading:
            if self._stop.is_set():
                raise BackendUnavailable("the daemon is stopping: not reloading")
            log.info("reloading the configuration, as a client asked")
            reloaded = await self.reload()
        config_file = self.config.config_file
        return {
            "reloaded": reloaded,
            "error": self.reload_error,
            "configFile": str(config_file) if config_file else None,
            "configLoadedAt": clock.format_ms(self.config_loaded_ms),
            "warnings": list(self.warnings),
        }

    async def reload(self) -> bool:
        """Read the configuration again and apply it (``SIGHUP``); whether it was applied.

        What changes and what waits for a restart: ``simpleaided.app.reload``. A refused
        configuration is shown as a warning, and the running one stays."""
        return await self._reloader.reload()
