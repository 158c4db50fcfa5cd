"""PROD read-only in depth, below the daemon's own refusal: each statement is sent straight to
the session the daemon uses (``execute`` and ``query``), and the database itself refuses it and
is unchanged afterwards. SQLite on a real file, and the machine's PostgreSQL (a schema of its
own per test). In DEV, what reaches outside the database file is refused unless configured."""

from __future__ import annotations

import hashlib
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from psycopg.conninfo import make_conninfo

from simpleaided.domain.errors import InvalidInput, ReadOnly, SimpleaideError
from simpleaided.store.sql import Session
from simpleaided.store.sql.catalog import describe, find_table, tables
from simpleaided.store.sql.postgres import open_postgres
from simpleaided.store.sql.sqlite import open_sqlite

ONE_AT_A_TIME = "one statement at a time"
MULTIPLE_COMMANDS = "one statement at a time"


def both_ways(session: Session) -> list[Callable[[str], object]]:
    """The two ways the daemon sends SQL: its own statements, and the SQL console's."""
    return [lambda sql: session.execute(sql, ()), lambda sql: session.query(sql, (), 100)]


# --- SQLite ------------------------------------------------------------------------------------


def make_sqlite(path: Path) -> None:
    with sqlite3.connect(path) as setup:
        setup.executescript(
            """
            CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
            CREATE TABLE t (id INTEGER PRIMARY KEY, note TEXT,
                            parent_id INTEGER REFERENCES parent (id));
            CREATE INDEX t_note ON t (note);
            CREATE VIEW v AS SELECT id, note FROM t;
            INSERT INTO parent VALUES (1, 'p');
            INSERT INTO t VALUES (1, 'keep me', 1), (2, 'me too', NULL);
            ANALYZE;
            """
        )
    setup.close()


