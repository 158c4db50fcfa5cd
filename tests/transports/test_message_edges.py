"""Messages at the edges of what clients send, on the real daemon: a last line without its
newline before the client stops sending (``printf '{...}' | socat``), a message cut short by
the end of input, and request ids echoed exactly as sent (integers beyond 64 bits, fractions
as spelled, ``-0``, strings, null), on the Unix socket in both framings and on the HTTP shim's
WebSocket, however deep or long the message around them."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.typing import Origin, Subprotocol

from simpleaided.app.daemon import Daemon
from simpleaided.transports import rpc
from tests.support.daemon import running_daemon
from tests.support.http import token_of
from tests.support.rpc import RpcClient, pings_meanwhile

PING = '{"jsonrpc":"2.0","id":1,"method":"daemon.ping"}'


async def send_then_end(socket_path: Path, data: bytes) -> bytes:
    """Send ``data`` on a fresh connection, end the sending side (``shutdown(SHUT_WR)``, as
    ``socat`` does at the end of its input), and read all the daemon sends until it closes."""
    async with await anyio.connect_unix(socket_path) as stream:
        await stream.send(data)
        await stream.send_eof()
        received = b""
        with anyio.fail_after(5):
            while True:
                try:
                    received += await stream.receive()
                except anyio.EndOfStream:
                    return received


def replies(received: bytes) -> list[Any]:
    return [json.loads(line) for line in received.splitlines()]


async def test_a_last_message_without_its_newline_is_answered(
    daemon: Daemon, socket_path: Path
) -> None:
    assert replies(await send_then_end(socket_path, PING.encode())) == [
        {"jsonrpc": "2.0", "result": "pong", "id": 1}
    ]
    # After other lines, with whitespace around it, and alone but short (``null``: too few
    # bytes to tell the framing before the end).
    two = await send_then_end(
        socket_path, PING.encode() + b"\n  " + PING.replace("1", "2", 1).encode() + b" "
    )
    assert [r["id"] for r in replies(two)] == [1, 2]
    alone = replies(await send_then_end(socket_path, b"null"))
    assert [r["error"]["code"] for r in alone] == [-32600]
    # Nothing after the last newline: nothing more to answer.
    assert replies(await send_then_end(socket_path, PING.encode() + b"\n \r\n")) == [
        {"jsonrpc": "2.0", "result": "pong", "id": 1}
    ]


async def test_a_value_cut_short_at_the_end_still_gets_its_parse_error(
    daemon: Daemon, socket_path: Path
) -> None:
    received = replies(await send_then_end(socket_path, PING.encode() + b"\n" + PING[:30].encode()))
    assert received[0] == {"jsonrpc": "2.0", "result": "pong", "id": 1}
    assert received[1]["error"]["code"] == -32700 and received[1]["id"] is None
    assert len(received) == 2


def bodies(received: bytes) -> list[Any]:
    """The messages of ``Content-Length`` framed ``received``, decoded."""
    out = []
    while received:
        head, _, rest = received.partition(b"\r\n\r\n")
        length = int(head.split(b":")[1])
        out.append(json.loads(rest[:length]))
        received = rest[length:]
    return out


async def test_a_content_length_message_cut_short_by_the_end_gets_a_parse_error(
    daemon: Daemon, socket_path: Path
) -> None:
    whole = b"Content-Length: %d\r\n\r\n%s" % (len(PING), PING.encode())
    cut = b"Content-Length: 50\r\n\r\n" + PING.encode()  # 47 bytes of 50
    assert bodies(await send_then_end(socket_path, whole + cut)) == [
        {"jsonrpc": "2.0", "result": "pong", "id": 1},
        {
            "jsonrpc": "2.0",
            "error": {"code": -32700, "message": "the connection ended in the middle of a message"},
            "id": None,
        },
    ]


# Ids as sent, and what they must come back as: the same text.
IDS = [
    "18446744073709551617",  # 2**64 + 1: beyond what orjson reads as an integer
    "-18446744073709551617",
    "340282366920938463463374607431768211457",  # 2**128 + 1
    "1" + "0" * 400,  # beyond a double's range
    "-" + "9" * 5000,  # beyond what Python's int reads from text (4300 digits)
    "9223372036854775807",
    "-9223372036854775808",
    "1.5",
    "1.50",
    "-0.0",
    "1e2",
    "2.5E-3",
    "1e400",
    '"18446744073709551617"',
    '"x"',
    "null",
    "0",
    "-0",
]


def request(spelled_id: str, method: str = "daemon.ping") -> bytes:
    return f'{{"jsonrpc":"2.0","method":"{method}","id":{spelled_id}}}'.encode()


def exactly(text: str | bytes) -> Any:
    """JSON read with every number kept as its spelling (``("number", "1.50")``), so that a
    string and a number, or ``1.5`` and ``1.50``, never compare equal."""
    spelling = lambda number: ("number", number)  # noqa: E731
    return json.loads(text, parse_int=spelling, parse_float=spelling)


async def assert_echoed(exchange: Any) -> None:
    """Every id comes back spelled as sent: in a reply, an error reply (an unknown method),
    an invalid request, and each reply of a batch."""
    for rid in IDS:
        expected = exactly(rid)
        for message in (request(rid), request(rid, "no.such.method")):
            reply = await exchange(message)
            assert exactly(reply)["id"] == expected, (rid, reply[:200])
        invalid = f'{{"jsonrpc":"1.0","method":"daemon.ping","id":{rid}}}'.encode()
        reply = await exchange(invalid)
        assert exactly(reply)["error"]["code"] == ("number", "-32600")
        assert exactly(reply)["id"] == expected, (rid, reply[:200])
    batch = b"[" + b",".join(request(rid) for rid in IDS) + b"]"
    assert [r["id"] for r in exactly(await exchange(batch))] == [exactly(rid) for rid in IDS]


async def test_ids_come_back_exactly_as_sent_on_the_socket(
    daemon: Daemon, socket_path: Path
) -> None:
    async with await anyio.connect_unix(socket_path) as stream:
        buffer = bytearray()

        async def exchange(message: bytes) -> bytes:
            await stream.send(message + b"\n")
            with anyio.fail_after(5):
                while b"\n" not in buffer:
                    buffer.extend(await stream.receive())
            end = buffer.index(b"\n")
            line = bytes(buffer[:end])
            del buffer[: end + 1]
            return line

        await assert_echoed(exchange)


async def test_ids_come_back_exactly_as_sent_with_content_length_framing(
    daemon: Daemon, socket_path: Path
) -> None:
    async with await anyio.connect_unix(socket_path) as stream:
        buffer = bytearray()

        async def exchange(message: bytes) -> bytes:
            await stream.send(b"Content-Length: %d\r\n\r\n" % len(message) + message)
            with anyio.fail_after(5):
                while b"\r\n\r\n" not in buffer:
                    buffer.extend(await stream.receive())
                head, _, _ = bytes(buffer).partition(b"\r\n\r\n")
                length = int(head.split(b":")[1])
                start = len(head) + 4
                while len(buffer) < start + length:
                    buffer.extend(await stream.receive())
            body = bytes(buffer[start : start + length])
            del buffer[: start + length]
            return body

        await assert_echoed(exchange)


def nested(depth: int, spelled_id: str) -> bytes:
    """A request nested ``depth`` levels deep (its own object the first), with that id."""
    params = "[" * (depth - 1) + "]" * (depth - 1)
    return (
        f'{{"jsonrpc":"2.0","method":"daemon.ping","params":{params},"id":{spelled_id}}}'.encode()
    )


async def test_ids_come_back_as_sent_however_deep_the_message(client: RpcClient) -> None:
    async def exchange(message: bytes) -> Any:
        await client.send_message(message)
        return await client.receive_line()

    # As deep as orjson reads (1024 levels), past the standard library's default limit.
    for depth in (900, 1000, 1024):
        for rid in ("1.50", "-0", "18446744073709551617"):
            assert exactly(await exchange(nested(depth, rid)))["id"] == exactly(rid), (depth, rid)
    # One deeper: not read at all.
    assert json.loads(await exchange(nested(1025, "1.50")))["error"]["code"] == -32700
    # An id beyond a double's range, 254 levels deep at most (README, "Protocol in brief").
    assert exactly(await exchange(nested(254, "1e400")))["id"] == exactly("1e400")
    assert json.loads(await exchange(nested(255, "1e400")))["error"]["code"] == -32700


# Read again for its id 1.50 on the event loop, 6 MB of numbers held it ~1.3 s on the test
# machine; in a worker thread, a ping waits ~0.1 s (orjson's own reading, on the loop, and
# the message's transfer included).
REREAD_WAIT_BOUND = 0.5


async def test_a_long_message_read_again_for_its_ids_holds_up_no_one(
    daemon: Daemon, socket_path: Path
) -> None:
    numbers = ",".join(["1.5"] * 1_500_000)
    message = f'{{"jsonrpc":"2.0","method":"no.such","params":[{numbers}],"id":1.50}}'.encode()
    async with (
        await RpcClient.connect(socket_path) as long,
        await RpcClient.connect(socket_path) as other,
    ):

        async def send_long() -> bytes:
            await long.send_message(message)
            return await long.receive_line()

        reply, waits = await pings_meanwhile(other, send_long)
        assert exactly(reply)["id"] == ("number", "1.50")
        assert json.loads(reply)["error"]["code"] == -32601
        assert max(waits) < REREAD_WAIT_BOUND, waits


@pytest.fixture
async def shim(isolated_env: Path, socket_path: Path) -> Any:
    async with running_daemon(
        socket_path, isolated_env / "state", **{"http.listen": "127.0.0.1:0"}
    ) as daemon:
        yield daemon


async def test_ids_come_back_exactly_as_sent_over_the_websocket(shim: Daemon) -> None:
    url = shim.http.url
    protocols = ["simpleaide.jsonrpc", f"simpleaide.token.{token_of(shim)}"]
    async with connect(
        url.replace("http://", "ws://") + "/rpc",
        subprotocols=[Subprotocol(p) for p in protocols],
        origin=Origin(url),
        proxy=None,
        open_timeout=5,
    ) as ws:

        async def exchange(message: bytes) -> bytes:
            await ws.send(message.decode())
            with anyio.fail_after(5):
                frame = await ws.recv()
            assert isinstance(frame, str)
            return frame.encode()

        await assert_echoed(exchange)


# Read again by the standard library (a Python call per number) before a refusal, 12 MB of
# numbers held a worker thread ~1.3 s; refused at once, the reply comes in ~0.1 s.
REFUSAL_BOUND = 0.6


@pytest.mark.parametrize(
    ("last", "said"),
    [
        # A number beyond a double's range in a message over 1 MiB: not read again for it.
        (
            "1e400",
            "a number beyond a double's range (like 1e400) is read only in a message of at"
            " most 1048576 bytes, and then only as a request's id; this message is {size} bytes",
        ),
        # Anything else orjson refuses is never read again.
        ('"\\ud800"', "no low surrogate in string"),
    ],
)
async def test_a_long_message_orjson_refuses_is_refused_at_once(
    client: RpcClient, last: str, said: str
) -> None:
    numbers = ",".join(["1.5"] * 3_000_000)
    message = f'{{"jsonrpc":"2.0","method":"no.such","params":[{numbers},{last}],"id":1}}'.encode()
    start = time.monotonic()
    await client.send_message(message)
    reply = json.loads(await client.receive_line())
    took = time.monotonic() - start
    assert reply["error"]["code"] == -32700
    assert reply["error"]["data"].startswith(said.format(size=len(message))), reply
    assert took < REFUSAL_BOUND, took


@pytest.mark.parametrize(
    "wording",
    [
        "number is infinity when parsed as double",  # yyjson's, in orjson's usual build
        "number out of range",  # another build's
    ],
)
def test_a_number_beyond_range_is_found_where_orjson_points_whatever_its_words(
    monkeypatch: pytest.MonkeyPatch, wording: str
) -> None:
    real = orjson.loads

    def reworded(raw: bytes) -> Any:
        try:
            return real(raw)
        except orjson.JSONDecodeError as exc:
            raise orjson.JSONDecodeError(wording, exc.doc, exc.pos) from None

    monkeypatch.setattr(orjson, "loads", reworded)  # as rpc calls it: orjson.loads
    message = rpc.parse('{"jsonrpc": "2.0", "méthode": 1, "id": -1e400}'.encode())
    assert orjson.dumps(message["id"]) == b"-1e400"
    with pytest.raises(orjson.JSONDecodeError):
        rpc.parse(b'{"jsonrpc": "2.0", "id": 1, "x": 1e400}')  # not an id: refused
    with pytest.raises(orjson.JSONDecodeError):  # no number there: refused as it was
        rpc.parse(b'{"id": tru}')
