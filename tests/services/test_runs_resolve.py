"""``runs.resolve``: the runs whose id starts with a prefix, from the daemon's memory, against
the real daemon on a real socket."""

from __future__ import annotations

import shutil
from pathlib import Path

from simpleaided.domain.api import RunMatches
from tests.support.rpc import RpcClient
from tests.support.runs import new_run, runs_dir
from tests.support.waiting import eventually


async def test_a_prefix_finds_its_runs_newest_first_with_their_count(
    client: RpcClient, workspace: Path, short_tmp: Path
) -> None:
    other = short_tmp / "other"
    other.mkdir()
    mine = [(await new_run(client, workspace, title=f"run {n}"))["id"] for n in range(3)]
    theirs = (await new_run(client, other))["id"]
    newest_first = sorted([*mine, theirs], reverse=True)
    common = _common_prefix(newest_first)

    found = RunMatches.model_validate(await client.call("runs.resolve", prefix=common, limit=2))
    assert found.count == 4
    assert [row.id for row in found.runs] == newest_first[:2]
    where = {**dict.fromkeys(mine, str(workspace)), theirs: str(other)}
    assert all(row.workspace == where[row.id] for row in found.runs)

    # Each whole id is one match; so is any start of it long enough to be unique.
    for run_id in mine:
        one = await client.call("runs.resolve", prefix=run_id)
        assert one["count"] == 1 and [r["id"] for r in one["runs"]] == [run_id]
    # Scoped to a workspace: only its runs count.
    scoped = await client.call("runs.resolve", prefix=common, workspace=str(other))
    assert scoped["count"] == 1 and scoped["runs"][0]["id"] == theirs
    # The empty prefix matches every run; a prefix of no run matches none.
    assert (await client.call("runs.resolve", prefix=""))["count"] == 4
    assert await client.call("runs.resolve", prefix="19990101T") == {"runs": [], "count": 0}


async def test_a_run_deleted_behind_the_daemons_back_is_no_longer_found(
    client: RpcClient, workspace: Path
) -> None:
    run_id = (await new_run(client, workspace))["id"]
    shutil.rmtree(runs_dir(workspace) / run_id)

    async def gone() -> bool:
        return bool((await client.call("runs.resolve", prefix=run_id[:-1]))["count"] == 0)

    await eventually(gone, 5)


async def test_what_is_not_the_start_of_a_run_id_is_refused_in_words(
    client: RpcClient, workspace: Path
) -> None:
    for prefix in ("latest", "2026-11", "20261124T1015Z", "20261124T101500123Z-1A", "2" * 30):
        err = await client.error("runs.resolve", prefix=prefix)
        assert err.code == -32602, prefix
        assert "invalid run id prefix" in str(err.data), (prefix, err.data)
    err = await client.error("runs.resolve", prefix="2026", limit=0)
    assert err.code == -32602
    err = await client.error("runs.resolve", prefix="2026", workspace=str(workspace))
    assert err.code == -32001 and "not served" in err.message


async def test_it_is_published_with_its_pattern(client: RpcClient) -> None:
    doc = await client.call("rpc.discover")
    method = next(m for m in doc["methods"] if m["name"] == "runs.resolve")
    params = {p["name"]: p for p in method["params"]}
    assert {name: p["required"] for name, p in params.items()} == {
        "prefix": True,
        "workspace": False,
        "limit": False,
    }
    pattern = params["prefix"]["schema"]["pattern"]
    assert pattern.startswith("^") and pattern.endswith("$")


def _common_prefix(ids: list[str]) -> str:
    first, last = min(ids), max(ids)
    n = 0
    while n < len(first) and first[n] == last[n]:
        n += 1
    return first[:n]
