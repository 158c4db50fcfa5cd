"""The database probe: the one connection the daemon keeps to the profile's database, the
``db`` section of the status document, and statements run on that connection.

The drivers block (``sqlite3``, psycopg's sync API), so every call runs on a worker thread
under the configured timeout. A call that overruns is abandoned and its session woken (the
PostgreSQL socket shut down, the SQLite statement interrupted), so the thread ends soon and
closes what it holds; until it has, no other call starts and the status says so. Threads
rather than psycopg's async API: SQLite needs them anyway, and one mechanism is easier to
trust than two.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import math
import os
import re
import socket
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import anyio
from anyio.abc import TaskStatus

from simpleaided.domain import clock
from simpleaided.domain.database import (
    VAULT_PREFIX,
    DbKind,
    DbTarget,
    default_sqlite_path,
    parse_target,
    redact,
)
from simpleaided.domain.errors import (
    BackendUnavailable,
    InvalidInput,
    NotFound,
    ReadOnly,
    SimpleaideError,
    UnsafePath,
    VaultLocked,
)
from simpleaided.domain.status import EnvProfile
from simpleaided.store import safefs

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

T = TypeVar("T")

SecretResolver = Callable[[str], str]
"""``resolve("vault:NAME")`` → the secret; raises ``VaultLocked`` or ``NotFound``."""

NOT_CONFIGURED = "not configured"
NOT_INSTALLED = "PostgreSQL support is not installed: pip install 'simpleaided[postgres]'"

_READ_ONLY_OPTION = "-c default_transaction_read_only=on"
_SQLSTATE_READ_ONLY = "25006"
_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO planted as the database file must not block the thread.
_FILE_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


class _Lost(BackendUnavailable):
    """The session's connection is gone; the caller drops it (and may connect anew)."""


class _Abandoned(Exception):
    """Raised on a worker thread whose caller stopped waiting; nobody reads it."""


def _lower_first(text: str) -> str:
    # "Connection refused" → "connection refused", but "FATAL" or "SSL" stay as they are.
    return text[:1].lower() + text[1:] if text[1:2].islower() else text


_SERVER_FAILED = re.compile(
    r'connection to server (?:at "([^"]*)"(?: \([^)]*\))?, port ([0-9]+)|on socket "([^"]*)")'
    r" failed: (.*)"
)
_LIBPQ_PREFIXES = (
    "connection failed:",
    "consuming input failed:",
    "sending query failed:",
    "sending query and params failed:",
    "FATAL:",
    "ERROR:",
)


def pg_error_line(message: str) -> str:
    """One short line from a libpq or psycopg message: the server's own words, or the network
    error and where (``connection refused (127.0.0.1:5999)``)."""
    match = _SERVER_FAILED.search(message)
    if match:
        host, port, sock, detail = match.groups()
        detail = detail.strip()
        if detail.startswith("FATAL:"):
            return _lower_first(detail.removeprefix("FATAL:").strip())
        where = f"{host}:{port}" if host is not None else sock
        return f"{_lower_first(detail)} ({where})"
    line = message.strip().split("\n", 1)[0].strip()
    stripped = True
    while stripped:
        stripped = False
        for prefix in _LIBPQ_PREFIXES:
            if line.startswith(prefix):
                line = line.removeprefix(prefix).strip()
                stripped = True
    return _lower_first(line) or "unknown database error"


def _url_secrets(url: str) -> set[str]:
    """The passwords a connection URL holds, as written and decoded: its userinfo password
    and any ``password=`` query value (libpq takes both; its errors may quote either)."""
    found: set[str] = set()
    with contextlib.suppress(ValueError):
        parts = urlsplit(url)
        if parts.password:
            found |= {parts.password, unquote(parts.password)}
        for name, value in parse_qsl(parts.query, keep_blank_values=False):
            if name == "password":
                found.add(value)
        found |= {m.group(1) for m in re.finditer(r"[?&]password=([^&#]*)", url) if m.group(1)}
    return {secret for secret in found if secret}


