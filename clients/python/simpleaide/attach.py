"""The local terminal joined to one of the daemon's terminals: ``simpleaide term attach``.

One thread waits (``selectors``) on four things at once: the keys typed (standard input), the
daemon's socket, standard output while there is output to write, and signals, which
``signal.set_wakeup_fd`` turns into bytes on a pipe. Nothing blocks but the wait, so a key, a
resize or a SIGTERM is handled at once whatever the terminal is printing.

How it speaks ``terminals.*`` (the daemon's side is README: Terminals on the wire):

- **Input and resizes are requests.** Their replies come back on the same connection, among
  the output notifications; the loop matches them by id. An error (a key refused because the
  input is too large, the terminal gone) ends the attachment with the daemon's words; an
  input refused because the program has just exited is dropped, as ``terminal.exited`` follows.
- **Acknowledgements are notifications**: one after each chunk of output is written to
  standard output (so they count what was really shown), with nothing to wait for. The daemon
  stops reading the program's output while an interactive client is 256 KiB behind; a lost
  acknowledgement would only mean a gone connection, which the loop sees anyway.
- Output is written as it comes, in order of offset; a chunk marked ``replay`` (a viewer that
  fell behind the scrollback) resets the screen first.

The terminal is put back on every way out (``RawMode``), and so are the modes a full-screen
program switched on (mouse, bracketed paste, the alternate screen...), so that the shell the
user returns to works as before.
"""

from __future__ import annotations

import base64
import errno
import os
import selectors
import signal
import time
from collections import deque
from contextlib import nullcontext

from simpleaide import fastjson
from simpleaide.client import DaemonUnreachable, InvalidTransition, ProtocolError, rpc_error
from simpleaide.rawmode import RawMode

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~2 ms to import; annotations are not evaluated at run time
    import _socket
    from types import FrameType, TracebackType
    from typing import Any

    from simpleaide.client import Client
    from simpleaide.detachkeys import DetachFilter

RESIZE_DELAY = 0.05  # seconds: a window being dragged sends one resize, not fifty
# Keys read (and sent) at a time: the smallest input a daemon may be configured to take
# (terminals.max_input_bytes), so that a paste is never refused as too large.
KEYS_CHUNK = 1024
WRITE_CHUNK = 16 << 10  # written at a time, once standard output can take more
RECEIVE_CHUNK = 256 << 10
MAX_UNSENT = 1 << 20  # keys are not read while this much waits to be sent
MAX_UNWRITTEN = 1 << 20  # the socket is not read while this much output waits to be shown
FLUSH_TIMEOUT = 2.0  # seconds to send the keys typed before a detach
MAX_COLS, MAX_ROWS = 1000, 500  # the daemon's bounds

CTRL_C = b"\x03"
CLEAR = b"\x1b[H\x1b[2J"  # cursor home, erase the screen: before the replay of an attach
RESET = b"\x1bc"  # a full reset: before the replay of a viewer that fell behind
# On the way out: mouse reports, focus events and bracketed paste off, cursor keys and keypad
# back to normal, the cursor shown, colours reset. Each is harmless if it was not on.
LEAVE = (
    b"\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1004l\x1b[?1005l\x1b[?1006l\x1b[?1015l"
    b"\x1b[?2004l\x1b[?1l\x1b>\x1b[?25h\x1b[0m"
)
LEAVE_ALTERNATE_SCREEN = b"\x1b[?1049l"
_ALTERNATE_ON = (b"\x1b[?1049h", b"\x1b[?1047h", b"\x1b[?47h")
_ALTERNATE_OFF = (b"\x1b[?1049l", b"\x1b[?1047l", b"\x1b[?47l", RESET)

# The signals that end the attachment (the terminal keeps running) and the one that resizes.
ENDING_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGQUIT)


class Detached:
    """The user typed the detach keys."""


class Exited:
    """The program ended: ``code``, or the name of the ``signal`` that killed it."""

    def __init__(self, code: int | None, signal_name: str | None) -> None:
        self.code = code
        self.signal_name = signal_name


class Interrupted:
    """This client got a signal (SIGTERM, SIGHUP...) or lost its own terminal (``signum``
    SIGHUP then)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum


Outcome = Detached | Exited | Interrupted


def terminal_size(*fds: int) -> tuple[int, int] | None:
    """``(cols, rows)`` of the first of ``fds`` that is a terminal with a size, within the
    daemon's bounds; ``None`` if none is."""
    for fd in fds:
        try:
            size = os.get_terminal_size(fd)
        except OSError:
            continue
        if size.columns > 0 and size.lines > 0:
            return min(size.columns, MAX_COLS), min(size.lines, MAX_ROWS)
    return None


