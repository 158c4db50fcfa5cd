"""The state machine, exhaustively: every legal transition works, every other one is refused."""

from __future__ import annotations

import itertools

import pytest

from simpleaided.domain import states
from simpleaided.domain.errors import InvalidTransition, NotFound
from simpleaided.domain.models import RunMetadata, RunStatus, StepMetadata, StepStatus
from simpleaided.domain.names import new_run_id

T0 = "2026-11-24T10:00:00.000Z"
T1 = "2026-11-24T10:05:00.000Z"

LEGAL_RUN = {
    (RunStatus.PENDING, RunStatus.RUNNING),
    (RunStatus.PENDING, RunStatus.CANCELLED),
    (RunStatus.RUNNING, RunStatus.COMPLETED),
    (RunStatus.RUNNING, RunStatus.FAILED),
    (RunStatus.RUNNING, RunStatus.CANCELLED),
}
# How a refusal words each status ("step 01_plan has failed; cannot move to completed").
PHRASES = {
    "pending": "is pending",
    "running": "is running",
    "completed": "has completed",
    "failed": "has failed",
    "skipped": "was skipped",
    "cancelled": "was cancelled",
}
LEGAL_STEP = {
    (StepStatus.PENDING, StepStatus.RUNNING),
    (StepStatus.RUNNING, StepStatus.COMPLETED),
    (StepStatus.RUNNING, StepStatus.FAILED),
    (StepStatus.RUNNING, StepStatus.SKIPPED),
}


def make_run(status: RunStatus = RunStatus.PENDING, steps: int = 0) -> RunMetadata:
    return RunMetadata(
        id=new_run_id(1_795_000_000_000),
        status=status,
        started_at=T0,
        updated_at=T0,
        step_count=steps,
    )


def make_step(status: StepStatus, number: int = 1) -> StepMetadata:
    return StepMetadata(number=number, name="code", status=status)


def test_transition_tables_match_the_design() -> None:
    runs = {(a, b) for a, targets in states.RUN_TRANSITIONS.items() for b in targets}
    assert runs == LEGAL_RUN
    steps = {(a, b) for a, targets in states.STEP_TRANSITIONS.items() for b in targets}
    assert steps == LEGAL_STEP


@pytest.mark.parametrize(
    ("current", "target"),
    [(a, b) for a, b in itertools.product(RunStatus, RunStatus) if b in states.FINISHED_RUN],
)
def test_finish_run(current: RunStatus, target: RunStatus) -> None:
    run = make_run(current)
    if (current, target) in LEGAL_RUN:
        done = states.finish_run(run, target, T1, "boom")
        assert done.status is target
        assert done.completed_at == T1
        assert done.updated_at == T1
        assert done.error_message == ("boom" if target is RunStatus.FAILED else None)
    else:
        with pytest.raises(InvalidTransition) as info:
            states.finish_run(run, target, T1)
        assert info.value.current == current and info.value.requested == target
        assert f"{PHRASES[current]}; cannot move to {target}" in info.value.message


@pytest.mark.parametrize("start", [False, True])
def test_creating_a_step_makes_a_pending_run_running(start: bool) -> None:
    run, step = states.create_step(make_run(), "plan", T1, start=start)
    assert run.status is RunStatus.RUNNING
    assert run.step_count == 1
    assert step.number == 1 and step.dir_name == "01_plan"
    assert step.status is (StepStatus.RUNNING if start else StepStatus.PENDING)
    assert step.started_at == (T1 if start else None)


def test_steps_are_numbered_in_order() -> None:
    run = make_run()
    for expected, name in enumerate(["plan", "code", "test"], start=1):
        run, step = states.create_step(run, name, T1)
        assert step.number == expected
    assert run.step_count == 3


@pytest.mark.parametrize("status", sorted(states.FINISHED_RUN))
def test_no_step_can_be_added_to_a_finished_run(status: RunStatus) -> None:
    with pytest.raises(InvalidTransition) as info:
        states.create_step(make_run(status), "plan", T1)
    assert info.value.current == status and info.value.requested == RunStatus.RUNNING


def test_a_run_has_at_most_99_steps() -> None:
    with pytest.raises(InvalidTransition, match="at most 99 steps"):
        states.create_step(make_run(RunStatus.RUNNING, steps=99), "more", T1)


@pytest.mark.parametrize(("current", "target"), list(itertools.product(StepStatus, StepStatus)))
def test_step_transitions(current: StepStatus, target: StepStatus) -> None:
    run = make_run(RunStatus.RUNNING, steps=1)
    step = make_step(current)
    if (current, target) in LEGAL_STEP:
        new_run, new_step = states.transition_step(run, step, target, T1, error_message="x")
        assert new_step.status is target
        if target is StepStatus.RUNNING:
            assert new_step.started_at == T1 and new_step.completed_at is None
        else:
            assert new_step.completed_at == T1
        assert new_step.error_message == ("x" if target is StepStatus.FAILED else None)
    else:
        with pytest.raises(InvalidTransition) as info:
            states.transition_step(run, step, target, T1)
        assert info.value.current == current and info.value.requested == target
        # In plain English: "step 01_code of run … has failed; cannot move to completed".
        assert f"step 01_code of run {run.id} {PHRASES[current]}; cannot move to {target}" == (
            info.value.message
        )


