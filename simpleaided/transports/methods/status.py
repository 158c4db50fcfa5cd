"""``status.*``: the status document, read from memory or streamed as it changes."""

from __future__ import annotations

from typing import Any

import orjson

from simpleaided.domain import api
from simpleaided.domain.status import StatusDocument
from simpleaided.services.events import EventHub
from simpleaided.services.runs import RunService
from simpleaided.services.status import StatusService
from simpleaided.transports.methods.base import MethodList
from simpleaided.transports.rpc import Method


def status_methods(runs: RunService, status: StatusService, events: EventHub) -> list[Method]:
    """Get the status document, subscribe to its changes, unsubscribe."""
    methods = MethodList()
    add = methods.add

    @add("status.get", api.ScopeParams, StatusDocument, "The status document, from memory.")
    def status_get(p: api.ScopeParams, conn: Any) -> orjson.Fragment:
        return status.encoded(p.workspace)

    @add(
        "status.subscribe",
        api.ScopeParams,
        api.StatusSnapshot,
        "The status document and its seq; then status.changed notifications on this connection.",
    )
    def status_subscribe(p: api.ScopeParams, conn: Any) -> dict[str, Any]:
        return events.subscribe_status(conn, runs.scope(p.workspace))

    @add("status.unsubscribe", api.NoParams, api.Unsubscribed, "Stop status.changed.")
    def status_unsubscribe(p: api.NoParams, conn: Any) -> dict[str, Any]:
        return {"unsubscribed": events.unsubscribe_status(conn)}

    return methods
