"""One terminal: a program on a PTY, what it printed, and the clients attached to it.

The PTY's master side is read on the event loop (``add_reader``), whether or not anyone is
attached, into the scrollback; each attached client has a pump task on its connection that
sends it the output from where it is (``terminal.output``), so a slow client only delays
itself. Flow control: an interactive client acknowledges what it consumed (``ack``); while
one is more than ``window`` bytes behind, the PTY is not read, so the program blocks on its
writes and the bytes in flight stay bounded (Ctrl-C still reaches it: input is written
regardless). A client that stops acknowledging for ``stall_seconds`` is no longer waited for
(it is *lagging*), and neither is a read-only one: they are re-synchronised from the
scrollback (a replay) if they fall behind its start.

The program's exit is reported (``terminal.exited``) only after its output was read to the
end (the PTY's hang-up) *and* the process was reaped (its pidfd); then to each client only
after every byte was sent to it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import errno
import logging
import os
import signal as signals
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import orjson

from simpleaided.domain import clock
from simpleaided.domain.errors import InvalidInput, InvalidTransition, LimitExceeded, ReadOnly
from simpleaided.services.terminals import spawn
from simpleaided.services.terminals.scrollback import Modes, Scrollback, incomplete_tail

log = logging.getLogger(__name__)

READ_BYTES = 64 * 1024  # one read of the PTY
READ_BURST = 256 * 1024  # read this much per wake-up at most, then let others run
SEND_BYTES = 128 * 1024  # the most output one notification carries
HOLD_SECONDS = 0.5  # how long an incomplete UTF-8 character is held back at most
ORPHAN_WAIT_SECONDS = 0.2  # after the program's exit, how long to wait for the PTY to close
MAX_PENDING_INPUT = 1024 * 1024  # input written to a program that does not read it yet
REAP_POLL_SECONDS = 0.1  # without a pidfd: how often to ask whether the program ended


@dataclass(frozen=True)
class Limits:
    """What one terminal is allowed."""

    scrollback_bytes: int = 2 * 1024 * 1024
    window_bytes: int = 256 * 1024  # an interactive client this far behind pauses the PTY
    stall_seconds: float = 5.0  # an interactive client silent this long is no longer waited for
    max_input_bytes: int = 64 * 1024
    kill_grace_seconds: float = 2.0  # HUP, then TERM, then KILL, this long apart
    max_replay_bytes: int = 2 * 1024 * 1024  # what one message can carry (base64 aside)


@dataclass(eq=False)
class Attachment:
    """One client attached to a terminal, on one connection."""

    connection: Any
    read_only: bool
    sent: int  # the offset up to which output was sent to it
    acked: int  # the offset up to which it said it consumed the output
    size: tuple[int, int] | None = None  # (cols, rows) it asked for, if any
    active_at: float = 0.0  # when it last typed, resized or attached (the latest wins the size)
    acked_at: float = field(default_factory=time.monotonic)
    lagging: bool = False  # stopped acknowledging: no longer waited for
    told_exit: bool = False
    detached: bool = False
    sending: bool = False  # its pump is sending it a message
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)

    def end(self) -> None:
        """Stop its pump: at once while it waits; while it sends, after that message (a
        message cut half-way would garble the connection for every later one)."""
        self.detached = True
        if not self.sending:
            self.scope.cancel()

    @property
    def waited_for(self) -> bool:
        """Whether the PTY waits for this client to catch up (flow control)."""
        return not self.read_only and not self.lagging


def exit_status(returncode: int) -> dict[str, Any]:
    """The wire form of a process's exit: its code, or the signal that ended it."""
    if returncode < 0:
        try:
            name = signals.Signals(-returncode).name
        except ValueError:
            name = f"SIG{-returncode}"
        return {"code": None, "signal": name}
    return {"code": returncode, "signal": None}


def _exit_status_kept(pid: int, pidfd: int | None) -> int | None:
    """The exit status of ``pid`` as ``Popen.returncode`` gives it (``-N``: signal N), or
    ``None`` while it runs; the process is left to be reaped (``WNOWAIT``)."""
    try:
        result = _waitid_kept(pid, pidfd)
    except ChildProcessError:  # reaped already (it cannot be, but then it is gone)
        return 0
    if result is None:
        return None
    if result.si_code == os.CLD_EXITED:
        return result.si_status
    return -result.si_status  # killed, or dumped core


