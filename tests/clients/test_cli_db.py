"""``simpleaide db`` tables, rows, SQL, exports and edits: the installed command against the
daemon it starts, on a real SQLite file that the tests also read and change directly."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shlex
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.sandbox import Result, Sandbox, interruptible, simpleaide_command
from tests.support.waiting import eventually_blocking

BOUND = 15.0  # seconds: generous, only a failing test waits this long
ITEMS = 3000
BIG_ROWS = 20_000
LONG_BIO = "Wrote the first program. " * 120  # 3000 characters: over the page's 1024
LONG_NOTES = 'Margaret\'s notes: ünïcode, "quotes"\n' * 3000  # over 100k: too long for a page


def item(i: int) -> tuple[Any, ...]:
    """Row ``i`` of ``items``: NULL, '', Unicode, quotes and line breaks, blobs of every size,
    floats, and integers beyond 2^53."""
    label: str | None = [
        None,
        "",
        f"Zürich — 東京 🚀 {i}",
        f'with "quotes", commas\nand a line break {i}',
        f"item {i}",
        f"  spaced {i}  ",
        f"item {i}",
    ][i % 7]
    data: bytes | None = [
        None,
        b"",
        bytes(range(256)) * (1 + i % 3),  # 256 to 768 bytes: more than a page shows
        bytes([i % 256, 0, 255, 10, 13]),
        None,
    ][i % 5]
    price = None if i % 11 == 0 else i * 0.1
    big = 2**62 + i if i % 13 == 0 else i
    return (i, label, data, price, big)


def make_database(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.executescript(
            """
            CREATE TABLE people (
                id INTEGER PRIMARY KEY,
                name TEXT NOT NULL,
                email TEXT UNIQUE,
                age INTEGER,
                "home town" TEXT,
                bio TEXT
            );
            CREATE INDEX people_by_age ON people(age);
            CREATE TABLE pets (
                id INTEGER PRIMARY KEY,
                owner INTEGER REFERENCES people(id) ON DELETE CASCADE,
                name TEXT
            );
            CREATE TABLE items (id INTEGER PRIMARY KEY, label TEXT, data BLOB, price REAL,
                                big INTEGER);
            CREATE TABLE notes (body TEXT);
            CREATE TABLE big (id INTEGER PRIMARY KEY, data BLOB);
            CREATE VIEW adults AS SELECT id, name, age FROM people WHERE age >= 18;
            CREATE VIEW item_data AS SELECT id, data FROM items;
            CREATE TABLE odd (id INTEGER PRIMARY KEY, "e\x1b[31mvil" TEXT);
            """
        )
        db.executemany(
            "INSERT INTO people VALUES (?, ?, ?, ?, ?, ?)",
            [
                (1, "Ada", "ada@example.org", 36, "London", LONG_BIO),
                (2, "Grace", "grace@example.org", 85, "New York", ""),
                (3, "Linus", None, 54, "Helsinki", None),
                (4, "Margaret", "margaret@example.org", None, "Boston", LONG_NOTES),
                (5, "東京 Taro", "taro@example.jp", 12, "Tōkyō", "🚀"),
            ],
        )
        db.execute("INSERT INTO pets VALUES (1, 1, 'Rex')")
        db.executemany("INSERT INTO items VALUES (?, ?, ?, ?, ?)", map(item, range(1, ITEMS + 1)))
        db.executemany("INSERT INTO notes VALUES (?)", [("first",), ("second",)])
        db.executemany(
            "INSERT INTO big VALUES (?, ?)", ((i, bytes(100)) for i in range(1, BIG_ROWS + 1))
        )


@pytest.fixture
def grid(sandbox: Sandbox) -> Iterator[Path]:
    """A sandbox whose DEV database is a SQLite file the test can read and change."""
    path = sandbox.root / "app.sqlite3"
    make_database(path)
    sandbox.configure(f'[db]\nprobe_seconds = 600\n[db.DEV]\nurl = "sqlite://{path}"\n')
    sandbox.ok("daemon", "start")
    yield path


def sql(path: Path, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as db:
        return db.execute(statement, params).fetchall()


def lines(result: Result) -> list[str]:
    return result.stdout.splitlines()


# -- tables and describe ---------------------------------------------------------------------


def test_tables_lists_tables_and_views_with_their_keys(sandbox: Sandbox, grid: Path) -> None:
    shown = lines(sandbox.ok("db", "tables"))
    assert shown[0].split() == ["SCHEMA", "NAME", "KIND", "ROWS", "EDITABLE", "KEY"]
    by_name = {line.split()[1]: line.split() for line in shown[1:]}
    assert by_name["people"][0] == "main" and by_name["people"][2] == "table"
    assert by_name["people"][4:] == ["yes", "id"]
    assert by_name["notes"][4:] == ["yes", "rowid"]
    assert by_name["adults"][2] == "view"
    assert by_name["adults"][4] == "no" and "not editable" in " ".join(by_name["adults"])
    entries = {t["name"]: t for t in sandbox.ok("db", "tables", "--json").json()}
    assert entries["people"]["key"] == ["id"] and entries["people"]["editable"] is True
    assert entries["notes"]["key"] == "rowid"
    assert entries["adults"]["key"] is None and entries["adults"]["kind"] == "view"


def test_describe_shows_columns_indexes_foreign_keys_and_ddl(sandbox: Sandbox, grid: Path) -> None:
    text = sandbox.ok("db", "describe", "people").stdout
    assert "row key:     id" in text
    columns = {
        line.split()[0]: line for line in text.splitlines() if line.startswith(("id ", "name "))
    }
    assert "INTEGER" in columns["id"] and "yes" in columns["id"].split()[2:]
    assert "NOT NULL" in columns["name"]
    assert re.search(r"^home town\s+TEXT\s+yes", text, re.MULTILINE), text
    assert "people_by_age" in text and "CREATE TABLE people" in text
    assert "no foreign keys" in text
    pets = sandbox.ok("db", "describe", "pets").stdout
    assert re.search(r"owner\s+main\.people \(id\)\s+NO ACTION\s+CASCADE$", pets, re.MULTILINE), (
        pets
    )
    described = sandbox.ok("db", "describe", "people", "--schema", "main", "--json").json()
    assert [c["name"] for c in described["columns"]] == [
        "id",
        "name",
        "email",
        "age",
        "home town",
        "bio",
    ]
    missing = sandbox.run("db", "describe", "nosuch")
    assert missing.code == 1 and missing.err.startswith("simpleaide: ") and "nosuch" in missing.err
    assert missing.out == b""


# -- rows ------------------------------------------------------------------------------------


def test_rows_show_null_empty_text_bytes_and_cut_text(sandbox: Sandbox, grid: Path) -> None:
    shown = lines(sandbox.ok("db", "rows", "people"))
    assert shown[0].split() == ["id", "name", "email", "age", "home", "town", "bio"]
    rows = {line.split()[0]: line for line in shown[1:6]}
    assert "NULL" in rows["3"] and "NULL" not in rows["2"]  # Linus has no email; Grace's bio ''
    assert rows["2"].endswith("New York")  # the empty bio is shown as nothing
    assert "Wrote the first program." in rows["1"] and rows["1"].endswith("… (3000 chars)")
    assert shown[6] == "(5 of 5 rows)"
    assert len(shown) == 7  # one page: no next or previous page
    blobs = lines(sandbox.ok("db", "rows", "items", "--where", "id in 1,2,3,4", "--sort", "id"))
    assert [line.split()[0] for line in blobs[1:5]] == ["1", "2", "3", "4"]
    assert "<0 bytes>" in blobs[1] and "<768 bytes>" in blobs[2] and "<5 bytes>" in blobs[3]
    assert "NULL" in blobs[4]

    page = sandbox.ok("db", "rows", "people", "--json").json()
    assert page["rows"][1][-1] == "" and page["rows"][2][-1] is None
    assert page["rows"][0][-1] == {"$truncated": 3000, "text": LONG_BIO[:1024]}
    assert page["keys"] == [[1], [2], [3], [4], [5]]
    assert page["next"] is None and page["prev"] is None


def test_rows_fit_the_terminal_width(sandbox: Sandbox, grid: Path) -> None:
    shown = lines(sandbox.ok("db", "rows", "people", env={"COLUMNS": "60"}))
    assert all(len(line) <= 60 for line in shown[:6]), shown
    assert "…" in shown[1]  # Ada's bio, cut
    assert shown[1].split()[:2] == ["1", "Ada"]  # the narrow columns keep their width
    wide = lines(sandbox.ok("db", "rows", "people"))  # not a terminal: nothing is cut
    assert max(len(line) for line in wide) > 1024


def on_a_terminal(sandbox: Sandbox, *args: str, **env: str) -> tuple[int, str, str]:
    """Run ``simpleaide ARGS`` with a pseudo-terminal as stdin and stdout, 100 columns wide;
    returns the exit status, what the terminal showed and stderr."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [simpleaide_command(), *args],
        stdin=slave,
        stdout=slave,
        stderr=subprocess.PIPE,
        env={**sandbox.env, "COLUMNS": "100", **env},
        cwd=sandbox.cwd,
    )
    os.close(slave)
    shown = b""
    deadline = time.monotonic() + BOUND
    try:
        while time.monotonic() < deadline:
            if select.select([master], [], [], 0.1)[0]:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the command ended and closed the terminal
                    break
                if not chunk:
                    break
                shown += chunk
            elif proc.poll() is not None:
                break
        code = proc.wait(BOUND)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(BOUND)
        os.close(master)
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert "Traceback" not in err, err
    return code, shown.decode().replace("\r\n", "\n"), err


