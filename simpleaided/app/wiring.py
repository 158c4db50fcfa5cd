"""Wiring: every service built once from the configuration, each given its collaborators
through its constructor.

Two pairs of services need each other: the event hub sends the status document, which is read
from the runs, which announce their changes through the hub; and the watcher tells the run
service what changed on disk, while the run service tells the watcher what to watch. Each
pair is joined by a function that calls a service built a few lines further down (it is
called only once the daemon runs), so no service is completed afterwards by assignment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from simpleaided.app.config import Config, ConfigError
from simpleaided.app.http_access import HttpAccess
from simpleaided.domain.api import artifact_chunk_limit
from simpleaided.domain.llm import LlmBackendSpec
from simpleaided.services.database.connection import DatabaseService, DatabaseSettings
from simpleaided.services.database.grid import GridService
from simpleaided.services.events import EventHub
from simpleaided.services.llm import LlmService
from simpleaided.services.owners import OwnerWatch
from simpleaided.services.runs import RunService
from simpleaided.services.status import SectionProvider, StatusService
from simpleaided.services.terminals import Limits, TerminalService, TerminalSettings
from simpleaided.services.vault import VaultService
from simpleaided.services.warnings import Warnings
from simpleaided.services.watcher import RunWatcher
from simpleaided.services.workspaces import WorkspaceRegistry
from simpleaided.store.snapshot import SnapshotStore
from simpleaided.store.tokenfile import TokenFile
from simpleaided.store.vaultfile import KdfParams, VaultFile
from simpleaided.transports.methods import DaemonFacts, build_methods
from simpleaided.transports.rpc import Dispatcher
from simpleaided.transports.server import RpcServer


@dataclass(frozen=True)
class Services:
    """Everything a daemon serves with."""

    warnings: Warnings
    events: EventHub
    vault: VaultService
    database: DatabaseService
    grid: GridService  # the database grid, on sessions of its own
    terminals: TerminalService
    llm: LlmService
    watcher: RunWatcher
    runs: RunService
    owners: OwnerWatch
    status: StatusService
    http: HttpAccess  # the HTTP shim, when it serves, and its token
    dispatcher: Dispatcher
    server: RpcServer


def build(config: Config, daemon: DaemonFacts) -> Services:
    """Build the services ``config`` asks for; ``daemon`` answers ``daemon.info``.

    ``ConfigError`` if the HTTP shim is enabled but its libraries are not installed.
    """
    max_bytes = config.limits.max_message_bytes
    socket_path = str(config.socket_path)
    warnings = Warnings()

    def document(workspace: str | None) -> dict[str, Any]:
        return status.document(workspace)

    events = EventHub(document)

    def vault_changed() -> None:
        events.section_changed()
        # Secrets may have become available (or gone): probes that need them try again now.
        database.probe_soon()
        llm.probe_soon()

    vault = VaultService(
        VaultFile(config.vault_file),
        idle_seconds=config.vault.idle_lock_seconds,
        max_seconds=config.vault.max_unlock_seconds,
        kdf=kdf(config),
        failed_delay_seconds=config.vault.failed_unlock_delay_seconds,
        on_change=vault_changed,
        warnings=warnings,
    )
    database = DatabaseService(
        database_settings(config),
        resolve_secret=vault.resolve,
        on_change=events.section_changed,
    )
    grid = GridService(database)
    terminals = TerminalService(terminal_settings(config))
    llm = LlmService(
        llm_backends(config),
        probe_seconds=config.llm.probe_seconds,
        timeout_seconds=config.llm.timeout_seconds,
        resolve_secret=vault.resolve,
        on_change=events.section_changed,
    )
    # Written by the run service as it indexes, read by the watcher to skip its own writes.
    signatures: dict[str, int] = {}
    watcher = RunWatcher(
        refresh=lambda workspace, run_id, observed: runs.refresh(workspace, run_id, observed),
        rescan=lambda workspace: runs.rescan(workspace),
        known_runs=lambda workspace: runs.run_ids(workspace),
        signatures=signatures,
        warnings=warnings,
        use_inotify=config.watch.use_inotify,
        poll_seconds=config.watch.poll_seconds,
    )
    runs = RunService(
        WorkspaceRegistry(config.workspaces, config.state_dir, config.flag_workspaces),
        events=events,
        warnings=warnings,
        # The most one artifacts.get reply carries (base64 included); larger artifacts are
        # read in ranges. Text that grows more once escaped in JSON is caught by the
        # dispatcher's reply-size check.
        max_artifact_bytes=artifact_chunk_limit(max_bytes),
        count_pending_as_active=config.runs.count_pending_as_active,
        signatures=signatures,
        watcher=watcher,
        snapshots=SnapshotStore(config.state_dir / "snapshots"),
        socket_path=socket_path,
        on_workspace_served=database.adopt_workspace,
        on_workspace_unserved=database.release_workspace,
    )
    owners = OwnerWatch(runs, interval=config.runs.owner_check_seconds)
    sections: dict[str, SectionProvider] = {
        "vault": vault.section,
        "db": database.section,
        "llm": llm.section,
        "api": lambda: http.section(),
    }
    if config.http.enabled:
        _check_http_extra()
    status = StatusService(
        runs,
        warnings=warnings,
        env=config.env,
        socket_path=socket_path,
        sections=sections,
    )
    token = TokenFile(config.socket_path.parent)  # beside the socket; read once it is claimed

    def make_shim(host: str, port: int) -> Any:
        # Imported here: Starlette and uvicorn are an optional extra, loaded only when used.
        from simpleaided.transports.http import HttpShim

        return HttpShim(
            status,
            events,
            runs.scope,
            host=host,
            port=port,
            allowed_hosts=config.http.allowed_hosts,
            cors_origins=config.http.cors_origins,
            token=token.current,
            public_status=config.http.public_status,
            rpc=server,  # /rpc: the WebSocket is one more connection of the daemon's server
        )

    # The shim is made when the daemon starts (or at http.open), once ``server`` exists.
    http = HttpAccess(
        token,
        make_shim,
        configured=config.http.address if config.http.enabled else None,
        socket_path=socket_path,
        env=config.env,
        on_change=events.section_changed,
    )
    dispatcher = Dispatcher(
        build_methods(
            runs,
            status,
            events,
            daemon,
            vault=vault,
            database=database,
            grid=grid,
            llm=llm,
            http=http,
            terminals=terminals,
        ),
        max_reply_bytes=max_bytes,
    )
    server = RpcServer(
        dispatcher,
        max_message_bytes=max_bytes,
        max_connections=config.limits.max_connections,
    )
    return Services(
        warnings=warnings,
        events=events,
        vault=vault,
        database=database,
        grid=grid,
        terminals=terminals,
        llm=llm,
        watcher=watcher,
        runs=runs,
        owners=owners,
        status=status,
        http=http,
        dispatcher=dispatcher,
        server=server,
    )


def _check_http_extra() -> None:
    """``ConfigError`` unless the HTTP shim's libraries are installed."""
    try:
        import simpleaided.transports.http  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            f"the HTTP shim needs Starlette and uvicorn ({exc.name} is missing): "
            "install the http extra (pip install '.[http]' in simpleaided's source folder)"
        ) from None


