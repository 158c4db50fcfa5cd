"""The ``db.*`` contract: the database grid's parameters (README: The grid).

Names of tables, schemas and columns are any text (quotes, spaces, Unicode): the service checks
them against the catalogue and the driver quotes them; here only their size is bounded.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from simpleaided.domain import grid, names
from simpleaided.domain.api.base import Params
from simpleaided.domain.api.fields import checked
from simpleaided.domain.grid import FilterOp
from simpleaided.domain.status import DbSection
from simpleaided.domain.vocabulary import DbKind

MAX_PAGE_ROWS = 1000
MAX_CELL_BYTES = 16 * 1024 * 1024
MAX_EDITS = 1000
MAX_QUERY_ROWS = 100_000
MAX_QUERY_MS = 3_600_000
MAX_SQL_CHARS = 256 * 1024  # one statement; well under the smallest message limit a test sets


def _no_nul(value: str) -> str:
    if "\0" in value:
        raise ValueError("a name cannot hold a NUL character")
    return value


Name = Annotated[
    str,
    Field(
        title="name",
        description="a table, schema or column name: any text without NUL",
        pattern=names.NO_NUL_PATTERN,
        min_length=1,
        max_length=1024,
    ),
    checked(_no_nul),
]
"""A table, schema or column name."""
CursorText = Annotated[
    str,
    Field(
        title="cursor",
        description="the next or prev cursor of a db.rows page, as it came",
        min_length=1,
        max_length=grid.MAX_CURSOR_CHARS,
    ),
]
QueryId = Annotated[
    str,
    Field(
        title="query id",
        description="1 to 64 of A-Z a-z 0-9 . _ -, chosen by the client",
        pattern=r"^[A-Za-z0-9._-]{1,64}$",
        examples=["q1"],
    ),
]
RowKey = Annotated[list[Any], Field(min_length=1, max_length=64)]
"""A row's key: its key columns' values in the order ``db.tables`` lists them."""
# Only names of the pattern: ``patternProperties`` alone would let a name with NUL through.
RowValues = Annotated[
    dict[Name, Any], Field(max_length=4096, json_schema_extra={"additionalProperties": False})
]


class TableParams(Params):
    """A table (or view) of the profile's database; ``schema`` defaults to the search path's
    first (PostgreSQL) or ``main`` (SQLite)."""

    table: Name
    schema_: Name | None = Field(None, alias="schema")


class SortParam(Params):
    column: Name
    desc: bool = False


class FilterParam(Params):
    column: Name
    op: FilterOp
    value: Any = None

    @model_validator(mode="after")
    def _value_fits_op(self) -> FilterParam:
        grid.check_filter(self.op, self.value)
        return self


Filters = Annotated[list[FilterParam], Field(max_length=64)]


class RowsParams(TableParams):
    """``db.rows``: one page, after the ``next`` cursor or before the ``prev`` one."""

    sort: Annotated[list[SortParam], Field(max_length=16)] = []
    filters: Filters = []
    after: CursorText | None = None
    before: CursorText | None = None
    limit: int = Field(100, ge=1, le=MAX_PAGE_ROWS)
    cell_bytes: int = Field(1024, ge=16, le=MAX_CELL_BYTES)

    @model_validator(mode="after")
    def _one_cursor_and_each_column_once(self) -> RowsParams:
        if self.after is not None and self.before is not None:
            raise ValueError("give after or before, not both")
        columns = [s.column for s in self.sort]
        if len(set(columns)) != len(columns):
            raise ValueError("sort by each column once")
        return self


class CellParams(TableParams):
    """``db.cell``: the whole value of one cell."""

    key: RowKey
    column: Name


class CountParams(TableParams):
    filters: Filters = []


class Change(Params):
    """One change of a ``db.edit`` batch. An update or delete names its row by ``key`` and
    carries ``expect``, the values the client read, so a row changed underneath is detected."""

    op: Literal["insert", "update", "delete"]
    key: RowKey | None = None
    values: RowValues | None = None
    expect: RowValues | None = None

    @model_validator(mode="after")
    def _fields_fit_op(self) -> Change:
        if self.op == "insert":
            if self.key is not None or self.expect is not None:
                raise ValueError("an insert takes values only (no key, no expect)")
            if self.values is None:
                raise ValueError("an insert needs values")
            return self
        if self.key is None or not self.expect:
            article = "an" if self.op == "update" else "a"
            raise ValueError(
                f"{article} {self.op} needs the row's key and expect (the values read)"
            )
        if self.op == "update" and not self.values:
            raise ValueError("an update needs values to set")
        if self.op == "delete" and self.values is not None:
            raise ValueError("a delete takes no values")
        return self


class EditParams(TableParams):
    """``db.edit``: a batch applied in one transaction, or not at all."""

    changes: Annotated[list[Change], Field(min_length=1, max_length=MAX_EDITS)]


class QueryParams(Params):
    """``db.query``: one statement, capped in rows and time, cancellable by ``queryId``."""

    sql: Annotated[str, Field(min_length=1, max_length=MAX_SQL_CHARS)]
    params: Annotated[list[Any], Field(max_length=10_000)] | None = None
    limit: int = Field(1000, ge=1, le=MAX_QUERY_ROWS)
    timeout_ms: int = Field(30_000, ge=1, le=MAX_QUERY_MS)
    query_id: QueryId | None = None


class CancelParams(Params):
    query_id: QueryId


# --- Results --------------------------------------------------------------------------------


class DbTargetInfo(BaseModel):
    """Which database the profile names, with no secret: a SQLite file's ``path``, or a
    PostgreSQL server's ``host``, ``port``, ``dbname`` and ``user`` as the URL gives them
    (``None``: not in the URL, libpq's default applies; several hosts or ports are
    comma-separated, as libpq takes them). ``type`` is ``None`` while the URL is a vault
    secret (``vaultSecret``: its name) not yet read."""

    type: DbKind | None
    path: str | None
    host: str | None
    port: str | None
    dbname: str | None
    user: str | None
    vaultSecret: str | None


class DbStatus(DbSection):
    """``db.status``: the status document's ``db`` section and which database it is
    (``target``; ``None`` while none is configured)."""

    target: DbTargetInfo | None


Cell = Any
"""One value on the wire (README: The grid): ``null``, a number, a string, a list (a PostgreSQL
array), ``{"$bytes": size, "hex": …}`` or ``{"$truncated": size, "text": …}``."""
KeyAnswer = list[str] | Literal["rowid"] | None
"""How a row is identified: the key's columns, a SQLite rowid, or ``None`` (not editable)."""


