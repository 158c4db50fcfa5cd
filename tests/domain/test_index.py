"""The in-memory index and the status computation, driven by scripted changes (no disk)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from simpleaided.domain import chips, status
from simpleaided.domain.index import RunIndex, RunSummary
from simpleaided.domain.status import StatusDocument

BASE = 1_795_000_000_000


def summary(
    n: int,
    status_: str = "running",
    ws: str = "/a",
    completed: int | None = None,
    started: int | None = None,
) -> RunSummary:
    return RunSummary(
        id=f"20261118T0946{n:05d}Z-{n:08x}",
        workspace=ws,
        status=status_,
        title=None,
        started_ms=BASE + (n if started is None else started),
        completed_ms=None if completed is None else BASE + completed,
        updated_ms=None,
        step_count=0,
        error_message=None,
    )


def naive_counts(runs: dict[str, RunSummary], ws: str | None = None) -> dict[str, int]:
    counts: dict[str, int] = {}
    for s in runs.values():
        if ws is None or s.workspace == ws:
            counts[s.status] = counts.get(s.status, 0) + 1
    return counts


def test_counts_and_latest_follow_a_random_script_of_changes() -> None:
    rng = random.Random(7)
    index = RunIndex()
    truth: dict[str, RunSummary] = {}
    for _ in range(3000):
        n = rng.randrange(300)
        if rng.random() < 0.15:
            index.discard(summary(n).id)
            truth.pop(summary(n).id, None)
        else:
            s = summary(
                n,
                rng.choice(["pending", "running", "completed", "failed", "corrupt"]),
                rng.choice(["/a", "/b"]),
                # Usually the run's own start time; sometimes another (a rewritten record).
                started=rng.choice([n, n, n, rng.randrange(300)]),
            )
            index.put(s)
            truth[s.id] = s
        # Checked after every change, so no intermediate drift can hide.
        for ws in (None, "/a", "/b"):
            assert dict(index.tally(ws).counts) == naive_counts(truth, ws)
            expected = max(
                (s for s in truth.values() if s.status != "corrupt" and ws in (None, s.workspace)),
                key=lambda s: (s.started_ms, s.id),
                default=None,
            )
            assert index.latest(ws) == expected
    assert len(index) == len(truth)


def test_pages_are_newest_first_and_filtered() -> None:
    index = RunIndex()
    for n in range(10):
        index.put(summary(n, "completed" if n % 2 else "running", "/a" if n < 5 else "/b"))
    page = index.page(limit=3)
    assert [s.id for s in page] == [summary(n).id for n in (9, 8, 7)]
    page2 = index.page(limit=3, before=page[-1].id)
    assert [s.id for s in page2] == [summary(n).id for n in (6, 5, 4)]
    assert [
        s.id for s in index.page(limit=10, workspace="/a", statuses=frozenset({"running"}))
    ] == [summary(n).id for n in (4, 2, 0)]


def test_runs_section() -> None:
    index = RunIndex()
    index.put(summary(1, "completed", completed=100))
    index.put(summary(2, "pending"))
    index.put(summary(3, "running"))
    section = status.runs_section(index, BASE + 1000)
    assert section == {
        "active": 1,
        "busy": True,
        "pending": 1,
        "total": 3,
        "last": {
            "id": summary(3).id,
            "status": "running",
            "startedAt": "2026-11-18T11:06:40.003Z",  # BASE + 3 ms
            "completedAt": None,
            "ageMs": 997,
            "errorMessage": None,
        },
        "activeRuns": [{"id": summary(3).id, "title": None, "status": "running"}],
    }
    counting_pending = status.runs_section(index, BASE, count_pending=True)
    assert counting_pending["active"] == 2
    assert [r["id"] for r in counting_pending["activeRuns"]] == [summary(3).id, summary(2).id]
    # Ages count from completion when there is one, and never go negative.
    index.discard(summary(3).id)
    index.discard(summary(2).id)
    assert status.runs_section(index, BASE + 150)["last"]["ageMs"] == 50
    assert status.runs_section(index, BASE)["last"]["ageMs"] == 0
    assert status.runs_section(index, BASE)["busy"] is False


def test_document_sections_match_the_published_schema() -> None:
    index = RunIndex()
    index.put(summary(1, "failed", completed=5))
    doc: dict[str, Any] = {
        "env": "PROD",
        "generatedAt": "2026-11-24T10:15:00.123Z",
        "runs": status.runs_section(index, BASE + 10),
        **status.unconfigured_sections("PROD", "/run/x.sock"),
        "warnings": [],
    }
    doc["chips"] = chips.chips(doc)
    StatusDocument.model_validate(doc)
    assert doc["db"]["readOnly"] is True


def _observable(index: RunIndex) -> tuple[Any, ...]:
    """Everything a caller can read from an index."""
    scopes = [None, "/a", "/b"]
    return (
        {ws: dict(index.tally(ws).counts) for ws in scopes},
        {ws: index.latest(ws) for ws in scopes},
        [s.id for s in index.page(limit=10_000)],
        sorted(index.owned()),
        len(index),
    )


def test_a_bulk_insert_reads_exactly_as_one_put_per_run() -> None:
    rng = random.Random(7)
    statuses = ["pending", "running", "completed", "failed", "corrupt"]
    before = [summary(n, rng.choice(statuses), ws="/a") for n in range(0, 400, 2)]
    # A second workspace whose ids interleave with the first's, some with owners.
    loaded = [
        _with_owner(summary(n, rng.choice(statuses), ws="/b"), n if n % 3 else None)
        for n in range(1, 400, 2)
    ]
    rng.shuffle(loaded)

    one_by_one, bulk = RunIndex(), RunIndex()
    for s in before:
        one_by_one.put(s)
        bulk.put(s)
    for s in loaded:
        one_by_one.put(s)
    bulk.put_new(loaded)

    assert _observable(bulk) == _observable(one_by_one)
    assert bulk.version > 0


def test_a_bulk_insert_refuses_a_run_already_indexed() -> None:
    index = RunIndex()
    index.put(summary(1))
    with pytest.raises(ValueError, match="already indexed"):
        index.put_new([summary(2), summary(1)])
    assert summary(2).id not in index and len(index) == 1  # nothing half-inserted


def _with_owner(s: RunSummary, pid: int | None) -> RunSummary:
    return RunSummary(
        id=s.id,
        workspace=s.workspace,
        status=s.status,
        title=s.title,
        started_ms=s.started_ms,
        completed_ms=s.completed_ms,
        updated_ms=s.updated_ms,
        step_count=s.step_count,
        error_message=s.error_message,
        owner_pid=pid,
    )
