"""The ``simpleaide`` commands, one module per noun, and what they share.

Each module declares its argparse subcommands in ``register(tree)``, next to the handlers
they call. A handler takes the ``Session`` and the parsed arguments and returns the exit
status; errors are raised (``ClientError``, ``CliError``) and turned into one line by
``cli.run``. Human output is tables and ``name: value`` lines; ``--json`` prints the daemon's
result as is (``reply``).

``simpleaide status``, which status lines run every few seconds, imports this package and
``commands.status`` only: nothing here may import more than ``simpleaide.session`` does
(argparse is imported inside the functions that build the command tree).
"""

from __future__ import annotations

from simpleaide.safetext import json_text
from simpleaide.session import EXIT_OK

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~2 ms to import; annotations are not evaluated at run time
    import argparse
    from collections.abc import Callable
    from typing import Any

    from simpleaide.session import Args, Session

    Handler = Callable[[Session, Args], int]

RUN_HELP = (
    "the run's id as runs create and runs ls print it, or any unique start of it "
    "(20261124T1015); latest or @: the newest run of this workspace"
)
STEP_HELP = "the step: its number (2), folder (02_code) or name (code)"


def reply(args: Args, result: Any, show: Callable[[Any], object]) -> int:
    """Answer a command: with ``--json`` the daemon's ``result`` as indented JSON, else
    what ``show(result)`` prints; the exit status is 0."""
    if args.json:
        print(json_text(result))
    else:
        show(result)
    return EXIT_OK


class Commands:
    """Where a module declares its commands: one level of the command tree, with the
    options every command takes (connection, ``--json``) as parent parsers."""

    def __init__(
        self,
        subparsers: Any,
        common: argparse.ArgumentParser,
        as_json: argparse.ArgumentParser,
    ) -> None:
        self.subparsers = subparsers
        self.common = common
        self.as_json = as_json

    def add(
        self,
        name: str,
        summary: str,
        handler: Handler | None,
        *,
        description: str | None = None,
        json_output: bool = True,
        connection: bool = True,
    ) -> argparse.ArgumentParser:
        """A command ``name`` that runs ``handler``; ``connection=False`` for one that never
        talks to the daemon (no connection options, no ``--json``)."""
        import argparse

        parents = [self.common] if connection else []
        if connection and json_output:
            parents.append(self.as_json)
        sub: argparse.ArgumentParser = self.subparsers.add_parser(
            name,
            help=summary,
            description=description or summary,
            parents=parents,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if handler is not None:
            sub.set_defaults(handler=handler)
        return sub

    def group(self, name: str, summary: str) -> Commands:
        """A noun (``runs``, ``vault``) whose commands are declared on what it returns."""
        parser = self.add(name, summary, None, json_output=False)
        subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
        return Commands(subparsers, self.common, self.as_json)


# -- argument types (argparse is imported only when the command tree is built) -------------


def seconds(text: str) -> float | None:
    """A positive number of seconds, or ``None`` if ``text`` is not one."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if 0 < value < float("inf") else None


def positive_float(text: str) -> float:
    """``--timeout``, ``--ttl``: a positive number of seconds."""
    import argparse

    value = seconds(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"not a positive number of seconds: {text!r}")
    return value


def days(text: str) -> float:
    """``--older-than``: a positive number of days."""
    import argparse

    value = seconds(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"not a positive number of days: {text!r}")
    return value


def page_size(text: str) -> int:
    """``--limit``: 1 to 1000."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError("must be between 1 and 1000")
    return value


def count(text: str) -> int:
    """``--keep``: 0 or more."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def pid(text: str) -> int:
    """``--owner-pid``: a process id."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"not a process id: {text!r}")
    return value