def test_null_is_dimmed_on_a_terminal(sandbox: Sandbox, grid: Path) -> None:
    code, shown, _ = on_a_terminal(sandbox, "db", "rows", "people", "--where", "id in 2,3")
    assert code == 0, shown
    grace, linus = shown.splitlines()[1:3]
    assert "\x1b" not in grace  # the empty bio: nothing at all
    assert linus.count("\x1b[2mNULL\x1b[0m") == 2, repr(linus)
    assert all(len(line) <= 100 for line in shown.splitlines())
    code, plain, _ = on_a_terminal(
        sandbox, "db", "rows", "people", "--where", "id = 3", NO_COLOR="1"
    )
    assert code == 0 and "\x1b" not in plain and plain.splitlines()[1].count("NULL") == 2
    # An empty NO_COLOR asks for nothing (https://no-color.org), as everywhere else.
    code, shown, _ = on_a_terminal(
        sandbox, "db", "rows", "people", "--where", "id = 3", NO_COLOR=""
    )
    assert code == 0 and shown.splitlines()[1].count("\x1b[2mNULL\x1b[0m") == 2, repr(shown)
    code, shown, err = on_a_terminal(sandbox, "db", "query")  # no SQL, and stdin is a terminal
    assert code == 2 and shown == ""
    assert err == "simpleaide: give the SQL as an argument, or on stdin (- or none)\n"


