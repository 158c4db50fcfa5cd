"""Abuse and limits: the connection cap, running out of file descriptors, the fd limit."""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
import pytest

from simpleaided.app.config import load_config
from simpleaided.app.daemon import Daemon
from tests.support.daemon import daemon_env, running_daemon
from tests.support.dispatch import record_handled
from tests.support.llm_servers import SilentServer
from tests.support.rpc import RpcClient
from tests.support.waiting import eventually, eventually_blocking

PING = b'{"jsonrpc":"2.0","method":"daemon.ping","id":1}\n'
BOUND = 10.0  # seconds: generous; each wait below ends on its condition, not on the bound


def ping(sock: socket.socket) -> dict[str, Any]:
    """One ``daemon.ping`` on a blocking socket: the decoded reply, or ``{}`` at EOF."""
    try:
        sock.sendall(PING)
    except (BrokenPipeError, ConnectionResetError):
        pass  # refused and closed before we sent: its error waits to be read all the same
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            return {}
        data += chunk
    return json.loads(data)  # type: ignore[no-any-return]


def connect(path: Path) -> socket.socket:
    """A blocking connection with a timeout, as the CLI makes it."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(BOUND)
    try:
        sock.connect(str(path))
    except BaseException:
        sock.close()
        raise
    return sock


# -- the connection cap ----------------------------------------------------------------------


async def test_connections_over_the_cap_get_a_clear_error_and_are_closed(
    isolated_env: Path, socket_path: Path
) -> None:
    settings = {"limits.max_connections": 3}
    async with running_daemon(socket_path, isolated_env / "s", **settings) as daemon:
        held = [await anyio.to_thread.run_sync(connect, socket_path) for _ in range(3)]
        try:
            for sock in held:
                assert (await anyio.to_thread.run_sync(ping, sock))["result"] == "pong"
            refused = await anyio.to_thread.run_sync(connect, socket_path)
            with refused:
                reply = await anyio.to_thread.run_sync(ping, refused)
                assert reply["error"] == {
                    "code": -32040,
                    "message": "too many connections: 3 open, the limit is 3 "
                    "(limits.max_connections)",
                }
                assert refused.recv(1) == b""  # and closed
            # The others go on, and the refusal is counted apart from the accepted.
            assert (await anyio.to_thread.run_sync(ping, held[0]))["result"] == "pong"
            info = daemon.info()["connections"]
            assert info["open"] == 3 and info["limit"] == 3
            assert info["refused"] == 1 and info["accepted"] == 3
            held.pop().close()

            async def served_again() -> bool:
                with await anyio.to_thread.run_sync(connect, socket_path) as sock:
                    return (await anyio.to_thread.run_sync(ping, sock)).get("result") == "pong"

            await eventually(served_again, BOUND)  # the close is seen async
        finally:
            for sock in held:
                sock.close()


async def test_the_cap_is_applied_by_a_reload(isolated_env: Path, socket_path: Path) -> None:
    config = isolated_env / "config.toml"
    config.write_text("[limits]\nmax_connections = 50\n")

    def load() -> Any:
        return load_config(
            config_file=str(config),
            overrides={"daemon.socket": str(socket_path), "daemon.state_dir": str(isolated_env)},
        )

    daemon = Daemon(load(), handle_signals=False, load_config=load)
    async with anyio.create_task_group() as tg:
        await tg.start(daemon.run)
        config.write_text("[limits]\nmax_connections = 1\n")
        assert await daemon.reload()
        async with await RpcClient.connect(socket_path) as first:
            assert await first.call("daemon.ping") == "pong"
            with await anyio.to_thread.run_sync(connect, socket_path) as second:
                reply = await anyio.to_thread.run_sync(ping, second)
                assert reply["error"]["code"] == -32040
            assert (await first.call("daemon.info"))["connections"]["limit"] == 1
        daemon.request_stop()


# -- running out of file descriptors ---------------------------------------------------------

LOW_LIMIT = 64


def limited_daemon(home: Path, soft: int, hard: int) -> subprocess.Popen[bytes]:
    """``simpleaided`` under an ``RLIMIT_NOFILE`` of ``(soft, hard)``, set by a small wrapper
    that then becomes the daemon (``execv``): no code runs between fork and exec."""
    sock = home / "run" / "d.sock"
    argv = [sys.executable, "-m", "simpleaided", "--socket", str(sock)]
    wrapper = (
        "import os, resource, sys; "
        f"resource.setrlimit(resource.RLIMIT_NOFILE, ({soft}, {hard})); "
        "os.execv(sys.executable, sys.argv[1:])"
    )
    return subprocess.Popen(
        [sys.executable, "-c", wrapper, *argv],
        env=daemon_env(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.fixture
def low_fd_daemon(short_tmp: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    proc = limited_daemon(short_tmp, LOW_LIMIT, LOW_LIMIT)
    sock = short_tmp / "run" / "d.sock"
    try:

        def answers() -> bool:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            try:
                with connect(sock) as probe:
                    return bool(ping(probe).get("result") == "pong")
            except OSError:
                return False

        # A process we do not control: nothing to wait on but polling.
        eventually_blocking(answers, BOUND, interval=0.02)
        yield proc, sock
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=BOUND)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stderr:
            proc.stderr.close()


def test_running_out_of_file_descriptors_refuses_new_clients_and_keeps_the_others(
    low_fd_daemon: tuple[subprocess.Popen[bytes], Path],
) -> None:
    proc, sock_path = low_fd_daemon
    existing = connect(sock_path)
    assert ping(existing)["result"] == "pong"
    held: list[socket.socket] = []
    refused: dict[str, Any] = {}
    try:
        for _ in range(LOW_LIMIT * 2):  # more than there can be descriptors for
            sock = connect(sock_path)
            reply = ping(sock)
            assert proc.poll() is None, "the daemon died when it ran out of descriptors"
            if reply.get("result") == "pong":
                held.append(sock)
                continue
            refused = reply
            sock.close()
            break
        assert refused, "never refused: the limit was not reached"
        assert refused["error"]["code"] == -32040
        assert "file descriptors" in refused["error"]["message"]
        # Still at the limit: refused again, the daemon alive, the first client served.
        with connect(sock_path) as again:
            assert ping(again)["error"]["code"] == -32040
        assert ping(existing)["result"] == "pong"
        assert proc.poll() is None
        # Once some clients leave, new ones are served again.
        for sock in held[-4:]:
            sock.close()
        del held[-4:]

        def served_again() -> bool:
            with connect(sock_path) as fresh:
                return bool(ping(fresh).get("result") == "pong")

        eventually_blocking(served_again, BOUND)  # the daemon sees the closes on its own time
        assert ping(existing)["result"] == "pong"
    finally:
        for sock in held:
            sock.close()
        existing.close()
    proc.terminate()
    assert proc.wait(timeout=BOUND) == 0
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    assert "Traceback" not in stderr
    # Logged once for the episode, not once per refused client.
    assert stderr.count("connections are refused until some close") == 1, stderr
    recovered = re.search(r"accepting connections again \((\d+) refused while out of", stderr)
    assert recovered and int(recovered[1]) >= 2, stderr  # the two above, and any retried meanwhile


def test_the_soft_fd_limit_is_raised_to_the_hard_limit(short_tmp: Path) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted_hard = min(hard, 4096) if hard != resource.RLIM_INFINITY else 4096
    proc = limited_daemon(short_tmp, 256, wanted_hard)
    sock = short_tmp / "run" / "d.sock"
    try:

        def answered() -> dict[str, Any] | None:
            assert proc.poll() is None
            try:
                with connect(sock) as probe:
                    request = b'{"jsonrpc":"2.0","method":"daemon.info","id":1}\n'
                    probe.sendall(request)
                    data = b""
                    while not data.endswith(b"\n"):
                        data += probe.recv(65536)
                    info: dict[str, Any] = json.loads(data)["result"]
                    return info
            except OSError:
                return None

        # A process we do not control: polling is all there is.
        info = eventually_blocking(answered, BOUND, interval=0.02)
        assert info["connections"]["fdLimit"] == wanted_hard
        limits = Path(f"/proc/{proc.pid}/limits").read_text().splitlines()
        line = next(line for line in limits if line.startswith("Max open files"))
        assert line.split()[3:5] == [str(wanted_hard), str(wanted_hard)]
    finally:
        proc.terminate()
        proc.wait(timeout=BOUND)
        if proc.stderr:
            proc.stderr.close()


# -- accept storms ---------------------------------------------------------------------------


async def test_a_storm_of_connections_waits_in_the_queue_rather_than_failing(
    daemon: Daemon, socket_path: Path
) -> None:
    """Clients connect with a timeout, as the CLI does: then a full listen queue fails their
    connect at once (``EAGAIN``) instead of waiting. The daemon's event loop is held here
    (the connects below never yield to it), as a burst of starting status lines holds it."""
    storm: list[socket.socket] = []
    try:
        for _ in range(400):
            storm.append(connect(socket_path))
    finally:
        accepted = len(storm)
        for sock in storm:
            sock.close()
    assert accepted == 400


# -- fairness under a flood ------------------------------------------------------------------


async def test_pipelining_clients_take_turns_behind_a_client_waiting_for_its_reply(
    daemon: Daemon, socket_path: Path
) -> None:
    """Twenty clients send hundreds of requests each without waiting for replies; a client
    that waits for each reply must not find a request of every one of them ahead of its own.
    Counted, not timed: flood requests handled per round trip of the waiting client."""
    handled = record_handled(daemon)
    flood = b'{"jsonrpc":"2.0","method":"daemon.ping","id":"flood"}\n' * 500

    flooders = [await anyio.connect_unix(socket_path) for _ in range(20)]

    async def flood_and_read(stream: anyio.abc.SocketStream) -> None:
        await stream.send(flood)
        try:
            async for _ in stream:  # its replies, as they come
                pass
        except anyio.ClosedResourceError:
            pass  # closed below: the way to stop it (a cancelled read can trip anyio)

    async with anyio.create_task_group() as tg, await RpcClient.connect(socket_path) as healthy:
        for stream in flooders:
            tg.start_soon(flood_and_read, stream)
        with anyio.fail_after(BOUND):
            while handled.count("flood") < 100:  # the flood is on
                await anyio.lowlevel.checkpoint()
        per_round_trip = []
        for _ in range(30):
            before = handled.count("flood")
            assert await healthy.call("daemon.ping") == "pong"
            per_round_trip.append(handled.count("flood") - before)
        assert handled.count("flood") < 20 * 500  # still flooding at the end
        for stream in flooders:
            await stream.aclose()
    # A round trip spans a few trips through the event loop: one flood request in each (5
    # here), not one of every flooding client in each (100 here before the turns).
    assert sorted(per_round_trip)[len(per_round_trip) // 2] <= 10, per_round_trip


# -- no busy loop, bounded refusals, framing, logging, reloads ---------------------------------


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system) process ``pid`` has used so far."""
    # After "pid (comm)", utime and stime are the 12th and 13th fields.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fill_to_the_limit(proc: subprocess.Popen[bytes], sock_path: Path) -> list[socket.socket]:
    """Connect served clients until one is refused for want of descriptors; the served ones."""
    held: list[socket.socket] = []
    for _ in range(LOW_LIMIT * 2):  # more than there can be descriptors for
        sock = connect(sock_path)
        reply = ping(sock)
        assert proc.poll() is None, "the daemon died when it ran out of descriptors"
        if reply.get("result") == "pong":
            held.append(sock)
            continue
        sock.close()
        assert "file descriptors" in reply["error"]["message"], reply
        return held
    for sock in held:
        sock.close()
    raise AssertionError("never refused: the limit was not reached")


