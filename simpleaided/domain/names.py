"""Path rules: every name that becomes a path is checked here, before anything is written.

Run ids sort by creation time (``20261124T101500123Z-1a2b3c4d``: UTC milliseconds, then 32
random bits); step folders are ``NN_<name>``; artifact names are one safe path component.

Each rule is a ``check_*`` function, which says in words what is wrong, and as much of it as a
regular expression can say is a ``*_PATTERN``, which the wire contract publishes (OpenRPC, JSON
Schema) and pydantic enforces too. The patterns keep to what ECMA-262 (JSON Schema's regex
dialect), Rust's ``regex`` (pydantic's) and Python's ``re`` read alike: anchored with ``^`` and
``$``, no lookaround, ``\\xHH`` and ``\\uHHHH`` escapes. They are matched whole (``fullmatch``):
in Python, ``$`` alone also matches before a final newline, which would let ``"code\n"``
through.
"""

from __future__ import annotations

import itertools
import os
import re
import secrets
import unicodedata
from datetime import UTC, datetime

from simpleaided.domain.errors import InvalidInput

# Digits are spelled ``[0-9]``: ``\d`` takes any Unicode digit (``２``, ``٢``), which
# ``int()`` reads as 2.
RUN_ID_PATTERN = r"^[0-9]{8}T[0-9]{9}Z-[0-9a-f]{8}$"
RUN_ID_EXAMPLE = "20261124T101500123Z-1a2b3c4d"
RUN_ID_RE = re.compile(RUN_ID_PATTERN)
STEP_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
STEP_NAME_RE = re.compile(STEP_NAME_PATTERN)
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


def _bmp_classes(*groups: frozenset[str]) -> tuple[str, ...]:
    """For each group of Unicode categories, its characters in the Basic Multilingual Plane
    as a character class's ranges (``\\x00-\\x1f\\x7f-\\x9f\\u00ad...``), from this
    Python's Unicode tables (one pass, about 15 ms).

    Surrogates are left out (a class cannot hold them in every dialect, and JSON text cannot
    carry a lone one), and so is everything above the BMP (the tag characters, Egyptian
    hieroglyph controls...): no one escape spelling for them is read alike by the three
    dialects. ``check_artifact_name`` refuses those by category."""
    found: list[list[tuple[int, int]]] = [[] for _ in groups]
    group_of = {category: found[n] for n, group in enumerate(groups) for category in group}
    for code in itertools.chain(range(0xD800), range(0xE000, 0x10000)):
        ranges = group_of.get(unicodedata.category(chr(code)))
        if ranges is None:
            continue
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1] = (ranges[-1][0], code)
        else:
            ranges.append((code, code))

    def escape(code: int) -> str:
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return tuple(
        "".join(escape(a) if a == b else f"{escape(a)}-{escape(b)}" for a, b in ranges)
        for ranges in found
    )


# The refused characters, and the spaces (Zs: what a blank name is made of), as class ranges.
REFUSED_RANGES, SPACE_RANGES = _bmp_classes(REFUSED_CATEGORIES, frozenset({"Zs"}))
# One path component, no leading dot, none of the refused characters of the BMP; the UTF-8
# length, NFC and the refused characters above the BMP are ``check_artifact_name``'s alone.
ARTIFACT_NAME_PATTERN = rf"^[^./\\{REFUSED_RANGES}][^/\\{REFUSED_RANGES}]*$"
ARTIFACT_NAME_EXAMPLE = "report.md"


def _path_pattern() -> str:
    """An absolute path with no NUL and no ``..`` component, that is not ``/`` itself however
    written (``//``, ``/./``), without lookaround (not every validator has it). Each component
    is empty, or starts with a character other than a dot, or is one dot, or a dot and then
    anything but a second dot, or two dots and then something; at least one is more than
    empty or a dot."""
    char = "[^/\\x00]"
    lead = "[^/.\\x00]"
    named = rf"(?:{lead}{char}*|\.{lead}{char}*|\.\.{char}+)"
    component = rf"(?:{named}|\.)?"
    return rf"^/(?:\.?/)*{named}(?:/{component})*$"


WORKSPACE_PATH_PATTERN = _path_pattern()
# Text that may hold anything but NUL (titles, error messages, a database's names).
NO_NUL_PATTERN = r"^[^\x00]*$"


def quoted(value: str, limit: int = 80) -> str:
    """``value`` as a message quotes it: escaped as Python writes it (no control character
    reaches a terminal), cut after ``limit`` characters."""
    return repr(value) if len(value) <= limit else f"{value[:limit]!r}..."


