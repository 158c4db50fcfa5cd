"""The scrollback ring, UTF-8 boundaries and the modes followed through the output."""

from __future__ import annotations

import pytest

from simpleaided.services.terminals.scrollback import (
    BLOCK_BYTES,
    Modes,
    Scrollback,
    char_start,
    incomplete_tail,
)


def test_the_ring_keeps_the_last_bytes_by_offset() -> None:
    ring = Scrollback(10)
    ring.append(b"abcdef")
    ring.append(b"ghijkl")
    assert (ring.start, ring.end, len(ring)) == (2, 12, 10)
    assert ring.read(0, 100) == b"cdefghijkl"  # before the start: from the start
    assert ring.read(5, 3) == b"fgh"
    assert ring.read(12, 5) == b""


def test_small_appends_gather_into_blocks_and_reads_span_them() -> None:
    ring = Scrollback(3 * BLOCK_BYTES)
    data = bytes(range(256)) * (4 * BLOCK_BYTES // 256)
    for i in range(0, len(data), 7):
        ring.append(data[i : i + 7])
    assert ring.end == len(data)
    assert ring.start == len(data) - 3 * BLOCK_BYTES
    assert len(ring._blocks) <= 4
    assert ring.read(ring.start, len(data)) == data[ring.start :]
    middle = ring.start + BLOCK_BYTES - 5
    assert ring.read(middle, BLOCK_BYTES + 10) == data[middle : middle + BLOCK_BYTES + 10]


def test_an_append_larger_than_the_ring_keeps_its_end() -> None:
    ring = Scrollback(4)
    ring.append(b"xy")
    ring.append(b"0123456789")
    assert (ring.start, ring.end) == (8, 12)
    assert ring.read(0, 10) == b"6789"


def test_a_replay_of_a_cut_ring_starts_after_a_line_break() -> None:
    ring = Scrollback(16)
    ring.append(b"first line\nsecond\nthird\n")
    start = ring.replay_start()
    assert ring.read(start, 100) == b"second\nthird\n"  # not "ne\n", the cut line
    whole = Scrollback(100)
    whole.append(b"\xc3\xa9t\xc3\xa9\n")
    assert whole.replay_start() == 0  # nothing dropped: from the very first byte


def test_a_replay_without_line_breaks_starts_at_a_character() -> None:
    ring = Scrollback(7)
    ring.append("ééééé".encode())  # 10 bytes: the ring starts inside a character
    start = ring.replay_start()
    assert ring.read(start, 100).decode() == "ééé"


@pytest.mark.parametrize(
    ("data", "held"),
    [
        (b"abc", 0),
        ("é".encode(), 0),
        ("é".encode()[:1], 1),
        ("€".encode()[:2], 2),
        ("😀".encode()[:3], 3),
        ("😀".encode(), 0),
        (b"a\x80", 0),  # a stray continuation byte: nothing to wait for
        (b"", 0),
    ],
)
def test_an_incomplete_character_at_the_end_is_held(data: bytes, held: int) -> None:
    assert incomplete_tail(data) == held


def test_char_start_skips_continuation_bytes() -> None:
    data = "a€".encode()
    assert char_start(data, 2) == 4
    assert char_start(data, 1) == 1


def test_modes_follow_the_output_even_split_across_reads() -> None:
    modes = Modes()
    assert modes.restore() == b""
    for piece in (b"text\x1b[", b"?10", b"49h more \x1b[?25l\x1b[?1;2004h", b"\x1b="):
        modes.feed(piece)
    assert modes.alternate_screen
    restored = modes.restore()
    assert restored.startswith(b"\x1b[?1049h")  # the alternate screen first
    for sequence in (b"\x1b[?1h", b"\x1b[?25l", b"\x1b[?2004h", b"\x1b="):
        assert sequence in restored
    modes.feed(b"\x1b[?1049l\x1b[?25h\x1b>")
    assert not modes.alternate_screen
    assert modes.restore() == b"\x1b[?1h\x1b[?2004h"
    modes.feed(b"\x1bc")  # a full reset
    assert modes.restore() == b""


def test_a_replay_from_a_later_point_starts_after_its_line_break() -> None:
    ring = Scrollback(100)
    ring.append(b"aaa\nbbb\nccc\n")
    assert ring.replay_start(2) == 4
    assert ring.replay_start(4) == 4  # a line begins there: nothing to skip
