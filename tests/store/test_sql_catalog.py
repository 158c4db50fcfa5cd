"""The catalogue on real databases: a SQLite file and the machine's PostgreSQL (each test in a
schema of its own, dropped afterwards): row identity, estimates, descriptions, and names that
look like SQL staying names."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from simpleaided.domain.errors import InvalidInput, NotFound
from simpleaided.store.sql import Session
from simpleaided.store.sql.catalog import (
    Column,
    TableInfo,
    describe,
    find_table,
    qualified,
    rowid_alias,
    tables,
)
from simpleaided.store.sql.postgres import open_postgres
from simpleaided.store.sql.sqlite import open_sqlite

HOSTILE = ['we"ird', "a b", "ünï", "x; DROP TABLE y--"]


@pytest.fixture
def lite(tmp_path: Path) -> Iterator[Session]:
    session = open_sqlite(str(tmp_path / "db.sqlite"), read_only=False, in_store=False, timeout=5)
    try:
        yield session
    finally:
        session.close()


@pytest.fixture
def pg(postgres: str) -> Iterator[tuple[Session, str]]:
    """A session whose search path is a fresh schema of its own, and that schema's name."""
    session = open_postgres(postgres, None, read_only=False, timeout=5)
    schema = f"catalog_{uuid.uuid4().hex[:12]}"
    try:
        session.execute(f"CREATE SCHEMA {schema}", ())
        session.execute(f"SET search_path = {schema}", ())
        yield session, schema
    finally:
        session.execute(f"DROP SCHEMA {schema} CASCADE", ())
        session.close()


def script(session: Session, statements: str) -> None:
    for statement in statements.split(";"):
        if statement.strip():
            session.execute(statement.strip(), ())


def by_name(session: Session, schema: str) -> dict[str, TableInfo]:
    return {t.name: t for t in tables(session) if t.schema == schema}


# --- SQLite ------------------------------------------------------------------------------------


def test_sqlite_row_identity(lite: Session) -> None:
    script(
        lite,
        """
        CREATE TABLE plain (a INTEGER, b TEXT);
        CREATE TABLE ipk (id INTEGER PRIMARY KEY, v TEXT);
        CREATE TABLE composite (a TEXT NOT NULL, b INTEGER NOT NULL, v, PRIMARY KEY (b, a));
        CREATE TABLE nullable_pk (code TEXT PRIMARY KEY, v);
        CREATE TABLE desc_pk (id INTEGER PRIMARY KEY DESC, v);
        CREATE TABLE wr (a TEXT, b INT, v, PRIMARY KEY (a, b)) WITHOUT ROWID;
        CREATE TABLE uniq (u TEXT NOT NULL UNIQUE, v);
        CREATE TABLE shadowed (rowid INT, _rowid_ INT, oid INT, v);
        CREATE TABLE shadowed_uniq (rowid INT, _rowid_ INT, "OID" INT, u NOT NULL, w NOT NULL);
        CREATE UNIQUE INDEX shadowed_uniq_u ON shadowed_uniq (u);
        CREATE UNIQUE INDEX shadowed_uniq_uw ON shadowed_uniq (u, w);
        CREATE TABLE shadowed_weak (rowid INT, _rowid_ INT, oid INT, u, e NOT NULL, p NOT NULL);
        CREATE UNIQUE INDEX weak_nullable ON shadowed_weak (u);
        CREATE UNIQUE INDEX weak_expression ON shadowed_weak (abs(e));
        CREATE UNIQUE INDEX weak_partial ON shadowed_weak (p) WHERE p > 0;
        CREATE VIEW v AS SELECT * FROM ipk;
        CREATE VIRTUAL TABLE fts USING fts5 (body)
        """,
    )
    found = by_name(lite, "main")
    assert set(found) == {
        "plain", "ipk", "composite", "nullable_pk", "desc_pk", "wr", "uniq",
        "shadowed", "shadowed_uniq", "shadowed_weak", "v", "fts",
    }  # fmt: skip
    keys = {name: t.key for name, t in found.items()}
    assert keys == {
        "plain": "rowid",
        "ipk": ["id"],
        "composite": ["b", "a"],
        # SQLite lets such a key hold NULL (twice): only the rowid tells those rows apart.
        "nullable_pk": "rowid",
        "desc_pk": "rowid",  # not the rowid alias, and nullable
        "wr": ["a", "b"],
        "uniq": "rowid",  # the rowid comes before a unique index
        "shadowed": None,
        "shadowed_uniq": ["u"],  # the narrowest unique index
        "shadowed_weak": None,  # nullable, expression, partial: none identifies a row
        "v": None,
        "fts": None,
    }
    assert {n for n, t in found.items() if t.editable} == {
        "plain", "ipk", "composite", "nullable_pk", "desc_pk", "wr", "uniq", "shadowed_uniq",
    }  # fmt: skip
    assert found["v"].kind == "view" and found["wr"].kind == "table"
    assert rowid_alias(["rowid", "_ROWID_"]) == "oid"
    assert rowid_alias(["ROWID", "_rowid_", "Oid"]) is None


