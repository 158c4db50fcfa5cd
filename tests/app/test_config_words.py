"""The daemon's configuration errors in the user's words: each names the setting (or the
variable or flag it came from), says what it must be and what it was, and a misspelt name
gets the one meant; at start, on a reload, and on the daemon's own command line. Never
pydantic's words ("Extra inputs are not permitted", "Input should be ...")."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from simpleaided.app.config import Config, ConfigError, load_config
from simpleaided.app.daemon import Daemon
from tests.support.daemon import DAEMON, daemon_env
from tests.support.sandbox import Sandbox

PYDANTIC_WORDS = (
    "Extra inputs",
    "Input should",
    "String should",
    "Value error",
    "Field required",
    "valid integer",
    "Input is not",
    "pattern",
    "<class",
)


def refusal(tmp_path: Path, content: str) -> str:
    """The message of the ``ConfigError`` that the config file ``content`` raises."""
    path = tmp_path / "config.toml"
    path.write_text(content)
    with pytest.raises(ConfigError) as refused:
        load_config(config_file=str(path), environ={})
    message = str(refused.value)
    for words in PYDANTIC_WORDS:
        assert words not in message, message
    return message


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (
            "[daemon]\nsockt = '/x'",
            "unknown setting 'daemon.sockt' (did you mean 'daemon.socket'?)",
        ),
        ("[htpp]\nenabled = true", "unknown setting 'htpp' (did you mean 'http'?)"),
        ("[db.dev]\nurl = '/x.db'", "unknown setting 'db.dev' (did you mean 'db.DEV'?)"),
        ("socket = '/x'", "unknown setting 'socket' (did you mean 'daemon.socket'?)"),
        (
            "[daemon]\nlisten = '7433'",
            "unknown setting 'daemon.listen' (did you mean 'http.listen'?)",
        ),
        (
            "[limits]\nmax_conections = 5",
            "unknown setting 'limits.max_conections' (did you mean 'limits.max_connections'?)",
        ),
        (
            "[[llm.backends]]\nnmae = 'a'\nkind = 'ollama'\nurl = 'http://x'",
            "unknown setting 'nmae' in llm.backends entry 1 (did you mean 'name'?); "
            "name of llm.backends entry 1 is required",
        ),
        ("frobnicate = 1", "unknown setting 'frobnicate'"),
    ],
)
def test_a_misspelt_setting_gets_the_one_meant(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "config.toml"
    assert refusal(tmp_path, content) == f"invalid configuration in {path}: {problem}"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (
            "[daemon]\nlog_level = 'loud'",
            "daemon.log_level must be one of debug, info, warning, error, not 'loud'",
        ),
        ("env = 'staging'", "env must be DEV or PROD, not 'STAGING'"),
        ("[daemon]\nsocket = 5", "daemon.socket must be a path (a string in quotes), not 5"),
        (
            "[limits]\nmax_message_bytes = -1",
            "limits.max_message_bytes must be at least 4096, not -1",
        ),
        (
            "[limits]\nmax_message_bytes = 'lots'",
            "limits.max_message_bytes must be a whole number, not 'lots'",
        ),
        (
            "[limits]\nmax_connections = 1.5",
            "limits.max_connections must be a whole number, not 1.5",
        ),
        ("[terminals]\nstall_seconds = 0", "terminals.stall_seconds must be more than 0, not 0"),
        ("[watch]\nuse_inotify = 2", "watch.use_inotify must be true or false, not 2"),
        ("workspaces = 'x'", "workspaces must be a list ([...]), not 'x'"),
        ("workspaces = ['/a', 5]", "workspaces entry 2 must be a string (in quotes), not 5"),
        ("daemon = 5", "daemon must be a table, not 5"),
        ("[http]\nlisten = 'abc'", "http.listen: 'abc' is not HOST:PORT or PORT"),
        (
            "[[llm.backends]]\nname = 'a b'\nkind = 'llama'\nurl = 'ftp://x'",
            "name of llm.backends entry 1 must be 1 to 64 of A-Z a-z 0-9 . _ -, starting with "
            "a letter or digit; kind of llm.backends entry 1 must be ollama or openai, not "
            "'llama'; url of llm.backends entry 1 must be an http:// or https:// URL, without "
            "spaces",
        ),
        (
            "[[llm.backends]]\nname = 'a'\nkind = 'ollama'\nurl = 'http://x'\n" * 2,
            "llm.backends: two entries are named 'a' (names must be unique)",
        ),
        (
            "[db.DEV]\nurl = 'rel.db'",
            "db.DEV.url must be postgresql://..., vault:NAME, or an absolute SQLite path "
            "(sqlite:///path/file.sqlite3 or /path/file.sqlite3)",
        ),
    ],
)
def test_a_wrong_value_says_what_it_must_be(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "config.toml"
    assert refusal(tmp_path, content) == f"invalid configuration in {path}: {problem}"


def test_a_value_from_a_variable_or_a_flag_is_named_by_it(tmp_path: Path) -> None:
    environ = {"XDG_CONFIG_HOME": str(tmp_path / "none")}
    cases = [
        (
            {"SIMPLEAIDE_LOG_LEVEL": "loud"},
            {},
            "SIMPLEAIDE_LOG_LEVEL must be one of debug, info, warning, error, not 'loud'",
        ),
        (
            {"SIMPLEAIDE_MAX_CONNECTIONS": "many"},
            {},
            "SIMPLEAIDE_MAX_CONNECTIONS must be a whole number, not 'many'",
        ),
        ({"SIMPLEAIDE_HTTP": "abc"}, {}, "SIMPLEAIDE_HTTP: 'abc' is not HOST:PORT or PORT"),
        ({}, {"http.listen": "abc"}, "--http: 'abc' is not HOST:PORT or PORT"),
        (
            {},
            {"http.listen": "0.0.0.0:80"},
            "--http: the HTTP shim listens on loopback only: 0.0.0.0 is not a loopback address "
            "(set http.allow_remote = true to allow it)",
        ),
    ]
    for variables, flags, problem in cases:
        with pytest.raises(ConfigError) as refused:
            load_config(environ={**environ, **variables}, overrides=flags)
        assert str(refused.value) == f"invalid configuration: {problem}"


def test_a_file_that_cannot_be_read_says_why(tmp_path: Path) -> None:
    assert (
        refusal(tmp_path, "x = [")
        == f"cannot read config file {tmp_path / 'config.toml'}: it is not valid TOML "
        "(Invalid value (at end of document))"
    )
    with pytest.raises(ConfigError) as refused:
        load_config(config_file=str(tmp_path), environ={})
    assert str(refused.value) == f"cannot read config file {tmp_path}: is a directory"


# -- the daemon's command line ------------------------------------------------------------------


def simpleaided(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the daemon's command to its end (these runs fail at start-up)."""
    return subprocess.run(
        [*DAEMON, *args],
        env=daemon_env(home),
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["--sockt", "/x"],
            "simpleaided: unrecognized option '--sockt' (did you mean '--socket'?)",
        ),
        (
            ["--workspce", "/x", "--lg-level=info"],
            "simpleaided: unrecognized options '--workspce' (did you mean '--workspace'?), "
            "'--lg-level' (did you mean '--log-level'?)",
        ),
        (
            ["--env", "prd"],
            "simpleaided: error: argument --env: invalid choice: 'PRD' (choose from 'DEV', "
            "'PROD'); did you mean 'PROD'?",
        ),
    ],
)
def test_a_misspelt_flag_gets_the_one_meant(short_tmp: Path, args: list[str], line: str) -> None:
    result = simpleaided(short_tmp, *args)
    assert result.returncode == 2, result
    assert result.stderr.startswith("usage: simpleaided")
    assert result.stderr.splitlines()[-1] == line


