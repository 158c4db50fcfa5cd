"""``simpleaide db``: the database of the active profile (README: The grid): its status, its
tables and rows, SQL, row edits and exports.

Values typed on the command line are text (``--where 'id = 5'``, ``name=Ada``) and the daemon
binds them by the column's type, as the grid does; ``col:=JSON`` gives a typed value
(``col:=null``, ``col:=12``). Edits carry the values read just before (``expect``), so a row
someone changed meanwhile is reported as a conflict and nothing is written.
"""

from __future__ import annotations

import os
import sys

from simpleaide import fastjson, tables
from simpleaide.client import Client, ClientError, Conflict, NotFound
from simpleaide.commands import page_size, reply
from simpleaide.safetext import escape
from simpleaide.session import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    Session,
)

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~2 ms to import; annotations are not evaluated at run time
    from collections.abc import Callable, Iterator, Sequence
    from typing import Any, BinaryIO

    from simpleaide.commands import Commands
    from simpleaide.commands.artifacts import _Output
    from simpleaide.session import Args

SCHEMA_HELP = "the table's schema (default: main for SQLite, the search path for PostgreSQL)"
TABLE_HELP = "the table or view, exactly as db tables lists it"
KEY_HELP = (
    "the row's key: its key columns' values in order, comma-separated (3 or 7,en), "
    "or a JSON list for values holding commas ('[\"a,b\", 2]')"
)
WHERE_HELP = (
    "keep rows where COLUMN OP VALUE holds (repeat: all must hold); OP is one of "
    "= != < <= > >= like ilike in is-null not-null"
)
SORT_HELP = "sort by COLUMN, ascending, or descending with :desc (repeat for ties)"

# The filter operators written as symbols, each read as the longest that matches ("<=" before
# "<"); "<>" is SQL's "!=", and "==" is read as "=".
_SYMBOL_OPS: tuple[tuple[str, str], ...] = (
    ("==", "="),  # as in most programming languages
    ("!=", "!="),
    ("<>", "!="),
    ("<=", "<="),
    (">=", ">="),
    ("=", "="),
    ("<", "<"),
    (">", ">"),
)
_WORD_OPS = ("like", "ilike", "in", "is-null", "not-null")
_NAME_STOPS = " \t=!<>"

EXPORT_PAGE_ROWS = 1000
# Text cells up to this many characters come whole in the page; a longer one, and any binary
# cell over 64 bytes (a page shows their first 64), is fetched alone with db.cell: a page's
# reply stays bounded (1000 rows of a few cells of 64 KiB at most), whatever the table holds.
EXPORT_CELL_BYTES = 64 << 10
READ_CELL_BYTES = 16 << 20  # the daemon's largest cellBytes: a row read for an edit, whole
QUERY_REPLY_MARGIN = 10.0  # seconds the CLI waits beyond the query's own time limit
CANCEL_WAIT = 5.0  # seconds to wait for db.cancel's answer after Ctrl-C
_DIM, _PLAIN = "\x1b[2m", "\x1b[0m"


def register(tree: Commands) -> None:
    """The ``db`` commands."""
    db = tree.group("db", "the database of the active profile: tables, rows, SQL, edits")
    db.add(
        "status",
        "connected or not, type, read-only, latency, last error",
        db_status,
        description="Show the database of the active profile (DEV or PROD) as the daemon's\n"
        "last probe found it. In PROD the connection is read-only in the database itself.",
    )
    db.add(
        "tables",
        "the tables and views, with estimated rows and row key",
        db_tables,
        description="List the tables and views of the active profile's database: schema, name,\n"
        "kind, an estimate of the number of rows (cheap, possibly stale), whether rows can be\n"
        "edited, and the row key edits use (the primary key, SQLite's rowid, or a non-null\n"
        "unique index; a table with none, and a view, is read-only here).",
    )

    describe = db.add(
        "describe",
        "a table's columns, key, indexes, foreign keys and DDL",
        db_describe,
        description="Show a table's columns (type, NULL allowed, default, part of the primary\n"
        "key, generated), its row key, indexes, foreign keys and the DDL that creates it.",
    )
    _table_arguments(describe)

    rows = db.add(
        "rows",
        "one page of a table's rows, sorted and filtered",
        db_rows,
        description=ROWS_DESCRIPTION,
    )
    _table_arguments(rows)
    _view_arguments(rows)
    rows.add_argument(
        "--limit", type=page_size, metavar="N", help="rows on the page, 1 to 1000 (default 100)"
    )
    cursor = rows.add_mutually_exclusive_group()
    cursor.add_argument("--after", metavar="CURSOR", help="the page after: the cursor printed")
    cursor.add_argument("--before", metavar="CURSOR", help="the page before: the cursor printed")

    query = db.add(
        "query",
        "run one SQL statement (Ctrl-C cancels it)",
        db_query,
        description=QUERY_DESCRIPTION,
    )
    query.add_argument(
        "sql",
        metavar="SQL",
        nargs="?",
        default="-",
        help="the statement; - or none: read it from stdin",
    )
    query.add_argument(
        "--limit",
        type=_query_limit,
        metavar="N",
        help="return at most N rows, 1 to 100000 (default 1000)",
    )
    query.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="VALUE",
        dest="params",
        help="a value for the next placeholder, as text: ? in SQLite, %%s in PostgreSQL "
        "(numbered ones such as $1 are not supported)",
    )

    export = db.add(
        "export",
        "write a whole table as CSV or JSON lines",
        db_export,
        description=EXPORT_DESCRIPTION,
        json_output=False,
    )
    _table_arguments(export)
    export.add_argument(
        "--format", required=True, choices=("csv", "jsonl"), help="csv or jsonl (JSON lines)"
    )
    export.add_argument(
        "-o", "--output", metavar="FILE", help="write to FILE (replaced when complete)"
    )
    _view_arguments(export)

    set_ = db.add(
        "set", "change columns of one row", db_set, description=SET_DESCRIPTION + VALUES_HELP
    )
    _table_arguments(set_)
    set_.add_argument("key", metavar="KEY", type=row_key, help=KEY_HELP)
    set_.add_argument(
        "values",
        metavar="COL=VALUE",
        nargs="+",
        type=assignment,
        help="a column and its new value (COL:=JSON for a typed value, e.g. COL:=null)",
    )
    _expect_argument(set_)

    insert = db.add(
        "insert",
        "add one row",
        db_insert,
        description="Insert one row; columns left out take their defaults. Prints the row as\n"
        "the database stored it (defaults and triggers applied).\n\n"
        "  simpleaide db insert users name=Ada 'email=ada@example.org' age:=36\n" + VALUES_HELP,
    )
    _table_arguments(insert)
    insert.add_argument(
        "values",
        metavar="COL=VALUE",
        nargs="+",  # "*" would stop argparse from reading values after --schema
        type=assignment,
        help="a column and its value (COL:=JSON for a typed value, e.g. COL:=null)",
    )

    delete = db.add(
        "delete",
        "delete one row",
        db_delete,
        description="Delete the row whose key is KEY. The row is read first and deleted only if\n"
        "it is still as read (see db set); a conflict deletes nothing.\n\n"
        "  simpleaide db delete users 42",
    )
    _table_arguments(delete)
    delete.add_argument("key", metavar="KEY", type=row_key, help=KEY_HELP)
    _expect_argument(delete)


