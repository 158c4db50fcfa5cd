"""The ``simpleaide`` command line: the entry point, and the top of the command tree (the
connection options); each module of ``simpleaide.commands`` declares its own commands.

Exit codes: 0 ok, 1 an error from the daemon (one line on stderr), 2 bad usage (argparse's),
3 no daemon answers. If none answers, a daemon is started first unless ``--no-spawn``.

``simpleaide status`` is what status lines run every few seconds, so its path is kept cheap:
a plain ``status`` invocation is parsed by hand (importing argparse and building the whole
command tree costs several milliseconds) and what it does not need is imported lazily.
"""

from __future__ import annotations

import os
import sys

from simpleaide.client import (
    DEFAULT_TIMEOUT,
    ClientError,
    DaemonUnreachable,
    RpcError,
    SpawnError,
)
from simpleaide.commands import positive_float, seconds, status
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
from simpleaide.statusline import FORMATS

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~2 ms to import; annotations are not evaluated at run time
    import argparse
    from collections.abc import Callable, Sequence
    from typing import Any

    from simpleaide.session import Args

DESCRIPTION = """\
simpleaide talks to simpleaided, the per-user SimpleAide daemon, over its Unix socket: status
chips for status lines, runs and their steps and artifacts, workspaces, the secrets vault, the
database and LLM backends, terminals hosted by the daemon (simpleaide term), the daemon
itself, and the web console (simpleaide open).
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


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("simpleaided")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree: the global options, then each command module's commands,
    in the order ``--help`` lists them."""
    import argparse

    from simpleaide.commands import (
        Commands,
        artifacts,
        daemon,
        db,
        llm,
        runs,
        steps,
        term,
        vault,
        watch,
        workspaces,
    )
    from simpleaide.commands import open as open_  # the module, not the builtin

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
            type=positive_float,
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
    tree = Commands(
        parser.add_subparsers(title="commands", metavar="COMMAND", required=True), common, as_json
    )
    modules = (
        status,
        watch,
        open_,
        runs,
        steps,
        artifacts,
        workspaces,
        vault,
        db,
        llm,
        term,
        daemon,
    )
    for module in modules:
        module.register(tree)
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
            if name == "--format" and value not in FORMATS:
                return None
            if name == "--timeout":
                args.timeout = seconds(value)
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
