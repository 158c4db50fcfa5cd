"""The load generators: a lean stdlib client and the jobs the worker processes run.

The same client code drives the floor server and the daemon, so their figures differ only by
the server. Each job runs in a worker process of its own (not sharing the measured server's
GIL, nor the orchestrator's); a connection always waits for its reply before the next request
(no pipelining). Jobs that run "until told" stop when their ``stop_file`` appears.
"""

from __future__ import annotations

import os
import random
import selectors
import socket
import time
from typing import Any

STATUS_REQUEST = b'{"jsonrpc":"2.0","method":"status.get","id":1}\n'
_RECV = 1 << 16
_STOP_CHECK_EVERY = 64


def connect(path: str, timeout: float | None = 30.0) -> socket.socket:
    """A blocking connection to the Unix socket ``path``. Without a ``timeout`` it waits for
    room in the server's listen queue rather than failing with ``EAGAIN`` when it is full."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except BaseException:
        sock.close()
        raise
    return sock


def roundtrip(sock: socket.socket, request: bytes) -> bytes:
    """Send one request line and return its reply line (newline included)."""
    sock.sendall(request)
    data = sock.recv(_RECV)
    while not data.endswith(b"\n"):
        more = sock.recv(_RECV)
        if not more:
            raise ConnectionError("the server closed the connection mid-reply")
        data += more
    return data


def _sleep_until(when: float) -> None:
    delay = when - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def noop() -> int:
    """A job that only proves its worker is up (and warms its imports)."""
    return os.getpid()


def latency_job(
    path: str, request: bytes, count: int, warmup: int, cpu: int | None = None
) -> list[int]:
    """``count`` sequential round trips on one connection: each one's time in ns. With
    ``cpu``, this worker runs on that CPU only for the duration of the job."""
    samples = [0] * count
    clock = time.perf_counter_ns
    allowed = os.sched_getaffinity(0)
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    try:
        with connect(path) as sock:
            for _ in range(warmup):
                roundtrip(sock, request)
            for k in range(count):
                began = clock()
                roundtrip(sock, request)
                samples[k] = clock() - began
    finally:
        os.sched_setaffinity(0, allowed)
    return samples


def throughput_job(
    path: str, request: bytes, conns: int, start_at: float, duration: float
) -> tuple[int, float]:
    """Replies completed on ``conns`` connections between ``start_at`` (``time.monotonic``,
    which all processes share) and ``duration`` later; returns ``(replies, seconds)``."""
    socks = [connect(path) for _ in range(conns)]
    try:
        for sock in socks:
            roundtrip(sock, request)  # connected and served once before the clock starts
        _sleep_until(start_at)
        if conns == 1:
            return _throughput_single(socks[0], request, duration)
        return _throughput_many(socks, request, duration)
    finally:
        for sock in socks:
            sock.close()


def _throughput_single(sock: socket.socket, request: bytes, duration: float) -> tuple[int, float]:
    began = time.monotonic()
    end = began + duration
    done = 0
    now = began
    while now < end:
        roundtrip(sock, request)
        done += 1
        if done % 16 == 0:
            now = time.monotonic()
    return done, time.monotonic() - began


def _throughput_many(
    socks: list[socket.socket], request: bytes, duration: float
) -> tuple[int, float]:
    selector = selectors.DefaultSelector()
    buffers: dict[int, bytes] = {}
    for sock in socks:
        sock.setblocking(False)
        buffers[sock.fileno()] = b""
        selector.register(sock, selectors.EVENT_READ)
    began = time.monotonic()
    end = began + duration
    done = 0
    try:
        for sock in socks:
            sock.send(request)
        outstanding = len(socks)
        while outstanding:
            for key, _ in selector.select(timeout=10):
                conn = key.fileobj
                assert isinstance(conn, socket.socket)
                data = conn.recv(_RECV)
                if not data:
                    raise ConnectionError("the server closed a connection")
                fd = conn.fileno()
                data = buffers[fd] + data
                if not data.endswith(b"\n"):
                    buffers[fd] = data
                    continue
                buffers[fd] = b""
                if time.monotonic() < end:
                    done += 1
                    conn.send(request)
                else:
                    outstanding -= 1
                    selector.unregister(conn)
        return done, min(time.monotonic(), end) - began
    finally:
        selector.close()


def hammer_job(path: str, request: bytes, conns: int, stop_file: str) -> dict[str, float]:
    """Keep ``conns`` connections busy with requests until ``stop_file`` exists."""
    socks = [connect(path) for _ in range(conns)]
    selector = selectors.DefaultSelector()
    began = time.monotonic()
    done = 0
    try:
        for sock in socks:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ, b"")
            sock.send(request)
        stopping = False
        outstanding = len(socks)
        while outstanding:
            for key, _ in selector.select(timeout=10):
                conn = key.fileobj
                assert isinstance(conn, socket.socket)
                data = conn.recv(_RECV)
                if not data:
                    raise ConnectionError("the server closed a connection")
                data = key.data + data
                if not data.endswith(b"\n"):
                    selector.modify(conn, selectors.EVENT_READ, data)
                    continue
                if key.data:
                    selector.modify(conn, selectors.EVENT_READ, b"")
                done += 1
                if not stopping and done % _STOP_CHECK_EVERY == 0:
                    stopping = os.path.exists(stop_file)
                if stopping:
                    outstanding -= 1
                    selector.unregister(conn)
                else:
                    conn.send(request)
    finally:
        selector.close()
        for sock in socks:
            sock.close()
    seconds = time.monotonic() - began
    return {"requests": done, "seconds": seconds, "perSecond": done / seconds}


def writer_job(
    runs_dir: str, records: list[tuple[str, list[bytes]]], rate: float, seed: int, stop_file: str
) -> dict[str, Any]:
    """Rewrite ``metadata.json`` files ``rate`` times a second until ``stop_file`` exists.

    ``records`` holds, per run folder, the records to cycle through (valid ones, statuses
    flipping); each write is an ``os.replace`` of a temporary file, as an external tool does.
    """
    rng = random.Random(seed)
    position = [0] * len(records)
    pid = os.getpid()
    began = time.monotonic()
    interval = 1.0 / rate
    writes = 0
    max_behind = 0.0
    while True:
        due = began + writes * interval
        behind = time.monotonic() - due
        if behind < 0:
            time.sleep(-behind)
        else:
            max_behind = max(max_behind, behind)
        if os.path.exists(stop_file):
            break
        k = rng.randrange(len(records))
        folder, cycle = records[k]
        position[k] = (position[k] + 1) % len(cycle)
        tmp = f"{runs_dir}/{folder}/.tmp-bench-{pid}-{writes}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, cycle[position[k]])
        finally:
            os.close(fd)
        os.replace(tmp, f"{runs_dir}/{folder}/metadata.json")
        writes += 1
    seconds = time.monotonic() - began
    return {
        "writes": writes,
        "seconds": seconds,
        "perSecond": writes / seconds if seconds else 0.0,
        "maxBehindMs": max_behind * 1000,
    }


# -- abuse: idle, slow and flooding clients --------------------------------------------------

# A request that never ends: the slow clients send it one byte a second.
_NEVER_FINISHED = b'{"jsonrpc":"2.0","method":"status.get","params":{"padding":"' + b"x" * 4096
_FLOOD_CHUNK = STATUS_REQUEST * 64  # what a flooder writes whenever its socket takes more
FLOOD_READ_BYTES = 16 * 1024  # a slow-reading flooder takes this much...
FLOOD_READ_EVERY = 0.01  # ...this often (1.6 MB/s: about 2,300 status replies a second)
_ABUSE_TICK = 0.01


def abuse_job(
    path: str, idle: int, slow: int, flood: int, ready_file: str, stop_file: str
) -> dict[str, Any]:
    """Hold ``idle`` connections that never send, ``slow`` ones that send one byte a second
    of a message that never ends, and ``flood`` ones that write pipelined ``status.get``
    requests as fast as the server takes them: half never read a reply, half read
    ``FLOOD_READ_BYTES`` every ``FLOOD_READ_EVERY`` seconds. ``ready_file`` is made once
    all are connected and flooding; everything stops when ``stop_file`` appears.

    Returns what the server did to them: replies the flooders read, and connections it
    closed (refused, or dropped).
    """
    idle_socks = [connect(path, None) for _ in range(idle)]
    slow_socks = [connect(path, None) for _ in range(slow)]
    flood_socks = [connect(path, None) for _ in range(flood)]
    readers = flood_socks[1::2]
    for sock in (*idle_socks, *slow_socks, *flood_socks):
        sock.setblocking(False)
    selector = selectors.DefaultSelector()
    pending = {sock.fileno(): memoryview(_FLOOD_CHUNK) for sock in flood_socks}
    for sock in flood_socks:
        selector.register(sock, selectors.EVENT_WRITE)
    sent = 0
    read = 0
    closed = 0
    slow_pos = 0
    began = time.monotonic()
    next_slow = began
    next_read = began
    ready = False
    try:
        while True:
            now = time.monotonic()
            if now >= next_slow:  # one byte a second from each slow client
                for sock in slow_socks:
                    try:
                        sock.send(_NEVER_FINISHED[slow_pos : slow_pos + 1])
                    except OSError:
                        closed += 1
                slow_pos = min(slow_pos + 1, len(_NEVER_FINISHED) - 1)
                next_slow += 1.0
                if os.path.exists(stop_file):
                    break
            if now >= next_read:
                for sock in readers:
                    try:
                        read += sock.recv(FLOOD_READ_BYTES).count(b"\n")
                    except BlockingIOError:
                        pass
                    except OSError:
                        closed += 1
                next_read = now + FLOOD_READ_EVERY
                if os.path.exists(stop_file):
                    break
            timeout = max(0.0, min(next_slow, next_read) - time.monotonic())
            for key, _ in selector.select(timeout=timeout):
                flooder = key.fileobj
                assert isinstance(flooder, socket.socket)
                fd = flooder.fileno()
                try:
                    n = flooder.send(pending[fd])
                except BlockingIOError:
                    continue
                except OSError:
                    selector.unregister(flooder)
                    closed += 1
                    continue
                sent += n
                rest = pending[fd][n:]
                pending[fd] = rest if len(rest) else memoryview(_FLOOD_CHUNK)
            if not ready:
                ready = True
                with open(ready_file, "w"):
                    pass
        for sock in idle_socks:  # an idle connection the server closed reads as EOF
            try:
                if sock.recv(1) == b"":
                    closed += 1
            except BlockingIOError:
                pass
            except OSError:
                closed += 1
    finally:
        selector.close()
        for sock in (*idle_socks, *slow_socks, *flood_socks):
            sock.close()
    seconds = time.monotonic() - began
    return {
        "idle": idle,
        "slow": slow,
        "flood": flood,
        "floodBytesSent": sent,
        "floodRepliesRead": read,
        "floodRepliesReadPerSecond": read / seconds,
        "closedByServer": closed,
        "seconds": seconds,
    }