class TableEntry(BaseModel):
    """``db.tables``: one table or view, its row estimate (``None``: unknown) and its key."""

    schema_: str = Field(alias="schema")
    name: str
    kind: Literal["table", "view"]
    rowEstimate: int | None
    editable: bool
    key: KeyAnswer

    model_config = ConfigDict(populate_by_name=True)


class ColumnEntry(BaseModel):
    name: str
    type: str
    nullable: bool
    default: str | None
    primaryKey: bool
    generated: Literal["stored", "virtual", "identity always", "identity by default"] | None


class IndexEntry(BaseModel):
    name: str
    columns: list[str | None]
    unique: bool
    primary: bool
    partial: bool
    definition: str | None


class ForeignKeyEntry(BaseModel):
    name: str | None
    columns: list[str]
    refSchema: str
    refTable: str
    refColumns: list[str]
    onUpdate: str
    onDelete: str


class TableDescription(TableEntry):
    """``db.describe``: the columns, keys, indexes, foreign keys and the DDL of a table."""

    columns: list[ColumnEntry]
    primaryKey: list[str]
    indexes: list[IndexEntry]
    foreignKeys: list[ForeignKeyEntry]
    ddl: str | None


class ResultColumn(BaseModel):
    """A column of a page or a query result; ``type`` as the database names it (``""``
    when it does not say: SQLite's expressions)."""

    name: str
    type: str


class RowCount(BaseModel):
    """How many rows: ``exact`` or an estimate; ``value`` is ``None`` when not even an
    estimate is known."""

    value: int | None
    exact: bool


class RowsPage(BaseModel):
    """``db.rows``: one page. ``keys`` holds each row's key values (empty lists when the
    table has none); ``next``/``prev`` are the cursors of the pages after and before it
    (``None``: nothing there)."""

    schema_: str = Field(alias="schema")
    name: str
    columns: list[ResultColumn]
    rows: list[list[Cell]]
    keys: list[list[Cell]]
    key: KeyAnswer
    editable: bool
    next: str | None
    prev: str | None
    count: RowCount

    model_config = ConfigDict(populate_by_name=True)


class CellValue(BaseModel):
    """``db.cell``: the whole value of one cell (every byte's hex for bytes)."""

    value: Cell


class EditedRow(BaseModel):
    """A row as the database holds it after an insert or update (triggers and defaults
    applied)."""

    key: list[Cell]
    row: list[Cell]


class EditResult(BaseModel):
    """``db.edit``: one entry per change, in order (``None`` for a delete)."""

    columns: list[ResultColumn]
    rows: list[EditedRow | None]


class QueryAnswer(BaseModel):
    """``db.query``: the first ``limit`` rows, how many rows it returned or changed
    (``-1``: the database did not say), whether rows were left unread, and its time."""

    columns: list[ResultColumn]
    rows: list[list[Cell]]
    rowCount: int
    truncated: bool
    elapsedMs: float


class Cancelled(BaseModel):
    """``db.cancel``: whether a query of that id was running (and is now being stopped)."""

    cancelled: bool
