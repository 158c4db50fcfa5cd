"""Runs for the tests: one made through the daemon, or laid out on disk as a daemon would."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from simpleaided.domain import clock, names
from tests.support.files import write_json
from tests.support.rpc import RpcClient


async def new_run(
    client: RpcClient, workspace: Path, *steps: str, start: bool = False, **params: Any
) -> dict[str, Any]:
    """A run made with ``runs.create`` (``params`` passed on), then ``steps`` added in order,
    the first of them started when ``start``; the run as ``runs.create`` returned it."""
    run: dict[str, Any] = await client.call("runs.create", workspace=str(workspace), **params)
    for n, name in enumerate(steps):
        if start and n == 0:
            await client.call("steps.create", runId=run["id"], name=name, start=True)
        else:
            await client.call("steps.create", runId=run["id"], name=name)
    return run


def runs_dir(workspace: Path) -> Path:
    """The folder of ``workspace``'s runs."""
    return workspace / ".simpleaide" / "runs"


def on_disk_steps(workspace: Path, run_id: str) -> dict[int, dict[str, Any]]:
    """Every ``step.json`` of a run, by number, read from the files."""
    found = {}
    for folder in (runs_dir(workspace) / run_id).iterdir():
        if folder.is_dir() and names.parse_step_dir(folder.name):
            record = json.loads((folder / "step.json").read_text())
            found[record["number"]] = record
    return found


def lay_out_run(workspace: Path, status: str, steps: list[str], *, error: str | None = None) -> str:
    """A run folder as a daemon writes it, with steps ``01_s1``... in ``steps``' statuses."""
    now = clock.format_ms(clock.now_ms())
    run_id = names.new_run_id(clock.now_ms())
    folder = runs_dir(workspace) / run_id
    record: dict[str, Any] = {
        "schemaVersion": 1,
        "id": run_id,
        "status": status,
        "startedAt": now,
        "updatedAt": now,
        "stepCount": len(steps),
    }
    if status in ("completed", "failed", "cancelled"):
        record["completedAt"] = now
    if error:
        record["errorMessage"] = error
    write_json(folder / "metadata.json", record)
    for number, step_status in enumerate(steps, 1):
        step_dir = folder / f"{number:02d}_s{number}"
        (step_dir / "artifacts").mkdir(parents=True, mode=0o700)
        write_json(
            step_dir / "step.json",
            {"number": number, "name": f"s{number}", "status": step_status, "startedAt": now},
        )
    return run_id


def statuses(steps: dict[int, dict[str, Any]]) -> list[tuple[str, str | None]]:
    """Each step's status and error message, in order."""
    return [(steps[n]["status"], steps[n].get("errorMessage")) for n in sorted(steps)]
