"""``simpleaide runs``: list, show, create, finish, delete and prune runs (``watch``, which
follows their events, is declared by ``commands.runwatch``)."""

from __future__ import annotations

import sys

from simpleaide import paths, stdout, tables
from simpleaide.commands import RUN_HELP, count, days, page_size, pid, reply, runwatch
from simpleaide.commands.steps import steps_table
from simpleaide.safetext import escape
from simpleaide.session import EXIT_ERROR, EXIT_USAGE, CliError, Session, workspace_call

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~2 ms to import; annotations are not evaluated at run time
    from typing import Any

    from simpleaide.commands import Commands, Handler
    from simpleaide.session import Args

RUN_STATUSES = ("pending", "running", "completed", "failed", "cancelled", "corrupt")


def register(tree: Commands) -> None:
    """The ``runs`` commands."""
    runs = tree.group("runs", "list, show, create and finish runs")
    ls = runs.add(
        "ls",
        "list runs, newest first",
        runs_ls,
        description="List runs, newest first, as a table that fits the terminal. Without\n"
        "--workspace or --all: the runs of the nearest folder at or above the current one\n"
        "holding .simpleaide/, else all runs. AGE counts from the end of a finished run,\n"
        "else from its start.",
    )
    scope = ls.add_mutually_exclusive_group()
    scope.add_argument("--workspace", metavar="PATH", help="the runs of this workspace")
    scope.add_argument("--all", action="store_true", help="the runs of every workspace")
    ls.add_argument(
        "--status",
        nargs="+",
        action="extend",
        choices=RUN_STATUSES,
        metavar="STATUS",
        help=f"only runs in these statuses ({', '.join(RUN_STATUSES)})",
    )
    ls.add_argument("--limit", type=page_size, default=50, help="at most N runs (default 50)")
    ls.add_argument("--before", metavar="RUN_ID", help="only runs older than this one (paging)")

    show = runs.add("show", "a run's fields and its steps", runs_show)
    show.add_argument("run_id", metavar="RUN_ID", help=RUN_HELP)

    create = runs.add(
        "create",
        "create a pending run and print its id",
        runs_create,
        description="Create a pending run and print its id alone, for scripts:\n"
        "  id=$(simpleaide runs create --title 'Fix the parser')\n"
        "The workspace defaults to the nearest folder at or above the current one holding\n"
        ".simpleaide/, else the current folder (which the daemon then serves).",
    )
    create.add_argument("--workspace", metavar="PATH", help="the workspace of the run")
    create.add_argument("--title", metavar="TEXT", help="a title for the run")
    create.add_argument(
        "--owner-pid",
        metavar="PID",
        type=pid,
        help="the process driving the run: when it exits, the daemon ends the run "
        "(running: failed, pending: cancelled) with 'interrupted: owner process PID exited'",
    )

    complete = runs.add(
        "complete",
        "mark a running run completed",
        finish_run("runs.complete", force="force"),
        description="Mark a running run completed. Refused while one of its steps is still\n"
        "pending or running, unless --force, which closes them: a running step fails\n"
        "('run completed while the step was open'), a pending one is skipped.",
    )
    complete.add_argument("run_id", metavar="RUN_ID", help=RUN_HELP)
    complete.add_argument(
        "--force", action="store_true", help="complete it even with open steps, closing them"
    )
    cancel = runs.add(
        "cancel",
        "cancel a pending or running run (its open steps are closed)",
        finish_run("runs.cancel"),
    )
    cancel.add_argument("run_id", metavar="RUN_ID", help=RUN_HELP)
    fail = runs.add(
        "fail", "mark a running run failed", finish_run("runs.fail", errorMessage="message")
    )
    fail.add_argument("run_id", metavar="RUN_ID", help=RUN_HELP)
    fail.add_argument("--message", "-m", required=True, help="why it failed")

    rm = runs.add(
        "rm",
        "delete a run and its files",
        runs_rm,
        description="Delete a run and all its files. A running run is refused unless --force.",
    )
    rm.add_argument("run_id", metavar="RUN_ID", help=RUN_HELP)
    rm.add_argument("--force", action="store_true", help="delete it even if it is running")

    prune = runs.add(
        "prune",
        "delete old finished runs",
        runs_prune,
        description="Delete finished runs (completed, failed, cancelled) beyond --keep N per\n"
        "workspace or that ended more than --older-than DAYS ago (either limit selects a\n"
        "run); pending and running runs are never deleted, corrupt ones are left alone.\n"
        "Prints what was deleted (with --dry-run: what would be, and deletes nothing).\n"
        "Without --workspace or --all: the nearest folder at or above the current one\n"
        "holding .simpleaide/.\n\n"
        "  simpleaide runs prune --keep 50 --older-than 30 --dry-run",
    )
    prune_scope = prune.add_mutually_exclusive_group()
    prune_scope.add_argument("--workspace", metavar="PATH", help="the runs of this workspace")
    prune_scope.add_argument("--all", action="store_true", help="the runs of every workspace")
    prune.add_argument(
        "--keep", metavar="N", type=count, help="keep the newest N finished runs per workspace"
    )
    prune.add_argument(
        "--older-than",
        metavar="DAYS",
        type=days,
        help="delete finished runs that ended more than DAYS ago (fractions allowed)",
    )
    prune.add_argument(
        "--dry-run", action="store_true", help="list what would be deleted; delete nothing"
    )
    runwatch.register(runs)


