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
import time
from dataclasses import dataclass
from pathlib import Path

_PEERCRED = struct.Struct("3i")
# Connections waiting to be accepted. A client that connects with a timeout (the CLI, a
# status line) fails at once with EAGAIN when the queue is full, so a burst of clients must
# fit: as deep as the kernel allows (net.core.somaxconn, 4096), as systemd's Backlog= is.
BACKLOG = socket.SOMAXCONN
# The longest path a Unix socket can have: ``sun_path`` holds 108 bytes, its NUL included.
MAX_PATH_BYTES = 107


class SocketInUse(Exception):
    """The socket's path cannot be used (another daemon serves it, a file is in the way, or
    it is too long for a socket)."""


class SocketTaken(SocketInUse):
    """Another daemon holds the socket's lock, or something answers on its path."""


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
    except OSError as exc:  # /proc, a read-only or someone else's folder...
        reason = (exc.strerror or str(exc)).lower()
        raise SocketInUse(
            f"cannot create the socket's folder {path} ({reason}); choose a socket path in a "
            "folder of your own (--socket)"
        ) from None
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


def check_path_length(path: Path) -> None:
    """``SocketInUse`` if ``path`` is longer than a Unix socket's path can be (``bind``
    itself says only "AF_UNIX path too long")."""
    length = len(os.fsencode(path))
    if length > MAX_PATH_BYTES:
        raise SocketInUse(
            f"socket path too long ({length} bytes; the limit is {MAX_PATH_BYTES}): {path}; "
            "use a shorter --socket (or SIMPLEAIDE_SOCKET, or daemon.socket in the config "
            "file), or a shorter XDG_RUNTIME_DIR"
        )


def answers(path: Path) -> bool:
    """Whether something accepts connections on the socket at ``path``."""
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
    """The listening socket and the lock that makes it ours; ``release`` cleans up.

    A claim made by ``bind`` owns its socket file; one made by ``adopt`` (a socket passed by
    systemd) does not, and never removes it. Either holds the lock, which keeps a second
    daemon off the same path, and can ``renew`` the socket if its file is deleted.
    """

    def __init__(
        self, path: Path, sock: socket.socket, lock_fd: int | None, *, owned: bool
    ) -> None:
        self.path = path
        self.sock = sock
        self.owned = owned
        self._lock_fd = lock_fd
        self._inode = _inode(path)

    @classmethod
    def bind(cls, path: Path) -> SocketClaim:
        """Claim ``path``: lock, replace a stale socket file, bind 0600, listen.

        Something other than a socket at ``path``, or a path too long for a socket, is
        refused before anything is created."""
        check_path_length(path)
        ensure_private_dir(path.parent)
        _refuse_non_socket(path)
        lock_fd = _lock(path)
        try:
            sock = _bind_fresh(path)
        except BaseException:
            os.close(lock_fd)
            raise
        return cls(path, sock, lock_fd, owned=True)

    @classmethod
    def adopt(cls, sock: socket.socket, path: Path, *, wait_seconds: float = 0) -> SocketClaim:
        """Wrap a socket handed over by a service manager, which owns its file.

        The lock is taken all the same, so that a daemon started by hand on that path while
        this one runs refuses to start. A daemon still holding it (one stopping, as systemd
        takes the path over) is waited for up to ``wait_seconds``: the connections wait in
        the socket's queue meanwhile.
        """
        ensure_private_dir(path.parent)
        return cls(path, sock, _lock(path, wait_seconds=wait_seconds), owned=False)

    def intact(self) -> bool:
        """Whether the socket file is still the one served (not deleted, not replaced)."""
        return self._inode is None or _inode(self.path) == self._inode

    def renew(self) -> SocketClaim:
        """A new socket at the same path, after its file was deleted (a ``/tmp`` cleaner);
        the lock is taken again if its file went too. This claim keeps its socket, which
        the caller closes once the new one serves.

        Raises ``SocketInUse`` when the path cannot be had: another daemon took it, or a file
        that is not a socket is in the way.
        """
        ensure_private_dir(self.path.parent)
        _refuse_non_socket(self.path)
        lock_fd = self._lock_fd
        renewed_lock = lock_fd is None or _inode(_lock_path(self.path)) != os.fstat(lock_fd).st_ino
        if renewed_lock:
            lock_fd = _lock(self.path)
        assert lock_fd is not None
        try:
            sock = _bind_fresh(self.path)
        except BaseException:
            if renewed_lock:
                os.close(lock_fd)
            raise
        if renewed_lock and self._lock_fd is not None:
            os.close(self._lock_fd)
        self._lock_fd = None  # handed over to the new claim
        return SocketClaim(self.path, sock, lock_fd, owned=True)

    def release(self) -> None:
        """Remove the socket file if this claim made it and it is still there; drop the lock."""
        if self.owned and self._inode is not None:
            with contextlib.suppress(FileNotFoundError):
                if os.lstat(self.path).st_ino == self._inode:
                    os.unlink(self.path)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def _inode(path: Path) -> int | None:
    try:
        return os.lstat(path).st_ino
    except FileNotFoundError:
        return None


def _lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def _refuse_non_socket(path: Path) -> None:
    """``SocketInUse`` if ``path`` holds anything but a socket (a file, a folder, a symlink):
    checked before the lock file is made beside it, so a mistyped ``--socket /etc/passwd``
    creates nothing. ``_bind_fresh`` checks again, as the path may change meanwhile."""
    with contextlib.suppress(FileNotFoundError):
        mode = os.lstat(path).st_mode
        if not stat.S_ISSOCK(mode):
            raise SocketInUse(_not_a_socket(path, mode))


def _not_a_socket(path: Path, mode: int) -> str:
    """What to say of ``path``, which holds something other than a socket: never to remove
    it (a folder or file the daemon did not make may be anything of the user's)."""
    if stat.S_ISDIR(mode):
        what = "a folder, not a socket"
    elif stat.S_ISLNK(mode):
        what = "a symbolic link, not a socket"
    elif stat.S_ISREG(mode):
        what = "a file, not a socket"
    else:
        what = "not a socket"
    return f"choose another --socket path ({path} is {what})"


def _lock(path: Path, *, wait_seconds: float = 0) -> int:
    """Take the lock next to ``path``, waiting up to ``wait_seconds`` for another daemon to
    let it go; ``SocketTaken`` if it does not."""
    lock_fd = os.open(
        _lock_path(path), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
    )
    deadline = time.monotonic() + wait_seconds
    try:
        while True:
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return lock_fd
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise SocketTaken(
                        f"another simpleaided is already serving {path} (stop it first: "
                        f"simpleaide daemon stop)"
                    ) from None
            time.sleep(0.05)  # called before the event loop runs, or in a worker thread
    except BaseException:
        os.close(lock_fd)
        raise


def _bind_fresh(path: Path) -> socket.socket:
    """Bind and listen on ``path`` (0600), replacing a socket file nobody answers on."""
    with contextlib.suppress(FileNotFoundError):
        st = os.lstat(path)
        if not stat.S_ISSOCK(st.st_mode):
            raise SocketInUse(_not_a_socket(path, st.st_mode))
        if answers(path):
            raise SocketTaken(f"a daemon is already answering on {path}")
        os.unlink(path)  # left behind by a daemon that died
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        os.chmod(path, 0o600)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise SocketInUse(f"{path} is in use") from None
        raise
    return sock
