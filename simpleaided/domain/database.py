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


# What libpq reads from a conninfo that says which database, never how to log in.
_WHICH = ("host", "hostaddr", "port", "dbname", "user")
# What it reads that is a secret: a part holding one is not shown.
_SECRET_PARAMS = ("password", "sslpassword")


def describe_target(target: DbTarget | None) -> dict[str, str | None] | None:
    """Which database ``target`` is, with no secret in it (``db.status``'s ``target``).

    A PostgreSQL URL is read by libpq itself (psycopg's ``conninfo_to_dict``), as the
    connection will read it, and only its host (else its hostaddr), port, database and user
    are kept: a password, in the URL or in its query (``password=``, ``sslpassword=``), is
    never copied, nor a part that holds it. A URL libpq cannot have read as meant (see
    ``misread``) shows none of its parts, since any may be a piece of the password. Without
    psycopg, or when libpq cannot read the URL, only the type is told: the status's error
    says why.
    """
    if target is None:
        return None
    described: dict[str, str | None] = {
        "type": target.kind,
        "path": None,
        "host": None,
        "port": None,
        "dbname": None,
        "user": None,
        "vaultSecret": None,
    }
    if target.kind == "sqlite":
        described["path"] = target.location
        return described
    described.update(_postgres_parts(target.location))
    return described


def conninfo_params(conninfo: str) -> dict[str, str] | None:
    """What libpq reads from a PostgreSQL URL or ``key=value`` string, or ``None`` when psycopg
    is not installed or libpq cannot read it."""
    try:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:
        return None
    try:
        return {k: str(v) for k, v in conninfo_to_dict(conninfo).items() if v is not None}
    except psycopg.Error:
        return None


# The values that hold an ``@`` on purpose: libpq ends the user (and the password) at the
# first ``@``, so one there was written as ``%40``.
_AT_ON_PURPOSE = frozenset({"user", "password", "sslpassword"})


def misread(params: dict[str, str]) -> bool:
    """Whether libpq cannot have read a URL as meant (``params``: what it read): any value
    but the user's or a password holding ``@``, a host, port or database holding a control
    character, or a port that is no number. An unescaped ``/`` or ``@`` in a password does
    that (``u:1234/x@h/db`` is host ``u``, port ``1234`` to libpq;
    ``h:99/db?sslmode=x@h2/db`` reads its query), and the parts are then pieces of the
    password."""
    if any("@" in value for name, value in params.items() if name not in _AT_ON_PURPOSE):
        return True
    for name in ("host", "hostaddr", "port", "dbname"):
        value = params.get(name)
        if value is None:
            continue
        if "@" in value or any(ord(c) < 0x20 for c in value):
            return True
        if name == "port" and not all(
            p == "" or (p.isascii() and p.isdigit()) for p in value.split(",")
        ):
            return True
    # libpq ends the user at the first "@": one in the user was written as %40 (or in the
    # query), on purpose.
    return any(ord(c) < 0x20 for c in params.get("user", ""))


def _ports(port: str | None) -> str | None:
    """libpq's ports, one per host (``h1,h2`` without ports reads ``,``): ``None`` when none
    is given, else each given one, and ``default`` for a host without one."""
    if port is None or not port.replace(",", ""):
        return None
    return ",".join(p or "default" for p in port.split(","))


def _postgres_parts(url: str) -> dict[str, str | None]:
    params = conninfo_params(url)
    if params is None or misread(params):
        return {}
    secrets = [params[name] for name in _SECRET_PARAMS if len(params.get(name, "")) >= 3]

    def part(value: str | None) -> str | None:
        return None if value is None or any(s in value for s in secrets) else value

    return {
        "host": part(params.get("host") or params.get("hostaddr")),
        "port": part(_ports(params.get("port"))),
        "dbname": part(params.get("dbname")),
        "user": part(params.get("user")),
    }
