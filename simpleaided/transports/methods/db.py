"""``db.*``: the active profile's database — its probe (``db.status``) and the grid
(README: The grid)."""

from __future__ import annotations

from typing import Any, Protocol

from simpleaided.domain import api
from simpleaided.services.database.grid import GridService
from simpleaided.transports.methods.base import MethodList, Probed
from simpleaided.transports.rpc import Method


class DescribedDatabase(Probed, Protocol):
    """The database probe, which also says which database it probes."""

    def target(self) -> dict[str, str | None] | None: ...


def _filters(filters: list[api.FilterParam]) -> list[tuple[str, str, Any]]:
    return [(f.column, f.op, f.value) for f in filters]


def db_methods(database: DescribedDatabase, grid: GridService) -> list[Method]:
    """Every ``db.*`` method."""
    methods = MethodList()
    add = methods.add

    @add(
        "db.status",
        api.NoParams,
        api.DbStatus,
        "The active profile's database, last probe, and which database it is (no secret).",
    )
    def db_status(p: api.NoParams, conn: Any) -> dict[str, Any]:
        return {**database.section(), "target": database.target()}

    @add(
        "db.tables",
        api.NoParams,
        list[api.TableEntry],
        "The tables and views, with row estimates and how rows are identified.",
    )
    async def db_tables(p: api.NoParams, conn: Any) -> list[dict[str, Any]]:
        return await grid.tables()

    @add(
        "db.describe",
        api.TableParams,
        api.TableDescription,
        "A table's columns, keys, indexes, foreign keys and DDL.",
    )
    async def db_describe(p: api.TableParams, conn: Any) -> dict[str, Any]:
        return await grid.describe(p.schema_, p.table)

    @add(
        "db.rows",
        api.RowsParams,
        api.RowsPage,
        "One page of a table by keyset, sorted and filtered, after or before a cursor.",
    )
    async def db_rows(p: api.RowsParams, conn: Any) -> dict[str, Any]:
        return await grid.rows(
            p.schema_,
            p.table,
            sort=[(s.column, s.desc) for s in p.sort],
            filters=_filters(p.filters),
            after=p.after,
            before=p.before,
            limit=p.limit,
            cell_bytes=p.cell_bytes,
        )

    @add("db.cell", api.CellParams, api.CellValue, "The whole value of one cell.")
    async def db_cell(p: api.CellParams, conn: Any) -> dict[str, Any]:
        return await grid.cell(p.schema_, p.table, p.key, p.column)

    @add(
        "db.count",
        api.CountParams,
        api.RowCount,
        "How many rows: exact when quick to count, else an estimate.",
    )
    async def db_count(p: api.CountParams, conn: Any) -> dict[str, Any]:
        return await grid.count(p.schema_, p.table, _filters(p.filters))

    @add(
        "db.edit",
        api.EditParams,
        api.EditResult,
        "Insert, update and delete rows in one transaction, refused if a row changed since read.",
    )
    async def db_edit(p: api.EditParams, conn: Any) -> dict[str, Any]:
        return await grid.edit(p.schema_, p.table, p.changes)

    @add(
        "db.query",
        api.QueryParams,
        api.QueryAnswer,
        "Run one SQL statement, capped in rows and time; cancellable by its queryId.",
    )
    async def db_query(p: api.QueryParams, conn: Any) -> dict[str, Any]:
        return await grid.query(
            p.sql,
            p.params,
            limit=p.limit,
            timeout_ms=p.timeout_ms,
            query_id=p.query_id,
            gone=conn.wait_gone,
        )

    @add("db.cancel", api.CancelParams, api.Cancelled, "Stop a running db.query by its queryId.")
    def db_cancel(p: api.CancelParams, conn: Any) -> dict[str, Any]:
        return {"cancelled": grid.cancel(p.query_id)}

    return methods