ROWS_DESCRIPTION = """\
Show one page of a table's rows as a table that fits the terminal (wide cells are cut
with …). NULL shows as NULL (dimmed on a terminal), the empty text as nothing, a binary
value as <N bytes>, text longer than 1024 characters as its start, then … (N chars).
Where nothing is dimmed (a pipe, a file, NO_COLOR), a text that reads like one of these
marks (the text NULL, <3 bytes>) or is itself in double quotes is shown in double quotes,
JSON style ("NULL"), so bare NULL is always SQL NULL. db query shows cells the same way.
Below the table: how many rows there are (exact, or an estimate), and the command for
the next and previous page (the cursor belongs to this table, sort and filter).
--json prints the daemon's page as is: exact values, cursors and row keys.

--where 'COLUMN OP VALUE': OP is = != < <= > >= like ilike in is-null not-null
(also 'is null', 'is not null'). A COLUMN holding spaces or = ! < > is written in
double quotes ("order id", a quote doubled). VALUE is text, and the daemon turns it into
the column's type (an integer column compares as a number, so 'id = 5' finds 5; a SQLite
column declared without a type compares as text). Quote VALUE in single quotes to keep
its spaces, or for the empty text: name = ''. 'in' takes values separated by commas
(status in open,'on hold'); like and ilike take SQL patterns (% any, _ one character).

  simpleaide db rows users --sort created_at:desc --where 'age >= 18' --limit 20
  simpleaide db rows users --where 'email like %@example.org' --where 'deleted is-null'
"""

QUERY_DESCRIPTION = """\
Run one SQL statement and print its rows as a table, then (N rows), marked truncated
when it returned more than --limit, and the time it took. A write prints the rows it
changed. The SQL comes from the argument, or from stdin when the argument is - or
absent (and stdin is not a terminal). The global --timeout is the statement's time
limit here (default 30 s; the daemon stops it then). Ctrl-C cancels the statement in
the database (exit status 130). In PROD, writes are refused.

  simpleaide db query 'select id, name from users where age > ?' --param 40
  simpleaide db query --timeout 300 < report.sql
"""

EXPORT_DESCRIPTION = """\
Write all rows of a table (in key order, or --sort, filtered by --where as in db rows)
to FILE or stdout, page by page in constant memory; rows written are counted on stderr.
With -o FILE the rows go to a temporary file beside FILE, renamed to FILE once complete:
a failed or interrupted export leaves no partial file, and an existing FILE untouched.

csv (RFC 4180, CRLF line ends): a header line of column names, then one line per row.
Every text value is quoted and NULL is an empty field without quotes, so NULL and the
empty text differ: ,, is NULL, ,"", is ''. (Python 3.12's csv.QUOTE_STRINGS writes the
same; numbers are bare.) Binary values are written as hexadecimal, all their bytes;
PostgreSQL arrays as JSON text.
jsonl: one JSON object per row, {"column": value}, values exactly as the daemon sends them
(integers beyond 2^53 and numerics as strings, binary as {"$bytes": size, "hex": all}).

  simpleaide db export users --format csv -o users.csv
  simpleaide db export events --format jsonl --where 'kind = login' | gzip > logins.jsonl.gz
"""

SET_DESCRIPTION = """\
Change columns of the row whose key is KEY. The row is read first, and the change is
sent with the values read: if the row changed or went away meanwhile, nothing is
written and both versions are shown (exit status 1). --expect COL=VALUE replaces that
read with values you state: the row changes only if those columns still hold them.
Prints the row as the database stored it (triggers applied).

  simpleaide db set users 42 name=Ada 'email=ada@example.org' manager_id:=null
  simpleaide db set users 42 status=active --expect status=pending
"""

VALUES_HELP = """
Values: COL=TEXT sends TEXT, which the daemon turns into the column's type (age=36 is
the number 36 in an integer column); COL= is the empty text. COL:=JSON sends a JSON
value: COL:=null for NULL, COL:=36, COL:=true, COL:='"quoted text"', COL:='[1, 2]' for a
PostgreSQL array, COL:='{"$bytes": 3, "hex": "010203"}' for binary data. For an array
column COL='[1, 2]' is read as a JSON list too (its type, from db describe, ends in []).
A column name holding = or : is written in double quotes: '"a=b"=1'.
"""


