"""The daemon's command-line parser: argparse's, with "did you mean" for a misspelt option
or choice (difflib; argparse's own ``suggest_on_error`` needs Python 3.14).

The ``simpleaide`` CLI has its own (``simpleaide.cli.suggesting_parser``): the client never
imports the daemon, nor the daemon the client.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

EXIT_USAGE = 2


def closest(word: str, candidates: Sequence[str]) -> str | None:
    """The candidate ``word`` was most likely meant to be, if one is close enough (case
    aside, and an option's dashes, which would make any two options look alike)."""
    by_key = {candidate.lower().lstrip("-"): candidate for candidate in candidates}
    found = difflib.get_close_matches(word.lower().lstrip("-"), list(by_key), n=1)
    return by_key[found[0]] if found else None


class SuggestingParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors suggest the option or value meant:
    ``simpleaided: unrecognized option '--sockt' (did you mean '--socket'?)``."""

    def parse_args(self, args: Any = None, namespace: Any = None) -> Any:
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            self._unrecognized(extras)
        return parsed

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        try:
            super()._check_value(action, value)
        except argparse.ArgumentError as exc:
            close = closest(str(value), [str(c) for c in action.choices or ()])
            if close is None:
                raise
            raise argparse.ArgumentError(
                action, f"{exc.message}; did you mean {close!r}?"
            ) from None

    def _unrecognized(self, extras: list[str]) -> NoReturn:
        options = [extra for extra in extras if extra.startswith("-") and extra != "-"]
        if not options:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        known = [name for name in self._option_string_actions if name.startswith("--")]
        said = []
        for option in options:
            name = option.partition("=")[0]
            close = closest(name, known) if name.startswith("--") else None
            said.append(f"{name!r}" + (f" (did you mean {close!r}?)" if close else ""))
        plural = "s" if len(said) > 1 else ""
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: unrecognized option{plural} {', '.join(said)}\n")