def test_a_bad_config_at_start_is_said_in_words(short_tmp: Path) -> None:
    config = short_tmp / "config.toml"
    config.write_text("[daemon]\nsockt = '/x'\nlog_level = 'loud'\n")
    result = simpleaided(short_tmp, "--config", str(config), "--socket", str(short_tmp / "s"))
    assert result.returncode == 2, result
    assert result.stderr == (
        f"simpleaided: invalid configuration in {config}: unknown setting 'daemon.sockt' "
        "(did you mean 'daemon.socket'?); daemon.log_level must be one of debug, info, "
        "warning, error, not 'loud'\n"
    )
    flag = simpleaided(short_tmp, "--http", "localhost:http", "--socket", str(short_tmp / "s"))
    assert flag.returncode == 2, flag
    assert flag.stderr == (
        "simpleaided: invalid configuration: --http: 'localhost:http': the port must be 0-65535\n"
    )


def test_a_socket_path_the_daemon_cannot_use_is_said_in_words(short_tmp: Path) -> None:
    long = short_tmp / ("s" * (120 - len(str(short_tmp)) - 1))
    result = simpleaided(short_tmp, "--socket", str(long))
    assert result.returncode == 1, result
    assert result.stderr.splitlines()[-1] == (
        f"simpleaided: socket path too long (120 bytes; the limit is 107): {long}; use a "
        "shorter --socket (or SIMPLEAIDE_SOCKET, or daemon.socket in the config file), or a "
        "shorter XDG_RUNTIME_DIR"
    )
    assert not long.exists() and not long.with_name(long.name + ".lock").exists()
    proc = simpleaided(short_tmp, "--socket", "/proc/simpleaide-test/daemon.sock")
    assert proc.returncode == 1, proc
    assert proc.stderr.splitlines()[-1] == (
        "simpleaided: cannot create the socket's folder /proc/simpleaide-test (no such file "
        "or directory); choose a socket path in a folder of your own (--socket)"
    )


