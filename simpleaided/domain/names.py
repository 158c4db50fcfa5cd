"""Path rules: every name that becomes a path is checked here, before anything is written.

Run ids sort by creation time (``20261124T101500123Z-1a2b3c4d``: UTC milliseconds, then 32
random bits); step folders are ``NN_<name>``; artifact names are one safe path component.

Patterns are matched whole (``fullmatch``): ``$`` alone also matches before a final newline,
which would let ``"code\n"`` through.
"""

from __future__ import annotations

import os
import re
import secrets
import unicodedata
from datetime import UTC, datetime

from simpleaided.domain.errors import InvalidInput

# Always used with ``fullmatch``. Digits are spelled ``[0-9]``: ``\d`` takes any Unicode
# digit (``２``, ``٢``), which ``int()`` reads as 2.
RUN_ID_RE = re.compile(r"[0-9]{8}T[0-9]{9}Z-[0-9a-f]{8}")
STEP_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
STEP_DIR_RE = re.compile(r"([0-9]{2})_([a-z0-9][a-z0-9_-]{0,63})")
MAX_STEPS = 99
MAX_ARTIFACT_NAME_BYTES = 255
MAX_WORKSPACE_PATH_BYTES = 4096
# Unicode general categories refused in names: Cc (C0, DEL and C1 controls: they drive
# terminals), Cf (format characters: bidi overrides and isolates, zero-width spaces and
# joiners, the BOM, soft hyphens, tags: they make a name look like another), Zl and Zp (line
# and paragraph separators: they break a name over lines), Cs (lone surrogates: no UTF-8 form).
# A rule by category, not a list, so that every such character is covered, including those
# Unicode adds later. Private-use and unassigned characters are allowed: they are inert.
REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def new_run_id(epoch_ms: int) -> str:
    """A fresh run id for a run created at ``epoch_ms``."""
    dt = datetime.fromtimestamp(epoch_ms // 1000, UTC)
    return f"{dt:%Y%m%dT%H%M%S}{epoch_ms % 1000:03d}Z-{secrets.token_hex(4)}"


def check_run_id(value: str) -> str:
    """Return ``value`` if it is a well-formed run id, else raise ``InvalidInput``."""
    if not RUN_ID_RE.fullmatch(value):
        raise InvalidInput(
            f"invalid run id {value[:80]!r}: expected e.g. 20261124T101500123Z-1a2b3c4d"
        )
    return value


def check_step_name(value: str) -> str:
    """Return ``value`` if it is a valid step name (``[a-z0-9][a-z0-9_-]{0,63}``)."""
    if not STEP_NAME_RE.fullmatch(value):
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
    match = STEP_DIR_RE.fullmatch(folder)
    if match is None or int(match.group(1)) == 0:
        return None
    return int(match.group(1)), match.group(2)


def refused_character(value: str) -> str | None:
    """The first character of ``value`` in a ``REFUSED_CATEGORIES`` category, or ``None``."""
    if value.isprintable():  # fast path: no Cc, Cf, Zl, Zp or Cs in it
        return None
    for char in value:
        if unicodedata.category(char) in REFUSED_CATEGORIES:
            return char
    return None


def check_artifact_name(value: str) -> str:
    """Return ``value`` if it is one safe path component of at most 255 bytes.

    Refused: empty, ``/`` or ``\\``, a leading dot, a character of ``REFUSED_CATEGORIES``, and
    a name not in Unicode NFC form. NFC is required, not applied: the name on disk is then
    exactly the name the client sent, and two names that look alike (``é`` composed and
    decomposed) can never be two artifacts.
    """
    if not value:
        raise InvalidInput("invalid artifact name: it is empty")
    if "/" in value:
        raise InvalidInput(f"invalid artifact name {value[:80]!r}: it must not contain a slash")
    if "\\" in value:
        # Listings show names that are not UTF-8 on disk with \xNN escapes; this is why such
        # a listed name can never be confused with a real one.
        raise InvalidInput(
            f"invalid artifact name {value[:80]!r}: it must not contain a backslash "
            "(a listed name with \\xNN escapes is not UTF-8 on disk and cannot be read here)"
        )
    if value in (".", "..") or value.startswith("."):
        raise InvalidInput(f"invalid artifact name {value[:80]!r}: it must not start with a dot")
    char = refused_character(value)
    if char is not None:
        kind = unicodedata.category(char)
        raise InvalidInput(
            f"invalid artifact name {value[:80]!r}: it contains U+{ord(char):04X}, "
            f"a control, format or separator character ({kind})"
        )
    if len(value.encode("utf-8")) > MAX_ARTIFACT_NAME_BYTES:
        raise InvalidInput(
            f"invalid artifact name: longer than {MAX_ARTIFACT_NAME_BYTES} bytes in UTF-8"
        )
    if not unicodedata.is_normalized("NFC", value):
        raise InvalidInput(
            f"invalid artifact name {value[:80]!r}: it is not in Unicode NFC form "
            f"(its composed form is {unicodedata.normalize('NFC', value)[:80]!r})"
        )
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