def _table_arguments(parser: Any) -> None:
    parser.add_argument("table", metavar="TABLE", help=TABLE_HELP)
    parser.add_argument("--schema", metavar="SCHEMA", help=SCHEMA_HELP)


def _view_arguments(parser: Any) -> None:
    parser.add_argument(
        "--sort",
        action="append",
        type=sort_term,
        default=[],
        metavar="COLUMN[:desc]",
        help=SORT_HELP,
    )
    parser.add_argument(
        "--where",
        action="append",
        type=where_filter,
        default=[],
        metavar="'COLUMN OP VALUE'",
        help=WHERE_HELP,
    )


def _expect_argument(parser: Any) -> None:
    parser.add_argument(
        "--expect",
        action="append",
        type=assignment,
        default=[],
        metavar="COL=VALUE",
        help="instead of reading the row first, require these values (repeatable); they are "
        "compared with the cells as db rows --json shows them: COL=TEXT for text, COL:=JSON "
        "for a number or NULL (age:=36, email:=null)",
    )


def _query_limit(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= 100_000:
        raise argparse.ArgumentTypeError("must be between 1 and 100000")
    return value


# -- what the command line says: names, filters, sorts, values, keys --------------------------


def _usage(message: str) -> Exception:
    import argparse

    return argparse.ArgumentTypeError(message)


def _take_name(text: str, stops: str) -> tuple[str, str]:
    """The column name ``text`` starts with, and the rest: ``"double quoted"`` (a quote
    doubled inside), or everything up to one of ``stops``."""
    if text.startswith('"'):
        i, name = 1, []
        while True:
            end = text.find('"', i)
            if end < 0:
                raise _usage(f"a column name's closing double quote is missing in {text!r}")
            name.append(text[i:end])
            if text.startswith('"', end + 1):  # "" stands for one quote
                name.append('"')
                i = end + 2
                continue
            return "".join(name), text[end + 1 :]
    end = next((i for i, char in enumerate(text) if char in stops), len(text))
    return text[:end], text[end:]


def _value(text: str, what: str) -> str:
    """A filter's value: trimmed, or exactly what is inside 'single quotes' ('' for one)."""
    text = text.strip()
    if text.startswith("'") and (len(text) < 2 or not text.endswith("'")):
        raise _usage(f"in {what}, the closing quote of the value is missing")
    if len(text) >= 2 and text[0] == text[-1] == "'":
        inner = text[1:-1]
        if "'" in inner.replace("''", ""):
            raise _usage(f"in {what}, a quote inside a quoted value is written twice ('')")
        return inner.replace("''", "'")
    if not text:
        raise _usage(f"{what} needs a value (write '' for the empty text)")
    return text


def _values(text: str, what: str) -> list[str]:
    """The comma-separated values of ``in``; a value in single quotes may hold commas."""
    items: list[str] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] == "'":
            j, parts = i + 1, []
            while True:
                end = text.find("'", j)
                if end < 0:
                    raise _usage(f"a closing quote is missing in {what}")
                parts.append(text[j:end])
                if text.startswith("'", end + 1):
                    parts.append("'")
                    j = end + 2
                    continue
                break
            items.append("".join(parts))
            i = end + 1
            while i < n and text[i] in " \t":
                i += 1
            if i < n and text[i] != ",":
                raise _usage(f"a comma is missing after a quoted value in {what}")
        else:
            end = text.find(",", i)
            end = n if end < 0 else end
            item = text[i:end].strip()
            if not item:
                raise _usage(f"an empty value in {what} (write '' for the empty text)")
            items.append(item)
            i = end
        if i >= n:
            return items
        i += 1  # the comma


def where_filter(text: str) -> dict[str, Any]:
    """``--where 'COLUMN OP VALUE'`` as a ``db.rows`` filter; the value stays text."""
    what = f"--where {text!r}"
    column, rest = _take_name(text.strip(), _NAME_STOPS)
    if not column:
        raise _usage(f"{what}: it starts with a column name")
    rest = rest.lstrip()
    op = None
    for symbol, meaning in _SYMBOL_OPS:
        if rest.startswith(symbol):
            op, rest = meaning, rest[len(symbol) :]
            break
    if op is None:
        words = rest.split(None, 1)
        first = words[0].lower() if words else ""
        tail = words[1] if len(words) > 1 else ""
        if first == "is" and tail.strip().lower() == "null":
            op, rest = "is-null", ""
        elif first == "is" and " ".join(tail.lower().split()) == "not null":
            op, rest = "not-null", ""
        elif first in _WORD_OPS:
            op, rest = first, tail
        else:
            raise _usage(
                f"{what}: no operator after {column!r}; use one of "
                "= != < <= > >= like ilike in is-null not-null (quote a column name holding "
                'spaces in double quotes: "my column" = 1)'
            )
    if op in ("is-null", "not-null"):
        if rest.strip():
            raise _usage(f"{what}: {op} takes no value")
        return {"column": column, "op": op}
    if op == "in":
        return {"column": column, "op": op, "value": _values(rest, what)}
    return {"column": column, "op": op, "value": _value(rest, what)}


def sort_term(text: str) -> dict[str, Any]:
    """``--sort COLUMN[:desc|:asc]`` as a ``db.rows`` sort term."""
    if text.startswith('"'):
        column, rest = _take_name(text, "")
    else:
        column, colon, direction = text.rpartition(":")
        if not colon or direction.lower() not in ("asc", "desc"):
            column, rest = text, ""
        else:
            rest = ":" + direction
    direction = rest.lower()
    if direction not in ("", ":asc", ":desc") or not column:
        raise _usage(f"--sort {text!r}: write COLUMN, COLUMN:asc or COLUMN:desc")
    return {"column": column, "desc": True} if direction == ":desc" else {"column": column}


