"""The daemon under a service manager, for real: socket activation through
``systemd-socket-activate``, ``sd_notify`` datagrams, reloading on SIGHUP, and its socket
file kept (single instance, a deleted file renewed)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from simpleaided.app import systemd
from tests.support.daemon import DAEMON, daemon_env, until_answering
from tests.support.rpc import RpcClient
from tests.support.sandbox import simpleaide_command
from tests.support.waiting import eventually

ACTIVATE = shutil.which("systemd-socket-activate")
RENEW_BOUND = 5.0  # seconds: the daemon checks its socket file every second


class Process:
    """A daemon (or systemd-socket-activate) started by a test; killed if still running."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def stop(self) -> tuple[int, str]:
        """SIGTERM, then its exit status and everything it logged."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait()

    def wait(self) -> tuple[int, str]:
        code = self.proc.wait(timeout=20)
        assert self.proc.stderr is not None
        return code, self.proc.stderr.read().decode()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        if self.proc.stderr is not None:
            self.proc.stderr.close()


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in started:
        process.kill()


def start(processes: list[Process], args: list[str], env: dict[str, str]) -> Process:
    process = Process(args, env)
    processes.append(process)
    return process


async def call(sock: Path, method: str, **params: Any) -> Any:
    async with await RpcClient.connect(sock) as client:
        return await client.call(method, **params)


async def wait_for_path(path: Path, process: Process) -> None:
    def exists() -> bool:
        assert process.proc.poll() is None, process.wait()[1]
        return path.exists()

    await eventually(exists, 10, interval=0.02)  # a process we do not control: no other signal


async def start_activated(short_tmp: Path, processes: list[Process]) -> tuple[Process, Path]:
    """``systemd-socket-activate`` holding the daemon's socket (named rpc), as systemd's
    simpleaided.socket would; the daemon starts at the first connection."""
    assert ACTIVATE, "systemd-socket-activate is part of systemd; install systemd"
    sock = short_tmp / "run" / "daemon.sock"
    sock.parent.mkdir(mode=0o700)
    argv = [ACTIVATE, "-l", str(sock), "--fdname=rpc", *DAEMON]
    activator = start(processes, argv, daemon_env(short_tmp))
    await wait_for_path(sock, activator)
    return activator, sock


async def reconnect_within(sock: Path, bound: float) -> float:
    """Seconds until a new connection to ``sock`` gets an answer (fails after ``bound``)."""
    started = time.monotonic()

    async def answers() -> bool:
        try:
            assert await call(sock, "daemon.ping") == "pong"
        except OSError:
            return False
        return True

    await eventually(answers, bound, interval=0.05)
    return time.monotonic() - started


# -- socket activation ------------------------------------------------------------------------


async def test_socket_activation_serves_the_passed_socket_and_never_removes_it(
    short_tmp: Path, processes: list[Process]
) -> None:
    activator, sock = await start_activated(short_tmp, processes)
    env = daemon_env(short_tmp)
    inode = sock.stat().st_ino
    # Until the first connection only systemd-socket-activate runs: the daemon cannot have
    # made the socket file.
    assert os.readlink(f"/proc/{activator.pid}/exe").endswith("systemd-socket-activate")

    info = await call(sock, "daemon.info")  # this connection starts the daemon
    assert info["startMode"] == "socket-activation"
    assert info["pid"] == activator.pid  # it exec'd the daemon in its place
    assert info["socket"] == str(sock)
    assert sock.stat().st_ino == inode
    run = await call(sock, "workspaces.list")
    assert run == []

    # A second daemon on the same path refuses to start, and touches nothing.
    second = await anyio.run_process([*DAEMON, "--socket", str(sock)], env=env, check=False)
    refusal = second.stderr.decode()
    assert second.returncode == 1, refusal
    assert f"another simpleaided is already serving {sock}" in refusal
    assert "Traceback" not in refusal
    assert sock.stat().st_ino == inode

    code, log = activator.stop()
    assert code == 0, log
    assert sock.exists() and sock.stat().st_ino == inode, "the passed socket file was removed"


async def test_socket_activation_refuses_a_socket_it_cannot_serve(
    short_tmp: Path, processes: list[Process]
) -> None:
    assert ACTIVATE
    env = daemon_env(short_tmp)
    # Two sockets, neither named "rpc": the daemon cannot tell which one to serve.
    first, second = short_tmp / "a.sock", short_tmp / "b.sock"
    activator = start(processes, [ACTIVATE, "-l", str(first), "-l", str(second), *DAEMON], env)
    await wait_for_path(second, activator)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as knock:
        knock.connect(str(first))  # the first connection starts the daemon
        code, log = activator.wait()
    assert code == 2
    assert "2 sockets were passed" in log and "FileDescriptorName=rpc" in log
    assert "Traceback" not in log


def test_a_passed_fd_that_is_not_open_is_refused_in_one_line(short_tmp: Path) -> None:
    # LISTEN_PID=$$ before exec: the variables are meant for the daemon; fd 3 is closed.
    script = 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$@" 3<&-'
    result = subprocess.run(
        ["sh", "-c", script, "sh", *DAEMON],
        env=daemon_env(short_tmp),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr == (
        "simpleaided: socket activation: passed fd 3 cannot be used: Bad file descriptor\n"
    )


# -- sd_notify --------------------------------------------------------------------------------


class NotifyListener:
    """The service manager's end of ``NOTIFY_SOCKET``: a datagram socket."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(10)
        self.received: list[tuple[float, dict[str, str]]] = []

    def next(self) -> dict[str, str]:
        data = self.sock.recv(4096).decode()
        fields = dict(line.split("=", 1) for line in data.split("\n") if line)
        self.received.append((time.monotonic(), fields))
        return fields

    def next_state(self) -> dict[str, str]:
        """The next message that is more than a watchdog ping or a status update."""
        while True:
            fields = self.next()
            if set(fields) - {"WATCHDOG", "STATUS"}:
                return fields

    def close(self) -> None:
        self.sock.close()


