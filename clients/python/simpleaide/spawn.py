"""Start simpleaided in the background and wait until it answers.

The daemon runs in its own session (a terminal closing does not stop it), reads nothing, and
appends its output to ``$XDG_STATE_HOME/simpleaide/daemon.log``. Readiness is ``daemon.ping``
answering, polled with a short backoff; if the child exits first, the error quotes the lines it
wrote to the log.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time

from simpleaide import paths
from simpleaide.client import Client, SpawnError

START_TIMEOUT = 10.0
_LOG_TAIL_LINES = 12


def _open_log(log_path: str) -> int:
    folder = os.path.dirname(log_path)
    try:
        os.makedirs(folder, mode=0o700)
        os.chmod(folder, 0o700)  # whatever the umask
    except FileExistsError:
        pass
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
    return os.open(log_path, flags, 0o600)


def _log_since(log_path: str, offset: int) -> tuple[str, ...]:
    """The last lines the log gained after ``offset``, to quote in an error message."""
    try:
        with open(log_path, "rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ()
    return tuple(line for line in text.splitlines() if line.strip())[-_LOG_TAIL_LINES:]


def _socket_identity(path: str) -> tuple[int, int] | None:
    """The device and inode of the socket file at ``path`` (not followed if a symlink), or
    ``None`` if there is none: anything else at the path (a file, a folder) is no socket."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISSOCK(st.st_mode) else None


def _accepts(path: str) -> bool:
    """Whether something listens on the socket at ``path``."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(0.5)
    try:
        probe.connect(path)
    except (TimeoutError, BlockingIOError):
        # Its backlog is full (a Unix connect with a timeout fails at once with EAGAIN
        # then, rather than waiting): a busy daemon, but a live one.
        return True
    except OSError:
        return False
    finally:
        probe.close()
    return True


def _may_hold_a_winner(path: str, seen_before: tuple[int, int] | None) -> bool:
    """Whether the socket at ``path`` may be another daemon's that won a start-up race: one
    that accepts connections, or one made since we spawned (between its bind and its listen
    it refuses). A socket file that was there before and refuses is what a daemon killed with
    SIGKILL left behind: nobody's."""
    identity = _socket_identity(path)
    if identity is None:
        return False
    return _accepts(path) or identity != seen_before


# A service manager's variables, if this command runs inside a service: meant for that
# service's own process, never for a daemon it starts.
_SERVICE_VARIABLES = (
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_PID",
    "LISTEN_FDS",
    "LISTEN_FDNAMES",
    "INVOCATION_ID",
    "JOURNAL_STREAM",
)


def _daemon_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in _SERVICE_VARIABLES}


def start_daemon(
    socket_path: str,
    *,
    log_path: str | None = None,
    timeout: float = START_TIMEOUT,
    started_by: str = "cli",
) -> int:
    """Start simpleaided on ``socket_path`` and return its pid once it answers.

    ``started_by`` is what ``daemon.info`` will say started it (its ``startMode``): ``cli``
    (on demand: a command found no daemon), ``daemon-start`` or ``daemon-restart``.
    Raises ``SpawnError`` if it exits early (quoting its log) or nothing answers in time. If
    another daemon won a race for the same socket, that one's pid is returned.
    """
    log_path = log_path or paths.daemon_log_path()
    seen_before = _socket_identity(socket_path)
    try:
        log_fd = _open_log(log_path)
    except OSError as exc:
        raise SpawnError(f"cannot open the daemon log {log_path}: {exc.strerror}") from None
    try:
        offset = os.lseek(log_fd, 0, os.SEEK_END)
        command = [
            sys.executable,
            "-m",
            "simpleaided",
            "--socket",
            socket_path,
            "--started-by",
            started_by,
        ]
        try:
            child = subprocess.Popen(
                command,
                env=_daemon_environment(),
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=log_fd,
                cwd="/",  # hold no folder busy
                start_new_session=True,
            )
        except OSError as exc:
            raise SpawnError(f"cannot start simpleaided: {exc}") from None
    finally:
        os.close(log_fd)

    deadline = time.monotonic() + timeout
    delay = 0.005
    with Client(socket_path, timeout=1.0) as client:
        while True:
            if client.ping():
                pid = client.peer_pid()
                if pid is not None and pid != child.pid and child.poll() is None:
                    # Another daemon won a start-up race; ours, still booting, would take
                    # over the socket whenever that one stops. It is ours to end.
                    child.terminate()
                return pid if pid is not None else child.pid
            status = child.poll()
            # A child that lost a start-up race to another daemon exits at once; while the
            # winner's socket exists (it may still be loading), wait for the winner instead.
            # A stale socket file, or anything else at the path (a file, a folder), is no
            # winner: the child's exit and its reason are the answer.
            if status is not None and not _may_hold_a_winner(socket_path, seen_before):
                raise SpawnError(
                    f"simpleaided exited with status {status} before answering on "
                    f"{socket_path}; from {log_path}:",
                    _log_since(log_path, offset),
                )
            if time.monotonic() >= deadline:
                summary = f"simpleaided did not answer on {socket_path} within {timeout:g} s; "
                if status is None:
                    raise SpawnError(summary + f"it may still be starting, see {log_path}")
                raise SpawnError(summary + f"from {log_path}:", _log_since(log_path, offset))
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