def runs_ls(session: Session, args: Args) -> int:
    """``simpleaide runs ls``."""
    if args.all:
        workspace = None
    elif args.workspace:
        workspace = paths.absolute(args.workspace)
    else:
        workspace = paths.workspace_here()
        skipped = paths.passed_over()
        if skipped:  # else its runs would seem to be none
            print(escape(f"simpleaide: {skipped}"), file=sys.stderr)
    page = workspace_call(
        session,
        "runs.list",
        workspace,
        status=args.status or None,
        limit=args.limit,
        before=args.before,
    )

    def show(page: dict[str, Any]) -> None:
        rows = []
        for run in page["runs"]:
            title = run.get("title") or ""
            if run.get("status") == "corrupt":
                title = f"(corrupt: {run.get('errorMessage') or '?'})"
            rows.append(
                [
                    run["id"],
                    run["status"],
                    str(run.get("stepCount", 0)),
                    tables.local_time(run.get("startedAt")),
                    tables.age(run.get("completedAt") or run.get("startedAt")),
                    tables.one_line(title) if title else "-",
                ]
            )
        if not rows:
            where = f" in {workspace}" if workspace else ""
            print(escape(f"no runs{where}"), file=sys.stderr)
            return
        headers = ["ID", "STATUS", "STEPS", "STARTED", "AGE", "TITLE"]
        # No workspace chosen (--all, or outside any): say whose each run is, even when
        # they are all one workspace's (another project's, maybe).
        if workspace is None or len({run.get("workspace") for run in page["runs"]}) > 1:
            headers.insert(5, "WORKSPACE")
            for row, run in zip(rows, page["runs"], strict=True):
                row.insert(5, tables.home_path(run.get("workspace") or "-"))
        elastic = len(headers) - 1
        print(tables.render(headers, rows, elastic=elastic, status=1))
        if page.get("nextBefore"):
            print(f"(more: --before {page['nextBefore']})", file=sys.stderr)

    return reply(args, page, show)


def runs_show(session: Session, args: Args) -> int:
    """``simpleaide runs show``."""
    return reply(args, session.call("runs.get", runId=args.run_id, steps=True), _show_run)


