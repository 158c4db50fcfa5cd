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

import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

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
from simpleaided.domain.names import check_workspace_folder, check_workspace_path
from simpleaided.domain.secrets import VAULT_REF, is_vault_ref, scrub, url_secrets
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


_BACKEND_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_BACKEND_URL = re.compile(r"https?://[^\s]+")


def _check_backend_name(value: str) -> str:
    if not _BACKEND_NAME.fullmatch(value):
        raise ValueError("must be 1 to 64 of A-Z a-z 0-9 . _ -, starting with a letter or digit")
    return value


def _check_backend_url(value: str) -> str:
    if not _BACKEND_URL.fullmatch(value):
        raise ValueError("must be an http:// or https:// URL, without spaces")
    return value


class LlmBackendConfig(_ConfigModel):
    """One ``[[llm.backends]]`` entry: an LLM server to probe."""

    name: Annotated[str, AfterValidator(_check_backend_name)]
    kind: LlmKind
    url: Annotated[str, AfterValidator(_check_backend_url)]
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
            twice = sorted({name for name in names if names.count(name) > 1})
            raise ValueError(
                f"llm.backends: two entries are named {twice[0]!r} (names must be unique)"
            )
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


def _check_listen(value: str) -> str:
    parse_listen(value)
    return value


class HttpConfig(_ConfigModel):
    """The ``[http]`` table: the HTTP shim, where it listens and whom it answers."""

    enabled: bool = False
    listen: Annotated[str, AfterValidator(_check_listen)] = "127.0.0.1:7433"
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
    workspaces: list[
        Annotated[str, AfterValidator(check_workspace_path), AfterValidator(check_workspace_folder)]
    ] = []
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
    # Which of ``workspaces`` the command line gave (``--workspace``), not the file.
    flag_workspaces: list[str] = []

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
    except OSError as exc:
        reason = exc.strerror.lower() if exc.strerror else str(exc)
        raise ConfigError(f"cannot read config file {path}: {reason}") from None
    except tomllib.TOMLDecodeError as exc:
        reason = scrub(str(exc), ())  # tomllib quotes no values; a URL's password stays hidden
        raise ConfigError(
            f"cannot read config file {path}: it is not valid TOML ({reason})"
        ) from None

    if path is not None:
        if isinstance(data.get("workspaces"), list):
            data["workspaces"] = [_resolve(path.parent, w) for w in data["workspaces"]]
        for dotted in _PATH_SETTINGS:
            if _get(data, dotted) is not None:
                _set(data, dotted, _resolve(path.parent, _get(data, dotted)))

    cwd = cwd or Path.cwd()
    # Where each setting not from the file came from (a variable, a flag), for the errors.
    sources: dict[str, str] = {}
    for variable, dotted in ENVIRONMENT.items():
        value = environ.get(variable)
        if value:
            if dotted in _PATH_SETTINGS:
                value = _resolve(cwd, value)
            _set(data, dotted, value.lower() if dotted == "daemon.log_level" else value)
            sources[dotted] = variable
            if dotted == "http.listen":
                _set(data, "http.enabled", True)
                sources["http.enabled"] = variable
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set(data, dotted, _resolve(cwd, value) if dotted in _PATH_SETTINGS else value)
            sources[dotted] = FLAGS.get(dotted, dotted)
            if dotted == "http.listen":
                _set(data, "http.enabled", True)
                sources["http.enabled"] = sources[dotted]
    # The flags' workspaces are served as configured ones, but only the file's are
    # remembered as configured (one a later start without the flag does not serve is not
    # "removed by the config file").
    data["flag_workspaces"] = [_resolve(cwd, w) for w in extra_workspaces or []]
    if extra_workspaces:
        listed = data.get("workspaces", [])
        data["workspaces"] = [
            *(listed if isinstance(listed, list) else [listed]),
            *data["flag_workspaces"],
        ]
    # The secrets ``env`` holds (a URL pasted there by mistake) as written: once upper-cased,
    # neither its scheme nor its password reads as one. They are masked however cased.
    cased: set[str] = set()
    if "env" in data and isinstance(data["env"], str):
        cased = _secrets_in({"env": data["env"]})
        data["env"] = data["env"].upper()
    data["config_file"] = path
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        secrets = _secrets_in(data) | cased
        text = _invalid(exc, path, sources, secrets)
        raise ConfigError(scrub(scrub(text, secrets), cased, ignore_case=True)) from None


