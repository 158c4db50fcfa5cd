"""The catalogue of a session's database: its tables and views, how a row of each is
identified, and the description of one table (columns, keys, indexes, foreign keys, DDL).

Every name a client sends is looked up here first (``find_table``, an exact match) and only the
catalogue's own spelling, quoted by the session (``Session.quote_identifier``), ever reaches SQL
text; queries on the catalogue bind their values as parameters.

Row identity (``key``), in order: the primary key; a SQLite rowid table's ``"rowid"``; the
columns of a unique index whose columns are all NOT NULL (no predicate, no expression); else
``None``, and the table is not editable. Views are never editable, nor is a PostgreSQL table
that other tables inherit from (``INHERITS``): its rows include theirs, which its keys do not
cover (a partitioned table's primary key does cover its partitions, and it stays editable).
A SQLite rowid table whose primary key may hold NULLs (SQLite allows it unless the columns are
declared NOT NULL) is identified by its rowid instead: two rows with a NULL key could not be
told apart.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from simpleaided.domain.errors import BackendUnavailable, InvalidInput, NotFound
from simpleaided.store.sql import Session

TableKind = Literal["table", "view"]
Generated = Literal["stored", "virtual", "identity always", "identity by default"]
Key = list[str] | Literal["rowid"] | None

# SQLite names the rowid by any of these unless a column of that name hides it.
ROWID_ALIASES = ("rowid", "_rowid_", "oid")


@dataclass(frozen=True)
class TableInfo:
    """One table or view, its row estimate (``None``: unknown) and its row identity.

    With ``key == "rowid"``, ``rowid_column`` is the name SQL reaches the rowid by (``rowid``,
    or ``_rowid_``/``oid`` when a column of the table is called ``rowid``); else ``None``."""

    schema: str
    name: str
    kind: TableKind
    row_estimate: int | None
    key: Key
    rowid_column: str | None = None

    @property
    def editable(self) -> bool:
        return self.key is not None


@dataclass(frozen=True)
class Column:
    """One column: ``type`` as declared (SQLite, may be ``""``) or formatted (PostgreSQL);
    ``default`` as SQL text; ``generated`` says how the database computes the value."""

    name: str
    type: str
    nullable: bool
    default: str | None
    primary_key: bool
    generated: Generated | None

    @property
    def writable(self) -> bool:
        """Whether an insert or update may give this column a value."""
        return self.generated in (None, "identity by default")


@dataclass(frozen=True)
class Index:
    """One index; ``columns`` holds ``None`` for an expression; ``definition`` is its SQL
    (``None`` for an index SQLite made itself)."""

    name: str
    columns: list[str | None]
    unique: bool
    primary: bool
    partial: bool
    definition: str | None


@dataclass(frozen=True)
class ForeignKey:
    """A foreign key (``name`` is ``None`` on SQLite, which keeps no names for them)."""

    name: str | None
    columns: list[str]
    ref_schema: str
    ref_table: str
    ref_columns: list[str]
    on_update: str
    on_delete: str


@dataclass(frozen=True)
class TableDescription:
    """Everything the grid needs to show and edit one table or view."""

    schema: str
    name: str
    kind: TableKind
    columns: list[Column]
    primary_key: list[str]
    key: Key
    indexes: list[Index]
    foreign_keys: list[ForeignKey]
    ddl: str | None
    rowid_column: str | None = None  # as in TableInfo: the rowid's SQL name for key "rowid"


@dataclass(frozen=True)
class _Candidate:
    """A unique index as a row identity may use it."""

    name: str
    primary: bool
    usable: bool  # unique, valid, no predicate, no expression, every column NOT NULL
    columns: list[str]


def rowid_alias(columns: Sequence[str]) -> str | None:
    """The name by which SQL reaches a rowid table's rowid, given its column names."""
    taken = {c.lower() for c in columns}
    return next((a for a in ROWID_ALIASES if a not in taken), None)


def qualified(session: Session, schema: str, name: str) -> str:
    """``"schema"."name"``, quoted by the session; the names must come from the catalogue.

    SQL text for a statement run without parameters; in a grid statement it is the source of
    ``PageQuery.sql``, which doubles its ``%`` on PostgreSQL (``grid.sql_text``)."""
    return f"{session.quote_identifier(schema)}.{session.quote_identifier(name)}"


