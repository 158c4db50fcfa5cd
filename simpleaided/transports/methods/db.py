"""``db.*``: the active profile's database."""

from __future__ import annotations

from typing import Any

from simpleaided.domain import api
from simpleaided.domain.status import DbSection
from simpleaided.transports.methods.base import MethodList, Probed
from simpleaided.transports.rpc import Method


def db_methods(database: Probed) -> list[Method]:
    """Every ``db.*`` method."""
    methods = MethodList()
    add = methods.add

    @add("db.status", api.NoParams, DbSection, "The active profile's database, last probe.")
    def db_status(p: api.NoParams, conn: Any) -> dict[str, Any]:
        return database.section()

    return methods