class SignalPipe:
    """For the ``with`` block, the ending signals and SIGWINCH arrive as bytes on a pipe
    (``fileno``, read by ``take``) instead of running Python code or killing the process; the
    handlers and wakeup fd found are put back on the way out. A signal that was ignored
    (``nohup``) stays ignored."""

    def __init__(self) -> None:
        self._read_fd = self._write_fd = -1
        self._previous_fd = -1
        self._previous: dict[int, Any] = {}

    def fileno(self) -> int:
        return self._read_fd

    def __enter__(self) -> SignalPipe:
        self._read_fd, self._write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._previous_fd = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        for signum in (*ENDING_SIGNALS, signal.SIGWINCH):
            previous = signal.getsignal(signum)
            if previous == signal.SIG_IGN:
                continue
            self._previous[signum] = previous
            signal.signal(signum, _noted)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        signal.set_wakeup_fd(self._previous_fd)
        os.close(self._read_fd)
        os.close(self._write_fd)

    def take(self) -> bytes:
        """The signals that came since the last call, one byte each (its number)."""
        try:
            return os.read(self._read_fd, 512)
        except BlockingIOError:
            return b""


def _noted(signum: int, frame: FrameType | None) -> None:
    """The Python-level handler: nothing to do, the wakeup byte carries the signal."""


def attach(
    client: Client,
    terminal_id: str,
    keys: DetachFilter,
    *,
    read_only: bool = False,
    stdin: int = 0,
    stdout: int = 1,
) -> Outcome:
    """Attach to terminal ``terminal_id`` and run until the user detaches, the program ends
    or a signal comes; the local terminal is raw meanwhile (when standard input is one) and
    always restored. The connection of ``client`` is used up."""
    interactive_tty = os.isatty(stdin)
    with SignalPipe() as signals, RawMode(stdin) if interactive_tty else nullcontext():
        size = terminal_size(stdin, stdout) if interactive_tty and not read_only else None
        attached = client.call(
            "terminals.attach",
            id=terminal_id,
            readOnly=read_only or None,
            cols=size[0] if size else None,
            rows=size[1] if size else None,
        )
        sock, buffered, notes = client.release()
        loop = _Loop(
            sock,
            terminal_id,
            signals,
            keys,
            read_only=read_only,
            stdin=stdin,
            stdout=stdout,
            size=size,
        )
        try:
            return loop.run(attached, buffered, notes)
        finally:
            loop.leave()
            sock.close()