def tables(session: Session) -> list[TableInfo]:
    """Every table and view outside the system schemas, by schema then name."""
    if session.kind == "sqlite":
        return _sqlite_tables(session)
    return _pg_tables(session)


def find_table(session: Session, schema: str | None, name: str) -> tuple[str, str, TableKind]:
    """The table or view ``name`` as the catalogue spells it, in ``schema`` or, without one,
    where the database itself would look first (SQLite: temp, main, then attached ones;
    PostgreSQL: the search path). ``NotFound`` unless a name matches exactly."""
    if session.kind == "sqlite":
        _sqlite_check_version()
        sql = (
            "SELECT t.schema, t.name, t.type, 1 FROM pragma_table_list t"
            " JOIN pragma_database_list d ON d.name = t.schema WHERE t.name = ?"
            " AND t.type IN ('table', 'view', 'virtual')"
            " AND t.name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
            " ORDER BY t.schema = 'temp' DESC, d.seq"
        )
    else:
        sql = (
            "SELECT n.nspname, c.relname, c.relkind::text,"
            " array_position(current_schemas(false), n.nspname) IS NOT NULL"
            " FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relname = %s AND c.relkind IN ('r', 'p', 'f', 'v', 'm')"
            " AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'"
            " ORDER BY array_position(current_schemas(false), n.nspname), n.nspname"
        )
    rows = session.execute(sql, (name,))
    if schema is not None:
        rows = [r for r in rows if r[0] == schema]
        if not rows:
            raise NotFound(f'no table or view named "{name}" in schema "{schema}"')
    if not rows:
        raise NotFound(f'no table or view named "{name}"')
    found_schema, found_name, kind, searched = rows[0]
    if not searched and len(rows) > 1:
        schemas = ", ".join(r[0] for r in rows)
        raise InvalidInput(f'"{name}" is a name in several schemas ({schemas}): say which one')
    return found_schema, found_name, _kind(kind)


def describe(session: Session, schema: str | None, name: str) -> TableDescription:
    """The columns, keys, indexes, foreign keys and DDL of one table or view."""
    schema, name, kind = find_table(session, schema, name)
    if session.kind == "sqlite":
        return _sqlite_describe(session, schema, name, kind)
    return _pg_describe(session, schema, name, kind)


def _kind(engine_kind: str) -> TableKind:
    return "view" if engine_kind in ("view", "v", "m") else "table"


def _unique_key(candidates: Sequence[_Candidate]) -> list[str] | None:
    usable = [c for c in candidates if c.usable and not c.primary]
    if not usable:
        return None
    return min(usable, key=lambda c: (len(c.columns), c.name)).columns


# --- SQLite ------------------------------------------------------------------------------------

_SQLITE_MIN = (3, 37, 0)  # pragma_table_list


def _sqlite_check_version() -> None:
    if sqlite3.sqlite_version_info < _SQLITE_MIN:
        raise BackendUnavailable(
            f"browsing tables needs SQLite 3.37 or later (this is {sqlite3.sqlite_version})"
        )


@dataclass(frozen=True)
class _SqliteColumn:
    name: str
    type: str
    notnull: bool
    default: str | None
    pk: int  # position in the primary key, from 1; 0 when not in it
    hidden: int  # 0 plain, 1 hidden (virtual tables), 2 generated virtual, 3 generated stored


def _sqlite_columns(session: Session, schema: str, name: str) -> list[_SqliteColumn]:
    rows = session.execute(
        'SELECT name, type, "notnull", dflt_value, pk, hidden FROM pragma_table_xinfo(?, ?)'
        " ORDER BY cid",
        (name, schema),
    )
    return [_SqliteColumn(r[0], r[1], bool(r[2]), r[3], r[4], r[5]) for r in rows if r[5] != 1]


