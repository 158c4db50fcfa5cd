"""The secrets vault: locked, unlocked, and locking itself again.

The key and the decrypted secrets live in this object only while the vault is unlocked;
locking drops them. (Python cannot wipe memory it has freed; the key never leaves the
process and is never logged, returned or put in an error.)

The vault locks after ``idle_seconds`` without use and ``max_seconds`` after unlocking,
whichever comes first, like gpg-agent's ``default-cache-ttl`` and ``max-cache-ttl``. A task
sleeps until that moment, so subscribers see the lock when it happens. Unlock attempts are
serialized, and each one after a failure waits a delay that doubles per failure (from
``failed_delay_seconds``, capped at ``MAX_FAILED_DELAY_SECONDS``).
"""

from __future__ import annotations

import ctypes
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

import anyio
from anyio.abc import TaskStatus

from simpleaided.domain.errors import (
    Conflict,
    LimitExceeded,
    NotFound,
    SimpleaideError,
    VaultLocked,
    WrongPassphrase,
)
from simpleaided.domain.secrets import VAULT_REF
from simpleaided.domain.vocabulary import VaultState
from simpleaided.services.warnings import Warnings
from simpleaided.store.vaultfile import (
    MAX_VAULT_BYTES,
    KdfParams,
    VaultFile,
    derive_key,
    new_header,
    open_sealed,
    parse_header,
    seal,
)

log = logging.getLogger(__name__)

MAX_FAILED_DELAY_SECONDS = 30.0
MAX_SECRETS = 10_000
# Without the name: an API key pasted where a name goes is a valid name, not to be shown back.
_NO_SUCH_SECRET = "no secret with that name (see simpleaide vault ls)"


_PR_SET_DUMPABLE = 4


