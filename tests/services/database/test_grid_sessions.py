"""The grid's sessions through the real daemon: what one client does to a session never
reaches another's (settings, the pool's last session), a half-closed client still gets its
answer, a stopping daemon cancels running queries, and errors keep secrets and say words."""

from __future__ import annotations

import contextlib
import functools
import json
import socket
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import SocketAttribute, SocketStream

from tests.support.daemon import make_daemon, running_daemon
from tests.support.pgproxy import PG_HOST, PG_PORT
from tests.support.rpc import RpcClient, pings_meanwhile

CONFLICT, BAD_INPUT, UNAVAILABLE = -32011, -32602, -32050
ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"


@pytest.fixture
def family(tmp_path: Path) -> Path:
    """A SQLite file with a parent and a child table tied by a foreign key."""
    path = tmp_path / "family.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(
            "CREATE TABLE parent (id INTEGER PRIMARY KEY);"
            "CREATE TABLE child (id INTEGER PRIMARY KEY,"
            " parent INTEGER NOT NULL REFERENCES parent(id), note TEXT);"
            "INSERT INTO parent VALUES (1); INSERT INTO child VALUES (1, 1, 'x');"
        )
    db.close()
    return path


@contextlib.asynccontextmanager
async def serving(url: str, folder: Path) -> AsyncIterator[RpcClient]:
    """A daemon whose DEV database is ``url`` (socket ``folder/d.sock``), and a client."""
    socket_path = folder / "d.sock"
    settings = {"db.DEV.url": url, "db.probe_seconds": 600}
    async with (
        running_daemon(socket_path, folder / "state", **settings),
        await RpcClient.connect(socket_path) as c,
    ):
        yield c


@pytest.fixture
async def client(family: Path, isolated_env: Path) -> AsyncIterator[RpcClient]:
    async with serving(str(family), isolated_env) as c:
        yield c


async def test_a_setting_changed_in_the_console_never_reaches_another_clients_edit(
    client: RpcClient, family: Path
) -> None:
    orphan = {"op": "insert", "values": {"id": 2, "parent": 999}}
    refused = await client.error("db.edit", table="child", changes=[orphan])
    assert refused.code == CONFLICT and "FOREIGN KEY" in refused.message
    # A client turns the check off on the session it was given...
    await client.call("db.query", sql="PRAGMA foreign_keys = OFF")
    # ...and the next edits (on whatever session the pool hands out) are still checked.
    for _ in range(6):
        again = await client.error("db.edit", table="child", changes=[orphan])
        assert again.code == CONFLICT
    with sqlite3.connect(family) as db:
        assert db.execute("SELECT count(*) FROM child").fetchone() == (1,)
    db.close()


async def test_long_queries_never_hold_every_session(client: RpcClient, isolated_env: Path) -> None:
    others = [await RpcClient.connect(isolated_env / "d.sock") for _ in range(4)]
    try:
        for n, other in enumerate(others):
            message = {"jsonrpc": "2.0", "id": n, "method": "db.query"}
            message["params"] = {"sql": ENDLESS, "queryId": f"long-{n}", "timeoutMs": 20_000}
            await other.send_message(json.dumps(message).encode())
        await anyio.sleep(0.5)  # the queries take the sessions they can
        start = time.monotonic()
        tables = await client.call("db.tables")
        assert {t["name"] for t in tables} == {"parent", "child"}
        assert time.monotonic() - start < 2  # a session was left for pages
    finally:
        for n in range(4):
            await client.call("db.cancel", queryId=f"long-{n}")
        for other in others:
            await other.__aexit__(None, None, None)


async def test_a_locked_database_never_stalls_other_clients(
    client: RpcClient, family: Path, isolated_env: Path
) -> None:
    """Pages of SQLite run on the daemon's event loop when they are quick; one that finds the
    file locked by a writer waits for it on a worker thread, never on the loop."""
    assert len((await client.call("db.rows", table="child"))["rows"]) == 1  # a pooled session
    writer = sqlite3.connect(family, isolation_level=None)
    writer.execute("BEGIN EXCLUSIVE")  # readers of a rollback-journal file must wait
    writer.execute("INSERT INTO child VALUES (2, 1, 'y')")
    other = await RpcClient.connect(isolated_env / "d.sock")
    try:
        async with anyio.create_task_group() as tg:
            page: dict[str, Any] = {}

            async def read() -> None:
                page.update(await client.call("db.rows", table="child"))

            start = time.monotonic()
            tg.start_soon(read)
            await anyio.sleep(0.2)  # the page waits for the lock meanwhile
            for _ in range(5):
                assert await other.call("daemon.ping") == "pong"
            # The daemon may share this process's loop: a stalled loop stalls the test too.
            assert time.monotonic() - start < 1.0
            assert page == {}
            writer.execute("COMMIT")
        assert [row[2] for row in page["rows"]] == ["x", "y"]
    finally:
        writer.close()
        await other.__aexit__(None, None, None)


