"""The ``simpleaide`` command line: the command tree, and the entry point.

Exit codes: 0 ok, 1 an error from the daemon (one line on stderr), 2 bad usage (argparse's),
3 no daemon answers. If none answers, a daemon is started first unless ``--no-spawn``.

``simpleaide status`` is what status lines run every few seconds, so its path is kept cheap:
a plain ``status`` invocation is parsed by hand (importing argparse and building the whole
command tree costs several milliseconds) and what it does not need is imported lazily.
"""

from __future__ import annotations

import os
import sys

from simpleaide import status
from simpleaide.client import (
    DEFAULT_TIMEOUT,
    ClientError,
    DaemonUnreachable,
    RpcError,
    SpawnError,
)
from simpleaide.safetext import escape
from simpleaide.session import (
    EXIT_BROKEN_PIPE,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_UNREACHABLE,
    CliError,
    Session,
    describe,
)

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~2 ms to import; annotations are not evaluated at run time
    import argparse
    from collections.abc import Callable, Sequence
    from typing import Any

    from simpleaide.session import Args

STATUS_FORMATS = ("plain", "tmux", "waybar")
RUN_STATUSES = ("pending", "running", "completed", "failed", "cancelled", "corrupt")

DESCRIPTION = """\
simpleaide talks to simpleaided, the per-user SimpleAide daemon, over its Unix socket: status
chips for status lines, runs and their steps and artifacts, workspaces, the secrets vault, the
database and LLM backends, and the daemon itself.
If no daemon answers, one is started in the background first (unless --no-spawn).
"""

EPILOG = """\
examples:
  simpleaide status                        DEV 🟢 · Vault 🔒 · DB ✅ · LLM 2/3 · Run ⏳ 1
  id=$(simpleaide runs create --title "Refactor parser")
  simpleaide steps add "$id" plan --start
  simpleaide artifacts put "$id" plan plan.md plan.md
  simpleaide steps done "$id" plan
  simpleaide runs complete "$id"

exit status: 0 ok, 1 error from the daemon, 2 bad usage, 3 no daemon answers.
environment: SIMPLEAIDE_SOCKET (the socket; --socket wins), XDG_RUNTIME_DIR, XDG_STATE_HOME
(the log of a daemon started by simpleaide: $XDG_STATE_HOME/simpleaide/daemon.log).
"""


