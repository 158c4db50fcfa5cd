"""Processes by pid: whether one has exited, and when it started (from ``/proc``).

The owners of runs are checked with these; terminals will be too. A pid alone may be reused,
so a process is named for good by its pid and its start time.
"""

from __future__ import annotations

import os


def _stat_fields(pid: int) -> list[bytes] | None:
    """The fields of ``/proc/<pid>/stat`` from the third (the state) on, or ``None`` when it
    cannot be read (no ``/proc`` here, or the process exited just now)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # The fields follow the parenthesised command name, which may itself hold ") ".
    return stat[stat.rfind(b")") + 2 :].split()


def process_gone(pid: int) -> bool:
    """Whether process ``pid`` has exited; a zombie (exited, not yet reaped) counts as gone."""
    if pid <= 0:
        raise ValueError(f"not a process id: {pid}")  # kill(0) or kill(-n) means a group
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # it exists, under another user
    fields = _stat_fields(pid)
    return fields is not None and fields[:1] == [b"Z"]


def process_start_time(pid: int) -> int | None:
    """When process ``pid`` started: field 22 of ``/proc/<pid>/stat``, in clock ticks after
    boot; ``None`` where it cannot be read. With the pid, it names one process for good:
    a pid is reused only by a process that starts later."""
    fields = _stat_fields(pid)
    try:
        return int(fields[19]) if fields is not None else None
    except (IndexError, ValueError):
        return None


def owner_gone(pid: int, start_time: int | None) -> bool:
    """Whether the owner process ``pid``, started at ``start_time`` (``None``: not recorded,
    the pid alone decides), has exited, even if a later process now holds its pid."""
    if process_gone(pid):
        return True
    if start_time is None:
        return False
    now = process_start_time(pid)
    return now is not None and now != start_time