async def test_pages_of_huge_values_never_hold_other_clients(
    client: RpcClient, family: Path, isolated_env: Path
) -> None:
    """Reading one value of megabytes is one step of SQLite's machine, longer than a page's
    whole budget on the event loop: such a table's pages are read on a worker thread (the
    first read of a table is, and it is timed; a page that met a value of a megabyte or
    more keeps its table there for ten minutes)."""
    with sqlite3.connect(family) as db:
        db.execute("CREATE TABLE huge (id INTEGER PRIMARY KEY, t TEXT)")
        db.execute(
            "INSERT INTO huge SELECT x, printf('%.*c', 3000000, 'x') FROM (WITH RECURSIVE"
            " c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 30) SELECT x FROM c)"
        )
        # One value: a page of it is fewer steps than the budget ever looks at the clock.
        db.execute("CREATE TABLE one (id INTEGER PRIMARY KEY, t TEXT)")
        db.execute("INSERT INTO one VALUES (1, printf('%.*c', 60000000, 'y'))")
        # SQLite's length() of text stops at a NUL: such a value is measured in bytes.
        db.execute("CREATE TABLE nul (id INTEGER PRIMARY KEY, t TEXT)")
        db.execute("INSERT INTO nul VALUES (1, char(0) || printf('%.*c', 60000000, 'z'))")
    db.close()
    assert len((await client.call("db.rows", table="child"))["rows"]) == 1  # a pooled session
    other = await RpcClient.connect(isolated_env / "d.sock")
    try:
        for attempt in range(3):
            page, waits = await pings_meanwhile(
                other, lambda: client.call("db.rows", table="huge", cellBytes=16)
            )
            # The daemon shares this test's loop: a page read on it would stall the pings.
            assert max(waits) < 0.15, waits
            assert page["rows"][0][1] == {"$truncated": 3_000_000, "text": "x" * 16}
            assert len(page["rows"]) == 30
            # The same table, named two ways.
            named = {"table": "one", "cellBytes": 16} | ({"schema": "main"} if attempt % 2 else {})
            page, waits = await pings_meanwhile(
                other, functools.partial(client.call, "db.rows", **named)
            )
            assert max(waits) < 0.15, waits
            assert page["rows"] == [[1, {"$truncated": 60_000_000, "text": "y" * 16}]]
            page, waits = await pings_meanwhile(
                other, lambda: client.call("db.rows", table="nul", schema="main", cellBytes=16)
            )
            assert max(waits) < 0.15, waits
            assert page["rows"][0][1]["$truncated"] == 60_000_001
            # Quick reads of the tables meanwhile (nothing found, a mistake, another way to
            # name them) change nothing: they hold values of megabytes.
            nothing = [{"column": "id", "op": ">", "value": 10**6}]
            for name, schema in (("one", None), ("one", "main"), ("nul", None)):
                named = {"table": name} if schema is None else {"table": name, "schema": schema}
                assert (await client.call("db.rows", **named, filters=nothing))["rows"] == []
            error = await client.error("db.rows", table="one", sort=[{"column": "nope"}])
            assert error.code == -32001
    finally:
        await other.__aexit__(None, None, None)


async def test_an_integer_beyond_sqlite_range_is_refused_in_words(client: RpcClient) -> None:
    huge = "99999999999999999999999"
    for method, params in (
        ("db.rows", {"filters": [{"column": "id", "op": "=", "value": huge}]}),
        ("db.rows", {"filters": [{"column": "id", "op": "in", "value": [huge]}]}),
        ("db.cell", {"key": [huge], "column": "note"}),
        ("db.count", {"filters": [{"column": "id", "op": ">", "value": huge}]}),
    ):
        error = await client.error(method, table="child", **params)
        assert error.code == BAD_INPUT, (method, error.message)
        assert "64-bit" in error.message