def _sqlite_indexes(session: Session, schema: str, name: str) -> list[Index]:
    found = []
    for index, unique, origin, partial in session.execute(
        'SELECT name, "unique", origin, partial FROM pragma_index_list(?, ?) ORDER BY name',
        (name, schema),
    ):
        columns = [
            r[0]
            for r in session.execute(
                "SELECT name FROM pragma_index_xinfo(?, ?) WHERE key ORDER BY seqno",
                (index, schema),
            )
        ]
        sql = session.execute(
            f"SELECT sql FROM {session.quote_identifier(schema)}.sqlite_schema"
            " WHERE type = 'index' AND name = ?",
            (index,),
        )
        found.append(
            Index(
                index,
                columns,
                bool(unique),
                origin == "pk",
                bool(partial),
                sql[0][0] if sql else None,
            )
        )
    return found


def _sqlite_key(
    columns: Sequence[_SqliteColumn], indexes: Sequence[Index], without_rowid: bool
) -> Key:
    pk = [c.name for c in sorted((c for c in columns if c.pk), key=lambda c: c.pk)]
    if without_rowid:
        return pk  # its primary key is the table's: NOT NULL, always present
    # An INTEGER PRIMARY KEY is the rowid itself and has no index of its own.
    pk_is_rowid = bool(pk) and not any(i.primary for i in indexes)
    if pk and (pk_is_rowid or all(c.notnull for c in columns if c.pk)):
        return pk
    if rowid_alias([c.name for c in columns]) is not None:
        return "rowid"
    notnull = {c.name for c in columns if c.notnull}
    return _unique_key(
        [
            _Candidate(
                i.name,
                i.primary,
                i.unique
                and not i.partial
                and all(c is not None and c in notnull for c in i.columns),
                [c for c in i.columns if c is not None],
            )
            for i in indexes
        ]
    )


def _sqlite_estimates(session: Session, schema: str) -> dict[str, int]:
    present = session.execute(
        "SELECT 1 FROM pragma_table_list WHERE schema = ? AND name = 'sqlite_stat1'", (schema,)
    )
    if not present:
        return {}
    # The first number of each row is the table's row count when ANALYZE ran.
    rows = session.execute(
        "SELECT tbl, max(CAST(stat AS INTEGER)) FROM "
        f"{session.quote_identifier(schema)}.sqlite_stat1 GROUP BY tbl",
        (),
    )
    return {tbl: count for tbl, count in rows if count is not None}


def _sqlite_tables(session: Session) -> list[TableInfo]:
    _sqlite_check_version()
    rows = session.execute(
        "SELECT schema, name, type, wr FROM pragma_table_list"
        " WHERE type IN ('table', 'view', 'virtual') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
        " ORDER BY schema = 'main' DESC, schema = 'temp' DESC, schema, name",
        (),
    )
    estimates: dict[str, dict[str, int]] = {}
    found = []
    for schema, name, kind, without_rowid in rows:
        if schema not in estimates:
            estimates[schema] = _sqlite_estimates(session, schema)
        key: Key = None
        rowid = None
        # A virtual table's module decides what it accepts: never guessed editable.
        if kind == "table":
            columns = _sqlite_columns(session, schema, name)
            key = _sqlite_key(columns, _sqlite_indexes(session, schema, name), bool(without_rowid))
            rowid = rowid_alias([c.name for c in columns]) if key == "rowid" else None
        estimate = estimates[schema].get(name) if kind != "view" else None
        found.append(TableInfo(schema, name, _kind(kind), estimate, key, rowid))
    return found


def _sqlite_describe(session: Session, schema: str, name: str, kind: TableKind) -> TableDescription:
    info = session.execute(
        "SELECT type, wr FROM pragma_table_list WHERE schema = ? AND name = ?", (schema, name)
    )
    engine_kind, without_rowid = info[0] if info else ("view", 0)
    raw = _sqlite_columns(session, schema, name)
    indexes = _sqlite_indexes(session, schema, name) if kind == "table" else []
    key = _sqlite_key(raw, indexes, bool(without_rowid)) if engine_kind == "table" else None
    pk_is_rowid = any(c.pk for c in raw) and not any(i.primary for i in indexes)
    columns = [
        Column(
            c.name,
            c.type,
            # A WITHOUT ROWID table's key and an INTEGER PRIMARY KEY never hold NULL.
            not (c.notnull or (c.pk and (bool(without_rowid) or pk_is_rowid))),
            c.default,
            c.pk > 0,
            "virtual" if c.hidden == 2 else "stored" if c.hidden == 3 else None,
        )
        for c in raw
    ]
    foreign_keys = _sqlite_foreign_keys(session, schema, name)
    ddl = session.execute(
        f"SELECT sql FROM {session.quote_identifier(schema)}.sqlite_schema WHERE name = ?"
        " AND type IN ('table', 'view')",
        (name,),
    )
    return TableDescription(
        schema,
        name,
        kind,
        columns,
        [c.name for c in sorted((c for c in raw if c.pk), key=lambda c: c.pk)],
        key,
        indexes,
        foreign_keys,
        ddl[0][0] if ddl else None,
        rowid_alias([c.name for c in raw]) if key == "rowid" else None,
    )


