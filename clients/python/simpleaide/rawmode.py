"""The local terminal in raw mode while ``simpleaide term attach`` runs, and back as it was.

Raw mode sends every key as typed (Ctrl-C is a byte for the remote program, not a signal for
us) and prints output as it comes (the remote terminal already turned ``\\n`` into ``\\r\\n``).
``RawMode`` restores the attributes it found on every way out of its ``with`` block; the
caller turns signals into a normal way out (``simpleaide.attach``). A client killed with
SIGKILL cannot restore anything: the next one finds the terminal raw already
(``looks_raw``) and says to run ``reset``.
"""

from __future__ import annotations

import termios

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~2 ms to import; annotations are not evaluated at run time
    from types import TracebackType
    from typing import Any

# Indexes into a termios attribute list: [iflag, oflag, cflag, lflag, ispeed, ospeed, cc].
_IFLAG, _OFLAG, _CFLAG, _LFLAG, _CC = 0, 1, 2, 3, 6


def looks_raw(attrs: list[Any]) -> bool:
    """Whether terminal attributes have both line editing and echo off: what a raw-mode
    program leaves behind when it is killed before it can restore the terminal (a password
    prompt turns echo off, but keeps line editing)."""
    return not attrs[_LFLAG] & (termios.ICANON | termios.ECHO)


def raw_attrs(attrs: list[Any]) -> list[Any]:
    """``attrs`` made raw, as ``cfmakeraw(3)`` does (``tty.cfmakeraw`` came in 3.12)."""
    raw = list(attrs)
    raw[_CC] = list(attrs[_CC])
    raw[_IFLAG] &= ~(
        termios.IGNBRK
        | termios.BRKINT
        | termios.PARMRK
        | termios.ISTRIP
        | termios.INLCR
        | termios.IGNCR
        | termios.ICRNL
        | termios.IXON
    )
    raw[_OFLAG] &= ~termios.OPOST
    raw[_LFLAG] &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
    raw[_CFLAG] &= ~(termios.CSIZE | termios.PARENB)
    raw[_CFLAG] |= termios.CS8
    raw[_CC][termios.VMIN] = 1
    raw[_CC][termios.VTIME] = 0
    return raw


class RawMode:
    """The terminal on ``fd`` in raw mode for the ``with`` block; the attributes found on
    entry (``saved``) are put back on every way out, an exception's included."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.saved: list[Any] | None = None

    def __enter__(self) -> RawMode:
        saved = termios.tcgetattr(self.fd)
        self.saved = saved
        # TCSANOW, not TCSADRAIN: nothing is waiting to be written that raw mode would change.
        termios.tcsetattr(self.fd, termios.TCSANOW, raw_attrs(saved))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.restore()

    def restore(self) -> None:
        """Put the saved attributes back (again, if need be). A terminal that is gone (hung
        up: EIO) has nothing to restore."""
        if self.saved is None:
            return
        try:
            # TCSANOW: waiting for output to drain (TCSADRAIN) could wait forever on a
            # terminal that stopped reading, and restoring must never hang.
            termios.tcsetattr(self.fd, termios.TCSANOW, self.saved)
        except (OSError, termios.error):
            pass