def test_out_of_descriptors_with_nobody_connecting_the_daemon_stays_idle(
    low_fd_daemon: tuple[subprocess.Popen[bytes], Path],
) -> None:
    """At the limit, accept() fails with EMFILE before it looks at the queue: the daemon must
    wait for a client to connect (or one of its own to leave), not retry in a loop."""
    proc, sock_path = low_fd_daemon
    held = fill_to_the_limit(proc, sock_path)
    try:
        before = cpu_seconds(proc.pid)
        time.sleep(1.0)  # the window measured: nobody connects, nobody sends
        used = cpu_seconds(proc.pid) - before
        assert used < 0.1, f"{used:.2f} s of CPU in 1 s while idle at the fd limit"
        # Still awake: a new client is answered, the served ones are served.
        with connect(sock_path) as again:
            assert ping(again)["error"]["code"] == -32040
        assert ping(held[0])["result"] == "pong"
    finally:
        for sock in held:
            sock.close()


def test_out_of_descriptors_the_refusal_is_in_the_framing_the_client_sends_a_moment_later(
    low_fd_daemon: tuple[subprocess.Popen[bytes], Path],
) -> None:
    proc, sock_path = low_fd_daemon
    held = fill_to_the_limit(proc, sock_path)
    try:
        with connect(sock_path) as late:
            time.sleep(0.02)  # the client's own pause between connecting and sending
            body = b'{"jsonrpc":"2.0","method":"daemon.ping","id":1}'
            try:
                late.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # answered and closed already: what it answered is still to be read
            data = b""
            while b"\r\n\r\n" not in data and len(data) < 16:
                chunk = late.recv(65536)
                if not chunk:
                    break
                data += chunk
            assert data.startswith(b"Content-Length: "), data
    finally:
        for sock in held:
            sock.close()