# -- a reload --------------------------------------------------------------------------------


@pytest.fixture
async def from_file(isolated_env: Path, socket_path: Path) -> AsyncIterator[tuple[Daemon, Path]]:
    """A daemon that reads (and re-reads) a config file."""
    config = isolated_env / "config.toml"
    config.write_text("")
    fixed = {"daemon.socket": str(socket_path), "daemon.state_dir": str(isolated_env / "state")}

    def load() -> Config:
        return load_config(config_file=str(config), overrides=fixed)

    daemon = Daemon(load(), handle_signals=False, load_config=load)
    async with anyio.create_task_group() as tg:
        await tg.start(daemon.run)
        yield daemon, config
        daemon.request_stop()


async def test_a_refused_reload_says_what_is_wrong_in_words(
    from_file: tuple[Daemon, Path],
) -> None:
    daemon, config = from_file
    config.write_text("[runs]\ncount_pending_as_activ = true\n")
    assert not await daemon.reload()
    problem = (
        f"invalid configuration in {config}: unknown setting 'runs.count_pending_as_activ' "
        "(did you mean 'runs.count_pending_as_active'?)"
    )
    assert daemon.info()["reloadError"] == problem
    assert daemon.status.document()["warnings"] == [f"configuration not reloaded: {problem}"]

    config.write_text("[runs]\ncount_pending_as_active = true\n")
    assert await daemon.reload()
    assert daemon.status.document()["warnings"] == []


# -- secrets in a wrong place ------------------------------------------------------------------