def test_starting_a_step_of_a_pending_run_makes_it_running() -> None:
    run, _ = states.transition_step(
        make_run(RunStatus.PENDING, steps=1), make_step(StepStatus.PENDING), StepStatus.RUNNING, T1
    )
    assert run.status is RunStatus.RUNNING


def test_a_failed_step_fails_its_run() -> None:
    run, step = states.transition_step(
        make_run(RunStatus.RUNNING, steps=1),
        make_step(StepStatus.RUNNING),
        StepStatus.FAILED,
        T1,
        error_message="tests failed",
    )
    assert step.status is StepStatus.FAILED
    assert run.status is RunStatus.FAILED
    assert run.completed_at == T1
    assert run.error_message == "step 01_code failed: tests failed"


def test_a_failed_step_can_leave_its_run_running() -> None:
    run, step = states.transition_step(
        make_run(RunStatus.RUNNING, steps=1),
        make_step(StepStatus.RUNNING),
        StepStatus.FAILED,
        T1,
        error_message="flaky",
        fail_run=False,
    )
    assert step.status is StepStatus.FAILED
    assert run.status is RunStatus.RUNNING and run.error_message is None


@pytest.mark.parametrize("status", sorted(states.FINISHED_RUN))
def test_steps_of_a_finished_run_cannot_move(status: RunStatus) -> None:
    with pytest.raises(InvalidTransition, match=f"its run {PHRASES[status]}"):
        states.transition_step(
            make_run(status, steps=1), make_step(StepStatus.RUNNING), StepStatus.COMPLETED, T1
        )


@pytest.mark.parametrize("status", list(RunStatus))
def test_delete_steps_from_reruns_from_a_checkpoint(status: RunStatus) -> None:
    run = make_run(status, steps=3).model_copy(
        update={"completed_at": T0, "error_message": "old failure"}
    )
    again = states.delete_steps_from(run, 2, T1)
    assert again.step_count == 1
    assert again.status is RunStatus.PENDING
    assert again.completed_at is None and again.error_message is None
    # The next step is number 2 and makes the run running again.
    run2, step = states.create_step(again, "code", T1)
    assert step.number == 2 and run2.status is RunStatus.RUNNING


@pytest.mark.parametrize("from_step", [0, 4, 99])
def test_delete_steps_from_a_missing_step(from_step: int) -> None:
    with pytest.raises(NotFound):
        states.delete_steps_from(make_run(RunStatus.RUNNING, steps=3), from_step, T1)


def test_refused_transitions_change_nothing() -> None:
    run = make_run(RunStatus.COMPLETED, steps=1)
    before = run.model_dump()
    with pytest.raises(InvalidTransition):
        states.finish_run(run, RunStatus.FAILED, T1)
    with pytest.raises(InvalidTransition):
        states.create_step(run, "x", T1)
    assert run.model_dump() == before


@pytest.mark.parametrize(
    ("current", "ending"),
    [(RunStatus.RUNNING, RunStatus.FAILED), (RunStatus.PENDING, RunStatus.CANCELLED)],
)
def test_an_abandoned_run_ends_with_the_reason(current: RunStatus, ending: RunStatus) -> None:
    """A running run fails; a pending one may not fail (it never started), so it is
    cancelled; both keep the reason."""
    run = states.abandon_run(make_run(current, steps=1), T1, "interrupted: owner process 7 exited")
    assert run.status is ending
    assert run.completed_at == T1 and run.updated_at == T1
    assert run.error_message == "interrupted: owner process 7 exited"


@pytest.mark.parametrize("status", sorted(states.FINISHED_RUN))
def test_a_finished_run_cannot_be_abandoned(status: RunStatus) -> None:
    with pytest.raises(InvalidTransition, match=f"{PHRASES[status]};"):
        states.abandon_run(make_run(status), T1, "interrupted")


# -- a finished run never has an open step ---------------------------------------------------


def steps_of(*statuses: StepStatus) -> list[StepMetadata]:
    return [
        make_step(status, number).model_copy(update={"started_at": T0})
        for number, status in enumerate(statuses, 1)
    ]


def test_closing_a_step_fails_a_running_one_and_skips_a_pending_one() -> None:
    running, pending = steps_of(StepStatus.RUNNING, StepStatus.PENDING)
    closed = states.close_step(running, "run cancelled", T1)
    assert (closed.status, closed.error_message, closed.completed_at) == (
        StepStatus.FAILED,
        "run cancelled",
        T1,
    )
    skipped = states.close_step(pending, "run cancelled", T1)
    assert (skipped.status, skipped.error_message, skipped.completed_at) == (
        StepStatus.SKIPPED,
        None,
        T1,
    )
    for status in (StepStatus.COMPLETED, StepStatus.FAILED, StepStatus.SKIPPED):
        with pytest.raises(ValueError, match="not open"):
            states.close_step(make_step(status), "why", T1)


