"""``simpleaide steps``: add steps to a run and move them along."""

from __future__ import annotations

import sys

from simpleaide import tables
from simpleaide.commands import RUN_HELP, STEP_HELP, reply
from simpleaide.safetext import escape
from simpleaide.session import CliError, Session

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~2 ms to import; annotations are not evaluated at run time
    from typing import Any

    from simpleaide.commands import Commands, Handler
    from simpleaide.session import Args


def register(tree: Commands) -> None:
    """The ``steps`` commands."""
    steps = tree.group("steps", "add steps and move them along")
    add = steps.add(
        "add",
        "add the next step to a run and print its number",
        steps_add,
        description="Add the next step to a run (the run becomes running) and print the new\n"
        "step's number alone. Step names: 1-64 of a-z 0-9 _ -, starting with a letter or digit.",
    )
    add.add_argument("run_id", metavar="RUN_ID", help=RUN_HELP)
    add.add_argument("name", metavar="NAME", help="the step's name, e.g. plan")
    add.add_argument("--start", action="store_true", help="start it at once")
    for name, method, summary in [
        ("start", "steps.start", "start a pending step"),
        ("done", "steps.complete", "complete a running step"),
        ("skip", "steps.skip", "skip a running step"),
    ]:
        sub = steps.add(name, summary, move_step(method))
        sub.add_argument("run_id", metavar="RUN_ID", help=RUN_HELP)
        sub.add_argument("step", metavar="STEP", help=STEP_HELP)
    fail = steps.add("fail", "fail a step (and its run, unless --keep-run)", steps_fail)
    fail.add_argument("run_id", metavar="RUN_ID", help=RUN_HELP)
    fail.add_argument("step", metavar="STEP", help=STEP_HELP)
    fail.add_argument("--message", "-m", required=True, help="why it failed")
    fail.add_argument("--keep-run", action="store_true", help="leave the run running")
    rm_from = steps.add(
        "rm-from",
        "delete a step and all later ones (rerun from a checkpoint)",
        steps_rm_from,
        description="Delete STEP and every later step; the run keeps the earlier ones and\n"
        "becomes pending again, ready for the next step.",
    )
    rm_from.add_argument("run_id", metavar="RUN_ID", help=RUN_HELP)
    rm_from.add_argument("step", metavar="STEP", help=STEP_HELP)
    ls = steps.add("ls", "list a run's steps", steps_ls)
    ls.add_argument("run_id", metavar="RUN_ID", help=RUN_HELP)


def step_number(session: Session, run_id: str, step: str) -> int:
    """A step given as a number (``2``), a folder (``02_code``) or a name (``code``);
    a number or folder is taken as such, without asking the daemon."""
    if step.isascii() and step.isdigit():
        return int(step)
    head, sep, _ = step.partition("_")
    if sep and len(head) == 2 and head.isascii() and head.isdigit():
        return int(head)
    found = [s["number"] for s in session.call("steps.list", runId=run_id) if s["name"] == step]
    if not found:
        raise CliError(f"run {run_id} has no step named {step!r}")
    if len(found) > 1:
        numbers = ", ".join(str(n) for n in found)
        raise CliError(
            f"run {run_id} has several steps named {step!r} ({numbers}); give the number"
        )
    return int(found[0])


def steps_table(steps: list[dict[str, Any]]) -> str:
    """A run's steps as a table (``steps ls``, ``runs show``)."""
    rows = [
        [
            str(step["number"]),
            step.get("folder") or step.get("name", "?"),
            step["status"],
            tables.local_time(step.get("startedAt")),
            tables.duration(step.get("startedAt"), step.get("completedAt")),
            tables.one_line(step.get("errorMessage")),
        ]
        for step in steps
    ]
    headers = ["#", "STEP", "STATUS", "STARTED", "TOOK", "ERROR"]
    return tables.render(headers, rows, elastic=5, status=2)


def _show_change(change: dict[str, Any]) -> None:
    step, run = change["step"], change["run"]
    print(
        f"step {step['folder']} {tables.status_phrase(step['status'])} "
        f"(run {run['id']} {tables.status_phrase(run['status'])})"
    )


def steps_add(session: Session, args: Args) -> int:
    """``simpleaide steps add``: prints the new step's number alone."""
    change = session.call(
        "steps.create", runId=args.run_id, name=args.name, start=args.start or None
    )
    return reply(args, change, lambda change: print(change["step"]["number"]))


def move_step(method: str) -> Handler:
    """A handler that moves a step with ``method`` (``steps.start``, ``steps.complete``...)."""

    def handler(session: Session, args: Args) -> int:
        number = step_number(session, args.run_id, args.step)
        change = session.call(method, runId=args.run_id, step=number)
        return reply(args, change, _show_change)

    handler.__doc__ = f"``{method}``."
    return handler


def steps_fail(session: Session, args: Args) -> int:
    """``simpleaide steps fail``."""
    number = step_number(session, args.run_id, args.step)
    change = session.call(
        "steps.fail",
        runId=args.run_id,
        step=number,
        errorMessage=args.message,
        failRun=False if args.keep_run else None,
    )
    return reply(args, change, _show_change)


def steps_rm_from(session: Session, args: Args) -> int:
    """``simpleaide steps rm-from``."""
    number = step_number(session, args.run_id, args.step)
    run = session.call("steps.deleteFrom", runId=args.run_id, fromStep=number)
    return reply(
        args,
        run,
        lambda run: print(
            f"run {run['id']}: steps from {number} deleted, {run['stepCount']} kept; "
            f"the run {tables.status_phrase(run['status'])}"
        ),
    )


def steps_ls(session: Session, args: Args) -> int:
    """``simpleaide steps ls``."""

    def show(steps: list[dict[str, Any]]) -> None:
        if steps:
            print(steps_table(steps))
        else:
            print(escape(f"run {args.run_id} has no steps"), file=sys.stderr)

    return reply(args, session.call("steps.list", runId=args.run_id), show)
