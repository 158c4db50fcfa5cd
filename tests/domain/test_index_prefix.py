"""Finding runs by the start of their id in the in-memory index (``runs.resolve``)."""

from __future__ import annotations

import random

from simpleaided.domain.index import RunIndex, RunSummary

BASE = 1_795_000_000_000


def summary(run_id: str, ws: str) -> RunSummary:
    return RunSummary(
        id=run_id,
        workspace=ws,
        status="running",
        title=None,
        started_ms=BASE,
        completed_ms=None,
        updated_ms=None,
        step_count=0,
        error_message=None,
    )


def test_matching_agrees_with_a_scan_for_every_prefix() -> None:
    rng = random.Random(19)
    index = RunIndex()
    truth: dict[str, str] = {}
    for _ in range(400):
        day, time, tail = rng.randrange(10, 13), rng.randrange(10**7), rng.randrange(16**8)
        run_id = f"202611{day}T09{time:07d}Z-{tail:08x}"
        home = rng.choice(["/a", "/b"])
        index.put(summary(run_id, home))
        truth[run_id] = home
    for run_id in rng.sample(sorted(truth), 50):
        index.discard(run_id)
        del truth[run_id]
    prefixes = {run_id[:cut] for run_id in truth for cut in (0, 4, 9, 12, 20, 22, 29)}
    prefixes |= {"19990101", "2026111", "20261112T09", "zz"}
    for prefix in prefixes:
        for ws in (None, "/a", "/b"):
            expected = sorted(
                (i for i, w in truth.items() if i.startswith(prefix) and ws in (None, w)),
                reverse=True,
            )
            for limit in (1, 3, 1000):
                rows, count = index.matching(prefix, limit=limit, workspace=ws)
                assert count == len(expected), (prefix, ws)
                assert [r.id for r in rows] == expected[:limit], (prefix, ws, limit)
