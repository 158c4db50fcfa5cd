"""The daemon's terminals: created, listed, found by id, limited, and hung up at the stop.

A terminal outlives the client that created it; it ends when its program exits (and stays
listed, its scrollback attachable, until removed), when it is killed, or when the daemon
stops: then every terminal's process groups get SIGHUP, TERM and KILL, a grace apart.
A configuration reload changes the limits of what comes next and touches no terminal.
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass, field
from typing import Any

import anyio

from simpleaided.domain.api.terminals import MAX_NAME_CHARS, check_terminal_name
from simpleaided.domain.errors import Conflict, InvalidInput, LimitExceeded, NotFound
from simpleaided.services.terminals import spawn
from simpleaided.services.terminals.terminal import Limits, Terminal

log = logging.getLogger(__name__)

_REAP_SECONDS = 1.0  # after KILL: how long the kernel may take to end them and the PTY close
_POLL_SECONDS = 0.02  # how often to look whether they are gone (they are not our children)


@dataclass(frozen=True)
class TerminalSettings:
    """The ``[terminals]`` table's settings."""

    max_terminals: int = 32  # exited ones still listed count
    max_scrollback_total_bytes: int = 64 * 1024 * 1024  # every terminal's scrollback together
    stop_grace_seconds: float = 2.0  # at the daemon's stop: HUP, then TERM, then KILL
    shell: str | None = None  # instead of the user's login shell
    limits: Limits = field(default_factory=Limits)


