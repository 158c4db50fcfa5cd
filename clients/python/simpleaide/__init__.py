"""Thin Python client and ``simpleaide`` CLI for simpleaided; speaks only the wire protocol.

``Client`` is the library entry point; ``simpleaide.cli`` is the command.
"""

from simpleaide.client import (
    Client,
    ClientError,
    Conflict,
    DaemonTimeout,
    DaemonUnreachable,
    InvalidParams,
    InvalidTransition,
    LimitExceeded,
    NotFound,
    ProtocolError,
    RpcError,
    SpawnError,
)

__all__ = [
    "Client",
    "ClientError",
    "Conflict",
    "DaemonTimeout",
    "DaemonUnreachable",
    "InvalidParams",
    "InvalidTransition",
    "LimitExceeded",
    "NotFound",
    "ProtocolError",
    "RpcError",
    "SpawnError",
]