def _first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0].strip()


class _Session:
    """One open database connection; used by one worker thread at a time."""

    kind: DbKind

    def check(self) -> tuple[float, bool]:
        """``SELECT 1`` (its latency in ms) and whether the session is read-only."""
        raise NotImplementedError

    def execute(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """Run one statement; its rows (none for a statement that returns none)."""
        raise NotImplementedError

    def abort(self) -> None:
        """Wake a thread stuck in this session (called from another thread)."""
        raise NotImplementedError

    def close(self) -> None:
        """Close the connection; never raises."""
        raise NotImplementedError


class _PgSession(_Session):
    """A psycopg connection in autocommit mode, with a handle to wake it."""

    kind: DbKind = "postgres"

    def __init__(self, conn: psycopg.Connection[Any], *, read_only: bool) -> None:
        self._conn = conn
        self._read_only = read_only
        # Our own descriptor of the connection's socket: shutting it down wakes a thread
        # waiting on a silent server, and unlike libpq's descriptor (closed when libpq drops
        # the connection) its number cannot be reused for another file under us.
        fd = os.dup(conn.pgconn.socket)
        try:
            self._wake = socket.socket(fileno=fd)
        except BaseException:
            os.close(fd)
            raise

    def check(self) -> tuple[float, bool]:
        import psycopg

        try:
            start = time.perf_counter()
            self._conn.execute("SELECT 1").fetchall()
            latency = (time.perf_counter() - start) * 1000
            row = self._conn.execute("SHOW transaction_read_only").fetchone()
        except psycopg.Error as exc:
            # A session that fails ``SELECT 1`` is not trusted: dropped, and connected anew.
            raise _Lost(pg_error_line(str(exc))) from None
        return latency, row is not None and row[0] == "on"

    def execute(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        import psycopg

        try:
            with self._conn.cursor() as cur:
                if not self._read_only:
                    # No parameters: sent as it is (a "%" in it is no placeholder).
                    cur.execute(sql, params or None)
                    return list(cur.fetchall()) if cur.description is not None else []
                # PROD. The session default alone could be turned off by the statement itself
                # ("SET default_transaction_read_only = off", "BEGIN READ WRITE; ..."). So:
                # exactly one statement (prepared: the extended protocol refuses several), in
                # a read-only transaction that is then rolled back, taking with it any setting
                # the statement changed (SET is transactional in PostgreSQL).
                cur.execute("BEGIN READ ONLY")
                try:
                    cur.execute(sql, params or None, prepare=True)
                    return list(cur.fetchall()) if cur.description is not None else []
                finally:
                    with contextlib.suppress(psycopg.Error):
                        self._conn.execute("ROLLBACK")
        except psycopg.Error as exc:
            raise self._failure(exc) from None

    def _failure(self, exc: psycopg.Error) -> SimpleaideError:
        if self._conn.broken or self._conn.closed:
            return _Lost(pg_error_line(str(exc)))
        if exc.sqlstate == _SQLSTATE_READ_ONLY:
            return ReadOnly(_first_line(str(exc)))
        return InvalidInput(f"database error: {_first_line(str(exc))}")

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self._wake.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        try:
            with contextlib.suppress(Exception):
                self._conn.close()
        finally:
            self._wake.close()


class _SqliteSession(_Session):
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
            raise _Lost("database file was removed") from None
        if (st.st_dev, st.st_ino) != self._identity:
            raise _Lost("database file was replaced")
        try:
            start = time.perf_counter()
            self._conn.execute("SELECT 1").fetchall()
            latency = (time.perf_counter() - start) * 1000
            row = self._conn.execute("PRAGMA query_only").fetchone()
        except sqlite3.Error as exc:
            raise _Lost(f"database error: {exc}") from None
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

    def abort(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._conn.interrupt()

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()


def _open_postgres(
    location: str, password: str | None, *, read_only: bool, timeout: float
) -> _PgSession:
    """Connect to PostgreSQL; in PROD every transaction of the session is read-only."""
    try:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:
        raise BackendUnavailable(NOT_INSTALLED) from None
    try:
        options = conninfo_to_dict(location).get("options")
    except psycopg.Error as exc:
        raise BackendUnavailable(f"invalid PostgreSQL URL: {pg_error_line(str(exc))}") from None
    params: dict[str, Any] = {
        "autocommit": True,
        # psycopg enforces it (at least 2 s); abandoned connects end by it.
        "connect_timeout": max(2, math.ceil(timeout)),
        "fallback_application_name": "simpleaided",
    }
    if password is not None:
        params["password"] = password
    if read_only:
        params["options"] = f"{options} {_READ_ONLY_OPTION}" if options else _READ_ONLY_OPTION
    try:
        conn = psycopg.connect(location, **params)
    except psycopg.Error as exc:
        raise BackendUnavailable(pg_error_line(str(exc))) from None
    try:
        return _PgSession(conn, read_only=read_only)
    except BaseException:
        conn.close()
        raise


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


def _open_sqlite(path: str, *, read_only: bool, in_store: bool, timeout: float) -> _SqliteSession:
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
    return _SqliteSession(conn, path, identity, read_only)


class _Call:
    """Blocking work on a worker thread, and who owns the session it uses.

    While the work runs it owns the session; when it has ended the loop takes the session
    back, unless the loop gave up waiting first: then the thread closes it.
    """

    def __init__(self, session: _Session | None) -> None:
        # Held only for a few instructions, never across I/O: the loop takes it too.
        self._guard = threading.Lock()
        self._session = session
        self._abandoned = False
        self.done = threading.Event()

    @property
    def session(self) -> _Session | None:
        return self._session

    def adopt(self, session: _Session) -> None:
        """Thread: work on the new ``session`` (closed at once if the loop has given up)."""
        with self._guard:
            if not self._abandoned:
                self._session = session
                return
        session.close()
        raise _Abandoned

    def drop(self) -> None:
        """Thread: close the session, which broke."""
        with self._guard:
            session, self._session = self._session, None
        if session is not None:
            session.close()

    def finish(self) -> None:
        """Thread, when the work ends: close the session if the loop gave up on it."""
        with self._guard:
            self.done.set()
            if not self._abandoned:
                return
            session, self._session = self._session, None
        if session is not None:
            session.close()

    def abandon(self) -> bool:
        """Loop: stop waiting; if the work still runs, wake it and return true."""
        with self._guard:
            if self.done.is_set():
                return False
            self._abandoned = True
            if self._session is not None:
                self._session.abort()
            return True


def _finishing(work: Callable[[_Call], T], call: _Call) -> T:
    try:
        return work(call)
    finally:
        call.finish()


def _check(call: _Call) -> tuple[float, bool]:
    assert call.session is not None
    try:
        return call.session.check()
    except _Lost:
        call.drop()
        raise


def _connect_and_check(opener: Callable[[], _Session], call: _Call) -> tuple[DbKind, float, bool]:
    call.adopt(opener())
    latency, read_only = _check(call)
    assert call.session is not None
    return call.session.kind, latency, read_only


def _execute(sql: str, params: tuple[Any, ...], call: _Call) -> list[tuple[Any, ...]]:
    assert call.session is not None
    try:
        return call.session.execute(sql, params)
    except _Lost:
        call.drop()
        raise


@dataclass(frozen=True)
class DatabaseSettings:
    """What the database service connects to (the active profile's database) and how often
    and how long it waits; equal settings need no reconnection."""

    env: EnvProfile
    url: str | None  # None: SQLite in the default workspace's .simpleaide/
    password: str | None
    default_workspace: str | None
    probe_seconds: float
    timeout_seconds: float


class DatabaseService:
    """Keeps one connection to the profile's database, probes it, and runs statements on it."""

    def __init__(
        self,
        settings: DatabaseSettings,
        *,
        resolve_secret: SecretResolver,
        on_change: Callable[[], None],
    ) -> None:
        self._resolve_secret = resolve_secret
        self._on_change = on_change
        self._adopted: str | None = None  # the workspace adopted by a daemon not configured
        self._configure(settings)
        self._session: _Session | None = None
        self._stuck: _Call | None = None  # an abandoned call whose thread has not ended yet
        self._lock = anyio.Lock()  # one call on the connection at a time
        self._probing: anyio.Event | None = None
        self._wake = anyio.Event()
        self._closed = False
        self._key: tuple[bool, DbKind | None, bool, str | None] | None = None
        self._section: dict[str, Any] = {}
        error = self._config_error.message if self._config_error else None
        self._publish(False, settings.env == "PROD", None, error, checked=False)

    def _configure(self, settings: DatabaseSettings) -> None:
        """Take the settings: what to connect to, and how long to wait."""
        env, url, password = settings.env, settings.url, settings.password
        self.env: EnvProfile = env
        self._url = url
        self._password = password
        self._probe_seconds = settings.probe_seconds
        self._timeout = settings.timeout_seconds
        self._no_answer = f"no answer within {settings.timeout_seconds:g} s"
        self._secrets: set[str] = set()  # masked in every message (vault secrets once resolved)
        if password and not password.startswith(VAULT_PREFIX):
            self._secrets.add(password)
        self._target: DbTarget | None = None
        self._config_error: SimpleaideError | None = None
        self._in_store = False  # the default file, under the workspace's .simpleaide/
        if url is None:
            path = default_sqlite_path(settings.default_workspace or self._adopted, env)
            if path is None:
                self._config_error = BackendUnavailable(NOT_CONFIGURED)
            else:
                self._target = DbTarget("sqlite", path, None)
                self._in_store = True
        elif not url.startswith(VAULT_PREFIX):
            self._secrets |= _url_secrets(url)
            try:
                self._target = parse_target(url, password)
            except InvalidInput as exc:
                self._config_error = exc
        self._kind: DbKind | None = self._target.kind if self._target else None

    # -- status ---------------------------------------------------------------------------

    def section(self) -> dict[str, Any]:
        """The status document's ``db`` section, from memory; the same object until it changes.

        Treat it as read-only: it is shared by every caller.
        """
        return self._section

    def _publish(
        self,
        connected: bool,
        read_only: bool,
        latency: float | None,
        error: str | None,
        *,
        checked: bool = True,
        notify: bool = True,
    ) -> None:
        # A new dict whenever any field changes, latency and checkedAt included (so once per
        # probe): callers may cache its rendering by identity, and mutating it in place would
        # leave those caches stale. Listeners hear only of changes a user would notice.
        self._section = {
            "connected": connected,
            "type": self._kind,
            "env": self.env,
            "readOnly": read_only,
            "latencyMs": None if latency is None else round(latency, 1),
            "error": error,
            "checkedAt": clock.format_ms(clock.now_ms()) if checked else None,
        }
        key = (connected, self._kind, read_only, error)
        if key == self._key:
            return
        first = self._key is None
        self._key = key
        if first or not notify:
            return
        if connected:
            mode = "read-only" if read_only else "read-write"
            log.info("database connected: %s, %s", self._kind, mode)
        else:
            log.info("database not connected: %s", error)
        try:
            self._on_change()
        except Exception:
            log.exception("database status listener failed")

    def _disconnected(self, error: str) -> None:
        self._publish(False, self.env == "PROD", None, error)

    def _redact(self, text: str) -> str:
        return redact(text, self._secrets)

    # -- probing --------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Report started at once, then probe now and every ``probe_seconds`` until cancelled."""
        task_status.started()
        while True:
            await self.probe()
            with anyio.move_on_after(self._probe_seconds):
                await self._wake.wait()
            self._wake = anyio.Event()

    def adopt_workspace(self, workspace: str) -> None:
        """A workspace is now served: with no database configured and no default file yet,
        its ``.simpleaide/`` holds the default SQLite file from now on (a daemon started
        without configuration learns its workspaces as clients use them)."""
        if self._url is not None or self._target is not None:
            return
        path = default_sqlite_path(workspace, self.env)
        if path is None:
            return
        self._adopted = workspace
        self._target = DbTarget("sqlite", path, None)
        self._in_store = True
        self._config_error = None
        self._kind = "sqlite"
        self._publish(False, self.env == "PROD", None, None, checked=False)
        self.probe_soon()

    async def reconfigure(self, settings: DatabaseSettings) -> None:
        """Apply new settings (a reloaded configuration): the connection is closed once no
        call is on it, and the new target is probed at once."""
        with anyio.CancelScope(shield=True):
            async with self._lock:  # a running call ends within its (old) timeout
                session, self._session = self._session, None
                if session is not None:
                    await anyio.to_thread.run_sync(session.close)
                self._configure(settings)
                error = self._config_error.message if self._config_error else None
                self._publish(False, settings.env == "PROD", None, error, checked=False)
        self.probe_soon()

    def probe_soon(self) -> None:
        """Probe without waiting for the interval (the vault was unlocked, say)."""
        self._wake.set()

    async def probe(self) -> dict[str, Any]:
        """Probe now and return the section; callers arriving meanwhile share the probe."""
        if self._probing is not None:
            await self._probing.wait()
        else:
            self._probing = done = anyio.Event()
            try:
                await self._probe_once()
            finally:
                self._probing = None
                done.set()
        return self.section()

    async def _probe_once(self) -> None:
        behind_stuck = True
        try:
            with anyio.fail_after(self._timeout):
                async with self._lock:
                    await self._wait_unstuck()
                    behind_stuck = False
                    kind, latency, read_only = await self._check_or_connect()
        except TimeoutError:
            self._disconnected(self._no_answer_error(behind_stuck=behind_stuck))
        except SimpleaideError as exc:
            self._disconnected(self._redact(exc.message))
        except Exception as exc:
            # A bug, or a resolver failing unexpectedly: reported, never fatal to the loop.
            log.error("database probe failed: %s", self._redact(repr(exc)))
            self._disconnected("internal error while probing (see the daemon log)")
        else:
            self._kind = kind
            self._publish(True, read_only, latency, None)

    async def _check_or_connect(self) -> tuple[DbKind, float, bool]:
        if self._session is not None:
            kind = self._session.kind
            try:
                latency, read_only = await self._in_thread(_check)
                return kind, latency, read_only
            except _Lost:
                pass  # dropped; connect anew within the same deadline
        opener = self._opener()
        return await self._in_thread(functools.partial(_connect_and_check, opener))

    def _opener(self) -> Callable[[], _Session]:
        """How to connect, with vault references resolved now (on the loop, at connect time)."""
        if self._closed:
            raise BackendUnavailable("closed")
        if self._config_error is not None:
            raise self._config_error
        target = self._target
        if target is None:  # the whole URL is a vault secret
            assert self._url is not None
            target = parse_target(self._resolve(self._url, "URL"), self._password)
            self._kind = target.kind
        read_only = self.env == "PROD"
        if target.kind == "sqlite":
            return functools.partial(
                _open_sqlite,
                target.location,
                read_only=read_only,
                in_store=self._in_store,
                timeout=self._timeout,
            )
        password = target.password
        if password is not None and password.startswith(VAULT_PREFIX):
            password = self._resolve(password, "password")
        return functools.partial(
            _open_postgres, target.location, password, read_only=read_only, timeout=self._timeout
        )

    def _resolve(self, reference: str, what: str) -> str:
        name = reference.removeprefix(VAULT_PREFIX)
        try:
            secret = self._resolve_secret(reference)
        except VaultLocked:
            raise BackendUnavailable(f"vault is locked: the database {what} needs it") from None
        except NotFound:
            raise BackendUnavailable(f"secret {name!r} not in the vault") from None
        self._secrets.add(secret)
        if "://" in secret:
            self._secrets |= _url_secrets(secret)
        return secret

    # -- calls on the connection ----------------------------------------------------------

    async def _wait_unstuck(self) -> None:
        """Wait (within the caller's deadline) for an abandoned call's thread to end: a second
        call must not start beside it."""
        stuck = self._stuck
        while stuck is not None and not stuck.done.is_set():
            # Waited on a thread of its own: the stuck thread cannot safely wake the loop (it
            # may be gone by then). Bounded, so an abandoned waiter ends soon after too.
            await anyio.to_thread.run_sync(stuck.done.wait, self._timeout, abandon_on_cancel=True)
        self._stuck = None

    def _no_answer_error(self, *, behind_stuck: bool) -> str:
        """The error when the deadline passed; ``behind_stuck`` if it passed while waiting for
        an abandoned call's thread to end."""
        if behind_stuck:
            return f"{self._no_answer} (the last attempt is still waiting)"
        return self._no_answer

    async def _in_thread(self, work: Callable[[_Call], T]) -> T:
        """Run ``work`` with the session on a worker thread; the caller bounds the time."""
        call = _Call(self._session)
        self._session = None  # the work owns it until it ends
        try:
            return await anyio.to_thread.run_sync(_finishing, work, call, abandon_on_cancel=True)
        finally:
            if call.abandon():
                self._stuck = call  # woken; it closes the session itself when it ends
            else:
                self._session = call.session

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement on the daemon's connection, bounded by the timeout; its rows.

        Raises ``BackendUnavailable`` when not connected, ``ReadOnly`` when the database
        refuses a write in a read-only session, ``InvalidInput`` for other database errors.
        """
        behind_stuck = True
        started = False  # whether this statement had the session (and so may have lost it)
        try:
            with anyio.fail_after(self._timeout):
                async with self._lock:
                    await self._wait_unstuck()
                    behind_stuck = False
                    if self._session is None:
                        reason = self._section["error"] or "not checked yet"
                        raise BackendUnavailable(f"database not connected: {reason}")
                    started = True
                    return await self._in_thread(functools.partial(_execute, sql, tuple(params)))
        except TimeoutError:
            message = self._no_answer_error(behind_stuck=behind_stuck)
            if started:
                self._lost(message)
            raise BackendUnavailable(message) from None
        except _Lost as exc:
            message = self._redact(exc.message)
            self._lost(message)
            raise BackendUnavailable(message) from None
        except (ReadOnly, InvalidInput) as exc:
            raise type(exc)(self._redact(exc.message)) from None
        finally:
            if started:  # cancelled by its caller mid-statement: the session went with it
                self._lost("the connection was dropped with a statement unfinished")

    def _lost(self, error: str) -> None:
        """If the session broke or was abandoned during a statement: say so, reconnect soon."""
        if self._session is None and self._section["connected"] and not self._closed:
            self._disconnected(error)
            self.probe_soon()

    async def aclose(self) -> None:
        """Close the connection, and wait (bounded) for an abandoned call's thread to end."""
        self._closed = True
        with anyio.CancelScope(shield=True):
            async with self._lock:  # a running call ends within its timeout
                session, self._session = self._session, None
                if session is not None:
                    await anyio.to_thread.run_sync(session.close)
                stuck, self._stuck = self._stuck, None
            if stuck is not None:
                # Woken when abandoned; a connect still under way ends by its connect_timeout.
                grace = max(2, math.ceil(self._timeout)) + 1.0
                if not await anyio.to_thread.run_sync(stuck.done.wait, grace):
                    log.warning("database: a worker thread is still stuck at shutdown")
        self._publish(False, self.env == "PROD", None, "closed", notify=False)
