"""The CLI says a refused parameter in the daemon's words, alone on one line: the field, what
was wrong and what it takes, after ``simpleaide:`` and nothing else."""

from __future__ import annotations

from tests.support.sandbox import Sandbox


def test_a_refused_name_is_said_in_words_on_one_line(sandbox: Sandbox) -> None:
    run_id = sandbox.new_run(sandbox.workspace())
    bad_step = sandbox.run("steps", "add", run_id, "Plan B")
    assert (bad_step.code, bad_step.err) == (
        1,
        "simpleaide: NAME: 'Plan B' is not a step name (expected 1 to 64 of a-z 0-9 _ -, "
        "starting with a letter or digit, like code)\n",
    )
    bad_artifact = sandbox.run("artifacts", "get", run_id, "1", "notes/plan.md")
    assert (bad_artifact.code, bad_artifact.err) == (
        1,
        "simpleaide: NAME: 'notes/plan.md' is not an artifact name: it must not contain a slash\n",
    )