def assignment(text: str) -> tuple[str, Any]:
    """``COL=TEXT`` (a text value) or ``COL:=JSON`` (a typed one: null, 12, true, …)."""
    if text.startswith('"'):
        column, rest = _take_name(text, "")
        typed = rest.startswith(":=")
        if not (typed or rest.startswith("=")):
            raise _usage(f"{text!r}: write COL=VALUE or COL:=JSON")
        value = rest[2:] if typed else rest[1:]
    else:
        column, equals, value = text.partition("=")
        if not equals:
            raise _usage(f"{text!r}: write COL=VALUE or COL:=JSON (COL:=null for NULL)")
        typed = column.endswith(":")
        column = column.removesuffix(":")
    if not column:
        raise _usage(f"{text!r}: the column name is missing before =")
    if not typed:
        return column, value
    try:
        return column, fastjson.loads(value)
    except ValueError:
        raise _usage(
            f"{text!r}: after := comes a JSON value (null, 12, true, '\"text\"'); "
            "for text write COL=TEXT"
        ) from None


def row_key(text: str) -> list[Any]:
    """KEY: comma-separated values (as text), or a JSON list."""
    if text.lstrip().startswith("["):
        try:
            key = fastjson.loads(text)
        except ValueError:
            key = None
        if not isinstance(key, list) or not key:
            raise _usage(f"key {text!r} is not a JSON list of values")
        return key
    return [part.strip() for part in text.split(",")]


# -- cells as text ---------------------------------------------------------------------------


def cell_text(value: Any) -> tuple[str, bool]:
    """A cell for the table: its text, and whether that text is a marker (NULL, <3 bytes>)
    rather than the value itself, shown dimmed on a terminal."""
    if value is None:
        return "NULL", True
    if isinstance(value, bool):
        return ("true" if value else "false"), False
    if isinstance(value, (int, float)):
        return repr(value), False
    if isinstance(value, str):
        return value, False
    if isinstance(value, dict) and "$bytes" in value:
        size = value["$bytes"]
        return f"<{size} {'byte' if size == 1 else 'bytes'}>", True
    if isinstance(value, dict) and "$truncated" in value:
        return f"{value.get('text', '')}{tables.ELLIPSIS} ({value['$truncated']} chars)", False
    return fastjson.dumps(value), False


def value_words(value: Any) -> str:
    """A value in a sentence: NULL, a number, "quoted text", <3 bytes>."""
    if isinstance(value, str):
        return fastjson.dumps(value)
    return cell_text(value)[0]


_GAP = "  "
_NARROWEST = 6  # a cut column keeps at least this many characters (or its own width)


def grid(
    headers: Sequence[str],
    rows: Sequence[Sequence[tuple[str, bool]]],
    width: int | None = None,
    *,
    dim: bool | None = None,
) -> str:
    """Rows of cells as a table that fits ``width`` (the terminal's by default, no limit
    without one): when too wide, the widest columns are cut to the same width, with ``…``.
    Markers (NULL, <N bytes>) are dimmed when ``dim`` (default: stdout is a terminal and
    ``NO_COLOR`` is unset or empty)."""
    if width is None:
        width = tables.terminal_width()
    if dim is None:
        dim = tables.colour_wanted()
    shown = [
        [(escape(text if marker or dim else _unmistakable(text)), marker) for text, marker in row]
        for row in rows
    ]
    names = [escape(name) for name in headers]
    natural = [columns_of(name) for name in names]
    for row in shown:
        for i, (text, _) in enumerate(row):
            natural[i] = max(natural[i], columns_of(text))
    widths = list(natural)
    if width is not None and natural:
        room = width - len(_GAP) * (len(natural) - 1)
        if sum(natural) > room:
            floors = [min(w, _NARROWEST) for w in natural]

            def total(cap: int) -> int:
                return sum(min(w, max(cap, f)) for w, f in zip(natural, floors, strict=True))

            low, high = 0, max(natural)  # the largest cap whose total fits
            while low < high:
                middle = (low + high + 1) // 2
                if total(middle) <= room:
                    low = middle
                else:
                    high = middle - 1
            widths = [min(w, max(low, f)) for w, f in zip(natural, floors, strict=True)]
    lines = []
    for row in [[(name, False) for name in names], *shown]:
        cells = []
        for (text, marker), w in zip(row, widths, strict=True):
            cut = clip_columns(text, w)
            pad = " " * (w - columns_of(cut))
            cells.append(f"{_DIM}{cut}{_PLAIN}{pad}" if marker and dim else cut + pad)
        lines.append(_GAP.join(cells))
    return "\n".join(line.rstrip() for line in lines)


def _unmistakable(text: str) -> str:
    """A text cell shown where marks are not dimmed: in double quotes (JSON) when it could be
    read as a mark (NULL, <3 bytes>) or as such a quoted text itself."""
    looks_marked = text == "NULL" or (
        text.startswith("<") and (text.endswith(" bytes>") or text.endswith(" byte>"))
    )
    quoted = len(text) >= 2 and text[0] == text[-1] == '"'
    return fastjson.dumps(text) if looks_marked or quoted else text


def columns_of(text: str) -> int:
    """How many terminal columns ``text`` takes: East Asian wide characters take two, and
    combining marks none (they are drawn on the character before them)."""
    if text.isascii():
        return len(text)
    import unicodedata

    return sum(
        0
        if unicodedata.category(char) in ("Mn", "Me")
        else 2
        if unicodedata.east_asian_width(char) in "WF"
        else 1
        for char in text
    )