def test_sqlite_excludes_internal_tables(lite: Session) -> None:
    script(lite, "CREATE TABLE t (a); ANALYZE; CREATE VIRTUAL TABLE f USING fts5 (body)")
    names = [t.name for t in tables(lite)]
    assert names == ["f", "t"]  # no sqlite_schema, sqlite_stat1 or fts5 shadow tables
    with pytest.raises(NotFound):
        find_table(lite, None, "sqlite_schema")
    with pytest.raises(NotFound):
        find_table(lite, None, "sqlite_stat1")


def test_sqlite_estimates_only_from_sqlite_stat1(lite: Session) -> None:
    script(lite, "CREATE TABLE t (a); CREATE TABLE i (a); CREATE INDEX i_a ON i (a)")
    for n in range(50):
        lite.execute("INSERT INTO t VALUES (?)", (n,))
        lite.execute("INSERT INTO i VALUES (?)", (n % 7,))
    assert {t.name: t.row_estimate for t in tables(lite)} == {"i": None, "t": None}
    lite.execute("ANALYZE", ())
    lite.execute("INSERT INTO t VALUES (1)", ())  # an estimate: not counted again
    assert {t.name: t.row_estimate for t in tables(lite)} == {"i": 50, "t": 50}
    script(lite, "CREATE VIEW v AS SELECT * FROM t; CREATE TABLE later (a)")
    found = by_name(lite, "main")
    assert found["v"].row_estimate is None and found["later"].row_estimate is None


def test_sqlite_describe(lite: Session) -> None:
    script(
        lite,
        """
        CREATE TABLE parent (id INTEGER PRIMARY KEY, code TEXT NOT NULL UNIQUE);
        CREATE TABLE child (
            id INTEGER PRIMARY KEY,
            parent_id INTEGER REFERENCES parent ON DELETE CASCADE,
            parent_code TEXT REFERENCES parent (code) ON UPDATE SET NULL,
            qty INTEGER NOT NULL DEFAULT 1,
            note TEXT DEFAULT 'none',
            twice INTEGER GENERATED ALWAYS AS (qty * 2) STORED,
            label TEXT AS ('#' || id) VIRTUAL
        );
        CREATE INDEX child_qty ON child (qty DESC) WHERE qty > 0;
        CREATE INDEX child_expr ON child (lower(note), qty)
        """,
    )
    d = describe(lite, None, "child")
    assert (d.schema, d.name, d.kind) == ("main", "child", "table")
    assert d.columns == [
        Column("id", "INTEGER", False, None, True, None),
        Column("parent_id", "INTEGER", True, None, False, None),
        Column("parent_code", "TEXT", True, None, False, None),
        Column("qty", "INTEGER", False, "1", False, None),
        Column("note", "TEXT", True, "'none'", False, None),
        Column("twice", "INTEGER", True, None, False, "stored"),
        Column("label", "TEXT", True, None, False, "virtual"),
    ]
    assert [c.writable for c in d.columns] == [True] * 5 + [False, False]
    assert d.primary_key == ["id"] and d.key == ["id"]
    indexes = {i.name: i for i in d.indexes}
    assert indexes["child_qty"].columns == ["qty"] and indexes["child_qty"].partial
    assert indexes["child_expr"].columns == [None, "qty"] and not indexes["child_expr"].unique
    assert indexes["child_expr"].definition == "CREATE INDEX child_expr ON child (lower(note), qty)"
    fks = {tuple(f.columns): f for f in d.foreign_keys}
    assert fks[("parent_id",)].ref_columns == ["id"]  # implied: the parent's primary key
    assert fks[("parent_id",)].on_delete == "CASCADE"
    assert fks[("parent_code",)].ref_columns == ["code"]
    assert fks[("parent_code",)].on_update == "SET NULL"
    assert {f.ref_table for f in d.foreign_keys} == {"parent"}
    assert d.ddl is not None and d.ddl.startswith("CREATE TABLE child (")
    assert "GENERATED ALWAYS AS (qty * 2) STORED" in d.ddl

    wr = describe(lite, "main", "parent")
    assert [i.unique for i in wr.indexes] == [True] and wr.key == ["id"]