def _close_memory_to_other_processes() -> None:
    """Make this process non-dumpable (Linux's ``PR_SET_DUMPABLE`` 0): no process of the
    same user may ptrace it or read ``/proc/<pid>/mem``, and it leaves no core file.

    Done when a passphrase first arrives rather than at start: before that there is nothing
    secret in memory, and the daemon stays open to a debugger and core dumps for users who
    never use the vault. Never undone: a locked vault's key may linger in freed memory.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) == 0:
            return
        reason = f"errno {ctypes.get_errno()}"
    except (OSError, AttributeError) as exc:  # no C library to load, or no prctl in it
        reason = str(exc)
    log.warning("vault: cannot make the process non-dumpable (%s)", reason)


class _Unlocked:
    """What exists only while the vault is unlocked."""

    def __init__(self, key: bytes, header: dict[str, Any], secrets: dict[str, str]) -> None:
        self.key = key
        self.header = header
        self.secrets = secrets


class VaultService:
    """Owns the vault file and its unlocked state."""

    def __init__(
        self,
        file: VaultFile,
        *,
        idle_seconds: float,
        max_seconds: float,
        kdf: KdfParams,
        on_change: Callable[[], None],
        warnings: Warnings,
        failed_delay_seconds: float = 0.5,
    ) -> None:
        self.file = file
        self.configure(
            idle_seconds=idle_seconds,
            max_seconds=max_seconds,
            kdf=kdf,
            failed_delay_seconds=failed_delay_seconds,
        )
        self._on_change = on_change
        self._warnings = warnings
        self._unusable: str | None = None  # why the vault's file cannot be used, if so
        self._initialized = False
        self._open: _Unlocked | None = None
        self._idle: float | None = None  # this unlock's idle time
        self._used_at = 0.0  # time.monotonic() of the last use
        self._lock_at_most: float | None = None  # monotonic deadline from max_seconds
        self._failures = 0
        self._next_attempt = 0.0
        self._attempts = anyio.Lock()  # unlock attempts, one at a time
        self._writes = anyio.Lock()
        self._wake = anyio.Event()

    def configure(
        self,
        *,
        idle_seconds: float,
        max_seconds: float,
        kdf: KdfParams,
        failed_delay_seconds: float,
    ) -> None:
        """Set the lock times (they apply from the next unlock), the key derivation for new
        files and passphrases, and the delay after a wrong passphrase."""
        self.idle_seconds = idle_seconds or None  # 0: never
        self.max_seconds = max_seconds or None
        self.kdf = kdf
        self.failed_delay_seconds = failed_delay_seconds

    # -- state -----------------------------------------------------------------------------

    @property
    def state(self) -> VaultState:
        if self._open is not None:
            return "unlocked"
        return "locked" if self._initialized or self._unusable else "uninitialized"

    def _deadline(self) -> float | None:
        if self._open is None:
            return None
        idle_end = None if self._idle is None else self._used_at + self._idle
        ends = [end for end in (self._lock_at_most, idle_end) if end is not None]
        return min(ends, default=None)

    def remaining_ms(self) -> int | None:
        """Milliseconds until the vault locks itself, or ``None`` (locked, or never)."""
        deadline = self._deadline()
        if deadline is None:
            return None
        return max(0, int((deadline - time.monotonic()) * 1000))

    def section(self) -> dict[str, Any]:
        """The status document's ``vault`` section."""
        return {"state": self.state, "autoLockRemainingMs": self.remaining_ms()}

    def status(self) -> dict[str, Any]:
        """``vault.status``."""
        return {
            **self.section(),
            "secrets": len(self._open.secrets) if self._open is not None else None,
            "idleLockSeconds": self._idle if self._open is not None else self.idle_seconds,
            "maxUnlockSeconds": self.max_seconds,
            "retryAfterMs": max(0, int((self._next_attempt - time.monotonic()) * 1000)),
            "file": str(self.file.path),
        }

    def _changed(self) -> None:
        self._wake.set()
        self._on_change()

    # -- lifecycle -------------------------------------------------------------------------

    async def load(self) -> None:
        """Find out whether a vault exists (the state starts locked or uninitialized). A vault
        file the daemon may not use (a symlinked or group-writable folder) is reported, and
        the daemon serves on without it."""
        try:
            self._initialized = await anyio.to_thread.run_sync(self.file.exists)
        except (SimpleaideError, OSError) as exc:
            reason = exc.message if isinstance(exc, SimpleaideError) else str(exc)
            self._unusable = f"the vault cannot be used: {reason}"
            log.warning("%s", self._unusable)
            self._warnings.set("vault", self._unusable)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Lock the vault when its time is up, until cancelled."""
        task_status.started()
        while True:
            self._wake = anyio.Event()
            deadline = self._deadline()
            if deadline is None:
                await self._wake.wait()
                continue
            with anyio.move_on_after(deadline - time.monotonic()):
                await self._wake.wait()
            deadline = self._deadline()
            if deadline is not None and time.monotonic() >= deadline:
                idle = self._idle is not None and deadline == self._used_at + self._idle
                self.lock("unused for its idle time" if idle else "maximum unlock time reached")

    # -- locking ---------------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._unusable is not None:
            raise VaultLocked(self._unusable)

    async def init(self, passphrase: str) -> None:
        """Create an empty vault under ``passphrase``; it starts unlocked."""
        self._check_usable()
        _close_memory_to_other_processes()
        async with self._attempts, self._writes:
            if await anyio.to_thread.run_sync(self.file.exists):
                self._initialized = True
                raise Conflict("a vault already exists (change its passphrase with passwd)")
            header = new_header(self.kdf)
            key = await anyio.to_thread.run_sync(derive_key, passphrase, header)
            await self._write(key, header, {})
            self._initialized = True
            self._start(_Unlocked(key, header, {}), None)
        log.info("vault initialized at %s", self.file.path)

    async def unlock(self, passphrase: str, ttl_seconds: float | None = None) -> None:
        """Open the vault with ``passphrase`` (again, if already open: that restarts its
        timers); ``WrongPassphrase`` slows the next attempt down."""
        _close_memory_to_other_processes()
        async with self._attempts:
            key, _, _ = await self._open_with(passphrase)
            # The key took a while to derive: a set or delete may have changed the file since
            # it was read. Read it again under the write lock, so none is undone.
            async with self._writes:
                data = await anyio.to_thread.run_sync(self.file.read)
                sealed = open_sealed(key, data)
                self._start(_Unlocked(key, sealed.header, sealed.secrets), ttl_seconds)
        log.info("vault unlocked")

    async def _open_with(self, passphrase: str) -> tuple[bytes, dict[str, Any], dict[str, str]]:
        """Derive and check the key; call with ``_attempts`` held."""
        self._check_usable()
        wait = self._next_attempt - time.monotonic()
        if wait > 0:
            await anyio.sleep(wait)
        try:
            data = await anyio.to_thread.run_sync(self.file.read)
        except NotFound:
            self._initialized = False
            raise VaultLocked("no vault yet: run 'simpleaide vault init'") from None
        self._initialized = True
        header = parse_header(data)
        key = await anyio.to_thread.run_sync(derive_key, passphrase, header)
        try:
            sealed = open_sealed(key, data)
        except WrongPassphrase:
            self._failures += 1
            delay = min(
                self.failed_delay_seconds * 2 ** (self._failures - 1), MAX_FAILED_DELAY_SECONDS
            )
            self._next_attempt = time.monotonic() + delay
            log.warning("vault: wrong passphrase (failure %d in a row)", self._failures)
            raise WrongPassphrase("wrong passphrase", {"retryAfterMs": int(delay * 1000)}) from None
        self._failures = 0
        self._next_attempt = 0.0
        return key, sealed.header, sealed.secrets

    def _start(self, opened: _Unlocked, ttl_seconds: float | None) -> None:
        now = time.monotonic()
        self._open = opened
        self._idle = ttl_seconds or self.idle_seconds
        self._used_at = now
        self._lock_at_most = now + self.max_seconds if self.max_seconds else None
        self._changed()

    def lock(self, reason: str = "asked to") -> bool:
        """Forget the key and the secrets; ``False`` if the vault was not unlocked."""
        if self._open is None:
            return False
        self._open = None
        self._idle = None
        log.info("vault locked (%s)", reason)
        self._changed()
        return True

    async def change_passphrase(self, passphrase: str, new_passphrase: str) -> None:
        """Re-key the vault (a new salt, the configured KDF cost); the state stays as it was,
        and an open vault stays open under the new key."""
        _close_memory_to_other_processes()
        async with self._attempts, self._writes:
            _, _, secrets = await self._open_with(passphrase)
            header = new_header(self.kdf)
            key = await anyio.to_thread.run_sync(derive_key, new_passphrase, header)
            await self._write(key, header, secrets)
            if self._open is not None:
                self._open = _Unlocked(key, header, dict(secrets))
        log.info("vault passphrase changed")

    # -- secrets ---------------------------------------------------------------------------

    def _opened(self) -> _Unlocked:
        if self._open is None:
            if self._initialized:
                raise VaultLocked("the vault is locked: run 'simpleaide vault unlock'")
            raise VaultLocked("no vault yet: run 'simpleaide vault init'")
        self._used_at = time.monotonic()
        self._wake.set()  # the idle deadline moved
        return self._open

    def get(self, name: str) -> str:
        """The secret ``name``. Not found, the error never repeats the name: an API key
        pasted where a name goes is a valid name."""
        value = self._opened().secrets.get(name)
        if value is None:
            raise NotFound(_NO_SUCH_SECRET)
        return value

    def names(self) -> list[str]:
        """Every secret's name, sorted."""
        return sorted(self._opened().secrets)

    async def set(self, name: str, value: str) -> bool:
        """Store ``value`` as ``name``; ``True`` if it replaced a secret."""
        async with self._writes:
            opened = self._opened()
            if name not in opened.secrets and len(opened.secrets) >= MAX_SECRETS:
                raise LimitExceeded(f"the vault holds at most {MAX_SECRETS} secrets")
            updated = {**opened.secrets, name: value}
            await self._write(opened.key, opened.header, updated)
            replaced = name in opened.secrets
            opened.secrets = updated
        return replaced

    async def delete(self, name: str) -> None:
        """Remove the secret ``name``."""
        async with self._writes:
            opened = self._opened()
            if name not in opened.secrets:
                raise NotFound(_NO_SUCH_SECRET)
            updated = {k: v for k, v in opened.secrets.items() if k != name}
            await self._write(opened.key, opened.header, updated)
            opened.secrets = updated

    async def _write(self, key: bytes, header: dict[str, Any], secrets: dict[str, str]) -> None:
        data = seal(key, header, secrets)
        if len(data) > MAX_VAULT_BYTES:  # it could not be read back: refuse it now
            raise LimitExceeded(
                f"the vault would be {len(data)} bytes, over its {MAX_VAULT_BYTES}-byte limit"
            )
        with anyio.CancelScope(shield=True):  # a half-done change must not be abandoned
            await anyio.to_thread.run_sync(self.file.write, data)

    def resolve(self, reference: str) -> str:
        """The secret a ``vault:NAME`` reference names, for the daemon's own use (a database
        password, an API key). It does not count as use: a periodic probe must not keep the
        vault open forever."""
        name = reference.removeprefix(VAULT_REF)
        if self._open is None:
            raise VaultLocked(f"the vault is locked (secret {name!r} is needed)")
        value = self._open.secrets.get(name)
        if value is None:
            raise NotFound(f"secret {name!r} is not in the vault")
        return value