def _show_run(run: dict[str, Any]) -> None:
    started = run.get("startedAt")
    print(
        tables.fields(
            [
                ("id", run["id"]),
                ("title", tables.one_line(run.get("title"))),
                ("status", run["status"]),
                ("workspace", run.get("workspace") or "-"),
                ("started", tables.time_and_age(started)),
                ("completed", tables.local_time(run.get("completedAt"))),
                ("error", tables.one_line(run.get("errorMessage"))),
                ("steps", str(run.get("stepCount", 0))),
                ("owner", f"pid {run['ownerPid']}" if run.get("ownerPid") else "-"),
            ],
            status="status",
        )
    )
    steps = run.get("steps")
    if steps:
        print()
        print(steps_table(steps))


def runs_create(session: Session, args: Args) -> int:
    """``simpleaide runs create``: prints the new run's id alone."""
    if args.workspace:
        workspace = paths.absolute(args.workspace)
    else:
        skipped = paths.passed_over(paths.current_folder())
        if skipped:  # never a second workspace made inside the one passed over
            raise CliError(f"{skipped}; or give --workspace PATH")
        workspace = paths.workspace_here() or paths.current_folder()
    run = session.call(
        "runs.create", workspace=workspace, title=args.title, ownerPid=args.owner_pid
    )
    try:
        code = reply(args, run, lambda run: print(run["id"]))
        sys.stdout.flush()  # here: the id must not be lost with the output (> /dev/full)
    except Exception as exc:
        if not isinstance(exc, stdout.StdoutError):
            raise
        said = f"run {run['id']} was created, but standard output cannot be written: {exc}"
        print(escape(f"simpleaide: {said}"), file=sys.stderr)
        stdout.silence()
        return EXIT_ERROR
    return code


def finish_run(method: str, **from_args: str) -> Handler:
    """A handler for ``method``; ``from_args`` maps wire parameters to argument names."""

    def handler(session: Session, args: Args) -> int:
        extra = {key: getattr(args, attr) for key, attr in from_args.items()}
        run = session.call(method, runId=args.run_id, **extra)
        return reply(
            args,
            run,
            lambda run: print(f"run {run['id']} {tables.status_phrase(run['status'])}"),
        )

    handler.__doc__ = f"``{method}``."
    return handler


def runs_rm(session: Session, args: Args) -> int:
    """``simpleaide runs rm``."""
    result = session.call("runs.delete", runId=args.run_id, force=args.force or None)
    return reply(args, result, lambda result: print(f"run {result['runId']} deleted"))


def runs_prune(session: Session, args: Args) -> int:
    """``simpleaide runs prune``: a table of the runs deleted (or that would be)."""
    if args.keep is None and args.older_than is None:
        raise CliError("give --keep N, --older-than DAYS or both", EXIT_USAGE)
    if args.all:
        workspace = None
    elif args.workspace:
        workspace = paths.absolute(args.workspace)
    else:
        workspace = paths.workspace_here()
        if workspace is None:
            skipped = paths.passed_over()
            raise CliError(
                f"not inside a workspace{f' ({skipped})' if skipped else ''}: give "
                "--workspace PATH, or --all for every one",
                EXIT_USAGE,
            )
    result = workspace_call(
        session,
        "runs.prune",
        workspace,
        keep=args.keep,
        olderThanDays=args.older_than,
        dryRun=args.dry_run or None,
    )

    def show(result: dict[str, Any]) -> None:
        runs = result["runs"]
        if not runs:
            print("nothing to prune")
            return
        headers = ["ID", "STATUS", "STARTED", "ENDED"]
        rows = [
            [
                run["id"],
                run["status"],
                tables.local_time(run.get("startedAt")),
                f"{tables.age(run.get('completedAt') or run.get('startedAt'))} ago",
            ]
            for run in runs
        ]
        if workspace is None:
            headers.append("WORKSPACE")
            for row, run in zip(rows, runs, strict=True):
                row.append(tables.home_path(run["workspace"]))
        print(tables.render(headers, rows, elastic=4 if workspace is None else None, status=1))
        counted = tables.plural(len(runs), "run")
        if result.get("dryRun"):
            print(f"{counted} would be deleted (dry run: nothing was deleted)")
        else:
            print(f"{counted} deleted")

    return reply(args, result, show)
