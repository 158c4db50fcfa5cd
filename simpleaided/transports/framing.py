"""Message framing, detected per connection from its first bytes.

* newline-delimited JSON: one message per line (``socat``, shells, scripts); what follows
  the last newline when the peer stops sending is one last message (``printf '{...}'``);
* ``Content-Length:`` headers, LSP style (``vscode-jsonrpc`` and other editor clients).

A connection whose first bytes are a header name and a colon (``Content-Length:``,
``Content-Type:``) uses headers; anything else (``{``, ``[``, or garbage that then gets a
parse error) is newline-delimited JSON. Replies use the framing of the request.
"""

from __future__ import annotations

import select
import socket
from typing import Literal

import anyio
from anyio.abc import ByteStream

Framing = Literal["ndjson", "content-length"]
MAX_HEADER_BYTES = 8192
DISCARD_LIMIT = 1 << 20  # what a peer may still send after our last message, taken unread
_RECEIVE_CHUNK = 1 << 16


_TOKEN = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-")
_MAX_HEADER_NAME = 64


def _detect(start: bytes | bytearray) -> Framing | None:
    """The framing that ``start`` (the first bytes, whitespace stripped) begins, or ``None``
    when more bytes are needed to tell."""
    if not start:
        return None
    if start[0] not in _TOKEN or start[0] in b"0123456789-":
        return "ndjson"
    for pos, byte in enumerate(start[:_MAX_HEADER_NAME]):
        if byte not in _TOKEN:
            return "content-length" if byte == ord(":") and pos > 0 else "ndjson"
    return "ndjson" if len(start) >= _MAX_HEADER_NAME else None


def detect_framing(start: bytes) -> Framing:
    """The framing that a connection's first bytes ``start`` use (newline-delimited JSON
    when they do not tell, or there are none yet)."""
    return _detect(start.lstrip()) or "ndjson"


def frame(payload: bytes, framing: Framing | None) -> bytes:
    """``payload`` as one message in ``framing`` (newline-delimited by default)."""
    if framing == "content-length":
        return b"Content-Length: %d\r\n\r\n" % len(payload) + payload
    return payload + b"\n"


_GONE_POLL_SECONDS = 0.1
_GONE = select.POLLHUP | select.POLLERR | select.POLLNVAL


class FramingError(Exception):
    """The peer broke the framing; the connection cannot continue."""


class MessageTooLarge(FramingError):
    """A message is larger than the limit."""

    def __init__(self, size: int | str | None, limit: int) -> None:
        if size is None:
            message = f"message exceeds the {limit}-byte limit (no newline within it)"
        else:  # a number of bytes, or (too long to show) how many digits it has
            message = f"message of {size} bytes exceeds the {limit}-byte limit"
        super().__init__(message)
        self.limit = limit


