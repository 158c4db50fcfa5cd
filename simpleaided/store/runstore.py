"""One workspace's run store, format v1::

    <workspace>/.simpleaide/runs/<runId>/metadata.json
                                        /NN_<name>/step.json
                                        /NN_<name>/artifacts/<name>

All methods are synchronous and may block on the disk (fsync): the services call them from a
worker thread. Every write is atomic and durable before the method returns.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import fcntl
import grp
import hashlib
import os
import pwd
import re
import secrets
import shlex
import shutil
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import ValidationError

from simpleaided.domain import clock, names, states
from simpleaided.domain.errors import (
    Conflict,
    InvalidInput,
    LimitExceeded,
    NotFound,
    UnsafePath,
    WorkspaceTaken,
)
from simpleaided.domain.index import RunSummary
from simpleaided.domain.models import RunMetadata, StepMetadata
from simpleaided.store import safefs

STORE_DIR = ".simpleaide"
RUNS_DIR = "runs"
RUN_FILE = "metadata.json"
STEP_FILE = "step.json"
ARTIFACTS_DIR = "artifacts"
MAX_RECORD_BYTES = 1 << 20


CREATING_PREFIX = ".creating-"
# A run being built before it is renamed to its id: never matches ``RUN_ID_RE``.
CREATING_RE = re.compile(r"\.creating-[0-9a-f]{16}")


def _is_leftover(name: str) -> bool:
    """Whether ``name`` is a temp file or a half-deleted folder of the daemon's."""
    return bool(safefs.TMP_RE.fullmatch(name) or safefs.DELETING_RE.fullmatch(name))


def _remove_temp_files(fd: int, where: str, before_ns: int, tidied: Tidied) -> None:
    for entry in safefs.list_dir(fd):
        if safefs.TMP_RE.fullmatch(entry.name):
            tidied.remove(fd, entry.name, f"{where}/{entry.name}", before_ns)


@dataclass(slots=True)
class Tidied:
    """What ``WorkspaceStore.tidy`` did and found."""

    removed: list[str] = field(default_factory=list)  # paths below runs/
    half_built: list[str] = field(default_factory=list)  # run folders removed
    unclosed: list[str] = field(default_factory=list)  # finished runs with an open step
    stuck: list[str] = field(default_factory=list)  # what could not be removed, and why

    def remove(self, parent: int, name: str, where: str, before_ns: int) -> bool:
        """Remove leftover ``name`` below ``parent`` (``where``: its path below runs/) if it
        predates ``before_ns``; one that resists is noted in ``stuck`` and kept, so one
        entry never stops the rest."""
        try:
            removed = safefs.remove_leftover(parent, name, before_ns)
        except OSError as exc:
            self.stuck.append(f"{where}: {exc.strerror or exc}")
            return False
        if removed:
            self.removed.append(where)
        return removed


Scanned = tuple[RunSummary, int | None]
"""A run's summary and the signature of the ``metadata.json`` it came from (if readable)."""


def runs_path(workspace: str) -> str:
    """The path of a workspace's ``runs/`` folder."""
    return os.path.join(workspace, STORE_DIR, RUNS_DIR)


def metadata_signature(workspace: str, run_id: str) -> int | None:
    """The signature of a run's ``metadata.json`` (see ``safefs.signature``), or ``None`` if
    it cannot be stat'ed; ``run_id`` must already be checked."""
    try:
        st = os.stat(os.path.join(runs_path(workspace), run_id, RUN_FILE), follow_symlinks=False)
    except OSError:
        return None
    return safefs.signature(st)


class CorruptRecord(Exception):
    """A metadata file that cannot be read or parsed; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _describe(exc: ValidationError) -> str:
    """The first problem of a record that does not parse, in words (not pydantic's "Field
    required", "Input should be")."""
    first = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in first["loc"])
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    msg = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] == "missing":
        return f"{where} is missing{more}"
    if msg.startswith("Input should "):
        return f"{where} must {msg.removeprefix('Input should ')}{more}"
    return f"{where}: {msg}{more}" if where else f"{msg}{more}"


def _encode(record: RunMetadata | StepMetadata) -> bytes:
    return orjson.dumps(record.to_json_dict(), option=orjson.OPT_INDENT_2) + b"\n"


UPLOAD_PREFIX = ".upload-"
# An upload's id: the inode of its staging file (in hex), a dash, 16 random hex digits. The
# inode stays with the file when it is published, so a final chunk sent again (its reply
# lost) can be recognised as already published.
UPLOAD_ID_RE = re.compile(r"[0-9a-f]{1,16}-[0-9a-f]{16}")
# The exact names of staged uploads: only these are ever tidied away (not a user's
# ``.upload-notes``).
UPLOAD_RE = re.compile(r"\.upload-[0-9a-f]{32}-[0-9a-f]{1,16}-[0-9a-f]{16}")
# An upload not written to for this long is abandoned (its client is gone).
UPLOAD_MAX_AGE_NS = 24 * 3600 * 1_000_000_000
# What a listing shows in place of an ``artifacts/`` folder it refuses to read: a name no
# artifact can have.
UNREADABLE_FOLDER = "artifacts/"


def upload_name(name: str, upload_id: str) -> str:
    """Where upload ``upload_id`` of artifact ``name`` is staged until its final chunk:
    hidden (listings skip dot names) and of bounded length, so a 255-byte name still has
    one; one file per upload, so two uploads of one name never mix."""
    if not UPLOAD_ID_RE.fullmatch(upload_id):
        raise InvalidInput(f"{upload_id!r} is not an upload id")
    return f"{UPLOAD_PREFIX}{hashlib.sha256(name.encode('utf-8')).hexdigest()[:32]}-{upload_id}"