# The daemon's flags, by the setting each overrides (``simpleaided --help``).
FLAGS = {
    "env": "--env",
    "daemon.socket": "--socket",
    "daemon.log_level": "--log-level",
    "http.listen": "--http",
}


FILE = "config_file"  # the one field of ``Config`` that is not a setting


def _invalid(
    exc: ValidationError, path: Path | None, sources: Mapping[str, str], secrets: set[str]
) -> str:
    """What is wrong with the settings, in words: each problem names the setting (or the
    variable or flag it came from), says what it must be and what it was (``secrets``
    masked), and a misspelt name gets the one meant."""
    problems: list[str] = []
    seen: set[tuple[Any, ...]] = set()
    from_file = False
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        if loc in seen:  # several errors for one value (a union): its first says enough
            continue
        seen.add(loc)
        source = _source_of(loc, sources)
        from_file = from_file or source is None
        problems.append(_problem(err, loc, source, secrets))
    problems.sort(key=lambda problem: not problem.startswith("unknown setting"))  # misspelt first
    where = f" in {path}" if path is not None and from_file else ""
    return f"invalid configuration{where}: {'; '.join(problems)}"


def _source_of(loc: tuple[Any, ...], sources: Mapping[str, str]) -> str | None:
    """The variable or flag that set the value at ``loc`` (or one inside it), if any."""
    dotted = ".".join(str(part) for part in loc if not isinstance(part, int))
    for setting, source in sources.items():
        if setting == dotted or setting.startswith(f"{dotted}.") or dotted.startswith(setting):
            return source
    return None


def _setting_name(loc: tuple[Any, ...]) -> str:
    """``daemon.log_level``; an entry of a list by its number from 1: ``name of
    llm.backends entry 2``."""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            within = f"{'.'.join(map(str, loc[:i]))} entry {part + 1}"
            rest = loc[i + 1 :]
            return f"{_setting_name(rest)} of {within}" if rest else within
    return ".".join(map(str, loc))