def clip_columns(text: str, width: int) -> str:
    """``text`` cut to ``width`` terminal columns, ending with ``…`` when cut."""
    if columns_of(text) <= width:
        return text
    if text.isascii():
        return tables.clip(text, width)
    kept, used = [], 1  # the ellipsis takes one column
    for char in text:
        used += columns_of(char)
        if used > width:
            break
        kept.append(char)
    return "".join(kept) + tables.ELLIPSIS if width > 0 else ""


# -- reading ---------------------------------------------------------------------------------


def db_status(session: Session, args: Args) -> int:
    """``simpleaide db status``."""
    return reply(args, session.call("db.status"), _show_status)


def _show_status(db: dict[str, Any]) -> None:
    # Not probed yet (the first probe is waiting for an answer): neither on nor off, and no
    # error known yet rather than none.
    checking = bool(db.get("checking")) and not db["connected"]
    state = "connected" if db["connected"] else "checking (no answer yet)" if checking else "OFF"
    error = [] if checking and not db.get("error") else [("error", db.get("error") or "none")]
    print(
        tables.fields(
            [
                ("database", state),
                ("type", db.get("type") or "–"),
                *_target_fields(db),
                ("env", str(db.get("env"))),
                ("read-only", "yes" if db.get("readOnly") else "no"),
                ("latency", tables.latency(db.get("latencyMs"))),
                *error,
                ("warnings", "; ".join(db.get("warnings") or []) or "none"),
                ("checked", tables.local_time(db.get("checkedAt"))),
            ]
        )
    )


def _target_fields(db: dict[str, Any]) -> list[tuple[str, str]]:
    """Which database: the SQLite file, or the PostgreSQL server's host, port, database
    and user (never a password: the daemon sends none). A PostgreSQL target with no part told
    while not connected may be one the daemon could not read (no psycopg, a URL libpq reads
    otherwise than meant): not "libpq's defaults" then, but not shown."""
    target = db.get("target")
    if not isinstance(target, dict):
        return [("target", "none configured")]
    fields: list[tuple[str, str]] = []
    secret = target.get("vaultSecret")
    if secret is not None:
        fields.append(("url", f"from the vault (secret {secret})"))
    if target.get("type") == "sqlite":
        return [*fields, ("file", str(target.get("path")))]
    if target.get("type") is None:
        return [*fields, ("target", "known once the vault is unlocked")]
    parts = ("host", "port", "dbname", "user")
    if not db["connected"] and not any(target.get(name) for name in parts):
        see = " (see the error)" if db.get("error") else ""
        return [*fields, ("target", f"host, port, dbname and user not shown{see}")]
    unset = "not in the URL (libpq's default)"
    return [
        *fields,
        *((name, str(target.get(name) or unset)) for name in parts),
    ]


def _key_words(key: Any) -> str:
    if isinstance(key, list):
        return ", ".join(key)
    return str(key) if key else "none (not editable)"


def db_tables(session: Session, args: Args) -> int:
    """``simpleaide db tables``."""
    return reply(args, session.call("db.tables"), _show_tables)


def _show_tables(found: list[dict[str, Any]]) -> None:
    if not found:
        print("no tables", file=sys.stderr)
        return
    rows = [
        [
            str(t.get("schema") or ""),
            str(t["name"]),
            str(t.get("kind", "")),
            "?" if t.get("rowEstimate") is None else f"~{t['rowEstimate']}",
            "yes" if t.get("editable") else "no",
            _key_words(t.get("key")),
        ]
        for t in found
    ]
    print(tables.render(["SCHEMA", "NAME", "KIND", "ROWS", "EDITABLE", "KEY"], rows, elastic=5))


def db_describe(session: Session, args: Args) -> int:
    """``simpleaide db describe``."""
    found = session.call("db.describe", table=args.table, schema=args.schema)
    return reply(args, found, _show_description)


def _yes(flag: Any) -> str:
    return "yes" if flag else ""


def _show_description(d: dict[str, Any]) -> None:
    print(
        tables.fields(
            [
                ("table", f"{d.get('schema')}.{d.get('name')}"),
                ("kind", str(d.get("kind"))),
                ("editable", "yes" if d.get("editable") else "no"),
                ("row key", _key_words(d.get("key"))),
                ("primary key", ", ".join(d.get("primaryKey") or []) or "none"),
            ]
        )
    )
    columns = [
        [
            c["name"],
            c.get("type") or "",
            "yes" if c.get("nullable") else "NOT NULL",
            "" if c.get("default") is None else str(c["default"]),
            _yes(c.get("primaryKey")),
            str(c.get("generated") or ""),
        ]
        for c in d.get("columns") or []
    ]
    print()
    headers = ["COLUMN", "TYPE", "NULL", "DEFAULT", "PRIMARY KEY", "GENERATED"]
    print(tables.render(headers, columns, elastic=3))
    indexes = [
        [
            i.get("name") or "",
            ", ".join("(expression)" if c is None else c for c in i.get("columns") or []),
            _yes(i.get("unique")),
            _yes(i.get("primary")),
            _yes(i.get("partial")),
        ]
        for i in d.get("indexes") or []
    ]
    print()
    if indexes:
        headers = ["INDEX", "COLUMNS", "UNIQUE", "PRIMARY", "PARTIAL"]
        print(tables.render(headers, indexes, elastic=1))
    else:
        print("no indexes")
    keys = [
        [
            f.get("name") or "",
            ", ".join(f.get("columns") or []),
            f"{f.get('refSchema')}.{f.get('refTable')} ({', '.join(f.get('refColumns') or [])})",
            str(f.get("onUpdate") or ""),
            str(f.get("onDelete") or ""),
        ]
        for f in d.get("foreignKeys") or []
    ]
    print()
    if keys:
        headers = ["FOREIGN KEY", "COLUMNS", "REFERENCES", "ON UPDATE", "ON DELETE"]
        print(tables.render(headers, keys, elastic=2))
    else:
        print("no foreign keys")
    if d.get("ddl"):
        print()
        print(escape(str(d["ddl"]), keep="\n\t"))


