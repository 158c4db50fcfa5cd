"""The CLI's side of a command: its connection to the daemon, its errors and exit codes.

A ``Session`` finds the socket (``--socket``, ``SIMPLEAIDE_SOCKET``, the default) and starts a
daemon when none answers, unless ``--no-spawn``. Errors end as one line on stderr::

    0 ok · 1 an error from the daemon (or the CLI's own, ``CliError``) · 2 bad usage ·
    3 no daemon answers
"""

from __future__ import annotations

import os

from simpleaide import paths
from simpleaide.client import (
    Client,
    ClientError,
    DaemonUnreachable,
    InvalidParams,
    NotFound,
    RpcError,
)
from simpleaide.safetext import escape

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~2 ms to import; annotations are not evaluated at run time
    from typing import Any

    # Parsed arguments: an ``argparse.Namespace``, or a ``SimpleNamespace`` on the fast path.
    Args = Any

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141


class CliError(Exception):
    """A problem found by the CLI itself (an unreadable file, an unknown step name)."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class Session:
    """The CLI's connection: resolves the socket and starts a daemon when none answers.

    A daemon that was already running is asked its protocol version first, and a mismatch is
    said on stderr, except for commands that opt out (``check_version``): ``status`` is run
    by status lines every few seconds, where nobody reads stderr and every call counts.
    """

    def __init__(self, args: Args, *, check_version: bool = True) -> None:
        self.socket_path = paths.socket_path(args.socket)
        self.spawn = not args.no_spawn
        self.timeout: float = args.timeout
        self.check_version = check_version
        self._client: Client | None = None

    def client(self) -> Client:
        """A connected client, starting the daemon first if needed (and allowed)."""
        if self._client is not None:
            return self._client
        client = Client(self.socket_path, timeout=self.timeout)
        try:
            client.connect()
        except DaemonUnreachable:
            if not self.spawn:
                raise DaemonUnreachable(
                    f"no daemon answers on {self.socket_path} "
                    f"(start it with: simpleaide daemon start)"
                ) from None
            from simpleaide.spawn import start_daemon

            start_daemon(self.socket_path)  # the same installation: the same version
            client.connect()
        else:
            if self.check_version:
                warn_on_version_mismatch(client)
        self._client = client
        return client

    def reset(self, *, spawn: bool) -> None:
        """Drop the connection (the daemon went away); the next call connects anew, and
        starts a daemon only if ``spawn``."""
        self.close()
        self._client = None
        self.spawn = spawn

    def call(self, method: str, /, **params: Any) -> Any:
        """Call ``method`` on the daemon (see ``Client.call``)."""
        return self.client().call(method, **params)

    def close(self) -> None:
        """Close the connection."""
        if self._client is not None:
            self._client.close()


def version_mismatch(info: dict[str, Any]) -> str | None:
    """What to tell the user when the daemon speaks another protocol version, else None."""
    from simpleaide import client as client_module

    ours = client_module.API_VERSION
    theirs = info.get("apiVersion")
    if theirs == ours:
        return None
    daemon = f"simpleaided {info.get('version', '?')}"
    spoken = f"protocol version {theirs}" if theirs is not None else "an older protocol"
    if isinstance(theirs, int) and theirs > ours:
        advice = "upgrade simpleaide"
    elif info.get("startMode") in ("socket-activation", "systemd"):
        # systemd would start the same old daemon again: its unit must point here first.
        advice = (
            "point systemd at this installation: simpleaide daemon install-units --force, "
            "then systemctl --user daemon-reload && systemctl --user restart simpleaided"
        )
    else:
        advice = "restart the daemon to run the installed version: simpleaide daemon stop"
    return f"{daemon} speaks {spoken}, this simpleaide speaks version {ours}; {advice}"


def warn_on_version_mismatch(client: Client) -> None:
    """Say on stderr if the daemon speaks another protocol version (one ``daemon.info``)."""
    try:
        info = client.call("daemon.info")
    except ClientError:
        return  # too old or new to answer, or gone: the command itself will say so
    problem = version_mismatch(info) if isinstance(info, dict) else None
    if problem:
        import sys

        print(f"simpleaide: warning: {escape(problem)}", file=sys.stderr)


def describe(exc: RpcError) -> str:
    """One line for an error from the daemon; invalid params list their first reasons."""
    message = exc.message
    data = exc.data
    if isinstance(exc, InvalidParams) and isinstance(data, list) and data:
        reasons = []
        for item in data[:3]:
            if not isinstance(item, dict):
                reasons.append(str(item))
                continue
            loc = ".".join(str(part) for part in item.get("loc") or [])
            msg = str(item.get("msg", "")).removeprefix("Value error, ")
            reasons.append(f"{loc}: {msg}" if loc else msg)
        more = f" (and {len(data) - 3} more)" if len(data) > 3 else ""
        message = f"{message}: {'; '.join(reasons)}{more}"
    elif isinstance(exc, InvalidParams) and isinstance(data, str) and data:
        message = f"{message}: {data}"
    return " ".join(message.split())


def workspace_call(session: Session, method: str, workspace: str | None, **params: Any) -> Any:
    """Call a method scoped to ``workspace``; a folder holding ``.simpleaide/`` that the
    daemon does not serve yet is served first (as ``runs.create`` does)."""
    try:
        return session.call(method, workspace=workspace, **params)
    except NotFound:
        marker = os.path.join(workspace or "", paths.WORKSPACE_MARKER)
        if workspace is None or not os.path.isdir(marker):
            raise
        session.call("workspaces.add", path=workspace)
        return session.call(method, workspace=workspace, **params)
