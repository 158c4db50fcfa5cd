"""Configuration: defaults, then the TOML file, then ``SIMPLEAIDE_*`` variables, then flags.

No file is needed: the defaults serve. The file lives at
``$XDG_CONFIG_HOME/simpleaide/config.toml`` (``~/.config/...``) unless ``--config`` or
``SIMPLEAIDE_CONFIG`` names another one::

    env = "DEV"                      # or "PROD"
    workspaces = ["~/code/project"]  # served from the start (more via workspaces.add)

    [daemon]
    socket = "/run/user/1000/simpleaide/daemon.sock"
    log_level = "info"
    state_dir = "~/.local/state/simpleaide"

    [limits]
    max_message_bytes = 16777216
    max_connections = 1000           # clients served at once; more are refused (-32040)

    [runs]
    count_pending_as_active = false
    owner_check_seconds = 5          # how often the owners of active runs are checked

    [http]                           # the HTTP shim: the web console and GET /api/status
    enabled = false                  # --http [HOST:]PORT or SIMPLEAIDE_HTTP enable it too
    listen = "127.0.0.1:7433"
    allow_remote = false             # true: a non-loopback address may be listened on
    allowed_hosts = []               # Host names accepted besides the loopback ones
    cors_origins = []                # origins given CORS headers (none by default)
    public_status = false            # true: /api/status and its stream need no token

    [vault]
    file = "~/.local/share/simpleaide/vault.json"
    idle_lock_seconds = 900          # locks after this long unused (0: never)
    max_unlock_seconds = 14400       # and this long after unlocking, used or not (0: never)

    [db]                             # one database per env profile
    probe_seconds = 15
    timeout_seconds = 3
    [db.DEV]                         # default: SQLite in the first workspace's .simpleaide/
    url = "sqlite:///home/me/code/project/.simpleaide/dev.sqlite3"
    [db.PROD]
    url = "postgresql://app@db.internal/app"
    password = "vault:pg-prod"       # a secret from the vault

    [llm]
    probe_seconds = 30
    timeout_seconds = 3
    [[llm.backends]]
    name = "local"
    kind = "ollama"                  # or "openai" (any OpenAI-compatible server)
    url = "http://127.0.0.1:11434"
    model = "llama3.1:8b"            # optional: also check that this model is there
    api_key = "vault:openai-key"     # optional, only as a vault reference

    [terminals]                      # shells on PTYs (simpleaide term, the console's Shell)
    max_terminals = 32               # exited ones still listed count
    scrollback_bytes = 2097152       # replayed on attach
    max_scrollback_total_bytes = 67108864
    max_input_bytes = 65536          # one terminals.input
    flow_window_bytes = 262144       # an interactive client this far behind pauses the program
    stall_seconds = 5                # one that acknowledges nothing this long is not waited for
    kill_grace_seconds = 2           # terminals.kill: HUP, then TERM, then KILL
    stop_grace_seconds = 2           # the daemon's stop: the same for every terminal
    shell = "/bin/zsh"               # default: the login shell (passwd)
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from simpleaided.domain.database import POSTGRES_SCHEMES, SQLITE_SCHEME
from simpleaided.domain.hosts import is_loopback
from simpleaided.domain.names import check_workspace_path
from simpleaided.domain.secrets import VAULT_REF, is_vault_ref
from simpleaided.domain.vocabulary import EnvProfile, LlmKind

DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_CONNECTIONS = 1000
LogLevel = Literal["debug", "info", "warning", "error"]


class ConfigError(Exception):
    """The configuration cannot be used; the message says where and why."""


class _ConfigModel(BaseModel):
    """A part of the configuration: unknown keys refused, frozen once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DaemonConfig(_ConfigModel):
    """The ``[daemon]`` table: the socket, logging, the state folder, shutdown."""

    socket: Path | None = None
    log_level: LogLevel = "info"
    state_dir: Path | None = None
    shutdown_grace_seconds: float = Field(10.0, ge=0, le=300)


class LimitsConfig(_ConfigModel):
    """The ``[limits]`` table: how large a message and how many clients at once."""

    max_message_bytes: int = Field(DEFAULT_MAX_MESSAGE_BYTES, ge=4096, le=1 << 30)
    # Connections served at once; one more gets -32040. Well under the file descriptor
    # limit the daemon raises itself to (the unit's LimitNOFILE=), so that the cap, not
    # running out of descriptors, is what a flood of clients meets.
    max_connections: int = Field(DEFAULT_MAX_CONNECTIONS, ge=1, le=1_000_000)