def _rows_params(args: Args) -> dict[str, Any]:
    return {
        "table": args.table,
        "schema": args.schema,
        "sort": args.sort or None,
        "filters": args.where or None,
    }


def db_rows(session: Session, args: Args) -> int:
    """``simpleaide db rows``: one page, and how to get the next one."""
    page = session.call(
        "db.rows", **_rows_params(args), limit=args.limit, after=args.after, before=args.before
    )
    return reply(args, page, lambda page: _show_page(page, args))


def _show_page(page: dict[str, Any], args: Args) -> None:
    names = [str(c["name"]) for c in page.get("columns") or []]
    print(grid(names, [[cell_text(cell) for cell in row] for row in page.get("rows") or []]))
    shown = len(page.get("rows") or [])
    count = page.get("count") or {}
    total = count.get("value")
    if total is None:
        summary = f"{tables.plural(shown, 'row')} shown"
    else:
        about = "" if count.get("exact") else "about "
        summary = f"{shown} of {about}{tables.plural(total, 'row')}"
    print(f"({summary})")
    for word, option, cursor in (("next", "--after", "next"), ("previous", "--before", "prev")):
        if page.get(cursor):
            print(escape(f"{word} page: {_page_command(args, option, page[cursor])}"))


def _page_command(args: Args, option: str, cursor: str) -> str:
    """The ``db rows`` command that shows the page at ``cursor``: the same table, sort
    and filters (a cursor belongs to them) and page size."""
    import shlex

    words = ["simpleaide", "db", "rows", args.table]
    if args.schema:
        words += ["--schema", args.schema]
    for term in args.sort:
        words += ["--sort", _sort_words(term)]
    for term in args.where:
        words += ["--where", _where_words(term)]
    if args.limit:
        words += ["--limit", str(args.limit)]
    return shlex.join([*words, option, cursor])


def _name_words(name: str) -> str:
    if name and not any(char in _NAME_STOPS + '":' for char in name):
        return name
    return '"' + name.replace('"', '""') + '"'


def _sort_words(term: dict[str, Any]) -> str:
    return _name_words(term["column"]) + (":desc" if term.get("desc") else "")


def _quoted(value: str, *, in_list: bool = False) -> str:
    """A filter value as ``--where`` reads it back: bare when it can be."""
    bare = value and value == value.strip() and not value.startswith("'")
    if bare and not (in_list and "," in value):
        return value
    return "'" + value.replace("'", "''") + "'"


def _where_words(term: dict[str, Any]) -> str:
    column, op = _name_words(term["column"]), term["op"]
    if op in ("is-null", "not-null"):
        return f"{column} {op}"
    if op == "in":
        return f"{column} in {','.join(_quoted(v, in_list=True) for v in term['value'])}"
    return f"{column} {op} {_quoted(term['value'])}"


# -- SQL -------------------------------------------------------------------------------------


def db_query(session: Session, args: Args) -> int:
    """``simpleaide db query``: one statement; Ctrl-C cancels it in the database."""
    sql = args.sql
    if sql == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise CliError("give the SQL as an argument, or on stdin (- or none)", EXIT_USAGE)
        try:
            sql = sys.stdin.buffer.read().decode("utf-8")
        except UnicodeDecodeError:
            raise CliError("the SQL on stdin is not UTF-8 text", EXIT_USAGE) from None
    if not sql.strip():
        raise CliError("the SQL statement is empty", EXIT_USAGE)
    # The connection waits as long as the statement may run, and a little more for the
    # daemon's own answer when it stops the statement at its limit.
    limit_ms = max(1, round(args.timeout * 1000))
    session.timeout = args.timeout + QUERY_REPLY_MARGIN
    query_id = f"cli-{os.getpid()}-{os.urandom(6).hex()}"
    try:
        result = session.call(
            "db.query",
            sql=sql,
            params=args.params or None,
            limit=args.limit,
            timeoutMs=limit_ms,
            queryId=query_id,
        )
    except KeyboardInterrupt:
        # This connection is busy waiting for the answer: the cancel takes another one.
        _cancel(session.socket_path, query_id)
        raise CliError("cancelled", EXIT_INTERRUPTED) from None
    return reply(args, result, _show_query)


def _cancel(socket_path: str, query_id: str) -> None:
    """Ask the daemon, on a second connection, to stop the statement ``query_id``; the
    daemon also stops it when the first connection closes, so a failure here is quiet."""
    try:
        with Client(socket_path, timeout=CANCEL_WAIT) as client:
            client.call("db.cancel", queryId=query_id)
    except ClientError:
        pass


def _show_query(result: dict[str, Any]) -> None:
    names = [str(c["name"]) for c in result.get("columns") or []]
    rows = result.get("rows") or []
    count = result.get("rowCount")
    elapsed = result.get("elapsedMs")
    took = "" if elapsed is None else f" in {_milliseconds(float(elapsed))} ms"
    if not names:  # a statement that returns no rows: how many it changed
        if not isinstance(count, int) or count < 0:
            print(f"(done){took}")  # the database did not say how many rows
        else:
            print(f"({count} {'row' if count == 1 else 'rows'} affected){took}")
        return
    print(grid(names, [[cell_text(cell) for cell in row] for row in rows]))
    count = len(rows) if not isinstance(count, int) or count < 0 else count
    cut = ", truncated" if result.get("truncated") else ""
    print(f"({count} {'row' if count == 1 else 'rows'}{cut}){took}")


def _milliseconds(ms: float) -> str:
    return f"{ms:.1f}" if ms < 100 else f"{ms:.0f}"


# -- export ----------------------------------------------------------------------------------