def test_sqlite_describe_without_rowid_and_views(lite: Session) -> None:
    script(
        lite,
        "CREATE TABLE wr (a TEXT, b INT, v, PRIMARY KEY (a, b)) WITHOUT ROWID;"
        "CREATE VIEW v AS SELECT a, v FROM wr",
    )
    wr = describe(lite, None, "wr")
    assert [(c.name, c.nullable, c.primary_key) for c in wr.columns] == [
        ("a", False, True),
        ("b", False, True),
        ("v", True, False),
    ]
    assert wr.key == wr.primary_key == ["a", "b"]
    assert [i.primary for i in wr.indexes] == [True]
    view = describe(lite, None, "v")
    assert view.kind == "view" and view.key is None and view.indexes == []
    assert [c.name for c in view.columns] == ["a", "v"]
    assert view.ddl == "CREATE VIEW v AS SELECT a, v FROM wr"


def test_sqlite_unknown_table(lite: Session) -> None:
    script(lite, "CREATE TABLE t (a)")
    with pytest.raises(NotFound, match='no table or view named "nope"$'):
        describe(lite, None, "nope")
    with pytest.raises(NotFound, match='no table or view named "t" in schema "other"'):
        describe(lite, "other", "t")
    with pytest.raises(NotFound):
        describe(lite, None, "T")  # an exact match: no folding of case


def test_sqlite_schema_choice(tmp_path: Path) -> None:
    # ATTACH is refused unless the configuration allows it (unsafe_sql).
    lite = open_sqlite(
        str(tmp_path / "db.sqlite"), read_only=False, in_store=False, timeout=5, unsafe_sql=True
    )
    lite.execute("ATTACH DATABASE ? AS other", (str(tmp_path / "other.sqlite"),))
    script(lite, "CREATE TABLE other.t (a); CREATE TABLE other.o (b); CREATE TABLE main.t (c)")
    assert [(t.schema, t.name) for t in tables(lite)] == [
        ("main", "t"),
        ("other", "o"),
        ("other", "t"),
    ]
    assert find_table(lite, None, "t") == ("main", "t", "table")
    assert find_table(lite, None, "o") == ("other", "o", "table")
    assert [c.name for c in describe(lite, "other", "t").columns] == ["a"]
    lite.execute("CREATE TEMP TABLE t (d)", ())
    assert find_table(lite, None, "t") == ("temp", "t", "table")  # as SQLite itself looks
    lite.close()


@pytest.mark.parametrize("name", HOSTILE)
def test_sqlite_hostile_names_stay_names(lite: Session, name: str) -> None:
    script(lite, "CREATE TABLE y (a)")
    q = lite.quote_identifier
    lite.execute(
        f"CREATE TABLE {q(name)} ({q(name)} INTEGER PRIMARY KEY, {q(name + '2')} TEXT UNIQUE)",
        (),
    )
    lite.execute(f"CREATE INDEX {q(name + ' idx')} ON {q(name)} ({q(name + '2')})", ())
    found = by_name(lite, "main")
    assert set(found) == {"y", name}
    assert found[name].key == [name]
    d = describe(lite, "main", name)
    assert [c.name for c in d.columns] == [name, name + "2"]
    assert {i.name for i in d.indexes} >= {name + " idx"}
    assert lite.execute(f"SELECT count(*) FROM {qualified(lite, 'main', name)}", ()) == [(0,)]
    assert lite.execute("SELECT count(*) FROM y", ()) == [(0,)]  # still there


# --- PostgreSQL --------------------------------------------------------------------------------


