"""``simpleaide db status`` says which database: the SQLite file, or the PostgreSQL server,
database and user, and never a password (not in its output, its JSON, the status document
nor the daemon's log)."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from tests.support.pgproxy import PG_HOST, PG_PORT
from tests.support.sandbox import Sandbox
from tests.support.waiting import eventually_blocking

IN_URL = "Pw-url-7f3a9c"
IN_QUERY = "Pw-query-51be"
IN_SSL = "Pw-ssl-2d4e"
IN_SETTING = "Pw-setting-c0de"
SECRETS = (IN_URL, IN_QUERY, IN_SSL, IN_SETTING)


def fields(sandbox: Sandbox) -> dict[str, str]:
    """``simpleaide db status`` as ``{name: value}``."""
    shown = sandbox.ok("db", "status").stdout
    return {
        name: value.strip()
        for name, _, value in (line.partition(":") for line in shown.splitlines())
    }


def test_db_status_names_the_sqlite_file(sandbox: Sandbox) -> None:
    database = sandbox.root / "app.sqlite3"
    sandbox.configure(f'[db.DEV]\nurl = "sqlite://{database}"\n')
    shown = fields(sandbox)
    assert (shown["type"], shown["file"]) == ("sqlite", str(database))
    target = sandbox.ok("db", "status", "--json").json()["target"]
    assert target == {
        "type": "sqlite",
        "path": str(database),
        "host": None,
        "port": None,
        "dbname": None,
        "user": None,
        "vaultSecret": None,
    }


def test_db_status_names_a_url_held_in_the_vault(sandbox: Sandbox) -> None:
    sandbox.configure('[db.DEV]\nurl = "vault:pg-url"\n')
    shown = fields(sandbox)
    assert shown["url"] == "from the vault (secret pg-url)"
    assert shown["target"] == "known once the vault is unlocked"
    target = sandbox.ok("db", "status", "--json").json()["target"]
    assert (target["type"], target["vaultSecret"]) == (None, "pg-url")


def test_db_status_shows_the_postgres_server_and_never_a_password(
    sandbox: Sandbox, postgres: str
) -> None:
    # Trust authentication: the passwords are never asked for, and the connection works.
    url = (
        f"postgresql://postgres:{IN_URL}@{PG_HOST}:{PG_PORT}/test"
        f"?password={IN_QUERY}&sslpassword={IN_SSL}&application_name=simpleaide-test"
    )
    sandbox.configure(f'[db.DEV]\nurl = "{url}"\npassword = "{IN_SETTING}"\n')
    eventually_blocking(lambda: sandbox.ok("db", "status", "--json").json()["connected"], 15)
    shown = fields(sandbox)
    assert shown["type"] == "postgres"
    assert (shown["host"], shown["port"], shown["dbname"], shown["user"]) == (
        PG_HOST,
        str(PG_PORT),
        "test",
        "postgres",
    )
    target = sandbox.ok("db", "status", "--json").json()["target"]
    assert (target["host"], target["port"], target["dbname"], target["user"]) == (
        PG_HOST,
        str(PG_PORT),
        "test",
        "postgres",
    )

    # Unreachable now (a port nobody listens on): its error says so, without a secret.
    sandbox.configure(
        f'[db]\ntimeout_seconds = 2\n[db.DEV]\nurl = "{url.replace(str(PG_PORT), "1", 1)}"\n'
        f'password = "{IN_SETTING}"\n'
    )
    sandbox.ok("daemon", "reload")
    eventually_blocking(lambda: sandbox.ok("db", "status", "--json").json()["error"], 15)
    assert fields(sandbox)["port"] == "1"

    outputs = [
        sandbox.ok("db", "status").stdout,
        sandbox.ok("db", "status", "--json").stdout,
        sandbox.ok("status", "--json").stdout,
        sandbox.ok("daemon", "status", "--json").stdout,
        Path(sandbox.log).read_text(),
    ]
    for output in outputs:
        for secret in SECRETS:
            assert secret not in output, (secret, output)


def test_db_status_reads_checking_until_the_first_probe_answers(sandbox: Sandbox) -> None:
    # A PostgreSQL host that accepts connections (the kernel does, from the backlog) and never
    # answers: the daemon's first probe waits for it, and the database is neither on nor off.
    silent = socket.create_server(("127.0.0.1", 0), backlog=8)
    port = silent.getsockname()[1]
    try:
        sandbox.configure(
            f"[db]\nprobe_seconds = 3600\ntimeout_seconds = 60\n"
            f'[db.DEV]\nurl = "postgresql://postgres@127.0.0.1:{port}/test"\n'
        )
        assert sandbox.ok("db", "status", "--json").json()["checking"] is True
        shown = fields(sandbox)
        assert shown["database"] == "checking (no answer yet)"
        assert "error" not in shown  # no error is known yet: not "none"
        assert (shown["host"], shown["port"]) == ("127.0.0.1", str(port))
    finally:
        silent.close()  # the waiting connection is reset: the probe answers at last
    eventually_blocking(lambda: not sandbox.ok("db", "status", "--json").json()["checking"], 30)
    shown = fields(sandbox)
    assert shown["database"] == "OFF"
    assert shown["error"] not in ("", "none")


def test_db_status_reads_a_password_holding_url_characters_as_libpq_does(
    sandbox: Sandbox, postgres: str
) -> None:
    # "?" and "#" inside the password: a hand-made reading took "postgres" for the host and
    # "12" for the port; libpq (and so the connection) reads the whole password.
    secret = "12?Pw#q-8e1"
    url = f"postgresql://postgres:{secret}@{PG_HOST}:{PG_PORT}/test"
    sandbox.configure(f'[db.DEV]\nurl = "{url}"\n')
    eventually_blocking(lambda: sandbox.ok("db", "status", "--json").json()["connected"], 15)
    shown = fields(sandbox)
    assert (shown["host"], shown["port"], shown["dbname"], shown["user"]) == (
        PG_HOST,
        str(PG_PORT),
        "test",
        "postgres",
    )

    # An unescaped "/" in the password: libpq reads host "postgres", port "4127" and database
    # "Zq-x9@…"; none of it is shown as the server (pieces of the password), nor in errors.
    sandbox.configure(
        f'[db]\ntimeout_seconds = 2\n[db.DEV]\nurl = "postgresql://postgres:4127/Zq-x9@{PG_HOST}'
        f':{PG_PORT}/test"\n'
    )
    sandbox.ok("daemon", "reload")
    eventually_blocking(lambda: sandbox.ok("db", "status", "--json").json()["error"], 15)
    shown = fields(sandbox)
    assert shown["target"] == "host, port, dbname and user not shown (see the error)"
    assert "port" not in shown and "host" not in shown
    target = sandbox.ok("db", "status", "--json").json()["target"]
    assert target == {
        "type": "postgres",
        "path": None,
        "host": None,
        "port": None,
        "dbname": None,
        "user": None,
        "vaultSecret": None,
    }
    outputs = [
        sandbox.ok("db", "status").stdout,
        sandbox.ok("db", "status", "--json").stdout,
        sandbox.ok("status", "--json").stdout,
        Path(sandbox.log).read_text(),
    ]
    for output in outputs:
        for piece in (secret, "Pw#q", "Zq-x9"):
            assert piece not in output, (piece, output)


@pytest.mark.parametrize(
    "password",
    ["Secr3t/Pass?Word", "Sec ret/Tail99", "ab/Tail%zz99", "ab/cd?Tail99=x&y", "p@ss w0rdTail"],
)
def test_a_url_libpq_cannot_read_shows_no_piece_of_its_password(
    sandbox: Sandbox, password: str
) -> None:
    # Unescaped "/", "?", "%", "@" or a space in the password: libpq's parser refuses the URL,
    # and its own words would quote the piece it stopped at ("Word@h/db"). Ours are told.
    sandbox.configure(f'[db.DEV]\nurl = "postgresql://u:{password}@h/db"\n')
    error = eventually_blocking(lambda: sandbox.ok("db", "status", "--json").json()["error"], 15)
    assert error == (
        "PostgreSQL cannot read this URL: percent-encode / ? @ # % and spaces in the"
        " password (%2F %3F %40 %23 %25 %20)"
    )
    outputs = [
        sandbox.ok("db", "status").stdout,
        sandbox.ok("db", "status", "--json").stdout,
        sandbox.ok("status", "--json").stdout,
        Path(sandbox.log).read_text(),
    ]
    pieces = {password} | {p for p in re.split(r"[/@?#:=&%\s]", password) if len(p) >= 3}
    for output in outputs:
        for piece in pieces:  # standing alone: "ret" is in "vaultSecret"
            assert not re.search(rf"(?<![A-Za-z]){re.escape(piece)}(?![A-Za-z])", output), (
                piece,
                output,
            )
