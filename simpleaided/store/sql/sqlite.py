"""The SQLite driver: opening a database file safely (never through a symlink, in the store's
folder by the store's rules, read-only in PROD) and the session on it.

Read-only in PROD in depth: the file is opened ``mode=ro``, the connection is ``query_only``,
an allow-list authorizer lets through reads only (rows, a few read pragmas without a value,
functions without side effects) and no database may be attached. In DEV an authorizer refuses
ATTACH, ``VACUUM INTO`` (which attaches its target) and extension loading unless the
configuration allows them (``unsafe_sql``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import stat
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

from simpleaided.domain import sqlguard
from simpleaided.domain.errors import (
    BackendUnavailable,
    Conflict,
    InvalidInput,
    NotFound,
    ReadOnly,
    UnsafePath,
)
from simpleaided.domain.vocabulary import DbKind
from simpleaided.store import safefs
from simpleaided.store.sql import (
    READ_ONLY_SESSION,
    TRANSACTION_CONTROL,
    Lost,
    OverBudget,
    QueryResult,
    Session,
)

_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO planted as the database file must not block the thread.
_FILE_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


# Refused in PROD, and in DEV unless ``unsafe_sql``.
_UNSAFE_FUNCTIONS = sqlguard.SQLITE_UNSAFE_FUNCTIONS
_READ_ACTIONS = frozenset({sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE})
_SCHEMA_TABLES = ("sqlite_master", "sqlite_temp_master")
_UNSAFE_HINT = "set unsafe_sql = true in the [db] table to allow it in DEV"


class _Authorizer:
    """The connection's authorizer (SQLite asks it about every action of a statement being
    prepared): in PROD an allow-list of reads, in DEV a refusal of what reaches outside the
    database file. It keeps the first action it refused, so the error can name it."""

    def __init__(self, *, read_only: bool) -> None:
        self._read_only = read_only
        self.refused: tuple[int, str | None, str | None] | None = None
        self.ours = False  # the session's own statement (its busy timeout), never a client's

    def __call__(
        self, action: int, arg1: str | None, arg2: str | None, db: str | None, source: str | None
    ) -> int:
        if self.ours:
            return sqlite3.SQLITE_OK
        allowed = (
            self._allows(action, arg1, arg2) if self._read_only else self._dev(action, arg1, arg2)
        )
        if allowed:
            return sqlite3.SQLITE_OK
        if self.refused is None:
            self.refused = (action, arg1, arg2)
        return sqlite3.SQLITE_DENY

    @staticmethod
    def _allows(action: int, arg1: str | None, arg2: str | None) -> bool:
        if action in _READ_ACTIONS:
            return True
        if action == sqlite3.SQLITE_FUNCTION:
            return (arg2 or "").lower() not in _UNSAFE_FUNCTIONS
        if action == sqlite3.SQLITE_PRAGMA:
            name = (arg1 or "").lower()
            if name in sqlguard.READ_PRAGMAS_WITH_ARGUMENT:
                return True  # the argument names what to describe: table_info(t)
            return name in sqlguard.READ_PRAGMAS and arg2 is None
        # Every table-valued function (pragma_table_list, json_each…) is announced as an
        # UPDATE of sqlite_master's columns while it is connected. No statement can really
        # change sqlite_master without PRAGMA writable_schema, which is refused above; and
        # the connection is query_only on a read-only file besides.
        return action == sqlite3.SQLITE_UPDATE and arg1 == "sqlite_master"

    @staticmethod
    def _dev(action: int, arg1: str | None, arg2: str | None) -> bool:
        if action == sqlite3.SQLITE_ATTACH:
            return arg1 == ""  # VACUUM attaches a temporary database of no file
        if action == sqlite3.SQLITE_DETACH:
            return False
        if action == sqlite3.SQLITE_FUNCTION:
            return (arg2 or "").lower() not in _UNSAFE_FUNCTIONS
        return True

    def words(self, sql: str) -> str:
        """The refused action in the user's words (``VACUUM INTO``, ``INSERT into t``)."""
        said = sqlguard.statement_words("sqlite", sql) or "this statement"
        if self.refused is None:
            return said
        action, arg1, arg2 = self.refused
        if action == sqlite3.SQLITE_ATTACH:
            if said == "VACUUM":
                return "VACUUM INTO" if arg1 else "VACUUM"
            return "ATTACH"
        if action == sqlite3.SQLITE_FUNCTION:
            return f"the function {arg2}()"
        if action == sqlite3.SQLITE_PRAGMA:
            name = (arg1 or "").lower()
            if arg2 is not None and name in sqlguard.READ_PRAGMAS:
                return f"setting PRAGMA {name}"
            return f"PRAGMA {name}"
        if arg1 not in _SCHEMA_TABLES:  # a schema change says what it is in its first words
            if action == sqlite3.SQLITE_INSERT:
                return f"INSERT into {arg1}"
            if action == sqlite3.SQLITE_UPDATE:
                return f"UPDATE of {arg1}"
            if action == sqlite3.SQLITE_DELETE:
                return f"DELETE from {arg1}"
        if action in (sqlite3.SQLITE_TRANSACTION, sqlite3.SQLITE_SAVEPOINT):
            return f"{said} (transaction control)"
        return said


