"""The daemon's own first refusal of a write in PROD, before the database sees the SQL.

A lexical classifier, not a parser: comments, string literals (``''`` escapes; PostgreSQL's
``E''`` strings and ``$tag$…$tag$`` bodies) and quoted identifiers are set aside, so a word or a
``;`` inside them counts for nothing; what remains must be one statement that starts as a read
(``SELECT``, ``WITH``, ``VALUES``, ``EXPLAIN`` of a read; ``TABLE`` and ``SHOW`` on PostgreSQL;
on SQLite a read pragma with no value) and holds no word that changes data anywhere
(``WITH x AS (DELETE …)``, ``SELECT … INTO``, ``FOR UPDATE``, ``load_extension(…)``).

It errs on the side of refusing. It is the first of several layers: the database session
itself is read-only in PROD (``simpleaided.store.sql``), so a read it lets through still cannot
write. PostgreSQL strings are read with ``standard_conforming_strings`` on (the default since
9.1): a backslash escapes nothing outside ``E''``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from simpleaided.domain.errors import ReadOnly
from simpleaided.domain.vocabulary import DbKind

# SQLite pragmas that only read, named alone or with the object they describe as argument.
READ_PRAGMAS_WITH_ARGUMENT = frozenset(
    {
        "table_info",
        "table_xinfo",
        "table_list",
        "index_list",
        "index_info",
        "index_xinfo",
        "foreign_key_list",
    }
)
# SQLite pragmas that read when named alone (and would change something given a value).
READ_PRAGMAS = frozenset(
    {
        "database_list",
        "schema_version",
        "user_version",
        "application_id",
        "data_version",
        "query_only",
        "foreign_keys",
        "encoding",
        "page_size",
        "page_count",
        "freelist_count",
        "compile_options",
        "collation_list",
        "function_list",
        "module_list",
        "pragma_list",
    }
)

_READS: dict[DbKind, frozenset[str]] = {
    "sqlite": frozenset({"SELECT", "WITH", "VALUES", "EXPLAIN", "PRAGMA"}),
    "postgres": frozenset({"SELECT", "WITH", "VALUES", "EXPLAIN", "TABLE", "SHOW"}),
}
# Words that change data wherever they stand in a statement (a CTE, an EXPLAIN ANALYZE).
_WRITES = frozenset({"INSERT", "UPDATE", "DELETE", "MERGE", "TRUNCATE", "UPSERT"})
# SQLite functions that reach outside the database (loaded code, files, raw pointers). Most
# exist only in the sqlite3 shell; a build or an extension could register them.
SQLITE_UNSAFE_FUNCTIONS = frozenset(
    {"load_extension", "writefile", "readfile", "edit", "fts3_tokenizer", "zipfile"}
)
# Families of PostgreSQL functions with effects beyond the statement, by name: replication
# slots and origins (a slot left behind keeps WAL until the disk fills), backups.
_PG_EFFECT_PATTERNS = re.compile(
    r"pg_(?!get_|stat_get_|is_)\w*(replication|_slot|backup)\w*|pg_log_backend_\w*"
    r"|pg_stat_reset\w*"
)


def _has_effects(dialect: DbKind, name: str, functions: frozenset[str]) -> bool:
    name = name.lower()
    if name in functions:
        return True
    return dialect == "postgres" and _PG_EFFECT_PATTERNS.fullmatch(name) is not None


# Functions with effects beyond the statement: files, programs, sessions, sequences.
_FUNCTIONS: dict[DbKind, frozenset[str]] = {
    "sqlite": SQLITE_UNSAFE_FUNCTIONS,
    "postgres": frozenset(
        {
            "lo_export",
            "lo_import",
            "lo_unlink",
            "lo_create",
            "lo_creat",
            "lo_put",
            "lo_from_bytea",
            "pg_file_write",
            "pg_file_rename",
            "pg_file_unlink",
            "dblink",
            "dblink_exec",
            "dblink_connect",
            "dblink_connect_u",
            "dblink_send_query",
            "nextval",
            "setval",
            "set_config",
            "pg_terminate_backend",
            "pg_cancel_backend",
            "pg_reload_conf",
            "pg_rotate_logfile",
            "pg_promote",
            "pg_switch_wal",
            "pg_create_restore_point",
            "pg_create_physical_replication_slot",
            "pg_create_logical_replication_slot",
            "pg_drop_replication_slot",
            "pg_logical_emit_message",
            "pg_advisory_lock",
            "pg_advisory_lock_shared",
            "pg_try_advisory_lock",
            "pg_try_advisory_lock_shared",
            "pg_stat_reset",
            "pg_stat_reset_shared",
            "pg_stat_reset_single_table_counters",
            "pg_stat_reset_single_function_counters",
            "pg_stat_reset_slru",
            "pg_import_system_collations",
        }
    ),
}
# Row locks: SELECT … FOR UPDATE / NO KEY UPDATE / SHARE / KEY SHARE.
_LOCK_WORDS = frozenset({"UPDATE", "SHARE", "NO", "KEY"})
_EXPLAIN_OPTIONS = frozenset({"ANALYZE", "ANALYSE", "VERBOSE", "QUERY", "PLAN"})


@dataclass(frozen=True)
class _Token:
    kind: str  # "word", "number", "punct" (one character), "string", "name" (quoted identifier)
    text: str  # a word in upper case; the character for "punct"; "" for the others
    raw: str = ""  # a word as written; a quoted name unquoted


def _refuse(what: str) -> ReadOnly:
    return ReadOnly(f"read-only in PROD: {what} is not allowed")


def _is_word_start(ch: str) -> bool:
    return ch.isalpha() or ch == "_"


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch in "_$"


def _skip_block_comment(sql: str, i: int, *, nested: bool) -> int:
    """The index after the ``*/`` closing the comment opened at ``i``; an unterminated one
    is refused (PostgreSQL says so; SQLite would read to the end)."""
    depth = 0
    n = len(sql)
    while i < n:
        if sql.startswith("/*", i):
            depth = depth + 1 if nested or depth == 0 else depth
            i += 2
        elif sql.startswith("*/", i):
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    raise _refuse("an unterminated /* comment")


def _skip_quoted(sql: str, i: int, close: str, *, backslash: bool = False) -> int:
    """The index after the quoted text opened at ``i`` (``close`` doubled is an escape)."""
    n = len(sql)
    i += 1
    while i < n:
        ch = sql[i]
        if backslash and ch == "\\":
            i += 2
            continue
        if ch == close:
            if i + 1 < n and sql[i + 1] == close:
                i += 2
                continue
            return i + 1
        i += 1
    raise _refuse("an unterminated quoted string or name")


def _dollar_tag(sql: str, i: int) -> str | None:
    """The ``$tag$`` opening a PostgreSQL dollar-quoted string at ``i``, if one does."""
    j = i + 1
    n = len(sql)
    if j < n and sql[j] == "$":
        return "$$"
    if j < n and _is_word_start(sql[j]):
        j += 1
        while j < n and (sql[j].isalnum() or sql[j] == "_"):
            j += 1
        if j < n and sql[j] == "$":
            return sql[i : j + 1]
    return None


def _tokens(dialect: DbKind, sql: str) -> list[_Token]:
    """The statement's tokens with comments dropped and quoted text reduced to a marker."""
    pg = dialect == "postgres"
    found: list[_Token] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch.isspace():
            i += 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif sql.startswith("/*", i):
            i = _skip_block_comment(sql, i, nested=pg)
        elif ch == "'":
            i = _skip_quoted(sql, i, "'")
            found.append(_Token("string", ""))
        elif ch == '"' or (not pg and ch == "`"):
            end = _skip_quoted(sql, i, ch)
            name = sql[i + 1 : end - 1].replace(ch + ch, ch)
            found.append(_Token("name", "", name))
            i = end
        elif not pg and ch == "[":
            end = sql.find("]", i)
            if end < 0:
                raise _refuse("an unterminated [name]")
            found.append(_Token("name", "", sql[i + 1 : end]))
            i = end + 1
        elif pg and ch == "$" and (tag := _dollar_tag(sql, i)) is not None:
            end = sql.find(tag, i + len(tag))
            if end < 0:
                raise _refuse("an unterminated $$ string")
            i = end + len(tag)
            found.append(_Token("string", ""))
        elif _is_word_start(ch):
            j = i + 1
            while j < n and _is_word_char(sql[j]):
                j += 1
            word = sql[i:j]
            if pg and word in ("E", "e") and j < n and sql[j] == "'":
                i = _skip_quoted(sql, j, "'", backslash=True)  # E'…\'…'
                found.append(_Token("string", ""))
                continue
            found.append(_Token("word", word.upper(), word))
            i = j
        elif ch.isdigit():
            j = i + 1
            while j < n and (_is_word_char(sql[j]) or sql[j] == "."):
                j += 1
            found.append(_Token("number", ""))
            i = j
        else:
            found.append(_Token("punct", ch))
            i += 1
    return found