async def test_a_client_that_stops_sending_still_gets_its_answer(
    client: RpcClient, isolated_env: Path
) -> None:
    """``printf '{…}' | socat - UNIX-CONNECT:…``: the client ends its sending side, then
    reads; its query is not taken for abandoned."""
    request = {"jsonrpc": "2.0", "id": 1, "method": "db.query"}
    request["params"] = {"sql": "SELECT count(*) FROM child, (SELECT 1 UNION ALL SELECT 2)"}

    def exchange() -> dict[str, Any]:
        with socket.socket(socket.AF_UNIX) as raw:
            raw.settimeout(10)
            raw.connect(str(isolated_env / "d.sock"))
            raw.sendall(json.dumps(request).encode() + b"\n")
            raw.shutdown(socket.SHUT_WR)
            time.sleep(0.3)  # past the daemon's look for a client gone
            data = b""
            while not data.endswith(b"\n"):
                chunk = raw.recv(1 << 16)
                assert chunk, "closed without an answer"
                data += chunk
        return json.loads(data)  # type: ignore[no-any-return]

    reply = await anyio.to_thread.run_sync(exchange)
    assert reply["result"]["rows"] == [[2]]


async def test_a_stopping_daemon_cancels_running_queries_at_once(
    family: Path, isolated_env: Path
) -> None:
    socket_path = isolated_env / "d.sock"
    settings = {
        "db.DEV.url": str(family),
        "db.probe_seconds": 600,
        "daemon.socket": str(socket_path),
        "daemon.state_dir": str(isolated_env / "state"),
        "daemon.shutdown_grace_seconds": 20,
    }
    daemon = make_daemon(socket_path, isolated_env / "state", **settings)
    async with anyio.create_task_group() as tg:
        await tg.start(daemon.run)
        async with await RpcClient.connect(socket_path) as c:
            message = {"jsonrpc": "2.0", "id": 1, "method": "db.query"}
            message["params"] = {"sql": ENDLESS, "timeoutMs": 60_000}
            await c.send_message(json.dumps(message).encode())
            await anyio.sleep(0.5)
            start = time.monotonic()
            daemon.request_stop()
            reply = json.loads(await c.receive_line())
        assert reply["error"]["code"] == -32800
    # Without the cancel, the drain would have waited out its 20 s grace.
    assert time.monotonic() - start < 5


@pytest.fixture
def pg_schema(postgres: str) -> Iterator[tuple[str, str]]:
    import psycopg

    schema = f"grid_sessions_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres, autocommit=True) as db:
        db.execute(f"CREATE SCHEMA {schema}")
        db.execute(f"CREATE TABLE {schema}.parent (id int PRIMARY KEY)")
        db.execute(
            f"CREATE TABLE {schema}.child (id int PRIMARY KEY,"
            f" parent int NOT NULL REFERENCES {schema}.parent(id))"
        )
        db.execute(f"INSERT INTO {schema}.parent VALUES (1)")
        try:
            yield postgres, schema
        finally:
            db.execute(f"DROP SCHEMA {schema} CASCADE")


async def test_postgres_settings_and_writable_ctes(
    pg_schema: tuple[str, str], isolated_env: Path
) -> None:
    url, schema = pg_schema
    async with serving(url, isolated_env) as c:
        # A WITH that writes runs in DEV (a cursor cannot be declared for it).
        wrote = await c.call(
            "db.query",
            sql=f"WITH x AS (INSERT INTO {schema}.parent VALUES (2) RETURNING id) SELECT * FROM x",
        )
        assert wrote["rows"] == [[2]]
        # Triggers (foreign keys) switched off by one client stay on for the next.
        await c.call("db.query", sql="SET session_replication_role = replica")
        orphan = {"op": "insert", "values": {"id": 1, "parent": 999}}
        for _ in range(6):
            refused = await c.error("db.edit", table="child", schema=schema, changes=[orphan])
            assert refused.code == CONFLICT and "foreign key" in refused.message


