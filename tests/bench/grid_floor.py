"""The grid's floor over a socket: a bare server that runs a statement through the bare
driver and sends its rows back as one JSON line, nothing else.

``python -m tests.bench.grid_floor --socket PATH --engine sqlite|postgres --target T`` (a
SQLite file's path, or a PostgreSQL URL). Each request line is ``{"parts": [[sql, args], …],
"limit": n}``, a page's statements as the daemon runs them (each with ``args`` and the rows
still wanted bound last, one after another until ``n`` rows); the reply is the rows as a
JSON array, or ``{"error": …}``. One connection at a time, a
blocking loop: the least a process of its own must do to serve a page over a Unix socket
(wake up, read, run, encode, write), so that the daemon's figure over this one is what the
daemon adds (JSON-RPC, validation, cursors, cells as the wire wants them), where its figure
over the in-process floor also counts the trip between two processes.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import sqlite3
import sys
from collections.abc import Callable, Sequence
from typing import Any

import orjson


def _runner(engine: str, target: str) -> Callable[[str, Sequence[Any]], list[Any]]:
    if engine == "sqlite":
        conn = sqlite3.connect(target, isolation_level=None)
        return lambda sql, args: conn.execute(sql, tuple(args)).fetchall()
    import psycopg

    pg = psycopg.connect(target, autocommit=True)
    return lambda sql, args: pg.execute(sql, tuple(args)).fetchall()


def serve(path: str, run: Callable[[str, Sequence[Any]], list[Any]]) -> None:
    """Answer every request line of one client at a time, until SIGTERM."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen()
    try:
        while True:
            conn, _ = listener.accept()
            with conn:
                pending = b""
                while chunk := conn.recv(1 << 16):
                    pending += chunk
                    while b"\n" in pending:
                        line, _, pending = pending.partition(b"\n")
                        request = orjson.loads(line)
                        try:
                            rows: list[Any] = []
                            for sql, args in request["parts"]:  # a page's parts, in order
                                rows += run(sql, [*args, request["limit"] - len(rows)])
                                if len(rows) >= request["limit"]:
                                    break
                            reply = orjson.dumps(rows, default=str)
                        except Exception as exc:  # a bench tool: say it, keep serving
                            reply = orjson.dumps({"error": str(exc)})
                        conn.sendall(reply + b"\n")
    finally:
        listener.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def main(argv: list[str] | None = None) -> int:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m tests.bench.grid_floor", description=__doc__)
    parser.add_argument("--socket", required=True)
    parser.add_argument("--engine", choices=["sqlite", "postgres"], required=True)
    parser.add_argument("--target", required=True, help="the SQLite file, or a PostgreSQL URL")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    serve(args.socket, _runner(args.engine, args.target))
    return 0


if __name__ == "__main__":
    sys.exit(main())