def csv_field(value: Any) -> str:
    """One CSV field: text quoted (a quote doubled), NULL empty and bare, numbers bare,
    bytes as hex (quoted: it is text)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dict) and "$bytes" in value:
        text = str(value["hex"])
    elif isinstance(value, str):
        text = value
    else:
        text = fastjson.dumps(value)
    return '"' + text.replace('"', '""') + '"'


def _csv_line(values: Sequence[Any]) -> str:
    return ",".join(csv_field(value) for value in values) + "\r\n"


def _jsonl_line(names: Sequence[str], values: Sequence[Any]) -> str:
    return fastjson.dumps(dict(zip(names, values, strict=True))) + "\n"


def _whole(value: Any) -> bool:
    """Whether a cell from a page holds its whole value (not cut for display)."""
    if isinstance(value, dict):
        if "$truncated" in value:
            return False
        if "$bytes" in value:
            return len(str(value.get("hex", ""))) == 2 * int(value["$bytes"])
    return True


def _pages(session: Session, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every page of a table, following ``next`` to the end."""
    after = None
    while True:
        page = session.call(
            "db.rows", **params, limit=EXPORT_PAGE_ROWS, cellBytes=EXPORT_CELL_BYTES, after=after
        )
        yield page
        after = page.get("next")
        if not after:
            return


def _complete(
    session: Session, args: Args, names: Sequence[str], row: list[Any], key: Any
) -> list[Any]:
    """``row`` with every cell cut for display fetched whole (``db.cell``, by its key)."""
    for i, value in enumerate(row):
        if _whole(value):
            continue
        if not key:
            raise CliError(
                f"{args.table} has no row key, so a value of {names[i]} too large to come "
                "in a page cannot be read whole; export it with db query instead"
            )
        row[i] = session.call(
            "db.cell", table=args.table, schema=args.schema, key=key, column=names[i]
        )["value"]
    return row


def db_export(session: Session, args: Args) -> int:
    """``simpleaide db export``: the whole table, page by page, to a file or stdout."""
    from simpleaide.commands.artifacts import _Output  # the same safe-replace as artifacts get

    to_file = args.output not in (None, "-")
    terminal = not to_file and sys.stdout.isatty()
    target: _Output | None = None
    out: BinaryIO | _Output | None = None
    written = 0
    try:
        for page in _pages(session, _rows_params(args)):
            names = [str(c["name"]) for c in page.get("columns") or []]
            keys = page.get("keys") or []
            lines = []
            # The page is made whole before anything is written: a value that cannot be
            # read whole stops the export before the header reaches stdout.
            for i, row in enumerate(page.get("rows") or []):
                row = _complete(session, args, names, list(row), keys[i] if i < len(keys) else None)
                if args.format == "csv":
                    lines.append(_csv_line(row))
                else:
                    lines.append(_jsonl_line(names, row))
            if out is None:  # the first page came: the table exists, the file may be made
                if to_file:
                    target = out = _Output(args.output)  # its failed writes: one line
                else:
                    sys.stdout.flush()
                    out = sys.stdout.buffer
                if args.format == "csv":
                    _write(out, _csv_line(names), terminal)
            _write(out, "".join(lines), terminal)
            written += len(lines)
        if target is not None:
            target.commit()
        elif out is not None:
            sys.stdout.buffer.flush()
    except BaseException:
        if target is not None:
            target.discard()  # never a partial export under FILE's name
        raise
    where = args.output if to_file else "stdout"
    print(
        f"exported {written} {'row' if written == 1 else 'rows'} to {escape(where)}",
        file=sys.stderr,
    )
    return EXIT_OK


def _write(out: BinaryIO | _Output, text: str, terminal: bool) -> None:
    if terminal:  # data must not drive the terminal
        text = escape(text, keep="\r\n\t")
    # A lone surrogate (text SQLite stored as invalid UTF-8) becomes \udc80: in JSON, the
    # escape that stands for it.
    out.write(text.encode("utf-8", "backslashreplace"))


# -- edits -----------------------------------------------------------------------------------


def _table_info(session: Session, args: Args) -> dict[str, Any]:
    """The table's description, with a plain refusal when its rows cannot be edited."""
    info: dict[str, Any] = session.call("db.describe", table=args.table, schema=args.schema)
    if not info.get("editable") or not info.get("key"):
        kind = "a view" if info.get("kind") == "view" else "a table without a row key"
        raise CliError(
            f"{args.table} is {kind} (no primary key, rowid or non-null unique index): "
            "its rows cannot be edited here; use db query"
        )
    return info


def _key_columns(info: dict[str, Any]) -> list[str]:
    key = info["key"]
    return ["rowid"] if key == "rowid" else [str(name) for name in key]


def _check_key(args: Args, info: dict[str, Any]) -> None:
    columns = _key_columns(info)
    if len(args.key) != len(columns):
        raise CliError(
            f"the key of {args.table} is ({', '.join(columns)}): give {len(columns)} "
            f"{'value' if len(columns) == 1 else 'values, comma-separated'}, "
            f"not {len(args.key)}",
            EXIT_USAGE,
        )


def _key_text(args: Args, info: dict[str, Any]) -> str:
    pairs = zip(_key_columns(info), args.key, strict=True)
    return ", ".join(f"{name}={cell_text(value)[0]}" for name, value in pairs)


