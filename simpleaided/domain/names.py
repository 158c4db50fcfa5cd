"""Path rules: every name that becomes a path is checked here, before anything is written.

Run ids sort by creation time (``20261124T101500123Z-1a2b3c4d``: UTC milliseconds, then 32
random bits); step folders are ``NN_<name>``; artifact names are one safe path component.
"""

from __future__ import annotations

import os
import re
import secrets
from datetime import UTC, datetime

from simpleaided.domain.errors import InvalidInput

RUN_ID_RE = re.compile(r"^\d{8}T\d{9}Z-[0-9a-f]{8}$")
STEP_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
STEP_DIR_RE = re.compile(r"^(\d{2})_([a-z0-9][a-z0-9_-]{0,63})$")
MAX_STEPS = 99
MAX_ARTIFACT_NAME_BYTES = 255
MAX_WORKSPACE_PATH_BYTES = 4096
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def new_run_id(epoch_ms: int) -> str:
    """A fresh run id for a run created at ``epoch_ms``."""
    dt = datetime.fromtimestamp(epoch_ms // 1000, UTC)
    return f"{dt:%Y%m%dT%H%M%S}{epoch_ms % 1000:03d}Z-{secrets.token_hex(4)}"


def check_run_id(value: str) -> str:
    """Return ``value`` if it is a well-formed run id, else raise ``InvalidInput``."""
    if not RUN_ID_RE.match(value):
        raise InvalidInput(
            f"invalid run id {value[:80]!r}: expected e.g. 20261124T101500123Z-1a2b3c4d"
        )
    return value


def check_step_name(value: str) -> str:
    """Return ``value`` if it is a valid step name (``[a-z0-9][a-z0-9_-]{0,63}``)."""
    if not STEP_NAME_RE.match(value):
        raise InvalidInput(
            f"invalid step name {value[:80]!r}: use 1-64 of a-z 0-9 _ -, "
            "starting with a letter or digit"
        )
    return value


def check_step_number(value: int) -> int:
    """Return ``value`` if it is a possible step number (1..99)."""
    if not 1 <= value <= MAX_STEPS:
        raise InvalidInput(f"invalid step number {value}: steps are numbered 1 to {MAX_STEPS}")
    return value


def step_dir_name(number: int, name: str) -> str:
    """The folder name of step ``number`` called ``name``: ``02_code``."""
    return f"{check_step_number(number):02d}_{check_step_name(name)}"


def parse_step_dir(folder: str) -> tuple[int, str] | None:
    """``(number, name)`` of a step folder name, or ``None`` if it is not one."""
    match = STEP_DIR_RE.match(folder)
    if match is None or int(match.group(1)) == 0:
        return None
    return int(match.group(1)), match.group(2)


def check_artifact_name(value: str) -> str:
    """Return ``value`` if it is one safe path component of at most 255 bytes."""
    if not value:
        raise InvalidInput("invalid artifact name: it is empty")
    if "/" in value or "\\" in value:
        raise InvalidInput(f"invalid artifact name {value[:80]!r}: it must not contain a slash")
    if value in (".", "..") or value.startswith("."):
        raise InvalidInput(f"invalid artifact name {value[:80]!r}: it must not start with a dot")
    if _CONTROL_RE.search(value):
        raise InvalidInput("invalid artifact name: it contains NUL or control characters")
    if len(value.encode("utf-8", "surrogatepass")) > MAX_ARTIFACT_NAME_BYTES:
        raise InvalidInput(f"invalid artifact name: longer than {MAX_ARTIFACT_NAME_BYTES} bytes")
    return value


def check_workspace_path(value: str) -> str:
    """Return the normalised absolute path ``value``; refuse relative paths, ``..``, NUL.

    Existence, ownership and symlinks are the store's checks: they need the filesystem.
    """
    if "\x00" in value:
        raise InvalidInput("invalid workspace path: it contains NUL")
    if len(value.encode("utf-8", "surrogatepass")) > MAX_WORKSPACE_PATH_BYTES:
        raise InvalidInput(f"invalid workspace path: longer than {MAX_WORKSPACE_PATH_BYTES} bytes")
    if not value.startswith("/"):
        raise InvalidInput(f"invalid workspace path {value[:200]!r}: it must be absolute")
    if ".." in value.split("/"):
        raise InvalidInput(f"invalid workspace path {value[:200]!r}: it must not contain '..'")
    return os.path.normpath(value)


# A setting that names a secret instead of holding it: "vault:NAME".
VAULT_REF = "vault:"
