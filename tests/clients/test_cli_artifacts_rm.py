"""``simpleaide artifacts rm``: the installed command against a real daemon it starts."""

from __future__ import annotations

from tests.support.sandbox import Sandbox


def test_rm_deletes_one_artifact(sandbox: Sandbox) -> None:
    ws = sandbox.workspace()
    run_id = sandbox.new_run(ws)
    sandbox.ok("steps", "add", run_id, "plan", "--start")
    for name in ("plan.md", "big.log"):
        sandbox.ok("artifacts", "put", run_id, "plan", name, input=name.encode())
    sandbox.ok("steps", "done", run_id, "plan")
    sandbox.ok("runs", "complete", run_id)  # a finished run's artifacts may go too

    done = sandbox.ok("artifacts", "rm", run_id, "plan", "big.log")
    assert done.stdout == f"deleted big.log from step 1 of run {run_id}\n"
    folder = ws / ".simpleaide" / "runs" / run_id / "01_plan" / "artifacts"
    assert sorted(p.name for p in folder.iterdir()) == ["plan.md"]
    listed = sandbox.ok("artifacts", "ls", run_id, "--json").json()
    assert [a["name"] for a in listed] == ["plan.md"]
    assert sandbox.ok("runs", "show", run_id, "--json").json()["status"] == "completed"

    again = sandbox.run("artifacts", "rm", run_id, "1", "big.log")
    assert again.code == 1
    assert again.err == f"simpleaide: step 1 of run {run_id} has no artifact 'big.log'\n"
    as_json = sandbox.ok("artifacts", "rm", run_id, "01_plan", "plan.md", "--json").json()
    assert as_json == {"runId": run_id, "step": 1, "name": "plan.md", "deleted": True}


def test_rm_refuses_a_path_and_deletes_nothing(sandbox: Sandbox) -> None:
    ws = sandbox.workspace()
    run_id = sandbox.new_run(ws)
    sandbox.ok("steps", "add", run_id, "plan", "--start")
    sandbox.ok("artifacts", "put", run_id, "plan", "plan.md", input=b"x")
    step = ws / ".simpleaide" / "runs" / run_id / "01_plan"
    for name in ("../step.json", "../../metadata.json", ".."):
        refused = sandbox.run("artifacts", "rm", run_id, "plan", name)
        assert refused.code == 1 and "artifact name" in refused.err, refused
        assert "Traceback" not in refused.err and "pattern" not in refused.err
    assert (step / "step.json").exists() and (step.parent / "metadata.json").exists()
    assert (step / "artifacts" / "plan.md").exists()
