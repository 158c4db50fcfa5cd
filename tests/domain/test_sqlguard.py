"""The daemon's first refusal in PROD (pure: no database): statements that write, lock, reach
outside the database or come two at a time are refused in words; reads pass, whatever their
strings, comments and quoted names hold."""

from __future__ import annotations

import pytest

from simpleaided.domain.errors import ReadOnly
from simpleaided.domain.sqlguard import check_read_only, first_word, statement_words
from simpleaided.domain.vocabulary import DbKind

BOTH: list[DbKind] = ["sqlite", "postgres"]


def refusal(dialect: DbKind, sql: str) -> str:
    with pytest.raises(ReadOnly) as caught:
        check_read_only(dialect, sql)
    message = caught.value.message
    assert message.startswith("read-only in PROD: ") and message.endswith(" is not allowed")
    return message.removeprefix("read-only in PROD: ").removesuffix(" is not allowed")


# Every statement the issue lists, on the dialect that has it (and the words it is refused in).
REFUSED: list[tuple[DbKind, str, str]] = [
    *[
        (d, sql, words)
        for d in BOTH
        for sql, words in [
            ("INSERT INTO t VALUES (1)", "INSERT"),
            ("insert into t values (1)", "INSERT"),
            ("UPDATE t SET a = 1", "UPDATE"),
            ("DELETE FROM t", "DELETE"),
            ("CREATE TABLE u (a int)", "CREATE TABLE"),
            ("CREATE TEMP TABLE u (a int)", "CREATE TEMP TABLE"),
            ("CREATE UNIQUE INDEX i ON t (a)", "CREATE UNIQUE INDEX"),
            ("DROP TABLE t", "DROP TABLE"),
            ("ALTER TABLE t ADD COLUMN b int", "ALTER TABLE"),
            ("VACUUM", "VACUUM"),
            ("REINDEX", "REINDEX"),
            ("ANALYZE", "ANALYZE"),
            ("BEGIN", "BEGIN"),
            ("COMMIT", "COMMIT"),
            ("ROLLBACK", "ROLLBACK"),
            ("SAVEPOINT s", "SAVEPOINT"),
            ("SELECT * INTO u FROM t", "SELECT … INTO"),
            ("WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x", "INSERT (inside WITH)"),
            ("WITH x AS (SELECT 1) DELETE FROM t", "DELETE (inside WITH)"),
            ("  -- a comment first\n  DELETE FROM t", "DELETE"),
            ("/* c */ DROP TABLE t", "DROP TABLE"),
        ]
    ],
    ("sqlite", "ATTACH 'other.db' AS o", "ATTACH"),
    ("sqlite", "DETACH o", "DETACH"),
    ("sqlite", "VACUUM INTO '/tmp/copy.db'", "VACUUM"),
    ("sqlite", "REPLACE INTO t VALUES (1)", "REPLACE"),
    ("sqlite", "INSERT OR REPLACE INTO t VALUES (1)", "INSERT"),
    ("sqlite", "SELECT load_extension('evil')", "the function load_extension()"),
    ("sqlite", "SELECT \"load_extension\"('evil')", "the function load_extension()"),
    ("sqlite", "SELECT [load_extension]('evil')", "the function load_extension()"),
    ("sqlite", "SELECT writefile('/tmp/x', 'y')", "the function writefile()"),
    ("sqlite", "SELECT fts3_tokenizer('simple', x'00')", "the function fts3_tokenizer()"),
    ("sqlite", "PRAGMA query_only = 0", "setting PRAGMA query_only"),
    ("sqlite", "PRAGMA query_only(0)", "setting PRAGMA query_only"),
    ("sqlite", "PRAGMA main.schema_version = 1", "setting PRAGMA schema_version"),
    ("sqlite", "PRAGMA writable_schema = ON", "PRAGMA writable_schema"),
    ("sqlite", "PRAGMA journal_mode = DELETE", "PRAGMA journal_mode"),
    ("sqlite", "PRAGMA optimize", "PRAGMA optimize"),
    ("sqlite", "PRAGMA wal_checkpoint", "PRAGMA wal_checkpoint"),
    ("sqlite", "SHOW tables", "SHOW"),
    ("sqlite", "EXPLAIN DELETE FROM t", "EXPLAIN of DELETE"),
    ("sqlite", "EXPLAIN QUERY PLAN INSERT INTO t VALUES (1)", "EXPLAIN of INSERT"),
    ("postgres", "MERGE INTO t USING s ON t.a = s.a WHEN MATCHED THEN DELETE", "MERGE"),
    ("postgres", "TRUNCATE t", "TRUNCATE"),
    ("postgres", "SET default_transaction_read_only = off", "SET"),
    ("postgres", "SET TRANSACTION READ WRITE", "SET"),
    ("postgres", "RESET ALL", "RESET"),
    ("postgres", "START TRANSACTION READ WRITE", "START"),
    ("postgres", "DO $$BEGIN DELETE FROM t; END$$", "DO"),
    ("postgres", "CALL p()", "CALL"),
    ("postgres", "COPY t TO PROGRAM 'rm -rf /'", "COPY"),
    ("postgres", "COPY (SELECT 1) TO '/tmp/out'", "COPY"),
    ("postgres", "LOCK TABLE t", "LOCK"),
    ("postgres", "GRANT ALL ON t TO PUBLIC", "GRANT"),
    ("postgres", "REVOKE ALL ON t FROM PUBLIC", "REVOKE"),
    ("postgres", "LISTEN channel", "LISTEN"),
    ("postgres", "NOTIFY channel", "NOTIFY"),
    ("postgres", "PREPARE p AS DELETE FROM t", "PREPARE"),
    ("postgres", "EXECUTE p", "EXECUTE"),
    ("postgres", "DISCARD ALL", "DISCARD"),
    ("postgres", "REFRESH MATERIALIZED VIEW m", "REFRESH"),
    ("postgres", "CLUSTER t", "CLUSTER"),
    ("postgres", "SECURITY LABEL ON TABLE t IS 'x'", "SECURITY"),
    ("postgres", "COMMENT ON TABLE t IS 'x'", "COMMENT"),
    ("postgres", "DECLARE c CURSOR FOR SELECT 1", "DECLARE"),
    ("postgres", "PRAGMA table_info(t)", "PRAGMA"),
    ("postgres", "CREATE OR REPLACE FUNCTION f() RETURNS int AS 'x'", "CREATE OR REPLACE FUNCTION"),
    ("postgres", "SELECT * FROM t FOR UPDATE", "SELECT … FOR UPDATE (it locks rows)"),
    ("postgres", "SELECT * FROM t FOR NO KEY UPDATE", "SELECT … FOR NO KEY UPDATE (it locks rows)"),
    ("postgres", "SELECT * FROM t FOR SHARE", "SELECT … FOR SHARE (it locks rows)"),
    ("postgres", "SELECT * FROM t FOR KEY SHARE", "SELECT … FOR KEY SHARE (it locks rows)"),
    (
        "postgres",
        "SELECT * FROM (SELECT * FROM t FOR UPDATE) s",
        "SELECT … FOR UPDATE (it locks rows)",
    ),
    ("postgres", "WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", "DELETE (inside WITH)"),
    ("postgres", "WITH x AS (UPDATE t SET a = 1 RETURNING *) TABLE x", "UPDATE (inside WITH)"),
    ("postgres", "EXPLAIN ANALYZE DELETE FROM t", "EXPLAIN of DELETE"),
    ("postgres", "EXPLAIN (ANALYZE, BUFFERS) INSERT INTO t VALUES (1)", "EXPLAIN of INSERT"),
    ("postgres", "EXPLAIN ANALYZE CREATE TABLE u AS SELECT 1", "EXPLAIN of CREATE"),
    ("postgres", "EXPLAIN ANALYZE EXECUTE p", "EXPLAIN of EXECUTE"),
    ("postgres", "SELECT lo_export(16384, '/tmp/out')", "the function lo_export()"),
    ("postgres", "SELECT nextval('s')", "the function nextval()"),
    ("postgres", "SELECT pg_catalog.set_config('x', 'y', false)", "the function set_config()"),
    ("postgres", "SELECT pg_terminate_backend(42)", "the function pg_terminate_backend()"),
    ("postgres", "TABLE t FOR UPDATE", "SELECT … FOR UPDATE (it locks rows)"),
    # Replication slots and origins, backups: they outlive a read-only transaction.
    (
        "postgres",
        "SELECT pg_copy_physical_replication_slot('a', 'b')",
        "the function pg_copy_physical_replication_slot()",
    ),
    (
        "postgres",
        "SELECT pg_replication_slot_advance('a', pg_current_wal_lsn())",
        "the function pg_replication_slot_advance()",
    ),
    (
        "postgres",
        "SELECT pg_replication_origin_create('o')",
        "the function pg_replication_origin_create()",
    ),
    ("postgres", "SELECT pg_backup_start('label')", "the function pg_backup_start()"),
    (
        "postgres",
        "SELECT pg_stat_reset_replication_slot(NULL)",
        "the function pg_stat_reset_replication_slot()",
    ),
    (
        "postgres",
        "SELECT pg_log_backend_memory_contexts(1)",
        "the function pg_log_backend_memory_contexts()",
    ),
]


