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

from simpleaide import paths, stdout
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
    EXIT_USAGE,
    CliError,
    Session,
    describe,
    remember_command_line,
    replace_run_id,
)
from simpleaide.statusline import FORMATS

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~2 ms to import; annotations are not evaluated at run time
    import argparse
    from collections.abc import Callable, Sequence
    from typing import Any, NoReturn

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
        completion,
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

    parser = suggesting_parser()(
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
        completion,
    )
    for module in modules:
        module.register(tree)
    if "_ARGCOMPLETE" in os.environ:  # a shell asks for completions (simpleaide completion)
        completion.autocomplete(parser)  # answers and exits
    return parser


def suggesting_parser() -> type[argparse.ArgumentParser]:
    """argparse's parser, with "did you mean" for a misspelt command or option (difflib:
    argparse's own ``suggest_on_error`` needs Python 3.14). Every subparser is one too.

    A wrong command says ``simpleaide: 'rnus' is not a command. did you mean 'runs'?``, an
    unknown option ``simpleaide runs rm: unrecognized option '--forse' (did you mean
    '--force'?)``; both after the usage, with exit status 2 as every usage error."""
    import argparse

    class SuggestingParser(argparse.ArgumentParser):
        # The parsers of the command being parsed, outermost first: an unknown option is
        # left over by the command's own parser and reported by the outermost one, which
        # must name the option the command has.
        parsing: list[argparse.ArgumentParser] = []
        # The arguments the outermost parser was given.
        argv: list[str] = []
        # The arguments this parser was given (its command's, for a subparser).
        given: list[str] | None = None

        def parse_args(self, args: Any = None, namespace: Any = None) -> Any:
            del self.parsing[:]
            self.argv[:] = sys.argv[1:] if args is None else args
            parsed, extras = self.parse_known_args(args, namespace)
            if extras:
                innermost = self.parsing[-1] if self.parsing else self
                assert isinstance(innermost, SuggestingParser)
                innermost.unrecognized(extras)
            return parsed

        def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
            self.parsing.append(self)
            self.given = list(sys.argv[1:] if args is None else args)
            return super().parse_known_args(args, namespace)

        def _check_value(self, action: argparse.Action, value: Any) -> None:
            choices = action.choices
            if choices is None or value in choices:
                return
            names = [str(choice) for choice in choices]
            close = _closest(str(value), names)
            if isinstance(action, argparse._SubParsersAction):
                self.unknown_before_command()  # --sockt x status: x is no command
                noun = self.prog.partition(" ")[2]
                what = f"a {noun} command" if noun else "a command"
                if close:
                    self.usage_error(f"{value!r} is not {what}. did you mean {close!r}?")
                self.usage_error(f"{value!r} is not {what} (choose from {', '.join(names)})")
            try:
                super()._check_value(action, value)
            except argparse.ArgumentError as exc:
                if close is None:
                    raise
                raise argparse.ArgumentError(
                    action, f"{exc.message}; did you mean {close!r}?"
                ) from None

        def error(self, message: str) -> NoReturn:
            if message.startswith("the following arguments are required"):
                self.unknown_before_command()  # --verison: no command given
            super().error(message)

        def unknown_before_command(self) -> None:
            """For a parser of commands (the outermost, or a noun's such as ``runs``): exit 2
            for the unknown ``--`` options given to it before the command, if any. They are
            what went wrong when argparse finds no command (``--verison``, ``runs
            --verison``) or takes an option's value for it (``--sockt x status``, ``runs
            --sockt x ls``)."""
            if self.given is None:
                return
            commands: set[str] = set()
            for action in self._actions:
                if isinstance(action, argparse._SubParsersAction):
                    commands.update(action.choices)
            unknown = []
            for token in self.given:
                if token == "--" or token in commands:
                    break
                name = token.partition("=")[0]
                known = (option.startswith(name) for option in self._option_string_actions)
                if name.startswith("--") and not any(known):  # argparse takes a unique start
                    unknown.append(token)
            if unknown:
                self.unrecognized(unknown)

        def unrecognized(self, extras: list[str]) -> None:
            """Exit 2 for the ``extras`` left over, naming the options this parser has."""
            options = [extra for extra in extras if extra.startswith("-") and extra != "-"]
            if not options:
                self.error(f"unrecognized arguments: {' '.join(extras)}")
            known = [name for name in self._option_string_actions if name.startswith("--")]
            # The outermost parser's options (--version) for a hint none of this one's gives.
            top = self.parsing[0] if self.parsing else self
            top_known = [name for name in top._option_string_actions if name.startswith("--")]
            unknown, misplaced = [], []
            for option in options:
                name = option.partition("=")[0]
                if name in self._option_string_actions:  # given before the command's name
                    where = f"{self.prog} ... {name}"
                    misplaced.append(f"option {name!r} goes after the command: {where}")
                    continue
                if top is not self and name in top_known:  # simpleaide status --version
                    where = f"{top.prog} {name}"
                    misplaced.append(f"option {name!r} goes before the command: {where}")
                    continue
                close = None
                if name.startswith("--"):
                    close = _closest(name, known) or _closest(name, top_known)
                unknown.append(f"{name!r}" + (f" (did you mean {close!r}?)" if close else ""))
            said = misplaced
            if unknown:
                plural = "s" if len(unknown) > 1 else ""
                said = [f"unrecognized option{plural} {', '.join(unknown)}", *misplaced]
            self.usage_error("; ".join(said))

        def usage_error(self, message: str) -> NoReturn:
            """The usage, then ``PROG: message``; exit 2."""
            self.print_usage(sys.stderr)
            self.exit(EXIT_USAGE, f"{self.prog}: {message}\n")

    return SuggestingParser


