"""The method table: every JSON-RPC method name, its contract, and the service call behind it.

Built explicitly from the service objects (no global registry): each group's module declares
its methods next to their handlers, and ``build_methods`` concatenates the groups into the one
table, from which the dispatcher serves and ``rpc.discover`` describes, so they cannot disagree.
"""

from __future__ import annotations

from simpleaided.services.database.grid import GridService
from simpleaided.services.events import EventHub
from simpleaided.services.runs import RunService
from simpleaided.services.status import StatusService
from simpleaided.services.terminals import TerminalService
from simpleaided.services.vault import VaultService
from simpleaided.transports.methods.artifacts import artifact_methods
from simpleaided.transports.methods.base import Probed
from simpleaided.transports.methods.daemon import DaemonFacts, daemon_methods
from simpleaided.transports.methods.db import DescribedDatabase, db_methods
from simpleaided.transports.methods.http import HttpControl, http_methods
from simpleaided.transports.methods.llm import llm_methods
from simpleaided.transports.methods.runs import run_methods
from simpleaided.transports.methods.status import status_methods
from simpleaided.transports.methods.steps import step_methods
from simpleaided.transports.methods.terminals import terminal_methods
from simpleaided.transports.methods.vault import vault_methods
from simpleaided.transports.methods.workspaces import workspace_methods
from simpleaided.transports.rpc import Method

__all__ = ["DaemonFacts", "HttpControl", "Probed", "build_methods"]


def build_methods(
    runs: RunService,
    status: StatusService,
    events: EventHub,
    daemon: DaemonFacts,
    *,
    vault: VaultService,
    database: DescribedDatabase,
    grid: GridService,
    llm: Probed,
    http: HttpControl,
    terminals: TerminalService,
) -> list[Method]:
    """Every method the daemon serves."""
    methods: list[Method] = []
    # rpc.discover describes the whole table, which is complete by the time it is first asked.
    methods += daemon_methods(daemon, table=lambda: methods)
    methods += workspace_methods(runs)
    methods += status_methods(runs, status, events)
    methods += run_methods(runs, events)
    methods += step_methods(runs)
    methods += artifact_methods(runs)
    methods += vault_methods(vault)
    methods += db_methods(database, grid)
    methods += llm_methods(llm)
    methods += http_methods(http)
    methods += terminal_methods(terminals)
    return methods
