"""The project's exceptions, raised by the core and translated once, at the RPC boundary.

    SimpleaideError
    ├── NotFound                 -32001  a run, step, artifact or workspace that does not exist
    ├── InvalidTransition        -32010  a status change the state machine refuses
    ├── Conflict                 -32011  something that already exists
    │   └── WorkspaceTaken       -32011  a workspace another daemon serves
    ├── InvalidInput             -32602  input the rules refuse (names, paths, sizes of fields)
    │   └── UnsafePath           -32602  a symlink, a foreign owner or a writable-by-others tree
    ├── VaultLocked              -32020  the vault is locked (or not initialized)
    ├── WrongPassphrase          -32021  the passphrase does not open the vault
    ├── VaultDamaged             -32022  the vault file fails authentication (damaged, altered)
    ├── ReadOnly                 -32030  a write refused because the profile is PROD
    ├── LimitExceeded            -32040  a message or artifact over a configured limit
    ├── BackendUnavailable       -32050  a database or LLM backend that cannot be reached
    ├── SocketOnly               -32060  a method refused on this connection (the web's)
    └── Cancelled                -32800  a query stopped by db.cancel (LSP's RequestCancelled)

Corrupt records are not errors: they are listed with ``status: "corrupt"``. Acting on one is
an ``InvalidTransition`` whose current status is ``corrupt``.
"""

from __future__ import annotations

from typing import Any


class SimpleaideError(Exception):
    """Base of every error the daemon reports to a client on purpose."""

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data


class NotFound(SimpleaideError):
    """The addressed run, step, artifact or workspace does not exist."""


# A status in a sentence ("step 01_build has failed"), for the messages people read.
_STATUS_PHRASES = {
    "pending": "is pending",
    "running": "is running",
    "completed": "has completed",
    "failed": "has failed",
    "skipped": "was skipped",
    "cancelled": "was cancelled",
    "corrupt": "is corrupt",
    "exited": "has exited",
}


def status_phrase(status: str) -> str:
    """``has failed``, ``is running``, ``was skipped``: ``status`` after a subject."""
    return _STATUS_PHRASES.get(str(status), f"is {status}")


class InvalidTransition(SimpleaideError):
    """The state machine refuses to move from the current status to the requested one."""

    def __init__(self, what: str, current: str, requested: str, reason: str = "") -> None:
        message = f"{what} {status_phrase(current)}; cannot move to {requested}"
        if reason:
            message = f"{message} ({reason})"
        super().__init__(message, {"current": current, "requested": requested})
        self.current = current
        self.requested = requested


class Conflict(SimpleaideError):
    """The thing to create already exists."""


class WorkspaceTaken(Conflict):
    """Another daemon serves the workspace (holds its lock); ``data`` names its pid and
    socket when it wrote them."""


class InvalidInput(SimpleaideError, ValueError):
    """Input that the naming or path rules refuse; nothing was written.

    It is a ``ValueError`` too, so pydantic validators report it as a validation error.
    """


class UnsafePath(InvalidInput):
    """A path the store refuses to touch: a symlink, another owner, or writable by others."""


class VaultLocked(SimpleaideError):
    """The vault must be unlocked (or initialized) first."""


class WrongPassphrase(SimpleaideError):
    """The passphrase given does not open the vault (nothing changed)."""


class VaultDamaged(SimpleaideError):
    """The vault file is unreadable or fails authentication: damaged or tampered with."""


class ReadOnly(SimpleaideError):
    """The active profile is PROD, where the database is read-only."""


class LimitExceeded(SimpleaideError):
    """A message or artifact is larger than the configured limit."""


class BackendUnavailable(SimpleaideError):
    """A database or LLM backend did not answer, or answered that it is not ready."""


class SocketOnly(SimpleaideError):
    """A method served on the owner-only socket alone, called over another connection (the
    web console's WebSocket): secret values, the vault's keys and the console's token never
    leave through HTTP (README: Security of the HTTP side)."""


class Cancelled(SimpleaideError):
    """A running query was stopped on request (``db.cancel``, or its client went away).
    The code is LSP's ``RequestCancelled``: JSON-RPC reserves none for it."""
