"""What a terminal printed, kept to replay it: a byte-bounded ring addressed by offsets, the
terminal modes in force, and where UTF-8 characters begin.

Pure and synchronous: the terminal feeds it what it reads from the PTY and asks it for bytes
from an offset, for a replay, and for the sequences that restore the modes.
"""

from __future__ import annotations

import re
from collections import deque

BLOCK_BYTES = 64 * 1024  # small appends (keystroke echoes) are gathered into blocks this large
_FIND_LINE_WITHIN = 8 * 1024  # a replay of a ring that lost its beginning starts at a line


class Scrollback:
    """The last ``capacity`` bytes of a terminal's output; ``start`` and ``end`` are the
    offsets (in the whole output) of its first byte and one past its last."""

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError("a scrollback holds at least one byte")
        self.capacity = capacity
        self.start = 0
        self.end = 0
        self._blocks: deque[bytearray] = deque()

    def __len__(self) -> int:
        return self.end - self.start

    def append(self, data: bytes) -> None:
        """Add ``data`` at the end, dropping the oldest bytes beyond the capacity."""
        if not data:
            return
        if len(data) >= self.capacity:  # only its last ``capacity`` bytes can stay
            self._blocks.clear()
            self.start = self.end + len(data) - self.capacity
            self.end += len(data)
            self._blocks.append(bytearray(data[-self.capacity :]))
            return
        last = self._blocks[-1] if self._blocks else None
        if last is not None and len(last) + len(data) <= BLOCK_BYTES:
            last += data
        else:
            self._blocks.append(bytearray(data))
        self.end += len(data)
        excess = len(self) - self.capacity
        while excess > 0:
            first = self._blocks[0]
            if len(first) <= excess:
                self._blocks.popleft()
                self.start += len(first)
                excess -= len(first)
            else:
                del first[:excess]
                self.start += excess
                excess = 0

    def read(self, offset: int, limit: int) -> bytes:
        """At most ``limit`` bytes from ``offset`` (at least ``start``) on."""
        offset = max(offset, self.start)
        if offset >= self.end or limit <= 0:
            return b""
        # Readers are nearly always near the end: find the block from the right.
        position = self.end
        index = len(self._blocks)
        while position > offset:
            index -= 1
            position -= len(self._blocks[index])
        pieces = []
        skip = offset - position
        wanted = min(limit, self.end - offset)
        while wanted > 0:
            block = self._blocks[index]
            piece = block[skip : skip + wanted]
            pieces.append(piece)
            wanted -= len(piece)
            skip = 0
            index += 1
        return b"".join(pieces)

    def replay_start(self, earliest: int = 0) -> int:
        """Where a replay from ``earliest`` on (at least the ring's start) begins: there if
        nothing before it was dropped; else just after the first line break (within a few
        KiB), so the replay does not begin inside a line, an escape sequence or a character;
        else at a character."""
        start = max(self.start, earliest)
        if start == 0 or (start > self.start and self.read(start - 1, 1) == b"\n"):
            return start  # a line begins there
        head = self.read(start, _FIND_LINE_WITHIN)
        newline = head.find(b"\n")
        if newline >= 0:
            return start + newline + 1
        return start + char_start(head, 0)


def char_start(data: bytes | bytearray, index: int) -> int:
    """The first index at or after ``index`` where a UTF-8 character may begin (never inside
    one's continuation bytes, at most three of them)."""
    for _ in range(3):
        if index < len(data) and data[index] & 0xC0 == 0x80:
            index += 1
    return index


def incomplete_tail(data: bytes | bytearray) -> int:
    """How many bytes at the end of ``data`` begin a UTF-8 character that is not complete
    yet (0 to 3): they are held back until the rest arrives."""
    for back in range(1, min(3, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 == 0x80:
            continue  # a continuation byte: look further back for its lead
        if byte < 0xC0:
            return 0  # ASCII: complete
        length = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4 if byte < 0xF8 else 1
        return back if length > back else 0
    return 0


# DEC private modes worth restoring on a replay, with their state in a fresh terminal.
TRACKED_MODES: dict[int, bool] = {
    1: False,  # application cursor keys
    7: True,  # autowrap
    25: True,  # cursor visible
    47: False,  # alternate screen (old form)
    1047: False,  # alternate screen
    1049: False,  # alternate screen, cursor saved
    1000: False,  # mouse: clicks
    1002: False,  # mouse: drags
    1003: False,  # mouse: all motion
    1004: False,  # focus events
    1005: False,  # mouse: UTF-8 coordinates
    1006: False,  # mouse: SGR coordinates
    1015: False,  # mouse: urxvt coordinates
    2004: False,  # bracketed paste
}
# Alternate screens first: entering one after the others would apply them to the wrong screen.
_RESTORE_ORDER = sorted(TRACKED_MODES, key=lambda mode: (mode not in (47, 1047, 1049), mode))
_SEQUENCE = re.compile(rb"\x1b\[\?([0-9;]{1,64})([hl])|\x1b([=>c])")
# What may still become a sequence once the next read arrives.
_PARTIAL = re.compile(rb"\x1b(?:\[(?:\?[0-9;]{0,64})?)?\Z")


class Modes:
    """The terminal modes in force, followed through the output as it is read.

    Only mode sequences are looked for (``ESC [ ? n h|l``, the keypad's ``ESC =``/``ESC >``
    and the reset ``ESC c``), with a regular expression over each chunk: no per-byte state
    machine in Python. A sequence split between two reads is completed from the next one.
    """

    def __init__(self) -> None:
        self._modes = dict(TRACKED_MODES)
        self._keypad = False  # application keypad
        self._carry = b""

    def feed(self, data: bytes) -> None:
        """Follow the modes through ``data``, the next bytes of output."""
        if self._carry:
            data = self._carry + data
            self._carry = b""
        if b"\x1b" not in data:
            return
        for match in _SEQUENCE.finditer(data):
            numbers, action, single = match.groups()
            if single is not None:
                if single == b"c":
                    self._modes = dict(TRACKED_MODES)
                    self._keypad = False
                else:
                    self._keypad = single == b"="
                continue
            on = action == b"h"
            for number in numbers.split(b";"):
                if number and int(number) in self._modes:
                    self._modes[int(number)] = on
        last = data.rfind(b"\x1b", max(0, len(data) - 80))
        if last >= 0 and _PARTIAL.match(data, last):
            self._carry = data[last:]

    @property
    def alternate_screen(self) -> bool:
        """Whether a full-screen program has the alternate screen."""
        return self._modes[1049] or self._modes[1047] or self._modes[47]

    def restore(self) -> bytes:
        """The sequences that put a fresh terminal in the modes in force."""
        parts = [
            f"\x1b[?{mode}{'h' if self._modes[mode] else 'l'}".encode()
            for mode in _RESTORE_ORDER
            if self._modes[mode] != TRACKED_MODES[mode]
        ]
        if self._keypad:
            parts.append(b"\x1b=")
        return b"".join(parts)
