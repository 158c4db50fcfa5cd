"""Which database a profile names, told without its secrets (``db.status``'s ``target``)."""

from __future__ import annotations

import re
import sys

import pytest

from simpleaided.domain.database import DbTarget, describe_target, parse_target
from simpleaided.domain.secrets import scrub, url_secrets

NOTHING = dict.fromkeys(("path", "host", "port", "dbname", "user", "vaultSecret"))


def described(url: str, password: str | None = None) -> dict[str, str | None]:
    # A keyword/value conninfo is no database URL to a profile: described all the same.
    target = parse_target(url, password) if "://" in url else DbTarget("postgres", url, password)
    found = describe_target(target)
    assert found is not None
    return found


def test_a_sqlite_target_is_its_file() -> None:
    assert described("sqlite:///srv/app/dev.sqlite3") == {
        **NOTHING,
        "type": "sqlite",
        "path": "/srv/app/dev.sqlite3",
    }
    assert describe_target(None) is None


@pytest.mark.parametrize(
    ("url", "host", "port", "dbname", "user"),
    [
        ("postgresql://app:s3cret@db.internal:6543/app", "db.internal", "6543", "app", "app"),
        ("postgres://db.internal/app", "db.internal", None, "app", None),
        ("postgresql://", None, None, None, None),
        ("postgresql://h1:5432,h2:5433/app", "h1,h2", "5432,5433", "app", None),
        ("postgresql://h1,h2:5433/app", "h1,h2", "default,5433", "app", None),
        ("postgresql://[::1]:5433/x", "::1", "5433", "x", None),
        ("postgresql://%2Fvar%2Frun%2Fpostgresql/app", "/var/run/postgresql", None, "app", None),
        ("postgresql://u%40corp:pw@h/d%20b", "h", None, "d b", "u@corp"),  # %40: meant
        # Query parameters win, as libpq has it.
        ("postgresql://h/a?dbname=b&user=bob&port=7&host=/tmp", "/tmp", "7", "b", "bob"),
        ("postgresql:///app?hostaddr=10.0.0.5", "10.0.0.5", None, "app", None),
        # Passwords holding what a hand-made reading splits at: libpq reads them whole.
        (
            "postgresql://postgres:12?ss@127.0.0.1:5432/test",
            "127.0.0.1",
            "5432",
            "test",
            "postgres",
        ),
        ("postgresql://u:p#w-1@h:6/db", "h", "6", "db", "u"),
        ("postgresql://u:p%40ss%2F9@h:7/db", "h", "7", "db", "u"),
        ("postgresql://u:4321@h:1234/db", "h", "1234", "db", "u"),
        # A keyword/value conninfo, as libpq takes it too.
        (
            "host=db.internal port=6543 dbname=app user=bob password=pw9",
            "db.internal",
            "6543",
            "app",
            "bob",
        ),
    ],
)
def test_a_postgres_target_is_its_host_port_database_and_user(
    url: str, host: str | None, port: str | None, dbname: str | None, user: str | None
) -> None:
    assert described(url) == {
        **NOTHING,
        "type": "postgres",
        "host": host,
        "port": port,
        "dbname": dbname,
        "user": user,
    }


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app:Secret-9f2@db/app",
        "postgresql://app@db/app?password=Secret-9f2&sslmode=require",
        "postgresql://app@db/app?sslpassword=Secret-9f2",
        "postgresql://app:Secret-9f2@db:Secret-9f2/app",  # nonsense where the port goes
        "postgresql://app:Sec/ret-9f2@db/app",  # a "/" left unescaped in the password
        "postgresql://app:Secret-9f2@db/app?port=Secret-9f2",
        "postgresql://app:Secret-9f2@db/app?dbname=Secret-9f2",  # the password's own value
        "postgresql://app:Secret-9f2@db/app?sslpassword=Secret-9f2&user=Secret-9f2",
        "host=db password=Secret-9f2 port=5",
        "host=db user=Secret-9f2 password=Secret-9f2",
    ],
)
def test_no_password_is_ever_described(url: str) -> None:
    found = described(url, password="Secret-9f2")
    for value in found.values():
        assert value is None or ("Secret" not in value and "ret-9f2" not in value), found