class TerminalsConfig(_ConfigModel):
    """The ``[terminals]`` table: how many terminals, how much they keep, how they stop."""

    max_terminals: int = Field(32, ge=1, le=1000)  # exited ones still listed count
    scrollback_bytes: int = Field(2 * 1024 * 1024, ge=64 * 1024, le=64 * 1024 * 1024)
    max_scrollback_total_bytes: int = Field(64 * 1024 * 1024, ge=64 * 1024, le=1 << 34)
    max_input_bytes: int = Field(64 * 1024, ge=1024, le=4 * 1024 * 1024)
    # An interactive client this far behind pauses the program (flow control).
    flow_window_bytes: int = Field(256 * 1024, ge=16 * 1024, le=16 * 1024 * 1024)
    stall_seconds: float = Field(5.0, gt=0, le=3600)  # then it is no longer waited for
    kill_grace_seconds: float = Field(2.0, ge=0, le=300)  # terminals.kill: HUP, TERM, KILL
    stop_grace_seconds: float = Field(2.0, ge=0, le=60)  # the daemon's stop: the same
    shell: str | None = None  # instead of the user's login shell

    @model_validator(mode="after")
    def _window_inside_scrollback(self) -> TerminalsConfig:
        if self.flow_window_bytes >= self.scrollback_bytes:
            raise ValueError(
                "terminals.flow_window_bytes must be smaller than terminals.scrollback_bytes"
            )
        return self


class RunsConfig(_ConfigModel):
    """The ``[runs]`` table: what counts as active, how often owners are checked."""

    count_pending_as_active: bool = False
    owner_check_seconds: float = Field(5.0, gt=0, le=3600)


class WatchConfig(_ConfigModel):
    """The ``[watch]`` table: how the run stores are watched for changes."""

    use_inotify: bool = True  # false: watchdog's portable polling observer instead
    poll_seconds: float = Field(5.0, gt=0, le=3600)  # polling, and runs beyond the watch limit


def _check_secret_ref(value: str | None) -> str | None:
    if value is not None and not is_vault_ref(value):
        raise ValueError("must be a vault reference, 'vault:NAME' (never the secret itself)")
    return value


class VaultConfig(_ConfigModel):
    """The ``[vault]`` table: the vault file, when it locks, how new keys are derived."""

    file: Path | None = None
    idle_lock_seconds: float = Field(900.0, ge=0, le=30 * 86400)
    max_unlock_seconds: float = Field(14400.0, ge=0, le=30 * 86400)
    # Argon2id for new vault files and passphrase changes (an existing file keeps its own).
    kdf_memory_kib: int = Field(131072, ge=8 * 1024, le=1024 * 1024)  # as vault files allow
    kdf_iterations: int = Field(3, ge=1, le=10)
    kdf_lanes: int = Field(4, ge=1, le=64)
    # The wait before the attempt after a wrong passphrase; it doubles per failure (max 30 s).
    failed_unlock_delay_seconds: float = Field(0.5, ge=0.01, le=30)


def _check_db_url(value: str) -> str:
    if value.startswith((*POSTGRES_SCHEMES, VAULT_REF)):
        return value
    path = value.removeprefix(SQLITE_SCHEME)
    if not os.path.isabs(os.path.expanduser(path)):
        raise ValueError(
            "must be postgresql://..., vault:NAME, or an absolute SQLite path "
            "(sqlite:///path/file.sqlite3 or /path/file.sqlite3)"
        )
    return value


class DbProfile(_ConfigModel):
    """One profile's database: its URL and password (either may be a vault reference)."""

    # sqlite:///path, an absolute path, postgresql://..., or vault:NAME (the whole URL secret)
    url: Annotated[str, AfterValidator(_check_db_url)]
    password: str | None = None  # a PostgreSQL password, as a vault reference or literally


class DbConfig(_ConfigModel):
    """The ``[db]`` table: a database per profile, and how often and long it is probed."""

    probe_seconds: float = Field(15.0, gt=0, le=3600)
    timeout_seconds: float = Field(3.0, gt=0, le=60)
    # Allow ATTACH, VACUUM INTO and extension loading in DEV (SQLite); PROD never allows them.
    unsafe_sql: bool = False
    DEV: DbProfile | None = None
    PROD: DbProfile | None = None