def remove_abandoned_uploads(fd: int, where: str, now_ns: int) -> list[str]:
    """Remove the staged uploads in the open ``artifacts/`` folder ``fd`` last written
    ``UPLOAD_MAX_AGE_NS`` before ``now_ns`` or earlier; the paths removed."""
    removed = []
    for entry in safefs.list_dir(fd):
        if not UPLOAD_RE.fullmatch(entry.name):
            continue
        # The modification time: every chunk written moves it, so an upload in progress,
        # however slow, is never taken away.
        st = safefs.lstat_at(fd, entry.name)
        if st is None or not stat.S_ISREG(st.st_mode):
            continue
        if st.st_mtime_ns < now_ns - UPLOAD_MAX_AGE_NS:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.name, dir_fd=fd)
                removed.append(f"{where}/{entry.name}")
    return removed


def artifact_version(st: os.stat_result) -> str:
    """A token that names one file of an artifact: the same while it is appended to, another
    once it is replaced (a replace renames a new file, a new inode, into place)."""
    return hashlib.blake2b(f"{st.st_dev}:{st.st_ino}".encode(), digest_size=8).hexdigest()


@dataclass(frozen=True, slots=True)
class ArtifactEntry:
    """An artifact file's name, size and modification time.

    ``invalid_name``: the name on disk breaks the naming rules (``name`` is then a safe
    rendering of it); ``staged``: the bytes of an upload not yet published; ``upload_id``:
    the upload a chunk belongs to; ``version``: see ``artifact_version``; ``problem``: why
    a listed entry cannot be read (an ``artifacts/`` folder refused, a file unreadable)."""

    name: str
    size: int
    modified_ms: int
    invalid_name: bool = False
    staged: bool = False
    upload_id: str | None = None
    version: str = ""
    problem: str | None = None


def _listed_name(on_disk: str) -> tuple[str, bool]:
    """How a file name found in ``artifacts/`` is listed, and whether it breaks the rules.

    A name that is not UTF-8 (surrogate-escaped by ``os.scandir``) is shown with ``\\xNN``
    escapes: a backslash is refused in artifact names, so the rendering names no real one."""
    try:
        return names.check_artifact_name(on_disk), False
    except InvalidInput:
        return os.fsencode(on_disk).decode("utf-8", "backslashreplace"), True


