"""``simpleaide runs watch``: runs' events, live, from ``runs.subscribe``.

One line per event (the local time to the second, the run id, what happened), or with
``--json`` each event as the daemon sends it, one JSON object per line. Watching one run ends
when that run ends (completed, failed, cancelled); watching a workspace, or every run, goes on
until Ctrl-C. Exit status: 0 (Ctrl-C, or the run ended; with ``--exit-status`` 1 when it
failed or was cancelled, as ``gh run watch --exit-status`` does), 1 when the watched run is
deleted or cannot be found, 3 when the daemon goes away.
"""

from __future__ import annotations

import os
import sys
import time

from simpleaide import fastjson, paths, tables
from simpleaide.client import DaemonUnreachable
from simpleaide.commands import RUN_HELP
from simpleaide.safetext import escape, json_safe
from simpleaide.session import EXIT_ERROR, EXIT_OK, EXIT_USAGE, CliError, Session, workspace_call

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~2 ms to import; annotations are not evaluated at run time
    from typing import Any

    from simpleaide.client import Client
    from simpleaide.commands import Commands
    from simpleaide.session import Args

FINISHED = ("completed", "failed", "cancelled")
_CLEAR_LINE = "\r\x1b[K"


def register(runs: Commands) -> None:
    """The ``runs watch`` command, declared among the ``runs`` commands."""
    watch = runs.add(
        "watch",
        "follow runs' events live: one run, this workspace's, or all",
        runs_watch,
        description="Print each event of a run as it happens, one line each: the time, the\n"
        "run, what changed (created, its status, a step's status, an artifact saved or\n"
        "deleted, deleted). With RUN_ID: that run, until it ends (its state now is the first\n"
        "line; a run that has ended already ends the watch at once). Without: the runs of\n"
        "the nearest folder at or above the current one holding .simpleaide/ (or of\n"
        "--workspace PATH, or --all), until Ctrl-C.\n"
        "With --json: one JSON object per line, each event as runs.subscribe sends it\n"
        '(watching one run, the first is {"type": "current", "runId", "run"}; events\n'
        'missed by a reader too slow come as {"overflow": true}).\n\n'
        "exit status: 0 on Ctrl-C or when the run ended (with --exit-status: 1 if it failed\n"
        "or was cancelled); 1 if the run is deleted meanwhile or cannot be found; 3 if the\n"
        "daemon goes away.",
    )
    watch.set_defaults(usage_check=check_options)
    watch.add_argument("run_id", metavar="RUN_ID", nargs="?", help=RUN_HELP)
    scope = watch.add_mutually_exclusive_group()
    scope.add_argument("--workspace", metavar="PATH", help="the runs of this workspace")
    scope.add_argument("--all", action="store_true", help="the runs of every workspace")
    watch.add_argument(
        "--exit-status",
        action="store_true",
        help="with RUN_ID: exit 1 if the run failed or was cancelled (0 if it completed)",
    )


def check_options(args: Args) -> None:
    """The usage errors of ``runs watch``: checked by ``cli.run`` before its ``RUN_ID`` is
    resolved (``runs watch 2026 --all`` is refused for its options, not for the runs 2026
    may name)."""
    if args.run_id and (args.workspace or args.all):
        raise CliError("give RUN_ID, or --workspace / --all, not both", EXIT_USAGE)
    if args.exit_status and not args.run_id:
        raise CliError("--exit-status is for watching one run: give its RUN_ID", EXIT_USAGE)


def runs_watch(session: Session, args: Args) -> int:
    """``simpleaide runs watch``: until the watched run ends, or Ctrl-C (exit 0, the ``^C``
    the terminal echoed wiped from the line)."""
    check_options(args)
    out = _Lines(json_lines=args.json)
    try:
        if args.run_id:
            return _watch_run(session, args.run_id, out, exit_status=args.exit_status)
        if args.all:
            return _watch_runs(session, None, out)
        workspace = paths.absolute(args.workspace) if args.workspace else paths.workspace_here()
        if workspace is None:
            raise CliError(
                "not inside a workspace (no .simpleaide/ here or above): give RUN_ID, "
                "--workspace PATH, or --all",
                EXIT_USAGE,
            )
        return _watch_runs(session, workspace, out)
    except KeyboardInterrupt:
        out.interrupted()
        return EXIT_OK


def _watch_run(session: Session, run_id: str, out: _Lines, *, exit_status: bool) -> int:
    """Follow one run until it ends; its exit status."""
    # Subscribed first, read second: a change in between is announced, never lost.
    session.call("runs.subscribe", runId=run_id)
    run = session.call("runs.get", runId=run_id)
    out.current(run)
    if run["status"] in FINISHED:
        return _ended(run["status"], exit_status)
    client = session.client()
    while True:
        params = _next_events(session, client)
        for event in params.get("events") or []:
            if not isinstance(event, dict) or event.get("runId") != run_id:
                continue
            out.event(event)
            kind = event.get("type")
            if kind == "deleted":
                raise CliError(f"run {run_id} was deleted")
            status = (event.get("run") or {}).get("status")
            if kind == "status" and status in FINISHED:
                return _ended(status, exit_status)
        if params.get("overflow"):
            # Some events were dropped (this reader fell behind): the run is read again.
            out.overflow()
            run = session.call("runs.get", runId=run_id)
            out.current(run)
            if run["status"] in FINISHED:
                return _ended(run["status"], exit_status)


def _ended(status: str, exit_status: bool) -> int:
    return EXIT_ERROR if exit_status and status != "completed" else EXIT_OK


