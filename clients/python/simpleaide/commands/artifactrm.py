"""``simpleaide artifacts rm``: delete one artifact of a step (``artifacts.delete``)."""

from __future__ import annotations

from simpleaide.commands import RUN_HELP, STEP_HELP, reply
from simpleaide.commands.steps import step_number
from simpleaide.safetext import escape

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~2 ms to import; annotations are not evaluated at run time
    from simpleaide.commands import Commands
    from simpleaide.session import Args, Session


def register(artifacts: Commands) -> None:
    """The ``artifacts rm`` command, declared among the ``artifacts`` commands."""
    rm = artifacts.add(
        "rm",
        "delete an artifact of a step",
        artifacts_rm,
        description="Delete artifact NAME of a step, at once and for good (the daemon syncs\n"
        "the folder before it answers). A finished run's artifacts may be deleted too; the\n"
        "run's record and status stay as they are. A name that is not there is an error\n"
        "(exit 1).",
    )
    rm.add_argument("run_id", metavar="RUN_ID", help=RUN_HELP)
    rm.add_argument("step", metavar="STEP", help=STEP_HELP)
    rm.add_argument("name", metavar="NAME", help="the artifact's name, as artifacts ls shows it")


def artifacts_rm(session: Session, args: Args) -> int:
    """``simpleaide artifacts rm``."""
    number = step_number(session, args.run_id, args.step)
    gone = session.call("artifacts.delete", runId=args.run_id, step=number, name=args.name)
    return reply(
        args,
        gone,
        lambda gone: print(
            escape(f"deleted {gone['name']} from step {gone['step']} of run {gone['runId']}")
        ),
    )