# Each: a config file with a secret where it does not belong, the secret, and the problem said.
MISPLACED_SECRETS = [
    (
        "[db.DEV]\nurl = 'sqlite:///x.db'\npassword = 73915524\n",
        "73915524",
        "db.DEV.password must be a string (in quotes)",
    ),
    (
        "[db]\nDEV = 'postgresql://u:Pw-in-url-4e1@h/db'\n",
        "Pw-in-url-4e1",
        "db.DEV must be a table",
    ),
    ("db = 'postgresql://u:Pw-in-db-77c@h/db'\n", "Pw-in-db-77c", "db must be a table"),
    (
        "[[llm.backends]]\nname = 'a'\nkind = 'ollama'\nurl = 'http://x'\napi_key = 55555\n",
        "55555",
        "api_key of llm.backends entry 1 must be a string (in quotes)",
    ),
    (
        "[[llm.backends]]\nname = 'a'\nkind = 'ollama'\nurl = 'ftp://u:Pw-ftp-90d@x'\n",
        "Pw-ftp-90d",
        "url of llm.backends entry 1 must be an http:// or https:// URL, without spaces",
    ),
    (
        "llm = {backends = ['http://u:Pw-entry-3b1@x']}\n",
        "Pw-entry-3b1",
        "llm.backends entry 1 must be a table",
    ),
    (
        # A valid password is masked wherever it shows up, even in another setting's value.
        "[db.DEV]\nurl = 5\npassword = 'Pw-literal-a5f'\n[daemon]\nlog_level = 'Pw-literal-a5f'\n",
        "Pw-literal-a5f",
        "daemon.log_level must be one of debug, info, warning, error, not '***'; "
        "db.DEV.url must be a string (in quotes)",
    ),
]


@pytest.mark.parametrize(("content", "secret", "problem"), MISPLACED_SECRETS)
def test_a_secret_in_a_wrong_place_is_never_shown(
    tmp_path: Path, content: str, secret: str, problem: str
) -> None:
    message = refusal(tmp_path, content)
    assert message == f"invalid configuration in {tmp_path / 'config.toml'}: {problem}"
    assert secret not in message


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (  # long, and upper-cased as env is: masked before either, or nothing would match
            "env = 'postgresql://user:Averyveryverylongpassword1234567890abcdef@db/app'\n",
            "env must be DEV or PROD, not 'POSTGRESQL://USER:***@DB/APP'",
        ),
        (
            "[db.DEV]\nurl = 'sqlite:///x.db'\npassword = 'Pw-long-secret-b7'\n"
            f"[daemon]\nlog_level = '{'x' * 50}Pw-long-secret-b7'\n",
            f"daemon.log_level must be one of debug, info, warning, error, not '{'x' * 50}***'",
        ),
        (
            "env = 'Pw-case-91'\n[db.DEV]\nurl = 'sqlite:///x.db'\npassword = 'Pw-case-91'\n",
            "env must be DEV or PROD, not '***'",
        ),
    ],
)
def test_a_value_is_masked_before_it_is_cut_or_upper_cased(
    tmp_path: Path, content: str, problem: str
) -> None:
    message = refusal(tmp_path, content)
    assert message == f"invalid configuration in {tmp_path / 'config.toml'}: {problem}"


def test_a_misplaced_secret_shows_in_no_output_status_or_log(sandbox: Sandbox) -> None:
    """At start and on a reload: not in the CLI's output, the status document
    (``status.get``), ``daemon.info`` nor the daemon's log."""
    for content, secret, problem in MISPLACED_SECRETS:
        sandbox.configure(content)
        started = sandbox.run("daemon", "start")
        assert started.code != 0, str(started)
        assert problem in started.err, str(started)
        assert secret not in started.stdout + started.err

        sandbox.configure("")
        sandbox.ok("daemon", "start")
        sandbox.configure(content)
        reloaded = sandbox.run("daemon", "reload")
        assert reloaded.code == 1, str(reloaded)
        assert problem in reloaded.err, str(reloaded)
        outputs = [
            reloaded.stdout + reloaded.err,
            sandbox.ok("status", "--json").stdout,
            sandbox.ok("daemon", "status", "--json").stdout,
            sandbox.ok("daemon", "status").stdout,
            sandbox.log.read_text(),
        ]
        for output in outputs:
            assert problem in output, output
            assert secret not in output, output
        sandbox.ok("daemon", "stop")