def test_the_row_count_says_row_or_rows(sandbox: Sandbox, grid: Path) -> None:
    assert lines(sandbox.ok("db", "rows", "people", "--where", "id = 3"))[-1] == "(1 of 1 row)"
    # Filtered, with a next page: not counted.
    shown = lines(sandbox.ok("db", "rows", "people", "--where", "age is not null", "--limit", "1"))
    assert shown[2] == "(1 row shown)"
    shown = lines(sandbox.ok("db", "rows", "people", "--where", "age is not null", "--limit", "2"))
    assert shown[3] == "(2 rows shown)"


def test_rows_sorted_and_filtered(sandbox: Sandbox, grid: Path) -> None:
    def ids(*options: str) -> list[int]:
        page = sandbox.ok("db", "rows", "people", "--json", *options).json()
        return [row[0] for row in page["rows"]]

    assert ids("--sort", "age:desc") == [2, 3, 1, 5, 4]  # NULL last when descending
    assert ids("--sort", "age") == [4, 5, 1, 3, 2]
    assert ids("--sort", '"home town":desc') == [5, 2, 1, 3, 4]
    assert ids("--where", "age >= 40") == [2, 3]
    assert ids("--where", "age>=40", "--where", "name != Linus") == [2]
    assert ids("--where", '"home town" = New York') == [2]
    assert ids("--where", "email is-null") == [3]
    assert ids("--where", "age is not null", "--where", "bio = ''") == [2]
    assert ids("--where", "name in Ada, 'Grace',Nobody") == [1, 2]
    assert ids("--where", "name like G%") == [2]
    assert ids("--where", "name ilike %TARO") == [5]
    shown = lines(sandbox.ok("db", "rows", "people", "--where", "age < 40", "--sort", "age:desc"))
    assert [line.split()[0] for line in shown[1:3]] == ["1", "5"]

    for bad in ("age", "age ~ 3", "= 3", "email is-null 3", "name ="):
        refused = sandbox.run("db", "rows", "people", "--where", bad)
        assert refused.code == 2 and "--where" in refused.err, refused
    unknown = sandbox.run("db", "rows", "people", "--where", "nosuch = 1")
    assert unknown.code == 1 and "nosuch" in unknown.err, unknown


def _follow(sandbox: Sandbox, shown: list[str], word: str) -> Result | None:
    """Run the command the page printed for its ``word`` page (next, previous)."""
    for line in shown:
        if line.startswith(f"{word} page: "):
            command = shlex.split(line.removeprefix(f"{word} page: "))
            assert command[:3] == ["simpleaide", "db", "rows"]
            return sandbox.ok(*command[1:])
    return None


def test_paging_follows_the_printed_commands(sandbox: Sandbox, grid: Path) -> None:
    first = lines(sandbox.ok("db", "rows", "items", "--limit", "1000"))
    assert [int(line.split()[0]) for line in first[1:1001]] == list(range(1, 1001))
    assert not any(line.startswith("previous page: ") for line in first)
    second = _follow(sandbox, first, "next")
    assert second is not None
    shown = lines(second)
    assert [int(line.split()[0]) for line in shown[1:1001]] == list(range(1001, 2001))
    third = _follow(sandbox, shown, "next")
    assert third is not None
    last = lines(third)
    assert [int(line.split()[0]) for line in last[1:1001]] == list(range(2001, 3001))
    assert not any(line.startswith("next page: ") for line in last)
    back = _follow(sandbox, last, "previous")
    assert back is not None and lines(back)[1].split()[0] == "1001"

    # Sorted and filtered: the printed command keeps both, and the pages join up.
    labels: list[str | None] = []
    seen: list[int] = []
    options = ["--sort", "label:desc", "--where", "id <= 1500", "--limit", "400", "--json"]
    page = sandbox.ok("db", "rows", "items", *options).json()
    while True:
        seen += [row[0] for row in page["rows"]]
        labels += [row[1] for row in page["rows"]]
        if page["next"] is None:
            break
        page = sandbox.ok("db", "rows", "items", *options, "--after", page["next"]).json()
    assert sorted(seen) == list(range(1, 1501))
    texts = [label for label in labels if label is not None]
    assert texts == sorted(texts, reverse=True) and labels[len(texts) :] == [None] * (
        len(labels) - len(texts)
    )
    shown = lines(sandbox.ok("db", "rows", "items", *options[:-1]))
    following = _follow(sandbox, shown, "next")
    assert following is not None and "label:desc" in shown[-1] and "id <= 1500" in shown[-1]
    stale = sandbox.run("db", "rows", "items", "--after", page["prev"])  # another view's cursor
    assert stale.code == 1 and "simpleaide: " in stale.err, stale