def test_pg_row_identity(pg: tuple[Session, str]) -> None:
    session, schema = pg
    script(
        session,
        """
        CREATE TABLE pk (id bigint PRIMARY KEY, v text);
        CREATE TABLE composite (a text, b int, v text, PRIMARY KEY (b, a));
        CREATE TABLE uniq (u text NOT NULL, w text NOT NULL, v text);
        CREATE UNIQUE INDEX uniq_uw ON uniq (u, w);
        CREATE UNIQUE INDEX uniq_u ON uniq (u);
        CREATE TABLE constraint_uniq (u int NOT NULL UNIQUE, v text);
        CREATE TABLE nokey (a int, b text);
        CREATE TABLE weak (n int UNIQUE, e text NOT NULL, p int NOT NULL, d int NOT NULL,
                           i int NOT NULL, x int NOT NULL);
        CREATE UNIQUE INDEX weak_expr ON weak (lower(e));
        CREATE UNIQUE INDEX weak_partial ON weak (p) WHERE p > 0;
        ALTER TABLE weak ADD CONSTRAINT weak_deferred UNIQUE (d) DEFERRABLE INITIALLY DEFERRED;
        CREATE UNIQUE INDEX weak_include ON weak (i) INCLUDE (n);
        CREATE INDEX weak_plain ON weak (x);
        CREATE TABLE ident (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text);
        CREATE VIEW v AS SELECT * FROM pk;
        CREATE MATERIALIZED VIEW mv AS SELECT * FROM pk;
        CREATE TABLE parted (k int, d date, PRIMARY KEY (k, d)) PARTITION BY RANGE (d);
        CREATE TABLE parted_2026 PARTITION OF parted
            FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')
        """,
    )
    found = by_name(session, schema)
    keys = {name: t.key for name, t in found.items()}
    assert keys == {
        "pk": ["id"],
        "composite": ["b", "a"],
        "uniq": ["u"],
        "constraint_uniq": ["u"],
        "nokey": None,
        # An INCLUDE index identifies rows by its key columns only.
        "weak": ["i"],
        "ident": ["id"],
        "v": None,
        "mv": None,
        "parted": ["k", "d"],
        "parted_2026": ["k", "d"],
    }
    assert found["v"].kind == found["mv"].kind == "view"
    assert not found["nokey"].editable and not found["v"].editable and found["uniq"].editable
    session.execute("DROP INDEX weak_include", ())
    assert by_name(session, schema)["weak"].key is None  # nullable, expression, partial, deferred


def test_pg_excludes_system_schemas(pg: tuple[Session, str]) -> None:
    session, schema = pg
    session.execute("CREATE TABLE t (a int)", ())
    session.execute("CREATE TEMP TABLE tmp (a int)", ())
    schemas = {t.schema for t in tables(session)}
    assert schema in schemas
    assert not {s for s in schemas if s.startswith("pg_") or s == "information_schema"}
    with pytest.raises(NotFound):
        find_table(session, "pg_catalog", "pg_class")
    with pytest.raises(NotFound):
        find_table(session, None, "tmp")


def test_pg_estimates(pg: tuple[Session, str]) -> None:
    session, schema = pg
    script(session, "CREATE TABLE t (a int); INSERT INTO t SELECT generate_series(1, 500)")
    assert by_name(session, schema)["t"].row_estimate is None  # never analyzed: unknown
    session.execute("ANALYZE t", ())
    session.execute("INSERT INTO t VALUES (1)", ())
    assert by_name(session, schema)["t"].row_estimate == 500
    session.execute("CREATE VIEW v AS SELECT * FROM t", ())
    assert by_name(session, schema)["v"].row_estimate is None