def _sqlite_foreign_keys(session: Session, schema: str, name: str) -> list[ForeignKey]:
    groups: dict[int, list[tuple[Any, ...]]] = {}
    for row in session.execute(
        'SELECT id, "table", "from", "to", on_update, on_delete'
        " FROM pragma_foreign_key_list(?, ?) ORDER BY id, seq",
        (name, schema),
    ):
        groups.setdefault(row[0], []).append(row)
    found = []
    for rows in groups.values():
        ref_table = rows[0][1]
        ref_columns = [r[3] for r in rows]
        if any(c is None for c in ref_columns):  # "REFERENCES parent": its primary key
            parent = _sqlite_columns(session, schema, ref_table)
            ref_columns = [c.name for c in sorted((c for c in parent if c.pk), key=lambda c: c.pk)]
        found.append(
            ForeignKey(
                None, [r[2] for r in rows], schema, ref_table, ref_columns, rows[0][4], rows[0][5]
            )
        )
    return found


# --- PostgreSQL --------------------------------------------------------------------------------

_PG_USER_RELATIONS = (
    "c.relkind IN ('r', 'p', 'f', 'v', 'm')"
    " AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'"  # pg_catalog, toast, temp
)

# Each index of the selected tables: its key columns (not INCLUDE ones) in order, NULL for an
# expression, and whether a row identity may rest on it.
_PG_INDEXES = """
SELECT i.indrelid, ic.relname, i.indisprimary, i.indisunique,
       i.indisunique AND i.indimmediate AND i.indisvalid AND i.indisready AND i.indislive
         AND i.indpred IS NULL AND i.indexprs IS NULL
         AND bool_and(coalesce(a.attnotnull, false)),
       i.indpred IS NOT NULL,
       array_agg(a.attname::text ORDER BY k.ord),
       {definition}
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
JOIN pg_catalog.pg_class c ON c.oid = i.indrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE k.ord <= i.indnkeyatts AND {where}
GROUP BY i.indrelid, i.indexrelid, ic.relname
ORDER BY ic.relname
"""

_PG_ACTIONS = {
    "a": "NO ACTION",
    "r": "RESTRICT",
    "c": "CASCADE",
    "n": "SET NULL",
    "d": "SET DEFAULT",
}


# Whether other tables inherit from c (pg_inherits, exact; relhassubclass may lag a DROP).
_PG_INHERITED = (
    "c.relkind = 'r' AND EXISTS (SELECT 1 FROM pg_catalog.pg_inherits h WHERE h.inhparent = c.oid)"
)


def _pg_key(kind: TableKind, candidates: Sequence[_Candidate], inherited: bool) -> Key:
    if kind == "view" or inherited:
        return None  # an inherited table's scan returns its children's rows too
    for c in candidates:
        if c.primary:
            return c.columns
    return _unique_key(candidates)


def _pg_index_rows(
    session: Session, where: str, params: tuple[Any, ...], *, definitions: bool = True
) -> dict[int, list[tuple[Index, _Candidate]]]:
    # pg_get_indexdef waits for a lock on the index's table: for the table list (no
    # definitions) one table locked by a migration (ALTER TABLE, VACUUM FULL) would hold all.
    read = "pg_catalog.pg_get_indexdef(i.indexrelid)" if definitions else "''"
    found: dict[int, list[tuple[Index, _Candidate]]] = {}
    for relid, name, primary, unique, usable, partial, columns, definition in session.execute(
        _PG_INDEXES.format(where=where, definition=read), params
    ):
        index = Index(name, list(columns), unique, primary, partial, definition)
        candidate = _Candidate(name, primary, bool(usable), [c for c in columns if c is not None])
        found.setdefault(relid, []).append((index, candidate))
    return found