def monotonic_usec() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


@pytest.fixture
def listener(short_tmp: Path) -> Iterator[NotifyListener]:
    listener = NotifyListener(short_tmp / "notify")
    yield listener
    listener.close()


def notified_env(short_tmp: Path) -> dict[str, str]:
    """The environment of a daemon reporting to ``listener``."""
    return {**daemon_env(short_tmp), "NOTIFY_SOCKET": str(short_tmp / "notify")}


async def test_sd_notify_ready_status_watchdog_reloading_stopping_in_order(
    short_tmp: Path, processes: list[Process], listener: NotifyListener
) -> None:
    sock = short_tmp / "run" / "d.sock"
    env = notified_env(short_tmp)
    env["WATCHDOG_USEC"] = "1000000"  # WatchdogSec=1: a ping at least every 0.5 s
    daemon = start(processes, [*DAEMON, "--socket", str(sock)], env)

    ready = await anyio.to_thread.run_sync(listener.next_state)
    assert ready["READY"] == "1"
    assert ready["STATUS"].startswith("DEV: 0 runs in 0 workspaces, 0 active;")
    # READY means answering: no waiting needed before the first call.
    info = await call(sock, "daemon.info")
    assert info["startMode"] == "systemd"

    pings: list[float] = []
    while len(pings) < 4:
        fields = await anyio.to_thread.run_sync(listener.next)
        if fields.get("WATCHDOG") == "1":
            pings.append(listener.received[-1][0])
    # Every half WatchdogSec, from the loop: on average (a single gap is as noisy as the
    # test's own scheduling), and never a whole WatchdogSec without one.
    gaps = [b - a for a, b in zip(pings, pings[1:], strict=False)]
    assert 0.45 <= sum(gaps) / len(gaps) < 0.75 and max(gaps) < 1.0, gaps

    before = monotonic_usec()
    daemon.signal(signal.SIGHUP)
    reloading = await anyio.to_thread.run_sync(listener.next_state)
    assert reloading["RELOADING"] == "1"
    assert before <= int(reloading["MONOTONIC_USEC"]) <= monotonic_usec()
    again = await anyio.to_thread.run_sync(listener.next_state)
    assert again["READY"] == "1"

    daemon.signal(signal.SIGTERM)
    stopping = await anyio.to_thread.run_sync(listener.next_state)
    assert stopping["STOPPING"] == "1"
    code, log = daemon.wait()
    assert code == 0, log
    states = [
        key
        for _, fields in listener.received
        for key in ("READY", "RELOADING", "STOPPING")
        if key in fields
    ]
    assert states == ["READY", "RELOADING", "READY", "STOPPING"]


async def test_the_status_line_follows_the_runs(
    short_tmp: Path, processes: list[Process], listener: NotifyListener, workspace: Path
) -> None:
    sock = short_tmp / "run" / "d.sock"
    start(processes, [*DAEMON, "--socket", str(sock)], notified_env(short_tmp))
    assert (await anyio.to_thread.run_sync(listener.next_state))["READY"] == "1"
    run = await call(sock, "runs.create", workspace=str(workspace))
    await call(sock, "steps.create", runId=run["id"], name="plan", start=True)
    with anyio.fail_after(10):
        while True:
            fields = await anyio.to_thread.run_sync(listener.next)
            if "STATUS" in fields and "1 runs in 1 workspaces, 1 active" in fields["STATUS"]:
                break


# -- reloading --------------------------------------------------------------------------------