@pytest.mark.parametrize(("dialect", "sql", "words"), REFUSED)
def test_writes_are_refused_in_words(dialect: DbKind, sql: str, words: str) -> None:
    assert refusal(dialect, sql) == words


ONE_AT_A_TIME = "more than one statement (one statement at a time)"


@pytest.mark.parametrize("dialect", BOTH)
@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1; SELECT 2",
        "SELECT 1;SELECT 2;",
        "SELECT 1; ATTACH 'x.db' AS x",
        "SELECT 1 /* */; DELETE FROM t",
        "SELECT ';'; DELETE FROM t",
        "SELECT 'it''s'; DELETE FROM t",
        'SELECT "a;"; DELETE FROM t',
        "SELECT 1 -- first\n; DELETE FROM t",
        "SELECT 1; -- nothing after but\n DELETE FROM t",
    ],
)
def test_a_second_statement_is_refused(dialect: DbKind, sql: str) -> None:
    assert refusal(dialect, sql) == ONE_AT_A_TIME


@pytest.mark.parametrize(
    ("dialect", "sql"),
    [
        ("postgres", "SELECT $$x$$; DELETE FROM t"),
        ("postgres", "SELECT $a$ $$ $a$; DELETE FROM t"),
        ("postgres", "COMMIT; DELETE FROM t"),
        # Outside E'' a backslash escapes nothing: the string ends at the second quote.
        ("postgres", "SELECT '\\'; DELETE FROM t --'"),
        # SQLite's comments do not nest: the first */ closes it.
        ("sqlite", "/* a /* b */ ; DELETE FROM t */ SELECT 1"),
    ],
)
def test_dialect_rules_find_the_second_statement(dialect: DbKind, sql: str) -> None:
    assert refusal(dialect, sql) == ONE_AT_A_TIME