def _read_row(session: Session, args: Args, info: dict[str, Any]) -> dict[str, Any]:
    """The row's values now, whole, by column: what the edit expects to find."""
    names = [str(c["name"]) for c in info.get("columns") or []]
    key = info["key"]
    if key == "rowid":
        # A table whose key is its hidden rowid: no column to filter on, so cell by cell (a
        # change between two reads shows as a conflict, never as a lost update).
        values = []
        try:
            for name in names:
                cell = session.call(
                    "db.cell", table=args.table, schema=args.schema, key=args.key, column=name
                )
                values.append(cell["value"])
        except NotFound:
            raise CliError(f"no row of {args.table} has the key {_key_text(args, info)}") from None
        return dict(zip(names, values, strict=True))
    filters = [
        {"column": column, "op": "=", "value": value}
        for column, value in zip(key, args.key, strict=True)
    ]
    page = session.call(
        "db.rows",
        table=args.table,
        schema=args.schema,
        filters=filters,
        limit=2,
        cellBytes=READ_CELL_BYTES,
    )
    if not page.get("rows"):
        raise CliError(f"no row of {args.table} has the key {_key_text(args, info)}")
    page_names = [str(c["name"]) for c in page["columns"]]
    row = _complete(session, args, page_names, list(page["rows"][0]), page["keys"][0])
    return dict(zip(page_names, row, strict=True))


def _lists(values: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
    """``values`` with the text typed for a PostgreSQL array column (its type ends in
    ``[]``) read as a JSON list: the daemon takes an array as a list, never as text."""
    types = {str(c["name"]): str(c.get("type") or "") for c in info.get("columns") or []}
    out = dict(values)
    for name, value in values.items():
        if not isinstance(value, str) or not types.get(name, "").strip().endswith("[]"):
            continue
        try:
            listed = fastjson.loads(value)
        except ValueError:
            listed = None
        if not isinstance(listed, list):
            raise CliError(
                f"{name} is an array ({types[name]}): give it as a JSON list, "
                f"like {name}='[1, 2]' or {name}:='[\"a\", \"b\"]'",
                EXIT_USAGE,
            )
        out[name] = listed
    return out


def _expectation(session: Session, args: Args, info: dict[str, Any]) -> dict[str, Any]:
    if args.expect:
        return dict(args.expect)
    return _read_row(session, args, info)


def _edit(session: Session, args: Args, change: dict[str, Any], info: dict[str, Any]) -> Any:
    """Send one change; a conflict is told in words, with the row as read and as it is."""
    try:
        return session.call("db.edit", table=args.table, schema=args.schema, changes=[change])
    except Conflict as exc:
        data = exc.data
        if not (isinstance(data, dict) and "current" in data):
            raise  # a constraint: the daemon's message names it
        _tell_conflict(args, info, change.get("expect") or {}, data)
        raise _Quiet(EXIT_ERROR) from None


class _Quiet(Exception):
    """The command already told what went wrong; it ends with ``code``."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def _tell_conflict(
    args: Args, info: dict[str, Any], expect: dict[str, Any], data: dict[str, Any]
) -> None:
    def say(line: str) -> None:
        print(escape(line), file=sys.stderr)

    where = f"the row of {args.table} with key {_key_text(args, info)}"
    current = data.get("current")
    if current is None:
        say(f"simpleaide: {where} is gone (deleted since it was read); nothing was changed")
        return
    say(f"simpleaide: {where} changed since it was read; nothing was changed")
    names = [str(c["name"]) if isinstance(c, dict) else str(c) for c in data.get("columns") or []]
    now = dict(zip(names, current, strict=False))
    differ = [name for name in expect if name in now and now[name] != expect[name]]
    for name in differ or list(expect):
        say(f"  {name}: read as {value_words(expect[name])}, now {value_words(now.get(name))}")
    others = [name for name in names if name not in expect]
    if others and not differ:
        say("  the row as it is now:")
        for name in others:
            say(f"  {name}: {value_words(now.get(name))}")


def _show_edited(verb: str, args: Args) -> Callable[[dict[str, Any]], None]:
    def show(result: dict[str, Any]) -> None:
        # Column names are data too (any text): escaped like the values.
        names = [escape(str(c["name"])) for c in result.get("columns") or []]
        entry = (result.get("rows") or [None])[0]
        if entry is None:
            print(escape(f"{verb} 1 row of {args.table}"))
            return
        key = ", ".join(cell_text(value)[0] for value in entry.get("key") or [])
        print(escape(f"{verb} the row of {args.table} with key ({key}):"))
        width = tables.terminal_width()
        room = None if width is None else width - max(map(columns_of, names), default=0) - 2
        pairs = []
        for name, value in zip(names, entry["row"], strict=False):
            text = escape(cell_text(value)[0])
            pairs.append((name, text if room is None else clip_columns(text, max(room, 8))))
        print(tables.fields(pairs))

    return show


def _run_edit(
    session: Session, args: Args, make: Callable[[dict[str, Any]], dict[str, Any]], verb: str
) -> int:
    try:
        info = _table_info(session, args)
        if hasattr(args, "key"):
            _check_key(args, info)
        change = make(info)
        result = _edit(session, args, change, info)
    except _Quiet as quiet:
        return quiet.code
    return reply(args, result, _show_edited(verb, args))


def db_set(session: Session, args: Args) -> int:
    """``simpleaide db set``: update one row, if it is still as read."""

    def change(info: dict[str, Any]) -> dict[str, Any]:
        values = _lists(dict(args.values), info)
        expect = _expectation(session, args, info)
        if args.expect:  # typed by the user: an array's text is a JSON list there too
            expect = _lists(expect, info)
        return {"op": "update", "key": args.key, "values": values, "expect": expect}

    return _run_edit(session, args, change, "updated")


def db_insert(session: Session, args: Args) -> int:
    """``simpleaide db insert``: one new row."""
    return _run_edit(
        session,
        args,
        lambda info: {"op": "insert", "values": _lists(dict(args.values), info)},
        "inserted",
    )


def db_delete(session: Session, args: Args) -> int:
    """``simpleaide db delete``: delete one row, if it is still as read."""

    def change(info: dict[str, Any]) -> dict[str, Any]:
        return {"op": "delete", "key": args.key, "expect": _expectation(session, args, info)}

    return _run_edit(session, args, change, "deleted")
