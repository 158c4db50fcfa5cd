"""Filesystem primitives that never follow a symlink and never leave a half-written file.

Every path inside the store is walked one component at a time with ``openat``-style calls
(``dir_fd=``, ``O_NOFOLLOW``), so a symlink planted anywhere below the workspace is refused
rather than followed. Folders are made 0700 and files 0600 whatever the umask, and every
folder the store opens must belong to the daemon's user and be writable by nobody else.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import stat
from collections.abc import Iterator

from simpleaided.domain.errors import InvalidInput, NotFound, UnsafePath

DIR_MODE = 0o700
FILE_MODE = 0o600
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
TMP_PREFIX = ".tmp-"
DELETING_PREFIX = ".deleting-"
# The exact names of the daemon's own temporary entries: a prefix and 16 lowercase hex digits,
# as ``temp_name`` makes them. Only these are ever cleaned up; a user's ``.tmp-notes`` is not.
TMP_RE = re.compile(r"\.tmp-[0-9a-f]{16}")
DELETING_RE = re.compile(r"\.deleting-[0-9a-f]{16}")
_TMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


_SIGNATURE_MASK = (1 << 60) - 1


def signature(st: os.stat_result) -> int:
    """A cheap fingerprint of a file version: its inode, modification time and size.

    An atomic replace gives a new inode, so a rewrite is told from the version already read
    by one ``stat``, without reading the file.
    """
    # ctime, unlike mtime, cannot be set back by a tool; with the inode and device it tells
    # versions apart even where mtimes are coarse.
    # Tuples of ints hash the same in every process (snapshots keep signatures); 60 bits
    # fit a 32-byte int, where a full hash takes 40 (kept for every run).
    version = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    return hash(version) & _SIGNATURE_MASK


# Why a folder cannot take the store, and what to do, by the errno of the failed call.
_WORKSPACE_PROBLEMS = {
    # mkdir in a folder that exists: a file system that makes its entries up (/proc).
    errno.ENOENT: (
        "its file system takes no new folders (as /proc and /sys, which the kernel makes up)",
        "choose a folder of your own, such as one in your home folder",
    ),
    errno.EPERM: (
        "its file system does not let a folder be made in it",
        "choose a folder of your own, such as one in your home folder",
    ),
    errno.EACCES: (
        "you may not write in it (permission denied)",
        "choose a folder of your own, or give yourself write permission (chmod u+rwx)",
    ),
    errno.EROFS: (
        "it is on a read-only file system",
        "choose a folder on a writable disk",
    ),
    errno.ENOSPC: ("its disk is full", "free some space, or choose a folder on another disk"),
    errno.EDQUOT: (
        "you are over your disk quota there",
        "free some space, or choose a folder on another disk",
    ),
}


def unusable_workspace(path: str, exc: OSError) -> InvalidInput:
    """The error for folder ``path``, which cannot hold a run store because creating or
    opening its ``.simpleaide/`` failed with ``exc``: what is wrong, and what to do."""
    known = _WORKSPACE_PROBLEMS.get(exc.errno or 0)
    if known is None:
        reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
        known = (reason, "choose another folder")
    problem, advice = known
    return InvalidInput(f"cannot use {path} as a workspace: {problem}; {advice}")


def check_owned(st: os.stat_result, where: str) -> None:
    """Refuse a folder or file owned by another user or writable by group or others."""
    if st.st_uid != os.getuid():
        raise UnsafePath(f"refusing {where}: owned by uid {st.st_uid}, not {os.getuid()}")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafePath(f"refusing {where}: writable by others (chmod go-w to fix)")


def open_dir(parent: int, name: str, where: str, *, create: bool = False) -> int:
    """Open folder ``name`` below the open folder ``parent``; make it 0700 if ``create``.

    Raises ``NotFound`` if it is missing (and not created), ``UnsafePath`` for a symlink,
    a non-folder, a foreign owner or group/other write permission.
    """
    created = False
    if create:
        try:
            os.mkdir(name, DIR_MODE, dir_fd=parent)
            created = True
        except FileExistsError:
            pass
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
    except FileNotFoundError:
        raise NotFound(f"{where} does not exist") from None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafePath(f"refusing {where}: it is a symlink or not a folder") from None
        raise
    try:
        if created:
            # mkdir honours the umask; set the mode on what we opened, not on a name.
            os.fchmod(fd, DIR_MODE)
        check_owned(os.fstat(fd), where)
    except BaseException:
        os.close(fd)
        raise
    return fd


def make_dir(parent: int, name: str, where: str) -> int:
    """Create folder ``name`` (0700) below ``parent``, which must not exist yet; open it."""
    os.mkdir(name, DIR_MODE, dir_fd=parent)
    fd = open_dir(parent, name, where)
    os.fchmod(fd, DIR_MODE)
    return fd


@contextlib.contextmanager
def opened(fd: int) -> Iterator[int]:
    """Close ``fd`` when the block ends."""
    try:
        yield fd
    finally:
        os.close(fd)


def read_file(parent: int, name: str, where: str, max_bytes: int) -> bytes:
    """Read regular file ``name`` below ``parent``, at most ``max_bytes`` bytes.

    Raises ``NotFound``, ``UnsafePath`` (symlink or not a regular file) or ``OSError``
    ``EFBIG`` when the file is larger than ``max_bytes``.
    """
    return read_file_signed(parent, name, where, max_bytes)[0]


def read_file_signed(parent: int, name: str, where: str, max_bytes: int) -> tuple[bytes, int]:
    """``read_file``, and the ``signature`` of the version read."""
    try:
        fd = os.open(name, _READ_FLAGS, dir_fd=parent)
    except FileNotFoundError:
        raise NotFound(f"{where} does not exist") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafePath(f"refusing {where}: it is a symlink") from None
        raise
    with opened(fd):
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafePath(f"refusing {where}: not a regular file")
        if st.st_size > max_bytes:
            raise OSError(errno.EFBIG, f"{where} is {st.st_size} bytes, over {max_bytes}")
        chunks = []
        remaining = max_bytes + 1
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        data = b"".join(chunks)
        if len(data) > max_bytes:
            raise OSError(errno.EFBIG, f"{where} grew over {max_bytes} bytes while read")
        return data, signature(st)


def atomic_write(parent: int, name: str, data: bytes) -> int:
    """Replace ``name`` below ``parent`` with ``data``, all or nothing, durably; returns the
    ``signature`` of the new version.

    A temporary file in the same folder is written, fsync'd, renamed over ``name``, and the
    folder fsync'd; a crash at any point leaves either the old file or the new one.
    """
    final: os.stat_result | None = None
    # Not derived from ``name``: a 255-byte name must still leave room for the temp name.
    tmp = temp_name(TMP_PREFIX)
    fd = os.open(tmp, _TMP_FLAGS, FILE_MODE, dir_fd=parent)
    try:
        try:
            os.fchmod(fd, FILE_MODE)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
            os.rename(tmp, name, src_dir_fd=parent, dst_dir_fd=parent)
            final = os.fstat(fd)  # after the rename, which changes the ctime
        finally:
            os.close(fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=parent)
        raise
    os.fsync(parent)
    assert final is not None
    return signature(final)


def open_regular(
    parent: int, name: str, where: str, *, write: bool = False, create: bool = True
) -> int:
    """Open regular file ``name`` below ``parent`` for reading (or reading and writing, made
    0600 if missing unless not ``create``), never following a symlink; raises ``NotFound`` or
    ``UnsafePath`` (also for writing to a file with other hard links)."""
    flags = (
        (os.O_RDWR | (os.O_CREAT if create else 0) | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        if write
        else _READ_FLAGS
    )
    try:
        fd = os.open(name, flags, FILE_MODE, dir_fd=parent)
    except FileNotFoundError:
        raise NotFound(f"{where} does not exist") from None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO):
            raise UnsafePath(f"refusing {where}: a symlink or not a regular file") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafePath(f"refusing {where}: not a regular file")
        if write:
            check_single_link(st, where)
            os.fchmod(fd, FILE_MODE)  # O_CREAT honours the umask
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_single_link(st: os.stat_result, where: str) -> None:
    """Refuse to write in place to a file with other hard links: the write would change
    a file elsewhere (one planted outside the store) too."""
    if st.st_nlink > 1:
        raise UnsafePath(
            f"refusing {where}: it has {st.st_nlink - 1} other hard link(s), "
            "which writing in place would change too"
        )


def create_exclusive(parent: int, name: str) -> int:
    """Create regular file ``name`` (0600) below ``parent`` for writing; it must not exist."""
    fd = os.open(name, _TMP_FLAGS, FILE_MODE, dir_fd=parent)
    try:
        os.fchmod(fd, FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_at(fd: int, data: bytes, offset: int) -> None:
    """Write all of ``data`` at ``offset`` of the open file ``fd``."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def read_at(fd: int, length: int, offset: int) -> bytes:
    """Up to ``length`` bytes at ``offset`` of the open file ``fd`` (fewer at its end)."""
    chunks = []
    while length > 0:
        chunk = os.pread(fd, min(length, 1 << 22), offset)
        if not chunk:
            break
        chunks.append(chunk)
        length -= len(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def temp_name(prefix: str) -> str:
    """A fresh hidden name ``<prefix><16 hex digits>`` for an entry being written or deleted."""
    return f"{prefix}{secrets.token_hex(8)}"


def remove_leftover(parent: int, name: str, before_ns: int) -> bool:
    """Remove entry ``name`` below ``parent`` (a file, or a folder and its contents) if it
    was last changed before ``before_ns`` (epoch ns): left by a daemon that stopped mid-write,
    never a write of this one in progress. Returns whether it was removed."""
    st = lstat_at(parent, name)
    if st is None or st.st_ctime_ns >= before_ns:
        return False
    if stat.S_ISDIR(st.st_mode):
        _rmtree(parent, name)
    else:
        os.unlink(name, dir_fd=parent)
    return True


def _rmtree(parent: int, name: str) -> None:
    """``rmtree`` of folder ``name`` below ``parent``; if it fails (a read-only folder inside,
    as a run's artifacts may hold), once more after giving the user rwx on every folder."""
    try:
        shutil.rmtree(name, dir_fd=parent)
    except OSError:
        with contextlib.suppress(OSError):
            _make_writable(parent, name)
        shutil.rmtree(name, dir_fd=parent)


def _make_writable(parent: int, name: str) -> None:
    """Give the user rwx on folder ``name`` below ``parent`` and on every folder in it, as
    far as it can be done (never following a link)."""
    st = lstat_at(parent, name)
    if st is None or not stat.S_ISDIR(st.st_mode):
        return
    if st.st_mode & 0o700 != 0o700:
        _chmod_folder(parent, name, stat.S_IMODE(st.st_mode) | 0o700)
    with opened(os.open(name, _DIR_FLAGS, dir_fd=parent)) as fd:
        for entry in list_dir(fd):
            if entry.is_dir(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    _make_writable(fd, entry.name)


def _chmod_folder(parent: int, name: str, mode: int) -> None:
    """Set the mode of folder ``name`` below ``parent`` through a descriptor, so that a link
    swapped in since it was looked at is never followed."""
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
    except PermissionError:
        # No read permission: a path-only descriptor (still no link followed), whose
        # /proc/self/fd entry is what chmod can change (fchmod refuses such a descriptor).
        fd = os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        with opened(fd):
            os.chmod(f"/proc/self/fd/{fd}", mode)
        return
    with opened(fd):
        os.fchmod(fd, mode)


def lstat_at(parent: int, name: str) -> os.stat_result | None:
    """``lstat`` of ``name`` below ``parent``, or ``None`` if it does not exist."""
    try:
        return os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return None


def list_dir(fd: int) -> list[os.DirEntry[str]]:
    """The entries of the open folder ``fd`` (its position is rewound first)."""
    os.lseek(fd, 0, os.SEEK_SET)
    with os.scandir(fd) as entries:
        return list(entries)


def remove_tree(parent: int, name: str) -> None:
    """Delete folder ``name`` below ``parent`` and everything in it, never following links.

    Anything that is not a real folder (a planted symlink) is unlinked itself. A folder is
    first renamed to a hidden name, so a half-finished delete is never seen as a valid (but
    incomplete) record.
    """
    st = lstat_at(parent, name)
    if st is None:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=parent)
        os.fsync(parent)
        return
    doomed = temp_name(DELETING_PREFIX)
    os.rename(name, doomed, src_dir_fd=parent, dst_dir_fd=parent)
    os.fsync(parent)
    _rmtree(parent, doomed)