# -- export ----------------------------------------------------------------------------------


def read_csv(text: str) -> list[list[tuple[str, bool]]]:
    """RFC 4180 records, each field with whether it was quoted (NULL vs '')."""
    records: list[list[tuple[str, bool]]] = []
    record: list[tuple[str, bool]] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] == '"':
            value, i = [], i + 1
            while True:
                end = text.index('"', i)
                value.append(text[i:end])
                if text.startswith('""', end):
                    value.append('"')
                    i = end + 2
                    continue
                i = end + 1
                break
            record.append(("".join(value), True))
        else:
            end = min(j for j in (text.find(",", i), text.find("\r\n", i), n) if j >= 0)
            record.append((text[i:end], False))
            i = end
        if text.startswith(",", i):
            i += 1
        else:
            assert text.startswith("\r\n", i), f"no line end at {i}: {text[i : i + 20]!r}"
            i += 2
            records.append(record)
            record = []
    return records


def expected_csv(row: tuple[Any, ...]) -> list[tuple[str, bool]]:
    fields = []
    for value in row:
        if value is None:
            fields.append(("", False))
        elif isinstance(value, bytes):
            fields.append((value.hex(), True))
        elif isinstance(value, str):
            fields.append((value, True))
        elif isinstance(value, int) and abs(value) > 2**53 - 1:
            fields.append((str(value), True))  # a string on the wire: text in the file
        else:
            fields.append((repr(value), False))
    return fields


def test_export_csv_round_trips_exactly(sandbox: Sandbox, grid: Path) -> None:
    target = sandbox.root / "out" / "items.csv"
    target.parent.mkdir()
    result = sandbox.ok("db", "export", "items", "--format", "csv", "-o", str(target))
    assert result.out == b""
    assert result.err == f"exported {ITEMS} rows to {target}\n"
    records = read_csv(target.read_bytes().decode("utf-8"))
    assert records[0] == [(name, True) for name in ("id", "label", "data", "price", "big")]
    rows = sql(grid, "SELECT * FROM items ORDER BY id")
    assert len(records) == ITEMS + 1
    for record, row in zip(records[1:], rows, strict=True):
        assert record == expected_csv(row), row
    assert sorted(p.name for p in target.parent.iterdir()) == ["items.csv"]  # no temp file left
    written = target.read_bytes()
    assert f'\r\n15,"",,{15 * 0.1!r},15\r\n'.encode() in written  # label '', data NULL
    assert f"\r\n35,,,{35 * 0.1!r},35\r\n".encode() in written  # both NULL


def test_export_jsonl_round_trips_exactly_to_stdout_and_files(sandbox: Sandbox, grid: Path) -> None:
    result = sandbox.ok("db", "export", "items", "--format", "jsonl")
    assert result.err == f"exported {ITEMS} rows to stdout\n"
    got = [json.loads(line) for line in result.stdout.split("\n")[:-1]]
    rows = sql(grid, "SELECT * FROM items ORDER BY id")
    assert len(got) == ITEMS
    for obj, (id_, label, data, price, big) in zip(got, rows, strict=True):
        assert list(obj) == ["id", "label", "data", "price", "big"]
        assert obj["id"] == id_ and obj["label"] == label and obj["price"] == price
        assert obj["big"] == (str(big) if big > 2**53 - 1 else big)
        if data is None:
            assert obj["data"] is None
        else:
            assert obj["data"] == {"$bytes": len(data), "hex": data.hex()}
    # Filtered and sorted like db rows; -o - is stdout; an existing file is replaced whole.
    target = sandbox.root / "people.jsonl"
    target.write_text("old\n" * 1000)
    sandbox.ok(
        "db", "export", "people", "--format", "jsonl", "-o", str(target),
        "--where", "age not-null", "--sort", "age:desc",
    )  # fmt: skip
    people = [json.loads(line) for line in target.read_text().splitlines()]
    assert [p["id"] for p in people] == [2, 3, 1, 5]
    assert people[0]["bio"] == "" and people[1]["bio"] is None
    assert people[2]["bio"] == LONG_BIO  # whole, not the page's 1024 characters
    assert people[3]["name"] == "東京 Taro" and people[3]["home town"] == "Tōkyō"
    margaret = sandbox.ok("db", "export", "people", "--format", "csv", "--where", "id = 4")
    assert read_csv(margaret.out.decode())[1][5] == (LONG_NOTES, True)  # fetched whole