def _watch_runs(session: Session, workspace: str | None, out: _Lines) -> int:
    """Follow every run (``workspace`` ``None``) or those of ``workspace``, until Ctrl-C."""
    canonical = None
    if workspace is not None:
        # Served first (a folder holding .simpleaide/ that the daemon does not serve yet is
        # served now, as runs ls does): else none of its runs would be followed.
        workspace_call(session, "runs.activeCount", workspace)
        canonical = os.path.realpath(workspace)  # how the daemon names it
    session.call("runs.subscribe")
    out.following(canonical)
    client = session.client()
    where: dict[str, str | None] = {}  # run id -> its workspace, as learnt
    while True:
        params = _next_events(session, client)
        for event in params.get("events") or []:
            if not isinstance(event, dict) or not isinstance(event.get("runId"), str):
                continue
            if canonical is not None and _workspace(session, event, where) != canonical:
                continue
            out.event(event, workspace=canonical is None)
        if params.get("overflow"):
            out.overflow()


def _workspace(session: Session, event: dict[str, Any], where: dict[str, str | None]) -> Any:
    """The workspace of an event's run: said by the event, else remembered, else asked of
    the daemon's memory (``runs.resolve``, once per run)."""
    run_id = event["runId"]
    said = event.get("workspace") or (event.get("run") or {}).get("workspace")
    if said:
        where[run_id] = said
        return said
    if run_id not in where:
        found = session.call("runs.resolve", prefix=run_id, limit=1)
        where[run_id] = found["runs"][0]["workspace"] if found["count"] == 1 else None
    return where[run_id]


def _next_events(session: Session, client: Client) -> dict[str, Any]:
    """The params of the next ``run.event`` notification."""
    while True:
        try:
            note = client.receive_notification(None)
        except DaemonUnreachable:
            raise DaemonUnreachable(
                f"simpleaided on {session.socket_path} went away; no more events"
            ) from None
        if note is None or note.get("method") != "run.event":
            continue
        params = note.get("params")
        if isinstance(params, dict):
            return params


class _Lines:
    """Where the events go: a line of words each, or a line of JSON each, flushed at once
    (a pipe reads each as it comes)."""

    def __init__(self, *, json_lines: bool) -> None:
        self.json_lines = json_lines
        self.titles: dict[str, str | None] = {}  # the title last seen of each run

    def current(self, run: dict[str, Any]) -> None:
        """The run as it is now (watching one run)."""
        self.titles[run["id"]] = run.get("title")
        if self.json_lines:
            self._json({"type": "current", "runId": run["id"], "run": run})
            return
        steps = tables.plural(int(run.get("stepCount") or 0), "step")
        said = f"{tables.status_phrase(run['status'])}, {steps}"
        if run.get("title"):
            said += f' "{_one_line(run["title"])}"'
        if run.get("errorMessage"):
            said += f": {_one_line(run['errorMessage'])}"
        self._line(run["id"], said)

    def following(self, workspace: str | None) -> None:
        """Say what is followed, once subscribed (not in JSON: only events go there)."""
        if not self.json_lines:
            scope = f"the runs of {workspace}" if workspace else "the runs of every workspace"
            self._line("", f"following {scope}; Ctrl-C to stop")

    def event(self, event: dict[str, Any], *, workspace: bool = False) -> None:
        """One event (``workspace``: say where a new run was created)."""
        if self.json_lines:
            self._json(event)
            return
        said = self._words(event, workspace)
        if said is not None:
            self._line(event["runId"], said)

    def _words(self, event: dict[str, Any], workspace: bool) -> str | None:
        kind = event.get("type")
        run = event.get("run") or {}
        if kind == "created":
            self.titles[event["runId"]] = run.get("title")
            said = f"created, {run.get('status', 'pending')}"
            if run.get("title"):
                said += f' "{_one_line(run["title"])}"'
            return f"{said} in {run.get('workspace')}" if workspace else said
        if kind == "status":
            said = f"{event.get('previous', '?')} → {run.get('status', '?')}"
            if run.get("status") == "failed" and run.get("errorMessage"):
                said += f": {_one_line(run['errorMessage'])}"
            return said
        if kind == "updated":
            # A step's change rewrites its run (its step count, its time): the step event
            # says it. A new title is the one change left to say.
            title = run.get("title")
            if title == self.titles.get(event["runId"], title):
                return None
            self.titles[event["runId"]] = title
            return f'title "{_one_line(title)}"' if title else "title removed"
        if kind == "step":
            step = event.get("step") or {}
            said = f"step {step.get('folder') or step.get('number', '?')} {step.get('status', '?')}"
            if step.get("errorMessage"):
                said += f": {_one_line(step['errorMessage'])}"
            return said
        if kind == "artifact":
            artifact = event.get("artifact") or {}
            said = f"step {artifact.get('step', '?')} artifact {artifact.get('name', '?')}"
            if artifact.get("deleted"):
                return f"{said} deleted"
            size = artifact.get("size")
            return f"{said} saved ({tables.size(size) if isinstance(size, int) else '?'})"
        if kind == "deleted":
            return "deleted"
        return str(kind)  # a kind of event this client does not know yet

    def overflow(self) -> None:
        if self.json_lines:
            self._json({"overflow": True})
        else:
            self._line("", "(events were missed: this watch fell behind)")

    def interrupted(self) -> None:
        """After Ctrl-C: wipe the ``^C`` the terminal echoed on the (fresh) line."""
        if sys.stdout.isatty():
            sys.stdout.write(_CLEAR_LINE)
            sys.stdout.flush()

    def _line(self, run_id: str, said: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        text = f"{stamp}  {run_id}  {said}" if run_id else f"{stamp}  {said}"
        print(escape(text), flush=True)

    def _json(self, value: Any) -> None:
        print(json_safe(fastjson.dumps(value)), flush=True)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())
