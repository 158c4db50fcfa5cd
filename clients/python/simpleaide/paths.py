"""Where things are: the daemon's socket, the daemon's log, and the workspace around a folder.

The default socket rule mirrors ``simpleaided.app.config.default_socket_path`` on purpose: the
client must not import the daemon (import cost, and the wire protocol is the only contract), so
the rule is written twice and must be changed in both places.
"""

from __future__ import annotations

import os

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
    return os.path.abspath(os.path.expanduser(chosen))


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
    """The nearest folder at or above ``start`` (the cwd by default) holding ``.simpleaide/``."""
    current = os.path.abspath(start or os.getcwd())
    while True:
        if os.path.isdir(os.path.join(current, WORKSPACE_MARKER)):
            return current
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


def absolute(path: str) -> str:
    """``path`` made absolute (``~`` expanded), as the daemon requires."""
    return os.path.abspath(os.path.expanduser(path))
