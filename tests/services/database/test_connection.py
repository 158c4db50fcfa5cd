"""The database service against real databases: a SQLite file, and the machine's PostgreSQL
(directly, through a proxy the test stops and restarts, and behind a server that hangs)."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import stat
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from simpleaided.domain.database import DbTarget, default_sqlite_path, parse_target
from simpleaided.domain.errors import (
    BackendUnavailable,
    InvalidInput,
    NotFound,
    ReadOnly,
    VaultLocked,
)
from simpleaided.domain.secrets import SecretResolver
from simpleaided.domain.status import DbSection
from simpleaided.services.database.connection import DatabaseService, DatabaseSettings
from simpleaided.store.sql.postgres import NOT_INSTALLED, pg_error_line
from tests.support.pgproxy import PG_HOST, PG_PORT, TcpProxy


def no_secrets(reference: str) -> str:
    raise NotFound(f"no secret {reference}")


@contextlib.asynccontextmanager
async def database(
    *,
    env: str = "DEV",
    url: str | None = None,
    password: str | None = None,
    workspace: Path | None = None,
    timeout_seconds: float = 3.0,
    resolve: SecretResolver = no_secrets,
    unsafe_sql: bool = False,
    changes: list[dict[str, Any]] | None = None,
    changed: Callable[[], None] = lambda: None,
) -> AsyncIterator[DatabaseService]:
    """A database service, closed (every connection and thread ended) after the block;
    ``changes`` collects the sections it announced."""
    seen = changes if changes is not None else []

    def on_change() -> None:
        seen.append(svc.section())
        changed()

    svc = DatabaseService(
        DatabaseSettings(
            env=env,  # type: ignore[arg-type]  # tests pass the literal profile names
            url=url,
            password=password,
            default_workspace=str(workspace) if workspace else None,
            probe_seconds=60.0,
            timeout_seconds=timeout_seconds,
            unsafe_sql=unsafe_sql,
        ),
        resolve_secret=resolve,
        on_change=on_change,
    )
    try:
        yield svc
    finally:
        await svc.aclose()


def assert_valid(section: dict[str, Any]) -> None:
    DbSection.model_validate(section)


# -- the pure part ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "location"),
    [
        ("sqlite:///srv/data/app.sqlite3", "/srv/data/app.sqlite3"),
        ("/srv/data/app.db", "/srv/data/app.db"),
        ("/srv//data/./app.db", "/srv/data/app.db"),
        ("~/app.db", "/home/tester/app.db"),
    ],
)
def test_sqlite_targets(url: str, location: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/tester")
    assert parse_target(url, "ignored") == DbTarget("sqlite", location, None)


@pytest.mark.parametrize("url", ["postgresql://u@h:5432/db", "postgres://h/db?sslmode=require"])
def test_postgres_targets(url: str) -> None:
    assert parse_target(url, "vault:pg") == DbTarget("postgres", url, "vault:pg")


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("mysql://root:hunter2@db/app", "scheme 'mysql'"),
        ("sqlite://relative/app.db", "absolute path"),
        ("app.db", "unsupported database URL"),
        ("", "unsupported database URL"),
        ("/", "must name a file"),
    ],
)
def test_other_targets_are_refused(url: str, words: str) -> None:
    with pytest.raises(InvalidInput, match=words) as caught:
        parse_target(url, None)
    assert "hunter2" not in caught.value.message


def test_default_sqlite_path() -> None:
    assert default_sqlite_path("/ws", "DEV") == "/ws/.simpleaide/dev.sqlite3"
    assert default_sqlite_path("/ws/", "PROD") == "/ws/.simpleaide/prod.sqlite3"
    assert default_sqlite_path(None, "DEV") is None


@pytest.mark.parametrize(
    ("message", "line"),
    [
        (
            'connection failed: connection to server at "127.0.0.1", port 5999 failed: '
            "Connection refused\n\tIs the server running on that host and accepting TCP/IP "
            "connections?",
            "connection refused (127.0.0.1:5999)",
        ),
        (
            'connection failed: connection to server at "127.0.0.1", port 5432 failed: '
            'FATAL:  password authentication failed for user "x"',
            'password authentication failed for user "x"',
        ),
        (
            "consuming input failed: server closed the connection unexpectedly\n\tThis "
            "probably means the server terminated abnormally",
            "server closed the connection unexpectedly",
        ),
        ("connection timeout expired", "connection timeout expired"),
    ],
)
def test_pg_error_line(message: str, line: str) -> None:
    assert pg_error_line(message) == line


# -- SQLite ---------------------------------------------------------------------------------


async def test_dev_creates_the_default_sqlite_file(tmp_path: Path) -> None:
    changes: list[dict[str, Any]] = []
    async with database(workspace=tmp_path, changes=changes) as db:
        first = db.section()
        assert first["connected"] is False and first["error"] is None
        assert db.section() is first  # the same object until something changes
        section = await db.probe()
        assert_valid(section)
        assert section["connected"] is True
        assert section["type"] == "sqlite"
        assert section["env"] == "DEV"
        assert section["readOnly"] is False
        assert isinstance(section["latencyMs"], float)
        assert section["error"] is None and section["checkedAt"] is not None
        assert db.section() is section

        path = tmp_path / ".simpleaide" / "dev.sqlite3"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700

        await db.execute("CREATE TABLE t(x INTEGER)")
        assert await db.execute("INSERT INTO t VALUES (?), (?)", (1, 2)) == []
        assert await db.execute("SELECT x FROM t ORDER BY x") == [(1,), (2,)]
        with pytest.raises(InvalidInput, match="database error: no such table: nope"):
            await db.execute("SELECT * FROM nope")

        async with anyio.create_task_group() as tg:  # concurrent callers share one probe
            shared: list[dict[str, Any]] = []

            async def probe() -> None:
                shared.append(await db.probe())

            tg.start_soon(probe)
            tg.start_soon(probe)
        again = shared[0]
        assert shared[1] is again and again is not section and again["connected"] is True
        assert changes == [section]  # a latency change is no news for listeners
    with sqlite3.connect(path) as check:  # committed: another connection sees the rows
        assert check.execute("SELECT count(*) FROM t").fetchone() == (2,)
    check.close()


async def test_prod_sqlite_is_read_only_by_the_database_itself(tmp_path: Path) -> None:
    path = tmp_path / "app.sqlite3"
    with sqlite3.connect(path) as setup:
        setup.execute("CREATE TABLE t(x INTEGER)")
        setup.execute("INSERT INTO t VALUES (1)")
    setup.close()
    async with database(env="PROD", url=f"sqlite://{path}") as db:
        section = await db.probe()
        assert_valid(section)
        assert section["connected"] is True and section["readOnly"] is True
        assert await db.execute("SELECT x FROM t") == [(1,)]
        # Refused as SQLite prepares them (the authorizer), before query_only or mode=ro.
        for write, words in (
            ("CREATE TABLE u(x)", "CREATE TABLE"),
            ("INSERT INTO t VALUES (2)", "INSERT into t"),
        ):
            with pytest.raises(ReadOnly, match=f"^read-only in PROD: {words} is not allowed$"):
                await db.execute(write)
        assert db.section()["connected"] is True and db.section()["warnings"] == []
    with sqlite3.connect(path) as check:
        assert check.execute("SELECT count(*) FROM t").fetchone() == (1,)
        assert check.execute("SELECT count(*) FROM sqlite_master").fetchone() == (1,)
    check.close()


@pytest.mark.parametrize("unsafe_sql", [False, True])
async def test_dev_sqlite_attaches_only_when_configured(tmp_path: Path, unsafe_sql: bool) -> None:
    other = tmp_path / "other.sqlite3"
    async with database(url=str(tmp_path / "app.sqlite3"), unsafe_sql=unsafe_sql) as db:
        assert (await db.probe())["connected"] is True
        for statement, undo in (
            (f"ATTACH '{other}' AS other", "DETACH other"),
            (f"VACUUM INTO '{other}'", None),
        ):
            if unsafe_sql:
                await db.execute(statement)
                if undo:
                    await db.execute(undo)
                assert other.exists()
                other.unlink()
            else:
                with pytest.raises(InvalidInput, match=r"is not allowed \(set unsafe_sql = true"):
                    await db.execute(statement)
                assert not other.exists()
        await db.execute("VACUUM")  # a plain VACUUM attaches no file: always allowed in DEV


async def test_prod_never_creates_a_sqlite_file(tmp_path: Path) -> None:
    async with database(env="PROD", workspace=tmp_path) as db:
        section = await db.probe()
    assert_valid(section)
    assert section["connected"] is False and section["readOnly"] is True
    assert section["error"].startswith("database file does not exist")
    assert not (tmp_path / ".simpleaide").exists()

    missing = tmp_path / "missing.sqlite3"
    async with database(env="PROD", url=str(missing)) as db:
        section = await db.probe()
    assert section["error"] == f"database file does not exist: {missing}"
    assert not missing.exists()


async def test_a_symlinked_database_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real.sqlite3"
    sqlite3.connect(real).close()
    link = tmp_path / "link.sqlite3"
    link.symlink_to(real)
    for env in ("DEV", "PROD"):
        async with database(env=env, url=str(link)) as db:
            section = await db.probe()
        assert section["connected"] is False
        assert section["error"] == f"refusing {link}: it is a symlink"

    # The store folder itself planted as a symlink: refused too, nothing created through it.
    workspace = tmp_path / "ws"
    workspace.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (workspace / ".simpleaide").symlink_to(elsewhere)
    async with database(workspace=workspace) as db:
        section = await db.probe()
    assert section["connected"] is False and "symlink" in section["error"]
    assert list(elsewhere.iterdir()) == []


async def test_a_deleted_sqlite_file_is_reopened(tmp_path: Path) -> None:
    async with database(workspace=tmp_path) as db:
        assert (await db.probe())["connected"] is True
        await db.execute("CREATE TABLE t(x)")
        (tmp_path / ".simpleaide" / "dev.sqlite3").unlink()
        assert (await db.probe())["connected"] is True
        assert await db.execute("SELECT name FROM sqlite_master") == []  # a new, empty file


async def test_a_slow_sqlite_statement_is_interrupted(tmp_path: Path) -> None:
    endless = (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n"
    )
    changes: list[dict[str, Any]] = []
    async with database(workspace=tmp_path, timeout_seconds=0.3, changes=changes) as db:
        assert (await db.probe())["connected"] is True
        with anyio.fail_after(1), pytest.raises(BackendUnavailable, match="no answer within 0.3 s"):
            await db.execute(endless)
        assert changes[-1]["connected"] is False
        with anyio.fail_after(1):  # interrupted, so its thread ended: nothing waits for it
            assert (await db.probe())["connected"] is True


async def test_not_configured() -> None:
    async with database() as db:
        assert db.section()["error"] == "not configured"
        section = await db.probe()
        assert_valid(section)
        assert section["connected"] is False and section["error"] == "not configured"
        assert section["type"] is None and section["readOnly"] is False
        with pytest.raises(Exception, match="not connected: not configured"):
            await db.execute("SELECT 1")


async def test_an_invalid_url_is_reported() -> None:
    async with database(url="mysql://root:hunter2@db/app") as db:
        section = await db.probe()
    assert section["connected"] is False
    assert "scheme 'mysql'" in section["error"] and "hunter2" not in section["error"]


# -- PostgreSQL -----------------------------------------------------------------------------


async def test_postgres_dev_reads_and_writes(postgres: str) -> None:
    async with database(url=postgres) as db:
        section = await db.probe()
        assert_valid(section)
        assert section["connected"] is True and section["type"] == "postgres"
        assert section["readOnly"] is False and isinstance(section["latencyMs"], float)
        assert section["warnings"] == []  # a role's reach is checked for read-only sessions
        await db.execute("CREATE TEMP TABLE probe_t(x int)")
        await db.execute("INSERT INTO probe_t VALUES (%s), (%s)", (1, 2))
        assert await db.execute("SELECT x FROM probe_t WHERE x > %s", (1,)) == [(2,)]
        assert await db.execute("SELECT 'a%'") == [("a%",)]  # no parameters: no placeholders
        await db.execute("DROP TABLE probe_t")
        with pytest.raises(InvalidInput, match="database error: .*does not exist"):
            await db.execute("SELECT * FROM probe_t")
        assert db.section()["connected"] is True  # an SQL error leaves the session usable


async def test_postgres_prod_is_read_only_by_the_server(postgres: str) -> None:
    async with database(env="PROD", url=postgres) as db:
        section = await db.probe()
        assert_valid(section)
        assert section["connected"] is True and section["readOnly"] is True
        # The machine's role is a superuser: the section says what it could still do.
        (warning,) = section["warnings"]
        assert "superuser" in warning and "run programs" in warning
        assert await db.execute("SELECT 1") == [(1,)]
        with pytest.raises(ReadOnly, match="cannot execute CREATE TABLE in a read-only"):
            await db.execute("CREATE TABLE never_made(x int)")
        assert await db.execute("SELECT to_regclass('never_made')") == [(None,)]


@pytest.mark.parametrize(
    ("first", "refusal"),
    [
        # Turn the session default off, then write in the next statement.
        ("SET default_transaction_read_only = off", None),
        ("SELECT set_config('default_transaction_read_only', 'off', false)", None),
        ("SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE", None),
        # Or all in one go.
        ("BEGIN READ WRITE; CREATE TABLE never_made(x int); COMMIT", InvalidInput),
        ("SET default_transaction_read_only = off; CREATE TABLE never_made(x int)", InvalidInput),
    ],
)
async def test_prod_read_only_cannot_be_switched_off_through_the_connection(
    postgres: str, first: str, refusal: type[Exception] | None
) -> None:
    async with database(env="PROD", url=postgres) as db:
        await db.probe()
        if refusal is None:
            await db.execute(first)  # allowed, and undone when its transaction rolls back
        else:
            with pytest.raises(refusal, match="one statement at a time"):
                await db.execute(first)
        with pytest.raises(ReadOnly):
            await db.execute("CREATE TABLE never_made(x int)")
        assert await db.execute("SELECT to_regclass('never_made')") == [(None,)]
        assert await db.execute("SHOW default_transaction_read_only") == [("on",)]
        section = await db.probe()
        assert section["connected"] is True and section["readOnly"] is True
        assert await db.execute("SELECT %s::int + 1", [41]) == [(42,)]  # parameters still work
        assert await db.execute("SELECT 'a%'") == [("a%",)]  # and a bare "%" is no placeholder


async def test_a_password_in_the_url_query_never_shows(
    postgres: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for url in (postgres + "?password=top%zzsecret", postgres + "?password=topsecret&x=%zz"):
        async with database(url=url) as db:
            section = await db.probe()
        assert section["connected"] is False
        assert "secret" not in str(section) and "secret" not in caplog.text


async def test_postgres_secrets_from_the_vault(
    postgres: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    password = "pw-Zq81-from-the-vault"
    url_password = "pw-Hx42-inside-the-url"
    secrets = {
        "vault:pg": password,
        "vault:pgurl": f"postgresql://postgres:{url_password}@{PG_HOST}:{PG_PORT}/test",
        "vault:badurl": f"postgresql://postgres:{url_password}@{PG_HOST}:1/test",
    }
    asked: list[str] = []

    def resolve(reference: str) -> str:
        asked.append(reference)
        if reference not in secrets:
            raise NotFound(f"no secret named {reference}")
        return secrets[reference]

    sections = []
    async with database(url=postgres, password="vault:pg", resolve=resolve) as db:
        sections.append(await db.probe())
        assert sections[-1]["connected"] is True
        await db.probe()
    assert asked == ["vault:pg"]  # resolved to connect, not on every probe
    async with database(url="vault:pgurl", resolve=resolve) as db:
        sections.append(await db.probe())
        assert sections[-1]["connected"] is True and sections[-1]["type"] == "postgres"
    async with database(url="vault:badurl", resolve=resolve) as db:
        sections.append(await db.probe())
        assert sections[-1]["error"] == f"connection refused ({PG_HOST}:1)"
    async with database(url=postgres, password="vault:nope", resolve=resolve) as db:
        sections.append(await db.probe())
        assert sections[-1]["error"] == "secret 'nope' not in the vault"
    for section in sections:
        assert_valid(section)
    seen = repr(sections) + caplog.text
    assert password not in seen and url_password not in seen


async def test_a_locked_vault_then_unlocked(postgres: str) -> None:
    unlocked = False

    def resolve(reference: str) -> str:
        if not unlocked:
            raise VaultLocked("the vault is locked")
        return "any-password"

    changes: list[dict[str, Any]] = []
    announced = [anyio.Event()]
    async with database(
        url=postgres,
        password="vault:pg",
        resolve=resolve,
        changes=changes,
        changed=lambda: announced[-1].set(),
    ) as db:
        async with anyio.create_task_group() as tg:
            await tg.start(db.run)
            with anyio.fail_after(5):
                await announced[-1].wait()
            assert changes[-1]["connected"] is False
            assert changes[-1]["error"] == "vault is locked: the database password needs it"
            announced.append(anyio.Event())
            unlocked = True
            db.probe_soon()
            with anyio.fail_after(5):
                await announced[-1].wait()
            assert changes[-1]["connected"] is True
            tg.cancel_scope.cancel()


async def test_postgres_support_not_installed(
    postgres: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # what `import psycopg` sees uninstalled
    async with database(url=postgres) as db:
        section = await db.probe()
    assert section["connected"] is False and section["error"] == NOT_INSTALLED


async def test_a_stopped_server_then_back(postgres: str) -> None:
    timeout = 2.0
    async with TcpProxy((PG_HOST, PG_PORT)) as proxy:
        url = f"postgresql://postgres@127.0.0.1:{proxy.port}/test"
        async with database(url=url, timeout_seconds=timeout) as db:
            assert (await db.probe())["connected"] is True
            await proxy.stop()
            with anyio.fail_after(timeout + 0.5):
                section = await db.probe()
            assert_valid(section)
            assert section["connected"] is False and section["readOnly"] is False
            assert section["error"] == f"connection refused (127.0.0.1:{proxy.port})"
            with pytest.raises(Exception, match="not connected: connection refused"):
                await db.execute("SELECT 1")

            await proxy.start()  # the same port
            with anyio.fail_after(timeout + 0.5):
                section = await db.probe()
            assert section["connected"] is True and section["error"] is None
            assert await db.execute("SELECT 1") == [(1,)]


async def responsive_while(work: Callable[[], Any]) -> tuple[Any, float, float]:
    """Run ``work`` while checking that the loop and ``section()`` stay responsive; returns
    its result, how long it took, and the slowest section() call seen meanwhile."""
    result: list[Any] = []
    slowest = 0.0

    async def run() -> None:
        result.append(await work())

    start = time.monotonic()
    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        while not result:
            tick = time.perf_counter()
            await anyio.sleep(0.01)
            slowest = max(slowest, time.perf_counter() - tick - 0.01)
    return result[0], time.monotonic() - start, slowest


async def test_a_server_that_never_answers(postgres: str) -> None:
    timeout = 1.0
    async with TcpProxy(None) as silent:
        url = f"postgresql://postgres@127.0.0.1:{silent.port}/test"
        async with database(url=url, timeout_seconds=timeout) as db:
            section, took, stall = await responsive_while(db.probe)
            assert took < timeout + 0.5 and stall < 0.1
            assert_valid(section)
            assert section["connected"] is False
            assert section["error"] == "no answer within 1 s"


async def test_a_server_that_hangs_mid_session(postgres: str) -> None:
    timeout = 1.0
    async with TcpProxy((PG_HOST, PG_PORT)) as proxy:
        url = f"postgresql://postgres@127.0.0.1:{proxy.port}/test"
        async with database(url=url, timeout_seconds=timeout) as db:
            assert (await db.probe())["connected"] is True
            proxy.freeze()
            section, took, stall = await responsive_while(db.probe)
            assert took < timeout + 0.5 and stall < 0.1
            assert section["connected"] is False and section["error"] == "no answer within 1 s"
            proxy.thaw()
            # The stuck thread was woken when abandoned: the next probe starts at once.
            with anyio.fail_after(timeout):
                section = await db.probe()
            assert section["connected"] is True, section["error"]

            proxy.freeze()  # a statement is bounded the same way
            with anyio.fail_after(timeout + 0.5):
                with pytest.raises(BackendUnavailable, match="^no answer within 1 s$"):
                    await db.execute("SELECT 1")
            assert db.section()["connected"] is False
            proxy.thaw()
            with anyio.fail_after(timeout):
                assert (await db.probe())["connected"] is True
