"""``simpleaide watch`` (and ``status --follow``): the status chips, live, from
``status.subscribe``.

The line is printed at once and again whenever it changes (the daemon sends at most one
``status.changed`` every 50 ms). On a terminal it is rewritten in place; into a pipe (tmux,
waybar, a script) each change is one new line, flushed at once. When the daemon goes away, the
tmux and waybar formats end with the OFF chip, so a bar never keeps a stale status.
"""

from __future__ import annotations

import os
import signal
import sys
import time

from simpleaide import fastjson, paths, tables
from simpleaide.client import DaemonUnreachable
from simpleaide.safetext import json_safe
from simpleaide.session import EXIT_OK, Session, workspace_call
from simpleaide.statusline import FORMATS, chip_line, offline_line

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~2 ms to import; annotations are not evaluated at run time
    from collections.abc import Callable
    from typing import Any, NoReturn, TextIO

    from simpleaide.commands import Commands
    from simpleaide.session import Args

RETRY_FIRST_SECONDS = 0.25  # a bar waiting for the daemon: 0.25 s, doubling up to 5 s
RETRY_MAX_SECONDS = 5.0
_CLEAR_TO_END = "\x1b[K"


def register(tree: Commands) -> None:
    """The ``watch`` command."""
    watch_parser = tree.add(
        "watch",
        "the status chips, live",
        watch,
        description="Print the status chips (as 'status' does) and again whenever they\n"
        "change, until Ctrl-C. On a terminal the line is rewritten in place; into a pipe\n"
        "each change is a new line (tmux and waybar read the last one). With --json, each\n"
        "status document is one line of JSON. When the daemon goes away: plain and JSON\n"
        "exit 3; tmux and waybar show the OFF chip and wait for a daemon to answer again.",
    )
    watch_parser.add_argument(
        "--format", choices=FORMATS, default="plain", help="plain (default), tmux or waybar"
    )
    watch_parser.add_argument(
        "--workspace", metavar="PATH", help="count only the runs of this workspace"
    )


class LiveLine:
    """One line of output that each ``show`` replaces: in place on a terminal, else a new
    line; a line equal to the last one shown is not shown again.

    In place, the line is cut to the terminal's width (by display width: an emoji takes
    two columns), since a line that wraps leaves its first rows behind at each rewrite. A
    resize (``SIGWINCH``) redraws it at the new width; ``end`` draws it once more before the
    line break, over the ``^C`` the terminal echoed."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.in_place = stream.isatty()
        self._last: str | None = None
        self._drawing = False
        self._resized = False

    def show(self, text: str) -> None:
        if text == self._last:
            return
        self._last = text
        if self.in_place:
            self._draw()
        else:
            self.stream.write(f"{text}\n")
            self.stream.flush()

    def follow_resizes(self) -> None:
        """Redraw on ``SIGWINCH`` (in place only; the main thread's handler)."""
        if self.in_place:
            signal.signal(signal.SIGWINCH, self._on_resize)

    def end(self) -> None:
        """Leave the cursor on a fresh line (after an in-place line)."""
        if self.in_place and self._last is not None:
            self._draw(ending="\n")

    def _on_resize(self, signum: int, frame: object) -> None:
        if self._drawing:  # the handler interrupted a draw: it redraws once done
            self._resized = True
        elif self._last is not None:
            self._draw()

    def _draw(self, ending: str = "") -> None:
        self._drawing = True
        try:
            while True:
                self._resized = False
                text = fit(self._last or "", self._columns())
                self.stream.write(f"\r{text}{_CLEAR_TO_END}{ending}")
                self.stream.flush()
                if not self._resized:
                    return
        finally:
            self._drawing = False

    def _columns(self) -> int | None:
        try:
            return os.get_terminal_size(self.stream.fileno()).columns
        except (OSError, ValueError):
            return None


def fit(text: str, columns: int | None) -> str:
    """``text`` cut to fit a line of ``columns`` cells, ending with ``…`` when cut. The last
    three columns stay free: the ``^C`` a terminal echoes after the line must not wrap."""
    if not columns:
        return text
    return tables.clip(text, max(columns - 3, 1))


def render(doc: dict[str, Any], args: Args) -> str:
    """The status document as the line ``args`` asks for."""
    if args.json:
        return json_safe(fastjson.dumps(doc))
    return chip_line(doc, args.format)


def watch(session: Session, args: Args) -> int:
    """``simpleaide watch``: runs until Ctrl-C (exit 0). When the daemon goes, the plain and
    JSON outputs end (exit 3); a status bar's (tmux, waybar) shows the OFF chip and waits for
    a daemon to answer again, without starting one."""
    line = LiveLine(sys.stdout)
    if args.json or args.format == "waybar":
        line.in_place = False  # one JSON document per line, always
    line.follow_resizes()
    for_a_bar = args.format != "plain" and not args.json
    delay = RETRY_FIRST_SECONDS

    def subscribed() -> None:
        nonlocal delay
        delay = RETRY_FIRST_SECONDS

    try:
        while True:
            try:
                _follow(session, args, line, subscribed)
            except DaemonUnreachable:
                if not for_a_bar:
                    line.end()
                    raise
                # A bar keeps the last line it read: it must not be a stale status. And a
                # bar program that exits is hidden (waybar) or restarted: it waits instead.
                line.show(offline_line(session.socket_path, args.format))
                session.reset(spawn=False)  # a daemon the user stopped stays stopped
                time.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)
    except KeyboardInterrupt:
        line.end()
        return EXIT_OK


def _follow(
    session: Session, args: Args, line: LiveLine, subscribed: Callable[[], None]
) -> NoReturn:
    workspace = paths.absolute(args.workspace) if args.workspace else None
    snapshot = workspace_call(session, "status.subscribe", workspace)
    subscribed()
    seq = int(snapshot["seq"])
    line.show(render(snapshot["status"], args))
    client = session.client()
    while True:
        try:
            note = client.receive_notification(None)
        except DaemonUnreachable:
            raise DaemonUnreachable(
                f"simpleaided on {session.socket_path} went away; no more updates"
            ) from None
        if note is None or note.get("method") != "status.changed":
            continue
        params = note.get("params") or {}
        if not isinstance(params, dict) or not isinstance(params.get("status"), dict):
            continue
        # A notification older than what is shown (it cannot be, but never go back).
        new_seq = params.get("seq")
        if isinstance(new_seq, int):
            if new_seq <= seq:
                continue
            seq = new_seq
        line.show(render(params["status"], args))
