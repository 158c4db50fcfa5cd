"""Starting a program on a new PTY, and signalling every process group of its session.

The daemon is threaded, so no Python code may run between ``fork`` and ``exec`` (a lock held
by another thread at the fork stays held in the child forever). ``subprocess`` forks and
execs in C; what Python cannot ask of it — making the PTY the child's *controlling* terminal,
which job control needs (Ctrl-C, Ctrl-Z, ``fg``) — util-linux's ``setsid --ctty`` does
in the child, before it execs the program (it never forks: the child leads no group). When
the daemon raised its own descriptor limit (``set_child_fd_limit``), util-linux's ``prlimit``
gives the program the limit it would have had, so ``select``-based programs keep working.
"""

from __future__ import annotations

import errno
import fcntl
import os
import pwd
import resource
import shutil
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Mapping
from dataclasses import dataclass

from simpleaided.domain.errors import InvalidInput

# Variables of the daemon's own service that mean nothing (or something wrong) to a shell.
_SERVICE_VARIABLES = (
    "NOTIFY_SOCKET",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "JOURNAL_STREAM",
    "INVOCATION_ID",
    "MANAGERPID",
)
# Linux's input flag for UTF-8 line editing (``termios`` names it from Python 3.13 on).
_IUTF8 = getattr(termios, "IUTF8", 0o40000)
_child_fd_limit: int | None = None  # the soft RLIMIT_NOFILE programs get, if not ours


def set_child_fd_limit(soft: int | None) -> None:
    """Give programs started from now on the soft descriptor limit ``soft`` (the one the
    daemon had before it raised its own; ``None``: the daemon's)."""
    global _child_fd_limit
    _child_fd_limit = soft


@dataclass
class Spawned:
    """A program started on a PTY: its process and the PTY's master side (non-blocking)."""

    process: subprocess.Popen[bytes]
    master: int


def login_shell() -> str:
    """The user's login shell (passwd, then ``$SHELL``, then ``/bin/sh``)."""
    try:
        shell = pwd.getpwuid(os.getuid()).pw_shell
    except KeyError:
        shell = ""
    if shell and os.access(shell, os.X_OK):
        return shell
    return os.environ.get("SHELL") or "/bin/sh"


def home_folder() -> str:
    """The user's home folder."""
    return os.path.expanduser("~")


def environment(terminal_id: str, cwd: str, extra: Mapping[str, str] | None) -> dict[str, str]:
    """The program's environment: the daemon's, less its service's variables, with the
    terminal's and then the caller's."""
    env = {k: v for k, v in os.environ.items() if k not in _SERVICE_VARIABLES}
    env.setdefault("HOME", home_folder())
    env.setdefault("SHELL", login_shell())
    env.update({"TERM": "xterm-256color", "COLORTERM": "truecolor", "PWD": cwd})
    env.update(extra or {})
    env["SIMPLEAIDE_TERMINAL"] = terminal_id  # last: it names this terminal, whatever was asked
    return env


def check_folder(cwd: str) -> None:
    """``InvalidInput`` unless ``cwd`` is a folder the user can enter."""
    if not os.path.exists(cwd):
        raise InvalidInput(f"cwd: no such folder: {cwd}")
    if not os.path.isdir(cwd):
        raise InvalidInput(f"cwd: not a folder: {cwd}")
    if not os.access(cwd, os.X_OK):
        raise InvalidInput(f"cwd: permission denied: {cwd}")


def find_program(argv0: str, cwd: str, env: Mapping[str, str]) -> str:
    """The executable ``argv0`` names (looked up in ``PATH`` unless it holds a slash);
    ``InvalidInput`` if there is none, so that nothing is spawned to fail."""
    if "/" in argv0:
        path = argv0 if os.path.isabs(argv0) else os.path.join(cwd, argv0)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
        raise InvalidInput(f"argv: cannot run {argv0!r}: not an executable file")
    found = shutil.which(argv0, path=env.get("PATH", os.defpath))
    if found is None:
        raise InvalidInput(f"argv: command not found: {argv0}")
    return found


def _helpers() -> tuple[str, str | None]:
    setsid = shutil.which("setsid", path="/usr/bin:/bin:/usr/sbin:/sbin")
    if setsid is None:
        raise InvalidInput("terminals need util-linux's setsid, which is not installed")
    prlimit = shutil.which("prlimit", path="/usr/bin:/bin:/usr/sbin:/sbin")
    return setsid, prlimit


def set_size(master: int, cols: int, rows: int) -> None:
    """Tell the PTY its size (the kernel sends SIGWINCH to its foreground group if it
    changed)."""
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def spawn(argv: list[str], cwd: str, env: Mapping[str, str], cols: int, rows: int) -> Spawned:
    """Start ``argv`` in ``cwd`` on a new PTY of ``cols`` × ``rows``, leading a new session
    with the PTY as its controlling terminal."""
    setsid, prlimit = _helpers()
    command = [setsid, "--ctty", "--", *argv]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if _child_fd_limit is not None and _child_fd_limit != soft:
        if prlimit is None:
            raise InvalidInput("terminals need util-linux's prlimit, which is not installed")
        command = [prlimit, f"--nofile={_child_fd_limit}:{hard}", *command]
    master, slave = os.openpty()
    try:
        attrs = termios.tcgetattr(slave)
        attrs[0] |= _IUTF8  # erase whole characters, not bytes
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        set_size(master, cols, rows)
        os.set_blocking(master, False)
        process = subprocess.Popen(
            command,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=cwd,
            env=dict(env),
            close_fds=True,
        )
    except OSError as exc:
        os.close(master)
        if exc.errno == errno.E2BIG:
            raise InvalidInput(
                "argv and env together are larger than the system allows for a program"
            ) from None
        raise
    except BaseException:
        os.close(master)
        raise
    finally:
        os.close(slave)
    return Spawned(process, master)


def session_groups(session: int) -> set[int]:
    """The process groups of the processes still in ``session`` (zombies aside; a shell's
    jobs each have their own); empty once every process of it is gone."""
    return set(_sessions().get(session, ()))


_SCAN_REUSE_SECONDS = 0.01  # scans this close together (one stop, many terminals) share one
_scanned: tuple[float, dict[int, set[int]]] = (-1.0, {})


def _sessions() -> dict[int, set[int]]:
    """Every session's process groups, from one walk of ``/proc`` (reused for 10 ms)."""
    global _scanned
    now = time.monotonic()
    if now - _scanned[0] < _SCAN_REUSE_SECONDS:
        return _scanned[1]
    sessions: dict[int, set[int]] = {}
    try:
        pids = [name for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        pids = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue  # exited meanwhile
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 3 and fields[0] != b"Z":
            sessions.setdefault(int(fields[3]), set()).add(int(fields[2]))
    _scanned = (now, sessions)  # as old as the walk's start
    return sessions


def signal_session(session: int, *signums: int) -> bool:
    """Send each of ``signums`` to every process group still in ``session``; whether any
    was there."""
    groups = session_groups(session)
    for group in groups:
        for signum in signums:
            try:
                os.killpg(group, signum)
            except (ProcessLookupError, PermissionError):
                pass  # gone meanwhile, or a group that became another user's (setuid)
    return bool(groups)


SIGNALS = {
    name: getattr(signal, f"SIG{name}")
    for name in (
        "HUP",
        "INT",
        "QUIT",
        "TERM",
        "KILL",
        "USR1",
        "USR2",
        "CONT",
        "STOP",
        "TSTP",
        "WINCH",
    )
}
