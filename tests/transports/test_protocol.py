"""The wire protocol: framings, batches, notifications, bad input and limits, on a real socket."""

from __future__ import annotations

import base64
import contextlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from simpleaided.app.daemon import Daemon
from tests.support.daemon import running_daemon
from tests.support.files import tree
from tests.support.rpc import RpcClient
from tests.support.runs import new_run


async def raw_exchange(socket_path: Path, data: bytes, *, until: bytes = b"\n") -> bytes:
    """Send ``data`` on a fresh connection and read until ``until`` appears or EOF."""
    async with await anyio.connect_unix(socket_path) as stream:
        await stream.send(data)
        received = b""
        with anyio.fail_after(5):
            while until not in received:
                try:
                    received += await stream.receive()
                except anyio.EndOfStream:
                    break
        return received


async def read_lsp(stream: anyio.abc.ByteStream, buffer: bytearray) -> Any:
    with anyio.fail_after(5):
        while b"\r\n\r\n" not in buffer:
            buffer += await stream.receive()
        head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
        length = int(head.split(b":")[1])
        while len(rest) < length:
            rest += await stream.receive()
        buffer[:] = rest[length:]
        return json.loads(rest[:length])


async def test_content_length_framing(daemon: Daemon, socket_path: Path, workspace: Path) -> None:
    async with await anyio.connect_unix(socket_path) as stream:
        buffer = bytearray()
        body = json.dumps(
            {
                "jsonrpc": "2.0",
                "method": "runs.create",
                "params": {"workspace": str(workspace)},
                "id": 1,
            }
        ).encode()
        await stream.send(
            b"Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body) + body
        )
        reply = await read_lsp(stream, buffer)
        assert reply["id"] == 1 and reply["result"]["status"] == "pending"
        # Two messages in one write, the second split across writes.
        ping = b'{"jsonrpc":"2.0","method":"daemon.ping","id":2}'
        status = b'{"jsonrpc":"2.0","method":"status.get","id":3}'
        await stream.send(
            b"Content-Length: %d\r\n\r\n%s" % (len(ping), ping)
            + b"Content-Length: %d\r\n\r\n%s" % (len(status), status[:10])
        )
        await stream.send(status[10:])
        assert (await read_lsp(stream, buffer))["result"] == "pong"
        assert (await read_lsp(stream, buffer))["result"]["runs"]["total"] == 1


async def test_ndjson_framing_handles_split_and_joined_lines(
    daemon: Daemon, socket_path: Path
) -> None:
    async with await RpcClient.connect(socket_path) as c:
        ping = b'{"jsonrpc":"2.0","method":"daemon.ping","id":%d}'
        await c.send_raw(ping % 1 + b"\n" + ping % 2 + b"\r\n\n" + (ping % 3)[:7])
        await c.send_raw((ping % 3)[7:] + b"\n")
        ids = [json.loads(await c.receive_line())["id"] for _ in range(3)]
        assert ids == [1, 2, 3]


async def test_batches(client: RpcClient, workspace: Path) -> None:
    reply = await client.exchange(
        [
            {"jsonrpc": "2.0", "method": "daemon.ping", "id": "a"},
            {"jsonrpc": "2.0", "method": "runs.create", "params": {"workspace": str(workspace)}},
            {"jsonrpc": "2.0", "method": "nope", "id": "b"},
            {"jsonrpc": "2.0", "method": "runs.get", "params": {"runId": ".."}, "id": "c"},
            1,
            {"jsonrpc": "2.0", "method": "status.get", "id": "d"},
        ]
    )
    assert [r.get("id") for r in reply] == ["a", "b", "c", None, "d"]
    assert reply[0]["result"] == "pong"
    assert reply[1]["error"]["code"] == -32601
    assert reply[2]["error"]["code"] == -32602
    assert reply[3]["error"]["code"] == -32600
    # The notification in the batch was executed, in order, before status.get.
    assert reply[4]["result"]["runs"]["total"] == 1


async def test_empty_batch_is_invalid(client: RpcClient) -> None:
    reply = await client.exchange([])
    assert reply["error"]["code"] == -32600 and reply["id"] is None


async def test_notifications_get_no_reply(client: RpcClient, workspace: Path) -> None:
    await client.send_raw(
        json.dumps(
            {"jsonrpc": "2.0", "method": "runs.create", "params": {"workspace": str(workspace)}}
        ).encode()
        + b"\n"
    )
    await client.send_raw(
        json.dumps(
            [
                {"jsonrpc": "2.0", "method": "daemon.ping"},
                {"jsonrpc": "2.0", "method": "unknown.method"},
            ]
        ).encode()
        + b"\n"
    )
    # The next reply on the connection is the answer to this request, not to the above.
    result = await client.call("runs.list")
    assert len(result["runs"]) == 1