def fingerprint(folder: Path) -> dict[str, str]:
    """Every file in the folder and a hash of its bytes: unchanged means nothing was written."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture
def prod_file(tmp_path: Path) -> Iterator[tuple[Session, Path]]:
    folder = tmp_path / "data"
    folder.mkdir()
    make_sqlite(folder / "app.sqlite3")
    session = open_sqlite(str(folder / "app.sqlite3"), read_only=True, in_store=False, timeout=5)
    try:
        yield session, folder
    finally:
        session.close()


def sqlite_prod_refusals(elsewhere: Path) -> list[tuple[str, type[SimpleaideError], str]]:
    return [
        ("INSERT INTO t VALUES (3, 'new', NULL)", ReadOnly, "read-only in PROD: INSERT into t"),
        ("UPDATE t SET note = 'changed'", ReadOnly, "read-only in PROD: UPDATE of t"),
        ("WITH x AS (SELECT 1) DELETE FROM t", ReadOnly, "read-only in PROD: DELETE from t"),
        ("DROP TABLE t", ReadOnly, "read-only in PROD: DROP TABLE"),
        ("CREATE TABLE u (a)", ReadOnly, "read-only in PROD: CREATE TABLE"),
        ("CREATE TEMP TABLE u (a)", ReadOnly, "read-only in PROD: CREATE TEMP TABLE"),
        ("ALTER TABLE t ADD COLUMN b", ReadOnly, "read-only in PROD: ALTER TABLE"),
        ("CREATE INDEX i ON t (parent_id)", ReadOnly, "read-only in PROD: CREATE INDEX"),
        ("REINDEX t_note", ReadOnly, "read-only in PROD: REINDEX"),
        ("ANALYZE", ReadOnly, "read-only in PROD: ANALYZE"),
        (f"SELECT 1; ATTACH '{elsewhere}' AS x", InvalidInput, ONE_AT_A_TIME),
        ("SELECT 1; SELECT 2", InvalidInput, ONE_AT_A_TIME),
        (f"ATTACH '{elsewhere}' AS x", ReadOnly, "read-only in PROD: ATTACH is not allowed"),
        ("ATTACH ':memory:' AS x", ReadOnly, "read-only in PROD: ATTACH is not allowed"),
        (f"VACUUM INTO '{elsewhere}'", ReadOnly, "read-only in PROD: VACUUM INTO is not allowed"),
        ("VACUUM", ReadOnly, "read-only in PROD: VACUUM is not allowed"),
        ("PRAGMA query_only = 0", ReadOnly, "read-only in PROD: setting PRAGMA query_only"),
        ("PRAGMA query_only(0)", ReadOnly, "read-only in PROD: setting PRAGMA query_only"),
        ("PRAGMA main.query_only = OFF", ReadOnly, "read-only in PROD: setting PRAGMA query_only"),
        (
            "PRAGMA schema_version = 99",
            ReadOnly,
            "read-only in PROD: setting PRAGMA schema_version",
        ),
        ("PRAGMA user_version = 7", ReadOnly, "read-only in PROD: setting PRAGMA user_version"),
        ("PRAGMA writable_schema = ON", ReadOnly, "read-only in PROD: PRAGMA writable_schema"),
        ("PRAGMA journal_mode = WAL", ReadOnly, "read-only in PROD: PRAGMA journal_mode"),
        (
            "SELECT load_extension('/nonexistent/evil')",
            ReadOnly,
            "read-only in PROD: the function load_extension() is not allowed",
        ),
        ("BEGIN IMMEDIATE", ReadOnly, "read-only in PROD: BEGIN (transaction control)"),
        ("SAVEPOINT s", ReadOnly, "read-only in PROD: SAVEPOINT (transaction control)"),
        # Let through as a table-valued function's quirk, stopped by SQLite itself.
        ("UPDATE sqlite_master SET sql = 'x'", InvalidInput, "sqlite_master may not be modified"),
    ]


def test_sqlite_prod_refuses_every_write_and_stays_unchanged(
    prod_file: tuple[Session, Path], tmp_path: Path
) -> None:
    session, folder = prod_file
    before = fingerprint(folder)
    elsewhere = tmp_path / "copy.sqlite3"
    for send in both_ways(session):
        for sql, error, words in sqlite_prod_refusals(elsewhere):
            with pytest.raises(error) as caught:
                send(sql)
            assert caught.value.message.startswith(words) or words in caught.value.message, sql
            assert "Traceback" not in caught.value.message
            # Still read-only, still reading.
            assert session.execute("PRAGMA query_only", ()) == [(1,)]
            assert session.execute("SELECT count(*) FROM t", ()) == [(2,)]
    assert not elsewhere.exists()
    assert session.execute("SELECT * FROM pragma_database_list", ())[0][1] == "main"
    assert [r[1] for r in session.execute("PRAGMA database_list", ())] == ["main"]
    assert fingerprint(folder) == before
    assert session.check()[1] is True


def test_sqlite_prod_attaches_nothing_even_past_the_authorizer(
    prod_file: tuple[Session, Path],
) -> None:
    session, _ = prod_file
    # A second wall behind the authorizer: SQLite's own limit on attached databases.
    conn = session._conn  # type: ignore[attr-defined]  # the limit is not observable otherwise
    assert conn.getlimit(sqlite3.SQLITE_LIMIT_ATTACHED) == 0


def test_sqlite_prod_reads(prod_file: tuple[Session, Path]) -> None:
    session, folder = prod_file
    before = fingerprint(folder)
    reads = [
        ("SELECT note FROM t ORDER BY id", [("keep me",), ("me too",)]),
        ("SELECT count(*) FROM v", [(2,)]),
        (
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) "
            "SELECT group_concat(n) FROM r",
            [("1,2,3",)],
        ),
        ("SELECT upper(note), length(note), json_array(id) FROM t WHERE id = 1", None),
        ("SELECT value FROM json_each('[1, 2]')", [(1,), (2,)]),
        ("PRAGMA table_info(t)", None),
        ("PRAGMA main.index_list('t')", None),
        ("PRAGMA foreign_key_list(t)", None),
        ("PRAGMA schema_version", None),
        ("PRAGMA compile_options", None),
        ("SELECT name FROM pragma_table_list WHERE schema = 'main' ORDER BY name", None),
        ("SELECT tbl FROM sqlite_stat1 ORDER BY tbl LIMIT 1", None),
        ("SELECT 'DELETE FROM t; ATTACH x'", [("DELETE FROM t; ATTACH x",)]),
    ]
    for sql, expected in reads:
        rows = session.execute(sql, ())
        assert rows, sql
        if expected is not None:
            assert rows == expected
        assert session.query(sql, (), 100).rows == rows
    assert fingerprint(folder) == before


def test_the_catalogue_works_on_a_prod_sqlite_session(prod_file: tuple[Session, Path]) -> None:
    prod, folder = prod_file
    dev = open_sqlite(str(folder / "app.sqlite3"), read_only=False, in_store=False, timeout=5)
    try:
        expected_tables = tables(dev)
        expected = {name: describe(dev, None, name) for name in ("t", "parent", "v")}
    finally:
        dev.close()
    before = fingerprint(folder)
    found = tables(prod)
    assert found == expected_tables
    assert {t.name: (t.key, t.row_estimate) for t in found} == {
        "parent": (["id"], 1),
        "t": (["id"], 2),
        "v": (None, None),
    }
    for name, description in expected.items():
        assert describe(prod, None, name) == description
    assert describe(prod, "main", "t").foreign_keys[0].ref_table == "parent"
    assert [i.name for i in describe(prod, "main", "t").indexes] == ["t_note"]
    assert find_table(prod, None, "v") == ("main", "v", "view")
    latency, read_only = prod.check()
    assert read_only is True and latency >= 0
    assert prod.risks() == []
    assert fingerprint(folder) == before


@pytest.mark.parametrize("unsafe_sql", [False, True])
def test_sqlite_dev_reaches_outside_the_file_only_when_configured(
    tmp_path: Path, unsafe_sql: bool
) -> None:
    path = tmp_path / "dev.sqlite3"
    make_sqlite(path)
    other = tmp_path / "other.sqlite3"
    session = open_sqlite(
        str(path), read_only=False, in_store=False, timeout=5, unsafe_sql=unsafe_sql
    )
    try:
        session.execute("INSERT INTO t VALUES (3, 'dev writes', NULL)", ())  # DEV is writable
        session.execute("VACUUM", ())  # attaches no file: allowed either way
        for send in both_ways(session):
            for sql, words in [
                (f"ATTACH '{other}' AS other", "ATTACH"),
                (f"VACUUM INTO '{other}'", "VACUUM INTO"),
            ]:
                if unsafe_sql:
                    send(sql)
                    assert other.exists()
                    if sql.startswith("ATTACH"):
                        session.execute("DETACH other", ())
                    other.unlink()
                else:
                    with pytest.raises(InvalidInput) as caught:
                        send(sql)
                    assert caught.value.message == (
                        f"{words} is not allowed "
                        "(set unsafe_sql = true in the [db] table to allow it in DEV)"
                    )
                    assert not other.exists()
            load = "SELECT load_extension('/nonexistent/evil')"
            with pytest.raises(InvalidInput) as caught:
                send(load)  # no such file, or extension loading not built into this Python
            refused_by_us = "unsafe_sql" in caught.value.message
            assert refused_by_us is not unsafe_sql
        assert session.execute("SELECT count(*) FROM t", ()) == [(3,)]
        assert session.risks() == []
    finally:
        session.close()


# --- PostgreSQL --------------------------------------------------------------------------------


@pytest.fixture
def pg_schema(postgres: str) -> Iterator[tuple[Session, str]]:
    """A DEV session (to set up and to look afterwards) and a fresh schema with a table."""
    dev = open_postgres(postgres, None, read_only=False, timeout=5)
    schema = f"ro_{uuid.uuid4().hex[:12]}"
    try:
        dev.execute(f"CREATE SCHEMA {schema}", ())
        dev.execute(f"CREATE TABLE {schema}.t (id int PRIMARY KEY, note text)", ())
        dev.execute(f"INSERT INTO {schema}.t VALUES (1, 'keep me'), (2, 'me too')", ())
        yield dev, schema
    finally:
        dev.execute(f"DROP SCHEMA {schema} CASCADE", ())
        dev.close()


def pg_state(dev: Session, schema: str) -> object:
    """What a write would change: the table's rows and the schema's relations."""
    return (
        dev.execute(f"SELECT id, note FROM {schema}.t ORDER BY id", ()),
        dev.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s ORDER BY 1",
            (schema,),
        ),
    )


def assert_still_read_only(prod: Session, schema: str) -> None:
    assert prod.execute("SHOW default_transaction_read_only", ()) == [("on",)]
    with pytest.raises(ReadOnly, match="read-only transaction"):
        prod.execute(f"INSERT INTO {schema}.t VALUES (9, 'next statement')", ())
    with pytest.raises(ReadOnly, match="read-only transaction"):
        prod.query(f"DELETE FROM {schema}.t", (), 100)
    assert prod.execute("SELECT count(*) FROM pg_class WHERE relpersistence = 't'", ()) == [(0,)]


def test_postgres_prod_refuses_every_write_and_stays_unchanged(
    postgres: str, pg_schema: tuple[Session, str]
) -> None:
    dev, schema = pg_schema
    before = pg_state(dev, schema)
    prod = open_postgres(postgres, None, read_only=True, timeout=5)
    try:
        for send in both_ways(prod):
            refused: list[tuple[str, type[SimpleaideError], str]] = [
                (f"INSERT INTO {schema}.t VALUES (3, 'x')", ReadOnly, "INSERT in a read-only"),
                (f"COMMIT; DELETE FROM {schema}.t", InvalidInput, MULTIPLE_COMMANDS),
                ("SELECT 1; SELECT 2", InvalidInput, MULTIPLE_COMMANDS),
                (
                    f"SET default_transaction_read_only = off; DELETE FROM {schema}.t",
                    InvalidInput,
                    MULTIPLE_COMMANDS,
                ),
                (
                    f"DO $$BEGIN DELETE FROM {schema}.t; END$$",
                    ReadOnly,
                    "DELETE in a read-only",
                ),
                (
                    "DO $$BEGIN PERFORM set_config('default_transaction_read_only', 'off',"
                    " false); COMMIT; END$$",
                    InvalidInput,
                    "invalid transaction termination",
                ),
                ("CREATE TEMP TABLE scratch (a int)", ReadOnly, "CREATE TABLE in a read-only"),
                (f"CREATE TABLE {schema}.u (a int)", ReadOnly, "CREATE TABLE in a read-only"),
                (f"TRUNCATE {schema}.t", ReadOnly, "TRUNCATE TABLE in a read-only"),
                (f"SELECT * FROM {schema}.t FOR UPDATE", ReadOnly, "FOR UPDATE in a read-only"),
                ("SELECT nextval('pg_catalog.pg_class')", InvalidInput, "is not a sequence"),
            ]
            for sql, error, words in refused:
                with pytest.raises(error, match=words):
                    send(sql)
                assert_still_read_only(prod, schema)
            # Accepted, and undone with the transaction the session rolls back.
            for sql in (
                "SET default_transaction_read_only = off",
                "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
                "SELECT set_config('default_transaction_read_only', 'off', false)",
            ):
                send(sql)
                assert_still_read_only(prod, schema)
            # PostgreSQL 15 accepts it as the transaction's first statement; either way the
            # next statement's transaction is read-only again.
            try:
                send("SET TRANSACTION READ WRITE")
            except ReadOnly:
                pass
            assert_still_read_only(prod, schema)
        assert prod.execute(f"SELECT count(*) FROM {schema}.t", ()) == [(2,)]
    finally:
        prod.close()
    assert pg_state(dev, schema) == before


def test_postgres_prod_copy_to_program_is_refused_or_the_role_is_reported(postgres: str) -> None:
    prod = open_postgres(postgres, None, read_only=True, timeout=5)
    try:
        ((superuser,),) = prod.execute(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user", ()
        )
        try:
            prod.execute("COPY (SELECT 1) TO PROGRAM 'true'", ())
            ran = True
        except (ReadOnly, InvalidInput):
            ran = False
        # A read-only transaction allows COPY TO: only the role's rights stop the program.
        # Such a role is what the session's risks name (and the DB chip warns of).
        if ran:
            assert any("superuser" in risk for risk in prod.risks())
        assert any("superuser" in risk for risk in prod.risks()) is superuser
    finally:
        prod.close()


@pytest.fixture
def pg_role(postgres: str) -> Iterator[tuple[str, Callable[[str], None]]]:
    """A login role of its own (dropped afterwards) and a way to grant it a role."""
    dev = open_postgres(postgres, None, read_only=False, timeout=5)
    role = f"ro_role_{uuid.uuid4().hex[:10]}"
    dev.execute(f"CREATE ROLE {role} LOGIN", ())

    def grant(granted: str) -> None:
        dev.execute(f"GRANT {granted} TO {role}", ())

    try:
        yield role, grant
    finally:
        dev.execute(f"DROP ROLE {role}", ())
        dev.close()


def test_postgres_role_risks_are_named(
    postgres: str, pg_role: tuple[str, Callable[[str], None]]
) -> None:
    role, grant = pg_role
    as_role = make_conninfo(postgres, user=role)

    def risks(*, read_only: bool) -> list[str]:
        session = open_postgres(as_role, None, read_only=read_only, timeout=5)
        try:
            return session.risks()
        finally:
            session.close()

    assert risks(read_only=True) == []
    grant("pg_write_server_files")
    assert risks(read_only=True) == [
        f'the role "{role}" is a member of pg_write_server_files: it can write files on the'
        " database server"
    ]
    grant("pg_execute_server_program")
    assert risks(read_only=True) == [
        f'the role "{role}" is a member of pg_execute_server_program: it can run programs on'
        " the database server",
        f'the role "{role}" is a member of pg_write_server_files: it can write files on the'
        " database server",
    ]
    assert risks(read_only=False) == []  # checked for read-only (PROD) sessions only


def test_postgres_replication_role_is_named(
    postgres: str, pg_role: tuple[str, Callable[[str], None]]
) -> None:
    """REPLICATION lets a role create and move slots inside a read-only transaction."""
    role, _ = pg_role
    dev = open_postgres(postgres, None, read_only=False, timeout=5)
    try:
        dev.execute(f"ALTER ROLE {role} REPLICATION", ())
    finally:
        dev.close()
    session = open_postgres(make_conninfo(postgres, user=role), None, read_only=True, timeout=5)
    try:
        assert session.risks() == [
            f'the role "{role}" has REPLICATION: it can create and move replication slots,'
            " read-only transactions notwithstanding"
        ]
    finally:
        session.close()


def test_postgres_dev_sessions_name_no_risks(postgres: str) -> None:
    dev = open_postgres(postgres, None, read_only=False, timeout=5)
    try:
        assert dev.risks() == []
    finally:
        dev.close()