def new_run_id(epoch_ms: int) -> str:
    """A fresh run id for a run created at ``epoch_ms``."""
    dt = datetime.fromtimestamp(epoch_ms // 1000, UTC)
    return f"{dt:%Y%m%dT%H%M%S}{epoch_ms % 1000:03d}Z-{secrets.token_hex(4)}"


def check_run_id(value: str) -> str:
    """Return ``value`` if it is a well-formed run id, else raise ``InvalidInput``."""
    if not RUN_ID_RE.fullmatch(value):
        raise InvalidInput(f"{quoted(value)} is not a run id (expected like {RUN_ID_EXAMPLE})")
    return value


def check_step_name(value: str) -> str:
    """Return ``value`` if it is a valid step name (``[a-z0-9][a-z0-9_-]{0,63}``)."""
    if not STEP_NAME_RE.fullmatch(value):
        raise InvalidInput(
            f"{quoted(value)} is not a step name (expected 1 to 64 of a-z 0-9 _ -, "
            "starting with a letter or digit, like code)"
        )
    return value


def check_step_number(value: int) -> int:
    """Return ``value`` if it is a possible step number (1..99)."""
    if not 1 <= value <= MAX_STEPS:
        raise InvalidInput(f"{value} is not a step number: steps are numbered 1 to {MAX_STEPS}")
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
        raise InvalidInput("an artifact name cannot be empty")
    if "/" in value:
        raise InvalidInput(f"{quoted(value)} is not an artifact name: it must not contain a slash")
    if "\\" in value:
        # Listings show names that are not UTF-8 on disk with \xNN escapes; this is why such
        # a listed name can never be confused with a real one.
        raise InvalidInput(
            f"{quoted(value)} is not an artifact name: it must not contain a backslash "
            "(a listed name with \\xNN escapes is not UTF-8 on disk and cannot be read here)"
        )
    if value in (".", "..") or value.startswith("."):
        raise InvalidInput(f"{quoted(value)} is not an artifact name: it must not start with a dot")
    char = refused_character(value)
    if char is not None:
        kind = unicodedata.category(char)
        raise InvalidInput(
            f"{quoted(value)} is not an artifact name: it contains U+{ord(char):04X}, "
            f"a control, format or separator character ({kind})"
        )
    if len(value.encode("utf-8")) > MAX_ARTIFACT_NAME_BYTES:
        raise InvalidInput(
            f"{quoted(value, 40)} is not an artifact name: it is longer than "
            f"{MAX_ARTIFACT_NAME_BYTES} bytes in UTF-8"
        )
    if not unicodedata.is_normalized("NFC", value):
        raise InvalidInput(
            f"{quoted(value)} is not an artifact name: it is not in Unicode NFC form "
            f"(its composed form is {quoted(unicodedata.normalize('NFC', value))})"
        )
    return value


def check_workspace_path(value: str) -> str:
    """Return the normalised absolute path ``value``; refuse relative paths, ``..``, NUL.

    Existence, ownership and symlinks are the store's checks: they need the filesystem.
    """
    if "\x00" in value:
        raise InvalidInput(f"{quoted(value, 200)} is not a workspace path: it contains NUL")
    if len(value.encode("utf-8", "surrogatepass")) > MAX_WORKSPACE_PATH_BYTES:
        raise InvalidInput(
            f"{quoted(value)} is not a workspace path: it is longer than "
            f"{MAX_WORKSPACE_PATH_BYTES} bytes"
        )
    if not value.startswith("/"):
        raise InvalidInput(f"{quoted(value, 200)} is not a workspace path: it must be absolute")
    if ".." in value.split("/"):
        raise InvalidInput(
            f"{quoted(value, 200)} is not a workspace path: it must not contain '..'"
        )
    return os.path.normpath(value)


# Trees the kernel makes up: no path in them names a project folder (``/proc/self/cwd`` is
# whatever folder the process that resolves it is in).
KERNEL_TREES = ("/proc", "/sys", "/dev")


def _path_bytes(path: str) -> str:
    """A path as the OS gave it (bytes that are not UTF-8 as ``\\xff``), to quote."""
    try:
        raw = path.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return quoted(path, 200)
    shown = raw.decode("utf-8", "backslashreplace")
    return shown if shown.isprintable() else quoted(shown, 200)


def check_folder_text(path: str) -> str:
    """Return ``path`` if it is UTF-8 text: a real path whose bytes are not (``os`` gives
    them as surrogates) cannot be written to the wire, the state file or a snapshot."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError as exc:
        shown, byte = _path_bytes(path), _path_bytes(path[exc.start])
        raise InvalidInput(
            f"cannot use {shown} as a workspace: the folder's real path is not UTF-8 text "
            f"(byte {byte}), and the daemon keeps paths as UTF-8 text; rename the folder "
            "(or the one holding it) to a UTF-8 name"
        ) from None
    return path


def check_workspace_folder(path: str) -> str:
    """Return ``path`` (absolute, normalised) unless no workspace can be there: ``/`` itself,
    or a path in a tree the kernel makes up, or one that is not UTF-8 text (the OS's bytes
    that are not, as surrogates). Checked before the path is resolved (in /proc,
    resolving it would name the daemon's own folders) and after (a symlink may lead to ``/``).
    """
    check_folder_text(path)
    plain = "/" + path.lstrip("/")  # normpath keeps a leading "//"
    if plain == "/":
        raise InvalidInput("/ cannot be a workspace: choose a project folder")
    for tree in KERNEL_TREES:
        if plain == tree or plain.startswith(f"{tree}/"):
            shown = path if path.isprintable() else quoted(path, 200)
            raise InvalidInput(
                f"cannot use {shown} as a workspace: it is in {tree}, which the kernel makes "
                "up (no project lives there); choose a folder of your own, such as one in "
                "your home folder"
            )
    return path
