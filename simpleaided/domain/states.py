"""The state machine of runs and steps: every legal transition, and nothing else.

Run:  pending → running (a step is created or started); running → completed | failed |
      cancelled; pending → cancelled. Deleting steps from N puts any run back to pending.
      A run abandoned by its owner process fails if running, is cancelled if pending.
Step: pending → running → completed | failed | skipped.

A finished run never has an open (pending or running) step: ending a run closes them, a running
step failing with the run's reason and a pending one skipped (``close_step``). Completing a run
with an open step is refused unless forced, which closes them the same way.

Each function takes the current records and the time, and returns the new records; it raises
``InvalidTransition`` and changes nothing when the move is not allowed.
"""

from __future__ import annotations

from collections.abc import Sequence

from simpleaided.domain.errors import InvalidTransition, NotFound, status_phrase
from simpleaided.domain.models import RunMetadata, RunStatus, StepMetadata, StepStatus
from simpleaided.domain.names import MAX_STEPS, check_step_name

RUN_TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.PENDING: frozenset({RunStatus.RUNNING, RunStatus.CANCELLED}),
    RunStatus.RUNNING: frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED}),
    RunStatus.COMPLETED: frozenset(),
    RunStatus.FAILED: frozenset(),
    RunStatus.CANCELLED: frozenset(),
}

STEP_TRANSITIONS: dict[StepStatus, frozenset[StepStatus]] = {
    StepStatus.PENDING: frozenset({StepStatus.RUNNING}),
    StepStatus.RUNNING: frozenset({StepStatus.COMPLETED, StepStatus.FAILED, StepStatus.SKIPPED}),
    StepStatus.COMPLETED: frozenset(),
    StepStatus.FAILED: frozenset(),
    StepStatus.SKIPPED: frozenset(),
}

ACTIVE_RUN = frozenset({RunStatus.PENDING, RunStatus.RUNNING})
FINISHED_RUN = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED})
OPEN_STEP = frozenset({StepStatus.PENDING, StepStatus.RUNNING})

_CLOSING_REASONS = {
    RunStatus.FAILED: "run failed",
    RunStatus.CANCELLED: "run cancelled",
    RunStatus.COMPLETED: "run completed while the step was open",
}


def _run_label(run: RunMetadata) -> str:
    return f"run {run.id}"


def _step_label(run: RunMetadata, step: StepMetadata) -> str:
    return f"step {step.dir_name} of run {run.id}"


def _require_active_run(run: RunMetadata, requested: str) -> None:
    if run.status not in ACTIVE_RUN:
        raise InvalidTransition(
            _run_label(run), run.status, requested, "the run has finished; rerun it from a step"
        )


def _ensure_running(run: RunMetadata, now: str) -> RunMetadata:
    """The run, moved to running if it was pending (it has a step now)."""
    _require_active_run(run, RunStatus.RUNNING)
    if run.status is RunStatus.RUNNING:
        return run
    return run.model_copy(update={"status": RunStatus.RUNNING, "updated_at": now})


def finish_run(
    run: RunMetadata, target: RunStatus, now: str, error_message: str | None = None
) -> RunMetadata:
    """Complete, fail or cancel ``run``."""
    if target not in FINISHED_RUN:
        raise ValueError(f"finish_run() takes a final status, not {target}")
    if target not in RUN_TRANSITIONS[run.status]:
        raise InvalidTransition(_run_label(run), run.status, target)
    return run.model_copy(
        update={
            "status": target,
            "completed_at": now,
            "updated_at": now,
            "error_message": error_message if target is RunStatus.FAILED else None,
        }
    )


def abandon_run(run: RunMetadata, now: str, error_message: str) -> RunMetadata:
    """End a run whose driver is gone, keeping ``error_message``: a running run fails; a
    pending one, which may not fail (it never started), is cancelled."""
    target = RunStatus.FAILED if run.status is RunStatus.RUNNING else RunStatus.CANCELLED
    return finish_run(run, target, now).model_copy(update={"error_message": error_message})


def closing_reason(run: RunMetadata) -> str:
    """Why the open steps of the finished ``run`` are closed: its error message (a failure,
    an abandoned owner), else what ended it."""
    if run.status not in FINISHED_RUN:
        raise ValueError(f"run {run.id} has not finished: its steps are not closed")
    return run.error_message or _CLOSING_REASONS[run.status]


