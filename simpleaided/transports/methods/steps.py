"""``steps.*``: add a run's steps, move them through their states, rerun from one."""

from __future__ import annotations

from typing import Any

from simpleaided.domain import api
from simpleaided.domain.models import StepStatus
from simpleaided.services.runs import RunService
from simpleaided.transports.methods.base import MethodList
from simpleaided.transports.rpc import Method


def step_methods(runs: RunService) -> list[Method]:
    """Every ``steps.*`` method."""
    methods = MethodList()
    add = methods.add

    @add("steps.create", api.CreateStepParams, api.StepChange, "Add the next step to a run.")
    async def steps_create(p: api.CreateStepParams, conn: Any) -> dict[str, Any]:
        return await runs.create_step(p.run_id, p.name, start=p.start)

    def step_move(name: str, target: StepStatus, summary: str) -> None:
        @add(name, api.StepRef, api.StepChange, summary)
        async def move(p: api.StepRef, conn: Any) -> dict[str, Any]:
            return await runs.transition_step(p.run_id, p.step, target)

    step_move("steps.start", StepStatus.RUNNING, "Start a pending step.")
    step_move("steps.complete", StepStatus.COMPLETED, "Complete a running step.")
    step_move("steps.skip", StepStatus.SKIPPED, "Skip a running step.")

    @add("steps.fail", api.FailStepParams, api.StepChange, "Fail a step (and its run, by default).")
    async def steps_fail(p: api.FailStepParams, conn: Any) -> dict[str, Any]:
        return await runs.transition_step(
            p.run_id,
            p.step,
            StepStatus.FAILED,
            error_message=p.error_message,
            fail_run=p.fail_run,
        )

    @add("steps.list", api.RunRef, list[api.StepView], "The steps of a run.")
    async def steps_list(p: api.RunRef, conn: Any) -> list[dict[str, Any]]:
        return await runs.list_steps(p.run_id)

    @add("steps.deleteFrom", api.DeleteStepsParams, api.RunView, "Rerun from a checkpoint.")
    async def steps_delete_from(p: api.DeleteStepsParams, conn: Any) -> dict[str, Any]:
        return await runs.delete_steps_from(p.run_id, p.from_step)

    return methods