READS: list[tuple[DbKind, str]] = [
    ("postgres", "SELECT slot_name, active FROM pg_replication_slots"),
    ("postgres", "SELECT * FROM pg_get_replication_slots()"),
    ("postgres", "SELECT * FROM pg_stat_get_replication_slot('s')"),
    ("postgres", "SELECT pg_current_wal_lsn()"),
    *[
        (d, sql)
        for d in BOTH
        for sql in [
            "SELECT 1",
            "select * from t where a = 1",
            "SELECT 1;",
            "SELECT 1;  -- done\n",
            "SELECT 1 /* ; DELETE FROM t */",
            "SELECT ';'",
            "SELECT 'DELETE FROM t; DROP TABLE t'",
            "SELECT 'it''s a delete'",
            'SELECT "delete", "update", "insert into" FROM t',
            "SELECT updated_at, deleted, inserts FROM t",
            "SELECT t.update FROM t",
            "SELECT 1 AS delete",
            "SELECT replace(name, 'a', 'b') FROM t",
            "SELECT count(*) FROM t WHERE note LIKE '%drop table%'",
            "-- DELETE FROM t;\nSELECT 1",
            "WITH x AS (SELECT 'delete' AS \"update\") SELECT * FROM x",
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) "
            "SELECT * FROM r",
            "VALUES (1, 'a'), (2, 'b')",
            "(SELECT 1) UNION (SELECT 2)",
            "EXPLAIN SELECT * FROM t",
            "SELECT * FROM t WHERE a = ? AND b = :name",
            "",
            "  -- only a comment",
        ]
    ],
    ("sqlite", "EXPLAIN QUERY PLAN SELECT * FROM t"),
    ("sqlite", "SELECT [delete], `update` FROM t"),
    ("sqlite", "PRAGMA table_info(t)"),
    ("sqlite", "PRAGMA main.table_xinfo('t')"),
    ("sqlite", "PRAGMA index_list(t)"),
    ("sqlite", 'PRAGMA foreign_key_list("my table")'),
    ("sqlite", "PRAGMA query_only"),
    ("sqlite", "PRAGMA schema_version;"),
    ("sqlite", "PRAGMA database_list"),
    ("sqlite", "PRAGMA compile_options"),
    ("sqlite", "SELECT * FROM pragma_table_list"),
    ("sqlite", "/* a /* b */ SELECT 1"),
    ("postgres", "TABLE t"),
    ("postgres", "SHOW default_transaction_read_only"),
    ("postgres", "SHOW ALL"),
    ("postgres", "SELECT $$;DELETE$$"),
    ("postgres", "SELECT $body$ ; DELETE FROM t $body$"),
    ("postgres", "SELECT E'\\'; DELETE FROM t --'"),
    ("postgres", "SELECT e'a\\\\'"),
    ("postgres", "SELECT $1::int + $2"),
    ("postgres", "SELECT %s, %(name)s"),
    ("postgres", "/* a /* nested ; DELETE */ still a comment */ SELECT 1"),
    ("postgres", "SELECT a$b FROM t"),
    ("postgres", "SELECT substring('abc' FROM 1 FOR 2)"),
    ("postgres", "EXPLAIN (ANALYZE, FORMAT JSON) SELECT * FROM t"),
    ("postgres", "EXPLAIN ANALYZE VERBOSE WITH x AS (SELECT 1) SELECT * FROM x"),
    ("postgres", "SELECT * FROM pg_catalog.pg_roles"),
    ("postgres", "SELECT U&'d\\0061t\\+000061'"),
]


