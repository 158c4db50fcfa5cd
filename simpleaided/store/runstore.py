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
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from simpleaided.domain import clock, names
from simpleaided.domain.errors import (
    Conflict,
    InvalidInput,
    LimitExceeded,
    NotFound,
    UnsafePath,
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


Scanned = tuple[RunSummary, int | None]
"""A run's summary and the signature of the ``metadata.json`` it came from (if readable)."""


def runs_path(workspace: str) -> str:
    """The path of a workspace's ``runs/`` folder."""
    return os.path.join(workspace, STORE_DIR, RUNS_DIR)


class CorruptRecord(Exception):
    """A metadata file that cannot be read or parsed; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _describe(exc: ValidationError) -> str:
    first = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "document"
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


def _encode(record: RunMetadata | StepMetadata) -> bytes:
    return orjson.dumps(record.to_json_dict(), option=orjson.OPT_INDENT_2) + b"\n"


@dataclass(frozen=True, slots=True)
class ArtifactEntry:
    """An artifact file's name, size and modification time."""

    name: str
    size: int
    modified_ms: int


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
        with safefs.opened(safefs.make_dir(self.fd, step.dir_name, where)) as step_fd:
            os.close(safefs.make_dir(step_fd, ARTIFACTS_DIR, f"{where}/{ARTIFACTS_DIR}"))
            safefs.atomic_write(step_fd, STEP_FILE, _encode(step))
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
            safefs.atomic_write(art, name, data)
            st = os.stat(name, dir_fd=art, follow_symlinks=False)
        return ArtifactEntry(name, st.st_size, st.st_mtime_ns // 1_000_000)

    def get_artifact(self, number: int, name: str, max_bytes: int) -> bytes:
        """The bytes of artifact ``name`` of step ``number``."""
        names.check_artifact_name(name)
        with self._artifacts_dir(number) as art:
            try:
                return safefs.read_file(art, name, f"artifact {name!r}", max_bytes)
            except OSError as exc:
                if exc.errno == errno.EFBIG:
                    raise LimitExceeded(
                        f"artifact {name!r} is larger than the {max_bytes}-byte message limit"
                    ) from None
                raise

    def list_artifacts(self, number: int) -> list[ArtifactEntry]:
        """The regular files in step ``number``'s ``artifacts/``, by name."""
        with self._artifacts_dir(number) as art:
            out = []
            for entry in safefs.list_dir(art):
                if entry.name.startswith("."):
                    continue  # temporary files of an atomic write in progress
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISREG(st.st_mode):
                    out.append(ArtifactEntry(entry.name, st.st_size, st.st_mtime_ns // 1_000_000))
        return sorted(out, key=lambda a: a.name)


class WorkspaceStore:
    """The run store of one workspace (an absolute, canonical folder path)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def _open_runs(self, *, create: bool) -> int:
        try:
            root = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFound(f"workspace {self.path} does not exist") from None
        except NotADirectoryError:
            raise NotFound(f"workspace {self.path} is not a folder") from None
        with safefs.opened(root):
            st = os.fstat(root)
            if st.st_uid != os.getuid():
                raise UnsafePath(f"refusing workspace {self.path}: owned by uid {st.st_uid}")
            top = safefs.open_dir(root, STORE_DIR, f"{self.path}/{STORE_DIR}", create=create)
            with safefs.opened(top):
                return safefs.open_dir(
                    top, RUNS_DIR, f"{self.path}/{STORE_DIR}/{RUNS_DIR}", create=create
                )

    def init(self) -> None:
        """Create ``.simpleaide/runs`` (0700) if missing, and check the tree is safe."""
        os.close(self._open_runs(create=True))

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

        Returns the signature of the ``metadata.json`` written."""
        with safefs.opened(self._open_runs(create=True)) as runs:
            try:
                run_fd = safefs.make_dir(runs, run.id, f"run {run.id}")
            except FileExistsError:
                raise Conflict(f"run {run.id} already exists") from None
            with safefs.opened(run_fd):
                written = safefs.atomic_write(run_fd, RUN_FILE, _encode(run))
            os.fsync(runs)
        return written

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
                if names.RUN_ID_RE.match(entry.name):
                    kind = "link" if entry.is_symlink() else "dir" if entry.is_dir() else "file"
                    out.append(self._summarize(runs, entry.name, kind))
        return out

    def signature(self, run_id: str) -> int | None:
        """The signature of one run's ``metadata.json``, or ``None`` if it cannot be stat'ed."""
        path = os.path.join(runs_path(self.path), names.check_run_id(run_id), RUN_FILE)
        try:
            return safefs.signature(os.stat(path, follow_symlinks=False))
        except OSError:
            return None

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
                if not names.RUN_ID_RE.match(entry.name):
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


def encode_artifact(data: bytes, encoding: str | None) -> dict[str, Any]:
    """An artifact body for the wire: UTF-8 text when it is text (or asked), else base64."""
    if encoding != "base64":
        try:
            return {"encoding": "text", "text": data.decode("utf-8")}
        except UnicodeDecodeError:
            if encoding == "text":
                raise InvalidInput("the artifact is not UTF-8 text; ask for base64") from None
    return {"encoding": "base64", "base64": base64.b64encode(data).decode("ascii")}


def artifact_info(run_id: str, number: int, entry: ArtifactEntry) -> dict[str, Any]:
    """An artifact's listing row for the wire."""
    return {
        "runId": run_id,
        "step": number,
        "name": entry.name,
        "size": entry.size,
        "modifiedAt": clock.format_ms(entry.modified_ms),
    }