class FramedStream:
    """Reads and writes whole messages on a byte stream: a Unix socket connection as the
    ``MessageStream`` the connection loop serves (``transports.server``)."""

    def __init__(
        self, stream: ByteStream, max_message_bytes: int, sock: socket.socket | None = None
    ) -> None:
        self._stream = stream
        self._sock = sock  # the non-blocking socket under ``stream``, for ``send``'s fast path
        self._max = max_message_bytes
        self._buffer = bytearray()
        self._scanned = 0  # bytes of the buffer already searched for a delimiter
        self._ended = False  # the peer has stopped sending: what is buffered is all there is
        self.framing: Framing | None = None

    @property
    def buffered(self) -> bool:
        """Whether input is waiting behind the last message: the peer sends without
        waiting for replies (pipelines)."""
        return bool(self._buffer)

    async def _fill(self) -> None:
        chunk = await self._stream.receive(_RECEIVE_CHUNK)
        self._buffer += chunk

    async def receive(self) -> bytes:
        """The next message's bytes; ``anyio.EndOfStream`` when the peer closed cleanly."""
        while self.framing is None:
            del self._buffer[: len(self._buffer) - len(self._buffer.lstrip())]
            self.framing = _detect(self._buffer)
            if self.framing is None:
                try:
                    await self._fill()
                except anyio.EndOfStream:
                    if not self._buffer:
                        raise
                    # A few bytes, then the end (``printf null | socat``): not headers,
                    # which end with a blank line; a last line without its newline.
                    self._ended = True
                    self.framing = "ndjson"
        if self.framing == "ndjson":
            return await self._receive_line()
        return await self._receive_lsp()

    async def _receive_line(self) -> bytes:
        while True:
            if not self._buffer:
                if self._ended:
                    raise anyio.EndOfStream
                # The usual case, a client waiting for each reply: one whole line arrives
                # alone, and needs no trip through the buffer.
                chunk = await self._stream.receive(_RECEIVE_CHUNK)
                if chunk.find(b"\n") != len(chunk) - 1:
                    self._buffer += chunk  # part of a line, or several: the general case
                    continue
                line = chunk.strip()
                if len(line) > self._max:
                    raise MessageTooLarge(len(line), self._max)
                if line:
                    return line
                continue
            end = self._buffer.find(b"\n", self._scanned)
            if end < 0:
                if len(self._buffer) > self._max:
                    raise MessageTooLarge(None, self._max)
                self._scanned = len(self._buffer)
                if self._ended:
                    return self._last_line()
                try:
                    await self._fill()
                except anyio.EndOfStream:
                    self._ended = True
                continue
            line = bytes(self._buffer[:end]).strip()
            del self._buffer[: end + 1]
            self._scanned = 0
            if len(line) > self._max:
                raise MessageTooLarge(len(line), self._max)
            if line:
                return line

    def _last_line(self) -> bytes:
        """What the peer sent after its last newline before it stopped sending (``printf
        '{...}' | socat``): one last message, as if the newline were there. A value cut short
        gets its parse error from the dispatcher, as any line would."""
        line = bytes(self._buffer).strip()
        self._buffer.clear()
        self._scanned = 0
        if not line:
            raise anyio.EndOfStream
        return line

    async def _receive_lsp(self) -> bytes:
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(self._buffer) > MAX_HEADER_BYTES:
                raise FramingError("header block too long or not terminated by a blank line")
            await self._fill_within_message(started=bool(self._buffer.strip()))
        header = bytes(self._buffer[:end]).decode("ascii", "replace")
        del self._buffer[: end + 4]
        length: int | None = None
        for line in header.split("\r\n"):
            name, sep, value = line.partition(":")
            if not sep:
                raise FramingError(f"malformed header line {line[:60]!r}")
            if name.strip().lower() == "content-length":
                value = value.strip()
                if not value.isdigit():
                    raise FramingError(f"bad Content-Length {value[:20]!r}")
                digits = value.lstrip("0") or "0"
                if len(digits) > len(str(self._max)):
                    # Surely too large, and int() refuses over 4300 digits anyway.
                    raise MessageTooLarge(f"a {len(digits)}-digit number of", self._max)
                length = int(digits)
        if length is None:
            raise FramingError("missing Content-Length header")
        if length > self._max:
            raise MessageTooLarge(length, self._max)
        while len(self._buffer) < length:
            await self._fill_within_message(started=True)
        body = bytes(self._buffer[:length])
        del self._buffer[:length]
        return body

    async def _fill_within_message(self, *, started: bool) -> None:
        """``_fill``, where the end of input is clean only before a message has ``started``:
        after part of one, it is a ``FramingError`` (answered ``-32700``, not dropped)."""
        try:
            await self._fill()
        except anyio.EndOfStream:
            if started:
                raise FramingError("the connection ended in the middle of a message") from None
            raise

    async def send(self, payload: bytes) -> None:
        """Send one message in this connection's framing (newline-delimited by default).

        A message that fits in the socket's buffer is written at once when no input is
        waiting in ours: the stream's own send would first take a trip through the event
        loop, which the read that follows takes anyway. With input waiting (a client that
        pipelines), the stream's send keeps that trip, so the client cannot hold the loop.
        """
        if self.framing == "content-length":
            data = b"Content-Length: %d\r\n\r\n" % len(payload) + payload
        else:
            data = payload + b"\n"
        if self._sock is not None and not self._buffer:
            try:
                sent = self._sock.send(data)
            except OSError:  # full, or broken: the stream's send waits, or says which
                sent = 0
            if sent == len(data):
                return
            data = data[sent:]
        await self._stream.send(data)

    async def wait_gone(self) -> None:
        """Return once the peer has closed the connection or it broke (``POLLHUP``,
        ``POLLERR``), looked at every ``_GONE_POLL_SECONDS``; its input is never touched. A
        peer that only ended its sending side (``printf … | socat``) still reads its reply:
        it has not gone. Without the socket it cannot tell."""
        if self._sock is None:
            await anyio.sleep_forever()
        assert self._sock is not None
        poller = select.poll()
        poller.register(self._sock.fileno(), select.POLLHUP | select.POLLERR)
        while True:  # polled: a half-closed peer keeps the socket readable, so readiness
            # cannot be waited for: it would wake at once, again and again
            if any(event & _GONE for _, event in poller.poll(0)):
                return
            await anyio.sleep(_GONE_POLL_SECONDS)

    async def linger(self) -> None:
        """After a last message: half-close, and take (unread) what the peer still sends
        until it closes, so that it gets to read that message.

        Closing a socket with unread input makes the kernel reset the connection, and the
        peer may then never read the message. The caller bounds the wait.
        """
        await self._stream.send_eof()
        discarded = 0
        while discarded < DISCARD_LIMIT:
            discarded += len(await self._stream.receive())