@pytest.mark.parametrize(
    ("target", "message", "reason"),
    [
        (RunStatus.FAILED, "tests broke", "tests broke"),
        (RunStatus.CANCELLED, None, "run cancelled"),
    ],
)
def test_ending_a_run_closes_its_open_steps(
    target: RunStatus, message: str | None, reason: str
) -> None:
    run = make_run(RunStatus.RUNNING, steps=4)
    steps = steps_of(
        StepStatus.COMPLETED, StepStatus.RUNNING, StepStatus.PENDING, StepStatus.FAILED
    )
    ended, closed = states.end_run(run, steps, target, T1, message)
    assert ended.status is target and ended.completed_at == T1
    assert [(s.number, s.status, s.error_message) for s in closed] == [
        (2, StepStatus.FAILED, reason),
        (3, StepStatus.SKIPPED, None),
    ]
    assert all(s.completed_at == T1 for s in closed)


def test_completing_a_run_with_open_steps_is_refused_unless_forced() -> None:
    run = make_run(RunStatus.RUNNING, steps=3)
    steps = steps_of(StepStatus.COMPLETED, StepStatus.RUNNING, StepStatus.PENDING)
    with pytest.raises(InvalidTransition) as refused:
        states.end_run(run, steps, RunStatus.COMPLETED, T1)
    assert "02_code (running)" in refused.value.message
    assert "03_code (pending)" in refused.value.message
    # In words any client can use (the CLI names its --force itself).
    assert refused.value.message.endswith(
        "steps still open: 02_code (running), 03_code (pending); finish them first, or "
        "force, which closes them)"
    ), refused.value.message
    ended, closed = states.end_run(run, steps, RunStatus.COMPLETED, T1, force=True)
    assert ended.status is RunStatus.COMPLETED and ended.error_message is None
    assert [(s.number, s.status) for s in closed] == [
        (2, StepStatus.FAILED),
        (3, StepStatus.SKIPPED),
    ]
    # Nothing open: no force needed, nothing to close.
    done = steps_of(StepStatus.COMPLETED, StepStatus.SKIPPED)
    assert states.end_run(run, done, RunStatus.COMPLETED, T1)[1] == []


def test_the_closing_reason_follows_the_finished_run() -> None:
    run = make_run(RunStatus.RUNNING)
    failed = states.finish_run(run, RunStatus.FAILED, T1, "boom")
    assert states.closing_reason(failed) == "boom"
    assert states.closing_reason(states.finish_run(run, RunStatus.FAILED, T1)) == "run failed"
    assert states.closing_reason(states.finish_run(run, RunStatus.CANCELLED, T1)) == (
        "run cancelled"
    )
    assert "completed" in states.closing_reason(states.finish_run(run, RunStatus.COMPLETED, T1))
    abandoned = states.abandon_run(run, T1, "interrupted: owner process 7 exited")
    assert states.closing_reason(abandoned) == "interrupted: owner process 7 exited"
    with pytest.raises(ValueError, match="has not finished"):
        states.closing_reason(run)


def test_repair_closes_the_open_steps_of_a_finished_run_only() -> None:
    steps = steps_of(StepStatus.RUNNING, StepStatus.PENDING, StepStatus.COMPLETED)
    for status in states.ACTIVE_RUN:
        assert states.repair_open_steps(make_run(status, steps=3), steps, T1) == []
    failed = states.finish_run(make_run(RunStatus.RUNNING, 3), RunStatus.FAILED, T1, "boom")
    repaired = states.repair_open_steps(failed, steps, T1)
    assert [(s.number, s.status, s.error_message) for s in repaired] == [
        (1, StepStatus.FAILED, "boom"),
        (2, StepStatus.SKIPPED, None),
    ]
    # Converges: repairing the repaired steps changes nothing more.
    assert states.repair_open_steps(failed, [*repaired, steps[2]], T1) == []


def test_failing_a_step_that_fails_the_run_has_its_other_open_steps_closed_by_repair() -> None:
    run = make_run(RunStatus.RUNNING, steps=2)
    first, second = steps_of(StepStatus.RUNNING, StepStatus.RUNNING)
    failed_run, failed_step = states.transition_step(
        run, second, StepStatus.FAILED, T1, error_message="boom"
    )
    assert failed_run.status is RunStatus.FAILED
    closed = states.repair_open_steps(failed_run, [first, failed_step], T1)
    assert [(s.number, s.status, s.error_message) for s in closed] == [
        (1, StepStatus.FAILED, "step 02_code failed: boom")
    ]