@pytest.mark.parametrize(
    ("url", "password"),
    [
        # libpq reads host "postgres" and port "12" from neither: "?" is inside the password.
        ("postgresql://postgres:12?ss@127.0.0.1:5432/test", "12?ss"),
        # libpq's reading: host "u", port "1234", dbname "x@h/db": pieces of the password.
        ("postgresql://u:1234/x@h/db", "1234/x"),
        ("postgresql://user:p@ss-4c@host/db", "p@ss-4c"),  # host "ss-4c@host" to libpq
        ("postgresql://us@er:pw-91@h/db", "pw-91"),  # port "pw-91@h" to libpq
        # dbname "Secretdb", sslmode "Topsecret@127.0.0.1:1/db" to libpq
        (
            "postgresql://localhost:99/Secretdb?sslmode=Topsecret@127.0.0.1:1/db",
            "99/Secretdb?sslmode=Topsecret",
        ),
    ],
)
def test_a_misread_url_shows_no_piece_of_its_password(url: str, password: str) -> None:
    found = described(url)
    pieces = [
        p
        for p in (password, *password.replace("?", "/").replace("@", "/").split("/"))
        if len(p) > 2
    ]
    for value in found.values():
        assert value is None or not any(piece in value for piece in pieces), found
    if found["host"] is None:  # misread: nothing of it shown, rather than a wrong server
        assert (found["port"], found["dbname"], found["user"]) == (None, None, None)


def test_a_part_holding_the_password_is_not_shown() -> None:
    # Read as meant, the password just happens to be the port, or the user's name.
    assert described("postgresql://u:1234@h:1234/x") == {
        **NOTHING,
        "type": "postgres",
        "host": "h",
        "dbname": "x",
        "user": "u",
    }
    found = described("postgresql://postgres:postgres@localhost/db")
    assert (found["host"], found["user"]) == ("localhost", None)


def test_without_psycopg_only_the_type_is_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # "import psycopg" fails
    assert described("postgresql://app:pw@db.internal:6543/app") == {**NOTHING, "type": "postgres"}
    # The secrets are still found, by a plain URL reading.
    assert url_secrets("postgresql://app:pw-1@h/db?sslpassword=pw-2") >= {"pw-1", "pw-2"}


def test_a_url_libpq_cannot_read_tells_only_its_type() -> None:
    assert described("postgresql://u:a b@h/db") == {**NOTHING, "type": "postgres"}
    assert described("postgresql://h/db?no_such_param=1") == {**NOTHING, "type": "postgres"}


@pytest.mark.parametrize(
    ("url", "found"),
    [
        ("postgresql://u:pw#frag@h/db", {"pw#frag"}),
        ("postgresql://postgres:12?ss@127.0.0.1:5432/test", {"12?ss"}),
        ("postgresql://u:p%40ss@h/db", {"p@ss", "p%40ss"}),
        ("postgresql://u:p/w-88@h/db", {"p/w-88", "w-88"}),
        ("postgresql://user:p@ss@host/db", {"p@ss"}),
        ("postgresql://h/db?password=q-1&sslpassword=q-2", {"q-1", "q-2"}),
        ("host=x password=y-3 sslpassword='y 4'", {"y-3", "y 4"}),
        ("postgresql://u:9876543@h/db", {"9876543"}),
    ],
)
def test_the_secrets_of_a_url_are_what_libpq_reads_as_its_password(
    url: str, found: set[str]
) -> None:
    assert url_secrets(url) >= found


@pytest.mark.parametrize(
    "password",
    ["Secr3t/Pass?Word", "Sec ret/Tail99", "ab/Tail%zz99", "ab/cd?Tail99=x&y", "p@ss w0rdTail"],
)
def test_libpq_cannot_read_the_url_yet_its_password_is_guessed(password: str) -> None:
    # libpq's parse error quotes the piece it stopped at: that piece is masked.
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    url = f"postgresql://u:{password}@h/db"
    with pytest.raises(psycopg.Error) as caught:
        conninfo_to_dict(url)
    shown = scrub(str(caught.value), url_secrets(url))
    for piece in {password, *(p for p in re.split(r"[/@?#:=&%\s]", password) if len(p) >= 3)}:
        assert piece not in shown, (piece, shown)


@pytest.mark.parametrize(
    ("url", "host", "port"),
    [
        ("postgresql://u:pw@h1,h2/db", "h1,h2", None),
        ("postgresql://u:pw@h1:5433,h2:5434/db", "h1,h2", "5433,5434"),
        ("postgresql://u:pw@h1:5433,h2/db", "h1,h2", "5433,default"),
    ],
)
def test_several_hosts_and_their_ports(url: str, host: str, port: str | None) -> None:
    found = described(url)
    assert (found["host"], found["port"], found["dbname"], found["user"]) == (host, port, "db", "u")
