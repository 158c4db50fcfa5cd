"""The Unix socket: a safe place for it, one daemon per socket, and the peer check.

The socket's folder is 0700 and owned by the user, the socket 0600. A lock file next to the
socket (``flock``) makes "one daemon per socket" race-free; a socket file left by a dead daemon
is replaced, a live one makes the new daemon refuse to start.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import stat
import struct
from dataclasses import dataclass
from pathlib import Path

_PEERCRED = struct.Struct("3i")


class SocketInUse(Exception):
    """Another daemon already serves this socket (or the path cannot be used)."""


@dataclass(frozen=True)
class PeerCredentials:
    """Who is on the other end of a Unix socket connection."""

    pid: int
    uid: int
    gid: int


def peer_credentials(sock: socket.socket) -> PeerCredentials:
    """The peer's pid, uid and gid from ``SO_PEERCRED``."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    return PeerCredentials(*_PEERCRED.unpack(raw))


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` 0700 if missing; refuse it if it is not ours or others may write it."""
    try:
        path.mkdir(mode=0o700, parents=True)
        os.chmod(path, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise SocketInUse(f"{path} is not a folder (or is a symlink)")
    if st.st_uid != os.getuid():
        raise SocketInUse(f"{path} belongs to uid {st.st_uid}, not to you")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise SocketInUse(
            f"{path} is writable by others; put the socket in a private folder "
            f"(the default is $XDG_RUNTIME_DIR/simpleaide/daemon.sock)"
        )


def _answers(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


class SocketClaim:
    """The bound, listening socket and the lock that makes it ours; ``release`` cleans up."""

    def __init__(self, path: Path, sock: socket.socket, lock_fd: int | None) -> None:
        self.path = path
        self.sock = sock
        self._lock_fd = lock_fd
        self._inode = os.stat(path).st_ino if lock_fd is not None else None

    @classmethod
    def bind(cls, path: Path, *, backlog: int = 128) -> SocketClaim:
        """Claim ``path``: lock, replace a stale socket file, bind 0600, listen."""
        ensure_private_dir(path.parent)
        lock_path = path.with_name(path.name + ".lock")
        lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise SocketInUse(
                    f"another simpleaided is already serving {path} (stop it first: "
                    f"simpleaide daemon stop)"
                ) from None
            with contextlib.suppress(FileNotFoundError):
                st = os.lstat(path)
                if not stat.S_ISSOCK(st.st_mode):
                    raise SocketInUse(f"{path} exists and is not a socket; remove it")
                if _answers(path):
                    raise SocketInUse(f"a daemon is already answering on {path}")
                os.unlink(path)  # left behind by a daemon that died
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.bind(str(path))
                os.chmod(path, 0o600)
                sock.listen(backlog)
            except OSError as exc:
                sock.close()
                if exc.errno == errno.EADDRINUSE:
                    raise SocketInUse(f"{path} is in use") from None
                raise
        except BaseException:
            os.close(lock_fd)
            raise
        return cls(path, sock, lock_fd)

    @classmethod
    def adopt(cls, sock: socket.socket, path: Path) -> SocketClaim:
        """Wrap a socket handed over by a service manager (it owns the path)."""
        return cls(path, sock, None)

    def release(self) -> None:
        """Remove the socket file if it is still ours, and drop the lock."""
        if self._lock_fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            if os.lstat(self.path).st_ino == self._inode:
                os.unlink(self.path)
        os.close(self._lock_fd)
        self._lock_fd = None