def _seconds(text: str) -> float | None:
    """A positive number of seconds, or ``None`` if ``text`` is not one."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if 0 < value < float("inf") else None


def _positive_float(text: str) -> float:
    import argparse

    value = _seconds(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"not a positive number of seconds: {text!r}")
    return value


def _page_size(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError("must be between 1 and 1000")
    return value


def _count(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def _pid(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"not a process id: {text!r}")
    return value


def _days(text: str) -> float:
    import argparse

    value = _seconds(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"not a positive number of days: {text!r}")
    return value


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("simpleaided")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree."""
    import argparse

    from simpleaide import commands

    class VersionAction(argparse.Action):
        """``--version``, reading the installed version only when asked."""

        def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
            print(f"simpleaide {_version()}")
            parser.exit()

    def add_globals(parser: argparse.ArgumentParser, suppress: bool) -> None:
        # Given before or after the command; on commands, SUPPRESS keeps an absent option
        # from overwriting the value parsed before the command.
        def default(value: Any) -> Any:
            return argparse.SUPPRESS if suppress else value

        group = parser.add_argument_group("connection")
        group.add_argument(
            "--socket",
            metavar="PATH",
            default=default(None),
            help="the daemon's socket (default: $SIMPLEAIDE_SOCKET, else "
            "$XDG_RUNTIME_DIR/simpleaide/daemon.sock, else /tmp/simpleaide-UID/daemon.sock)",
        )
        group.add_argument(
            "--no-spawn",
            action="store_true",
            default=default(False),
            help="do not start a daemon when none answers (exit 3 instead)",
        )
        group.add_argument(
            "--timeout",
            metavar="SECONDS",
            type=_positive_float,
            default=default(DEFAULT_TIMEOUT),
            help=f"how long to wait for a reply (default: {DEFAULT_TIMEOUT:g})",
        )

    common = argparse.ArgumentParser(add_help=False)
    add_globals(common, suppress=True)
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print the daemon's JSON result")

    parser = argparse.ArgumentParser(
        prog="simpleaide",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_globals(parser, suppress=False)
    parser.add_argument(
        "--version",
        action=VersionAction,
        nargs=0,
        default=argparse.SUPPRESS,
        help="show the version",
    )
    tree = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    def command(
        group: Any,
        name: str,
        summary: str,
        handler: Callable[[Session, Args], int] | None,
        *,
        description: str | None = None,
        json_output: bool = True,
    ) -> argparse.ArgumentParser:
        parents = [common, as_json] if json_output else [common]
        sub: argparse.ArgumentParser = group.add_parser(
            name,
            help=summary,
            description=description or summary,
            parents=parents,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if handler is not None:
            sub.set_defaults(handler=handler)
        return sub

    # status
    status_parser = command(
        tree,
        "status",
        "one line of status chips (for shells, tmux, waybar)",
        status.status,
        description="Print the status as one line of chips:\n"
        "  DEV 🟢 / PROD 🔴   environment profile\n"
        "  Vault 🔒 / 🔓 / –   vault locked, unlocked, not set up\n"
        "  DB ✅ / DB OFF      database connection (+ RO when read-only)\n"
        "  LLM 2/3            LLM backends online / configured (– if none)\n"
        "  Run ⏳ N           N runs active; else the last run: ✓ completed, ✗ failed,\n"
        "                     ⊘ cancelled, ⏸ pending, – none\n"
        "  ⚠ N                the daemon has N warnings\n"
        "With --format tmux the chips carry #[fg=...] colours; with --format waybar a JSON\n"
        "object {text, tooltip, class} for a waybar custom module (return-type json).\n"
        "When no daemon answers, tmux and waybar formats print an OFF chip (exit 3 for\n"
        "tmux; 0 for waybar, which hides a module whose command fails).\n\n"
        "  tmux:   set -g status-right '#(simpleaide status --format tmux)'\n"
        '  waybar: "custom/simpleaide": {"exec": "simpleaide status --follow --format waybar",\n'
        '                                "return-type": "json", "restart-interval": 5}\n'
        "With --follow it keeps running and prints a new line at each change (waybar reads\n"
        "each line); when the daemon goes away it shows the OFF chip and waits for a\n"
        "daemon to answer again (it never starts one then).",
    )
    # Forked by status lines every few seconds: no protocol-version round trip.
    status_parser.set_defaults(check_version=False)
    status_parser.add_argument(
        "--format",
        choices=STATUS_FORMATS,
        default="plain",
        help="plain (default), tmux or waybar",
    )
    status_parser.add_argument(
        "--workspace", metavar="PATH", help="count only the runs of this workspace"
    )
    status_parser.add_argument(
        "--follow",
        action="store_true",
        help="keep running: a new line at each change, from a subscription (no polling); "
        "as 'simpleaide watch'",
    )

    from simpleaide import watch

    watch_parser = command(
        tree,
        "watch",
        "the status chips, live",
        watch.watch,
        description="Print the status chips (as 'status' does) and again whenever they\n"
        "change, until Ctrl-C. On a terminal the line is rewritten in place; into a pipe\n"
        "each change is a new line (tmux and waybar read the last one). With --json, each\n"
        "status document is one line of JSON. When the daemon goes away: plain and JSON\n"
        "exit 3; tmux and waybar show the OFF chip and wait for a daemon to answer again.",
    )
    watch_parser.add_argument(
        "--format", choices=watch.FORMATS, default="plain", help="plain (default), tmux or waybar"
    )
    watch_parser.add_argument(
        "--workspace", metavar="PATH", help="count only the runs of this workspace"
    )

    run_help = "the run's id, as printed by runs create and runs ls"

    # runs
    runs = command(tree, "runs", "list, show, create and finish runs", None, json_output=False)
    run_commands = runs.add_subparsers(title="commands", metavar="COMMAND", required=True)
    ls = command(
        run_commands,
        "ls",
        "list runs, newest first",
        commands.runs_ls,
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
    ls.add_argument("--limit", type=_page_size, default=50, help="at most N runs (default 50)")
    ls.add_argument("--before", metavar="RUN_ID", help="only runs older than this one (paging)")

    show = command(run_commands, "show", "a run's fields and its steps", commands.runs_show)
    show.add_argument("run_id", metavar="RUN_ID", help=run_help)

    create = command(
        run_commands,
        "create",
        "create a pending run and print its id",
        commands.runs_create,
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
        type=_pid,
        help="the process driving the run: when it exits, the daemon ends the run "
        "(running: failed, pending: cancelled) with 'interrupted: owner process PID exited'",
    )

    complete = command(
        run_commands,
        "complete",
        "mark a running run completed",
        commands.finish_run("runs.complete", force="force"),
        description="Mark a running run completed. Refused while one of its steps is still\n"
        "pending or running, unless --force, which closes them: a running step fails\n"
        "('run completed while the step was open'), a pending one is skipped.",
    )
    complete.add_argument("run_id", metavar="RUN_ID", help=run_help)
    complete.add_argument(
        "--force", action="store_true", help="complete it even with open steps, closing them"
    )
    cancel = command(
        run_commands,
        "cancel",
        "cancel a pending or running run (its open steps are closed)",
        commands.finish_run("runs.cancel"),
    )
    cancel.add_argument("run_id", metavar="RUN_ID", help=run_help)
    fail = command(
        run_commands,
        "fail",
        "mark a running run failed",
        commands.finish_run("runs.fail", errorMessage="message"),
    )
    fail.add_argument("run_id", metavar="RUN_ID", help=run_help)
    fail.add_argument("--message", "-m", required=True, help="why it failed")

    rm = command(
        run_commands,
        "rm",
        "delete a run and its files",
        commands.runs_rm,
        description="Delete a run and all its files. A running run is refused unless --force.",
    )
    rm.add_argument("run_id", metavar="RUN_ID", help=run_help)
    rm.add_argument("--force", action="store_true", help="delete it even if it is running")

    prune = command(
        run_commands,
        "prune",
        "delete old finished runs",
        commands.runs_prune,
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
        "--keep", metavar="N", type=_count, help="keep the newest N finished runs per workspace"
    )
    prune.add_argument(
        "--older-than",
        metavar="DAYS",
        type=_days,
        help="delete finished runs that ended more than DAYS ago (fractions allowed)",
    )
    prune.add_argument(
        "--dry-run", action="store_true", help="list what would be deleted; delete nothing"
    )

    # steps
    step_help = "the step: its number (2), folder (02_code) or name (code)"
    steps = command(tree, "steps", "add steps and move them along", None, json_output=False)
    step_commands = steps.add_subparsers(title="commands", metavar="COMMAND", required=True)
    add = command(
        step_commands,
        "add",
        "add the next step to a run and print its number",
        commands.steps_add,
        description="Add the next step to a run (the run becomes running) and print the new\n"
        "step's number alone. Step names: 1-64 of a-z 0-9 _ -, starting with a letter or digit.",
    )
    add.add_argument("run_id", metavar="RUN_ID", help=run_help)
    add.add_argument("name", metavar="NAME", help="the step's name, e.g. plan")
    add.add_argument("--start", action="store_true", help="start it at once")
    for name, method, summary in [
        ("start", "steps.start", "start a pending step"),
        ("done", "steps.complete", "complete a running step"),
        ("skip", "steps.skip", "skip a running step"),
    ]:
        sub = command(step_commands, name, summary, commands.move_step(method))
        sub.add_argument("run_id", metavar="RUN_ID", help=run_help)
        sub.add_argument("step", metavar="STEP", help=step_help)
    sfail = command(
        step_commands,
        "fail",
        "fail a step (and its run, unless --keep-run)",
        commands.steps_fail,
    )
    sfail.add_argument("run_id", metavar="RUN_ID", help=run_help)
    sfail.add_argument("step", metavar="STEP", help=step_help)
    sfail.add_argument("--message", "-m", required=True, help="why it failed")
    sfail.add_argument("--keep-run", action="store_true", help="leave the run running")
    rmfrom = command(
        step_commands,
        "rm-from",
        "delete a step and all later ones (rerun from a checkpoint)",
        commands.steps_rm_from,
        description="Delete STEP and every later step; the run keeps the earlier ones and\n"
        "becomes pending again, ready for the next step.",
    )
    rmfrom.add_argument("run_id", metavar="RUN_ID", help=run_help)
    rmfrom.add_argument("step", metavar="STEP", help=step_help)
    sls = command(step_commands, "ls", "list a run's steps", commands.steps_ls)
    sls.add_argument("run_id", metavar="RUN_ID", help=run_help)

    # artifacts
    artifacts = command(
        tree, "artifacts", "save, read and list step artifacts", None, json_output=False
    )
    artifact_commands = artifacts.add_subparsers(title="commands", metavar="COMMAND", required=True)
    put = command(
        artifact_commands,
        "put",
        "save an artifact of a step from a file or stdin",
        commands.artifacts_put,
        description="Save FILE (or stdin) as artifact NAME of a step, replacing one of the\n"
        "same name. Any bytes are kept exactly.",
    )
    put.add_argument("run_id", metavar="RUN_ID", help=run_help)
    put.add_argument("step", metavar="STEP", help=step_help)
    put.add_argument("name", metavar="NAME", help="the artifact's name, e.g. plan.md")
    put.add_argument("file", metavar="FILE", nargs="?", default="-", help="default: stdin (-)")
    get = command(
        artifact_commands,
        "get",
        "write an artifact's bytes to stdout or a file",
        commands.artifacts_get,
        json_output=False,
    )
    get.add_argument("run_id", metavar="RUN_ID", help=run_help)
    get.add_argument("step", metavar="STEP", help=step_help)
    get.add_argument("name", metavar="NAME", help="the artifact's name")
    get.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    als = command(
        artifact_commands, "ls", "list the artifacts of a run or a step", commands.artifacts_ls
    )
    als.add_argument("run_id", metavar="RUN_ID", help=run_help)
    als.add_argument("step", metavar="STEP", nargs="?", help=step_help)

    # workspaces
    workspaces = command(
        tree, "workspaces", "the workspaces the daemon serves", None, json_output=False
    )
    ws_commands = workspaces.add_subparsers(title="commands", metavar="COMMAND", required=True)
    command(ws_commands, "ls", "list served workspaces", commands.workspaces_ls)
    wadd = command(
        ws_commands,
        "add",
        "serve a workspace (creates PATH/.simpleaide/runs)",
        commands.workspaces_add,
    )
    wadd.add_argument("path", metavar="PATH")
    wrm = command(
        ws_commands,
        "rm",
        "stop serving a workspace (its files stay)",
        commands.workspaces_rm,
    )
    wrm.add_argument("path", metavar="PATH")

    # vault
    from simpleaide import backends

    secret_input = (
        "Passphrases and values are read from the terminal without echo; when stdin is not\n"
        "a terminal (scripts), passphrases one per line (a new one twice, on two lines that\n"
        "must match) and a value as all of stdin (less one trailing newline). Never from\n"
        "the command line."
    )
    vault = command(tree, "vault", "the encrypted secrets vault", None, json_output=False)
    vault_commands = vault.add_subparsers(title="commands", metavar="COMMAND", required=True)
    command(
        vault_commands,
        "status",
        "locked or not, when it locks, where it lives",
        backends.vault_status,
    )
    command(
        vault_commands,
        "init",
        "create the vault (asks for a new passphrase twice)",
        backends.vault_init,
        description="Create an empty vault, encrypted under a new passphrase (8 characters or\n"
        "more; asked twice). It starts unlocked.\n" + secret_input,
    )
    unlock = command(
        vault_commands,
        "unlock",
        "unlock the vault (asks for the passphrase)",
        backends.vault_unlock,
        description="Unlock the vault. It locks itself again after the idle time (vault.\n"
        "idle_lock_seconds; --ttl for this unlock) and at most vault.max_unlock_seconds\n"
        "after unlocking. After a wrong passphrase each further attempt waits longer.\n"
        + secret_input,
    )
    unlock.add_argument(
        "--ttl",
        metavar="SECONDS",
        type=_positive_float,
        help="lock after SECONDS unused (instead of the configured idle time)",
    )
    command(vault_commands, "lock", "lock the vault now (forget the key)", backends.vault_lock)
    command(
        vault_commands,
        "passwd",
        "change the passphrase (asks for the current one, then the new one twice)",
        backends.vault_passwd,
        description="Re-encrypt the vault under a new passphrase.\n" + secret_input,
    )
    secret_name = "the secret's name: 1-128 of A-Z a-z 0-9 . _ -, starting with a letter or digit"
    vset = command(
        vault_commands,
        "set",
        "store a secret (asks for the value)",
        backends.vault_set,
        description="Store a secret under NAME, replacing one of the same name. Settings\n"
        "refer to it as vault:NAME (a database password, an LLM API key).\n" + secret_input,
    )
    vset.add_argument("name", metavar="NAME", help=secret_name)
    vget = command(
        vault_commands, "get", "print a secret's value (vault unlocked)", backends.vault_get
    )
    vget.add_argument("name", metavar="NAME", help=secret_name)
    command(vault_commands, "ls", "list the secrets' names (vault unlocked)", backends.vault_ls)
    vrm = command(vault_commands, "rm", "delete a secret (vault unlocked)", backends.vault_rm)
    vrm.add_argument("name", metavar="NAME", help=secret_name)

    # db and llm
    db = command(tree, "db", "the database of the active profile", None, json_output=False)
    db_commands = db.add_subparsers(title="commands", metavar="COMMAND", required=True)
    command(
        db_commands,
        "status",
        "connected or not, type, read-only, latency, last error",
        backends.db_status,
        description="Show the database of the active profile (DEV or PROD) as the daemon's\n"
        "last probe found it. In PROD the connection is read-only in the database itself.",
    )
    llm = command(tree, "llm", "the configured LLM backends", None, json_output=False)
    llm_commands = llm.add_subparsers(title="commands", metavar="COMMAND", required=True)
    llm_status = command(
        llm_commands,
        "status",
        "a table of the LLM backends: online, latency, models, error",
        backends.llm_status,
        description="Show each configured LLM backend as the last probe found it: online\n"
        "means reachable, models listed, and the configured model among them.",
    )
    llm_status.add_argument("--probe", action="store_true", help="probe every backend now first")

    # daemon
    daemon = command(tree, "daemon", "start, stop and inspect the daemon", None, json_output=False)
    daemon_commands = daemon.add_subparsers(title="commands", metavar="COMMAND", required=True)
    command(
        daemon_commands,
        "start",
        "start the daemon in the background; return once it answers",
        commands.daemon_start,
        description="Start simpleaided in the background (its output goes to\n"
        "$XDG_STATE_HOME/simpleaide/daemon.log) and return once it answers. If one is\n"
        "already answering, say so and succeed.",
        json_output=False,
    )
    command(
        daemon_commands,
        "stop",
        "stop the daemon (SIGTERM) and wait until it has gone",
        commands.daemon_stop,
        description="Ask the daemon to stop (SIGTERM; requests in progress finish first) and\n"
        "wait until it has gone. Succeeds, saying so, if none was running.",
        json_output=False,
    )
    command(
        daemon_commands,
        "status",
        "the daemon's version, pid, socket, uptime, runs, warnings",
        commands.daemon_status,
        description="Show the daemon's version, pid, socket, uptime, counts and warnings;\n"
        "exit 3 when none answers (a daemon is never started for this).",
    )
    from simpleaide import units

    # Not through command(): these never talk to the daemon, so no connection options.
    unit_dir_help = "the user unit folder (default: $XDG_CONFIG_HOME/systemd/user)"
    install_units = daemon_commands.add_parser(
        "install-units",
        help="install the systemd user units (socket activation)",
        description=units.INSTALL_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    install_units.set_defaults(handler=units.install_units)
    install_units.add_argument("--dir", metavar="DIR", help=unit_dir_help)
    install_units.add_argument(
        "--force", action="store_true", help="replace unit files that exist and differ"
    )
    uninstall_units = daemon_commands.add_parser(
        "uninstall-units",
        help="remove the systemd user units that install-units wrote",
        description=units.UNINSTALL_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    uninstall_units.set_defaults(handler=units.uninstall_units)
    uninstall_units.add_argument("--dir", metavar="DIR", help=unit_dir_help)
    return parser


def _fast_status_args(argv: list[str]) -> Any:
    """The arguments of a plain ``status`` invocation, parsed by hand, or ``None`` to let
    argparse handle anything else (help, errors, other commands)."""
    from types import SimpleNamespace

    args = SimpleNamespace(
        socket=None,
        no_spawn=False,
        timeout=DEFAULT_TIMEOUT,
        json=False,
        format="plain",
        workspace=None,
        handler=status.status,
        check_version=False,
        follow=False,  # --follow takes argparse's way
    )
    seen_command = False
    i = 0
    while i < len(argv):
        token = argv[i]
        name, eq, value = token.partition("=")
        if token == "status" and not seen_command:
            seen_command = True
        elif token == "--json" and seen_command:
            args.json = True
        elif token == "--no-spawn":
            args.no_spawn = True
        elif name in ("--socket", "--timeout") or (
            name in ("--format", "--workspace") and seen_command
        ):
            if not eq:
                i += 1
                if i >= len(argv):
                    return None
                value = argv[i]
            if not value or value.startswith("-"):
                return None
            if name == "--format" and value not in STATUS_FORMATS:
                return None
            if name == "--timeout":
                args.timeout = _seconds(value)
                if args.timeout is None:
                    return None
            else:
                setattr(args, name[2:], value)
        else:
            return None
        i += 1
    return args if seen_command else None


def run(args: Args) -> int:
    """Run the parsed command; errors become one line on stderr and an exit status (a
    daemon that failed to start has the lines of its log quoted below that line)."""
    session = Session(args, check_version=getattr(args, "check_version", True))
    try:
        handler: Callable[[Session, Args], int] = args.handler
        return handler(session, args)
    except SpawnError as exc:
        _error(exc.summary, quoted=exc.log_lines)
        return EXIT_UNREACHABLE
    except DaemonUnreachable as exc:
        _error(str(exc))
        return EXIT_UNREACHABLE
    except RpcError as exc:
        _error(describe(exc))
        return EXIT_ERROR
    except ClientError as exc:
        _error(str(exc))
        return EXIT_ERROR
    except CliError as exc:
        _error(exc.message)
        return exc.code
    finally:
        session.close()


def _error(message: str, *, quoted: Sequence[str] = ()) -> None:
    """One line on stderr, then the ``quoted`` lines (a log's) indented below it. Each is
    escaped on its own: a line break inside one is data and shows as ``\\x0a``."""
    lines = "".join(f"\n  | {escape(line)}" for line in quoted)
    print(f"simpleaide: {escape(message)}{lines}", file=sys.stderr)


def _stdout_writable() -> bool:
    """Whether standard output can be written: ``>&-`` closes it (Python then has no
    ``sys.stdout``), ``1</dev/null`` opens it read-only."""
    if sys.stdout is None:
        return False
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError):  # not backed by a file descriptor (a test's capture)
        return True
    import fcntl

    try:
        mode = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE
    except OSError:
        return False
    return mode != os.O_RDONLY


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``simpleaide`` command; returns the exit status.

    Standard output closed or read-only: exit 1 with one line, before doing anything. A
    reader that goes away (``| head -1``): exit 141, silently, as a shell reports a
    process that SIGPIPE ended (Python ignores SIGPIPE, so the write fails instead)."""
    argv = sys.argv[1:] if argv is None else argv
    # A status line must print something even under an odd locale rather than crash.
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    if not _stdout_writable():
        # Refused before anything is done: a command's answer (a new run's id) would be lost.
        _error("standard output is closed or read-only")
        return EXIT_ERROR
    try:
        args = _fast_status_args(argv) or build_parser().parse_args(argv)
        code = run(args)
        sys.stdout.flush()  # here, where a broken pipe can still be handled
        return code
    except KeyboardInterrupt:
        _error("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``| head``): silence the final flush, as the Python docs advise.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