class _Loop:
    """One attachment's state: what was received, shown and acknowledged, what waits to be
    sent, the requests without a reply yet."""

    def __init__(
        self,
        sock: _socket.socket,
        terminal_id: str,
        signals: SignalPipe,
        keys: DetachFilter,
        *,
        read_only: bool,
        stdin: int,
        stdout: int,
        size: tuple[int, int] | None,
    ) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.terminal_id = terminal_id
        self.signals = signals
        self.keys = keys
        self.read_only = read_only
        self.stdin = stdin
        self.stdout = stdout
        self.screen = os.isatty(stdout)
        self.resizes = size is not None  # interactive, on a terminal
        self.size = size
        self.resize_due: float | None = None
        self.stdin_open = True
        self.hung_up = False
        # Poll rather than epoll: standard input may be a regular file (or /dev/null).
        self.selector = selectors.PollSelector()
        self.interest: dict[int, int] = {}
        self.received_bytes = bytearray()  # from the socket, not parsed yet
        self.unsent = bytearray()  # to the socket
        self.unwritten: deque[tuple[memoryview, int]] = deque()  # output, offset after it
        self.unwritten_size = 0
        self.received = 0  # the offset up to which output has been received
        self.shown = 0  # ... written to standard output
        self.acked = 0  # ... acknowledged
        self.pending: dict[int, str] = {}  # request id -> method
        self.next_id = 1
        self.exited: dict[str, Any] | None = None
        self.alternate_screen = False
        self.scan_tail = b""
        self.line_start = True

    # -- the loop --------------------------------------------------------------------------

    def run(
        self, attached: dict[str, Any], buffered: bytes, notes: list[dict[str, Any]]
    ) -> Outcome:
        """Show the replay, then serve until an outcome."""
        offset = int(attached["offset"])
        replay = base64.b64decode(attached.get("replay") or "")
        self._show(CLEAR + replay if self.screen else replay, offset)
        self.received = offset
        if attached.get("exited"):
            self.exited = attached["exited"]
        for note in notes:
            self._handle(note)
        self.received_bytes += buffered
        self._parse()
        while True:
            outcome = self._step()
            if outcome is not None:
                return outcome

    def _step(self) -> Outcome | None:
        if self.exited is not None and not self.unwritten:
            return Exited(self.exited.get("code"), self.exited.get("signal"))
        self._watch()
        timeout = None
        if self.resize_due is not None:
            timeout = max(self.resize_due - time.monotonic(), 0.0)
        for key, events in self.selector.select(timeout):
            fd = key.fd
            outcome: Outcome | None = None
            if fd == self.signals.fileno():
                outcome = self._signals()
            elif fd == self.stdin:
                outcome = self._keys()
            elif fd == self.stdout:
                outcome = self._write()
            else:
                if events & selectors.EVENT_WRITE:
                    self._send()
                if events & selectors.EVENT_READ:
                    self._receive()
            if outcome is not None:
                return outcome
        if self.resize_due is not None and time.monotonic() >= self.resize_due:
            self._resize()
        if self.shown > self.acked:
            self.acked = self.shown
            self._notify("terminals.ack", {"id": self.terminal_id, "offset": self.shown})
        return None

    def _watch(self) -> None:
        """Wait for what can be done now: keys unless too much waits to be sent, the socket
        unless too much output waits to be shown (the daemon then holds it back), standard
        output when there is output."""
        want = {self.signals.fileno(): selectors.EVENT_READ}
        if self.stdin_open and len(self.unsent) < MAX_UNSENT:
            want[self.stdin] = selectors.EVENT_READ
        sock_events = selectors.EVENT_WRITE if self.unsent else 0
        if self.unwritten_size < MAX_UNWRITTEN:
            sock_events |= selectors.EVENT_READ
        if sock_events:
            want[self.sock.fileno()] = sock_events
        if self.unwritten:
            want[self.stdout] = selectors.EVENT_WRITE
        for fd in self.interest.keys() - want.keys():
            self.selector.unregister(fd)
        for fd, events in want.items():
            if fd not in self.interest:
                self.selector.register(fd, events)
            elif self.interest[fd] != events:
                self.selector.modify(fd, events)
        self.interest = want

    # -- signals and keys ------------------------------------------------------------------

    def _signals(self) -> Outcome | None:
        for signum in self.signals.take():
            if signum == signal.SIGWINCH:
                if self.resizes and self.resize_due is None:
                    self.resize_due = time.monotonic() + RESIZE_DELAY
            elif signum in ENDING_SIGNALS:
                return Interrupted(signum)
        return None

    def _resize(self) -> None:
        self.resize_due = None
        size = terminal_size(self.stdin, self.stdout)
        if size is None or size == self.size:
            return
        self.size = size
        cols, rows = size
        self._request("terminals.resize", {"id": self.terminal_id, "cols": cols, "rows": rows})

    def _keys(self) -> Outcome | None:
        try:
            data = os.read(self.stdin, KEYS_CHUNK)
        except BlockingIOError:
            return None
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise
            self.hung_up = True  # the terminal is gone (its window closed)
            return Interrupted(signal.SIGHUP)
        if not data:  # not a terminal: a pipe or a file ended; watch on
            self.stdin_open = False
            return None
        forward, detach = self.keys.feed(data)
        if self.read_only:
            # Nothing is sent; Ctrl-C, which would go to the program, leaves too.
            return Detached() if detach or CTRL_C in forward else None
        if forward:
            text = base64.b64encode(forward).decode("ascii")
            self._request("terminals.input", {"id": self.terminal_id, "data": text})
        return Detached() if detach else None

    # -- the socket ------------------------------------------------------------------------

    def _request(self, method: str, params: dict[str, Any]) -> None:
        request_id = self.next_id
        self.next_id += 1
        self.pending[request_id] = method
        message = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        self.unsent += fastjson.dumps(message).encode() + b"\n"

    def _notify(self, method: str, params: dict[str, Any]) -> None:
        message = {"jsonrpc": "2.0", "method": method, "params": params}
        self.unsent += fastjson.dumps(message).encode() + b"\n"

    def _send(self) -> None:
        try:
            sent = self.sock.send(self.unsent)
        except BlockingIOError:
            return
        except OSError as exc:
            raise self._gone(exc) from None
        del self.unsent[:sent]

    def _receive(self) -> None:
        try:
            chunk = self.sock.recv(RECEIVE_CHUNK)
        except BlockingIOError:
            return
        except OSError as exc:
            raise self._gone(exc) from None
        if not chunk:
            raise self._gone(None)
        self.received_bytes += chunk
        self._parse()

    def _gone(self, exc: OSError | None) -> DaemonUnreachable:
        reason = f" ({exc.strerror or type(exc).__name__})" if exc else ""
        return DaemonUnreachable(
            f"the daemon closed the connection{reason}; its terminals end when it stops"
        )

    def _parse(self) -> None:
        buffer = self.received_bytes
        start = 0
        while True:
            end = buffer.find(b"\n", start)
            if end < 0:
                break
            line = bytes(buffer[start:end])
            start = end + 1
            if not line.strip():
                continue
            try:
                message = fastjson.loads(line)
            except ValueError as exc:
                raise ProtocolError(f"the daemon sent something that is not JSON: {exc}") from None
            self._handle(message)
        del buffer[:start]

    def _handle(self, message: Any) -> None:
        if not isinstance(message, dict):
            return
        method = message.get("method")
        if method is not None:
            params = message.get("params")
            if "id" in message or not isinstance(params, dict):
                return
            if params.get("id") != self.terminal_id:
                return
            if method == "terminal.output":
                self._output(params)
            elif method == "terminal.exited":
                self.exited = params
            return
        request_id = message.get("id")
        method = self.pending.pop(request_id, None) if isinstance(request_id, int) else None
        if "error" not in message:
            return
        error = rpc_error(message["error"])
        if method is not None and (self.exited is not None or isinstance(error, InvalidTransition)):
            return  # keys for a program that has just ended: terminal.exited says it all
        raise error

    def _output(self, params: dict[str, Any]) -> None:
        data = base64.b64decode(params.get("data") or "")
        offset = int(params["offset"])
        end = offset + len(data)
        if params.get("replay"):
            # Behind the scrollback: what was shown is stale; start again from the replay
            # (the scrollback from ``offset`` to ``end``, then the modes in force).
            end = int(params["end"])
            self._show(RESET + data if self.screen else data, end)
            self.received = end
            return
        if end > self.received:
            self._show(data[max(self.received - offset, 0) :], end)
        self.received = max(self.received, end)

    # -- standard output -------------------------------------------------------------------

    def _show(self, data: bytes, offset_after: int) -> None:
        """Queue ``data`` for standard output; once written, output up to ``offset_after``
        is acknowledged."""
        if data:
            self.unwritten.append((memoryview(data), offset_after))
            self.unwritten_size += len(data)
        else:
            self.shown = max(self.shown, offset_after)

    def _write(self) -> Outcome | None:
        data, offset_after = self.unwritten[0]
        try:
            written = os.write(self.stdout, data[:WRITE_CHUNK])
        except BlockingIOError:
            return None
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise  # BrokenPipeError: the reader went away, as for any command
            self.hung_up = True
            return Interrupted(signal.SIGHUP)
        self._track_modes(data[:written])
        self.unwritten_size -= written
        if written == len(data):
            self.unwritten.popleft()
            self.shown = max(self.shown, offset_after)
        else:
            self.unwritten[0] = (data[written:], offset_after)
        return None

    def _track_modes(self, written: memoryview) -> None:
        """Follow whether the program switched to the alternate screen, to leave it on the
        way out (a sequence split between two writes is found through the tail kept)."""
        if not written:
            return
        seen = self.scan_tail + bytes(written)
        on = max(seen.rfind(pattern) for pattern in _ALTERNATE_ON)
        off = max(seen.rfind(pattern) for pattern in _ALTERNATE_OFF)
        if on != off:  # both -1 when neither is there
            self.alternate_screen = on > off
        self.scan_tail = seen[-8:]
        self.line_start = seen.endswith(b"\n")

    # -- the way out -----------------------------------------------------------------------

    def leave(self) -> None:
        """Send the keys typed before a detach, and put the screen's modes back (still in
        raw mode: nothing written here is translated)."""
        self.selector.close()
        if self.unsent and not self.hung_up:
            try:
                self.sock.settimeout(FLUSH_TIMEOUT)
                self.sock.sendall(self.unsent)
            except OSError:
                pass
        if not self.screen or self.hung_up:
            return
        tail = LEAVE
        if self.alternate_screen:
            tail = LEAVE_ALTERNATE_SCREEN + tail  # back to the screen the shell was on
        elif not self.line_start:
            tail += b"\r\n"  # what is said next starts a line of its own
        try:
            while tail:
                tail = tail[os.write(self.stdout, tail) :]
        except OSError:
            pass
