"""The floor: a bare anyio Unix-socket server answering every line with one fixed line.

It runs as its own process (``python -m tests.bench.floor --socket PATH``), on the same
event loop as the daemon (anyio on asyncio), with one task per connection, and answers with a
canned ``status.get`` reply of realistic size, so the daemon's figures over the floor's are
what the daemon adds: parsing, dispatch, building the document and encoding it.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

import anyio
import orjson
from anyio.abc import SocketStream

_CANNED_STATUS = {
    "env": "DEV",
    "generatedAt": "2025-01-01T00:00:00.000Z",
    "runs": {
        "active": 2,
        "busy": True,
        "pending": 5,
        "total": 100000,
        "last": {
            "id": "20250308T114000000Z-0123abcd",
            "status": "running",
            "startedAt": "2025-03-08T11:40:00.000Z",
            "completedAt": None,
            "ageMs": 1200,
            "errorMessage": None,
        },
    },
    "vault": {"state": "uninitialized", "autoLockRemainingMs": None},
    "db": {"connected": False, "type": None, "env": "DEV", "readOnly": False, "error": "x"},
    "llm": {"online": 0, "total": 0, "backends": []},
    "api": {"enabled": False, "url": None, "port": None, "socket": "/tmp/sa-bench/d.sock"},
    "warnings": [],
}
REPLY = orjson.dumps({"jsonrpc": "2.0", "result": _CANNED_STATUS, "id": 1}) + b"\n"


async def _handle(stream: SocketStream) -> None:
    async with stream:
        pending = b""
        try:
            async for chunk in stream:
                pending += chunk
                lines = pending.count(b"\n")
                if lines:
                    pending = pending[pending.rindex(b"\n") + 1 :]
                    await stream.send(REPLY * lines)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass


async def serve(path: str) -> None:
    """Serve ``path`` until SIGTERM or SIGINT, then remove the socket file."""
    listener = await anyio.create_unix_listener(path)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, _handle)
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    tg.cancel_scope.cancel()
                    break
    finally:
        await listener.aclose()
        if os.path.exists(path):
            os.unlink(path)


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.bench.floor --socket PATH``."""
    parser = argparse.ArgumentParser(prog="python -m tests.bench.floor", description=__doc__)
    parser.add_argument("--socket", required=True)
    args = parser.parse_args(argv)
    anyio.run(serve, args.socket)
    return 0


if __name__ == "__main__":
    sys.exit(main())
