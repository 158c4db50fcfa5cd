"""Abandoned runs: a run whose owner process has exited is ended, never left running forever.

``runs.create`` may name the process that drives the run (``ownerPid``, a pid as the daemon
sees it; the daemon records its start time too, ``ownerStartTime``, so that a later process
given the same pid is not taken for the owner). At start-up, before the first answer, and
then every few seconds, each pending or running run that names an owner is checked; when
the owner is gone the run is abandoned through the run service (running → failed, pending →
cancelled) with ``errorMessage: "interrupted: owner process <pid> exited"``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskStatus

from simpleaided.domain.errors import SimpleaideError

if TYPE_CHECKING:  # the run service imports ``process_gone`` from here
    from simpleaided.services.runs import RunService

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 5.0


def _stat_fields(pid: int) -> list[bytes] | None:
    """The fields of ``/proc/<pid>/stat`` from the third (the state) on, or ``None`` when it
    cannot be read (no ``/proc`` here, or the process exited just now)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # The fields follow the parenthesised command name, which may itself hold ") ".
    return stat[stat.rfind(b")") + 2 :].split()


def process_gone(pid: int) -> bool:
    """Whether process ``pid`` has exited; a zombie (exited, not yet reaped) counts as gone."""
    if pid <= 0:
        raise ValueError(f"not a process id: {pid}")  # kill(0) or kill(-n) means a group
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # it exists, under another user
    fields = _stat_fields(pid)
    return fields is not None and fields[:1] == [b"Z"]


def process_start_time(pid: int) -> int | None:
    """When process ``pid`` started: field 22 of ``/proc/<pid>/stat``, in clock ticks after
    boot; ``None`` where it cannot be read. With the pid, it names one process for good:
    a pid is reused only by a process that starts later."""
    fields = _stat_fields(pid)
    try:
        return int(fields[19]) if fields is not None else None
    except (IndexError, ValueError):
        return None


def owner_gone(pid: int, start_time: int | None) -> bool:
    """Whether the owner process ``pid``, started at ``start_time`` (``None``: not recorded,
    the pid alone decides), has exited, even if a later process now holds its pid."""
    if process_gone(pid):
        return True
    if start_time is None:
        return False
    now = process_start_time(pid)
    return now is not None and now != start_time


def interrupted_message(pid: int) -> str:
    """The ``errorMessage`` of a run abandoned by process ``pid``."""
    return f"interrupted: owner process {pid} exited"


class OwnerWatch:
    """Checks the owners of active runs, at start-up and every ``interval`` seconds."""

    def __init__(
        self,
        runs: RunService,
        *,
        interval: float = DEFAULT_INTERVAL,
        gone: Callable[[int, int | None], bool] = owner_gone,
    ) -> None:
        self.runs = runs
        self.interval = interval
        self._gone = gone
        self._reported: set[str] = set()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Check once, report started, then check every ``interval`` seconds until cancelled."""
        await self.check()
        task_status.started()
        while True:
            await anyio.sleep(self.interval)
            await self.check()

    async def check(self) -> list[str]:
        """Abandon every pending or running run whose owner is gone; returns their ids."""
        abandoned: list[str] = []
        gone: dict[tuple[int, int | None], bool] = {}  # several runs may share one owner
        for run_id, pid, start_time in self.runs.index.owned():
            owner = (pid, start_time)
            if owner not in gone:
                gone[owner] = self._gone(pid, start_time)
            if not gone[owner]:
                continue
            try:
                if await self.runs.abandon_run(run_id, pid, interrupted_message(pid)):
                    abandoned.append(run_id)
            except SimpleaideError as exc:
                # Deleted or made corrupt behind our back: said once, not every interval.
                if run_id not in self._reported:
                    self._reported.add(run_id)
                    log.warning("run %s: its owner %d exited, but: %s", run_id, pid, exc)
            except Exception:
                # Never let one bad run stop the checks (or the daemon).
                if run_id not in self._reported:
                    self._reported.add(run_id)
                    log.exception("run %s: cannot abandon it", run_id)
        return abandoned