def daemon_descriptors() -> int:
    """Descriptors open in this process (the in-process daemon's and the test's)."""
    return len(os.listdir("/proc/self/fd"))


async def test_a_burst_over_the_cap_holds_few_descriptors_while_refused(
    isolated_env: Path, socket_path: Path
) -> None:
    """Each refusal waits a moment for the client's framing, then for it to read its error:
    a burst of clients that send nothing must not hold a descriptor each meanwhile."""
    settings = {"limits.max_connections": 1}
    async with running_daemon(socket_path, isolated_env / "s", **settings) as daemon:
        with await anyio.to_thread.run_sync(connect, socket_path) as served:
            assert (await anyio.to_thread.run_sync(ping, served))["result"] == "pong"
            before = daemon_descriptors()
            burst = [await anyio.to_thread.run_sync(connect, socket_path) for _ in range(40)]
            try:
                # Counted by the daemon, no event to wait on.
                await eventually(
                    lambda: daemon.info()["connections"]["refused"] >= len(burst), BOUND
                )
                info = daemon.info()["connections"]
                held = daemon_descriptors() - before - len(burst)
                assert held <= 10, f"{held} descriptors held by refusals: {info}"
                assert info["refusing"] <= 8, info
                # The first ones get the error; those beyond the bound are closed at once.
                first = await anyio.to_thread.run_sync(ping, burst[0])
                assert first["error"]["code"] == -32040
                assert await anyio.to_thread.run_sync(ping, burst[-1]) == {}
            finally:
                for sock in burst:
                    sock.close()


