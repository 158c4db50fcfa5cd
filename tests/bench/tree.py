"""Synthetic run stores for the benchmarks, and the naive status scan the daemon replaces.

A tree of ``n`` runs is written directly (no daemon): valid format-v1 records, camelCase keys,
0700 folders and 0600 files, run ids strictly increasing with their index. Every tenth run has
two step folders (``step.json`` and ``artifacts/``), so a watcher that watches step or artifact
folders shows up in the watch count. Trees are cached between benchmark runs, keyed by size.

The records are written here rather than through ``simpleaided``: the benchmarks treat the
daemon as a black box, as an external tool editing the store would.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

FORMAT_KEY = "v1"  # bump when the generated tree changes, to invalidate cached trees
BASE_MS = 1_735_689_600_000  # 2025-01-01T00:00:00.000Z
SPACING_MS = 60_000  # one run a minute: 100k runs span ~69 days
RUN_ID_RE = re.compile(r"^\d{8}T\d{9}Z-[0-9a-f]{8}$")
STEPS_EVERY = 10  # every tenth run has two step folders
TMP_PREFIX = ".tmp-bench-"


def iso_ms(epoch_ms: int) -> str:
    """``2025-01-01T00:00:00.000Z`` for epoch milliseconds, as the store writes timestamps."""
    dt = datetime.fromtimestamp(epoch_ms // 1000, UTC)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{epoch_ms % 1000:03d}Z"


def started_ms(i: int) -> int:
    """When run ``i`` started (runs are one ``SPACING_MS`` apart, plus a few ms)."""
    return BASE_MS + i * SPACING_MS + i % 997


def run_id(i: int) -> str:
    """The id of run ``i``: its start time, then 32 pseudo-random bits."""
    ms = started_ms(i)
    dt = datetime.fromtimestamp(ms // 1000, UTC)
    return f"{dt:%Y%m%dT%H%M%S}{ms % 1000:03d}Z-{(i * 2_654_435_761 + 12345) % 2**32:08x}"


def initial_status(i: int, n: int) -> str:
    """The status run ``i`` of ``n`` is generated with: the newest two are running."""
    if i >= n - 2:
        return "running"
    if i % 200 == 11:
        return "pending"
    if i % 50 == 7:
        return "failed"
    if i % 97 == 3:
        return "cancelled"
    return "completed"


def step_count(i: int, status: str) -> int:
    """How many step folders run ``i`` has (pending runs have none)."""
    return 2 if i % STEPS_EVERY == 0 and status != "pending" else 0


def run_record(i: int, status: str, updated_ms: int | None = None, *, n: int) -> bytes:
    """``metadata.json`` of run ``i`` with ``status``, as the store writes it."""
    start = started_ms(i)
    record: dict[str, Any] = {
        "schemaVersion": 1,
        "id": run_id(i),
        "title": f"benchmark run {i}",
        "status": status,
        "startedAt": iso_ms(start),
    }
    done = start + 30_000 + (i % 17) * 1000
    if status in ("completed", "failed", "cancelled"):
        record["completedAt"] = iso_ms(done)
    record["updatedAt"] = iso_ms(updated_ms if updated_ms is not None else done)
    if status == "failed":
        record["errorMessage"] = f"step 02_code failed: benchmark failure {i}"
    record["stepCount"] = step_count(i, initial_status(i, n))
    return orjson.dumps(record, option=orjson.OPT_INDENT_2) + b"\n"


def _step_record(i: int, number: int, name: str, run_status: str) -> bytes:
    start = started_ms(i) + number * 1000
    status = "completed"
    if number == 2 and run_status in ("running", "failed"):
        status = run_status
    elif number == 2 and run_status == "cancelled":
        status = "skipped"
    record: dict[str, Any] = {"number": number, "name": name, "status": status}
    record["startedAt"] = iso_ms(start)
    if status != "running":
        record["completedAt"] = iso_ms(start + 500)
    if status == "failed":
        record["errorMessage"] = "benchmark failure"
    return orjson.dumps(record, option=orjson.OPT_INDENT_2) + b"\n"


def _write_new(name: str, data: bytes, dir_fd: int) -> None:
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def write_runs(runs_dir: Path, n: int) -> None:
    """Write runs ``0..n-1`` into the existing, empty ``runs_dir`` (umask-independent modes)."""
    old_umask = os.umask(0o077)
    runs_fd = os.open(runs_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for i in range(n):
            rid = run_id(i)
            status = initial_status(i, n)
            os.mkdir(rid, 0o700, dir_fd=runs_fd)
            run_fd = os.open(rid, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=runs_fd)
            try:
                _write_new("metadata.json", run_record(i, status, n=n), run_fd)
                for number in range(1, step_count(i, status) + 1):
                    name = ("plan", "code")[number - 1]
                    folder = f"{number:02d}_{name}"
                    os.mkdir(folder, 0o700, dir_fd=run_fd)
                    os.mkdir(f"{folder}/artifacts", 0o700, dir_fd=run_fd)
                    _write_new(f"{folder}/step.json", _step_record(i, number, name, status), run_fd)
                    _write_new(f"{folder}/artifacts/{name}.md", b"# benchmark\n", run_fd)
            finally:
                os.close(run_fd)
    finally:
        os.close(runs_fd)
        os.umask(old_umask)


@dataclass(frozen=True)
class Tree:
    """A generated workspace holding ``n`` runs."""

    n: int
    workspace: Path
    generated_s: float | None  # ``None``: taken from the cache

    @property
    def runs_dir(self) -> Path:
        """``<workspace>/.simpleaide/runs``."""
        return self.workspace / ".simpleaide" / "runs"

    @property
    def latest(self) -> int:
        """The index of the most recently started run (``-1`` when empty)."""
        return self.n - 1


def default_cache_root() -> Path:
    """Where generated trees are kept between benchmark runs."""
    return Path(os.environ.get("TMPDIR", "/tmp")) / f"simpleaide-bench-{os.getuid()}"


def ensure_tree(cache_root: Path, n: int, *, reuse: bool = True) -> Tree:
    """The cached tree of ``n`` runs, generated first if missing (or if ``reuse`` is false)."""
    cache_root.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(cache_root, 0o700)
    home = cache_root / f"tree-{FORMAT_KEY}-{n}"
    marker = home / "complete"
    if reuse and marker.exists():
        return Tree(n, home / "ws", None)
    shutil.rmtree(home, ignore_errors=True)
    partial = cache_root / f"tree-{FORMAT_KEY}-{n}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    began = time.perf_counter()
    runs = partial / "ws" / ".simpleaide" / "runs"
    for folder in (partial, partial / "ws", runs.parent, runs):
        folder.mkdir(mode=0o700)
        os.chmod(folder, 0o700)
    write_runs(runs, n)
    (partial / "complete").write_text(f"{n}\n")
    os.rename(partial, home)
    return Tree(n, home / "ws", time.perf_counter() - began)


def rewrite_run(tree: Tree, i: int, status: str) -> tuple[int, int]:
    """Replace run ``i``'s ``metadata.json`` with ``os.replace`` of a temporary file, as an
    external tool would (no fsync: the figure is the daemon's latency, not the disk's).
    Returns ``time.perf_counter_ns()`` just before and just after the ``os.replace``."""
    folder = tree.runs_dir / run_id(i)
    data = run_record(i, status, time.time_ns() // 1_000_000, n=tree.n)
    tmp = folder / f"{TMP_PREFIX}{os.getpid()}-{time.monotonic_ns()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    before = time.perf_counter_ns()
    os.replace(tmp, folder / "metadata.json")
    return before, time.perf_counter_ns()


def restore_run(tree: Tree, i: int) -> None:
    """Put run ``i`` back to its generated status (the cached tree is reused later)."""
    rewrite_run(tree, i, initial_status(i, tree.n))


def naive_status(runs_dir: Path) -> dict[str, Any]:
    """What ``status.get``'s runs section needs, computed the way the daemon avoids: list the
    runs folder and read and parse every ``metadata.json`` (with orjson, no validation, so
    this baseline is faster than any real per-query scan would be)."""
    counts: Counter[str] = Counter()
    latest: tuple[str, str] | None = None
    latest_record: dict[str, Any] | None = None
    with os.scandir(runs_dir) as entries:
        for entry in entries:
            if not RUN_ID_RE.fullmatch(entry.name):
                continue
            try:
                with open(os.path.join(entry.path, "metadata.json"), "rb") as f:
                    record = orjson.loads(f.read())
                status = record["status"]
                key = (record["startedAt"], record["id"])
            except (OSError, ValueError, KeyError, TypeError):
                counts["corrupt"] += 1
                continue
            counts[status] += 1
            if latest is None or key > latest:
                latest, latest_record = key, record
    return {
        "active": counts["running"],
        "pending": counts["pending"],
        "total": sum(counts.values()),
        "last": latest_record,
    }
