"""A long ``db.query`` through the real daemon, on a real SQLite file and the machine's
PostgreSQL: stopped by ``db.cancel`` from another connection, by its client leaving, or by its
time limit, promptly; and the status probe keeps answering while it runs."""

from __future__ import annotations

import itertools
import json
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.support.daemon import running_daemon
from tests.support.rpc import RpcClient
from tests.support.waiting import eventually

CANCELLED, OVER_TIME, BAD_INPUT = -32800, -32040, -32602
PROMPT = 0.5  # seconds: how soon a stopped query answers

ENDLESS = {
    # Counting an endless recursion: SQLite computes without ever waiting.
    "sqlite": (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    ),
    "postgres": "SELECT pg_sleep(30)",
}


class Target:
    """The database under test: its engine, the daemon's URL, and for PostgreSQL a
    connection of the test's own to watch the server's backends (the daemon's carry an
    application name of this test's own)."""

    def __init__(self, kind: str, url: str) -> None:
        self.kind = kind
        self.url = url
        self.watcher: Any = None
        self.name = f"grid-{uuid.uuid4().hex[:16]}"
        if kind == "postgres":
            import psycopg

            self.watcher = psycopg.connect(url, autocommit=True)
            self.url = f"{url}?application_name={self.name}"

    @property
    def statement(self) -> str:
        return ENDLESS[self.kind]

    def active(self) -> int:
        """How many of the daemon's PostgreSQL backends are running a statement."""
        rows = self.watcher.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active'"
            " AND application_name = %s",
            (self.name,),
        ).fetchall()
        return int(rows[0][0])