class TerminalService:
    """Every terminal the daemon hosts, by id."""

    def __init__(self, settings: TerminalSettings) -> None:
        self.settings = settings
        self._terminals: dict[str, Terminal] = {}
        # Removed from the list, not closed yet: a client still behind is sent the rest.
        self._retiring: set[Terminal] = set()
        self._hung_up_at: float | None = None
        self._ended = anyio.Event()  # set (and renewed) when a terminal's program ends

    def __len__(self) -> int:
        return len(self._terminals)

    def configure(self, settings: TerminalSettings) -> None:
        """Apply a reloaded configuration: to terminals created from now on."""
        self.settings = settings

    def get(self, terminal_id: str) -> Terminal:
        """The terminal ``terminal_id``; ``NotFound`` if there is none."""
        terminal = self._terminals.get(terminal_id)
        if terminal is None:
            raise NotFound(
                f"no terminal {terminal_id!r} (it was removed, or the daemon restarted); "
                "`simpleaide term ls` lists them"
            )
        return terminal

    def describe(self) -> list[dict[str, Any]]:
        """Every terminal, oldest first."""
        return [terminal.info() for terminal in self._terminals.values()]

    def create(
        self,
        *,
        cwd: str | None,
        argv: list[str] | None,
        env: dict[str, str] | None,
        name: str | None,
        size: tuple[int, int],
    ) -> Terminal:
        """Start a terminal; nothing is spawned when a limit or the input refuses it."""
        settings = self.settings
        if self._hung_up_at is not None:
            raise LimitExceeded("the daemon is stopping: no new terminals")
        if len(self._terminals) >= settings.max_terminals:
            raise LimitExceeded(
                f"{len(self._terminals)} terminals are open, the most allowed "
                "(terminals.max_terminals); remove exited ones with `simpleaide term kill`"
            )
        scrollback = settings.limits.scrollback_bytes
        held = sum(t.scrollback.capacity for t in (*self._terminals.values(), *self._retiring))
        if held + scrollback > settings.max_scrollback_total_bytes:
            raise LimitExceeded(
                f"one more terminal's scrollback ({scrollback} bytes) would take the total over "
                f"{settings.max_scrollback_total_bytes} bytes "
                "(terminals.max_scrollback_total_bytes)"
            )
        if name is not None:
            self._check_name_free(name, None)
        folder = cwd or spawn.home_folder()
        spawn.check_folder(folder)
        program = list(argv) if argv else [settings.shell or spawn.login_shell()]
        terminal_id = self._new_id()
        environment = spawn.environment(terminal_id, folder, env)
        spawn.find_program(program[0], folder, environment)
        spawned = spawn.spawn(program, folder, environment, *size)
        terminal = Terminal(
            terminal_id,
            name or self._default_name(program[0]),
            program,
            folder,
            spawned,
            size,
            settings.limits,
            on_finished=self._finished,
            on_removable=self._remove,
            on_closed=self._retiring.discard,
        )
        self._terminals[terminal_id] = terminal
        log.info("terminal %s started (pid %d)", terminal_id, terminal.pid)
        return terminal

    def rename(self, terminal_id: str, name: str) -> None:
        """Give terminal ``terminal_id`` the name ``name``."""
        terminal = self.get(terminal_id)
        self._check_name_free(name, terminal)
        terminal.name = name

    def kill(self, terminal_id: str, signame: str, *, remove: bool) -> None:
        """Signal a running terminal (``remove``: take it off the list once it exited); an
        exited one is removed."""
        terminal = self.get(terminal_id)
        if terminal.finished:
            self._remove(terminal)
            return
        if remove:
            terminal.remove_when_finished = True
        terminal.kill(signame)

    def _finished(self, terminal: Terminal) -> None:
        log.info("terminal %s ended: %s", terminal.id, terminal.exited)
        ended, self._ended = self._ended, anyio.Event()
        ended.set()

    def _remove(self, terminal: Terminal) -> None:
        if self._terminals.get(terminal.id) is terminal:
            del self._terminals[terminal.id]
        terminal.kill("HUP")  # what its program left behind, if anything
        self._retiring.add(terminal)
        terminal.retire()

    def _check_name_free(self, name: str, renamed: Terminal | None) -> None:
        for other in self._terminals.values():
            if other.name == name and other is not renamed:
                raise Conflict(f"a terminal is already named {name!r} ({other.id})")

    def _default_name(self, program: str) -> str:
        base = os.path.basename(program)[: MAX_NAME_CHARS - 4]
        try:
            check_terminal_name(base)
        except InvalidInput:  # a program named like an id, an option or with controls
            base = "terminal"
        taken = {t.name for t in self._terminals.values()}
        name, number = base, 1
        while name in taken:
            number += 1
            name = f"{base}-{number}"
        return name

    def _new_id(self) -> str:
        while True:
            terminal_id = secrets.token_hex(4)
            if terminal_id not in self._terminals:
                return terminal_id

    # -- the daemon's stop -----------------------------------------------------------------

    def hang_up_all(self) -> None:
        """Begin the stop: SIGHUP to every terminal's process groups (an exited program may
        have left some), then TERM and KILL, ``stop_grace_seconds`` apart, to what is left
        (timers: nothing to await)."""
        self._hung_up_at = anyio.current_time()
        for terminal in self._all():
            terminal.kill("HUP", grace=self.settings.stop_grace_seconds)

    async def aclose(self) -> None:
        """End every terminal: wait for the hang-up's TERM and KILL to end their programs,
        KILL what is left after the graces, then let go of them all."""
        if self._hung_up_at is None:
            self.hang_up_all()
        assert self._hung_up_at is not None
        deadline = self._hung_up_at + 2 * self.settings.stop_grace_seconds + _REAP_SECONDS
        while self._running():
            left = deadline - anyio.current_time()
            if left <= 0:
                break
            with anyio.move_on_after(left):
                await self._ended.wait()
        terminals = self._all()
        for terminal in terminals:
            terminal.signal("KILL")  # nothing of a terminal outlives the daemon
        # Not our children: /proc says when they are gone (one walk for all, each time).
        deadline = anyio.current_time() + _REAP_SECONDS
        for _ in range(int(_REAP_SECONDS / _POLL_SECONDS)):
            if anyio.current_time() >= deadline or not any(t.session_alive() for t in terminals):
                break
            await anyio.sleep(_POLL_SECONDS)
        for terminal in terminals:
            self._terminals.pop(terminal.id, None)
            terminal.end_hang_up()
            terminal.close()

    def _all(self) -> list[Terminal]:
        return [*self._terminals.values(), *self._retiring]

    def _running(self) -> list[Terminal]:
        return [t for t in self._terminals.values() if not t.finished]