async def test_a_slow_request_in_the_lane_does_not_hold_up_other_pipelining_clients(
    isolated_env: Path, socket_path: Path
) -> None:
    """The lane hands out turns; a request that then takes long (a probe of a backend that
    never answers) must not keep every other pipelining connection waiting for it."""
    timeout = 3.0
    with SilentServer() as silent:
        settings = {
            "llm.backends": [{"name": "silent", "kind": "ollama", "url": silent.url}],
            "llm.probe_seconds": 3600,
            "llm.timeout_seconds": timeout,
        }
        async with running_daemon(socket_path, isolated_env / "s", **settings) as daemon:
            slow = await anyio.connect_unix(socket_path)
            other = await anyio.connect_unix(socket_path)
            async with slow, other:
                probe = b'{"jsonrpc":"2.0","method":"llm.probe","id":1}\n'
                await slow.send(probe + PING)  # pipelined: the probe is served in the lane
                await eventually(lambda: daemon.server._in_flight, BOUND, interval=0)  # begun
                started = time.monotonic()
                await other.send(PING + PING)  # pipelined too
                replies = b""
                with anyio.fail_after(BOUND):
                    while replies.count(b"\n") < 2:
                        replies += await other.receive()
                waited = time.monotonic() - started
                assert waited < timeout / 3, f"pings answered after {waited:.2f} s"
                assert [json.loads(line)["result"] for line in replies.splitlines()] == [
                    "pong",
                    "pong",
                ]