def kdf(config: Config) -> KdfParams:
    """The key derivation for new vault files and passphrases."""
    return KdfParams(
        memory_kib=config.vault.kdf_memory_kib,
        iterations=config.vault.kdf_iterations,
        lanes=config.vault.kdf_lanes,
    )


def database_settings(config: Config) -> DatabaseSettings:
    """The database service's settings for the active profile."""
    profile = config.db.PROD if config.env == "PROD" else config.db.DEV
    return DatabaseSettings(
        env=config.env,
        url=profile.url if profile else None,
        password=profile.password if profile else None,
        default_workspace=config.workspaces[0] if config.workspaces else None,
        probe_seconds=config.db.probe_seconds,
        timeout_seconds=config.db.timeout_seconds,
        unsafe_sql=config.db.unsafe_sql and config.env != "PROD",  # never in PROD
    )


def terminal_settings(config: Config) -> TerminalSettings:
    """The terminal service's settings."""
    table = config.terminals
    return TerminalSettings(
        max_terminals=table.max_terminals,
        max_scrollback_total_bytes=table.max_scrollback_total_bytes,
        stop_grace_seconds=table.stop_grace_seconds,
        shell=table.shell,
        limits=Limits(
            scrollback_bytes=table.scrollback_bytes,
            window_bytes=table.flow_window_bytes,
            stall_seconds=table.stall_seconds,
            max_input_bytes=table.max_input_bytes,
            kill_grace_seconds=table.kill_grace_seconds,
            # A replay travels in one message, as base64 (4/3 as large), with the modes.
            max_replay_bytes=max(1024, (config.limits.max_message_bytes - 2048) * 3 // 4),
        ),
    )


def llm_backends(config: Config) -> list[LlmBackendSpec]:
    """The LLM backends the configuration lists."""
    return [
        LlmBackendSpec(b.name, b.kind, b.url, model=b.model, api_key=b.api_key)
        for b in config.llm.backends
    ]
