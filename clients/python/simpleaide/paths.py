"""Where things are: the daemon's socket, the daemon's log, and the workspace around a folder.

The default socket rule mirrors ``simpleaided.app.config.default_socket_path`` on purpose: the
client must not import the daemon (import cost, and the wire protocol is the only contract), so
the rule is written twice and must be changed in both places.
"""

from __future__ import annotations

import os
import stat  # imported by os already: costs nothing

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations are not evaluated at run time; keep imports off the hot path
    from collections.abc import Mapping

WORKSPACE_MARKER = ".simpleaide"


def default_socket_path(environ: Mapping[str, str] = os.environ) -> str:
    """``$XDG_RUNTIME_DIR/simpleaide/daemon.sock`` when that variable is an absolute path,
    else ``/tmp/simpleaide-<uid>/daemon.sock``."""
    runtime = environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime):
        return os.path.join(runtime, "simpleaide", "daemon.sock")
    return f"/tmp/simpleaide-{os.getuid()}/daemon.sock"


def socket_path(flag: str | None = None, environ: Mapping[str, str] = os.environ) -> str:
    """The socket to talk to: ``--socket``, else ``SIMPLEAIDE_SOCKET``, else the default."""
    chosen = flag or environ.get("SIMPLEAIDE_SOCKET") or default_socket_path(environ)
    return absolute(chosen)


def state_dir(environ: Mapping[str, str] = os.environ) -> str:
    """``$XDG_STATE_HOME/simpleaide`` (``~/.local/state/simpleaide`` by default)."""
    base = environ.get("XDG_STATE_HOME")
    if not (base and os.path.isabs(base)):
        base = os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "simpleaide")


def daemon_log_path(environ: Mapping[str, str] = os.environ) -> str:
    """The log file of a daemon started by the CLI."""
    return os.path.join(state_dir(environ), "daemon.log")


def find_workspace(start: str | None = None) -> str | None:
    """The nearest folder at or above ``start`` (the cwd by default) holding ``.simpleaide/``.

    A marker that cannot be the user's workspace is passed over: one at ``/`` (never a
    workspace), one that another user owns, or one in a folder everyone may write in (such
    as /tmp): the daemon would refuse those, and a reading command run in any folder below
    would otherwise name them. ``None`` too when the current folder was deleted."""
    if not start:
        try:
            start = current_folder()
        except CurrentFolderGone:
            return None
    return _search(start)[0]


def passed_over(start: str | None = None) -> str | None:
    """Why the nearest ``.simpleaide/`` at or above ``start`` (the cwd by default), below the
    workspace ``find_workspace`` finds, was passed over, in words that say what to do; ``None``
    if none was (or the current folder was deleted). Said only of a marker that concerns the
    user: theirs, or in a folder of theirs, and not in a shared folder such as /tmp."""
    if not start:
        try:
            start = current_folder()
        except CurrentFolderGone:
            return None
    return _search(start)[1]


def _search(start: str) -> tuple[str | None, str | None]:
    """The workspace at or above ``start``, and why the nearest marker below it (if any) was
    passed over."""
    current = os.path.abspath(start)
    skipped: str | None = None
    while True:
        if current != "/":
            why = _not_marker(current)
            if why is None:
                return current, skipped
            skipped = skipped or why or None
        parent = os.path.dirname(current)
        if parent == current:
            return None, skipped
        current = parent


def _not_marker(folder: str) -> str | None:
    """``None`` if ``folder`` holds a ``.simpleaide/`` of the user's that the daemon may serve;
    else why not: ``""`` if it holds none, else the words for a marker passed over."""
    try:
        marker = os.stat(os.path.join(folder, WORKSPACE_MARKER))
        st = os.stat(folder)
    except OSError:
        return ""
    if not stat.S_ISDIR(marker.st_mode):
        return ""
    uid = os.getuid()
    if st.st_mode & stat.S_IWOTH and st.st_mode & stat.S_ISVTX:
        return ""  # a shared folder (/tmp): any project in it is in a folder of its own
    if uid not in (marker.st_uid, st.st_uid):
        return ""  # another user's marker in another user's folder: not the user's concern
    head = f"the {WORKSPACE_MARKER}/ in {folder} is passed over"
    if st.st_mode & stat.S_IWOTH:
        return (
            f"{head}: everyone may write in {folder} (chmod o-w {folder}); on a file system "
            "without Unix permissions (such as WSL's /mnt/c, mounted without the metadata "
            "option) every folder looks so: keep the project elsewhere, such as in your "
            "Linux home folder"
        )
    if marker.st_uid != uid:
        return (
            f"{head}: it is another user's (uid {marker.st_uid}), not yours: remove it, or "
            f"have it made yours (chown -R {uid} {os.path.join(folder, WORKSPACE_MARKER)})"
        )
    return None


def absolute(path: str) -> str:
    """``path`` made absolute (``~`` expanded), as the daemon requires; a relative one
    raises ``CurrentFolderGone`` if the current folder was deleted."""
    expanded = os.path.expanduser(path)
    if os.path.isabs(expanded):
        return os.path.normpath(expanded)
    return os.path.normpath(os.path.join(current_folder(), expanded))


class CurrentFolderGone(Exception):
    """The current folder was deleted (``os.getcwd()`` fails): nothing relative to it can be
    found. The CLI says so in one line (``cli.main``)."""

    def __init__(self) -> None:
        super().__init__("the current folder no longer exists (cd somewhere else)")


def current_folder() -> str:
    """The current folder; ``CurrentFolderGone`` if it was deleted."""
    try:
        return os.getcwd()
    except FileNotFoundError:
        raise CurrentFolderGone from None


def workspace_here() -> str | None:
    """``find_workspace()`` for a command that needs the current folder: a deleted one raises
    ``CurrentFolderGone`` instead of passing for "not in a workspace"."""
    return find_workspace(current_folder())