class FailingAccepts(socket.socket):
    """A listening socket whose next few accept() calls fail as the kernel may make them."""

    failures = 5

    def accept(self) -> tuple[socket.socket, Any]:
        if self.failures:
            self.failures -= 1
            raise OSError(errno.EPROTO, os.strerror(errno.EPROTO))
        return super().accept()


async def test_a_failing_accept_is_logged_once_per_episode(
    daemon: Daemon, short_tmp: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = short_tmp / "extra.sock"
    raw = FailingAccepts(socket.AF_UNIX, socket.SOCK_STREAM)
    raw.bind(str(path))
    raw.listen()
    raw.setblocking(False)
    caplog.set_level(logging.INFO, logger="simpleaided.transports.server")
    listener = await anyio.abc.SocketListener.from_socket(raw)
    async with anyio.create_task_group() as tg:
        await tg.start(daemon.server.serve, listener)
        await eventually(lambda: not raw.failures, BOUND)  # the retries, each after a short wait
        async with await RpcClient.connect(path) as client:
            assert await client.call("daemon.ping") == "pong"
        await listener.aclose()
    failed = [r for r in caplog.records if "accepting a connection failed" in r.getMessage()]
    assert len(failed) == 1, [r.getMessage() for r in failed]
    assert "accepting connections again" in caplog.text


async def test_a_reload_that_raises_the_cap_beyond_the_fd_limit_warns(
    isolated_env: Path, socket_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    config = isolated_env / "config.toml"
    config.write_text("[limits]\nmax_connections = 10\n")

    def load() -> Any:
        return load_config(
            config_file=str(config),
            overrides={"daemon.socket": str(socket_path), "daemon.state_dir": str(isolated_env)},
        )

    daemon = Daemon(load(), handle_signals=False, load_config=load)
    async with anyio.create_task_group() as tg:
        await tg.start(daemon.run)
        assert "file descriptors" not in caplog.text
        config.write_text(f"[limits]\nmax_connections = {min(soft, 1_000_000)}\n")
        assert await daemon.reload()
        daemon.request_stop()
    warned = [r for r in caplog.records if "needs about" in r.getMessage()]
    assert len(warned) == 1 and warned[0].levelno == logging.WARNING, caplog.text
    assert f"the limit is {soft}" in warned[0].getMessage()


async def test_batch_flooders_take_turns_behind_a_client_waiting_for_its_reply(
    daemon: Daemon, socket_path: Path
) -> None:
    """A batch is a pipeline in one message: twenty clients sending long batches must not
    put an item of each of them ahead of every request of a client waiting for its reply."""
    handled: list[str] = []
    one = daemon.server._dispatcher._one

    async def recording(request: Any, conn: Any) -> Any:
        handled.append("flood" if request.get("id") == "flood" else "healthy")
        return await one(request, conn)

    daemon.server._dispatcher._one = recording  # type: ignore[method-assign,assignment]  # a wrapper
    item = {"jsonrpc": "2.0", "method": "daemon.ping", "id": "flood"}
    batch = json.dumps([item] * 5000).encode() + b"\n"
    flooders = [await anyio.connect_unix(socket_path) for _ in range(20)]

    async def flood_and_read(stream: anyio.abc.SocketStream) -> None:
        await stream.send(batch)
        try:
            async for _ in stream:
                pass
        except anyio.ClosedResourceError:
            pass  # closed below: the way to stop it

    async with anyio.create_task_group() as tg, await RpcClient.connect(socket_path) as healthy:
        for stream in flooders:
            tg.start_soon(flood_and_read, stream)
        with anyio.fail_after(BOUND):
            while handled.count("flood") < 100:  # the flood is on
                await anyio.lowlevel.checkpoint()
        per_round_trip = []
        for _ in range(30):
            before = handled.count("flood")
            assert await healthy.call("daemon.ping") == "pong"
            per_round_trip.append(handled.count("flood") - before)
        assert handled.count("flood") < 20 * 5000  # still flooding at the end
        for stream in flooders:
            await stream.aclose()
    assert sorted(per_round_trip)[len(per_round_trip) // 2] <= 10, per_round_trip