class LlmBackendConfig(_ConfigModel):
    """One ``[[llm.backends]]`` entry: an LLM server to probe."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    kind: LlmKind
    url: str = Field(pattern=r"^https?://[^\s]+$")
    model: str | None = Field(None, min_length=1, max_length=200)
    api_key: Annotated[str | None, AfterValidator(_check_secret_ref)] = None


class LlmConfig(_ConfigModel):
    """The ``[llm]`` table: the backends, and how often and long they are probed."""

    probe_seconds: float = Field(30.0, gt=0, le=3600)
    timeout_seconds: float = Field(3.0, gt=0, le=60)
    backends: list[LlmBackendConfig] = []

    @model_validator(mode="after")
    def _names_unique(self) -> LlmConfig:
        names = [b.name for b in self.backends]
        if len(names) != len(set(names)):
            raise ValueError("backend names must be unique")
        return self


def _is_ascii_number(text: str) -> bool:
    # ``isdigit`` alone takes any script's digits (``٨``, ``８``) and superscripts (``²``).
    return text.isascii() and text.isdigit()


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[IPV6]:PORT`` or ``PORT`` (on 127.0.0.1) as ``(host, port)``."""
    text = value.strip()
    if _is_ascii_number(text):
        host, port = "127.0.0.1", text
    elif text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            raise ValueError(f"{value!r} is not [IPV6]:PORT")
    else:
        host, sep, port = text.rpartition(":")
        if not sep or not host:
            raise ValueError(f"{value!r} is not HOST:PORT or PORT")
    if not _is_ascii_number(port) or not 0 <= int(port) <= 65535:
        raise ValueError(f"{value!r}: the port must be 0-65535")
    return host, int(port)


