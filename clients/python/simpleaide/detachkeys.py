"""The keys that detach ``simpleaide term attach`` from a terminal, found in what the user types.

Two ways out, both always on:

- ssh's escape, ``Enter ~ .``: a ``~`` typed at the start of a line (after Enter, or first
  of all) is held back until the next key. ``.`` then detaches, ``~`` sends one ``~``, and
  any other key sends the ``~`` and that key. No program's keys collide with it.
- a docker-style sequence given with ``--detach-keys`` (``ctrl-p,ctrl-q``): keys matching
  its start are held back; the whole sequence detaches, anything else sends what was held.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~2 ms to import; annotations are not evaluated at run time
    from collections.abc import Iterable

ESCAPE = 0x7E  # ~
_DETACH = 0x2E  # .
_LINE_ENDS = frozenset(b"\r\n")
# ctrl-X for the characters that have a control code besides letters: ctrl-@ is NUL,
# ctrl-[ is ESC, ctrl-\ is FS, ctrl-] is GS, ctrl-^ is RS, ctrl-_ is US.
_CTRL_PUNCTUATION = "@[\\]^_"

KEYS_HELP = (
    "a comma-separated sequence of keys: a single character, or ctrl-X for X a letter or one "
    f"of {' '.join(_CTRL_PUNCTUATION)} (docker's syntax), e.g. ctrl-p,ctrl-q"
)


def parse_detach_keys(text: str) -> bytes:
    """The bytes a ``--detach-keys`` sequence stands for (``ctrl-p,ctrl-q`` is ``\\x10\\x11``);
    ``ValueError`` saying what is wrong with a sequence it cannot read."""
    if not text:
        raise ValueError("the detach keys are empty")
    codes = bytearray()
    for key in text.split(","):
        if len(key) == 1 and " " <= key < "\x7f":
            codes.append(ord(key))
        elif len(key) == 6 and key[:5].lower() == "ctrl-":
            char = key[5].lower()
            if "a" <= char <= "z":
                codes.append(ord(char) - ord("a") + 1)
            elif char in _CTRL_PUNCTUATION:
                codes.append(ord(char) - 0x40)
            else:
                raise ValueError(f"no such key: {key!r} (ctrl- takes a letter or one of @[\\]^_)")
        else:
            raise ValueError(f"no such key: {key!r} (a single character, or ctrl-X)")
    return bytes(codes)


def key_names(sequence: bytes) -> str:
    """A sequence as ``--detach-keys`` writes it: ``ctrl-p,ctrl-q``."""

    def name(code: int) -> str:
        if 1 <= code <= 26:
            return f"ctrl-{chr(code + ord('a') - 1)}"
        if code < 0x20:
            return f"ctrl-{chr(code + 0x40)}"
        return chr(code)

    return ",".join(name(code) for code in sequence)


class DetachFilter:
    """Reads what the user types, a chunk at a time: ``feed`` returns the bytes to send to
    the terminal and whether the detach keys were typed (what follows them is dropped).

    Held-back keys (a ``~`` at the start of a line, the start of the sequence) wait for the
    next chunk, as with ssh and docker."""

    def __init__(self, sequence: bytes = b"") -> None:
        self.sequence = sequence
        self._line_start = True  # the first key typed counts as the start of a line
        self._tilde_held = False
        self._matched = 0  # how many keys of ``sequence`` are held back
        self._special = frozenset({ESCAPE, *sequence[:1]})

    @property
    def holding(self) -> bool:
        """Whether keys are held back, waiting for the next one."""
        return self._tilde_held or self._matched > 0

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """The bytes of ``data`` to send on, and whether they end with a detach."""
        if not self.holding and self._special.isdisjoint(data):
            # The common case (typing, pasting): nothing to look at byte by byte.
            if data:
                self._line_start = data[-1] in _LINE_ENDS
            return data, False
        out = bytearray()
        for code in data:
            if self._take(code, out):
                return bytes(out), True
        return bytes(out), False

    def _take(self, code: int, out: bytearray) -> bool:
        """Handle one key; ``True`` if it completes a detach."""
        if self._tilde_held:
            self._tilde_held = False
            if code == _DETACH:
                return True
            self._send(ESCAPE, out)
            if code == ESCAPE:
                return False  # ~~ is one ~
        sequence = self.sequence
        if sequence:
            if code == sequence[self._matched]:
                self._matched += 1
                if self._matched == len(sequence):
                    return True
                return False
            if self._matched:
                self._send_all(sequence[: self._matched], out)
                self._matched = 0
                if code == sequence[0]:  # the key that broke the match may start a new one
                    self._matched = 1
                    return len(sequence) == 1
        if code == ESCAPE and self._line_start:
            self._tilde_held = True
            return False
        self._send(code, out)
        return False

    def _send(self, code: int, out: bytearray) -> None:
        out.append(code)
        self._line_start = code in _LINE_ENDS

    def _send_all(self, codes: Iterable[int], out: bytearray) -> None:
        for code in codes:
            self._send(code, out)
