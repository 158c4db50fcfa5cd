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
from collections.abc import Callable

import anyio
from anyio.abc import TaskStatus

from simpleaided.domain.errors import SimpleaideError
from simpleaided.services.processes import owner_gone
from simpleaided.services.runs import RunService

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 5.0


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