def test_a_failed_or_interrupted_export_leaves_no_file(sandbox: Sandbox, grid: Path) -> None:
    folder = sandbox.root / "exports"
    folder.mkdir()
    missing = sandbox.run("db", "export", "nosuch", "--format", "csv", "-o", str(folder / "a.csv"))
    assert missing.code == 1 and "nosuch" in missing.err, missing
    assert list(folder.iterdir()) == []

    # Interrupted halfway (each 100-byte blob is fetched whole, one by one: it takes a while).
    kept = folder / "big.csv"
    kept.write_text("precious")
    proc = subprocess.Popen(
        interruptible(
            [simpleaide_command(), "db", "export", "big", "--format", "csv", "-o", str(kept)]
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=sandbox.env,
        cwd=sandbox.cwd,
    )
    try:

        def partial() -> bool:
            return any(p.stat().st_size > 0 for p in folder.glob(".simpleaide-*.part"))

        eventually_blocking(partial, BOUND, interval=0.005)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=BOUND)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(BOUND)
    assert proc.returncode == 130, err
    assert "Traceback" not in err.decode()
    assert [p.name for p in folder.iterdir()] == ["big.csv"]
    assert kept.read_text() == "precious"


# -- SQL -------------------------------------------------------------------------------------

ELAPSED = r" in [0-9.]+ ms"


def test_query_from_the_argument_and_from_stdin(sandbox: Sandbox, grid: Path) -> None:
    shown = lines(
        sandbox.ok("db", "query", "select id, name, email, '' as empty from people where id <= 3")
    )
    assert shown[0].split() == ["id", "name", "email", "empty"]
    assert shown[1].split() == ["1", "Ada", "ada@example.org"]
    assert shown[3].split() == ["3", "Linus", "NULL"]
    assert re.fullmatch(r"\(3 rows\)" + ELAPSED, shown[4]), shown
    piped = sandbox.ok("db", "query", input=b"select count(*) as n from items\n")
    assert lines(piped)[:2] == ["n", str(ITEMS)]
    dash = sandbox.ok("db", "query", "-", input=b"select name from people where id = 2")
    assert lines(dash)[1] == "Grace"
    param = sandbox.ok("db", "query", "select name from people where id = ?", "--param", "5")
    assert lines(param)[1] == "東京 Taro"

    cut = lines(sandbox.ok("db", "query", "--limit", "5", "select id from items order by id"))
    assert [line.strip() for line in cut[1:6]] == ["1", "2", "3", "4", "5"]
    assert re.fullmatch(r"\(5 rows, truncated\)" + ELAPSED, cut[6]), cut
    answer = sandbox.ok("db", "query", "--json", "select id, data from items where id = 2").json()
    assert answer["rows"] == [[2, {"$bytes": 768, "hex": bytes(range(64)).hex()}]]
    assert answer["truncated"] is False and answer["rowCount"] == 1
    assert isinstance(answer["elapsedMs"], (int, float))

    wrote = sandbox.ok("db", "query", "update people set age = age + 1 where age > 50")
    assert re.fullmatch(r"\(2 rows affected\)" + ELAPSED + "\n", wrote.stdout), wrote
    assert sql(grid, "select age from people where id in (2, 3) order by id") == [(86,), (55,)]

    wrong = sandbox.run("db", "query", "select * from nosuch")
    assert wrong.code == 1 and "nosuch" in wrong.err and wrong.out == b"", wrong
    two = sandbox.run("db", "query", "select 1; select 2")
    assert two.code == 1 and two.err.startswith("simpleaide: "), two
    empty = sandbox.run("db", "query")  # stdin is an empty pipe
    assert empty.code == 2 and "empty" in empty.err, empty


LONG_QUERY = (
    "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 1000000000) "
    "SELECT count(*) FROM c, (SELECT id FROM people LIMIT 1)"
)


def _reading(path: Path) -> bool:
    """Whether some connection is reading ``path`` (holds its shared lock): nobody else
    can then take it exclusively."""
    db = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        db.execute("BEGIN EXCLUSIVE")
        db.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError as exc:
        assert "locked" in str(exc)
        return True
    finally:
        db.close()


def ctrl_c_query(
    sandbox: Sandbox, sql: str, under_way: Callable[[], bool], interval: float
) -> tuple[int, bytes, bytes, float]:
    """``simpleaide db query SQL``, interrupted (SIGINT) once ``under_way()`` says the query
    runs: its exit status, output, errors, and how long it took to end after the signal."""
    proc = subprocess.Popen(
        interruptible([simpleaide_command(), "db", "query", sql]),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=sandbox.env,
        cwd=sandbox.cwd,
    )
    try:
        eventually_blocking(under_way, BOUND, interval=interval)
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        out, err = proc.communicate(timeout=BOUND)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(BOUND)
    return proc.returncode, out, err, took


def test_ctrl_c_cancels_a_running_query_in_the_database(sandbox: Sandbox, grid: Path) -> None:
    code, out, err, took = ctrl_c_query(sandbox, LONG_QUERY, lambda: _reading(grid), 0.005)
    assert code == 130, err
    assert err.decode() == "simpleaide: cancelled\n" and out == b""
    assert took < 2.0, took
    # Stopped in the database too: its read ends.
    eventually_blocking(lambda: not _reading(grid), 2.0, interval=0.005)


def test_a_query_over_its_time_limit_is_stopped(sandbox: Sandbox, grid: Path) -> None:
    started = time.monotonic()
    slow = sandbox.run("db", "query", "--timeout", "0.5", LONG_QUERY)
    assert slow.code == 1 and slow.err.startswith("simpleaide: "), slow
    assert time.monotonic() - started < 5
    eventually_blocking(lambda: not _reading(grid), 2.0, interval=0.005)


