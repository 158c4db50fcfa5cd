"""What the terminals are measured against: the floor, a bare PTY in this process (a read
loop until EOF, and a write-then-read echo), and Jupyter's terminado serving the same
programs over a WebSocket (``python -m tests.bench.terminals_rivals --file FILE``, a process
of its own, like the daemon). For reference (no target), a bare relay: a process of its own
(``... --relay SOCKET``) that copies raw bytes between a Unix socket and a PTY on an asyncio
loop, without JSON, base64, scrollback or acknowledgements: what any daemon in another
process costs at the least.

Every contender runs the same programs (``flood_argv``, ``echo_argv``), so the figures
differ only by what carries the bytes between the PTY and the client.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

READY = b"READY"  # what the echo program prints once its terminal is raw
READ_BYTES = 64 * 1024  # one read of the PTY's master, as the daemon's (and terminado's)


def flood_argv(path: Path) -> list[str]:
    """``cat FILE`` once a line is typed: nothing flows before the client is there and its
    clock runs (the line's echo is two bytes of the output)."""
    return ["sh", "-c", 'read -r _ && exec cat "$0"', str(path)]


def echo_argv() -> list[str]:
    """A raw-mode echo: ``cat`` on a terminal with no line discipline and no echo of its own,
    so each key goes to the program and back (as in a shell, whose readline echoes)."""
    return ["sh", "-c", "stty raw -echo && printf READY && exec cat"]


# -- the floor: a bare PTY in this process -------------------------------------------------


class BarePty:
    """A program on a new PTY, its master read and written directly (blocking)."""

    def __init__(self, argv: list[str]) -> None:
        self.master, slave = os.openpty()
        try:
            self.proc = subprocess.Popen(
                argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True
            )
        except BaseException:
            os.close(self.master)
            raise
        finally:
            os.close(slave)

    def read(self) -> bytes:
        """The next output (``b""`` at the end: every process let go of the PTY)."""
        try:
            return os.read(self.master, READ_BYTES)
        except OSError as exc:
            if exc.errno == errno.EIO:
                return b""
            raise

    def close(self) -> None:
        """Close the master (the program gets a hang-up), reap the program."""
        os.close(self.master)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def floor_flood(path: Path) -> tuple[float, int, int]:
    """Type the line that starts ``cat FILE``, read the master until EOF: the seconds from
    the line typed to the last byte read, the bytes read and the reads."""
    pty = BarePty(flood_argv(path))
    try:
        clock = time.perf_counter
        received = reads = 0
        began = last = clock()
        os.write(pty.master, b"\n")
        while chunk := pty.read():
            received += len(chunk)
            reads += 1
            last = clock()
        return last - began, received, reads
    finally:
        pty.close()


def floor_echo(count: int, warmup: int) -> list[float]:
    """``count`` keystrokes into the raw echo program, each read back before the next: each
    one's round trip in µs."""
    pty = BarePty(echo_argv())
    try:
        seen = b""
        while READY not in seen:
            chunk = pty.read()
            if not chunk:
                raise RuntimeError("the echo program ended before it was ready")
            seen += chunk
        clock = time.perf_counter_ns
        samples: list[float] = []
        for k in range(warmup + count):
            key = KEYS[k % len(KEYS)]
            began = clock()
            os.write(pty.master, key)
            got = pty.read()
            while key not in got:
                got += pty.read()
            if k >= warmup:
                samples.append((clock() - began) / 1000)
        return samples
    finally:
        pty.close()


KEYS = [bytes([c]) for c in b"abcdefghijklmnopqrstuvwxyz"]  # each echo told from the last


# -- the bare relay, in a process of its own --------------------------------------------


class _Relay(asyncio.Protocol):
    """One connection: its first line names the program (a JSON list); then bytes in go to
    the PTY, the PTY's output comes out, until the PTY hangs up. The PTY is not read while
    the socket's buffer is full (the kernel's backpressure is its flow control)."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.pty: BarePty | None = None
        self.head = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.pty is None:
            self.head += data
            if b"\n" not in self.head:
                return
            line, _, data = self.head.partition(b"\n")
            self.pty = BarePty(json.loads(line))
            os.set_blocking(self.pty.master, False)
            self.loop.add_reader(self.pty.master, self._readable)
        if data:
            os.write(self.pty.master, data)  # a key, a line: the PTY takes it at once

    def _readable(self) -> None:
        assert self.pty is not None and self.transport is not None
        try:
            chunk = self.pty.read()
        except BlockingIOError:
            return
        if chunk:
            self.transport.write(chunk)
            return
        self.loop.remove_reader(self.pty.master)
        self.pty.close()  # the program is reaped before the client sees the end
        self.pty = None
        self.transport.close()

    def pause_writing(self) -> None:
        if self.pty is not None:
            self.loop.remove_reader(self.pty.master)

    def resume_writing(self) -> None:
        if self.pty is not None:
            self.loop.add_reader(self.pty.master, self._readable)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.pty is not None:
            self.loop.remove_reader(self.pty.master)
            self.pty.close()


async def relay(path: str) -> None:
    """Serve the bare relay on ``path`` until SIGTERM; prints ``LISTENING`` once it does."""
    loop = asyncio.get_running_loop()
    server = await loop.create_unix_server(_Relay, path)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print("LISTENING", flush=True)
    await stop.wait()
    server.close()


def _relay_connect(path: str, argv: list[str]) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(120)
    sock.connect(path)
    sock.sendall(json.dumps(argv).encode() + b"\n")
    return sock


def relay_flood(path: str, file: Path) -> tuple[float, int, int]:
    """``floor_flood`` through the relay at ``path``."""
    with _relay_connect(path, flood_argv(file)) as sock:
        clock = time.perf_counter
        received = reads = 0
        began = last = clock()
        sock.sendall(b"\n")
        while chunk := sock.recv(1 << 20):
            received += len(chunk)
            reads += 1
            last = clock()
        return last - began, received, reads


def relay_echo(path: str, count: int, warmup: int) -> list[float]:
    """``floor_echo`` through the relay at ``path``."""
    with _relay_connect(path, echo_argv()) as sock:
        seen = b""
        while READY not in seen:
            seen += sock.recv(1 << 16)
        clock = time.perf_counter_ns
        samples: list[float] = []
        for k in range(warmup + count):
            key = KEYS[k % len(KEYS)]
            began = clock()
            sock.sendall(key)
            got = sock.recv(1 << 16)
            while key not in got:
                got += sock.recv(1 << 16)
            if k >= warmup:
                samples.append((clock() - began) / 1000)
        return samples


# -- terminado, in a process of its own ----------------------------------------------------


class Rival:
    """A rival server (this module run as a program: terminado, or the bare relay)."""

    def __init__(self, args: list[str], log_path: Path) -> None:
        self.log_file: IO[bytes] = log_path.open("ab")
        argv = [sys.executable, "-m", "tests.bench.terminals_rivals", *args]
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.log_file
        )
        assert self.proc.stdout is not None
        words = self.proc.stdout.readline().split()  # "LISTENING [port]", once it listens
        if words[:1] != [b"LISTENING"]:
            self.stop()
            tail = log_path.read_text(errors="replace")[-1500:]
            raise RuntimeError(f"{args} did not start (exit {self.proc.returncode}):\n{tail}")
        self.port = int(words[1]) if len(words) > 1 else 0

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self.proc.pid

    def stop(self) -> None:
        """SIGTERM by pid, then SIGKILL after 10 s."""
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        finally:
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self.log_file.close()


class Terminado(Rival):
    """terminado's server, serving ``flood_argv(path)`` and ``echo_argv()``."""

    def __init__(self, path: Path, log_path: Path) -> None:
        super().__init__(["--file", str(path)], log_path)

    def url(self, route: str) -> str:
        """The WebSocket URL of ``route`` (``flood`` or ``echo``)."""
        return f"ws://127.0.0.1:{self.port}/{route}"

    @property
    def origin(self) -> str:
        """Its own origin (tornado refuses a WebSocket from any other)."""
        return f"http://127.0.0.1:{self.port}"


class Relay(Rival):
    """The bare relay, serving ``path``."""

    def __init__(self, path: str, log_path: Path) -> None:
        super().__init__(["--relay", path], log_path)
        self.path = path


async def serve(path: Path) -> None:
    """terminado's ``TermSocket`` at ``/flood`` and ``/echo``, a new terminal per WebSocket
    (``UniqueTermManager``), on a free loopback port printed as ``LISTENING n``; until
    SIGTERM."""
    import tornado.httpserver
    import tornado.netutil
    import tornado.web
    from terminado.management import UniqueTermManager
    from terminado.websocket import TermSocket

    flood = UniqueTermManager(shell_command=flood_argv(path))
    echo = UniqueTermManager(shell_command=echo_argv())
    app = tornado.web.Application(
        [
            (r"/flood", TermSocket, {"term_manager": flood}),
            (r"/echo", TermSocket, {"term_manager": echo}),
        ]
    )
    sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
    server = tornado.httpserver.HTTPServer(app)
    server.add_sockets(sockets)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"LISTENING {sockets[0].getsockname()[1]}", flush=True)
    await stop.wait()
    server.stop()
    await flood.shutdown()
    await echo.shutdown()


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.bench.terminals_rivals --file FILE | --relay SOCKET``."""
    parser = argparse.ArgumentParser(prog="python -m tests.bench.terminals_rivals")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--file", type=Path, help="serve terminado; what its flood cats")
    which.add_argument("--relay", help="serve the bare relay on this Unix socket")
    args = parser.parse_args(argv)
    if args.relay:
        asyncio.run(relay(args.relay))
    else:
        asyncio.run(serve(args.file))
    return 0


if __name__ == "__main__":
    sys.exit(main())