def _closest(word: str, candidates: Sequence[str]) -> str | None:
    """The candidate ``word`` was most likely meant to be, if one is close enough (case
    aside, and an option's dashes, which would make any two options look alike)."""
    import difflib

    by_key = {candidate.lower().lstrip("-"): candidate for candidate in candidates}
    found = difflib.get_close_matches(word.lower().lstrip("-"), list(by_key), n=1)
    return by_key[found[0]] if found else None


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
        # A command's checks of its options come first: a wrong combination is a usage
        # error, whatever its RUN_ID would resolve to (runs watch 2026 --all).
        usage_check: Callable[[Args], None] | None = getattr(args, "usage_check", None)
        if usage_check is not None:
            usage_check(args)
        if getattr(args, "run_id", None):  # every command's RUN_ID: a prefix, latest, @...
            from simpleaide.commands.runids import resolve_run_id

            typed = args.run_id
            args.run_id = resolve_run_id(session, typed)
            if args.run_id != typed:
                # A command suggested again (--force) names the run meant now, not one
                # that latest or a prefix may name by then.
                replace_run_id(typed, args.run_id)
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
        # An ambiguous RUN_ID lists the runs it may mean (runids.AmbiguousRunId).
        for line in getattr(exc, "candidates", ()):
            print(f"  {escape(line)}", file=sys.stderr)
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
    process that SIGPIPE ended (Python ignores SIGPIPE, so the write fails instead). Any
    other failure to write it (a full disk): exit 1, ``cannot write standard output: ...``.
    A current folder that was deleted: exit 1 with one line, for a command that needs it."""
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
    replaced = stdout.guard()
    remember_command_line(argv)
    try:
        try:
            args = _fast_status_args(argv) or build_parser().parse_args(argv)
            code = run(args)
        except SystemExit:  # argparse's --help, --version, usage errors: flushed here too
            sys.stdout.flush()
            raise
        sys.stdout.flush()  # here, where a broken pipe can still be handled
        return code
    except KeyboardInterrupt:
        _error("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``| head``): silence the final flush, as the Python docs advise.
        stdout.silence()
        return EXIT_BROKEN_PIPE
    except stdout.StdoutError as exc:
        _error(f"cannot write standard output: {exc}")
        stdout.silence()
        return EXIT_ERROR
    except paths.CurrentFolderGone as exc:
        _error(str(exc))
        return EXIT_ERROR
    finally:
        sys.stdout = replaced


if __name__ == "__main__":
    sys.exit(main())
