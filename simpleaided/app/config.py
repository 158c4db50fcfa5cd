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

    [runs]
    count_pending_as_active = false
    owner_check_seconds = 5          # how often the owners of active runs are checked
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from simpleaided.domain.names import check_workspace_path

DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
LogLevel = Literal["debug", "info", "warning", "error"]


class ConfigError(Exception):
    """The configuration cannot be used; the message says where and why."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DaemonSection(_Section):
    socket: Path | None = None
    log_level: LogLevel = "info"
    state_dir: Path | None = None
    shutdown_grace_seconds: float = Field(10.0, ge=0, le=300)


class LimitsSection(_Section):
    max_message_bytes: int = Field(DEFAULT_MAX_MESSAGE_BYTES, ge=4096, le=1 << 30)


class RunsSection(_Section):
    count_pending_as_active: bool = False
    owner_check_seconds: float = Field(5.0, gt=0, le=3600)


class WatchSection(_Section):
    use_inotify: bool = True  # false: watchdog's portable polling observer instead
    poll_seconds: float = Field(5.0, gt=0, le=3600)  # polling, and runs beyond the watch limit


class Config(_Section):
    """The daemon's whole configuration, with every default filled in."""

    env: Literal["DEV", "PROD"] = "DEV"
    workspaces: list[Annotated[str, AfterValidator(check_workspace_path)]] = []
    daemon: DaemonSection = DaemonSection()
    limits: LimitsSection = LimitsSection()
    runs: RunsSection = RunsSection()
    watch: WatchSection = WatchSection()
    config_file: Path | None = None

    @property
    def socket_path(self) -> Path:
        """The socket to serve on (the default one unless configured)."""
        return self.daemon.socket or default_socket_path()

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
}


_PATH_SETTINGS = ("daemon.socket", "daemon.state_dir")


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
) -> Config:
    """Build the configuration.

    ``overrides`` are dotted settings from command-line flags, ``extra_workspaces`` the
    flags' workspaces. Relative paths in the file are relative to the file's folder; in the
    environment and in flags, to the current folder.
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

    cwd = Path.cwd()
    for variable, dotted in ENVIRONMENT.items():
        value = environ.get(variable)
        if value:
            if dotted in _PATH_SETTINGS:
                value = _resolve(cwd, value)
            _set(data, dotted, value.lower() if dotted == "daemon.log_level" else value)
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set(data, dotted, _resolve(cwd, value) if dotted in _PATH_SETTINGS else value)
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