@pytest.fixture(params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        path = tmp_path / "grid.sqlite3"
        sqlite3.connect(path).close()
        yield Target("sqlite", f"sqlite://{path}")
        return
    found = Target("postgres", request.getfixturevalue("postgres"))
    try:
        yield found
    finally:
        found.watcher.close()


class Daemon:
    """A daemon serving ``target``'s database, and a way to open clients of it."""

    def __init__(self, socket: Path) -> None:
        self.socket = socket
        self.ids = itertools.count(1000)

    async def client(self) -> RpcClient:
        return await RpcClient.connect(self.socket)

    async def send(self, client: RpcClient, method: str, **params: Any) -> int:
        """Send a request without waiting for its answer; its id."""
        request_id = next(self.ids)
        message = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        await client.send_message(json.dumps(message).encode())
        return request_id


@pytest.fixture
async def served(target: Target, isolated_env: Path) -> AsyncIterator[Daemon]:
    socket = isolated_env / "d.sock"
    settings = {"db.DEV.url": target.url, "db.probe_seconds": 600}
    async with running_daemon(socket, isolated_env / "state", **settings):
        yield Daemon(socket)


async def under_way(target: Target) -> None:
    """Until the daemon's statement runs: PostgreSQL lists it among its active backends;
    SQLite shows nothing outside the daemon, so it is given a moment."""
    if target.kind == "postgres":
        await eventually(lambda: target.active() == 1, 5)
    else:
        await anyio.sleep(0.3)


async def test_db_cancel_from_another_connection_stops_the_query(
    target: Target, served: Daemon
) -> None:
    async with await served.client() as asking, await served.client() as other:
        sent = await served.send(asking, "db.query", sql=target.statement, queryId="q-1")
        await under_way(target)
        start = time.monotonic()
        assert await other.call("db.cancel", queryId="q-1") == {"cancelled": True}
        reply = await asking.receive_message()
        elapsed = time.monotonic() - start
        assert reply["id"] == sent
        assert reply["error"]["code"] == CANCELLED
        assert reply["error"]["message"] == "the query was cancelled"
        assert elapsed < PROMPT
        if target.kind == "postgres":
            assert target.active() == 0
        assert await other.call("db.cancel", queryId="q-1") == {"cancelled": False}
        # The same id may run again, and the grid answers as before.
        again = await asking.call("db.query", sql="SELECT 1 AS one", queryId="q-1")
        assert again["rows"] == [[1]]


async def test_a_query_stops_when_its_client_leaves(target: Target, served: Daemon) -> None:
    async with await served.client() as other:
        asking = await served.client()
        await served.send(asking, "db.query", sql=target.statement, queryId="gone-1")
        await under_way(target)
        await asking.stream.aclose()
        left = time.monotonic()
        if target.kind == "postgres":
            await eventually(lambda: target.active() == 0, PROMPT)
        start = time.monotonic()
        assert (await other.call("db.query", sql="SELECT 2 AS two"))["rows"] == [[2]]
        assert time.monotonic() - start < PROMPT
        await anyio.sleep(max(0.0, left + PROMPT - time.monotonic()))
        # Still running, it would be cancelled now (true): it had stopped already.
        assert await other.call("db.cancel", queryId="gone-1") == {"cancelled": False}


async def test_the_status_probe_answers_while_a_query_runs(target: Target, served: Daemon) -> None:
    async with await served.client() as asking, await served.client() as probing:

        async def slowest() -> float:
            worst = 0.0
            for method in ("db.status", "status.get", "db.status", "status.get"):
                start = time.monotonic()
                await probing.call(method)
                worst = max(worst, time.monotonic() - start)
            return worst

        async def connected() -> bool:
            return bool((await probing.call("db.status"))["connected"])

        await eventually(connected, 5)  # the daemon's first probe
        normal = await slowest()
        await served.send(asking, "db.query", sql=target.statement, queryId="long-1")
        await under_way(target)
        during = await slowest()
        assert during < normal + 0.2
        assert (await probing.call("db.status"))["connected"] is True
        assert await probing.call("db.cancel", queryId="long-1") == {"cancelled": True}
        reply = await asking.receive_message()
        assert reply["error"]["code"] == CANCELLED


async def test_a_query_over_its_time_limit_stops_promptly(target: Target, served: Daemon) -> None:
    async with await served.client() as client:
        start = time.monotonic()
        failed = await client.error("db.query", sql=target.statement, timeoutMs=300)
        elapsed = time.monotonic() - start
        assert failed.code == OVER_TIME
        assert 0.3 <= elapsed < 0.3 + PROMPT
        if target.kind == "postgres":
            assert target.active() == 0
        assert (await client.call("db.query", sql="SELECT 3 AS three"))["rows"] == [[3]]


async def test_cancel_knows_only_running_queries(target: Target, served: Daemon) -> None:
    async with await served.client() as asking, await served.client() as other:
        assert await other.call("db.cancel", queryId="nothing-here") == {"cancelled": False}
        await served.send(asking, "db.query", sql=target.statement, queryId="twice")
        await under_way(target)
        failed = await other.error("db.query", sql="SELECT 1", queryId="twice")
        assert failed.code == BAD_INPUT and "already running" in failed.message
        assert await other.call("db.cancel", queryId="twice") == {"cancelled": True}
        assert (await asking.receive_message())["error"]["code"] == CANCELLED


async def test_a_cancel_that_comes_before_the_statement_starts_still_stops_it(
    target: Target, served: Daemon
) -> None:
    """Right after the request, the statement may not have started: a driver's cancel then
    stops nothing, so the daemon must not rely on the first one."""
    async with await served.client() as asking, await served.client() as other:
        for delay in (0.0, 0.001, 0.002, 0.005, 0.01):
            await served.send(asking, "db.query", sql=target.statement, queryId="early")
            await anyio.sleep(delay)
            # Sent again until the daemon knows the id (the two connections race).
            while not (await other.call("db.cancel", queryId="early"))["cancelled"]:
                pass
            start = time.monotonic()
            reply = await asking.receive_message()
            assert reply["error"]["code"] == CANCELLED, delay
            assert time.monotonic() - start < PROMPT, delay