def _shown(value: Any, secrets: set[str]) -> str:
    """A value as the file would spell it, short, its secrets masked first: once cut (or
    upper-cased, as ``env`` is), a secret or a URL's password would no longer be found."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a bound of 0.0 reads as 0
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        value = scrub(value, secrets, ignore_case=True)
        return repr(value if len(value) <= 60 else f"{value[:57]}...")
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return repr(value)[:60]


# What a value of each kind must be, by pydantic's error type.
_MUST_BE = {
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string (in quotes)",
    "path_type": "a path (a string in quotes)",
    "list_type": "a list ([...])",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
}
_BOUNDS = {
    "greater_than_equal": ("ge", "at least"),
    "greater_than": ("gt", "more than"),
    "less_than_equal": ("le", "at most"),
    "less_than": ("lt", "less than"),
}


def _problem(err: Any, loc: tuple[Any, ...], source: str | None, secrets: set[str]) -> str:
    """One problem in words, naming the setting (or ``source``, the variable or flag)."""
    kind: str = err["type"]
    ctx: dict[str, Any] = err.get("ctx") or {}
    # A secret's value is never shown, whatever is wrong with it: what it must be says enough.
    value = err.get("input")
    was = "" if _holds_secret(loc) else f", not {_shown(value, secrets)}"
    name = source or _setting_name(loc)
    if kind == "extra_forbidden":
        *parents, key = loc
        meant = _meant(tuple(parents), str(key))
        if any(isinstance(part, int) for part in parents):  # in an entry of a list
            unknown = f"unknown setting {key!r} in {_setting_name(tuple(parents))}"
            meant = meant and meant.rpartition(".")[2]
        else:
            unknown = f"unknown setting {_setting_name(loc)!r}"
        return f"{unknown} (did you mean {meant!r}?)" if meant else unknown
    if kind == "missing":
        return f"{name} is required"
    if kind in ("literal_error", "enum"):
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        listed = " or ".join(choices) if len(choices) == 2 else ", ".join(choices)
        one_of = "one of " if len(choices) > 2 else ""
        return f"{name} must be {one_of}{listed}{was}"
    if kind in _MUST_BE:
        return f"{name} must be {_MUST_BE[kind]}{was}"
    if kind in _BOUNDS:
        key, words = _BOUNDS[kind]
        return f"{name} must be {words} {_shown(ctx.get(key), secrets)}{was}"
    if kind == "string_too_short":
        return f"{name} must not be empty"
    if kind == "string_too_long":
        return f"{name} must be at most {ctx.get('max_length')} characters long"
    message = str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if message.startswith("must "):
        return f"{name} {message}"
    if source is not None or _is_leaf(loc):
        return f"{name}: {message}"
    return message  # a check across settings, whose message names them


# A setting whose name says it holds a secret, or a URL (whose userinfo or query may hold a
# password): its value is never shown in an error.
_SECRET_NAME = re.compile(r"pass|token|secret|key|credential|auth|url|dsn", re.IGNORECASE)
_URL_NAME = re.compile(r"url|dsn", re.IGNORECASE)


def _holds_secret(loc: tuple[Any, ...]) -> bool:
    """Whether the value at ``loc`` may be or hold a secret: a secret's (or a URL's) setting,
    or a table holding one (``db = "postgresql://u:pw@h/db"`` is a URL where the table goes)."""
    if any(_SECRET_NAME.search(str(part)) for part in loc if not isinstance(part, int)):
        return True
    table = _container(loc)
    return table is not None and _has_secret_setting(table)


def _has_secret_setting(model: type[BaseModel]) -> bool:
    """Whether ``model`` or a table within it has a secret's (or a URL's) setting."""
    for key, field in model.model_fields.items():
        inner = _table_type(field.annotation)
        if _SECRET_NAME.search(key) or (inner is not None and _has_secret_setting(inner)):
            return True
    return False


def _secrets_in(data: Any, loc: tuple[Any, ...] = ()) -> set[str]:
    """The secrets the settings as read hold, valid or not, for ``scrub``: every value that
    ``_holds_secret`` (whole), and the passwords of every URL."""
    if isinstance(data, dict):
        return {s for key, value in data.items() for s in _secrets_in(value, (*loc, str(key)))}
    if isinstance(data, list):
        return {s for i, value in enumerate(data) for s in _secrets_in(value, (*loc, i))}
    found: set[str] = set()
    if isinstance(data, str) and "://" in data:
        found |= url_secrets(data)
    a_url = bool(loc) and _URL_NAME.search(str(loc[-1])) is not None  # only its password is one
    scalar = isinstance(data, str | int | float) and not isinstance(data, bool)
    if scalar and not a_url and _holds_secret(loc):
        found.add(str(data))
    return found


def _container(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The table (model) at ``loc``, or ``None`` if ``loc`` is not one."""
    model: type[BaseModel] = Config
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        inner = _table_type(field.annotation)
        if inner is None:
            return None
        model = inner
    return model


def _table_type(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds (itself, optional, or in a list), or ``None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _table_type(arg)
        if found is not None:
            return found
    return None


def _is_leaf(loc: tuple[Any, ...]) -> bool:
    """Whether ``loc`` names a single setting rather than a table."""
    return _container(loc) is None


def _settings(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every setting's dotted name below ``model`` (tables of lists left out)."""
    names = []
    for key, field in model.model_fields.items():
        if key == FILE:
            continue
        inner = _table_type(field.annotation)
        if inner is not None and get_origin(field.annotation) is not list:
            names.extend(_settings(inner, f"{prefix}{key}."))
        else:
            names.append(f"{prefix}{key}")
    return names


def _meant(parents: tuple[Any, ...], key: str) -> str | None:
    """The setting an unknown ``key`` in the table at ``parents`` was likely meant to be: a
    close name in the same table, else a setting of that name in another table."""
    container = _container(parents)
    siblings = [name for name in (container.model_fields if container else ()) if name != FILE]
    by_case = {name.lower(): name for name in siblings}
    close = difflib.get_close_matches(key.lower(), list(by_case), n=1)
    if close:
        return ".".join(str(part) for part in (*parents, by_case[close[0]]))
    elsewhere = [name for name in _settings(Config) if name.rpartition(".")[2] == key.lower()]
    return elsewhere[0] if len(elsewhere) == 1 else None


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