@pytest.mark.parametrize(
    ("message", "code"),
    [
        (b"{not json", -32700),
        (b'{"jsonrpc": "2.0", "method": "daemon.ping", "id": 1', -32700),
        (b'"just a string"', -32700),
        (b'{"jsonrpc": "1.0", "method": "daemon.ping", "id": 1}', -32600),
        (b'{"jsonrpc": "2.0", "method": 5, "id": 1}', -32600),
        (b'{"jsonrpc": "2.0", "method": "daemon.ping", "params": 3, "id": 1}', -32600),
        (b'{"jsonrpc": "2.0", "method": "daemon.ping", "id": {"a": 1}}', -32600),
        (b'{"jsonrpc": "2.0", "method": "daemon.ping", "id": 1, "extra": 1}', -32600),
        (b'{"jsonrpc": "2.0", "method": "no.such", "id": 1}', -32601),
        (b'{"jsonrpc": "2.0", "method": "daemon.ping", "params": [1], "id": 1}', -32602),
        (b'{"jsonrpc": "2.0", "method": "daemon.ping", "params": {"x": 1}, "id": 1}', -32602),
    ],
)
async def test_bad_messages_get_errors_and_the_connection_goes_on(
    client: RpcClient, message: bytes, code: int
) -> None:
    if message.startswith(b'"'):
        code = -32600  # valid JSON, but not a request object
    await client.send_raw(message + b"\n")
    reply = json.loads(await client.receive_line())
    assert reply["error"]["code"] == code
    assert await client.call("daemon.ping") == "pong"


async def test_invalid_params_carry_the_validation_errors(client: RpcClient) -> None:
    err = await client.error("runs.create", workspace=5, title="", bogus=True)
    assert err.code == -32602
    assert err.message == (
        "workspace: must be a workspace path, like /home/me/project, not 5; "
        "title: must be text of 1 to 500 characters, not 0 characters; "
        "unknown parameter 'bogus' (expected 'workspace', 'title' or 'ownerPid')"
    )
    by_field = {tuple(e["loc"]): e for e in err.data["errors"]}
    assert set(by_field) == {("workspace",), ("title",), ("bogus",)}
    assert [e["type"] for e in err.data["errors"]] == [
        "string_type",
        "string_too_short",
        "extra_forbidden",
    ]
    assert all("input" not in e for e in err.data["errors"])


@pytest.mark.parametrize(
    ("method", "params", "field"),
    [
        ("runs.create", {"workspace": "relative/path"}, "workspace"),
        ("runs.create", {"workspace": "/tmp/../etc"}, "workspace"),
        ("runs.create", {"workspace": "/tmp/a\x00b"}, "workspace"),
        ("runs.get", {"runId": "../../etc"}, "runId"),
        ("runs.get", {"runId": "/etc/passwd"}, "runId"),
        ("steps.create", {"runId": "RUN", "name": "../x"}, "name"),
        ("steps.create", {"runId": "RUN", "name": "a/b"}, "name"),
        ("steps.create", {"runId": "RUN", "name": "x" * 65}, "name"),
        ("steps.create", {"runId": "RUN", "name": "x\x00"}, "name"),
        ("artifacts.put", {"runId": "RUN", "step": 1, "name": "../evil", "text": "x"}, "name"),
        ("artifacts.put", {"runId": "RUN", "step": 1, "name": "/etc/passwd", "text": "x"}, "name"),
        ("artifacts.put", {"runId": "RUN", "step": 1, "name": "..", "text": "x"}, "name"),
        ("artifacts.put", {"runId": "RUN", "step": 1, "name": "a\x00b", "text": "x"}, "name"),
        ("artifacts.put", {"runId": "RUN", "step": 1, "name": "x" * 256, "text": "x"}, "name"),
        ("artifacts.put", {"runId": "RUN", "step": 0, "name": "ok", "text": "x"}, "step"),
        ("runs.create", {"workspace": "/tmp", "title": "x" * 501}, "title"),
    ],
)
async def test_path_tricks_are_refused_and_nothing_is_written(
    client: RpcClient, workspace: Path, method: str, params: dict[str, Any], field: str
) -> None:
    run = await new_run(client, workspace, "plan")
    params = {k: (run["id"] if v == "RUN" else v) for k, v in params.items()}
    before = (tree(workspace), sorted(os.listdir(workspace.parent)))
    err = await client.error(method, **params)
    assert err.code == -32602, err.message
    assert [tuple(e["loc"]) for e in err.data["errors"]] == [(field,)]
    assert (tree(workspace), sorted(os.listdir(workspace.parent))) == before