def _is_keyword(tokens: list[_Token], k: int) -> bool:
    """Whether the word at ``k`` can be a keyword: not a name after ``.`` or ``AS``."""
    if k > 0:
        before = tokens[k - 1]
        if before.kind == "punct" and before.text == ".":
            return False
        if before.kind == "word" and before.text == "AS":
            return False
    return True


def _followed_by(tokens: list[_Token], k: int, text: str) -> bool:
    return k + 1 < len(tokens) and tokens[k + 1].kind == "punct" and tokens[k + 1].text == text


def _check_words(dialect: DbKind, tokens: list[_Token], lead: str) -> None:
    """Refuse a read-looking statement that writes, locks or calls a function with effects."""
    functions = _FUNCTIONS[dialect]
    for k, token in enumerate(tokens):
        called = _followed_by(tokens, k, "(")
        # By any spelling: "load_extension"(…), pg_catalog.set_config(…).
        if (
            called
            and token.kind in ("word", "name")
            and _has_effects(dialect, token.raw, functions)
        ):
            raise _refuse(f"the function {token.raw.lower()}()")
        if token.kind != "word" or not _is_keyword(tokens, k):
            continue
        word = token.text
        if called and word == "REPLACE":
            continue  # replace(text, from, to), not REPLACE INTO
        if word == "FOR" and k + 1 < len(tokens) and tokens[k + 1].text in _LOCK_WORDS:
            words = []
            for t in tokens[k + 1 : k + 4]:
                words.append(t.text)
                if t.text in ("UPDATE", "SHARE"):
                    break
            lock = " ".join(words)
            raise _refuse(f"SELECT … FOR {lock} (it locks rows)")
        if word == "INTO":
            raise _refuse(f"{lead} … INTO")
        if word in _WRITES or word == "REPLACE":
            where = "" if word == lead else f" (inside {lead})"
            raise _refuse(f"{word}{where}")