async def reloaded(client: RpcClient, since: str) -> dict[str, Any]:
    """``daemon.info`` once a reload after ``since`` (a ``configLoadedAt``) has completed."""
    with anyio.fail_after(10):
        while True:
            info: dict[str, Any] = await client.call("daemon.info")
            if info["configLoadedAt"] > since:
                return info
            await client.notification("status.changed")  # a reload ends with one


async def next_document(client: RpcClient, condition: Any) -> dict[str, Any]:
    """The first ``status.changed`` document that satisfies ``condition``."""
    with anyio.fail_after(10):
        while True:
            doc: dict[str, Any] = (await client.notification("status.changed"))["status"]
            if condition(doc):
                return doc


async def test_sighup_reloads_for_a_subscribed_client_and_refuses_a_bad_config(
    short_tmp: Path, processes: list[Process], workspace: Path
) -> None:
    sock = short_tmp / "run" / "d.sock"
    config = short_tmp / "config.toml"
    config.write_text('env = "DEV"\n')
    daemon = start(
        processes, [*DAEMON, "--socket", str(sock), "--config", str(config)], daemon_env(short_tmp)
    )
    await until_answering(sock, daemon.proc)
    async with await RpcClient.connect(sock) as client:
        snapshot = await client.call("status.subscribe")
        loaded_at = (await client.call("daemon.info"))["configLoadedAt"]
        assert snapshot["status"]["env"] == "DEV"
        assert snapshot["status"]["llm"]["total"] == 0

        config.write_text(
            'env = "PROD"\n'
            f"workspaces = [{json.dumps(str(workspace))}]\n"
            "[limits]\nmax_message_bytes = 8192\n"  # needs a restart: kept as it runs
            '[[llm.backends]]\nname = "local"\nkind = "ollama"\nurl = "http://127.0.0.1:9"\n'
        )
        daemon.signal(signal.SIGHUP)
        # A reload takes a few steps: subscribers may see one change or several.
        doc = await next_document(client, lambda d: d["env"] == "PROD" and d["llm"]["total"])
        assert doc["llm"]["backends"][0]["name"] == "local"
        assert doc["db"]["env"] == "PROD"
        info = await reloaded(client, loaded_at)
        assert await client.call("workspaces.list") == [
            {"path": str(workspace), "runs": 0, "source": "config"}
        ]
        assert info["reloadError"] is None
        assert info["maxMessageBytes"] == 16 * 1024 * 1024

        config.write_text('env = "STAGING"\n')  # invalid: refused, the running one stays
        daemon.signal(signal.SIGHUP)
        doc = await next_document(client, lambda d: d["warnings"])
        assert doc["env"] == "PROD" and doc["llm"]["total"] == 1
        assert doc["warnings"][0].startswith("configuration not reloaded: invalid configuration")
        info = await client.call("daemon.info")
        assert "env" in info["reloadError"]
        assert [w["path"] for w in await client.call("workspaces.list")] == [str(workspace)]

        config.write_text('env = "DEV"\n')  # valid again: the warning goes, the rest follows
        daemon.signal(signal.SIGHUP)
        doc = await next_document(client, lambda d: d["env"] == "DEV" and not d["llm"]["total"])
        assert doc["warnings"] == []
        await reloaded(client, info["configLoadedAt"])
        assert await client.call("workspaces.list") == []
        assert (await client.call("daemon.info"))["reloadError"] is None
        assert await client.call("daemon.ping") == "pong"  # the same connection throughout

    code, log = daemon.stop()
    assert code == 0, log
    assert "configuration not reloaded, the running one stays: invalid configuration" in log
    assert "applied at the next start: limits" in log


# -- the socket file --------------------------------------------------------------------------


async def test_a_deleted_socket_file_is_renewed_and_old_connections_go_on(
    short_tmp: Path, processes: list[Process]
) -> None:
    sock = short_tmp / "run" / "d.sock"
    daemon = start(processes, [*DAEMON, "--socket", str(sock)], daemon_env(short_tmp))
    await until_answering(sock, daemon.proc)
    async with await RpcClient.connect(sock) as old:
        await old.call("status.subscribe")
        sock.unlink()
        await reconnect_within(sock, RENEW_BOUND)
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600

        shutil.rmtree(sock.parent)  # a /tmp cleaner taking the whole folder
        await reconnect_within(sock, RENEW_BOUND)
        assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700
        assert await old.call("daemon.ping") == "pong"

    code, log = daemon.stop()
    assert code == 0, log
    assert "was deleted: serving on a new one" in log
    assert not sock.exists()  # the renewed file was the daemon's own: removed at exit


