"""The SQLite driver: opening a database file safely (never through a symlink, in the store's
folder by the store's rules, read-only in PROD) and the session on it."""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import stat
import time
from typing import Any
from urllib.parse import quote

from simpleaided.domain.errors import (
    BackendUnavailable,
    InvalidInput,
    NotFound,
    ReadOnly,
    UnsafePath,
)
from simpleaided.domain.vocabulary import DbKind
from simpleaided.store import safefs
from simpleaided.store.sql import Lost, Session

_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO planted as the database file must not block the thread.
_FILE_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


class SqliteSession(Session):
    """A sqlite3 connection in autocommit mode, on the file it was opened on."""

    kind: DbKind = "sqlite"

    def __init__(
        self, conn: sqlite3.Connection, path: str, identity: tuple[int, int], read_only: bool
    ) -> None:
        self._conn = conn
        self._path = path
        self._identity = identity
        self._read_only_mode = read_only

    def check(self) -> tuple[float, bool]:
        # SQLite keeps using a file deleted or replaced behind it: reopen what the path names.
        try:
            st = os.stat(self._path, follow_symlinks=False)
        except OSError:
            raise Lost("database file was removed") from None
        if (st.st_dev, st.st_ino) != self._identity:
            raise Lost("database file was replaced")
        try:
            start = time.perf_counter()
            self._conn.execute("SELECT 1").fetchall()
            latency = (time.perf_counter() - start) * 1000
            row = self._conn.execute("PRAGMA query_only").fetchone()
        except sqlite3.Error as exc:
            raise Lost(f"database error: {exc}") from None
        return latency, self._read_only_mode or (row is not None and row[0] == 1)

    def execute(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        try:
            cur = self._conn.execute(sql, params)
            try:
                return cur.fetchall()
            finally:
                cur.close()
        except sqlite3.Error as exc:
            # Errors raised by Python's module rather than by SQLite carry no code.
            if getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_READONLY:
                raise ReadOnly(str(exc)) from None
            raise InvalidInput(f"database error: {exc}") from None

    def quote_identifier(self, name: str) -> str:
        if "\0" in name:
            raise InvalidInput("an SQL name cannot contain a NUL character")
        return '"' + name.replace('"', '""') + '"'

    def abort(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._conn.interrupt()

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()


def _open_folder(folder: str, *, in_store: bool, create: bool) -> int:
    if not in_store:
        return os.open(folder, _FOLDER_FLAGS)  # a configured path: its folders are the user's
    # <workspace>/.simpleaide/: the store's rules (0700, no symlink, owned by us).
    workspace, store = os.path.split(folder)
    with safefs.opened(os.open(workspace, _FOLDER_FLAGS)) as parent:
        return safefs.open_dir(parent, store, folder, create=create)


def _open_file(folder_fd: int, name: str, path: str, *, create: bool) -> int:
    flags = (os.O_RDWR if create else os.O_RDONLY) | _FILE_FLAGS
    try:
        if create:
            try:
                fd = os.open(
                    name, flags | os.O_CREAT | os.O_EXCL, safefs.FILE_MODE, dir_fd=folder_fd
                )
            except FileExistsError:
                pass
            else:
                try:
                    os.fchmod(fd, safefs.FILE_MODE)  # O_CREAT honours the umask
                except BaseException:
                    os.close(fd)
                    raise
                return fd
        return os.open(name, flags, dir_fd=folder_fd)
    except FileNotFoundError:
        raise BackendUnavailable(f"database file does not exist: {path}") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafePath(f"refusing {path}: it is a symlink") from None
        raise BackendUnavailable(f"cannot open {path}: {exc.strerror}") from None


def open_sqlite(path: str, *, read_only: bool, in_store: bool, timeout: float) -> SqliteSession:
    """Open the SQLite file ``path``, never through a symlink; in DEV read-write and created
    (0600) if absent, in PROD read-only (``mode=ro`` and ``query_only``) and never created."""
    folder, name = os.path.split(path)
    try:
        folder_fd = _open_folder(folder, in_store=in_store, create=not read_only)
    except (FileNotFoundError, NotFound):
        if read_only:
            raise BackendUnavailable(f"database file does not exist: {path}") from None
        raise BackendUnavailable(f"database folder does not exist: {folder}") from None
    except OSError as exc:
        raise BackendUnavailable(f"cannot open {folder}: {exc.strerror}") from None
    with (
        safefs.opened(folder_fd),
        safefs.opened(_open_file(folder_fd, name, path, create=not read_only)) as fd,
    ):
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafePath(f"refusing {path}: not a regular file")
        identity = (st.st_dev, st.st_ino)
    # sqlite3 opens by name (it keeps journals beside the file), so the name is checked again
    # once it is open: still the file vetted above, not something swapped in meanwhile.
    uri = f"file:{quote(path)}?mode={'ro' if read_only else 'rw'}"
    try:
        conn = sqlite3.connect(
            uri, uri=True, timeout=timeout, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as exc:
        raise BackendUnavailable(f"cannot open {path}: {exc}") from None
    try:
        if read_only:
            conn.execute("PRAGMA query_only=ON")
        conn.execute("PRAGMA schema_version").fetchall()  # reads the header: is it a database?
        after = os.stat(path, follow_symlinks=False)
        if (after.st_dev, after.st_ino) != identity:
            raise UnsafePath(f"refusing {path}: it changed while being opened")
    except sqlite3.Error as exc:
        conn.close()
        raise BackendUnavailable(f"cannot open {path}: {exc}") from None
    except OSError as exc:
        conn.close()
        raise BackendUnavailable(f"cannot open {path}: {exc.strerror}") from None
    except BaseException:
        conn.close()
        raise
    return SqliteSession(conn, path, identity, read_only)
