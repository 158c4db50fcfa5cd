"""Abandoned runs: a run whose owner process has exited is ended, never left running forever.

``runs.create`` may name the process that drives the run (``ownerPid``, a pid as the daemon
sees it). At start-up, before the first answer, and then every few seconds, each pending or
running run that names an owner is checked; when the owner is gone the run is abandoned
through the run service (running → failed, pending → cancelled) with
``errorMessage: "interrupted: owner process <pid> exited"``.
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
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False  # no /proc here, or it exited just now: the next check tells
    # The state follows the parenthesised command name, which may itself hold ") ".
    end = stat.rfind(b")")
    return stat[end + 2 : end + 3] == b"Z"


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
        gone: Callable[[int], bool] = process_gone,
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
        gone: dict[int, bool] = {}  # several runs may share one owner
        for run_id, pid in self.runs.index.owned():
            if pid not in gone:
                gone[pid] = self._gone(pid)
            if not gone[pid]:
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