# -- edits -----------------------------------------------------------------------------------


def test_insert_set_and_delete(sandbox: Sandbox, grid: Path) -> None:
    added = sandbox.ok(
        "db", "insert", "people", "name=Hedy", "email=hedy@example.org", "age:=null",
        "home town=Vienna", "bio=",
    )  # fmt: skip
    shown = lines(added)
    assert shown[0] == "inserted the row of people with key (6):"
    assert "name:      Hedy" in shown and "age:       NULL" in shown
    assert sql(grid, "select name, age, bio, typeof(bio) from people where id = 6") == [
        ("Hedy", None, "", "text")
    ]

    assert lines(sandbox.ok("db", "set", "people", "6", "age=40", "bio:=null"))[0] == (
        "updated the row of people with key (6):"
    )
    assert sql(grid, "select age, typeof(age), bio from people where id = 6") == [
        (40, "integer", None)  # text from the command line, bound as the column's type
    ]
    sandbox.ok("db", "set", "people", "[6]", 'name:="Hedy \\"Lamarr\\""', '"home town"=Wien')
    assert sql(grid, 'select name, "home town" from people where id = 6') == [
        ('Hedy "Lamarr"', "Wien")
    ]
    edited = sandbox.ok("db", "set", "people", "6", "age=41", "--json").json()
    assert edited["rows"][0]["key"] == [6] and 41 in edited["rows"][0]["row"]

    assert sandbox.ok("db", "delete", "people", "6").stdout == "deleted 1 row of people\n"
    assert sql(grid, "select count(*) from people where id = 6") == [(0,)]

    # A table whose key is its rowid.
    sandbox.ok("db", "set", "notes", "2", "body=changed")
    assert sql(grid, "select rowid, body from notes order by rowid") == [
        (1, "first"),
        (2, "changed"),
    ]
    sandbox.ok("db", "delete", "notes", "1")
    assert sql(grid, "select body from notes") == [("changed",)]


def test_edits_that_cannot_be_made_are_told_in_words(sandbox: Sandbox, grid: Path) -> None:
    def refused(code: int, *args: str) -> str:
        result = sandbox.run("db", *args)
        assert result.code == code and result.out == b"", result
        if not result.err.startswith("usage: "):  # argparse's own: usage, then the error
            assert result.err.startswith("simpleaide: ") and result.err.count("\n") == 1, result
        return result.err

    assert "no row of people" in refused(1, "set", "people", "99", "name=X")
    assert "no row of people" in refused(1, "delete", "people", "99")
    assert "give 1 value" in refused(2, "set", "people", "1,2", "name=X")
    assert "cannot be edited" in refused(1, "set", "adults", "1", "name=X")
    assert "COL=VALUE" in refused(2, "set", "people", "1", "name")
    assert "JSON" in refused(2, "set", "people", "1", "age:=forty")
    unique = refused(1, "insert", "people", "name=Dup", "email=ada@example.org")
    assert "email" in unique
    assert "name" in refused(1, "set", "people", "1", "name:=null")
    assert sql(grid, "select name, email from people where id = 1") == [("Ada", "ada@example.org")]


def test_a_row_changed_since_it_was_read_is_a_conflict(sandbox: Sandbox, grid: Path) -> None:
    read = sandbox.ok("db", "rows", "people", "--where", "id = 2", "--json").json()
    assert read["rows"][0][1] == "Grace"
    sql(grid, "update people set name = 'Grace Hopper' where id = 2")  # someone else's change

    stale = sandbox.run(
        "db", "set", "people", "2", "email=new@example.org", "--expect", "name=Grace"
    )
    assert stale.code == 1 and stale.out == b"", stale
    assert stale.err.splitlines() == [
        "simpleaide: the row of people with key id=2 changed since it was read; "
        "nothing was changed",
        '  name: read as "Grace", now "Grace Hopper"',
    ]
    assert sql(grid, "select email from people where id = 2") == [("grace@example.org",)]
    # Expecting what is there now succeeds; so does a typed expectation.
    sandbox.ok("db", "set", "people", "2", "email=new@example.org", "--expect", "name=Grace Hopper")
    sandbox.ok("db", "set", "people", "2", "age=86", "--expect", "age:=85")
    assert sql(grid, "select email, age from people where id = 2") == [("new@example.org", 86)]

    sql(grid, "delete from people where id = 3")
    gone = sandbox.run("db", "delete", "people", "3", "--expect", "name=Linus")
    assert gone.code == 1, gone
    assert "is gone (deleted since it was read); nothing was changed" in gone.err


def test_unfinished_json_in_a_key_or_value_is_refused_in_words(
    sandbox: Sandbox, grid: Path
) -> None:
    for args, says in (
        (("set", "people", "[1", "name=x"), "is not a JSON list of values"),
        (("insert", "people", 'name:="abc'), "after := comes a JSON value"),
        (("set", "people", '["a', "name=x"), "is not a JSON list of values"),
    ):
        result = sandbox.run("db", *args)
        assert result.code == 2 and result.out == b"", result
        assert "Traceback" not in result.err and "SystemError" not in result.err, result
        last = result.err.splitlines()[-1]  # argparse's usage lines, then one line of words
        assert last.startswith(f"simpleaide db {args[0]}: error: ") and says in last, result
    assert sql(grid, "select count(*) from people") == [(5,)]


