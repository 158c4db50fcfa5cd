"""systemd integration: sockets passed by socket activation, and ``sd_notify`` messages.

Both protocols are small, stable and documented (``sd_listen_fds(3)``, ``sd_notify(3)``), so
they are written here rather than taken from ``systemd-python``, which needs libsystemd's
headers to build. Everything is a no-op when the daemon was not started by a service manager.

The variables are read once and removed from the environment, as ``sd_listen_fds(1)`` and
``sd_notify(1, ...)`` do: the processes the daemon starts must not take them for their own.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import MutableMapping
from dataclasses import dataclass

log = logging.getLogger(__name__)

SD_LISTEN_FDS_START = 3
STATE_SEND_SECONDS = 1.0
RPC_SOCKET_NAME = "rpc"  # FileDescriptorName= of the RPC socket in simpleaided.socket

_ACTIVATION_VARIABLES = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")
_NOTIFY_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


class ActivationError(Exception):
    """The sockets passed by the service manager cannot be served."""


@dataclass(frozen=True)
class PassedSocket:
    """A listening socket handed over by socket activation, with its ``FileDescriptorName=``."""

    fd: int
    name: str


def take_passed_sockets(environ: MutableMapping[str, str] = os.environ) -> list[PassedSocket]:
    """The sockets passed to this process (none when not socket-activated).

    ``LISTEN_PID`` must name this process: variables inherited from a parent that was itself
    activated are not ours. The variables are removed either way.
    """
    values = {name: environ.pop(name, None) for name in _ACTIVATION_VARIABLES}
    pid, count = values["LISTEN_PID"], values["LISTEN_FDS"]
    if pid is None or count is None:
        return []
    if not _is_ascii_number(pid) or int(pid) != os.getpid():
        return []
    if not _is_ascii_number(count) or int(count) < 1:
        raise ActivationError(f"LISTEN_FDS={count!r} is not a positive count")
    names = (values["LISTEN_FDNAMES"] or "").split(":")
    passed = []
    for index in range(int(count)):
        fd = SD_LISTEN_FDS_START + index
        try:
            os.set_inheritable(fd, False)  # ours alone, as sd_listen_fds() makes it
        except OSError as exc:
            raise ActivationError(f"passed fd {fd} cannot be used: {exc.strerror}") from None
        name = names[index] if index < len(names) and names[index] else "unknown"
        passed.append(PassedSocket(fd, name))
    return passed


def rpc_socket(passed: list[PassedSocket]) -> socket.socket:
    """The passed socket to serve JSON-RPC on: the one named ``rpc``, else the only one.

    It must be a listening Unix stream socket; anything else is a unit file mistake.
    """
    named = [p for p in passed if p.name == RPC_SOCKET_NAME]
    if named:
        chosen = named[0]
    elif len(passed) == 1:
        chosen = passed[0]
    else:
        names = ", ".join(p.name for p in passed)
        raise ActivationError(
            f"{len(passed)} sockets were passed ({names}) and none is named "
            f"{RPC_SOCKET_NAME!r} (FileDescriptorName={RPC_SOCKET_NAME})"
        )
    try:
        sock = socket.socket(fileno=chosen.fd)
    except OSError as exc:
        raise ActivationError(f"passed fd {chosen.fd} is not a socket: {exc.strerror}") from None
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
        sock.detach()  # not ours to close
        raise ActivationError(
            f"passed socket {chosen.name!r} is not a Unix stream socket (ListenStream=PATH)"
        )
    if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        sock.detach()
        raise ActivationError(f"passed socket {chosen.name!r} is not listening")
    for other in passed:
        if other is not chosen:
            log.warning("ignoring passed socket %r (fd %d)", other.name, other.fd)
    return sock


class Notifier:
    """Sends ``sd_notify`` messages to the service manager, if it asked for them.

    Sending never blocks and never fails the daemon: a message that cannot be sent is dropped
    with a debug log line (the manager's queue is full, or it went away).
    """

    def __init__(self, environ: MutableMapping[str, str] = os.environ) -> None:
        values = {name: environ.pop(name, None) for name in _NOTIFY_VARIABLES}
        address = values["NOTIFY_SOCKET"] or ""
        self._address: str | None = None
        if address.startswith("@"):
            self._address = "\0" + address[1:]  # an abstract socket
        elif address.startswith("/"):
            self._address = address
        self._sock: socket.socket | None = None
        if self._address is not None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.setblocking(False)
        self.watchdog_seconds = _watchdog_seconds(values["WATCHDOG_USEC"], values["WATCHDOG_PID"])

    @property
    def enabled(self) -> bool:
        """Whether a service manager listens."""
        return self._sock is not None

    def send(self, *fields: str, wait: bool = False) -> bool:
        """Send ``KEY=value`` fields as one message; whether it was sent.

        Watchdog pings and status lines never wait (the next one follows soon); a change of
        state (``wait``) waits up to a second for room in a full queue, since the manager
        would otherwise wait for it until its timeout.
        """
        if self._sock is None or self._address is None:
            return False
        try:
            self._sock.settimeout(STATE_SEND_SECONDS if wait else 0)
            self._sock.sendto("\n".join(fields).encode(), self._address)
        except OSError as exc:
            log.debug("sd_notify %s not sent: %s", fields, exc)
            return False
        return True

    def ready(self, status: str) -> bool:
        """The daemon answers (again, after a reload)."""
        return self.send("READY=1", f"STATUS={status}", wait=True)

    def reloading(self) -> bool:
        """A reload begins; the timestamp lets the manager match it to ``systemctl reload``."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send("RELOADING=1", f"MONOTONIC_USEC={usec}", wait=True)

    def stopping(self) -> bool:
        """A graceful stop begins."""
        return self.send("STOPPING=1", "STATUS=stopping: finishing requests in progress", wait=True)

    def close(self) -> None:
        """Close the notification socket."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _is_ascii_number(text: str) -> bool:
    # ``isdigit`` alone takes any script's digits and superscripts (``int("²")`` fails).
    return text.isascii() and text.isdigit()


def _watchdog_seconds(usec: str | None, pid: str | None) -> float | None:
    """``WatchdogSec=`` in seconds when the watchdog is meant for this process."""
    if not usec or not _is_ascii_number(usec) or int(usec) == 0:
        return None
    if pid is not None and (not _is_ascii_number(pid) or int(pid) != os.getpid()):
        return None
    return int(usec) / 1_000_000