def test_pg_describe(pg: tuple[Session, str]) -> None:
    session, schema = pg
    script(
        session,
        """
        CREATE TABLE parent (id int PRIMARY KEY, code text NOT NULL UNIQUE);
        CREATE TABLE child (
            id int GENERATED BY DEFAULT AS IDENTITY,
            serial_id serial,
            parent_id int REFERENCES parent ON DELETE CASCADE,
            parent_code text,
            qty numeric(38, 10) NOT NULL DEFAULT 10.00,
            twice numeric GENERATED ALWAYS AS (qty * 2) STORED,
            tags text[] DEFAULT '{}',
            PRIMARY KEY (id),
            CONSTRAINT child_code_fk FOREIGN KEY (parent_code) REFERENCES parent (code)
                ON UPDATE SET NULL,
            CONSTRAINT qty_positive CHECK (qty > 0)
        );
        CREATE INDEX child_qty ON child (qty DESC) WHERE qty > 1;
        CREATE INDEX child_expr ON child (lower(parent_code), qty)
        """,
    )
    d = describe(session, None, "child")
    assert (d.schema, d.name, d.kind) == (schema, "child", "table")
    assert d.columns == [
        Column("id", "integer", False, None, True, "identity by default"),
        Column(
            "serial_id", "integer", False, "nextval('child_serial_id_seq'::regclass)", False, None
        ),
        Column("parent_id", "integer", True, None, False, None),
        Column("parent_code", "text", True, None, False, None),
        Column("qty", "numeric(38,10)", False, "10.00", False, None),
        Column("twice", "numeric", True, None, False, "stored"),
        Column("tags", "text[]", True, "'{}'::text[]", False, None),
    ]
    assert [c.writable for c in d.columns] == [True] * 5 + [False, True]
    assert d.primary_key == d.key == ["id"]
    indexes = {i.name: i for i in d.indexes}
    assert set(indexes) == {"child_pkey", "child_qty", "child_expr"}
    assert indexes["child_pkey"].primary and indexes["child_pkey"].unique
    assert indexes["child_qty"].partial and indexes["child_qty"].columns == ["qty"]
    assert indexes["child_expr"].columns == [None, "qty"]
    assert indexes["child_expr"].definition == (
        f"CREATE INDEX child_expr ON {schema}.child USING btree (lower(parent_code), qty)"
    )
    fks = {f.name: f for f in d.foreign_keys}
    assert fks["child_parent_id_fkey"].ref_columns == ["id"]
    assert fks["child_parent_id_fkey"].on_delete == "CASCADE"
    assert fks["child_parent_id_fkey"].on_update == "NO ACTION"
    assert fks["child_code_fk"].columns == ["parent_code"]
    assert (fks["child_code_fk"].ref_schema, fks["child_code_fk"].ref_table) == (schema, "parent")
    assert fks["child_code_fk"].on_update == "SET NULL"
    assert d.ddl is not None
    lines = d.ddl.splitlines()
    assert lines[0] == f"CREATE TABLE {schema}.child ("
    assert "    id integer GENERATED BY DEFAULT AS IDENTITY NOT NULL," in lines
    assert "    twice numeric GENERATED ALWAYS AS ((qty * (2)::numeric)) STORED," in lines
    assert "    qty numeric(38,10) DEFAULT 10.00 NOT NULL," in lines
    assert "    CONSTRAINT child_pkey PRIMARY KEY (id)," in lines
    assert "    CONSTRAINT qty_positive CHECK (qty > 0::numeric)" in lines
    assert lines[-2:] == [
        f"CREATE INDEX child_expr ON {schema}.child USING btree (lower(parent_code), qty);",
        f"CREATE INDEX child_qty ON {schema}.child USING btree (qty DESC)"
        " WHERE (qty > (1)::numeric);",
    ]
    # The DDL is SQL PostgreSQL takes back.
    session.execute("CREATE SCHEMA IF NOT EXISTS " + schema + "_copy", ())
    try:
        ddl = d.ddl.replace(f"{schema}.", f"{schema}_copy.")
        for statement in ddl.split(";\n"):
            session.execute(statement.rstrip(";"), ())
    finally:
        session.execute(f"DROP SCHEMA {schema}_copy CASCADE", ())


def test_pg_describe_identity_and_views(pg: tuple[Session, str]) -> None:
    session, schema = pg
    script(
        session,
        "CREATE TABLE t (id bigint GENERATED ALWAYS AS IDENTITY, v text);"
        "CREATE VIEW v AS SELECT v FROM t WHERE id > 1;"
        "CREATE TABLE p (k int, d date) PARTITION BY RANGE (d)",
    )
    t = describe(session, schema, "t")
    assert t.columns[0] == Column("id", "bigint", False, None, False, "identity always")
    assert not t.columns[0].writable and t.key is None and t.primary_key == []
    view = describe(session, schema, "v")
    assert view.kind == "view" and view.key is None and [c.name for c in view.columns] == ["v"]
    assert view.ddl is not None and view.ddl.startswith(f"CREATE VIEW {schema}.v AS\n SELECT")
    p = describe(session, schema, "p")
    assert p.ddl is not None and p.ddl.endswith(") PARTITION BY RANGE (d);")