class RunHandle:
    """An open run folder: read and write its records, steps and artifacts."""

    def __init__(self, store: WorkspaceStore, run_id: str, fd: int) -> None:
        self.store = store
        self.run_id = run_id
        self.fd = fd
        self.signature: int | None = None  # of the metadata.json last read or written

    def _where(self, *parts: str) -> str:
        return "/".join((f"run {self.run_id}", *parts))

    # -- the run record -------------------------------------------------------------------

    def read(self) -> RunMetadata:
        """The run's metadata; raises ``CorruptRecord`` if it cannot be used."""
        try:
            data, self.signature = safefs.read_file_signed(
                self.fd, RUN_FILE, self._where(RUN_FILE), MAX_RECORD_BYTES
            )
        except NotFound:
            raise CorruptRecord(f"{RUN_FILE} is missing") from None
        except UnsafePath as exc:
            raise CorruptRecord(exc.message) from None
        except OSError as exc:
            raise CorruptRecord(f"{RUN_FILE} cannot be read: {exc.strerror}") from None
        try:
            run = RunMetadata.model_validate_json(data)
        except ValidationError as exc:
            raise CorruptRecord(f"{RUN_FILE}: {_describe(exc)}") from None
        if run.id != self.run_id:
            raise CorruptRecord(f"{RUN_FILE} holds id {run.id}, not its folder's name")
        return run

    def write(self, run: RunMetadata) -> None:
        """Replace the run's metadata atomically."""
        self.signature = safefs.atomic_write(self.fd, RUN_FILE, _encode(run))

    # -- steps ----------------------------------------------------------------------------

    def step_dirs(self) -> dict[int, str]:
        """Step folder names by number, as found on disk."""
        found: dict[int, str] = {}
        for entry in safefs.list_dir(self.fd):
            parsed = names.parse_step_dir(entry.name)
            if parsed is not None:
                found[parsed[0]] = entry.name
        return found

    def read_step(self, number: int, dir_name: str | None = None) -> StepMetadata:
        """Step ``number``'s record; raises ``NotFound`` or ``CorruptRecord``."""
        if dir_name is None:
            dir_name = self.step_dirs().get(number)
            if dir_name is None:
                raise NotFound(f"run {self.run_id} has no step {number}")
        where = self._where(dir_name)
        with safefs.opened(safefs.open_dir(self.fd, dir_name, where)) as step_fd:
            try:
                data = safefs.read_file(
                    step_fd, STEP_FILE, f"{where}/{STEP_FILE}", MAX_RECORD_BYTES
                )
            except NotFound:
                raise CorruptRecord(f"{dir_name}/{STEP_FILE} is missing") from None
        try:
            step = StepMetadata.model_validate_json(data)
        except ValidationError as exc:
            raise CorruptRecord(f"{dir_name}/{STEP_FILE}: {_describe(exc)}") from None
        if step.dir_name != dir_name:
            raise CorruptRecord(f"{dir_name}/{STEP_FILE} describes step {step.dir_name}")
        return step

    def read_steps(self, step_count: int) -> list[dict[str, Any]]:
        """Steps ``1..step_count`` as wire dicts; a missing or corrupt one is reported."""
        dirs = self.step_dirs()
        out: list[dict[str, Any]] = []
        for number in range(1, step_count + 1):
            dir_name = dirs.get(number)
            if dir_name is None:
                out.append(
                    {
                        "number": number,
                        "status": "corrupt",
                        "errorMessage": "step folder is missing",
                    }
                )
                continue
            try:
                step = self.read_step(number, dir_name)
            except (CorruptRecord, UnsafePath) as exc:
                reason = exc.reason if isinstance(exc, CorruptRecord) else exc.message
                out.append(
                    {
                        "number": number,
                        "folder": dir_name,
                        "status": "corrupt",
                        "errorMessage": reason,
                    }
                )
                continue
            view = step.model_dump(mode="json", by_alias=True)
            view["folder"] = dir_name
            out.append(view)
        return out

    def create_step(self, step: StepMetadata) -> None:
        """Make the step's folder, its ``artifacts/`` and ``step.json``."""
        for number, leftover in self.step_dirs().items():
            if number >= step.number:
                # Beyond stepCount: left by a crash between the step and the run write.
                safefs.remove_tree(self.fd, leftover)
        where = self._where(step.dir_name)
        # Built under a hidden name, then renamed: a crash never leaves a step folder without
        # its step.json (``tidy`` removes a half-built one).
        building = safefs.temp_name(CREATING_PREFIX)
        try:
            with safefs.opened(safefs.make_dir(self.fd, building, where)) as step_fd:
                os.close(safefs.make_dir(step_fd, ARTIFACTS_DIR, f"{where}/{ARTIFACTS_DIR}"))
                safefs.atomic_write(step_fd, STEP_FILE, _encode(step))
            os.rename(building, step.dir_name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except BaseException:
            with contextlib.suppress(OSError):
                shutil.rmtree(building, dir_fd=self.fd)
            raise
        os.fsync(self.fd)

    def write_step(self, step: StepMetadata) -> None:
        """Replace the step's record atomically."""
        where = self._where(step.dir_name)
        with safefs.opened(safefs.open_dir(self.fd, step.dir_name, where)) as step_fd:
            safefs.atomic_write(step_fd, STEP_FILE, _encode(step))

    def delete_steps_from(self, from_step: int) -> None:
        """Delete every step folder numbered ``from_step`` or higher, highest first."""
        for number, dir_name in sorted(self.step_dirs().items(), reverse=True):
            if number >= from_step:
                safefs.remove_tree(self.fd, dir_name)

    # -- artifacts ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _artifacts_dir(self, number: int, *, create: bool = False) -> Iterator[int]:
        dir_name = self.step_dirs().get(number)
        if dir_name is None:
            raise NotFound(f"run {self.run_id} has no step {number}")
        where = self._where(dir_name)
        with safefs.opened(safefs.open_dir(self.fd, dir_name, where)) as step_fd:
            art = safefs.open_dir(step_fd, ARTIFACTS_DIR, f"{where}/{ARTIFACTS_DIR}", create=create)
            with safefs.opened(art):
                yield art

    def put_artifact(self, number: int, name: str, data: bytes) -> ArtifactEntry:
        """Write artifact ``name`` of step ``number`` atomically (replacing any old one)."""
        names.check_artifact_name(name)
        with self._artifacts_dir(number, create=True) as art:
            existing = safefs.lstat_at(art, name)
            if existing is not None and not stat.S_ISREG(existing.st_mode):
                raise UnsafePath(f"refusing artifact {name!r}: a symlink or folder is in its place")
            remove_abandoned_uploads(art, ARTIFACTS_DIR, time.time_ns())
            safefs.atomic_write(art, name, data)
            st = os.stat(name, dir_fd=art, follow_symlinks=False)
        return ArtifactEntry(name, st.st_size, st.st_mtime_ns // 1_000_000)

    def put_artifact_chunk(
        self, number: int, name: str, data: bytes, offset: int, final: bool, upload_id: str | None
    ) -> ArtifactEntry:
        """Write one chunk of upload ``upload_id`` of artifact ``name`` at ``offset``.

        Without ``upload_id`` (at offset 0) a new upload starts, staged in a file of its
        own; the entry returned carries its id, which every later chunk gives. A chunk must
        start at most at the bytes received so far (``Conflict`` otherwise: no gap), and what
        follows it is cut, so a chunk sent again gives the same file. ``final`` publishes the
        upload atomically in place of the artifact; until then readers see the old version,
        if any. An unknown id (the upload was published, replaced, or its step rerun) is a
        ``Conflict``, except a final chunk sent again for an upload already published, which
        is answered as the first time.
        """
        names.check_artifact_name(name)
        where = f"upload of artifact {name!r}"
        with self._artifacts_dir(number, create=True) as art:
            if final:
                self._check_replaceable(art, name)
            if upload_id is None:
                if offset != 0:
                    raise Conflict(
                        f"no upload of artifact {name!r} is in progress: "
                        "its first chunk goes at offset 0"
                    )
                remove_abandoned_uploads(art, ARTIFACTS_DIR, time.time_ns())
                fd, upload_id = self._new_upload(art, name)
            else:
                staging = upload_name(name, upload_id)
                try:
                    fd = safefs.open_regular(art, staging, where, write=True, create=False)
                except NotFound:
                    done = self._published(art, name, upload_id, data, offset) if final else None
                    if done is not None:
                        return done
                    raise Conflict(
                        f"upload {upload_id} of artifact {name!r} is not in progress: it was "
                        "interrupted or replaced by another (or its step was rerun); "
                        "start again at offset 0 without an uploadId"
                    ) from None
            staging = upload_name(name, upload_id)
            with safefs.opened(fd):
                received = os.fstat(fd).st_size
                if offset > received:
                    raise Conflict(
                        f"artifact {name!r}: {received} bytes received so far; a chunk at "
                        f"offset {offset} would leave a gap"
                    )
                os.ftruncate(fd, offset)
                safefs.write_at(fd, data, offset)
                os.fsync(fd)
                if final:
                    os.rename(staging, name, src_dir_fd=art, dst_dir_fd=art)
                st = os.fstat(fd)
            os.fsync(art)
        return ArtifactEntry(
            name,
            st.st_size,
            st.st_mtime_ns // 1_000_000,
            staged=not final,
            upload_id=upload_id,
            version=artifact_version(st),
        )

    @staticmethod
    def _new_upload(art: int, name: str) -> tuple[int, str]:
        """Create the staging file of a new upload of ``name``; its open fd and its id."""
        # Made under a temp name first: the id holds the inode, known only once it exists.
        tmp = safefs.temp_name(safefs.TMP_PREFIX)
        fd = safefs.create_exclusive(art, tmp)
        try:
            upload_id = f"{os.fstat(fd).st_ino:x}-{secrets.token_hex(8)}"
            os.rename(tmp, upload_name(name, upload_id), src_dir_fd=art, dst_dir_fd=art)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=art)
            raise
        return fd, upload_id

    @staticmethod
    def _published(
        art: int, name: str, upload_id: str, data: bytes, offset: int
    ) -> ArtifactEntry | None:
        """The artifact as upload ``upload_id`` published it, if it still is: the same file
        (inode), the same size, and the final chunk's bytes at its end; else ``None``."""
        inode = int(upload_id.partition("-")[0], 16)
        st = safefs.lstat_at(art, name)
        if st is None or not stat.S_ISREG(st.st_mode):
            return None
        if st.st_ino != inode or st.st_size != offset + len(data):
            return None
        with safefs.opened(safefs.open_regular(art, name, f"artifact {name!r}")) as fd:
            st = os.fstat(fd)
            if st.st_ino != inode or safefs.read_at(fd, len(data), offset) != data:
                return None
        return ArtifactEntry(
            name,
            st.st_size,
            st.st_mtime_ns // 1_000_000,
            upload_id=upload_id,
            version=artifact_version(st),
        )

    def append_artifact(
        self, number: int, name: str, data: bytes, offset: int | None
    ) -> ArtifactEntry:
        """Add ``data`` at the end of artifact ``name`` (made if missing), durably; with
        ``offset``, only if the artifact has exactly that many bytes (``Conflict`` else,
        and nothing is made). A write that fails is undone before the error goes on."""
        names.check_artifact_name(name)
        with self._artifacts_dir(number, create=True) as art:
            created = safefs.lstat_at(art, name) is None
            if created and offset:
                raise Conflict(
                    f"artifact {name!r} has 0 bytes (it does not exist): an append at offset "
                    f"{offset} would not land at its end"
                )
            fd = safefs.open_regular(art, name, f"artifact {name!r}", write=True)
            with safefs.opened(fd):
                size = os.fstat(fd).st_size
                if offset is not None and offset != size:
                    raise Conflict(
                        f"artifact {name!r} has {size} bytes: an append at offset {offset} "
                        "would not land at its end"
                    )
                try:
                    safefs.write_at(fd, data, size)
                    os.fsync(fd)
                except BaseException:
                    # Half an append (disk full, file too large) would be read as data, and
                    # a retry at the same offset refused: cut it off again.
                    with contextlib.suppress(OSError):
                        os.ftruncate(fd, size)
                        os.fsync(fd)
                    if created:
                        with contextlib.suppress(OSError):
                            os.unlink(name, dir_fd=art)
                    raise
                st = os.fstat(fd)
            if created:
                os.fsync(art)
        return ArtifactEntry(
            name, st.st_size, st.st_mtime_ns // 1_000_000, version=artifact_version(st)
        )

    def delete_artifact(self, number: int, name: str) -> None:
        """Delete artifact ``name`` of step ``number``, durably (the name unlinked, then the
        folder fsync'd). Only a regular file is deleted: a symlink or folder in its place is
        refused and left alone, as reading or replacing it is. A staged upload of the same
        name is not touched: its final chunk publishes it later, as it would have."""
        names.check_artifact_name(name)
        missing = f"step {number} of run {self.run_id} has no artifact {name!r}"
        with self._artifacts_dir(number) as art:
            existing = safefs.lstat_at(art, name)
            if existing is None:
                raise NotFound(missing)
            if not stat.S_ISREG(existing.st_mode):
                raise UnsafePath(f"refusing artifact {name!r}: a symlink or folder is in its place")
            try:
                # unlink never follows a link: whatever took the file's place meanwhile, only
                # that name goes (a folder cannot be unlinked).
                os.unlink(name, dir_fd=art)
            except FileNotFoundError:
                raise NotFound(missing) from None
            except IsADirectoryError:
                raise UnsafePath(f"refusing artifact {name!r}: a folder is in its place") from None
            os.fsync(art)

    def _check_replaceable(self, art: int, name: str) -> None:
        existing = safefs.lstat_at(art, name)
        if existing is not None and not stat.S_ISREG(existing.st_mode):
            raise UnsafePath(f"refusing artifact {name!r}: a symlink or folder is in its place")

    def get_artifact(
        self,
        number: int,
        name: str,
        max_bytes: int,
        offset: int = 0,
        length: int | None = None,
        version: str | None = None,
    ) -> tuple[bytes, ArtifactEntry]:
        """Bytes of artifact ``name`` of step ``number`` from ``offset``, and the artifact's
        entry (its whole size, modification time and version: a client reading in chunks
        checks that the version stays the same, or gives it as ``version``, refused with
        ``Conflict`` once the artifact was replaced).

        Without ``length`` the rest of the file is read, refused (``LimitExceeded``) when
        over ``max_bytes``; with it, at most ``min(length, max_bytes)`` bytes come back.
        """
        names.check_artifact_name(name)
        with self._artifacts_dir(number) as art:
            fd = safefs.open_regular(art, name, f"artifact {name!r}")
            with safefs.opened(fd):
                st = os.fstat(fd)
                size = st.st_size
                current = artifact_version(st)
                if version is not None and version != current:
                    raise Conflict(
                        f"artifact {name!r} was replaced since version {version} was read"
                    )
                if offset > size:
                    raise InvalidInput(
                        f"offset {offset} is past the end of artifact {name!r} ({size} bytes)"
                    )
                if length is None:
                    if size - offset > max_bytes:
                        raise LimitExceeded(
                            f"artifact {name!r} is {size} bytes, over the {max_bytes}-byte "
                            "limit of one answer: read it in parts with 'offset' and 'length'"
                        )
                    length = size - offset
                data = safefs.read_at(fd, min(length, max_bytes, size - offset), offset)
        return data, ArtifactEntry(name, size, st.st_mtime_ns // 1_000_000, version=current)

    def list_artifacts(self, number: int) -> list[ArtifactEntry]:
        """The regular files in step ``number``'s ``artifacts/``, by name; a name that breaks
        the rules (not UTF-8, a control character...) is listed too, marked, never read.

        Never fails on what is on disk: a file deleted while listed is left out, a step
        without ``artifacts/`` has none, and an ``artifacts/`` the store refuses (a symlink,
        another owner...) is one entry, ``UNREADABLE_FOLDER``, with the reason."""
        dir_name = self.step_dirs().get(number)
        if dir_name is None:
            raise NotFound(f"run {self.run_id} has no step {number}")
        out = []
        try:
            with self._artifacts_dir(number) as art:
                for entry in safefs.list_dir(art):
                    if entry.name.startswith("."):
                        continue  # temporary files of atomic writes, staged uploads
                    shown, invalid = _listed_name(entry.name)
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue  # deleted since the folder was read
                    except OSError as exc:
                        problem = f"cannot be read: {exc.strerror or exc}"
                        out.append(ArtifactEntry(shown, 0, 0, invalid, problem=problem))
                        continue
                    if stat.S_ISREG(st.st_mode):
                        out.append(
                            ArtifactEntry(
                                shown, st.st_size, st.st_mtime_ns // 1_000_000, invalid_name=invalid
                            )
                        )
        except NotFound:
            return []  # no artifacts/ (or the step went meanwhile): nothing to list
        except (UnsafePath, OSError) as exc:
            problem = (
                str(exc)
                if isinstance(exc, UnsafePath)
                else (f"the artifacts folder cannot be read: {exc.strerror or exc}")
            )
            modified_ms = 0
            with contextlib.suppress(OSError):
                st = os.stat(f"{dir_name}/{ARTIFACTS_DIR}", dir_fd=self.fd, follow_symlinks=False)
                modified_ms = st.st_mtime_ns // 1_000_000
            return [
                ArtifactEntry(UNREADABLE_FOLDER, 0, modified_ms, invalid_name=True, problem=problem)
            ]
        return sorted(out, key=lambda a: a.name)


LOCK_FILE = "daemon.lock"


# What a daemon that let a workspace go cleanly leaves in its lock file: every write of its
# own had ended, and the store was free of a crash's leftovers.
_STOPPED = b'{"stopped": true}\n'


class WorkspaceLock:
    """A workspace's ``daemon.lock``, held: the workspace is this daemon's until ``release``.

    ``clean``: the previous holder let it go cleanly (its lock file said so); when not (it
    died, or it predates the mark, or there was none), the store may hold its leftovers and
    open steps, and needs the deep walk (``checked`` says it was done). ``claimed_ns``: an
    entry of the store changed before it is a previous holder's, never a write of this one
    (the lock file's change time, from the clock the file times of every later write come
    from)."""

    def __init__(self, fd: int, *, clean: bool, claimed_ns: int) -> None:
        self._fd: int | None = fd
        self.clean = clean
        self.claimed_ns = claimed_ns
        self.checked = clean

    def release(self, *, clean: bool = False) -> None:
        """Let the workspace go (the holder's details are cleared first); idempotent.

        ``clean``: every write of this daemon there has ended; the mark is left only if the
        store was checked too, else the next holder walks it."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            if clean and self.checked:
                os.pwrite(fd, _STOPPED, 0)
        os.close(fd)


def _stopped(contents: bytes) -> bool:
    """Whether a lock file's ``contents`` say its last holder let it go cleanly."""
    try:
        data = orjson.loads(contents)
    except orjson.JSONDecodeError:
        return False
    return isinstance(data, dict) and data.get("stopped") is True


def _taken(path: str, holder: bytes) -> WorkspaceTaken:
    """The error for ``path``, locked by the daemon ``holder`` (its lock file's contents)
    describes; it may not have written them yet."""
    try:
        data = orjson.loads(holder)
        pid, socket = data["pid"], data["socket"]
        if not isinstance(pid, int) or not isinstance(socket, str):
            raise TypeError
    except (orjson.JSONDecodeError, TypeError, KeyError):
        return WorkspaceTaken(f"workspace {path} is served by another simpleaided")
    return WorkspaceTaken(
        f"workspace {path} is served by another simpleaided (pid {pid}, socket {socket})",
        {"pid": pid, "socket": socket},
    )


# How long a group's answer is kept (``_personal_group``): a check runs on every operation
# on a workspace its group may write in, and a lookup may go to LDAP; a member added later
# is seen within this time. Only answers are kept, never a failed lookup.
GROUP_CACHE_SECONDS = 60.0
_groups: dict[tuple[int, int], tuple[float, bool]] = {}


def _personal_group(uid: int, gid: int) -> bool | None:
    """Whether group ``gid`` is user ``uid``'s own: the user's primary group, of the user's
    name, with no other member (the "user private group" that makes a umask of 002 usual);
    ``None`` if the user or the group cannot be looked up (none such, or the directory
    service not answering: tried again next time)."""
    now = time.monotonic()
    kept = _groups.get((uid, gid))
    if kept is not None and now < kept[0]:
        return kept[1]
    try:
        user = pwd.getpwuid(uid)
        group = grp.getgrgid(gid)
    except (KeyError, OSError):
        return None
    mine = (
        user.pw_gid == gid and group.gr_name == user.pw_name and set(group.gr_mem) <= {user.pw_name}
    )
    if len(_groups) >= 64:
        _groups.clear()
    _groups[(uid, gid)] = (now + GROUP_CACHE_SECONDS, mine)
    return mine


def check_written_by_you_alone(path: str, st: os.stat_result) -> None:
    """Refuse workspace folder ``path`` (``st``: its stat) if another user may write in it:
    they could put a ``.simpleaide/`` of their own there first, or move ours away. A folder
    writable by its group is fine when that group is the user's own."""
    mode = st.st_mode
    if mode & stat.S_IWOTH:
        if mode & stat.S_ISVTX:  # /tmp and its like
            raise UnsafePath(
                f"refusing workspace {path}: it is a shared folder everyone may write in, "
                f"where others could tamper with its {STORE_DIR}/; choose a project folder "
                "of your own (one made inside it will do)"
            )
        raise UnsafePath(
            f"refusing workspace {path}: everyone may write in it, so others could tamper "
            f"with its {STORE_DIR}/; make it yours alone (chmod o-w {shlex.quote(path)}) or "
            "choose another folder"
        )
    personal = _personal_group(os.getuid(), st.st_gid) if mode & stat.S_IWGRP else True
    if personal is None:
        raise UnsafePath(
            f"refusing workspace {path}: its group may write in it, and group {st.st_gid} "
            "cannot be looked up to tell whether it is yours alone; make it yours alone "
            f"(chmod g-w {shlex.quote(path)}) or try again once the group can be looked up"
        )
    if not personal:
        try:
            group = repr(grp.getgrgid(st.st_gid).gr_name)
        except KeyError:
            group = str(st.st_gid)
        raise UnsafePath(
            f"refusing workspace {path}: the other members of group {group} may write in "
            f"it, so they could tamper with its {STORE_DIR}/; make it yours alone "
            f"(chmod g-w {shlex.quote(path)}) or choose another folder"
        )


def _check_root(path: str, st: os.stat_result) -> None:
    """Refuse workspace folder ``path`` (``st``: its stat) unless it is yours alone."""
    if st.st_uid != os.getuid():
        raise UnsafePath(
            f"refusing workspace {path}: it belongs to uid {st.st_uid}, not to you "
            "(choose a folder of your own)"
        )
    check_written_by_you_alone(path, st)


def check_workspace_root(path: str) -> None:
    """Refuse folder ``path`` by the rules a workspace keeps (not ``/``, nor in /proc, /sys
    or /dev, once resolved; yours alone), for a part of the daemon that makes a file in its
    ``.simpleaide/`` without serving it (the database's default file). A folder that cannot
    be opened is left to the caller, which says so its own way. Blocks on the disk."""
    names.check_workspace_folder(os.path.realpath(path))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    with safefs.opened(fd):
        _check_root(path, os.fstat(fd))


class WorkspaceStore:
    """The run store of one workspace (an absolute, canonical folder path)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def _open_top(self, *, create: bool) -> int:
        """Open ``.simpleaide`` (made 0700 if ``create``), checking the workspace can be one
        (not ``/``, nor in /proc, /sys or /dev), is ours, and is ours alone to write in."""
        names.check_workspace_folder(self.path)
        try:
            root = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFound(
                f"workspace {self.path} does not exist (create the folder first: "
                f"mkdir -p {shlex.quote(self.path)})"
            ) from None
        except NotADirectoryError:
            raise NotFound(
                f"workspace {self.path} is not a folder (a workspace is the folder that holds "
                f"{STORE_DIR}/: give your project's folder)"
            ) from None
        with safefs.opened(root):
            _check_root(self.path, os.fstat(root))
            return safefs.open_dir(root, STORE_DIR, f"{self.path}/{STORE_DIR}", create=create)

    def _open_runs(self, *, create: bool) -> int:
        with safefs.opened(self._open_top(create=create)) as top:
            return safefs.open_dir(
                top, RUNS_DIR, f"{self.path}/{STORE_DIR}/{RUNS_DIR}", create=create
            )

    def init(self) -> None:
        """Create ``.simpleaide/runs`` (0700) if missing, and check the tree is safe."""
        os.close(self._open_runs(create=True))

    def claim(self, socket: str) -> WorkspaceLock:
        """Create the store if missing (as ``init``) and make the workspace this daemon's
        while the returned lock is held: ``flock`` on ``.simpleaide/daemon.lock``, into
        which the daemon's pid and ``socket`` are written for another daemon to name.

        ``WorkspaceTaken`` if another daemon holds it. The file is never removed: a daemon
        that had opened it could otherwise lock a file no longer there, beside a new one.
        The lock says whether the previous holder let the workspace go cleanly.

        A folder that cannot hold the store (read-only, not ours to write, /proc) is an
        ``InvalidInput`` that says why and what to do."""
        where = f"{self.path}/{STORE_DIR}/{LOCK_FILE}"
        try:
            with safefs.opened(self._open_top(create=True)) as top:
                os.close(
                    safefs.open_dir(
                        top, RUNS_DIR, f"{self.path}/{STORE_DIR}/{RUNS_DIR}", create=True
                    )
                )
                fd = safefs.open_regular(top, LOCK_FILE, where, write=True)
        except OSError as exc:
            raise safefs.unusable_workspace(self.path, exc) from None
        try:
            safefs.check_owned(os.fstat(fd), where)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise _taken(self.path, os.pread(fd, 4096, 0)) from None
            clean = _stopped(os.pread(fd, 4096, 0))
            holder = orjson.dumps({"pid": os.getpid(), "socket": socket})
            os.ftruncate(fd, 0)
            os.pwrite(fd, holder + b"\n", 0)
            if clean:
                os.fsync(fd)  # the mark is gone for good: a crash from now on is noticed
            claimed_ns = os.fstat(fd).st_ctime_ns
        except BaseException:
            os.close(fd)
            raise
        return WorkspaceLock(fd, clean=clean, claimed_ns=claimed_ns)

    @contextlib.contextmanager
    def open_run(self, run_id: str) -> Iterator[RunHandle]:
        """Open run ``run_id``'s folder; raises ``NotFound`` or ``UnsafePath``."""
        names.check_run_id(run_id)
        with safefs.opened(self._open_runs(create=False)) as runs:
            run_fd = safefs.open_dir(runs, run_id, f"run {run_id}")
            with safefs.opened(run_fd):
                yield RunHandle(self, run_id, run_fd)

    def create_run(self, run: RunMetadata) -> int:
        """Create the run's folder and ``metadata.json``; ``Conflict`` if the id exists.

        The folder is built under a hidden ``.creating-<hex>`` name, then renamed to the run's
        id: a crash leaves the run whole or absent, never a folder without its record (``tidy``
        removes a half-built one). Returns the signature of the ``metadata.json`` written."""
        with safefs.opened(self._open_runs(create=True)) as runs:
            if safefs.lstat_at(runs, run.id) is not None:
                raise Conflict(f"run {run.id} already exists")
            building = safefs.temp_name(CREATING_PREFIX)
            try:
                with safefs.opened(safefs.make_dir(runs, building, f"run {run.id}")) as run_fd:
                    written = safefs.atomic_write(run_fd, RUN_FILE, _encode(run))
                try:
                    os.rename(building, run.id, src_dir_fd=runs, dst_dir_fd=runs)
                except OSError as exc:
                    if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                        raise Conflict(f"run {run.id} already exists") from None
                    raise
            except BaseException:
                with contextlib.suppress(OSError):
                    shutil.rmtree(building, dir_fd=runs)
                raise
            os.fsync(runs)
        return written

    def tidy(self, before_ns: int, finished: frozenset[str] | None = None) -> Tidied:
        """Remove what a daemon stopped mid-write left in this store, changed before
        ``before_ns`` (epoch ns), so never a write of this daemon in progress.

        In ``runs/``: half-built runs (``.creating-<hex>``), half-deleted folders
        (``.deleting-<hex>``), temp files (``.tmp-<hex>``). With ``finished`` (the ids of runs
        known finished), also inside every run folder (half-built steps too), step folder and
        ``artifacts/``, and a run folder holding nothing else (begun by an older daemon and
        never written); and the finished runs with an open step are reported, for the caller
        to close under their lock. Only those exact names are touched: a user's
        ``.tmp-notes`` stays.
        """
        tidied = Tidied()
        try:
            runs_fd = self._open_runs(create=False)
        except NotFound:
            return tidied
        with safefs.opened(runs_fd) as runs:
            for entry in safefs.list_dir(runs):
                name = entry.name
                if _is_leftover(name) or CREATING_RE.fullmatch(name):
                    tidied.remove(runs, name, name, before_ns)
                elif finished is not None and names.RUN_ID_RE.fullmatch(name):
                    if entry.is_dir(follow_symlinks=False):
                        try:
                            self._tidy_run(runs, name, before_ns, name in finished, tidied)
                        except OSError as exc:  # one unreadable run does not stop the walk
                            tidied.stuck.append(f"{name}: {exc.strerror or exc}")
            if tidied.removed:
                os.fsync(runs)
        return tidied

    def _tidy_run(
        self, runs: int, run_id: str, before_ns: int, finished: bool, tidied: Tidied
    ) -> None:
        try:
            run_fd = safefs.open_dir(runs, run_id, f"run {run_id}")
        except (NotFound, UnsafePath, OSError):
            return  # listed as corrupt by the scan, with the reason
        with safefs.opened(run_fd):
            older = os.fstat(run_fd).st_ctime_ns < before_ns
            kept = 0
            for entry in safefs.list_dir(run_fd):
                if _is_leftover(entry.name) or CREATING_RE.fullmatch(entry.name):
                    if tidied.remove(run_fd, entry.name, f"{run_id}/{entry.name}", before_ns):
                        continue
                kept += 1
                if names.parse_step_dir(entry.name) is None:
                    continue
                if not entry.is_dir(follow_symlinks=False):
                    continue
                where = f"{run_id}/{entry.name}"
                step_open = self._tidy_step(run_fd, entry.name, where, before_ns, tidied)
                if finished and step_open and run_id not in tidied.unclosed:
                    tidied.unclosed.append(run_id)
        if kept == 0 and older:
            # Nothing but our temp files, or nothing at all: a run an older daemon began.
            with contextlib.suppress(OSError):  # not empty any more: someone writes there
                os.rmdir(run_id, dir_fd=runs)
                tidied.removed.append(run_id)
                tidied.half_built.append(run_id)

    @staticmethod
    def _tidy_step(run_fd: int, step_dir: str, where: str, before_ns: int, tidied: Tidied) -> bool:
        """Tidy one step folder; returns whether its record says the step is open."""
        try:
            step_fd = safefs.open_dir(run_fd, step_dir, where)
        except (NotFound, UnsafePath, OSError):
            return False
        with safefs.opened(step_fd):
            _remove_temp_files(step_fd, where, before_ns, tidied)
            try:
                # Only the status matters here: the repair reads the record in full, under
                # the run's lock.
                record = orjson.loads(safefs.read_file(step_fd, STEP_FILE, where, MAX_RECORD_BYTES))
                step_open = isinstance(record, dict) and record.get("status") in states.OPEN_STEP
            except (NotFound, UnsafePath, OSError, orjson.JSONDecodeError):
                step_open = False
            try:
                art = safefs.open_dir(step_fd, ARTIFACTS_DIR, f"{where}/{ARTIFACTS_DIR}")
            except (NotFound, UnsafePath, OSError):
                return step_open
            with safefs.opened(art):
                _remove_temp_files(art, f"{where}/{ARTIFACTS_DIR}", before_ns, tidied)
                tidied.removed.extend(
                    remove_abandoned_uploads(art, f"{where}/{ARTIFACTS_DIR}", time.time_ns())
                )
        return step_open

    def delete_run(self, run_id: str) -> None:
        """Delete the run's folder and everything in it."""
        names.check_run_id(run_id)
        with safefs.opened(self._open_runs(create=False)) as runs:
            if safefs.lstat_at(runs, run_id) is None:
                raise NotFound(f"run {run_id} does not exist")
            safefs.remove_tree(runs, run_id)  # a planted symlink: only the link goes

    def scan(self) -> list[Scanned]:
        """Read every run's metadata: one summary each, corrupt ones with their reason."""
        try:
            runs = self._open_runs(create=False)
        except NotFound:
            return []
        out: list[Scanned] = []
        with safefs.opened(runs):
            for entry in safefs.list_dir(runs):
                if names.RUN_ID_RE.fullmatch(entry.name):
                    kind = "link" if entry.is_symlink() else "dir" if entry.is_dir() else "file"
                    out.append(self._summarize(runs, entry.name, kind))
        return out

    def signature(self, run_id: str) -> int | None:
        """The signature of one run's ``metadata.json``, or ``None`` if it cannot be stat'ed."""
        return metadata_signature(self.path, names.check_run_id(run_id))

    def signatures(self) -> dict[str, int | None]:
        """Every run folder's id and the signature of its ``metadata.json`` (``None`` when it
        cannot be stat'ed, or the entry is not a real folder): a stat each, no parsing."""
        try:
            runs = self._open_runs(create=False)
        except NotFound:
            return {}
        out: dict[str, int | None] = {}
        with safefs.opened(runs):
            for entry in safefs.list_dir(runs):
                if not names.RUN_ID_RE.fullmatch(entry.name):
                    continue
                out[entry.name] = None
                if entry.is_dir(follow_symlinks=False):
                    try:
                        st = os.stat(f"{entry.name}/{RUN_FILE}", dir_fd=runs, follow_symlinks=False)
                    except OSError:
                        continue
                    out[entry.name] = safefs.signature(st)
        return out

    def summarize(self, run_id: str) -> Scanned | None:
        """Re-read one run for the index; ``None`` if its folder (or the store) is gone."""
        names.check_run_id(run_id)
        try:
            runs_fd = self._open_runs(create=False)
        except NotFound:
            return None
        with safefs.opened(runs_fd) as runs:
            st = safefs.lstat_at(runs, run_id)
            if st is None:
                return None
            kind = (
                "link"
                if stat.S_ISLNK(st.st_mode)
                else "dir"
                if stat.S_ISDIR(st.st_mode)
                else "file"
            )
            return self._summarize(runs, run_id, kind)

    def _summarize(self, runs: int, run_id: str, kind: str) -> Scanned:
        if kind == "link":
            return RunSummary.corrupt(
                run_id, self.path, "the run folder is a symlink; refused"
            ), None
        if kind != "dir":
            return RunSummary.corrupt(run_id, self.path, "not a folder"), None
        handle: RunHandle | None = None
        try:
            with safefs.opened(safefs.open_dir(runs, run_id, f"run {run_id}")) as fd:
                handle = RunHandle(self, run_id, fd)
                return RunSummary.of(handle.read(), self.path), handle.signature
        except CorruptRecord as exc:
            signature = handle.signature if handle is not None else None
            return RunSummary.corrupt(run_id, self.path, exc.reason), signature
        except (UnsafePath, NotFound) as exc:
            return RunSummary.corrupt(run_id, self.path, exc.message), None
        except OSError as exc:  # e.g. a folder made unreadable behind our back
            return RunSummary.corrupt(run_id, self.path, f"cannot be read: {exc.strerror}"), None


# Bytes that JSON writes as they are (orjson keeps UTF-8 and DEL as is); every other one is
# escaped: as two bytes (``\n``, ``\"``...) or as six (``\u0001``).
_PLAIN_IN_JSON = bytes(b for b in range(256) if b >= 0x20 and b not in b'"\\')
_SHORT_ESCAPES = b'"\\\b\f\n\r\t'


def json_text_size(data: bytes) -> int:
    """The bytes UTF-8 ``data`` takes as a JSON string, quotes aside; in C speed."""
    escaped = data.translate(None, _PLAIN_IN_JSON)
    return len(data) + len(escaped) + 4 * len(escaped.translate(None, _SHORT_ESCAPES))


def _text_prefix(data: bytes, budget: int) -> int:
    """The longest prefix of UTF-8 ``data`` whose JSON takes at most ``budget`` bytes, cut
    at a character boundary."""
    end, used, step = 0, 0, 1 << 16
    while step:
        while end + step <= len(data):
            cost = json_text_size(data[end : end + step])
            if used + cost > budget:
                break
            used += cost
            end += step
        step //= 2
    while 0 < end < len(data) and data[end] & 0xC0 == 0x80:
        end -= 1  # never half a character: the client goes on from here
    return end


def encode_artifact(data: bytes, encoding: str | None, budget: int) -> tuple[dict[str, Any], int]:
    """An artifact body for the wire, and how many of ``data``'s bytes it holds.

    UTF-8 text when it is text and its JSON takes at most ``budget`` bytes (JSON escapes
    can make text six times larger), else base64. With ``encoding: "text"`` it is text or
    an error: a range is cut to fit the budget and never ends inside a character.
    """
    if encoding != "base64":
        text: str | None = None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            if encoding == "text":
                # A range that ends inside a character: the character waits for the next one.
                if exc.reason == "unexpected end of data" and exc.start > 0:
                    data = data[: exc.start]
                    text = data.decode("utf-8")
                else:
                    raise InvalidInput("the artifact is not UTF-8 text; ask for base64") from None
        if text is not None:
            if json_text_size(data) <= budget:
                return {"encoding": "text", "text": text}, len(data)
            if encoding == "text":
                end = _text_prefix(data, budget)
                if end == 0:
                    raise InvalidInput("the text does not fit one answer; ask for base64")
                return {"encoding": "text", "text": data[:end].decode("utf-8")}, end
    return {"encoding": "base64", "base64": base64.b64encode(data).decode("ascii")}, len(data)


def artifact_info(run_id: str, number: int, entry: ArtifactEntry) -> dict[str, Any]:
    """An artifact's listing row for the wire."""
    return {
        "runId": run_id,
        "step": number,
        "name": entry.name,
        "size": entry.size,
        "modifiedAt": clock.format_ms(entry.modified_ms),
        "invalidName": entry.invalid_name,
        "staged": entry.staged,
        **({"uploadId": entry.upload_id} if entry.upload_id else {}),
        **({"problem": entry.problem} if entry.problem else {}),
    }
