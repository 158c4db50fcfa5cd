"""Whether the daemon stopped cleanly last time: a marker file in its state folder.

The mark is put once every write of a daemon has ended, and taken away (durably) when the next
one starts, before it writes anything. A start that finds none follows a daemon that died
mid-way (or a first start with this version): its stores may hold leftovers to remove and
steps to close, so they are tidied in depth. After a clean stop that walk is skipped, which
keeps start-up at a stat per run.
"""

from __future__ import annotations

import os
from pathlib import Path

from simpleaided.store import safefs

CLEAN_STOP_FILE = "clean-stop"


class StopMark:
    """The clean-stop mark in ``folder`` (the daemon's state folder)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _open(self) -> int:
        self.folder.mkdir(mode=safefs.DIR_MODE, parents=True, exist_ok=True)
        parent = os.open(self.folder.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        with safefs.opened(parent):
            return safefs.open_dir(parent, self.folder.name, str(self.folder), create=True)

    def take(self) -> bool:
        """Remove the mark; returns whether it was there (the last stop was clean)."""
        with safefs.opened(self._open()) as fd:
            try:
                os.unlink(CLEAN_STOP_FILE, dir_fd=fd)
            except FileNotFoundError:
                return False
            os.fsync(fd)  # a crash of this daemon must not find it again
            return True

    def put(self) -> None:
        """Record a clean stop (call once every write has ended)."""
        with safefs.opened(self._open()) as fd:
            safefs.atomic_write(fd, CLEAN_STOP_FILE, b"")
