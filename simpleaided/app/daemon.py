"""Wiring and lifecycle: claim the socket, load the index, serve, and stop cleanly.

``Daemon.run`` is what both the command and the tests start (``await tg.start(daemon.run)``);
process-wide side effects (signal handlers) are switchable so tests run it in-process.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
from typing import Any

import anyio
from anyio.abc import SocketListener, TaskGroup, TaskStatus

from simpleaided import __version__
from simpleaided.app.config import Config, ConfigError
from simpleaided.domain import clock
from simpleaided.domain.llm import LlmBackendSpec
from simpleaided.services.database import DatabaseService
from simpleaided.services.events import EventHub
from simpleaided.services.llm import LlmService
from simpleaided.services.owners import OwnerWatch
from simpleaided.services.runs import RunService
from simpleaided.services.status import StatusService
from simpleaided.services.vault import VaultService
from simpleaided.services.watcher import RunWatcher
from simpleaided.services.workspaces import WorkspaceRegistry
from simpleaided.store.snapshot import SnapshotStore
from simpleaided.store.vaultfile import KdfParams, VaultFile
from simpleaided.transports.methods import build_methods
from simpleaided.transports.rpc import Dispatcher
from simpleaided.transports.server import RpcServer
from simpleaided.transports.unix_socket import SocketClaim

log = logging.getLogger(__name__)

SNAPSHOT_SECONDS = 60.0


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

    def __init__(self, config: Config, *, handle_signals: bool = True) -> None:
        self.config = config
        self.handle_signals = handle_signals
        max_bytes = config.limits.max_message_bytes
        self.events = EventHub(lambda workspace: self.status.document(workspace))
        self.runs = RunService(
            WorkspaceRegistry(config.workspaces, config.state_dir),
            events=self.events,
            # A bigger file cannot fit in a reply; one that fits raw but not once encoded
            # is caught by the dispatcher's reply-size check.
            max_artifact_bytes=max_bytes,
            count_pending_as_active=config.runs.count_pending_as_active,
        )
        self.owners = OwnerWatch(self.runs, interval=config.runs.owner_check_seconds)
        self.watcher = RunWatcher(
            refresh=self.runs.refresh,
            rescan=self.runs.rescan,
            known_runs=self.runs.run_ids,
            signatures=self.runs.signatures,
            warn=self._warn,
            use_inotify=config.watch.use_inotify,
            poll_seconds=config.watch.poll_seconds,
        )
        self.runs.watcher = self.watcher
        self.runs.snapshots = SnapshotStore(config.state_dir / "snapshots")
        self.vault = VaultService(
            VaultFile(config.vault_file),
            idle_seconds=config.vault.idle_lock_seconds,
            max_seconds=config.vault.max_unlock_seconds,
            kdf=KdfParams(
                memory_kib=config.vault.kdf_memory_kib,
                iterations=config.vault.kdf_iterations,
                lanes=config.vault.kdf_lanes,
            ),
            failed_delay_seconds=config.vault.failed_unlock_delay_seconds,
            on_change=self._vault_changed,
            warn=self._warn,
        )
        profile = config.db.PROD if config.env == "PROD" else config.db.DEV
        self.database = DatabaseService(
            env=config.env,
            url=profile.url if profile else None,
            password=profile.password if profile else None,
            default_workspace=config.workspaces[0] if config.workspaces else None,
            probe_seconds=config.db.probe_seconds,
            timeout_seconds=config.db.timeout_seconds,
            resolve_secret=self.vault.resolve,
            on_change=self.events.section_changed,
        )
        self.llm = LlmService(
            [
                LlmBackendSpec(b.name, b.kind, b.url, model=b.model, api_key=b.api_key)
                for b in config.llm.backends
            ],
            probe_seconds=config.llm.probe_seconds,
            timeout_seconds=config.llm.timeout_seconds,
            resolve_secret=self.vault.resolve,
            on_change=self.events.section_changed,
        )
        self.status = StatusService(
            self.runs,
            env=config.env,
            socket_path=str(config.socket_path),
        )
        self.http: Any = None  # the HTTP shim (transports.http.HttpShim), when enabled
        if config.http.enabled:
            self.http = self._http_shim()
            socket_path = str(config.socket_path)
            self.status.sections["api"] = lambda _now: self.http.section(socket_path)
        self.runs.on_workspace_served = self.database.adopt_workspace
        self.status.sections["vault"] = self.vault.section
        self.status.sections["db"] = lambda _now: self.database.section()
        self.status.sections["llm"] = lambda _now: self.llm.section()
        self.dispatcher = Dispatcher(
            build_methods(
                self.runs,
                self.status,
                self.events,
                self,
                vault=self.vault,
                database=self.database,
                llm=self.llm,
            ),
            max_reply_bytes=max_bytes,
        )
        self.server = RpcServer(self.dispatcher, max_message_bytes=max_bytes)
        self.started_ms = clock.now_ms()
        self._stop = anyio.Event()
        self.watching = anyio.Event()  # set once the loaded workspaces are watched

    def info(self) -> dict[str, Any]:
        """What ``daemon.info`` answers."""
        now = clock.now_ms()
        return {
            "version": __version__,
            "pid": os.getpid(),
            "uid": os.getuid(),
            "socket": str(self.config.socket_path),
            "configFile": str(self.config.config_file) if self.config.config_file else None,
            "env": self.config.env,
            "startedAt": clock.format_ms(self.started_ms),
            "uptimeMs": clock.age_ms(self.started_ms, now),
            "workspaces": len(self.runs.registry),
            "runs": len(self.runs.index),
            "maxMessageBytes": self.config.limits.max_message_bytes,
            "framings": ["ndjson", "content-length"],
            "warnings": list(self.runs.warnings),
            "watcher": self.watcher.report(),
        }

    def _warn(self, message: str) -> None:
        """A lasting problem: logged, and listed in ``daemon.info`` and the status document."""
        log.warning("%s", message)
        if message not in self.runs.warnings:
            self.runs.warnings.append(message)

    def _http_shim(self) -> Any:
        try:
            from simpleaided.transports.http import HttpShim
        except ImportError as exc:
            raise ConfigError(
                f"the HTTP shim needs Starlette and uvicorn ({exc.name} is missing): "
                "pip install 'simpleaided[http]'"
            ) from None
        host, port = self.config.http.address
        return HttpShim(
            self.status,
            self.events,
            self.runs.scope,
            host=host,
            port=port,
            allowed_hosts=self.config.http.allowed_hosts,
            cors_origins=self.config.http.cors_origins,
        )

    def _vault_changed(self) -> None:
        self.events.section_changed()
        # Secrets may have become available (or gone): probes that need them try again now.
        self.database.probe_soon()
        self.llm.probe_soon()

    def request_stop(self) -> None:
        """Begin a graceful stop (what SIGTERM and SIGINT do)."""
        self._stop.set()

    async def run(
        self,
        *,
        claim: SocketClaim | None = None,
        task_status: TaskStatus[Daemon] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve until stopped; ``task_status.started`` once the socket answers."""
        if self.http is not None:
            self.http.bind()  # first: a port in use stops the start before anything is served
        try:
            claim = claim or SocketClaim.bind(self.config.socket_path)
        except BaseException:
            if self.http is not None:
                self.http.close()
            raise
        try:
            listener = await SocketListener.from_socket(claim.sock)
            async with anyio.create_task_group() as tg:
                # Signals first: a stop during a long start-up scan must still clean up.
                if self.handle_signals:
                    tg.start_soon(self._watch_signals)
                tg.start_soon(self._stop_when_asked, tg.cancel_scope)
                await tg.start(self.watcher.run)  # watching before loading: no change is missed
                await self.runs.load()
                await self.vault.load()
                await tg.start(self.vault.run)
                await tg.start(self.owners.run)  # runs whose owner died end before any answer
                await tg.start(self.server.serve, listener)
                if self.http is not None:
                    await tg.start(self.http.serve)
                tg.start_soon(self._after_start, tg)
                log.info(
                    "simpleaided %s serving %s (env %s, %d workspace(s), %d run(s))",
                    __version__,
                    claim.path,
                    self.config.env,
                    len(self.runs.registry),
                    len(self.runs.index),
                )
                task_status.started(self)
        finally:
            with anyio.CancelScope(shield=True):
                await self.database.aclose()
                await self.llm.aclose()
            claim.release()
            if self.http is not None:
                self.http.close()  # bound but never served, if start-up failed before
            log.info("stopped")

    async def _stop_when_asked(self, scope: anyio.CancelScope) -> None:
        await self._stop.wait()
        log.info("stopping: finishing requests in progress")
        await self.server.drain(self.config.daemon.shutdown_grace_seconds)
        with anyio.CancelScope(shield=True):
            await self.runs.save_snapshots()
        scope.cancel()

    async def _after_start(self, tg: TaskGroup) -> None:
        """Once answering: watch what was loaded, then start the database and LLM probes,
        then keep the snapshots recent, so even a crash leaves a fast start behind."""
        await self.runs.watch_loaded()
        self.watching.set()
        saved_at = -1
        probing = False
        while True:
            if self.events.seq != saved_at:
                saved_at = self.events.seq
                await self.runs.save_snapshots()
                # Loading and saving free tens of MB at 100k runs that the C heap would keep.
                await anyio.to_thread.run_sync(_trim_heap)
            if not probing:
                # After the bulk of start-up: probe threads allocating beside the index load
                # left ~9 MB (90 bytes a run at 100k) of fragments the heap could not return.
                probing = True
                await tg.start(self.database.run)
                await tg.start(self.llm.run)
            await anyio.sleep(SNAPSHOT_SECONDS)

    async def _watch_signals(self) -> None:
        signals_wanted = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        with anyio.open_signal_receiver(*signals_wanted) as signals:
            async for signum in signals:
                if signum == signal.SIGHUP:
                    # A terminal hang-up must not kill a foreground daemon abruptly.
                    log.warning(
                        "SIGHUP: reloading the configuration is not supported yet; "
                        "restart the daemon to apply changes"
                    )
                    continue
                log.info("received %s", signal.Signals(signum).name)
                self.request_stop()