class HttpConfig(_ConfigModel):
    """The ``[http]`` table: the HTTP shim, where it listens and whom it answers."""

    enabled: bool = False
    listen: str = "127.0.0.1:7433"
    allow_remote: bool = False
    allowed_hosts: list[str] = []
    cors_origins: list[str] = []
    # The read-only status routes answer without the token (for status bars that curl them).
    public_status: bool = False

    @model_validator(mode="after")
    def _loopback_unless_allowed(self) -> HttpConfig:
        host, _ = parse_listen(self.listen)
        if not self.allow_remote and not is_loopback(host):
            raise ValueError(
                f"the HTTP shim listens on loopback only: {host} is not a loopback address "
                "(set http.allow_remote = true to allow it)"
            )
        return self

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` to listen on."""
        return parse_listen(self.listen)


class Config(_ConfigModel):
    """The daemon's whole configuration, with every default filled in."""

    env: EnvProfile = "DEV"
    workspaces: list[Annotated[str, AfterValidator(check_workspace_path)]] = []
    daemon: DaemonConfig = DaemonConfig()
    limits: LimitsConfig = LimitsConfig()
    runs: RunsConfig = RunsConfig()
    watch: WatchConfig = WatchConfig()
    http: HttpConfig = HttpConfig()
    vault: VaultConfig = VaultConfig()
    db: DbConfig = DbConfig()
    llm: LlmConfig = LlmConfig()
    terminals: TerminalsConfig = TerminalsConfig()
    config_file: Path | None = None

    @property
    def socket_path(self) -> Path:
        """The socket to serve on (the default one unless configured)."""
        return self.daemon.socket or default_socket_path()

    @property
    def vault_file(self) -> Path:
        """The vault's file (``$XDG_DATA_HOME/simpleaide/vault.json`` unless configured)."""
        data_home = _xdg("XDG_DATA_HOME", ".local/share")
        return self.vault.file or data_home / "simpleaide" / "vault.json"

    @property
    def state_dir(self) -> Path:
        """Where the daemon remembers things between runs (added workspaces)."""
        return self.daemon.state_dir or _xdg("XDG_STATE_HOME", ".local/state") / "simpleaide"


def _xdg(variable: str, fallback: str, environ: Mapping[str, str] = os.environ) -> Path:
    value = environ.get(variable)
    if value and os.path.isabs(value):
        return Path(value)
    return Path.home() / fallback


def default_socket_path(environ: Mapping[str, str] = os.environ) -> Path:
    """``$XDG_RUNTIME_DIR/simpleaide/daemon.sock``, else ``/tmp/simpleaide-<uid>/daemon.sock``."""
    runtime = environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime):
        return Path(runtime) / "simpleaide" / "daemon.sock"
    return Path(f"/tmp/simpleaide-{os.getuid()}") / "daemon.sock"


def default_config_path(environ: Mapping[str, str] = os.environ) -> Path:
    """``$XDG_CONFIG_HOME/simpleaide/config.toml``."""
    return _xdg("XDG_CONFIG_HOME", ".config", environ) / "simpleaide" / "config.toml"


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for key in parents:
        data = data.setdefault(key, {})
    data[leaf] = value


# Environment variables and the setting each overrides.
ENVIRONMENT = {
    "SIMPLEAIDE_ENV": "env",
    "SIMPLEAIDE_SOCKET": "daemon.socket",
    "SIMPLEAIDE_LOG_LEVEL": "daemon.log_level",
    "SIMPLEAIDE_STATE_DIR": "daemon.state_dir",
    "SIMPLEAIDE_MAX_MESSAGE_BYTES": "limits.max_message_bytes",
    "SIMPLEAIDE_MAX_CONNECTIONS": "limits.max_connections",
    "SIMPLEAIDE_VAULT_FILE": "vault.file",
    "SIMPLEAIDE_HTTP": "http.listen",  # and enables the shim
}


_PATH_SETTINGS = ("daemon.socket", "daemon.state_dir", "vault.file")


def _get(data: dict[str, Any], dotted: str) -> Any:
    for key in dotted.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(key)  # type: ignore[assignment]
    return data


def _resolve(base: Path, value: Any) -> Any:
    """``value`` as an absolute, normalised path relative to ``base`` (if it is a string)."""
    if not isinstance(value, str):
        return value
    return os.path.normpath(base / Path(value).expanduser())


def load_config(
    *,
    config_file: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    extra_workspaces: list[str] | None = None,
    environ: Mapping[str, str] = os.environ,
    cwd: Path | None = None,
) -> Config:
    """Build the configuration.

    ``overrides`` are dotted settings from command-line flags, ``extra_workspaces`` the
    flags' workspaces. Relative paths in the file are relative to the file's folder; in the
    environment and in flags, to ``cwd`` (the current folder by default).
    """
    explicit = config_file or environ.get("SIMPLEAIDE_CONFIG")
    path = Path(explicit).expanduser() if explicit else default_config_path(environ)
    data: dict[str, Any] = {}
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"config file {path} does not exist") from None
        path = None  # type: ignore[assignment]  # defaults serve
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None

    if path is not None:
        if isinstance(data.get("workspaces"), list):
            data["workspaces"] = [_resolve(path.parent, w) for w in data["workspaces"]]
        for dotted in _PATH_SETTINGS:
            if _get(data, dotted) is not None:
                _set(data, dotted, _resolve(path.parent, _get(data, dotted)))

    cwd = cwd or Path.cwd()
    for variable, dotted in ENVIRONMENT.items():
        value = environ.get(variable)
        if value:
            if dotted in _PATH_SETTINGS:
                value = _resolve(cwd, value)
            _set(data, dotted, value.lower() if dotted == "daemon.log_level" else value)
            if dotted == "http.listen":
                _set(data, "http.enabled", True)
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set(data, dotted, _resolve(cwd, value) if dotted in _PATH_SETTINGS else value)
            if dotted == "http.listen":
                _set(data, "http.enabled", True)
    if extra_workspaces:
        listed = data.get("workspaces", [])
        data["workspaces"] = [
            *(listed if isinstance(listed, list) else [listed]),
            *(_resolve(cwd, w) for w in extra_workspaces),
        ]
    if "env" in data and isinstance(data["env"], str):
        data["env"] = data["env"].upper()
    data["config_file"] = path
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
            for err in exc.errors(include_url=False)
        )
        where = f"in {path}" if path is not None else "in the settings"
        raise ConfigError(f"invalid configuration {where}: {problems}") from None


# Settings a running daemon cannot take on a reload: the socket and state it holds, the
# watcher it built, the HTTP listener it bound, the vault file it reads, the message limit
# its connections were made with. (``limits.max_connections`` applies to the next
# connection, so a reload changes it.)
RESTART_ONLY = (
    "daemon.socket",
    "daemon.state_dir",
    "limits.max_message_bytes",
    "watch",
    "http",
    "vault.file",
)


def carry_restart_only(running: Config, loaded: Config) -> tuple[Config, list[str]]:
    """``loaded`` with the restart-only settings kept as ``running`` has them, and the names
    of those that differed (they take effect at the next start)."""
    old = running.model_dump()
    data = loaded.model_dump()
    differing = []
    for dotted in RESTART_ONLY:
        if _get(old, dotted) != _get(data, dotted):
            differing.append(dotted)
            _set(data, dotted, _get(old, dotted))
    return Config.model_validate(data), differing
