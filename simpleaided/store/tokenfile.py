"""The HTTP token file: the per-user key of the HTTP shim (README: Security of the HTTP side).

``http-token`` beside the socket, 0600 in the socket's 0700 folder: 64 hex digits (256 random
bits) and a newline. Created at the daemon's first start, kept across restarts, replaced
atomically when rotated. Whatever else is found under that name (a symlink, a file others may
read, a file not holding one well-formed token) is replaced by a fresh token, never used.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import stat
import threading
from pathlib import Path

from simpleaided.domain.errors import NotFound, SimpleaideError, UnsafePath
from simpleaided.store import safefs

log = logging.getLogger(__name__)

TOKEN_FILE = "http-token"
TOKEN_BYTES = 32  # 256 bits: 64 hex digits
_TOKEN = re.compile(r"[0-9a-f]{64}")
_MAX_FILE_BYTES = 4096  # a token file larger than this is not one


def _open_folder(folder: Path) -> int:
    """The folder (made 0700 if missing), opened; refused if not ours or writable by others."""
    folder.mkdir(mode=safefs.DIR_MODE, parents=True, exist_ok=True)
    grand = os.open(folder.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    with safefs.opened(grand):
        return safefs.open_dir(grand, folder.name, str(folder), create=True)


def _write_new(parent: int) -> str:
    token = secrets.token_hex(TOKEN_BYTES)
    safefs.atomic_write(parent, TOKEN_FILE, token.encode() + b"\n")
    return token


def _read(parent: int, where: str) -> tuple[str | None, str]:
    """The token the file holds, or ``None`` and why it cannot be used."""
    try:
        fd = safefs.open_regular(parent, TOKEN_FILE, where)
    except NotFound:
        return None, "missing"
    except UnsafePath:
        return None, "not a regular file (a symlink?)"
    with safefs.opened(fd):
        st = os.fstat(fd)
        data = os.read(fd, _MAX_FILE_BYTES + 1)
    if st.st_uid != os.getuid():
        return None, f"owned by uid {st.st_uid}"
    if stat.S_IMODE(st.st_mode) & 0o077:
        return None, "readable by others"
    token = data.decode("ascii", errors="replace").strip()
    if len(data) > _MAX_FILE_BYTES or not _TOKEN.fullmatch(token):
        return None, "not one token of 64 hex digits"
    return token, ""


def read_or_create(folder: Path) -> str:
    """The token kept in ``folder``'s token file, made now if there is none (or none usable).

    ``UnsafePath`` if ``folder`` is not ours or others may write to it; ``OSError`` if the
    file cannot be written."""
    where = f"the HTTP token file {folder / TOKEN_FILE}"
    with safefs.opened(_open_folder(folder)) as parent:
        token, why = _read(parent, where)
        if token is not None:
            return token
        if why != "missing":
            log.warning("%s is %s: replaced by a new token", where, why)
        return _write_new(parent)


def rotate(folder: Path) -> str:
    """Replace the token in ``folder``'s token file by a new one (atomically, 0600)."""
    with safefs.opened(_open_folder(folder)) as parent:
        return _write_new(parent)


class TokenFile:
    """The token file of one folder and the token in use: read once, when the daemon starts
    (``load``), held in memory, replaced by ``rotate``. Rotations may come from several
    threads at once: each writes the file and takes its token under one lock, so the file
    and the token in use never disagree."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._token = ""
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        """The file."""
        return self.folder / TOKEN_FILE

    def load(self) -> None:
        """Read the token, or make it at the first start."""
        with self._lock:
            self._token = read_or_create(self.folder)

    def current(self) -> str:
        """The token in use; ``""`` before ``load``, which matches no offered token."""
        return self._token

    def rotate(self) -> str:
        """Make a new token, in the file and in use; the old one is refused from now on."""
        with self._lock:
            try:
                self._token = rotate(self.folder)
            except OSError:
                # The new file may be in place already (a failure after the rename, e.g.
                # fsyncing the folder): take what the file holds, so file and memory agree.
                self._token = self._in_file() or self._token
                raise
            return self._token

    def _in_file(self) -> str | None:
        """The usable token the file holds now, if any (never raises)."""
        try:
            with safefs.opened(_open_folder(self.folder)) as parent:
                return _read(parent, f"the HTTP token file {self.path}")[0]
        except (OSError, SimpleaideError):
            return None

    def __repr__(self) -> str:  # never the token itself
        return f"TokenFile({str(self.folder)!r})"