def test_pg_unknown_table_and_schema_choice(pg: tuple[Session, str]) -> None:
    session, schema = pg
    session.execute("CREATE TABLE t (a int)", ())
    with pytest.raises(NotFound, match='no table or view named "nope"$'):
        describe(session, None, "nope")
    with pytest.raises(NotFound, match=f'no table or view named "t" in schema "{schema}x"'):
        describe(session, schema + "x", "t")
    with pytest.raises(NotFound):
        describe(session, schema, "T")  # an exact match: no folding of case
    assert find_table(session, None, "t") == (schema, "t", "table")  # by the search path
    others = [f"{schema}_a", f"{schema}_b"]
    try:
        for other in others:
            script(session, f"CREATE SCHEMA {other}; CREATE TABLE {other}.elsewhere (a int)")
        with pytest.raises(InvalidInput, match=f"several schemas \\({others[0]}, {others[1]}\\)"):
            find_table(session, None, "elsewhere")
        assert find_table(session, others[1], "elsewhere") == (others[1], "elsewhere", "table")
        session.execute(f"CREATE TABLE {others[0]}.t (a int)", ())
        assert find_table(session, None, "t") == (schema, "t", "table")  # the path comes first
    finally:
        for other in others:
            session.execute(f"DROP SCHEMA IF EXISTS {other} CASCADE", ())


@pytest.mark.parametrize("name", HOSTILE)
def test_pg_hostile_names_stay_names(pg: tuple[Session, str], name: str) -> None:
    session, schema = pg
    session.execute("CREATE TABLE y (a int)", ())
    q = session.quote_identifier
    session.execute(f"CREATE TABLE {q(name)} ({q(name)} int, {q(name + '2')} text NOT NULL)", ())
    session.execute(f"CREATE UNIQUE INDEX {q(name + ' idx')} ON {q(name)} ({q(name + '2')})", ())
    found = by_name(session, schema)
    assert set(found) == {"y", name}
    assert found[name].key == [name + "2"]
    d = describe(session, schema, name)
    assert [c.name for c in d.columns] == [name, name + "2"]
    assert [i.name for i in d.indexes] == [name + " idx"]
    assert d.ddl is not None and d.ddl.startswith(f"CREATE TABLE {schema}.{q(name)} (")
    assert f"    {q(name)} integer," in d.ddl.splitlines()
    table = qualified(session, schema, name)
    assert session.execute(f"SELECT count(*) FROM {table}", ()) == [(0,)]
    assert session.execute("SELECT count(*) FROM y", ()) == [(0,)]  # still there


def test_quoting_by_each_driver(lite: Session, pg: tuple[Session, str]) -> None:
    session, _ = pg
    for s in (lite, session):
        assert s.quote_identifier('we"ird') == '"we""ird"'
        assert s.quote_identifier("ünï") == '"ünï"'
        with pytest.raises(InvalidInput, match="NUL"):
            s.quote_identifier("a\0b")


def test_pg_hostile_schema_name(pg: tuple[Session, str]) -> None:
    session, schema = pg
    hostile = f'{schema} "x; DROP SCHEMA {schema}--'
    q = session.quote_identifier
    session.execute(f"CREATE SCHEMA {q(hostile)}", ())
    try:
        session.execute(f"CREATE TABLE {q(hostile)}.{q('ünï')} (id int PRIMARY KEY)", ())
        found = by_name(session, hostile)
        assert found["ünï"].key == ["id"]
        d = describe(session, hostile, "ünï")
        assert d.ddl is not None and d.ddl.startswith(f'CREATE TABLE {q(hostile)}."ünï" (')
        assert session.execute(
            f"SELECT count(*) FROM {qualified(session, hostile, 'ünï')}", ()
        ) == [(0,)]
    finally:
        session.execute(f"DROP SCHEMA {q(hostile)} CASCADE", ())


