"""Standard output that says why it cannot be written: a full disk or an I/O error becomes
``StdoutError`` (told from a reader gone away, ``BrokenPipeError``, which ends a command
silently), and ``silence`` lets the final flush fail no more."""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations are not evaluated at run time
    from typing import Any


class StdoutError(Exception):
    """Standard output cannot be written for a reason other than a reader gone away: a full
    disk (``>/dev/full``), an I/O error. Raised by ``GuardedStdout``, so that it is told
    from an ``OSError`` of anything else (and is caught by no ``except OSError``)."""


class GuardedStdout:
    """Standard output (Python's text stream, or its binary ``buffer``) with its failed
    writes raised as ``StdoutError``; a ``BrokenPipeError`` stays one (``main`` ends such a
    command silently). Everything else is the stream's own.

    It wraps the stream rather than what is under it: a Ctrl-C that lands in Python code
    between a write done and its return must not make the stream think the write failed
    (it would write it again)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, data: Any) -> Any:
        try:
            return self._stream.write(data)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise StdoutError(exc.strerror or str(exc)) from None

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise StdoutError(exc.strerror or str(exc)) from None

    @property
    def buffer(self) -> GuardedStdout:
        return GuardedStdout(self._stream.buffer)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def guard() -> Any:
    """Put a ``GuardedStdout`` in the place of ``sys.stdout``; returns the stream it
    wraps, to be put back."""
    stream = sys.stdout
    sys.stdout = GuardedStdout(stream)
    return stream


def silence() -> None:
    """After a failed write: standard output goes nowhere, so that the final flush of what is
    left in its buffer fails no more (as the Python docs advise for a broken pipe)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