async def test_a_bad_url_never_shows_its_password_in_grid_errors(isolated_env: Path) -> None:
    url = "postgresql://someone:s3cr%zzet@127.0.0.1:5432/test"
    async with serving(url, isolated_env) as c:
        error = await c.error("db.tables")
        assert error.code == UNAVAILABLE
        assert "s3cr" not in error.message and "zzet" not in error.message


async def test_a_cut_value_cannot_be_the_expectation_of_its_own_change(
    client: RpcClient, family: Path
) -> None:
    """A cut value matches by size and beginning only: overwriting it needs the whole value,
    or a change past the cut would be overwritten unseen."""
    with sqlite3.connect(family) as db:
        db.execute("UPDATE child SET note = ? WHERE id = 1", ("A" * 2000,))
    db.close()
    page = await client.call("db.rows", table="child", cellBytes=16)
    note = page["rows"][0][2]
    assert note == {"$truncated": 2000, "text": "A" * 16}
    change = {"op": "update", "key": [1], "values": {"note": "mine"}, "expect": {"note": note}}
    refused = await client.error("db.edit", table="child", changes=[change])
    assert refused.code == BAD_INPUT and "load its whole value" in refused.message
    # Another column may keep the cut value as its expectation: it is not overwritten.
    other = {"op": "update", "key": [1], "values": {"parent": 1}, "expect": {"note": note}}
    await client.call("db.edit", table="child", changes=[other])
    whole = (await client.call("db.cell", table="child", key=[1], column="note"))["value"]
    change["expect"] = {"note": whole}
    saved = await client.call("db.edit", table="child", changes=[change])
    assert saved["rows"][0]["row"][2] == "mine"


async def test_a_pooled_connection_the_server_dropped_is_replaced_for_a_read(
    postgres: str, isolated_env: Path
) -> None:
    """A server restart or idle timeout drops the connections waiting in the pool: the next
    read is tried again on a new one instead of failing once per pooled connection."""
    import psycopg

    name = f"grid-stale-{uuid.uuid4().hex[:10]}"
    async with serving(f"{postgres}?application_name={name}", isolated_env) as c:
        await c.call("db.tables")  # a grid connection now waits in the pool
        with psycopg.connect(postgres, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))"
                " FROM pg_stat_activity WHERE application_name = %s AND pid <> pg_backend_pid()",
                (name,),
            ).fetchone()
        assert killed is not None and killed[0] >= 1
        assert isinstance(await c.call("db.tables"), list)


async def send_query(c: RpcClient, request_id: int, **params: Any) -> None:
    message = {"jsonrpc": "2.0", "id": request_id, "method": "db.query", "params": params}
    await c.send_message(json.dumps(message).encode())


async def test_a_query_waiting_for_a_connection_can_be_cancelled_and_times_out(
    client: RpcClient, isolated_env: Path
) -> None:
    holders = [await RpcClient.connect(isolated_env / "d.sock") for _ in range(5)]
    try:
        for n, holder in enumerate(holders[:3]):  # every console connection is taken
            await send_query(holder, n, sql=ENDLESS, queryId=f"hold-{n}")
        await anyio.sleep(0.5)
        waiting, timed = holders[3], holders[4]
        await send_query(waiting, 10, sql="SELECT 1", queryId="waiting")
        await send_query(timed, 11, sql="SELECT 1", timeoutMs=1000)
        await anyio.sleep(0.3)
        start = time.monotonic()
        assert (await client.call("db.cancel", queryId="waiting"))["cancelled"]
        cancelled = json.loads(await waiting.receive_line())
        assert cancelled["error"]["code"] == -32800
        assert time.monotonic() - start < 1
        over = json.loads(await timed.receive_line())  # its 1 s passed while it waited
        assert over["error"]["code"] == UNAVAILABLE and "busy" in over["error"]["message"]
        assert time.monotonic() - start < 2
    finally:
        for n in range(3):
            await client.call("db.cancel", queryId=f"hold-{n}")
        for holder in holders:
            await holder.__aexit__(None, None, None)