def _pg_tables(session: Session) -> list[TableInfo]:
    rows = session.execute(
        f"SELECT c.oid, n.nspname, c.relname, c.relkind::text, c.reltuples, {_PG_INHERITED}"
        " FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        f" WHERE {_PG_USER_RELATIONS} ORDER BY n.nspname, c.relname",
        (),
    )
    indexes = _pg_index_rows(session, _PG_USER_RELATIONS, (), definitions=False)
    found = []
    for relid, schema, name, relkind, reltuples, inherited in rows:
        kind = _kind(relkind)
        pairs = indexes.get(relid, [])
        key = _pg_key(kind, [c for _, c in pairs], inherited)
        # reltuples is -1 until the table is first vacuumed or analyzed (PostgreSQL 14+).
        estimate = int(reltuples) if kind == "table" and reltuples >= 0 else None
        found.append(TableInfo(schema, name, kind, estimate, key))
    return found


def _pg_describe(session: Session, schema: str, name: str, kind: TableKind) -> TableDescription:
    (relid, relkind, inherited), *_ = session.execute(
        f"SELECT c.oid, c.relkind::text, {_PG_INHERITED} FROM pg_catalog.pg_class c"
        " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname = %s",
        (schema, name),
    )
    pairs = _pg_index_rows(session, "i.indrelid = %s::oid", (relid,)).get(relid, [])
    indexes = [i for i, _ in pairs]
    primary_key = next((c.columns for _, c in pairs if c.primary), [])
    columns = [
        Column(
            col,
            typ,
            nullable,
            None if generated == "s" else default,
            col in primary_key,
            "stored"
            if generated == "s"
            else "identity always"
            if identity == "a"
            else "identity by default"
            if identity == "d"
            else None,
        )
        for col, typ, nullable, default, generated, identity in session.execute(
            "SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,"
            " pg_catalog.pg_get_expr(d.adbin, d.adrelid), a.attgenerated::text,"
            " a.attidentity::text"
            " FROM pg_catalog.pg_attribute a LEFT JOIN pg_catalog.pg_attrdef d"
            " ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
            " WHERE a.attrelid = %s::oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            (relid,),
        )
    ]
    foreign_keys = [
        ForeignKey(
            conname,
            list(cols),
            ref_schema,
            ref_table,
            list(ref_cols),
            _PG_ACTIONS[upd],
            _PG_ACTIONS[dele],
        )
        for conname, cols, ref_schema, ref_table, ref_cols, upd, dele in session.execute(
            "SELECT con.conname,"
            " ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, o)"
            "  JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n"
            "  ORDER BY k.o),"
            " fn.nspname, fc.relname,"
            " ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, o)"
            "  JOIN pg_catalog.pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n"
            "  ORDER BY k.o),"
            " con.confupdtype::text, con.confdeltype::text"
            " FROM pg_catalog.pg_constraint con"
            " JOIN pg_catalog.pg_class fc ON fc.oid = con.confrelid"
            " JOIN pg_catalog.pg_namespace fn ON fn.oid = fc.relnamespace"
            " WHERE con.conrelid = %s::oid AND con.contype = 'f' ORDER BY con.conname",
            (relid,),
        )
    ]
    key = _pg_key(kind, [c for _, c in pairs], inherited)
    return TableDescription(
        schema,
        name,
        kind,
        columns,
        primary_key,
        key,
        indexes,
        foreign_keys,
        _pg_ddl(session, relid, relkind, schema, name, columns),
    )


