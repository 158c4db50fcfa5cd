"""The daemon's own contract: the protocol version and what ``daemon.info`` tells."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from simpleaided.domain.vocabulary import EnvProfile

# The protocol's version, in daemon.info: raised whenever a method, a parameter or a result
# changes in a way an older client or daemon would misread. Clients carry their own copy.
API_VERSION = 1
StartMode = Literal[
    "socket-activation",  # systemd, at the first connection to its socket
    "systemd",  # systemd, as a service
    "cli",  # simpleaide, on demand: another command found no daemon
    "daemon-start",  # simpleaide daemon start
    "daemon-restart",  # simpleaide daemon restart
    "foreground",  # by hand (simpleaided run in a terminal, a script)
]


class LogDestination(BaseModel):
    """Where the daemon's log goes: a file (``path``; ``None`` if the file is no longer at a
    path), the journal (under systemd), its standard error (a terminal, a pipe: by hand),
    or nowhere (standard error is ``/dev/null``)."""

    to: Literal["file", "journal", "stderr", "none"]
    path: str | None


class DaemonInfo(BaseModel):
    """What ``daemon.info`` tells about the running daemon."""

    version: str
    apiVersion: int
    pid: int
    uid: int
    startMode: StartMode
    socket: str
    configFile: str | None
    configLoadedAt: str
    reloadError: str | None
    env: EnvProfile
    startedAt: str
    uptimeMs: int
    workspaces: int
    runs: int
    maxMessageBytes: int
    maxArtifactChunkBytes: int
    framings: list[str]
    warnings: list[str]
    watcher: dict[str, Any]
    # open, limit, accepted, refused (over the limit), refusing (of those, being told now),
    # refusedNoDescriptors, fdLimit
    connections: dict[str, Any]
    # False while a served workspace whose last daemon did not let it go cleanly waits for
    # its walk in depth (at start, done after the first answer)
    storesChecked: bool
    log: LogDestination
    # Where the HTTP shim serves (``http://127.0.0.1:PORT/``, never the token), or None: off
    httpUrl: str | None


class ReloadResult(BaseModel):
    """What ``daemon.reload`` came to: applied, or refused (``error``: why; the running
    configuration stays and ``warnings`` says so until a reload succeeds)."""

    reloaded: bool
    error: str | None
    configFile: str | None
    configLoadedAt: str
    warnings: list[str]