def _check_pragma(tokens: list[_Token]) -> None:
    """A SQLite pragma that only reads: ``PRAGMA [schema.]name`` or ``name(object)``."""
    rest = tokens[1:]
    if len(rest) >= 2 and rest[1].kind == "punct" and rest[1].text == ".":
        rest = rest[2:]  # the schema: main.table_info(t)
    if not rest or rest[0].kind != "word":
        raise _refuse("this PRAGMA")
    name = rest[0].raw.lower()
    tail = rest[1:]
    if not tail:
        if name in READ_PRAGMAS or name in READ_PRAGMAS_WITH_ARGUMENT:
            return
        raise _refuse(f"PRAGMA {name}")
    if name in READ_PRAGMAS_WITH_ARGUMENT and tail[0].text == "(":
        return
    if name in READ_PRAGMAS:
        raise _refuse(f"setting PRAGMA {name}")
    raise _refuse(f"PRAGMA {name}")


# Words between CREATE/DROP/ALTER and what it makes: CREATE OR REPLACE TEMP VIEW.
_MODIFIERS = frozenset(
    {
        "OR",
        "REPLACE",
        "TEMP",
        "TEMPORARY",
        "UNIQUE",
        "UNLOGGED",
        "MATERIALIZED",
        "GLOBAL",
        "LOCAL",
        "RECURSIVE",
        "TRUSTED",
        "PROCEDURAL",
        "VIRTUAL",
    }
)