async def test_an_oversized_message_is_refused_and_the_connection_closed(
    isolated_env: Path, socket_path: Path, workspace: Path
) -> None:
    limit = 64 * 1024
    async with running_daemon(
        socket_path, isolated_env / "s", **{"limits.max_message_bytes": limit}
    ):
        big = json.dumps(
            {
                "jsonrpc": "2.0",
                "method": "runs.create",
                "id": 1,
                "params": {"workspace": str(workspace), "title": "x" * limit},
            }
        ).encode()
        reply = await raw_exchange(socket_path, big + b"\n", until=b"\x00never")
        lines = reply.splitlines()
        assert len(lines) == 1  # the error, then EOF
        error = json.loads(lines[0])["error"]
        assert error["code"] == -32040 and str(limit) in error["message"]
        lsp = await raw_exchange(
            socket_path, b"Content-Length: %d\r\n\r\n" % (limit + 1), until=b"\x00never"
        )
        assert json.loads(lsp.partition(b"\r\n\r\n")[2] or lsp)["error"]["code"] == -32040
        assert not (workspace / ".simpleaide").exists()
        # The daemon still serves everyone else.
        async with await RpcClient.connect(socket_path) as c:
            assert await c.call("daemon.ping") == "pong"


async def test_a_reply_over_the_limit_is_an_error(
    isolated_env: Path, socket_path: Path, workspace: Path
) -> None:
    limit = 64 * 1024
    async with running_daemon(
        socket_path, isolated_env / "s", **{"limits.max_message_bytes": limit}
    ):
        async with await RpcClient.connect(socket_path) as c:
            run = await new_run(c, workspace, "x")
            folder = workspace / ".simpleaide" / "runs" / run["id"] / "01_x" / "artifacts"
            (folder / "big.txt").write_bytes(b"\x01" * (limit // 2))  # escapes grow 6x in JSON
            # Text that JSON would escape past the limit comes as base64 instead.
            got = await c.call("artifacts.get", runId=run["id"], step=1, name="big.txt")
            assert got["encoding"] == "base64"
            assert base64.b64decode(got["base64"]) == b"\x01" * (limit // 2)
            (folder / "huge.bin").write_bytes(b"x" * limit)
            err = await c.error("artifacts.get", runId=run["id"], step=1, name="huge.bin")
            assert err.code == -32040 and "limit" in err.message


async def test_bad_framing_is_reported(daemon: Daemon, socket_path: Path) -> None:
    reply = await raw_exchange(socket_path, b"Content-Length: abc\r\n\r\n", until=b"\x00never")
    assert b"-32700" in reply and b"Content-Length" in reply
    reply = await raw_exchange(socket_path, b"Hello: there\r\n\r\n", until=b"\x00never")
    assert b"missing Content-Length" in reply


async def test_a_content_length_of_thousands_of_digits_is_refused_as_too_large(
    daemon: Daemon, socket_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # int() refuses strings of over 4300 digits: that is the client's error to hear about,
    # never a connection that fails with a traceback in the log.
    header = b"Content-Length: " + b"9" * 5000 + b"\r\n\r\n{}"
    reply = await raw_exchange(socket_path, header, until=b"\x00never")
    error = json.loads(reply.partition(b"\r\n\r\n")[2])["error"]
    assert error["code"] == -32040 and "5000-digit" in error["message"]
    assert "Traceback" not in caplog.text and "failed" not in caplog.text
    async with await RpcClient.connect(socket_path) as c:
        assert await c.call("daemon.ping") == "pong"


async def test_a_stuck_client_does_not_delay_others(daemon: Daemon, socket_path: Path) -> None:
    async with (
        await anyio.connect_unix(socket_path) as stuck,
        await anyio.connect_unix(socket_path) as silent,
    ):
        await stuck.send(b'{"jsonrpc": "2.0", "method": "daemon.pi')  # and never finishes
        await silent.send(b"Content-Length: 1000\r\n\r\n{")  # body never completes
        with anyio.fail_after(2):
            async with await RpcClient.connect(socket_path) as other:
                for _ in range(50):
                    assert await other.call("daemon.ping") == "pong"


async def test_a_client_that_never_reads_does_not_delay_others(
    daemon: Daemon, socket_path: Path
) -> None:
    async with await anyio.connect_unix(socket_path) as greedy:
        request = b'{"jsonrpc": "2.0", "method": "rpc.discover", "id": 1}\n'
        # Fill its socket buffers with replies it never reads.
        with anyio.move_on_after(1):
            while True:
                await greedy.send(request * 50)
        with anyio.fail_after(2):
            async with await RpcClient.connect(socket_path) as other:
                assert await other.call("daemon.ping") == "pong"


async def test_the_socket_is_private(daemon: Daemon, socket_path: Path) -> None:
    assert os.stat(socket_path).st_mode & 0o777 == 0o600
    assert os.stat(socket_path.parent).st_mode & 0o777 == 0o700


async def test_unexpected_errors_reach_the_client_without_details(
    client: RpcClient,
    daemon: Daemon,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(params: object) -> object:
        raise RuntimeError("boom in /home/secret/place")

    monkeypatch.setattr(daemon.runs, "list_runs", broken)
    err = await client.error("runs.list")
    assert err.code == -32603 and err.message == "Internal error"
    assert "secret" not in json.dumps(err.data) and set(err.data) == {"incident"}
    # The details, with the same incident id, are in the daemon's log only.
    assert err.data["incident"] in caplog.text and "/home/secret/place" in caplog.text
    assert await client.call("daemon.ping") == "pong"


async def test_artifact_contents_never_reach_the_log(
    client: RpcClient, workspace: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    run = await new_run(client, workspace, "x")
    marker = "TOP-SECRET-CONTENT-7f3a"
    await client.call("artifacts.put", runId=run["id"], step=1, name="a.txt", text=marker)
    assert (await client.call("artifacts.get", runId=run["id"], step=1, name="a.txt"))[
        "text"
    ] == marker
    assert run["id"] in caplog.text  # the daemon did log this run's life...
    assert marker not in caplog.text  # ...but never what an artifact holds


@contextlib.asynccontextmanager
async def loop_turns() -> AsyncIterator[list[int]]:
    """Count the event loop's turns meanwhile: how often another client could be served."""
    turns = [0]

    async def other_client() -> None:
        while True:
            await anyio.lowlevel.checkpoint()
            turns[0] += 1

    async with anyio.create_task_group() as tg:
        tg.start_soon(other_client)
        yield turns
        tg.cancel_scope.cancel()


async def test_a_batch_lets_other_clients_in_between_its_requests(daemon: Daemon) -> None:
    ping = {"jsonrpc": "2.0", "method": "daemon.ping", "id": 0}
    batch = json.dumps([ping] * 2000).encode()
    async with loop_turns() as turns:
        reply = await daemon.dispatcher.handle(batch, None)
    assert reply is not None and len(json.loads(reply)) == 2000
    # Memory-only methods never wait; without a checkpoint per item the batch would hold
    # the event loop from its first request to its last.
    assert turns[0] >= 1000


async def test_batches_over_the_request_limit_are_refused(client: RpcClient) -> None:
    ping = {"jsonrpc": "2.0", "method": "daemon.ping", "id": 1}
    reply = await client.exchange([ping] * 10_001)
    assert reply["error"]["code"] == -32040 and "10000" in reply["error"]["message"]
    assert await client.call("daemon.ping") == "pong"


@pytest.mark.parametrize("rid", [1.5, -7, "x", None, 0])
async def test_ids_are_echoed(client: RpcClient, rid: object) -> None:
    reply = await client.exchange({"jsonrpc": "2.0", "method": "daemon.ping", "id": rid})
    assert reply == {"jsonrpc": "2.0", "result": "pong", "id": rid}


async def test_a_pipelining_client_lets_other_clients_in_between(
    daemon: Daemon, socket_path: Path
) -> None:
    count = 3000
    request = b'{"jsonrpc": "2.0", "method": "daemon.ping", "id": 7}\n'
    received = b""
    async with await anyio.connect_unix(socket_path) as stream, loop_turns() as turns:
        async with anyio.create_task_group() as tg:
            tg.start_soon(stream.send, request * count)  # all at once: the daemon buffers them
            with anyio.fail_after(10):
                while received.count(b"\n") < count:
                    received += await stream.receive()
    assert received.splitlines() == [b'{"jsonrpc":"2.0","result":"pong","id":7}'] * count
    # Requests read ahead are answered one loop turn each; written straight to the socket
    # without that turn, a buffer of them would hold the loop from its first to its last.
    assert turns[0] >= count // 2


async def test_a_reply_bigger_than_the_socket_buffer_arrives_whole(
    client: RpcClient, workspace: Path, socket_path: Path
) -> None:
    run = await new_run(client, workspace, "x")
    text = "".join(f"line {n:07d} ✓\n" for n in range(300_000))  # ~4.5 MB, many buffers
    await client.call("artifacts.put", runId=run["id"], step=1, name="big.txt", text=text)
    async with await RpcClient.connect(socket_path) as slow:
        await slow.send_raw(
            json.dumps(
                {
                    "jsonrpc": "2.0",
                    "method": "artifacts.get",
                    "params": {"runId": run["id"], "step": 1, "name": "big.txt"},
                    "id": 1,
                }
            ).encode()
            + b"\n"
        )
        await anyio.sleep(0.2)  # the daemon fills the socket buffer and must wait for room
        reply = json.loads(await slow.receive_line())
    assert reply["result"]["text"] == text
    assert await client.call("daemon.ping") == "pong"