class SqliteSession(Session):
    """A sqlite3 connection in autocommit mode, on the file it was opened on."""

    kind: DbKind = "sqlite"

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: str,
        identity: tuple[int, int],
        read_only: bool,
        authorizer: _Authorizer | None = None,
        busy_ms: int = 5000,
    ) -> None:
        self._conn = conn
        self._path = path
        self._identity = identity
        self._read_only_mode = read_only
        self._authorizer = authorizer
        self._busy_ms = busy_ms
        self._busy_now = busy_ms  # the busy timeout in force: 0 after a budget, until needed
        self._spent: Callable[[], bool] | None = None  # within a budget: whether it is spent

    def risks(self) -> list[str]:
        return []

    def check(self) -> tuple[float, bool]:
        # SQLite keeps using a file deleted or replaced behind it: reopen what the path names.
        try:
            st = os.stat(self._path, follow_symlinks=False)
        except OSError:
            raise Lost("database file was removed") from None
        if (st.st_dev, st.st_ino) != self._identity:
            raise Lost("database file was replaced")
        self._wait_when_busy()
        try:
            start = time.perf_counter()
            self._conn.execute("SELECT 1").fetchall()
            latency = (time.perf_counter() - start) * 1000
            row = self._conn.execute("PRAGMA query_only").fetchone()
        except sqlite3.Error as exc:
            raise Lost(f"database error: {exc}") from None
        return latency, self._read_only_mode or (row is not None and row[0] == 1)

    def execute(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        self._forget_refusal()
        self._wait_when_busy()
        try:
            cur = self._conn.execute(sql, params)
            try:
                return cur.fetchall()
            finally:
                cur.close()
        except sqlite3.Error as exc:
            if self._spent is not None and (self._spent() or _waits(exc)):
                # Python 3.11's sqlite3 prepares a statement stopped half-way again at every
                # later run on its connection (3.12 does not): a page then takes twice as long.
                stopped = self._spent() and _PREPARES_AGAIN_AFTER_A_STOP
                raise OverBudget(f"over the budget: {exc}", slows_session=stopped) from None
            raise self._failure(exc, sql) from None
        except OverflowError:
            raise InvalidInput(_TOO_BIG) from None

    def query(self, sql: str, params: tuple[Any, ...], limit: int) -> QueryResult:
        self._forget_refusal()
        self._wait_when_busy()
        try:
            # Python's module refuses a second statement ("one statement at a time").
            cur = self._conn.execute(sql, params)
            try:
                if cur.description is None:
                    rows, count = [], cur.rowcount
                else:
                    rows = cur.fetchmany(limit + 1)
                    count = len(rows)
                columns = [(d[0], "") for d in cur.description or ()]
            finally:
                cur.close()
        except sqlite3.Error as exc:
            raise self._failure(exc, sql) from None
        except OverflowError:
            raise InvalidInput(_TOO_BIG) from None
        if self._conn.in_transaction:  # BEGIN, or SAVEPOINT: never left open on a pooled session
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")
            raise InvalidInput(TRANSACTION_CONTROL)
        return QueryResult(columns, rows[:limit], min(count, limit), len(rows) > limit)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        if self._read_only_mode:
            raise ReadOnly(READ_ONLY_SESSION)
        # IMMEDIATE: the write lock is taken now, so the reads that check expectations and
        # the writes that follow see the same database.
        self.execute("BEGIN IMMEDIATE", ())
        try:
            yield
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")
            raise
        try:
            self.execute("COMMIT", ())
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")
            raise

    @contextlib.contextmanager
    def budget(self, seconds: float) -> Iterator[Callable[[], bool]]:
        # SQLite runs in this process: a statement is stopped from within, by the progress
        # handler, which looks at the clock every _BUDGET_STEPS virtual-machine steps (one
        # step can be long: reading a multi-megabyte value). A locked database fails at once
        # instead of waiting (the busy timeout would block the caller's loop).
        deadline = time.perf_counter() + seconds
        spent = False

        def check() -> bool:
            nonlocal spent
            spent = spent or time.perf_counter() > deadline
            return spent

        self._busy_timeout(0)  # left at 0 for the next budget; set back before other work
        self._spent = lambda: spent
        self._conn.set_progress_handler(check, _BUDGET_STEPS)
        try:
            yield lambda: spent
        finally:
            self._conn.set_progress_handler(None, 0)
            self._spent = None

    def _wait_when_busy(self) -> None:
        """Outside a budget, a locked database is waited for (``busy_ms``)."""
        if self._spent is None and self._busy_now != self._busy_ms:
            self._busy_timeout(self._busy_ms)

    def _busy_timeout(self, ms: int) -> None:
        if self._busy_now != ms:
            self._busy_now = -1  # unknown, should setting it fail half-way
            self._own_pragma(f"busy_timeout = {ms}")
            self._busy_now = ms

    def _own_pragma(self, setting: str) -> None:
        """A setting of the session's own (never a client's text), past the authorizer:
        PROD's refuses every PRAGMA that sets something."""
        if self._authorizer is not None:
            self._authorizer.ours = True
        try:
            self._conn.execute(f"PRAGMA {setting}").close()
        except sqlite3.Error as exc:
            raise Lost(f"database error: {exc}") from None
        finally:
            if self._authorizer is not None:
                self._authorizer.ours = False

    def cancel(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._conn.interrupt()

    def _forget_refusal(self) -> None:
        if self._authorizer is not None:
            self._authorizer.refused = None

    def _failure(self, exc: sqlite3.Error, sql: str) -> ReadOnly | InvalidInput | Conflict:
        # A refusal fails the statement as it is prepared, with "not authorized" (SQLITE_AUTH,
        # or SQLITE_ERROR for a function): what failed it is the action the authorizer kept.
        if self._authorizer is not None and self._authorizer.refused is not None:
            what = self._authorizer.words(sql)
            if self._read_only_mode:
                return ReadOnly(f"read-only in PROD: {what} is not allowed")
            return InvalidInput(f"{what} is not allowed ({_UNSAFE_HINT})")
        return _failure(exc)

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


_PREPARES_AGAIN_AFTER_A_STOP = sys.version_info < (3, 12)
_BUDGET_STEPS = 1000  # virtual-machine steps between two looks at a budget's clock (~20 µs)
_WAITS = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _waits(exc: sqlite3.Error) -> bool:
    """Whether the statement failed on a lock it would otherwise have waited for."""
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF in _WAITS


_TOO_BIG = "a whole number beyond SQLite's 64-bit integers (±9223372036854775807)"


def _failure(exc: sqlite3.Error) -> ReadOnly | InvalidInput | Conflict:
    # Errors raised by Python's module rather than by SQLite carry no code.
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    if code == sqlite3.SQLITE_READONLY:
        return ReadOnly(str(exc))
    if code == sqlite3.SQLITE_CONSTRAINT:  # "UNIQUE constraint failed: t.email"
        return Conflict(f"database error: {exc}")
    return InvalidInput(f"database error: {exc}")


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


def open_sqlite(
    path: str, *, read_only: bool, in_store: bool, timeout: float, unsafe_sql: bool = False
) -> SqliteSession:
    """Open the SQLite file ``path``, never through a symlink; in DEV read-write and created
    (0600) if absent, in PROD read-only (``mode=ro``, ``query_only``, the allow-list
    authorizer, nothing attached) and never created. ``unsafe_sql`` (DEV only) lets ATTACH,
    ``VACUUM INTO`` and extension loading through."""
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
    authorizer: _Authorizer | None = None
    try:
        # Foreign keys as declared: SQLite leaves them unchecked unless asked, per connection.
        conn.execute("PRAGMA foreign_keys=ON")
        if read_only:
            conn.execute("PRAGMA query_only=ON")
            conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        if read_only or not unsafe_sql:
            authorizer = _Authorizer(read_only=read_only)
            conn.set_authorizer(authorizer)
        elif hasattr(conn, "enable_load_extension"):  # absent from some Python builds
            conn.enable_load_extension(True)
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
    return SqliteSession(conn, path, identity, read_only, authorizer, round(timeout * 1000))