async def test_a_stopping_daemon_also_cancels_queries_waiting_for_a_connection(
    family: Path, isolated_env: Path
) -> None:
    socket_path = isolated_env / "d.sock"
    settings = {
        "db.DEV.url": str(family),
        "db.probe_seconds": 600,
        "daemon.shutdown_grace_seconds": 20,
    }
    daemon = make_daemon(socket_path, isolated_env / "state", **settings)
    async with anyio.create_task_group() as tg:
        await tg.start(daemon.run)
        clients = [await RpcClient.connect(socket_path) for _ in range(4)]
        for n, c in enumerate(clients):  # three run, the fourth waits for a connection
            await send_query(c, n, sql=ENDLESS, timeoutMs=60_000)
        await anyio.sleep(0.5)
        start = time.monotonic()
        daemon.request_stop()
        for c in clients:
            reply = json.loads(await c.receive_line())
            assert reply["error"]["code"] == -32800
            await c.__aexit__(None, None, None)
    assert time.monotonic() - start < 5


async def test_postgres_session_effects_of_a_select_stay_with_their_client(
    pg_schema: tuple[str, str], isolated_env: Path
) -> None:
    """set_config() and SELECT … INTO change the session though they start with SELECT."""
    url, schema = pg_schema
    async with serving(url, isolated_env) as c:
        await c.call(
            "db.query", sql="SELECT set_config('default_transaction_read_only', 'on', false)"
        )
        await c.call("db.query", sql="SELECT 1 AS x INTO TEMP TABLE parent")
        for n in range(6):
            change = {"op": "insert", "values": {"id": 10 + n}}
            await c.call("db.edit", table="parent", schema=schema, changes=[change])
        left = await c.error("db.query", sql="SELECT * FROM pg_temp.parent")
        assert "does not exist" in left.message  # the temp table went with its session


async def test_postgres_statement_failing_as_unsupported_runs_once(
    pg_schema: tuple[str, str], isolated_env: Path
) -> None:
    url, schema = pg_schema
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        db.execute(f"CREATE SEQUENCE {schema}.calls")
        db.execute(
            f"CREATE FUNCTION {schema}.refuse(n bigint) RETURNS int LANGUAGE plpgsql AS"
            " $$ BEGIN RAISE EXCEPTION 'not supported here' USING ERRCODE = '0A000'; END $$"
        )
        async with serving(url, isolated_env) as c:
            error = await c.error(
                "db.query", sql=f"SELECT {schema}.refuse(nextval('{schema}.calls'))"
            )
            assert "not supported here" in error.message
            assert db.execute(f"SELECT last_value FROM {schema}.calls").fetchone() == (1,)
            # A syntax error raised while it runs (PL/pgSQL's EXECUTE) is no reason either.
            db.execute(
                f"CREATE FUNCTION {schema}.misspelt() RETURNS int LANGUAGE plpgsql AS"
                f" $$ BEGIN PERFORM nextval('{schema}.calls'); EXECUTE 'SELEC 1'; RETURN 1;"
                " END $$"
            )
            error = await c.error("db.query", sql=f"SELECT {schema}.misspelt()")
            assert "SELEC" in error.message
            assert db.execute(f"SELECT last_value FROM {schema}.calls").fetchone() == (2,)


@contextlib.asynccontextmanager
async def slow_to_connect(seconds: float) -> AsyncIterator[int]:
    """A port on the loopback that forwards to PostgreSQL, each connection only after
    ``seconds``: connecting takes that long, statements do not."""

    async def forward(source: SocketStream, sink: SocketStream) -> None:
        with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
            async for chunk in source:
                await sink.send(chunk)
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            await sink.send_eof()

    async def handle(client: SocketStream) -> None:
        async with client:
            await anyio.sleep(seconds)
            async with await anyio.connect_tcp(PG_HOST, PG_PORT) as server:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(forward, client, server)
                    tg.start_soon(forward, server, client)

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        yield int(listener.extra(SocketAttribute.local_port))
        tg.cancel_scope.cancel()


async def test_a_short_time_limit_leaves_time_to_connect(postgres: str, isolated_env: Path) -> None:
    """The limit is the statement's: opening a connection for it (0.5 s here) does not count
    against a limit of 0.2 s."""
    async with slow_to_connect(0.5) as port:
        url = postgres.replace(f"{PG_HOST}:{PG_PORT}", f"127.0.0.1:{port}")
        assert url != postgres
        async with serving(url, isolated_env) as c:
            start = time.monotonic()
            answer = await c.call("db.query", sql="SELECT 1", timeoutMs=200)
            assert answer["rows"] == [[1]]
            assert time.monotonic() - start > 0.5  # it did connect meanwhile