@pytest.mark.parametrize(("dialect", "sql"), READS)
def test_reads_pass(dialect: DbKind, sql: str) -> None:
    check_read_only(dialect, sql)


@pytest.mark.parametrize(
    ("dialect", "sql", "words"),
    [
        ("sqlite", "SELECT 'abc", "an unterminated quoted string or name"),
        ("sqlite", 'SELECT "abc', "an unterminated quoted string or name"),
        ("sqlite", "SELECT [abc", "an unterminated [name]"),
        ("postgres", "SELECT $$abc", "an unterminated $$ string"),
        ("postgres", "SELECT E'abc\\'", "an unterminated quoted string or name"),
        ("postgres", "SELECT 1 /* /* */", "an unterminated /* comment"),
        ("sqlite", "SELECT 1 /* ", "an unterminated /* comment"),
    ],
)
def test_what_cannot_be_read_is_refused(dialect: DbKind, sql: str, words: str) -> None:
    assert refusal(dialect, sql) == words


def test_statement_words_name_what_a_statement_does() -> None:
    assert first_word("sqlite", "/* x */ -- y\n vacuum into 'f'") == "VACUUM"
    assert first_word("sqlite", "'") is None
    assert first_word("postgres", "  ") is None
    assert statement_words("sqlite", "create temp table t (a)") == "CREATE TEMP TABLE"
    assert statement_words("sqlite", "DROP INDEX IF EXISTS i") == "DROP INDEX"
    assert statement_words("postgres", "savepoint s") == "SAVEPOINT"
    assert statement_words("postgres", "$$") is None