async def test_systemds_deleted_socket_file_is_renewed_and_the_new_one_removed_at_exit(
    short_tmp: Path, processes: list[Process]
) -> None:
    activator, sock = await start_activated(short_tmp, processes)
    assert (await call(sock, "daemon.info"))["startMode"] == "socket-activation"
    sock.unlink()
    await reconnect_within(sock, RENEW_BOUND)
    code, log = activator.stop()
    assert code == 0, log
    assert "systemctl --user restart simpleaided.socket restores socket activation" in log
    assert not sock.exists()  # the renewed file was the daemon's own, unlike systemd's


async def test_only_one_daemon_serves_a_path_whose_files_were_deleted(
    short_tmp: Path, processes: list[Process]
) -> None:
    sock = short_tmp / "run" / "d.sock"
    env = daemon_env(short_tmp)
    first = start(processes, [*DAEMON, "--socket", str(sock)], env)
    await until_answering(sock, first.proc)
    shutil.rmtree(sock.parent)  # the socket and its lock file gone: a second daemon may start
    second = start(processes, [*DAEMON, "--socket", str(sock)], env)
    # Whichever wins the path, the other one goes: the second refuses to start if the first
    # renewed the socket in time, else the first stops when it finds the path taken.
    await eventually(  # processes we do not control: no other signal
        lambda: first.proc.poll() is not None or second.proc.poll() is not None,
        RENEW_BOUND + 10,
        interval=0.05,
    )
    survivor, loser = (first, second) if second.proc.poll() is not None else (second, first)
    code, log = loser.wait()
    if loser is second:
        assert code == 1 and "already" in log, log
    else:
        assert code == 0 and "another daemon now serves this socket" in log, log
    info = await call(sock, "daemon.info")
    assert info["pid"] == survivor.pid


# -- the protocols' edges, in-process ----------------------------------------------------------


def test_variables_meant_for_another_process_are_ignored_and_removed() -> None:
    environ = {"LISTEN_PID": "1", "LISTEN_FDS": "1", "LISTEN_FDNAMES": "rpc", "PATH": "/bin"}
    assert systemd.take_passed_sockets(environ) == []
    assert environ == {"PATH": "/bin"}  # the processes the daemon starts must not take them
    notify = {"NOTIFY_SOCKET": "/nowhere", "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}
    notifier = systemd.Notifier(notify)
    assert notifier.watchdog_seconds is None  # the watchdog is pid 1's, not ours
    assert notifier.enabled and not notifier.send("READY=1")  # nobody listens: dropped
    assert notify == {}
    notifier.close()


def test_malformed_activation_variables_are_refused() -> None:
    with pytest.raises(systemd.ActivationError, match="LISTEN_FDS='x'"):
        systemd.take_passed_sockets({"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "x"})
    # Numbers are ASCII digits: ``isdigit`` alone takes superscripts, which ``int`` refuses.
    with pytest.raises(systemd.ActivationError, match="LISTEN_FDS='²'"):
        systemd.take_passed_sockets({"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "²"})
    assert systemd.take_passed_sockets({"LISTEN_PID": "²", "LISTEN_FDS": "1"}) == []
    for usec, pid in [("²", None), ("1000000", "²")]:
        notify = {"NOTIFY_SOCKET": "/nowhere", "WATCHDOG_USEC": usec}
        if pid is not None:
            notify["WATCHDOG_PID"] = pid
        notifier = systemd.Notifier(notify)
        assert notifier.watchdog_seconds is None
        notifier.close()


def test_notifications_reach_an_abstract_socket() -> None:
    name = f"simpleaided-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as manager:
        manager.bind("\0" + name)
        manager.settimeout(5)
        notifier = systemd.Notifier({"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "2000000"})
        assert notifier.watchdog_seconds == 2.0
        assert notifier.ready("DEV: 0 runs")
        assert manager.recv(4096) == b"READY=1\nSTATUS=DEV: 0 runs"
        notifier.close()


async def test_daemon_status_and_stop_name_systemd_under_socket_activation(
    short_tmp: Path, processes: list[Process]
) -> None:
    activator, sock = await start_activated(short_tmp, processes)
    env = daemon_env(short_tmp)
    assert (await call(sock, "daemon.info"))["pid"] == activator.pid
    cli = [simpleaide_command(), "--socket", str(sock), "--no-spawn"]
    status = await anyio.run_process([*cli, "daemon", "status"], env=env)
    assert "started by:  systemd, on the first connection (socket activation)" in (
        status.stdout.decode()
    )
    # Under systemd, the next connection starts the daemon again: stop says how to end it.
    stopped = await anyio.run_process([*cli, "daemon", "stop"], env=env)
    out = stopped.stdout.decode()
    assert f"simpleaided stopped (pid {activator.pid})" in out
    assert "systemctl --user stop simpleaided.socket simpleaided.service" in out
    code, log = activator.wait()
    assert code == 0, log