def _object_words(tokens: list[_Token]) -> str:
    """``CREATE TEMP TABLE``: the statement's verb and what it makes or drops."""
    words = [tokens[0].text]
    for token in tokens[1:6]:
        if token.kind != "word":
            break
        words.append(token.text)
        if token.text not in _MODIFIERS:
            break
    return " ".join(words)


def _statement_tokens(dialect: DbKind, sql: str) -> list[_Token]:
    """The tokens of the one statement in ``sql``; a second statement is refused."""
    tokens = _tokens(dialect, sql)
    for k, token in enumerate(tokens):
        if token.kind == "punct" and token.text == ";":
            if any(not (t.kind == "punct" and t.text == ";") for t in tokens[k + 1 :]):
                raise _refuse("more than one statement (one statement at a time)")
            return tokens[:k]
    return tokens


def first_word(dialect: DbKind, sql: str) -> str | None:
    """The statement's first keyword in upper case (comments skipped); ``None`` if it has none
    or cannot be read."""
    try:
        tokens = _tokens(dialect, sql)
    except ReadOnly:
        return None
    return next((t.text for t in tokens if t.kind == "word"), None)


def statement_words(dialect: DbKind, sql: str) -> str | None:
    """What the statement does, as its first words say it (``CREATE TEMP TABLE``,
    ``DROP INDEX``, ``SAVEPOINT``); ``None`` if it cannot be read."""
    try:
        words = [t for t in _tokens(dialect, sql) if t.kind == "word"]
    except ReadOnly:
        return None
    if not words:
        return None
    if words[0].text in ("CREATE", "DROP", "ALTER"):
        return _object_words(words)
    return words[0].text


def check_read_only(dialect: DbKind, sql: str) -> None:
    """Raise ``ReadOnly`` unless ``sql`` is one statement that only reads."""
    tokens = _statement_tokens(dialect, sql)
    start = 0
    while start < len(tokens) and tokens[start].kind == "punct" and tokens[start].text == "(":
        start += 1  # (SELECT …) UNION (SELECT …)
    body = tokens[start:]
    if not body:
        return  # nothing but comments: the database runs nothing
    lead = body[0]
    if lead.kind != "word":
        raise _refuse("a statement that does not start with a keyword")
    word = lead.text
    if word not in _READS[dialect]:
        if word in ("CREATE", "DROP", "ALTER"):
            word = _object_words(body)
        raise _refuse(word)
    if word == "PRAGMA":
        _check_pragma(body)
        return
    if word == "EXPLAIN":
        _check_explained(dialect, body)
        return
    _check_words(dialect, body, word)


def _check_explained(dialect: DbKind, tokens: list[_Token]) -> None:
    """``EXPLAIN [options] statement``: the statement must be a read (EXPLAIN ANALYZE runs it)."""
    k = 1
    while k < len(tokens):
        token = tokens[k]
        if token.kind == "word" and token.text in _EXPLAIN_OPTIONS:
            k += 1
        elif dialect == "postgres" and k == 1 and token.kind == "punct" and token.text == "(":
            k = _after_group(tokens, k)  # EXPLAIN (ANALYZE, BUFFERS) …
        else:
            break
    rest = tokens[k:]
    if not rest or rest[0].kind != "word" or rest[0].text in ("EXPLAIN", "PRAGMA", "SHOW"):
        raise _refuse("EXPLAIN of this statement")
    if rest[0].text not in _READS[dialect]:
        raise _refuse(f"EXPLAIN of {rest[0].text}")
    _check_words(dialect, rest, rest[0].text)


def _after_group(tokens: list[_Token], k: int) -> int:
    """The index after the parenthesised group opening at ``k``."""
    depth = 0
    while k < len(tokens):
        token = tokens[k]
        if token.kind == "punct" and token.text == "(":
            depth += 1
        elif token.kind == "punct" and token.text == ")":
            depth -= 1
        k += 1
        if depth == 0:
            break
    return k
