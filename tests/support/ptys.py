"""The installed ``simpleaide`` on a real PTY that is its controlling terminal, its screen
read through pyte (a headless terminal emulator)."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import time
from collections.abc import Callable
from typing import Any

import pyte

from tests.support.sandbox import Sandbox, interruptible, simpleaide_command

BOUND = 15.0  # seconds: generous, only a failing test waits this long


class CliPty:
    """``simpleaide ARGS`` on a new PTY that is its controlling terminal (as in a terminal
    window: resizing it sends SIGWINCH), its screen read through pyte."""

    def __init__(
        self,
        sandbox: Sandbox,
        *args: str,
        cols: int = 80,
        rows: int = 24,
        attrs: list[Any] | None = None,
    ) -> None:
        self.master, self.slave = pty.openpty()
        self.screen = pyte.Screen(cols, rows)
        self.stream = pyte.ByteStream(self.screen)
        self.output = bytearray()
        self.resize(cols, rows)
        if attrs is not None:
            termios.tcsetattr(self.slave, termios.TCSANOW, attrs)
        self.before = termios.tcgetattr(self.slave)
        # setsid --ctty (util-linux) makes the PTY the client's controlling terminal and
        # execs it: no Python runs between fork and exec in this threaded process.
        # SIGINT at its default, as in a terminal window (the suite may run with it ignored).
        self.proc = subprocess.Popen(
            ["setsid", "--ctty", "--", *interruptible([simpleaide_command(), *args])],
            stdin=self.slave,
            stdout=self.slave,
            stderr=self.slave,
            env=sandbox.env,
            cwd=sandbox.cwd,
        )

    def resize(self, cols: int, rows: int) -> None:
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.screen.resize(rows, cols)

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    @property
    def lines(self) -> list[str]:
        return [line.rstrip() for line in self.screen.display]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def _read(self, timeout: float) -> bool:
        if not select.select([self.master], [], [], timeout)[0]:
            return False
        try:
            data = os.read(self.master, 65536)
        except OSError:
            return False
        self.output += data
        self.stream.feed(data)
        return True

    def until(self, check: Callable[[], Any], what: str) -> None:
        deadline = time.monotonic() + BOUND
        while not check():
            left = deadline - time.monotonic()
            assert left > 0, f"no {what} within {BOUND} s; the screen:\n{self.text}"
            if not self._read(min(left, 0.5)) and self.proc.poll() is not None:
                self._drain()
                assert check(), f"it exited ({self.proc.returncode}) before {what}:\n{self.text}"

    def until_shown(self, text: str) -> None:
        self.until(lambda: text in self.text, repr(text))

    def until_line(self, line: str) -> None:
        self.until(lambda: line in self.lines, f"line {line!r}")

    def _drain(self) -> None:
        while self._read(0):
            pass

    def wait(self) -> int:
        """Its exit status, once it exited, with all it printed read."""
        self.until(lambda: self.proc.poll() is not None, "the exit")  # reading meanwhile
        self._drain()
        return self.proc.returncode

    def attrs(self) -> list[Any]:
        return termios.tcgetattr(self.slave)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(BOUND)
        os.close(self.master)
        os.close(self.slave)
