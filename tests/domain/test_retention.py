"""Which finished runs a prune selects: scripted summaries, no daemon, no files."""

from __future__ import annotations

import dataclasses

import pytest

from simpleaided.domain.index import RunSummary
from simpleaided.domain.names import new_run_id
from simpleaided.domain.retention import MS_PER_DAY, select_for_pruning

NOW = 1_795_000_000_000


def summary(
    age_days: float, status: str = "completed", workspace: str = "/ws", ended: bool = True
) -> RunSummary:
    """A run that started ``age_days`` ago and, if ``ended``, ended a day later (or now)."""
    started = NOW - int(age_days * MS_PER_DAY)
    completed = min(started + MS_PER_DAY, NOW) if ended else None
    return RunSummary(
        id=new_run_id(started),
        workspace=workspace,
        status=status,
        title=None,
        started_ms=started,
        completed_ms=completed,
        updated_ms=None,
        step_count=0,
        error_message=None,
    )


def ids(runs: list[RunSummary]) -> list[str]:
    return [r.id for r in runs]


def test_keep_selects_all_but_the_newest_finished_runs() -> None:
    runs = [summary(age) for age in (1, 5, 3, 10, 7)]  # not in order
    newest_first = sorted(runs, key=lambda r: r.started_ms, reverse=True)
    assert ids(select_for_pruning(runs, now_ms=NOW, keep=2)) == ids(newest_first[2:])
    assert ids(select_for_pruning(runs, now_ms=NOW, keep=0)) == ids(newest_first)
    assert select_for_pruning(runs, now_ms=NOW, keep=5) == []


def test_older_than_counts_from_the_end_else_the_start() -> None:
    # Started 20 days ago, ended 19 days ago; started 12 days ago with no end (the daemon
    # always sets one on finishing, a record from another tool may not).
    ended_late = summary(20)
    no_end = summary(12, status="cancelled", ended=False)
    recent = summary(2)
    chosen = select_for_pruning(
        [ended_late, no_end, recent], now_ms=NOW, older_than_ms=int(19.5 * MS_PER_DAY)
    )
    assert chosen == []
    chosen = select_for_pruning(
        [ended_late, no_end, recent], now_ms=NOW, older_than_ms=MS_PER_DAY * 15
    )
    assert ids(chosen) == [ended_late.id]
    chosen = select_for_pruning(
        [ended_late, no_end, recent], now_ms=NOW, older_than_ms=MS_PER_DAY * 10
    )
    assert ids(chosen) == [no_end.id, ended_late.id]


def test_either_limit_selects_a_run() -> None:
    runs = [summary(age) for age in (1, 2, 3, 30)]
    month_old = runs[3]
    # keep 4 spares every run; older than 10 days still takes the month-old one.
    chosen = select_for_pruning(runs, now_ms=NOW, keep=4, older_than_ms=10 * MS_PER_DAY)
    assert ids(chosen) == [month_old.id]
    # keep 2 takes the two oldest; older than 10 days adds none.
    chosen = select_for_pruning(runs, now_ms=NOW, keep=2, older_than_ms=10 * MS_PER_DAY)
    assert ids(chosen) == [runs[2].id, month_old.id]
    # Ended 0, 1, 2 and 29 days ago: older than half a day takes three.
    chosen = select_for_pruning(runs, now_ms=NOW, older_than_ms=MS_PER_DAY // 2)
    assert ids(chosen) == [runs[1].id, runs[2].id, month_old.id]


@pytest.mark.parametrize("status", ["pending", "running", "corrupt"])
def test_unfinished_and_corrupt_runs_are_never_selected(status: str) -> None:
    oldest = summary(100, status=status, ended=False)
    finished = [summary(age) for age in (1, 2)]
    chosen = select_for_pruning([oldest, *finished], now_ms=NOW, keep=0, older_than_ms=1)
    assert oldest.id not in ids(chosen)
    assert set(ids(chosen)) == set(ids(finished))


def test_keep_applies_per_workspace() -> None:
    a = [summary(age, workspace="/a") for age in (1, 2, 3)]
    b = [summary(age + 0.5, workspace="/b") for age in (1, 2, 3)]
    chosen = select_for_pruning([*a, *b], now_ms=NOW, keep=1)
    assert set(ids(chosen)) == {a[1].id, a[2].id, b[1].id, b[2].id}
    # Newest first across workspaces.
    assert [r.started_ms for r in chosen] == sorted((r.started_ms for r in chosen), reverse=True)


def test_every_finished_status_counts_and_no_limit_selects_nothing() -> None:
    runs = [
        summary(age, status=s) for age, s in [(1, "completed"), (2, "failed"), (3, "cancelled")]
    ]
    assert ids(select_for_pruning(runs, now_ms=NOW, keep=1)) == [runs[1].id, runs[2].id]
    assert select_for_pruning(runs, now_ms=NOW) == []


def test_an_end_in_the_future_is_not_old() -> None:
    future = dataclasses.replace(summary(0), completed_ms=NOW + MS_PER_DAY)  # a skewed clock
    assert select_for_pruning([future], now_ms=NOW, older_than_ms=1) == []