def test_column_names_are_escaped_in_what_an_edit_prints(sandbox: Sandbox, grid: Path) -> None:
    evil = "e\x1b[31mvil"  # a column name holding a terminal escape
    for result in (
        sandbox.ok("db", "insert", "odd", "id=1", f"{evil}=x"),
        sandbox.ok("db", "set", "odd", "1", f"{evil}=y"),
    ):
        assert "\x1b" not in result.stdout, result
        assert "e\\x1b[31mvil" in result.stdout, result
    assert sql(grid, f'select "{evil}" from odd') == [("y",)]


def test_sql_on_stdin_that_is_not_utf8_is_refused_in_words(sandbox: Sandbox, grid: Path) -> None:
    result = sandbox.run("db", "query", input=b"select '\xff'")
    assert result.code == 2 and result.out == b"", result
    assert result.err == "simpleaide: the SQL on stdin is not UTF-8 text\n", result
    help_text = " ".join(sandbox.ok("db", "query", "--help").stdout.split())
    assert "%s in PostgreSQL" in help_text and "$1 (PostgreSQL)" not in help_text, help_text


def test_where_refuses_a_lone_quote_and_reads_double_equals(sandbox: Sandbox, grid: Path) -> None:
    lone = sandbox.run("db", "rows", "people", "--where", "name = '")
    assert lone.code == 2 and "closing quote" in lone.err, lone
    unfinished = sandbox.run("db", "rows", "people", "--where", "name = 'Ada")
    assert unfinished.code == 2 and "closing quote" in unfinished.err, unfinished
    page = sandbox.ok("db", "rows", "people", "--where", "id == 3", "--json").json()
    assert [row[0] for row in page["rows"]] == [3]


def test_null_and_the_text_null_differ_where_nothing_is_dimmed(
    sandbox: Sandbox, grid: Path
) -> None:
    sql(grid, "update people set email = 'NULL', bio = '<3 bytes>' where id = 5")
    shown = lines(sandbox.ok("db", "rows", "people", "--where", "id in 3,5"))
    linus, taro = shown[1].split(), shown[2].split()
    assert linus[2] == "NULL" and linus[-1] == "NULL"  # SQL NULL: bare
    assert taro[3] == '"NULL"' and shown[2].endswith('"<3 bytes>"'), shown  # text: quoted
    code, plain, _ = on_a_terminal(
        sandbox, "db", "rows", "people", "--where", "id in 3,5", NO_COLOR="1"
    )
    assert code == 0 and '"NULL"' in plain.splitlines()[2], plain
    code, dimmed, _ = on_a_terminal(sandbox, "db", "rows", "people", "--where", "id = 5")
    assert code == 0 and '"NULL"' not in dimmed, dimmed  # dimming tells them apart already
    queried = lines(sandbox.ok("db", "query", "select 'NULL' as a, null as b"))
    assert queried[1].split() == ['"NULL"', "NULL"]
    help_text = " ".join(sandbox.ok("db", "rows", "--help").stdout.split())
    assert 'JSON style ("NULL")' in help_text, help_text


def test_combining_marks_take_no_column() -> None:
    from simpleaide.commands.db import clip_columns, columns_of, grid

    assert columns_of("e\u0301te\u0301") == 3
    assert columns_of("東京") == 4
    assert clip_columns("cafe\u0301 au lait", 6) == "cafe\u0301 …"
    table = grid(["a", "b"], [[("e\u0301e\u0301", False), ("x", False)]], dim=False)
    head, row = table.splitlines()
    assert columns_of(row[: row.index("x")]) == head.index("b"), table


def test_an_export_refused_on_a_cut_value_writes_nothing(sandbox: Sandbox, grid: Path) -> None:
    for fmt in ("csv", "jsonl"):
        result = sandbox.run("db", "export", "item_data", "--format", fmt)
        assert result.code == 1 and result.out == b"", result
        assert "has no row key" in result.err and "data" in result.err, result


# -- help ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "says"),
    [
        ("tables", "estimate"),
        ("describe", "foreign keys"),
        ("rows", "NULL shows as NULL"),
        ("query", "Ctrl-C cancels"),
        ("export", "hexadecimal"),
        ("set", "COL:=null"),
        ("insert", "COL:=null"),
        ("delete", "conflict"),
    ],
)
def test_every_command_explains_itself(sandbox: Sandbox, command: str, says: str) -> None:
    shown = sandbox.ok("db", command, "--help").stdout
    assert says in " ".join(shown.split()), shown


# -- PostgreSQL ------------------------------------------------------------------------------