def _pg_ddl(
    session: Session, relid: int, relkind: str, schema: str, name: str, columns: Sequence[Column]
) -> str:
    """A ``CREATE`` statement rebuilt from the catalogue, to read (not a dump): columns with
    their type, default, generation and NOT NULL; the table's constraints; then its other
    indexes. A view is its ``CREATE VIEW … AS`` with the stored query. Names are quoted only
    where they need it, as PostgreSQL's own ``pg_get_indexdef`` does."""
    names = [schema, name, *(c.name for c in columns)]
    (quoted,), *_ = session.execute(
        "SELECT array_agg(quote_ident(n) ORDER BY o)"
        " FROM unnest(%s::text[]) WITH ORDINALITY AS u(n, o)",
        (names,),
    )
    qualified_name = f"{quoted[0]}.{quoted[1]}"
    if relkind in ("v", "m"):
        (query,), *_ = session.execute("SELECT pg_catalog.pg_get_viewdef(%s::oid, true)", (relid,))
        what = "MATERIALIZED VIEW" if relkind == "m" else "VIEW"
        return f"CREATE {what} {qualified_name} AS\n{query.rstrip().rstrip(';')};"
    expressions = dict(
        session.execute(
            "SELECT a.attname, pg_catalog.pg_get_expr(d.adbin, d.adrelid)"
            " FROM pg_catalog.pg_attrdef d JOIN pg_catalog.pg_attribute a"
            " ON a.attrelid = d.adrelid AND a.attnum = d.adnum WHERE d.adrelid = %s::oid",
            (relid,),
        )
    )
    lines = []
    for c, quoted_name in zip(columns, quoted[2:], strict=True):
        line = f"{quoted_name} {c.type}"
        if c.generated == "stored":
            line += f" GENERATED ALWAYS AS ({expressions.get(c.name)}) STORED"
        elif c.generated is not None:
            line += f" GENERATED {c.generated.removeprefix('identity ').upper()} AS IDENTITY"
        elif c.default is not None:
            line += f" DEFAULT {c.default}"
        if not c.nullable:
            line += " NOT NULL"
        lines.append(line)
    lines += [
        f"CONSTRAINT {constraint} {definition}"
        for constraint, definition in session.execute(
            "SELECT quote_ident(conname), pg_catalog.pg_get_constraintdef(oid, true)"
            " FROM pg_catalog.pg_constraint"
            " WHERE conrelid = %s::oid AND contype IN ('p', 'u', 'f', 'c', 'x')"
            " ORDER BY CASE contype WHEN 'p' THEN 0 WHEN 'u' THEN 1 ELSE 2 END, conname",
            (relid,),
        )
    ]
    what = "FOREIGN TABLE" if relkind == "f" else "TABLE"
    ddl = f"CREATE {what} {qualified_name} (\n    " + ",\n    ".join(lines) + "\n)"
    if relkind == "p":
        (partition,), *_ = session.execute("SELECT pg_catalog.pg_get_partkeydef(%s::oid)", (relid,))
        ddl += f" PARTITION BY {partition}"
    ddl += ";"
    for (definition,) in session.execute(
        "SELECT pg_catalog.pg_get_indexdef(i.indexrelid) FROM pg_catalog.pg_index i"
        " WHERE i.indrelid = %s::oid AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint con"
        "  WHERE con.conindid = i.indexrelid AND con.conrelid = i.indrelid)"
        " ORDER BY i.indexrelid::regclass::text",
        (relid,),
    ):
        ddl += f"\n{definition};"
    return ddl


def estimate(session: Session, schema: str, name: str) -> int | None:
    """The row estimate of one table without counting: PostgreSQL's ``reltuples``; SQLite's
    ``sqlite_stat1``, else a rowid table's largest rowid (one index step; rows deleted below
    it make it high); ``None`` when nothing cheap says."""
    if session.kind == "sqlite":
        found = _sqlite_estimates(session, schema).get(name)
        if found is not None:
            return found
        columns = _sqlite_columns(session, schema, name)
        info = session.execute(
            "SELECT wr FROM pragma_table_list WHERE schema = ? AND name = ? AND type = 'table'",
            (schema, name),
        )
        rowid = rowid_alias([c.name for c in columns])
        if not info or info[0][0] or rowid is None:
            return None  # a view, a WITHOUT ROWID table, or every rowid name taken
        source = qualified(session, schema, name)
        ((largest,),) = session.execute(f"SELECT max({rowid}) FROM {source}", ())
        return int(largest) if isinstance(largest, int) else 0
    rows = session.execute(
        "SELECT c.reltuples FROM pg_catalog.pg_class c"
        " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname = %s",
        (schema, name),
    )
    return int(rows[0][0]) if rows and rows[0][0] >= 0 else None