def close_step(step: StepMetadata, reason: str, now: str) -> StepMetadata:
    """An open step closed because its run ended: running fails with ``reason``, pending is
    skipped."""
    if step.status not in OPEN_STEP:
        raise ValueError(f"step {step.dir_name} is {step.status}, not open")
    update: dict[str, object] = {"completed_at": now}
    if step.status is StepStatus.RUNNING:
        update.update(status=StepStatus.FAILED, error_message=reason)
    else:
        update["status"] = StepStatus.SKIPPED
    return step.model_copy(update=update)


def repair_open_steps(
    run: RunMetadata, steps: Sequence[StepMetadata], now: str
) -> list[StepMetadata]:
    """The open ones of ``steps``, closed, if ``run`` has finished (else none): what start-up
    writes for a run left finished with open steps by a crash or an older version."""
    if run.status not in FINISHED_RUN:
        return []
    reason = closing_reason(run)
    return [close_step(step, reason, now) for step in steps if step.status in OPEN_STEP]


def end_run(
    run: RunMetadata,
    steps: Sequence[StepMetadata],
    target: RunStatus,
    now: str,
    error_message: str | None = None,
    *,
    force: bool = False,
) -> tuple[RunMetadata, list[StepMetadata]]:
    """Complete, fail or cancel ``run`` and close its open ``steps``; returns the run and the
    steps closed. Completing with an open step is refused unless ``force``."""
    still_open = [step for step in steps if step.status in OPEN_STEP]
    if target is RunStatus.COMPLETED and still_open and not force:
        listed = ", ".join(f"{step.dir_name} ({step.status})" for step in still_open)
        raise InvalidTransition(
            _run_label(run),
            run.status,
            target,
            f"steps still open: {listed}; finish them first, or force, which closes them",
        )
    ended = finish_run(run, target, now, error_message)
    return ended, repair_open_steps(ended, still_open, now)


def create_step(
    run: RunMetadata, name: str, now: str, *, start: bool = False
) -> tuple[RunMetadata, StepMetadata]:
    """Add step ``stepCount + 1`` called ``name``; the run becomes running."""
    check_step_name(name)
    requested = RunStatus.RUNNING
    _require_active_run(run, requested)
    if run.step_count >= MAX_STEPS:
        raise InvalidTransition(
            _run_label(run), run.status, requested, f"a run has at most {MAX_STEPS} steps"
        )
    step = StepMetadata(
        number=run.step_count + 1,
        name=name,
        status=StepStatus.RUNNING if start else StepStatus.PENDING,
        started_at=now if start else None,
    )
    new_run = _ensure_running(run, now).model_copy(
        update={"step_count": run.step_count + 1, "updated_at": now}
    )
    return new_run, step


def transition_step(
    run: RunMetadata,
    step: StepMetadata,
    target: StepStatus,
    now: str,
    *,
    error_message: str | None = None,
    fail_run: bool = True,
) -> tuple[RunMetadata, StepMetadata]:
    """Move ``step`` to ``target``; starting it makes the run running, failing it fails the
    run unless ``fail_run`` is false."""
    if target not in STEP_TRANSITIONS[step.status]:
        raise InvalidTransition(_step_label(run, step), step.status, target)
    if run.status not in ACTIVE_RUN:
        raise InvalidTransition(
            _step_label(run, step), step.status, target, f"its run {status_phrase(run.status)}"
        )
    update: dict[str, object] = {"status": target}
    if target is StepStatus.RUNNING:
        update["started_at"] = now
    else:
        update["completed_at"] = now
    if target is StepStatus.FAILED:
        update["error_message"] = error_message
    new_step = step.model_copy(update=update)

    new_run = run.model_copy(update={"updated_at": now})
    if target is StepStatus.RUNNING:
        new_run = _ensure_running(run, now)
    elif target is StepStatus.FAILED and fail_run:
        reason = f"step {step.dir_name} failed"
        if error_message:
            reason = f"{reason}: {error_message}"
        running = _ensure_running(run, now)
        new_run = finish_run(running, RunStatus.FAILED, now, reason[:10_000])
    return new_run, new_step


def delete_steps_from(run: RunMetadata, from_step: int, now: str) -> RunMetadata:
    """Rerun from a checkpoint: the run keeps steps ``1..from_step-1`` and is pending again."""
    if not 1 <= from_step <= run.step_count:
        raise NotFound(f"run {run.id} has no step {from_step} (it has {run.step_count} step(s))")
    return run.model_copy(
        update={
            "status": RunStatus.PENDING,
            "step_count": from_step - 1,
            "completed_at": None,
            "error_message": None,
            "updated_at": now,
        }
    )
