"""Thin Python client and ``simpleaide`` CLI for simpleaided; speaks only the wire protocol.

``Client`` is the library entry point; ``simpleaide.cli`` is the command.
"""

from simpleaide.client import (
    BackendUnavailable,
    Cancelled,
    Client,
    ClientError,
    Conflict,
    DaemonTimeout,
    DaemonUnreachable,
    InvalidParams,
    InvalidTransition,
    LimitExceeded,
    NotFound,
    NotUtf8,
    ProtocolError,
    ReadOnly,
    RpcError,
    SocketOnly,
    SocketPathTooLong,
    SpawnError,
    VaultDamaged,
    VaultLocked,
    WrongPassphrase,
)

__all__ = [
    "BackendUnavailable",
    "Cancelled",
    "Client",
    "ClientError",
    "Conflict",
    "DaemonTimeout",
    "DaemonUnreachable",
    "InvalidParams",
    "InvalidTransition",
    "LimitExceeded",
    "NotFound",
    "NotUtf8",
    "ProtocolError",
    "ReadOnly",
    "RpcError",
    "SocketOnly",
    "SocketPathTooLong",
    "SpawnError",
    "VaultDamaged",
    "VaultLocked",
    "WrongPassphrase",
]