def test_pg_inherited_tables_are_not_editable(pg: tuple[Session, str]) -> None:
    session, schema = pg
    script(
        session,
        """
        CREATE TABLE par (id int PRIMARY KEY, v text);
        CREATE TABLE kid () INHERITS (par);
        INSERT INTO par VALUES (1, 'parent');
        INSERT INTO kid VALUES (1, 'child')
        """,
    )
    # Its primary key does not identify the rows a scan of it returns.
    assert session.execute("SELECT count(*) FROM par WHERE id = 1", ()) == [(2,)]
    found = by_name(session, schema)
    assert found["par"].key is None and not found["par"].editable
    assert describe(session, schema, "par").key is None
    assert describe(session, schema, "par").primary_key == ["id"]
    session.execute("DROP TABLE kid", ())
    assert by_name(session, schema)["par"].key == ["id"]


def test_sqlite_rowid_reached_by_its_real_alias(lite: Session) -> None:
    script(
        lite,
        """
        CREATE TABLE x (rowid TEXT, v TEXT);
        CREATE TABLE y (rowid TEXT, _rowid_ TEXT, v TEXT);
        CREATE TABLE plain (v TEXT);
        INSERT INTO x VALUES ('mine', 'a'), ('yours', 'b');
        INSERT INTO y VALUES ('mine', 'too', 'a')
        """,
    )
    found = by_name(lite, "main")
    assert (found["x"].key, found["x"].rowid_column) == ("rowid", "_rowid_")
    assert (found["y"].key, found["y"].rowid_column) == ("rowid", "oid")
    assert (found["plain"].key, found["plain"].rowid_column) == ("rowid", "rowid")
    described = describe(lite, "main", "x")
    assert (described.key, described.rowid_column) == ("rowid", "_rowid_")
    assert described.rowid_column is not None
    alias = lite.quote_identifier(described.rowid_column)
    # The real rowids, not the user's column called "rowid".
    assert lite.execute(f"SELECT {alias}, v FROM x ORDER BY {alias}", ()) == [(1, "a"), (2, "b")]


def test_sqlite_catalogue_reads_the_same_in_prod(lite: Session, tmp_path: Path) -> None:
    """PROD's session (mode=ro, query_only, the allow-list authorizer) reads the catalogue the
    way DEV's does: table-valued pragmas, sqlite_schema, sqlite_stat1, virtual tables."""
    q = lite.quote_identifier
    script(
        lite,
        f"""
        CREATE TABLE parent (id INTEGER PRIMARY KEY, code TEXT NOT NULL UNIQUE);
        CREATE TABLE child (a TEXT, b INT, p INT REFERENCES parent, PRIMARY KEY (a, b))
            WITHOUT ROWID;
        CREATE TABLE {q(HOSTILE[0])} ({q(HOSTILE[1])} INTEGER PRIMARY KEY, {q(HOSTILE[2])});
        CREATE INDEX child_p ON child (p) WHERE p > 0;
        CREATE VIEW v AS SELECT * FROM parent;
        CREATE VIRTUAL TABLE fts USING fts5 (body);
        INSERT INTO parent VALUES (1, 'a'), (2, 'b');
        ANALYZE
        """,
    )
    names = ["parent", "child", HOSTILE[0], "v", "fts"]
    expected = (tables(lite), [describe(lite, None, n) for n in names])
    prod = open_sqlite(str(tmp_path / "db.sqlite"), read_only=True, in_store=False, timeout=5)
    try:
        assert (tables(prod), [describe(prod, None, n) for n in names]) == expected
        assert find_table(prod, "main", HOSTILE[0]) == ("main", HOSTILE[0], "table")
        assert {t.name: t.row_estimate for t in tables(prod)}["parent"] == 2
        assert prod.check()[1] is True
    finally:
        prod.close()


def test_postgres_table_list_is_not_held_by_a_table_locked_by_a_migration(
    pg: tuple[Session, str], postgres: str
) -> None:
    import psycopg

    session, schema = pg
    script(session, "CREATE TABLE locked (id int PRIMARY KEY); CREATE TABLE free (id int)")
    with psycopg.connect(postgres) as migration:  # ALTER TABLE, VACUUM FULL, REINDEX...
        migration.execute(f"LOCK TABLE {schema}.locked IN ACCESS EXCLUSIVE MODE")
        session.execute("SET statement_timeout = '2s'", ())
        try:
            found = by_name(session, schema)
        finally:
            session.execute("RESET statement_timeout", ())
            migration.rollback()
    assert found["locked"].key == ["id"]  # its key still known, from the catalogue
    assert found["free"].key is None
