"""``simpleaide term``: the daemon's terminals — start one, list them, attach, kill, rename.

A terminal is a program (a shell by default) on a PTY that the daemon hosts: it outlives the
client that started it, and any number of clients attach to it, from here or from the web
console's Shell area. The attaching itself is ``simpleaide.attach``.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
import time

from simpleaide import paths, tables
from simpleaide.commands import reply
from simpleaide.detachkeys import KEYS_HELP, DetachFilter, key_names, parse_detach_keys
from simpleaide.safetext import escape
from simpleaide.session import EXIT_ERROR, EXIT_OK, CliError, Session

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~2 ms to import; annotations are not evaluated at run time
    from typing import Any

    from simpleaide.attach import Outcome
    from simpleaide.commands import Commands
    from simpleaide.session import Args

TERMINAL_HELP = "the terminal: its id, its name, or the start of its id (as term ls shows)"
# What terminals.kill takes; the first five end a program that does not handle them.
SIGNALS = ("HUP", "INT", "QUIT", "TERM", "KILL", "USR1", "USR2", "CONT", "STOP", "TSTP", "WINCH")
ENDING = frozenset({"HUP", "INT", "QUIT", "TERM", "KILL"})
# How long ``term kill`` waits to see the terminal go: longer than the daemon's way from
# SIGHUP through SIGTERM to SIGKILL, so the default kill is seen to end what it can end.
KILL_WAIT = 8.0
KILL_POLL = 0.05

DETACH_HELP = """\
Detach (the terminal keeps running): Enter ~ . — a ~ typed at the start of a line waits
for the next key: . detaches, ~ types one ~, any other key types both. --detach-keys adds
a sequence of your own (ctrl-p,ctrl-q as docker's). Ctrl-C and Ctrl-Z go to the program."""

ATTACH_HELP = f"""\
Attach this terminal to one of the daemon's terminals: what it prints shows here, what you
type goes to it (the local terminal is in raw mode meanwhile, and put back as it was on
every way out). Several clients may be attached at once, from here or from the web
console; the one that typed last sets the size. The screen is cleared, then shows the
terminal's recent output.

{DETACH_HELP}

With --read-only nothing typed is sent (it only watches; Ctrl-C detaches too), and the
size is left alone. When the program ends, its exit status is this command's (128+N for
a program killed by signal N); after a detach, 0; after SIGTERM or SIGHUP here, 128+N."""

NEW_HELP = f"""\
Start a program on a new terminal that the daemon hosts, then attach to it (see term
attach). It runs in the current folder unless --cwd; the command goes after --
(default: your login shell), and the terminal starts at this terminal's size:

  simpleaide term new
  simpleaide term new --name build -- make -j8
  simpleaide term new -d --name server -- python -m http.server    # prints the id

{DETACH_HELP}"""


def register(tree: Commands) -> None:
    """The ``term`` commands."""
    term = tree.group("term", "start, list, attach to and kill the daemon's terminals")
    new = term.add(
        "new",
        "start a program on a new terminal and attach to it",
        term_new,
        description=NEW_HELP,
        json_output=False,
    )
    new.add_argument("--name", metavar="NAME", help="a unique name (default: the command's)")
    new.add_argument(
        "--cwd", metavar="DIR", help="the folder it starts in (default: the current one)"
    )
    new.add_argument(
        "--env",
        "-e",
        metavar="NAME=VALUE",
        action="append",
        type=_env_pair,
        help="set a variable in its environment (repeatable)",
    )
    new.add_argument(
        "--detach",
        "-d",
        action="store_true",
        help="do not attach: print the new terminal's id and return",
    )
    _detach_keys_argument(new)
    new.add_argument(
        "command",
        metavar="-- COMMAND",
        nargs="*",
        help="the program and its arguments (default: your login shell)",
    )

    term.add(
        "ls",
        "list the terminals",
        term_ls,
        description="List the daemon's terminals, oldest first. STATE is running, exited N\n"
        "or killed by SIGNAL (an ended terminal stays listed until term kill removes it);\n"
        "CLIENTS counts those attached (how many only watch); SIZE is COLSxROWS.",
    )

    attach_parser = term.add(
        "attach",
        "attach to a terminal",
        term_attach,
        description=ATTACH_HELP,
        json_output=False,
    )
    attach_parser.add_argument("terminal", metavar="TERMINAL", help=TERMINAL_HELP)
    attach_parser.add_argument(
        "--read-only", action="store_true", help="watch only: send no keys, leave the size alone"
    )
    _detach_keys_argument(attach_parser)

    kill = term.add(
        "kill",
        "end a terminal's program and remove the terminal",
        term_kill,
        description="Send a signal to a terminal's programs (every process group of its\n"
        "session: a shell's jobs too) and, for a signal that ends them, remove the\n"
        "terminal from the list once they have ended. The default,\n"
        "HUP, is followed by TERM then KILL if the program lives on. For a signal that\n"
        f"ends programs ({', '.join(sorted(ENDING))}), wait up to {KILL_WAIT:g} s and say\n"
        "whether it ended (exit 1 if not). An ended terminal is removed at once.",
        json_output=False,
    )
    kill.add_argument("terminal", metavar="TERMINAL", help=TERMINAL_HELP)
    kill.add_argument(
        "--signal",
        "-s",
        metavar="SIG",
        type=_signal_name,
        default=None,
        help=f"the signal: {', '.join(SIGNALS)} (SIG prefix or number allowed; default HUP)",
    )

    rename = term.add(
        "rename",
        "rename a terminal",
        term_rename,
        description="Give a terminal another name: names are unique, 1-64 characters without\n"
        "control characters; the id never changes.",
        json_output=False,
    )
    rename.add_argument("terminal", metavar="TERMINAL", help=TERMINAL_HELP)
    rename.add_argument("name", metavar="NEW_NAME", help="the new name (unique, 1-64 characters)")


def _detach_keys_argument(parser: Any) -> None:
    parser.add_argument(
        "--detach-keys",
        metavar="KEYS",
        type=_detach_keys,
        default=b"",
        help=f"also detach on these keys: {KEYS_HELP}",
    )


# -- argument types ------------------------------------------------------------------------


def _detach_keys(text: str) -> bytes:
    import argparse

    try:
        return parse_detach_keys(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _signal_name(text: str) -> str:
    """``--signal``: ``TERM``, ``SIGTERM``, ``term`` or ``15``, as the daemon names it."""
    import argparse

    name = text.upper().removeprefix("SIG")
    if text.isdigit():
        try:
            name = signal.Signals(int(text)).name.removeprefix("SIG")
        except ValueError:
            name = text
    if name not in SIGNALS:
        raise argparse.ArgumentTypeError(
            f"not a signal a terminal takes: {text!r} (one of {', '.join(SIGNALS)})"
        )
    return name


def _env_pair(text: str) -> tuple[str, str]:
    import argparse

    name, eq, value = text.partition("=")
    if not eq or not name:
        raise argparse.ArgumentTypeError(f"not NAME=VALUE: {text!r}")
    return name, value


# -- finding a terminal --------------------------------------------------------------------


def pick_terminal(terminals: list[dict[str, Any]], wanted: str) -> dict[str, Any]:
    """The terminal ``wanted`` names: its id, else its name, else the one id that starts
    with it; ``CliError`` naming the candidates when several do, or saying none does."""
    for key in ("id", "name"):
        for terminal in terminals:
            if terminal.get(key) == wanted:
                return terminal
    matches = [t for t in terminals if wanted and str(t.get("id", "")).startswith(wanted)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise CliError(f"no terminal {wanted!r} (simpleaide term ls lists them)")
    candidates = ", ".join(f"{t['id']} ({t.get('name', '?')})" for t in matches)
    raise CliError(
        f"{wanted!r} is the start of several terminals' ids: {candidates}; give more of it"
    )


def _find(session: Session, wanted: str) -> dict[str, Any]:
    terminals: list[dict[str, Any]] = session.call("terminals.list")
    return pick_terminal(terminals, wanted)


def _named(terminal: dict[str, Any]) -> str:
    """``name (id)``, as messages show a terminal."""
    return f"{terminal.get('name', '?')} ({terminal['id']})"


# -- commands ------------------------------------------------------------------------------


def term_new(session: Session, args: Args) -> int:
    """``simpleaide term new``."""
    if args.cwd:
        cwd = paths.absolute(args.cwd)
    else:
        try:
            cwd = os.getcwd()
        except FileNotFoundError:
            raise CliError("the current folder no longer exists; give --cwd DIR") from None
    if not os.path.isdir(cwd):
        problem = "is not a folder" if os.path.exists(cwd) else "does not exist"
        raise CliError(f"cannot start a terminal in {cwd}: it {problem}")
    from simpleaide.attach import terminal_size

    size = terminal_size(0, 1, 2)
    created = session.call(
        "terminals.create",
        cwd=cwd,
        argv=args.command or None,
        env=dict(args.env) if args.env else None,
        name=args.name,
        cols=size[0] if size else None,
        rows=size[1] if size else None,
    )
    if args.detach:
        print(created["id"])
        return EXIT_OK
    return _attach(session, args, created, read_only=False)


def term_ls(session: Session, args: Args) -> int:
    """``simpleaide term ls``."""

    def show(terminals: list[dict[str, Any]]) -> None:
        if not terminals:
            print("no terminals (simpleaide term new starts one)", file=sys.stderr)
            return
        home = os.path.expanduser("~")
        rows = [
            [
                t["id"],
                t.get("name", ""),
                tables.one_line(shlex.join(t.get("argv") or [])),
                _folder(t.get("cwd") or "-", home),
                state_words(t.get("exited")),
                _clients(t),
                f"{t.get('cols', '?')}x{t.get('rows', '?')}",
                tables.local_time(t.get("createdAt")),
            ]
            for t in terminals
        ]
        headers = ["ID", "NAME", "COMMAND", "FOLDER", "STATE", "CLIENTS", "SIZE", "CREATED"]
        print(tables.render(headers, rows, elastic=2))

    return reply(args, session.call("terminals.list"), show)


def state_words(exited: dict[str, Any] | None) -> str:
    """``running``, ``exited 0``, ``killed by SIGKILL``."""
    if not exited:
        return "running"
    if exited.get("signal"):
        return f"killed by {exited['signal']}"
    code = exited.get("code")
    return "exited" if code is None else f"exited {code}"


def _clients(terminal: dict[str, Any]) -> str:
    attached = int(terminal.get("attached") or 0)
    watching = int(terminal.get("readOnly") or 0)
    return f"{attached} ({watching} read-only)" if watching else str(attached)


def _folder(path: str, home: str) -> str:
    if home != "/" and (path == home or path.startswith(home + "/")):
        return "~" + path[len(home) :]
    return path


def term_attach(session: Session, args: Args) -> int:
    """``simpleaide term attach``."""
    terminal = _find(session, args.terminal)
    return _attach(session, args, terminal, read_only=args.read_only)


def term_kill(session: Session, args: Args) -> int:
    """``simpleaide term kill``: signals, removes once ended, and says whether it ended."""
    terminal = _find(session, args.terminal)
    name = args.signal or "HUP"
    was_over = terminal.get("exited")
    ending = name in ENDING  # CONT, STOP, WINCH...: the terminal stays, as asked
    session.call("terminals.kill", id=terminal["id"], signal=args.signal, remove=ending)
    if was_over:
        print(escape(f"removed {_named(terminal)}, which had {_ended_words(was_over)}"))
        return EXIT_OK
    if not ending:
        print(escape(f"sent SIG{name} to {_named(terminal)}"))
        return EXIT_OK
    deadline = time.monotonic() + KILL_WAIT
    while True:
        listed = session.call("terminals.list")
        if not any(t.get("id") == terminal["id"] for t in listed):
            print(escape(f"{_named(terminal)} has ended (SIG{name}) and is removed"))
            return EXIT_OK
        if time.monotonic() >= deadline:
            break
        # No notification says a terminal was removed to a client not attached: poll the
        # list, briefly.
        time.sleep(KILL_POLL)
    raise CliError(
        f"sent SIG{name} to {_named(terminal)}, still running after {KILL_WAIT:g} s "
        f"(it goes from the list when it ends; --signal KILL ends it for sure)"
    )


def _ended_words(exited: dict[str, Any]) -> str:
    words = state_words(exited)
    return words.replace("exited ", "exited with code ", 1) if words[-1:].isdigit() else words


def term_rename(session: Session, args: Args) -> int:
    """``simpleaide term rename``."""
    terminal = _find(session, args.terminal)
    session.call("terminals.rename", id=terminal["id"], name=args.name)
    print(escape(f"renamed {_named(terminal)} to {args.name}"))
    return EXIT_OK


# -- attaching -----------------------------------------------------------------------------


def _attach(session: Session, args: Args, terminal: dict[str, Any], *, read_only: bool) -> int:
    """Attach to ``terminal`` and say how it ended, once the local terminal is back."""
    # Imported here: building the command tree (every command but status) stays cheap.
    from simpleaide.attach import attach
    from simpleaide.rawmode import looks_raw

    was_raw = False
    if os.isatty(0):
        import termios

        was_raw = looks_raw(termios.tcgetattr(0))
        if was_raw:
            _say(_RAW_WARNING)
    if read_only:
        keys = _exit_keys(args, read_only)
        _say(f"simpleaide: watching {_named(terminal)} read-only: keys are not sent; {keys}")
    outcome = attach(
        session.client(), terminal["id"], DetachFilter(args.detach_keys), read_only=read_only
    )
    code = _report(session, args, terminal, outcome, read_only=read_only)
    if was_raw:
        _say(_RAW_WARNING)
    return code


_RAW_WARNING = (
    "simpleaide: warning: this terminal was already in raw mode (no echo, no line editing), "
    "as a client killed while attached leaves it; it is left so: run reset if it misbehaves"
)


def _exit_keys(args: Args, read_only: bool) -> str:
    keys = ["Enter ~ ."]
    if args.detach_keys:
        keys.append(key_names(args.detach_keys))
    if read_only:
        keys.append("Ctrl-C")
    return f"detach with {' or '.join(keys)}"


def _report(
    session: Session, args: Args, terminal: dict[str, Any], outcome: Outcome, *, read_only: bool
) -> int:
    """Say how the attachment ended; the exit status."""
    from simpleaide.attach import Detached, Exited, Interrupted

    name = terminal.get("name") or terminal["id"]
    if isinstance(outcome, Exited):
        if outcome.signal_name:
            _say(f"[{name} killed by {outcome.signal_name}]")
            return _signal_status(outcome.signal_name)
        if outcome.code is None:
            _say(f"[{name} exited]")
            return EXIT_ERROR
        _say(f"[{name} exited with code {outcome.code}]")
        return outcome.code
    again = _reattach_command(args, name, read_only)
    if isinstance(outcome, Interrupted):
        signame = signal.Signals(outcome.signum).name
        _say(f"simpleaide: {signame}: detached from {_named(terminal)}; re-attach: {again}")
        return 128 + outcome.signum
    assert isinstance(outcome, Detached)
    _say(f"detached from {_named(terminal)}; re-attach: {again}")
    return EXIT_OK


def _reattach_command(args: Args, name: str, read_only: bool) -> str:
    words = ["simpleaide"]
    if getattr(args, "socket", None):
        words += ["--socket", args.socket]
    words += ["term", "attach", name]
    if read_only:
        words.append("--read-only")
    return shlex.join(words)


def _signal_status(name: str) -> int:
    """The status a shell gives a program killed by signal ``name``: 128 + its number."""
    try:
        return 128 + int(signal.Signals[name])
    except KeyError:
        return EXIT_ERROR  # a signal this system does not know


def _say(line: str) -> None:
    """One line on stderr, escaped; a terminal that has gone (hung up) takes nothing."""
    try:
        print(escape(line), file=sys.stderr, flush=True)
    except OSError:
        pass
