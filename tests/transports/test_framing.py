"""Framing on a scripted byte stream: however the bytes arrive, the same messages come out."""

from __future__ import annotations

import anyio
import pytest

from simpleaided.transports.framing import FramedStream, FramingError, MessageTooLarge


class ScriptedStream:
    """A byte stream whose ``receive`` returns the given chunks, then end of stream."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = list(chunks)
        self.sent: list[bytes] = []

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if not self.chunks:
            raise anyio.EndOfStream
        return self.chunks.pop(0)

    async def send(self, item: bytes) -> None:
        self.sent.append(item)


async def messages(*chunks: bytes, limit: int = 1 << 20) -> list[bytes]:
    framed = FramedStream(ScriptedStream(*chunks), limit)  # type: ignore[arg-type]
    out = []
    while True:
        try:
            out.append(await framed.receive())
        except anyio.EndOfStream:
            return out


@pytest.mark.parametrize(
    "chunks",
    [
        # one line a chunk (the usual case), blank lines and stray whitespace between
        (b'{"a":1}\n', b'{"a":2}\n', b"\n", b"  \r\n", b' {"a":3} \r\n'),
        # several lines in one chunk, then a line split across chunks
        (b'{"a":1}\n{"a":2}\n{"a', b'":3}\n'),
        # a line split right before its newline, and a chunk holding only the newline
        (b'{"a":1}\n', b'{"a":2}', b"\n", b'{"a":3}\n'),
    ],
)
async def test_ndjson_messages_survive_any_chunking(chunks: tuple[bytes, ...]) -> None:
    assert await messages(*chunks) == [b'{"a":1}', b'{"a":2}', b'{"a":3}']


async def test_an_oversized_line_is_refused_whether_whole_or_split() -> None:
    with pytest.raises(MessageTooLarge, match="18 bytes"):
        await messages(b'{"a":1}\n', b'{"a":"0123456789"}\n', limit=16)
    with pytest.raises(MessageTooLarge, match="no newline"):
        await messages(b'{"a":1}\n', b'{"a":"0123', b"45678901234567", limit=16)


async def test_what_follows_the_last_newline_at_the_end_of_the_stream_is_a_message() -> None:
    # As if its newline were there: a whole value is answered, a cut one gets the
    # dispatcher's parse error, whitespace alone is nothing.
    assert await messages(b'{"a":1}\n', b'{"a":2}') == [b'{"a":1}', b'{"a":2}']
    assert await messages(b'{"a":1}\n', b'{"a":') == [b'{"a":1}', b'{"a":']
    assert await messages(b'{"a":1}\n{"a', b'":2} ') == [b'{"a":1}', b'{"a":2}']
    assert await messages(b"nu", b"ll") == [b"null"]  # too short to tell the framing
    assert await messages(b'{"a":1}\n', b" \r\n ") == [b'{"a":1}']


async def test_a_content_length_message_cut_short_by_the_end_is_a_framing_error() -> None:
    whole = b'Content-Length: 7\r\n\r\n{"a":1}'
    assert await messages(whole) == [b'{"a":1}']
    assert await messages(whole, b"\r\n ") == [b'{"a":1}']  # whitespace alone: nothing
    for cut in (whole[:-1], whole[:24], whole[:20], whole + whole[:10]):
        with pytest.raises(FramingError, match="ended in the middle of a message"):
            await messages(cut)


async def test_a_content_length_of_thousands_of_digits_is_too_large_not_a_crash() -> None:
    # Python refuses to convert a string of over 4300 digits to an int (ValueError).
    for digits in (b"9" * 30, b"9" * 4300, b"9" * 4301, b"9" * 8000):
        with pytest.raises(MessageTooLarge, match="exceeds the 65536-byte limit"):
            await messages(b"Content-Length: " + digits + b"\r\n\r\n{}", limit=65536)


async def test_a_content_length_with_leading_zeros_is_its_value() -> None:
    assert await messages(b"Content-Length: " + b"0" * 5000 + b"2\r\n\r\n{}") == [b"{}"]