def _waitid_kept(pid: int, pidfd: int | None) -> os.waitid_result | None:
    flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
    if pidfd is not None:
        try:
            return os.waitid(os.P_PIDFD, pidfd, flags)
        except ChildProcessError:
            raise
        except OSError:  # Linux 5.3: pidfd_open, but not yet waitid's P_PIDFD
            pass
    return os.waitid(os.P_PID, pid, flags)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _notification(method: str, params: dict[str, Any]) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "method": method, "params": params})


class Terminal:
    """A program on a PTY, its scrollback and its attached clients."""

    def __init__(
        self,
        terminal_id: str,
        name: str,
        argv: list[str],
        cwd: str,
        spawned: spawn.Spawned,
        size: tuple[int, int],
        limits: Limits,
        on_finished: Callable[[Terminal], None],
        on_removable: Callable[[Terminal], None],
        on_closed: Callable[[Terminal], None] = lambda terminal: None,
    ) -> None:
        """``on_finished`` is called once the exit is known; ``on_removable`` once every
        client was told of it, if ``remove_when_finished`` was set; ``on_closed`` once it
        is closed and its program reaped (a hang-up of what it left may outlast the close)."""
        self.id = terminal_id
        self._id_bytes = terminal_id.encode("ascii")  # ids are hex (checked where they're made)
        self.name = name
        self.argv = argv
        self.cwd = cwd
        self.created_ms = clock.now_ms()
        self.cols, self.rows = size
        self.limits = limits
        self.process = spawned.process
        self.pid = spawned.process.pid
        self._master: int | None = spawned.master
        self._on_finished = on_finished
        self._on_removable = on_removable
        self._on_closed = on_closed
        self.scrollback = Scrollback(limits.scrollback_bytes)
        self.modes = Modes()
        self.published = 0  # output up to here is sent to clients (whole characters)
        self.attachments: dict[Any, Attachment] = {}
        self.eof = False  # the PTY hung up: every process on it is gone, its output all read
        self.returncode: int | None = None  # the program's, once reaped
        self.finished = False  # exit reported: read to the end and reaped
        self.remove_when_finished = False
        self.removed = False
        self._arrived = anyio.Event()  # set when output is published (or the end comes)
        self._loop = asyncio.get_running_loop()
        self._reading = False
        self._hold_timer: asyncio.TimerHandle | None = None
        self._held_at: int | None = None  # where an incomplete character begins
        self._stall_timer: asyncio.TimerHandle | None = None
        self._orphan_timer: asyncio.TimerHandle | None = None
        self._pending_input = bytearray()
        self._hanging_up = False  # a HUP, TERM, KILL chain is under way
        self._chain_timer: asyncio.TimerHandle | None = None
        self._released = False  # the program was reaped: its pid is no longer ours
        self._closed = False
        self._writing = False
        self._pidfd: int | None = None
        self._reap_poll: asyncio.TimerHandle | None = None
        try:
            self._pidfd = os.pidfd_open(self.pid)
        except OSError:  # a kernel before 5.3, or a sandbox refusing it: ask now and then
            self._reap_poll = self._loop.call_later(REAP_POLL_SECONDS, self._reap)
        else:
            self._loop.add_reader(self._pidfd, self._reap)
        self._resume()

    # -- what clients see ------------------------------------------------------------------

    @property
    def exited(self) -> dict[str, Any] | None:
        """The exit, once reported."""
        if not self.finished or self.returncode is None:
            return None
        return exit_status(self.returncode)

    def info(self) -> dict[str, Any]:
        """The terminal as ``terminals.list`` shows it."""
        return {
            "id": self.id,
            "name": self.name,
            "pid": self.pid,
            "argv": self.argv,
            "cwd": self.cwd,
            "createdAt": clock.format_ms(self.created_ms),
            "cols": self.cols,
            "rows": self.rows,
            "attached": len(self.attachments),
            "readOnly": sum(a.read_only for a in self.attachments.values()),
            "exited": self.exited,
        }

    def replay(self) -> tuple[bytes, int, int]:
        """The scrollback from a boundary to what was published, then the modes in force;
        with the offsets it spans."""
        end = self.published
        start = self.scrollback.replay_start(end - self.limits.max_replay_bytes)
        return self.scrollback.read(start, end - start) + self.modes.restore(), start, end

    # -- clients ---------------------------------------------------------------------------

    def attach(
        self, connection: Any, size: tuple[int, int] | None, read_only: bool
    ) -> dict[str, Any]:
        """Attach ``connection`` (again: its earlier attachment is replaced); returns the
        replay. Live output follows, from the offset where the replay ends, once the reply
        has gone out."""
        earlier = self.attachments.pop(connection, None)
        if earlier is not None:
            # Replaced, not detached: a terminal waiting for this client to hear its exit
            # before going away must not go away in the middle of this attach.
            earlier.end()
        data, start, end = self.replay()
        attachment = Attachment(connection, read_only, sent=end, acked=end)
        self.attachments[connection] = attachment
        if not read_only and size is not None:
            attachment.size = size
        if read_only or not self._activate(attachment):
            self._nudge()  # the size changed nothing: a redraw is asked for another way

        async def pump() -> None:
            try:
                await self._pump(attachment)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass  # the client went away; closing its connection detaches it

        connection.start_after_reply(pump)
        # Weakly: a removed terminal is not kept (its scrollback with it) by a connection.
        terminal = weakref.ref(self)

        def closed() -> None:
            alive = terminal()
            if alive is not None:
                alive.detach(connection)

        connection.on_close(f"terminal:{self.id}", closed)
        return {
            "replay": _b64(data),
            "start": start,
            "offset": end,
            "cols": self.cols,
            "rows": self.rows,
            "readOnly": read_only,
            "exited": self.exited,
        }

    def detach(self, connection: Any) -> bool:
        """Detach ``connection``; whether it was attached."""
        attachment = self.attachments.pop(connection, None)
        if attachment is None:
            return False
        attachment.end()
        if self.finished:
            self._removable_if_told()  # it may have been the last one not told of the exit
        if attachment.size is not None and not self.finished:
            latest = max(
                (a for a in self.attachments.values() if a.size is not None),
                key=lambda a: a.active_at,
                default=None,
            )
            if latest is not None:
                self._apply_size(*latest.size)  # type: ignore[misc]
        self._resume_if_caught_up()
        return True

    def _attachment(self, connection: Any, *, writes: bool) -> Attachment | None:
        attachment = self.attachments.get(connection)
        if writes and attachment is not None and attachment.read_only:
            raise ReadOnly(
                f"terminal {self.name!r} is attached read-only on this connection: "
                "attach it again without read-only to type or resize"
            )
        return attachment

    def ack(self, connection: Any, offset: int) -> None:
        """``connection`` consumed the output up to ``offset``."""
        attachment = self.attachments.get(connection)
        if attachment is None:
            raise InvalidInput(f"terminal {self.name!r} is not attached on this connection")
        if offset > attachment.sent:
            raise InvalidInput(
                f"offset {offset} is beyond the output sent to this client ({attachment.sent})"
            )
        if offset > attachment.acked:
            attachment.acked = offset
            attachment.acked_at = time.monotonic()
            if attachment.lagging and self.scrollback.end - offset <= self.limits.window_bytes:
                attachment.lagging = False  # caught up: waited for again
        self._resume_if_caught_up()

    def resize(self, connection: Any, cols: int, rows: int) -> None:
        """Resize the terminal as ``connection`` asks (it becomes the active client)."""
        attachment = self._attachment(connection, writes=True)
        if attachment is None:
            self._apply_size(cols, rows)
            return
        attachment.size = (cols, rows)
        self._activate(attachment)

    def write(self, connection: Any, data: bytes) -> None:
        """Type ``data`` into the terminal on behalf of ``connection``."""
        attachment = self._attachment(connection, writes=True)
        if self.eof or self._master is None:
            raise InvalidTransition(f"terminal {self.name!r}", "exited", "input")
        if len(data) > self.limits.max_input_bytes:
            raise LimitExceeded(
                f"input of {len(data)} bytes is over the {self.limits.max_input_bytes}-byte "
                "limit (terminals.max_input_bytes): send it in parts"
            )
        if len(self._pending_input) + len(data) > MAX_PENDING_INPUT:
            raise LimitExceeded(
                f"the program in terminal {self.name!r} is not reading its input: "
                f"{len(self._pending_input)} bytes are waiting already"
            )
        if attachment is not None:
            self._activate(attachment)
        self._pending_input += data
        self._flush_input()

    # -- signals ---------------------------------------------------------------------------

    def kill(self, signame: str, grace: float | None = None) -> None:
        """Send ``signame`` to every process group of the terminal's session (its program
        may have exited and left some behind); a hang-up is followed by TERM, then KILL,
        ``grace`` seconds apart (``kill_grace_seconds`` unless given), while anything is
        left. One hang-up at a time: another asked for meanwhile changes nothing."""
        if signame != "HUP":
            self.signal(signame)
            return
        if self._hanging_up:
            return
        self._hanging_up = True
        grace = self.limits.kill_grace_seconds if grace is None else grace
        steps = iter(("HUP", "TERM", "KILL"))

        def step() -> None:
            self._chain_timer = None
            name = next(steps, None)
            if name is not None and self._leader_held() and self.signal(name):
                self._chain_timer = self._loop.call_later(grace, step)
                return
            self._hanging_up = False
            self._release_leader()  # if closed meanwhile: the pid may go now

        step()

    def signal(self, signame: str) -> bool:
        """Send ``signame`` to every process group of the terminal's session, once;
        whether any was there."""
        if not self._leader_held():
            return False  # reaped: the session's id may belong to someone else now
        signum = spawn.SIGNALS[signame]
        if signame in ("HUP", "TERM"):
            # Stopped jobs (Ctrl-Z) act on it only once continued, as on a real hang-up.
            return spawn.signal_session(self.pid, signum, signals.SIGCONT)
        return spawn.signal_session(self.pid, signum)

    def end_hang_up(self) -> None:
        """Stop a hang-up under way (the daemon's stop has sent KILL itself)."""
        if self._chain_timer is not None:
            self._chain_timer.cancel()
            self._chain_timer = None
        self._hanging_up = False

    def session_alive(self) -> bool:
        """Whether anything is left in the terminal's session (while that is known)."""
        return self._leader_held() and bool(spawn.session_groups(self.pid))

    def _leader_held(self) -> bool:
        return not self._released

    def _release_leader(self) -> None:
        """Reap the program once the terminal is closed and no hang-up is under way: its
        pid (and so its session's id) may then be reused."""
        if self._released or self._hanging_up or not self._closed:
            return
        if self.process.poll() is not None:
            self._released = True
            self._on_closed(self)  # nothing of it is left to track

    # -- the PTY ---------------------------------------------------------------------------

    def _readable(self) -> None:
        master = self._master
        if master is None:
            return
        chunks = []
        total = 0
        ended = False
        while total < READ_BURST:
            try:
                chunk = os.read(master, READ_BYTES)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno != errno.EIO:  # EIO: every process let go of the PTY
                    log.warning("terminal %s: reading its PTY failed: %s", self.id, exc)
                ended = True
                break
            if not chunk:
                ended = True
                break
            chunks.append(chunk)
            total += len(chunk)
        if chunks:
            self._output(b"".join(chunks) if len(chunks) > 1 else chunks[0])
        if ended:
            self._hang_up()

    def _output(self, data: bytes) -> None:
        self.scrollback.append(data)
        self.modes.feed(data)
        end = self.scrollback.end
        tail = data[-3:] if len(data) >= 3 else self.scrollback.read(end - 3, 3)
        held = incomplete_tail(tail)
        self._hold(end - held if held else None)
        self._publish(end - held)
        self._pause_if_behind()

    def _publish(self, offset: int) -> None:
        if offset > self.published:
            self.published = offset
            self._wake()

    def _hold(self, offset: int | None) -> None:
        """Hold the output back from ``offset`` (an incomplete character) for a while at
        most; ``None``: nothing is held."""
        if offset == self._held_at:
            return
        if self._hold_timer is not None:
            self._hold_timer.cancel()
            self._hold_timer = None
        self._held_at = offset
        if offset is not None:
            self._hold_timer = self._loop.call_later(HOLD_SECONDS, self._publish_held)

    def _publish_held(self) -> None:
        # An incomplete character that stays incomplete is not UTF-8: sent as it is; but
        # not while the PTY is not read (flow control): its end may be waiting there.
        self._hold_timer = None
        if not self._reading and not self.eof:
            self._hold_timer = self._loop.call_later(HOLD_SECONDS, self._publish_held)
            return
        self._held_at = None
        self._publish(self.scrollback.end)

    def _wake(self) -> None:
        arrived, self._arrived = self._arrived, anyio.Event()
        arrived.set()

    def _hang_up(self) -> None:
        self._pause()
        self.eof = True
        self._drop_input()  # nobody is left to read it
        self._publish(self.scrollback.end)
        self._finish_if_done()

    def _reap(self) -> None:
        """The program ended: read its status, but leave it a zombie (not reaped) until the
        terminal is closed and no hang-up is under way: while its pid is held, no other
        process can lead a session of that id, which every signal here is addressed by."""
        status = _exit_status_kept(self.pid, self._pidfd)
        if status is None:
            if self._pidfd is None and not self.removed:
                self._reap_poll = self._loop.call_later(REAP_POLL_SECONDS, self._reap)
            return
        self.returncode = status
        self._close_pidfd()
        if not self.eof:
            # Usually the hang-up follows at once. If a background process holds the PTY
            # open, the exit is reported after a moment, once what was written is read.
            self._orphan_timer = self._loop.call_later(ORPHAN_WAIT_SECONDS, self._finish_orphaned)
        self._finish_if_done()

    def _finish_orphaned(self) -> None:
        self._orphan_timer = None
        if self._reading or self.eof:  # not waiting on a client's acknowledgement
            self._publish(self.scrollback.end)
            self._finish()
        else:
            self._orphan_timer = self._loop.call_later(ORPHAN_WAIT_SECONDS, self._finish_orphaned)

    def _finish_if_done(self) -> None:
        if self.eof and self.returncode is not None:
            self._finish()

    def _finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        self._wake()
        self._on_finished(self)
        self._removable_if_told()

    def _removable_if_told(self) -> None:
        if not self.remove_when_finished or not all(a.told_exit for a in self.attachments.values()):
            return
        if self.removed:
            self.close()  # retired already: the last client has heard
        else:
            self._on_removable(self)

    # -- flow control ----------------------------------------------------------------------

    def _behind(self) -> list[Attachment]:
        window = self.limits.window_bytes
        end = self.scrollback.end
        return [a for a in self.attachments.values() if a.waited_for and end - a.acked > window]

    def _pause_if_behind(self) -> None:
        if self._reading and self.attachments and self._behind():
            self._pause()
            self._arm_stall_timer()

    def _resume_if_caught_up(self) -> None:
        if not self._reading and not self.eof and not self._behind():
            self._resume()

    def _arm_stall_timer(self) -> None:
        if self._stall_timer is None:
            self._stall_timer = self._loop.call_later(
                self.limits.stall_seconds, self._stall_expired
            )

    def _stall_expired(self) -> None:
        self._stall_timer = None
        if self._reading or self.eof:
            return
        now = time.monotonic()
        for attachment in self._behind():
            if now - attachment.acked_at >= self.limits.stall_seconds:
                attachment.lagging = True  # it stopped acknowledging: no longer waited for
        self._resume_if_caught_up()
        if not self._reading:
            self._arm_stall_timer()

    def _pause(self) -> None:
        if self._reading and self._master is not None:
            self._loop.remove_reader(self._master)
        self._reading = False

    def _resume(self) -> None:
        if not self._reading and self._master is not None:
            self._loop.add_reader(self._master, self._readable)
            self._reading = True

    # -- input and size --------------------------------------------------------------------

    def _drop_input(self) -> None:
        self._pending_input.clear()
        if self._writing and self._master is not None:
            self._loop.remove_writer(self._master)
        self._writing = False

    def _flush_input(self) -> None:
        master = self._master
        if self.eof:
            self._drop_input()
            return
        while self._pending_input and master is not None:
            try:
                written = os.write(master, self._pending_input)
            except BlockingIOError:
                break
            except OSError:  # the PTY hung up meanwhile: nobody is there to read it
                self._pending_input.clear()
                break
            del self._pending_input[:written]
        if self._pending_input and not self._writing and master is not None:
            self._loop.add_writer(master, self._flush_input)
            self._writing = True
        elif not self._pending_input and self._writing and master is not None:
            self._loop.remove_writer(master)
            self._writing = False

    def _activate(self, attachment: Attachment) -> bool:
        """Make ``attachment`` the most recently active client; whether its size changed
        the terminal's."""
        attachment.active_at = time.monotonic()
        if attachment.size is not None and attachment.size != (self.cols, self.rows):
            self._apply_size(*attachment.size)
            return True
        return False

    def _apply_size(self, cols: int, rows: int) -> None:
        self.cols, self.rows = cols, rows
        if self._master is not None and not self.eof:
            with contextlib.suppress(OSError):
                spawn.set_size(self._master, cols, rows)

    def _nudge(self) -> None:
        """Make a full-screen program redraw (it was just replayed): a size change and
        back, which it reads as one SIGWINCH at its current size."""
        if self._master is None or self.finished or self.eof:
            return
        other = self.rows + 1 if self.rows < 500 else self.rows - 1
        with contextlib.suppress(OSError):
            spawn.set_size(self._master, self.cols, other)
            spawn.set_size(self._master, self.cols, self.rows)

    # -- each client's pump ----------------------------------------------------------------

    async def _pump(self, attachment: Attachment) -> None:
        """Send ``attachment`` the output from where it is, then the exit."""
        send = attachment.connection.send
        with attachment.scope:
            while not attachment.detached:
                message = self._next_message(attachment)
                if message is None:
                    await self._arrived.wait()
                    continue
                # Not cancelled half-way by a detach (``Attachment.end`` waits for it); a
                # connection closing may cut it, and then nothing more is read from it anyway.
                attachment.sending = True
                try:
                    await send(message)
                finally:
                    attachment.sending = False
                if attachment.told_exit:
                    self._removable_if_told()

    def _next_message(self, attachment: Attachment) -> bytes | None:
        """The next notification for ``attachment``, serialized (its position moved past
        it), or ``None``."""
        if attachment.sent < self.published:
            if attachment.sent < self.scrollback.start:
                # It fell behind the scrollback (read-only, or lagging): a replay instead.
                data, start, end = self.replay()
                attachment.sent = end
                attachment.acked = max(attachment.acked, start)
                params = {"id": self.id, "offset": start, "end": end, "replay": True}
                return _notification("terminal.output", {**params, "data": _b64(data)})
            offset = attachment.sent
            data = self.scrollback.read(offset, min(SEND_BYTES, self.published - offset))
            if offset + len(data) < self.published:  # cut by SEND_BYTES: at a character
                cut = incomplete_tail(data)
                if cut < len(data):
                    data = data[: len(data) - cut]
            attachment.sent = offset + len(data)
            # Built by hand: base64 needs no JSON escaping, and a flood's chunks are large.
            return b"".join(
                (
                    b'{"jsonrpc":"2.0","method":"terminal.output","params":{"id":"',
                    self._id_bytes,
                    b'","offset":',
                    b"%d" % offset,
                    b',"data":"',
                    binascii.b2a_base64(data, newline=False),
                    b'"}}',
                )
            )
        if self.finished and not attachment.told_exit and self.returncode is not None:
            attachment.told_exit = True
            return _notification("terminal.exited", {"id": self.id, **exit_status(self.returncode)})
        return None

    # -- the end ---------------------------------------------------------------------------

    def retire(self) -> None:
        """Taken off the list: close once every attached client has heard of the exit (a
        client still behind gets the rest of the output first), at once if none is."""
        self.remove_when_finished = True
        self.removed = True
        if all(a.told_exit for a in self.attachments.values()) or not self.finished:
            self.close()

    def close(self) -> None:
        """Let go of everything: the PTY, the timers, the clients' pumps, the scrollback
        (the process must have been reaped or signalled by now)."""
        self.removed = True
        self._closed = True
        for attachment in list(self.attachments.values()):
            attachment.end()
        self.attachments.clear()
        self.scrollback = Scrollback(1)
        timers = (
            self._hold_timer,
            self._stall_timer,
            self._orphan_timer,
            self._reap_poll,
        )
        for timer in timers:
            if timer is not None:
                timer.cancel()
        self._pause()
        if self._master is not None:
            if self._writing:
                self._loop.remove_writer(self._master)
                self._writing = False
            os.close(self._master)
            self._master = None
        self._close_pidfd()
        self._release_leader()

    def _close_pidfd(self) -> None:
        if self._pidfd is not None:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