@pytest.fixture
def pg_grid(sandbox: Sandbox, postgres: str) -> Iterator[str]:
    """A sandbox whose DEV database is the machine's PostgreSQL; the tests' tables live in a
    schema of their own, dropped afterwards. Yields the schema's name."""
    import psycopg

    schema = f"cli_db_{os.getpid()}_{time.monotonic_ns()}"
    with psycopg.connect(postgres, autocommit=True) as db:
        db.execute(f'CREATE SCHEMA "{schema}"')
        db.execute(
            f"""CREATE TABLE "{schema}".ledger (
                id bigint PRIMARY KEY, amount numeric(10, 2), payload bytea, tags text[],
                doc jsonb, note text)"""
        )
        db.execute(
            f'INSERT INTO "{schema}".ledger VALUES '
            "(1, 10.00, %s, '{a,\"b c\"}', '{\"k\": [1, 2]}', NULL),"
            "(2, NULL, '', '{}', NULL, ''),"
            "(9007199254740993, 1.5, NULL, NULL, '[]', 'Zürich \"quoted\"')",
            (bytes(range(100)),),
        )
    sandbox.configure(f'[db]\nprobe_seconds = 600\n[db.DEV]\nurl = "{postgres}"\n')
    sandbox.ok("daemon", "start")
    try:
        yield schema
    finally:
        with psycopg.connect(postgres, autocommit=True) as db:
            db.execute(f'DROP SCHEMA "{schema}" CASCADE')


def test_postgres_rows_export_and_edit(sandbox: Sandbox, pg_grid: str, postgres: str) -> None:
    import psycopg

    schema = ["--schema", pg_grid]
    page = sandbox.ok("db", "rows", "ledger", *schema, "--json").json()
    assert page["rows"][0][:2] == [1, "10.00"] and page["rows"][2][0] == "9007199254740993"
    assert page["rows"][0][3] == ["a", "b c"] and page["rows"][0][4] == '{"k": [1, 2]}'
    shown = lines(sandbox.ok("db", "rows", "ledger", *schema))
    assert shown[1].split()[:3] == ["1", "10.00", "<100"] and "NULL" in shown[2]

    target = sandbox.root / "ledger.csv"
    sandbox.ok("db", "export", "ledger", *schema, "--format", "csv", "-o", str(target))
    assert read_csv(target.read_bytes().decode()) == [
        [(name, True) for name in ("id", "amount", "payload", "tags", "doc", "note")],
        [("1", False), ("10.00", True), (bytes(range(100)).hex(), True),
         ('["a","b c"]', True), ('{"k": [1, 2]}', True), ("", False)],
        [("2", False), ("", False), ("", True), ("[]", True), ("", False), ("", True)],
        [("9007199254740993", True), ("1.50", True), ("", False), ("", False), ("[]", True),
         ('Zürich "quoted"', True)],
    ]  # fmt: skip
    exported = sandbox.ok("db", "export", "ledger", *schema, "--format", "jsonl").stdout
    first = json.loads(exported.splitlines()[0])
    assert first["payload"] == {"$bytes": 100, "hex": bytes(range(100)).hex()}

    sandbox.ok("db", "set", "ledger", "9007199254740993", *schema, "amount=12.5", 'tags:=["x"]')
    # An array column's text is a JSON list; text that is not one is refused in words.
    sandbox.ok("db", "set", "ledger", "2", *schema, 'tags=["p", "q,r"]')
    wrong = sandbox.run("db", "set", "ledger", "2", *schema, "tags=p,q")
    assert wrong.code == 2 and wrong.err.count("\n") == 1, wrong
    assert "tags is an array (text[])" in wrong.err and "JSON list" in wrong.err, wrong
    sandbox.ok("db", "insert", "ledger", *schema, "id=3", "payload:=null", "note=new")
    assert sandbox.run("db", "insert", "ledger", *schema).code == 2  # a value at least
    with psycopg.connect(postgres) as db:
        rows = db.execute(
            f'SELECT id, amount::text, tags, note FROM "{pg_grid}".ledger WHERE id > 2 ORDER BY id'
        ).fetchall()
    assert rows == [(3, None, None, "new"), (9007199254740993, "12.50", ["x"], 'Zürich "quoted"')]
    with psycopg.connect(postgres) as db:
        tags = db.execute(f'SELECT tags FROM "{pg_grid}".ledger WHERE id = 2').fetchone()
    assert tags == (["p", "q,r"],)


def test_postgres_query_is_cancelled_by_ctrl_c(
    sandbox: Sandbox, pg_grid: str, postgres: str
) -> None:
    import psycopg

    table = f'"{pg_grid}".ledger'

    def running() -> bool:
        """Whether a session reads the test's table (holds a lock on it): the query."""
        with psycopg.connect(postgres, autocommit=True) as db:
            found = db.execute(
                "SELECT count(*) FROM pg_locks WHERE relation = %s::regclass "
                "AND pid <> pg_backend_pid()",
                (table,),
            ).fetchone()
        return bool(found and found[0])

    sql = f"SELECT pg_sleep(60) FROM {table} LIMIT 1"
    code, _, err, took = ctrl_c_query(sandbox, sql, running, 0.02)
    assert code == 130 and err.decode() == "simpleaide: cancelled\n", err
    assert took < 2.0, took
    eventually_blocking(lambda: not running(), 2.0, interval=0.02)
