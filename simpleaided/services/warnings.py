"""Daemon-wide warnings: the lasting problems ``daemon.info`` and the status document list.

Each warning belongs to a source (a workspace that cannot be served, the watch limit, a
refused reload...) that sets it and, once the problem is gone, clears it; a source holds one
warning at a time. They are listed in the order they were raised, a changed one last.

The registry does not announce its changes: the watcher raises one from a worker thread,
where no event may be set. The status document compares the warnings it was built from, and
the producers that run on the event loop tell the subscribers as they did before.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator


class Warnings:
    """The current warning of each source, in the order they were raised."""

    def __init__(self) -> None:
        self._by_source: dict[str, str] = {}
        # What readers see: rebuilt on each change, so a reader on the event loop never sees
        # a change half made by a thread, and the status document can compare it cheaply.
        self._messages: tuple[str, ...] = ()
        self._lock = threading.Lock()

    def set(self, source: str, message: str) -> None:
        """Make ``message`` the warning of ``source``. The same message again changes
        nothing; a new one replaces the old and is listed last."""
        with self._lock:
            if self._by_source.get(source) == message:
                return
            self._by_source.pop(source, None)
            self._by_source[source] = message
            self._messages = tuple(self._by_source.values())

    def clear(self, source: str) -> None:
        """Drop the warning of ``source``, if it has one."""
        with self._lock:
            if self._by_source.pop(source, None) is not None:
                self._messages = tuple(self._by_source.values())

    def get(self, source: str) -> str | None:
        """The warning of ``source``, or ``None``."""
        return self._by_source.get(source)

    def messages(self) -> tuple[str, ...]:
        """Every warning, in order (the same tuple until one changes)."""
        return self._messages

    def __iter__(self) -> Iterator[str]:
        return iter(self._messages)

    def __len__(self) -> int:
        return len(self._messages)
