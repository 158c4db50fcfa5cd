"""Database targets: which database a profile names.

A target is a SQLite file (``sqlite:///abs/path``, ``/abs/path`` or ``~/path``) or a
PostgreSQL conninfo URL (``postgresql://…``). Pure: the service connects, this only parses.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from simpleaided.domain.errors import InvalidInput
from simpleaided.domain.vocabulary import DbKind

SQLITE_SCHEME = "sqlite://"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
"""The URL schemes libpq takes: a database URL starting with either names PostgreSQL."""


@dataclass(frozen=True, slots=True)
class DbTarget:
    """The database a profile uses: a SQLite file or a PostgreSQL server."""

    kind: DbKind
    location: str  # absolute SQLite file path, or the PostgreSQL conninfo URL
    password: str | None  # literal password or "vault:NAME" reference (postgres only), or None


def parse_target(url: str, password: str | None) -> DbTarget:
    """The target ``url`` names; raises ``InvalidInput`` for anything but SQLite or PostgreSQL."""
    if "\0" in url:
        raise InvalidInput("database URL contains a NUL character")
    if url.startswith(POSTGRES_SCHEMES):
        return DbTarget("postgres", url, password)
    if url.startswith(SQLITE_SCHEME):
        path = url[len(SQLITE_SCHEME) :]
        if not path.startswith("/"):
            raise InvalidInput("a SQLite URL needs an absolute path: sqlite:///abs/path")
    elif url.startswith(("/", "~")):
        path = os.path.expanduser(url)
        if not path.startswith("/"):  # "~nosuchuser/…" stays as it is
            raise InvalidInput("a SQLite path must be absolute (or start with ~/)")
    else:
        # Only the scheme is named: the rest of a URL may hold a password.
        scheme = url.split("://", 1)[0] if "://" in url else ""
        what = f"scheme {scheme!r}" if scheme and len(scheme) <= 20 else "URL"
        raise InvalidInput(
            f"unsupported database {what}: use sqlite:///abs/path, an absolute path,"
            " or postgresql://…"
        )
    path = os.path.normpath(path)
    if path == "/" or path.endswith("/"):
        raise InvalidInput("a SQLite path must name a file")
    # A password means nothing to SQLite; ignoring it lets one config serve both kinds.
    return DbTarget("sqlite", path, None)


def default_sqlite_path(workspace: str | None, env: str) -> str | None:
    """The profile's SQLite file inside the workspace's store, or ``None`` without a workspace."""
    if not workspace:
        return None
    return f"{workspace.rstrip('/')}/.simpleaide/{env.lower()}.sqlite3"
