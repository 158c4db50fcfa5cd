"""The daemon as a process and its socket: one per socket, stale files, peers, signals."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from simpleaided.app.daemon import Daemon
from simpleaided.transports.unix_socket import SocketClaim, SocketInUse
from tests.support.daemon import DAEMON, daemon_env, running_daemon, wait_until_answering
from tests.support.rpc import RpcClient


@pytest.fixture
def spawned(short_tmp: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """``simpleaided`` started as a process, as a user would."""
    sock = short_tmp / "run" / "d.sock"
    proc = subprocess.Popen(
        [*DAEMON, "--socket", str(sock)],
        env=daemon_env(short_tmp),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until_answering(sock, proc)
        yield proc, sock
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe:
                pipe.close()


def test_sigterm_stops_cleanly_and_removes_the_socket(
    spawned: tuple[subprocess.Popen[bytes], Path],
) -> None:
    proc, sock = spawned
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    assert not sock.exists()
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    assert "stopped" in stderr and "Traceback" not in stderr


def test_sigint_stops_cleanly(spawned: tuple[subprocess.Popen[bytes], Path]) -> None:
    proc, sock = spawned
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 0
    assert not sock.exists()


def test_writes_in_flight_at_sigterm_are_complete(
    spawned: tuple[subprocess.Popen[bytes], Path], short_tmp: Path
) -> None:
    proc, sock = spawned
    ws = short_tmp / "ws"
    ws.mkdir()
    conn = socket.socket(socket.AF_UNIX)
    conn.connect(str(sock))
    request = {"jsonrpc": "2.0", "method": "runs.create", "params": {"workspace": str(ws)}}
    conn.sendall(b"".join(json.dumps({**request, "id": n}).encode() + b"\n" for n in range(200)))
    first = conn.recv(65536)  # the daemon is busy writing runs now
    assert b'"result"' in first
    proc.send_signal(signal.SIGTERM)
    replies = first
    while chunk := conn.recv(65536):
        replies += chunk
    conn.close()
    assert proc.wait(timeout=15) == 0
    answered = {json.loads(line)["result"]["id"] for line in replies.splitlines()}
    on_disk = {p.name: p for p in (ws / ".simpleaide" / "runs").iterdir()}
    # Every answered create is on disk, and everything on disk is whole.
    assert answered <= set(on_disk)
    for run_dir in on_disk.values():
        assert json.loads((run_dir / "metadata.json").read_text())["status"] == "pending"
        assert [p.name for p in run_dir.iterdir()] == ["metadata.json"]


def test_a_second_daemon_on_the_same_socket_is_refused(
    spawned: tuple[subprocess.Popen[bytes], Path], short_tmp: Path
) -> None:
    proc, sock = spawned
    second = subprocess.run(
        [*DAEMON, "--socket", str(sock)], env=daemon_env(short_tmp), capture_output=True, timeout=20
    )
    assert second.returncode == 1
    message = second.stderr.decode().strip()
    assert message.startswith("simpleaided: another simpleaided is already serving")
    assert "\n" not in message
    # The first one is unharmed.
    assert proc.poll() is None and sock.exists()


async def test_a_stale_socket_file_is_replaced(isolated_env: Path, socket_path: Path) -> None:
    socket_path.parent.mkdir(mode=0o700)
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(socket_path))
    dead.close()  # the file stays, nobody listens: what a killed daemon leaves
    async with (
        running_daemon(socket_path, isolated_env / "s"),
        await RpcClient.connect(socket_path) as c,
    ):
        assert await c.call("daemon.ping") == "pong"
    assert not socket_path.exists()


def test_a_live_socket_without_a_lock_is_not_stolen(short_tmp: Path) -> None:
    path = short_tmp / "run" / "x.sock"
    path.parent.mkdir(mode=0o700)
    live = socket.socket(socket.AF_UNIX)
    live.bind(str(path))
    live.listen()
    try:
        with pytest.raises(SocketInUse, match="already answering"):
            SocketClaim.bind(path)
        assert path.exists()
    finally:
        live.close()


@pytest.mark.parametrize("kind", ["file", "folder", "symlink"])
def test_a_path_that_is_not_a_socket_is_refused_and_nothing_is_created(
    short_tmp: Path, kind: str
) -> None:
    path = short_tmp / "run" / "x.sock"
    path.parent.mkdir(mode=0o700)
    if kind == "file":
        path.write_text("precious")
    elif kind == "folder":
        path.mkdir()
    else:
        live = socket.socket(socket.AF_UNIX)
        live.bind(str(short_tmp / "real.sock"))
        live.close()
        path.symlink_to(short_tmp / "real.sock")
    before = sorted(path.parent.iterdir())
    with pytest.raises(SocketInUse, match="not a socket"):
        SocketClaim.bind(path)
    assert sorted(path.parent.iterdir()) == before  # no lock file beside it either
    if kind == "file":
        assert path.read_text() == "precious"


async def test_a_workspace_is_served_by_one_daemon_at_a_time(
    isolated_env: Path, short_tmp: Path, workspace: Path
) -> None:
    """Two daemons on different sockets never serve (and write the runs of) one workspace:
    a lock in its ``.simpleaide/`` is held while one serves it, and the other says whose."""
    first_socket, second_socket = short_tmp / "a" / "d.sock", short_tmp / "b" / "d.sock"
    owner = f"(pid {os.getpid()}, socket {first_socket})"
    async with (
        running_daemon(first_socket, isolated_env / "s1"),
        await RpcClient.connect(first_socket) as first,
    ):
        await first.call("workspaces.add", path=str(workspace))
        lock = workspace / ".simpleaide" / "daemon.lock"
        assert stat.S_IMODE(lock.lstat().st_mode) == 0o600
        run = await first.call("runs.create", workspace=str(workspace))

        settings: dict[str, Any] = {"workspaces": [str(workspace)]}
        async with (
            running_daemon(second_socket, isolated_env / "s2", **settings),
            await RpcClient.connect(second_socket) as second,
        ):
            (warning,) = (await second.call("daemon.info"))["warnings"]
            assert warning == (
                f"workspace {workspace} is not served: another simpleaided serves it {owner}"
            )
            assert await second.call("workspaces.list") == []
            for method, params in (
                ("workspaces.add", {"path": str(workspace)}),
                ("runs.create", {"workspace": str(workspace)}),
            ):
                error = await second.error(method, **params)
                assert error.code == -32011, method
                assert error.message == (
                    f"workspace {workspace} is served by another simpleaided {owner}"
                ), method
                assert error.data == {"pid": os.getpid(), "socket": str(first_socket)}
            assert (await second.call("runs.list"))["runs"] == []
            # The first serves on, unharmed.
            assert (await first.call("runs.get", runId=run["id"]))["status"] == "pending"

            # Removed from the first, it is the second's to take.
            await first.call("workspaces.remove", path=str(workspace))
            await second.call("workspaces.add", path=str(workspace))
            assert [r["id"] for r in (await second.call("runs.list"))["runs"]] == [run["id"]]
            error = await first.error("workspaces.add", path=str(workspace))
            assert f"(pid {os.getpid()}, socket {second_socket})" in error.message
    # A stopped daemon holds nothing.
    async with (
        running_daemon(first_socket, isolated_env / "s1"),
        await RpcClient.connect(first_socket) as first,
    ):
        await first.call("workspaces.add", path=str(workspace))
        assert not (await first.call("daemon.info"))["warnings"]


def test_a_second_daemon_process_names_the_owner_of_a_workspace(
    spawned: tuple[subprocess.Popen[bytes], Path], short_tmp: Path
) -> None:
    proc, sock = spawned
    workspace = short_tmp / "shared"
    workspace.mkdir()
    with anyio.from_thread.start_blocking_portal() as portal:
        portal.call(_add_workspace, sock, workspace)
    second = subprocess.Popen(
        [*DAEMON, "--socket", str(short_tmp / "two" / "d.sock"), "--workspace", str(workspace)],
        env=daemon_env(short_tmp / "second"),
        stderr=subprocess.PIPE,
    )
    try:
        wait_until_answering(short_tmp / "two" / "d.sock", second)
    finally:
        second.terminate()
        _, err = second.communicate(timeout=20)
    assert (
        f"workspace {workspace} is not served: another simpleaided serves it "
        f"(pid {proc.pid}, socket {sock})"
    ) in err.decode()


async def _add_workspace(sock: Path, workspace: Path) -> None:
    async with await RpcClient.connect(sock) as c:
        await c.call("workspaces.add", path=str(workspace))


def test_a_socket_folder_writable_by_others_is_refused(short_tmp: Path) -> None:
    folder = short_tmp / "open"
    folder.mkdir()
    folder.chmod(0o777)
    with pytest.raises(SocketInUse, match="writable by others"):
        SocketClaim.bind(folder / "x.sock")


NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.mark.skipif(
    os.getuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv"
)
async def test_a_client_with_another_uid_is_refused(daemon: Daemon, socket_path: Path) -> None:
    probe = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "try:\n"
        f"    s.connect({str(socket_path)!r})\n"
        "except OSError as e:\n"
        "    print('CONNECT', e.errno); sys.exit(0)\n"
        's.sendall(b\'{"jsonrpc":"2.0","method":"status.get","id":1}\\n\')\n'
        "data = b''\n"
        "while chunk := s.recv(4096):\n"
        "    data += chunk\n"
        "print('REPLY', data.decode())\n"
    )
    python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable

    def as_nobody() -> str:
        result = subprocess.run([*NOBODY, python, "-c", probe], capture_output=True, timeout=20)
        assert result.returncode == 0, result.stderr.decode()
        return result.stdout.decode()

    # With the default modes the folder (0700) keeps other users out entirely...
    assert (await anyio.to_thread.run_sync(as_nobody)).startswith("CONNECT 13")
    # ...and if the modes are loosened, the peer uid check still refuses them.
    for folder in (socket_path.parent, socket_path.parent.parent):
        folder.chmod(0o711)
    socket_path.chmod(0o666)
    out = await anyio.to_thread.run_sync(as_nobody)
    assert out.startswith("REPLY")
    reply = json.loads(out.removeprefix("REPLY "))
    assert reply["error"]["code"] == -32600 and "uid 65534" in reply["error"]["message"]
    assert "result" not in reply
    # The owner is still served.
    async with await RpcClient.connect(socket_path) as c:
        assert await c.call("daemon.ping") == "pong"


def test_help_explains_and_version() -> None:
    result = subprocess.run([*DAEMON, "--help"], capture_output=True, text=True, timeout=20)
    assert result.returncode == 0
    for word in ("--socket", "--config", "--env", "SIMPLEAIDE_SOCKET", "foreground"):
        assert word in result.stdout
    version = subprocess.run([*DAEMON, "--version"], capture_output=True, text=True, timeout=20)
    assert version.stdout.startswith("simpleaided ")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("env = 'STAGING'", "env"),
        ("[limits]\nmax_message_bytes = 1", "limits.max_message_bytes"),
        ("nonsense = 1", "nonsense"),
        ("not toml at all [", "cannot read config file"),
    ],
)
def test_a_bad_config_is_one_clear_line(short_tmp: Path, content: str, expected: str) -> None:
    config = short_tmp / "config.toml"
    config.write_text(content)
    result = subprocess.run(
        [*DAEMON, "--config", str(config), "--socket", str(short_tmp / "s.sock")],
        env=daemon_env(short_tmp),
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("simpleaided: ") and expected in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert not (short_tmp / "s.sock").exists()


def test_a_missing_explicit_config_is_an_error(short_tmp: Path) -> None:
    result = subprocess.run(
        [*DAEMON, "--config", str(short_tmp / "nope.toml")],
        env=daemon_env(short_tmp),
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 2 and "does not exist" in result.stderr


def test_a_journal_stream_variable_in_other_digits_is_not_the_journal(short_tmp: Path) -> None:
    # ``isdigit`` takes superscripts, which ``int`` refuses: the daemon must still start.
    sock = short_tmp / "run" / "d.sock"
    proc = subprocess.Popen(
        [*DAEMON, "--socket", str(sock)],
        env={**daemon_env(short_tmp), "JOURNAL_STREAM": "²:²"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until_answering(sock, proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0 and b"Traceback" not in err, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_sighup_does_not_kill_the_daemon(spawned: tuple[subprocess.Popen[bytes], Path]) -> None:
    proc, sock = spawned
    proc.send_signal(signal.SIGHUP)
    wait_until_answering(sock, proc)  # still serving (it fails if the process exited)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    assert "SIGHUP" in stderr and not sock.exists()


def test_relative_workspace_flags_are_taken_from_the_current_folder(short_tmp: Path) -> None:
    (short_tmp / "proj").mkdir()
    sock = short_tmp / "run" / "d.sock"
    proc = subprocess.Popen(
        [*DAEMON, "--socket", str(sock), "--workspace", "proj"],
        cwd=short_tmp,
        env=daemon_env(short_tmp),
        stderr=subprocess.PIPE,
    )
    try:
        wait_until_answering(sock, proc)

        async def served() -> Any:
            async with await RpcClient.connect(sock) as c:
                return await c.call("workspaces.list")

        with anyio.from_thread.start_blocking_portal() as portal:
            listed = portal.call(served)
        assert [w["path"] for w in listed] == [str(short_tmp / "proj")]
        assert [w["source"] for w in listed] == ["config"]
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
        if proc.stderr:
            proc.stderr.close()
