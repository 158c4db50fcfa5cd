"""The database probe: the one connection the daemon keeps to the profile's database, the
``db`` section of the status document, and statements run on that connection.

The drivers (``simpleaided.store.sql``) block, so every call runs on a worker thread
(``worker.py``) under the configured timeout; a call that overruns is abandoned and its
session woken, and until its thread has ended no other call starts and the status says so.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
from anyio.abc import TaskStatus

from simpleaided.domain import clock
from simpleaided.domain.database import (
    DbTarget,
    default_sqlite_path,
    describe_target,
    parse_target,
)
from simpleaided.domain.errors import (
    BackendUnavailable,
    InvalidInput,
    NotFound,
    ReadOnly,
    SimpleaideError,
    VaultLocked,
)
from simpleaided.domain.secrets import SecretResolver, scrub, url_secrets, vault_name
from simpleaided.domain.status import NOT_CONFIGURED
from simpleaided.domain.vocabulary import DbKind, EnvProfile
from simpleaided.services.database.worker import Call, run_call, wait_ended
from simpleaided.store.runstore import check_workspace_root
from simpleaided.store.sql import Lost, Session
from simpleaided.store.sql.postgres import open_postgres
from simpleaided.store.sql.sqlite import open_sqlite

log = logging.getLogger(__name__)

T = TypeVar("T")


def _check(call: Call[Session]) -> tuple[float, bool, list[str]]:
    assert call.session is not None
    try:
        latency, read_only = call.session.check()
    except Lost:
        call.drop()
        raise
    return latency, read_only, call.session.risks()


def _connect_and_check(
    opener: Callable[[], Session], call: Call[Session]
) -> tuple[DbKind, float, bool, list[str]]:
    call.adopt(opener())
    latency, read_only, risks = _check(call)
    assert call.session is not None
    return call.session.kind, latency, read_only, risks


def _in_workspace(workspace: str, opener: Callable[[], Session]) -> Session:
    """``opener()``, once ``workspace`` (where the default file lives) is found to keep the
    rules of a workspace: no ``.simpleaide/`` is made at ``/`` or in a folder others may
    write in, whichever workspace the config file names first."""
    check_workspace_root(workspace)
    return opener()


def _execute(sql: str, params: tuple[Any, ...], call: Call[Session]) -> list[tuple[Any, ...]]:
    assert call.session is not None
    try:
        return call.session.execute(sql, params)
    except Lost:
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
    unsafe_sql: bool = False  # DEV SQLite: let ATTACH, VACUUM INTO, extension loading through


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
        self.generation = 0  # how many times the target changed
        self._configure(settings)
        self._session: Session | None = None
        self._stuck: Call[Session] | None = None  # an abandoned call whose thread has not ended yet
        self._lock = anyio.Lock()  # one call on the connection at a time
        self._probing: anyio.Event | None = None
        self._wake = anyio.Event()
        self._closed = False
        self._key: tuple[bool, DbKind | None, bool, str | None, tuple[str, ...]] | None = None
        self._section: dict[str, Any] = {}
        error = self._config_error.message if self._config_error else None
        self._publish(False, settings.env == "PROD", None, error, checked=False)

    def _configure(self, settings: DatabaseSettings) -> None:
        """Take the settings: what to connect to, and how long to wait."""
        # Sessions opened for earlier settings (the grid's) are closed when they see it change.
        self.generation += 1
        self._settings = settings
        env, url, password = settings.env, settings.url, settings.password
        self.env: EnvProfile = env
        self._url = url
        self._password = password
        self._probe_seconds = settings.probe_seconds
        self._timeout = settings.timeout_seconds
        self._unsafe_sql = settings.unsafe_sql
        self._no_answer = f"no answer within {settings.timeout_seconds:g} s"
        self._secrets: set[str] = set()  # masked in every message (vault secrets once resolved)
        if password and vault_name(password) is None:
            self._secrets.add(password)
        self._target: DbTarget | None = None
        self._resolved: DbTarget | None = None  # the target a vault-held URL named, once read
        self._config_error: SimpleaideError | None = None
        self._in_store = False  # the default file, under the workspace's .simpleaide/
        if url is None:
            path = default_sqlite_path(settings.default_workspace or self._adopted, env)
            if path is None:
                self._config_error = BackendUnavailable(NOT_CONFIGURED)
            else:
                self._target = DbTarget("sqlite", path, None)
                self._in_store = True
        elif vault_name(url) is None:
            self._secrets |= url_secrets(url)
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

    def target(self) -> dict[str, str | None] | None:
        """Which database the profile names, with no secret (``db.status``'s ``target``);
        ``None`` while none is configured."""
        secret = vault_name(self._url) if self._url is not None else None
        described = describe_target(self._target or self._resolved)
        if described is None:
            if secret is None:
                return None
            described = dict.fromkeys(("type", "path", "host", "port", "dbname", "user"))
        described["vaultSecret"] = secret
        # Belt and braces: no value may hold a secret the connection knows.
        return {k: None if v is None else self.redact(v) for k, v in described.items()}

    def _publish(
        self,
        connected: bool,
        read_only: bool,
        latency: float | None,
        error: str | None,
        *,
        warnings: Sequence[str] = (),
        checked: bool = True,
        notify: bool = True,
    ) -> None:
        # A new dict whenever any field changes, latency and checkedAt included (so once per
        # probe): callers may cache its rendering by identity, and mutating it in place would
        # leave those caches stale. Listeners hear only of changes a user would notice.
        self._section = {
            "connected": connected,
            # Not probed since the target was set, and no error known: the first answer is
            # awaited (never shown as off meanwhile).
            "checking": not checked and not connected and error is None,
            "type": self._kind,
            "env": self.env,
            "readOnly": read_only,
            "latencyMs": None if latency is None else round(latency, 1),
            "error": error,
            "checkedAt": clock.format_ms(clock.now_ms()) if checked else None,
            "warnings": list(warnings),
        }
        key = (connected, self._kind, read_only, error, tuple(warnings))
        if key == self._key:
            return
        first = self._key is None
        self._key = key
        if first or not notify:
            return
        if connected:
            mode = "read-only" if read_only else "read-write"
            log.info("database connected: %s, %s", self._kind, mode)
            for warning in warnings:
                log.warning("database: %s", warning)
        elif error is None:
            log.info("database: checking %s", self._kind)
        else:
            log.info("database not connected: %s", error)
        try:
            self._on_change()
        except Exception:
            log.exception("database status listener failed")

    def _disconnected(self, error: str) -> None:
        self._publish(False, self.env == "PROD", None, error)

    @property
    def timeout_seconds(self) -> float:
        """How long a connect or a probe may take."""
        return self._timeout

    def redact(self, text: str) -> str:
        """``text`` with every secret of the connection masked (for errors and logs)."""
        return scrub(text, self._secrets)

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
        self.generation += 1
        self._target = DbTarget("sqlite", path, None)
        self._in_store = True
        self._config_error = None
        self._kind = "sqlite"
        self._publish(False, self.env == "PROD", None, None, checked=False)
        self.probe_soon()

    async def release_workspace(self, workspace: str, served: Sequence[str]) -> None:
        """``workspace`` is no longer served: if the default file in use is its own, the
        connection to it is closed, and the first of the workspaces still ``served`` is
        adopted in its place (as a start would), or none (not configured). Its
        ``.simpleaide/`` is never made again. With no database at all (the config file
        dropped the workspace whose file it was), one still served is adopted likewise."""
        if workspace != self._adopted:
            if self._url is None and self._target is None and served:
                self.adopt_workspace(served[0])
            return
        self._adopted = served[0] if served else None
        if self._settings.url is not None or self._settings.default_workspace:
            return  # the configured database is in use, not the adopted file
        log.info(
            "database: workspace %s is no longer served: its default file is let go", workspace
        )
        await self.reconfigure()

    async def reconfigure(self, settings: DatabaseSettings | None = None) -> None:
        """Apply new settings (a reloaded configuration), or the current ones again
        (``None``: the adopted workspace changed): the connection is closed once no call is
        on it, and the new target is probed at once."""
        with anyio.CancelScope(shield=True):
            async with self._lock:  # a running call ends within its (old) timeout
                session, self._session = self._session, None
                if session is not None:
                    await anyio.to_thread.run_sync(session.close)
                self._configure(settings or self._settings)
                error = self._config_error.message if self._config_error else None
                self._publish(False, self.env == "PROD", None, error, checked=False)
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
                    kind, latency, read_only, risks = await self._check_or_connect()
        except TimeoutError:
            self._disconnected(self._no_answer_error(behind_stuck=behind_stuck))
        except SimpleaideError as exc:
            self._disconnected(self.redact(exc.message))
        except Exception as exc:
            # A bug, or a resolver failing unexpectedly: reported, never fatal to the loop.
            log.error("database probe failed: %s", self.redact(repr(exc)))
            self._disconnected("internal error while probing (see the daemon log)")
        else:
            self._kind = kind
            self._publish(True, read_only, latency, None, warnings=risks)

    async def _check_or_connect(self) -> tuple[DbKind, float, bool, list[str]]:
        if self._session is not None:
            kind = self._session.kind
            try:
                latency, read_only, risks = await self._in_thread(_check)
                return kind, latency, read_only, risks
            except Lost:
                pass  # dropped; connect anew within the same deadline
        opener = self.opener()
        return await self._in_thread(functools.partial(_connect_and_check, opener))

    def opener(self) -> Callable[[], Session]:
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
            self._resolved = target
        read_only = self.env == "PROD"
        if target.kind == "sqlite":
            opener = functools.partial(
                open_sqlite,
                target.location,
                read_only=read_only,
                in_store=self._in_store,
                timeout=self._timeout,
                unsafe_sql=self._unsafe_sql,
            )
            if self._in_store:  # <workspace>/.simpleaide/<env>.sqlite3
                workspace = os.path.dirname(os.path.dirname(target.location))
                return functools.partial(_in_workspace, workspace, opener)
            return opener
        password = target.password
        if password is not None and vault_name(password) is not None:
            password = self._resolve(password, "password")
        return functools.partial(
            open_postgres, target.location, password, read_only=read_only, timeout=self._timeout
        )

    def _resolve(self, reference: str, what: str) -> str:
        name = vault_name(reference)
        try:
            secret = self._resolve_secret(reference)
        except VaultLocked:
            raise BackendUnavailable(f"vault is locked: the database {what} needs it") from None
        except NotFound:
            raise BackendUnavailable(f"secret {name!r} not in the vault") from None
        self._secrets.add(secret)
        if "://" in secret:
            self._secrets |= url_secrets(secret)
        return secret

    # -- calls on the connection ----------------------------------------------------------

    async def _wait_unstuck(self) -> None:
        """Wait (within the caller's deadline) for an abandoned call's thread to end: a second
        call must not start beside it."""
        stuck = self._stuck
        while stuck is not None and not stuck.done.is_set():
            await wait_ended(stuck, self._timeout)
        self._stuck = None

    def _no_answer_error(self, *, behind_stuck: bool) -> str:
        """The error when the deadline passed; ``behind_stuck`` if it passed while waiting for
        an abandoned call's thread to end."""
        if behind_stuck:
            return f"{self._no_answer} (the last attempt is still waiting)"
        return self._no_answer

    async def _in_thread(self, work: Callable[[Call[Session]], T]) -> T:
        """Run ``work`` with the session on a worker thread; the caller bounds the time."""
        call: Call[Session] = Call(self._session)
        self._session = None  # the work owns it until it ends
        try:
            return await run_call(work, call)
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
        except Lost as exc:
            message = self.redact(exc.message)
            self._lost(message)
            raise BackendUnavailable(message) from None
        except (ReadOnly, InvalidInput) as exc:
            raise type(exc)(self.redact(exc.message)) from None
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
                if not await wait_ended(stuck, grace):
                    log.warning("database: a worker thread is still stuck at shutdown")
        self._publish(False, self.env == "PROD", None, "closed", notify=False)
