"""Configuration: defaults, TOML file, SIMPLEAIDE_* variables and flags, in that order."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from simpleaided.app.config import (
    DEFAULT_MAX_MESSAGE_BYTES,
    ConfigError,
    default_socket_path,
    load_config,
)


def test_no_file_needed(tmp_path: Path) -> None:
    config = load_config(environ={"XDG_CONFIG_HOME": str(tmp_path), "XDG_RUNTIME_DIR": "/run/u"})
    assert config.config_file is None
    assert config.env == "DEV"
    assert config.limits.max_message_bytes == DEFAULT_MAX_MESSAGE_BYTES == 16 * 1024 * 1024
    assert config.workspaces == []


def test_default_socket_path() -> None:
    assert default_socket_path({"XDG_RUNTIME_DIR": "/run/user/7"}) == Path(
        "/run/user/7/simpleaide/daemon.sock"
    )
    assert default_socket_path({}) == Path(f"/tmp/simpleaide-{os.getuid()}/daemon.sock")
    assert default_socket_path({"XDG_RUNTIME_DIR": "relative"}) == Path(
        f"/tmp/simpleaide-{os.getuid()}/daemon.sock"
    )


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    folder = tmp_path / "simpleaide"
    folder.mkdir()
    (folder / "config.toml").write_text(
        'env = "prod"\n'
        'workspaces = ["~/proj", "rel"]\n'
        "[daemon]\n"
        'socket = "/from/file.sock"\n'
        'log_level = "warning"\n'
        "[limits]\n"
        "max_message_bytes = 65536\n"
        "[runs]\n"
        "count_pending_as_active = true\n"
    )
    environ = {"XDG_CONFIG_HOME": str(tmp_path), "HOME": "/home/u"}
    from_file = load_config(environ=environ)
    assert from_file.config_file == folder / "config.toml"
    assert from_file.env == "PROD"
    assert from_file.socket_path == Path("/from/file.sock")
    assert from_file.limits.max_message_bytes == 65536
    assert from_file.runs.count_pending_as_active is True
    assert from_file.workspaces == [str(Path.home() / "proj"), str(folder / "rel")]

    environ |= {"SIMPLEAIDE_SOCKET": "/from/env.sock", "SIMPLEAIDE_ENV": "DEV"}
    from_env = load_config(environ=environ)
    assert from_env.socket_path == Path("/from/env.sock") and from_env.env == "DEV"
    assert from_env.daemon.log_level == "warning"

    flags = load_config(environ=environ, overrides={"daemon.socket": "/from/flag.sock"})
    assert flags.socket_path == Path("/from/flag.sock") and flags.env == "DEV"


def test_simpleaide_config_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "other.toml"
    path.write_text('env = "PROD"\n')
    assert load_config(environ={"SIMPLEAIDE_CONFIG": str(path)}).env == "PROD"
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(environ={"SIMPLEAIDE_CONFIG": str(tmp_path / "missing.toml")})


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("env = 'TEST'", "env"),
        ("[daemon]\nsocket = 5", "daemon.socket"),
        ("[daemon]\ntypo = 1", "daemon.typo"),
        ("[limits]\nmax_message_bytes = -1", "limits.max_message_bytes"),
        ("x = [", "cannot read"),
    ],
)
def test_bad_files_name_the_problem(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_config(config_file=str(path), environ={})


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:abcd/efgh@ijkl@h/db",  # a "/" and an "@" left unescaped
        "POSTGRESQL://u:abcd/efgh@ijkl@h/db",  # a scheme in capitals is a scheme too
        "postgresql://h/db?sslpassword=abcd-efgh-ijkl",  # libpq's reading alone finds it
        "POSTGRESQL://h/db?sslpassword=abcd-efgh-ijkl",
    ],
)
def test_a_url_pasted_as_env_shows_no_piece_of_its_password(tmp_path: Path, url: str) -> None:
    # env is upper-cased before it is checked: its secrets are found as written, and
    # masked however cased.
    path = tmp_path / "c.toml"
    path.write_text(f'env = "{url}"\n')
    with pytest.raises(ConfigError) as failed:
        load_config(config_file=str(path), environ={})
    message = str(failed.value)
    assert "env must be DEV or PROD" in message, message
    for piece in ("ABCD", "EFGH", "IJKL", "abcd", "efgh", "ijkl"):
        assert piece not in message, message


def test_relative_paths_in_the_environment_and_flags_follow_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(
        environ={"XDG_CONFIG_HOME": str(tmp_path / "none"), "SIMPLEAIDE_SOCKET": "s/d.sock"},
        extra_workspaces=["proj", "../other/./x"],
    )
    assert config.socket_path == tmp_path / "s" / "d.sock"
    assert config.workspaces == [str(tmp_path / "proj"), str(tmp_path.parent / "other" / "x")]
    flagged = load_config(environ={}, overrides={"daemon.socket": "f.sock"})
    assert flagged.socket_path == tmp_path / "f.sock"


def test_workspaces_in_the_file_are_normalised(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    path = tmp_path / "conf" / "c.toml"
    path.write_text('workspaces = ["../proj", "/abs/./x/"]\n')
    assert load_config(config_file=str(path), environ={}).workspaces == [
        str(tmp_path / "proj"),
        "/abs/x",
    ]


def test_bad_environment_values_are_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SIMPLEAIDE_MAX_MESSAGE_BYTES must be a whole number"):
        load_config(
            environ={"XDG_CONFIG_HOME": str(tmp_path), "SIMPLEAIDE_MAX_MESSAGE_BYTES": "lots"}
        )


def test_unsafe_sql_is_off_by_default_and_never_reaches_prod(tmp_path: Path) -> None:
    from simpleaided.app.wiring import database_settings

    default = load_config(environ={"XDG_CONFIG_HOME": str(tmp_path / "none")})
    assert default.db.unsafe_sql is False and database_settings(default).unsafe_sql is False
    path = tmp_path / "c.toml"
    path.write_text("[db]\nunsafe_sql = true\n")
    dev = load_config(config_file=str(path), environ={})
    assert dev.db.unsafe_sql is True and database_settings(dev).unsafe_sql is True
    prod = load_config(config_file=str(path), environ={"SIMPLEAIDE_ENV": "PROD"})
    assert prod.env == "PROD" and database_settings(prod).unsafe_sql is False
    path.write_text('[db]\nunsafe_sql = "sometimes"\n')
    with pytest.raises(ConfigError, match="unsafe_sql"):
        load_config(config_file=str(path), environ={})
