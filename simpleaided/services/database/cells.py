"""How the grid reads cells: the SQL terms that cut each value for display (``cellBytes``)
inside the database, and how a row of them becomes wire cells (README: The grid).

A page is mostly cells that go on the wire exactly as the driver reads them: integers within
±(2^53-1), finite floats, booleans, text that was not cut, NULL. The page's ``SELECT`` says,
per row, whether any cell is *not* such a one (a cut text, bytes, a big integer, an infinity,
an array): such a row carries a note with its cells' whole sizes and is decoded cell by cell
here; every other row goes to the wire as the tuple the driver made, with no Python per cell.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from simpleaided.domain import grid

# Beyond this many columns a page notes every row (its sizes, always): one condition per
# column would make an expression deeper than SQLite allows (SQLITE_MAX_EXPR_DEPTH).
NOTED_COLUMNS_MAX = 200

_FLOAT_MAX = "1.7976931348623157e308"  # SQLite has no infinity literal: beyond it is one


def pg_shape(type_name: str) -> str:
    """How a PostgreSQL column is read: ``integer``, ``float``, ``boolean`` (the driver's
    values are exact), ``numeric`` (as the server prints it: ``10.00`` keeps its scale),
    ``array``, ``bytes``, or ``text`` (everything else, as the server prints it: JSON
    unchanged, timestamps with their zone, intervals as PostgreSQL writes them)."""
    if type_name.strip().endswith("[]"):
        return "array"
    kind = grid.value_kind("postgres", type_name)
    return kind if kind in ("integer", "float", "boolean", "numeric", "bytes") else "text"


def display_cell(value: Any, size: int | None, cell_chars: int) -> Any:
    """A cell as read by :meth:`Reader.display`: cut values marked with their whole size."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        return grid.bytes_cell(len(raw) if size is None else size, raw)
    if isinstance(value, str) and size is not None and size > cell_chars:
        return grid.truncated_cell(size, value)
    return grid.to_wire(value)


@dataclass(frozen=True)
class PageTerms:
    """The select list of a page (:meth:`Reader.page`) and how its rows are read: ``width``
    cells, then the row's note (``NULL`` when every cell goes on the wire as read, else its
    cells' whole sizes), then the order's columns whole (the page's boundaries)."""

    sql: str
    width: int
    cell_chars: int
    dialect: str

    def cells(self, rows: Sequence[Sequence[Any]]) -> tuple[list[Sequence[Any]], int]:
        """The rows' wire cells (the driver's own values where a row has no note), and the
        largest whole size the notes give (characters of text, bytes of binary; 0 without
        a note): each note is read once."""
        width, chars = self.width, self.cell_chars
        notes = [row[width] for row in rows]
        if notes.count(None) == len(notes):  # the usual page: no cell to decode
            return [row[:width] for row in rows], 0
        out: list[Sequence[Any]] = []
        largest = 0
        for row in rows:
            note = row[width]
            if note is None:
                out.append(row[:width])
                continue
            sizes = _sizes(note, width) if self.dialect == "sqlite" else note
            largest = max(largest, *(size for size in sizes if size is not None), 0)
            out.append([display_cell(row[i], sizes[i], chars) for i in range(width)])
        return out, largest

    def bounds(self, row: Sequence[Any]) -> tuple[Any, ...]:
        """A row's values of the order's columns, whole."""
        return tuple(row[self.width + 1 :])


def _sqlite_size(q: str) -> str:
    """A SQLite value's size: characters of text (bytes for a text holding NUL, where
    ``length()`` stops counting), bytes of a blob."""
    return (
        f"CASE WHEN typeof({q}) = 'text' AND instr({q}, char(0)) > 0"
        f" THEN length(CAST({q} AS BLOB)) ELSE length({q}) END"
    )


def _joined(texts: Sequence[str]) -> str:
    """SQLite text of ``texts`` joined by commas, nested by groups: a flat chain of ``||`` is
    an expression as deep as it is long, and SQLite refuses one deeper than 1,000."""
    if not texts:
        return "''"
    groups = [texts[i : i + _GROUP] for i in range(0, len(texts), _GROUP)]
    return " || ',' || ".join("(" + " || ',' || ".join(g) + ")" for g in groups)


_GROUP = 50


def _sizes(note: str, width: int) -> list[int | None]:
    sizes = [int(size) if size else None for size in note.split(",")]
    if len(sizes) != width:  # the note is ours: a mismatch is a bug, never a user's input
        raise ValueError(f"a page row's note has {len(sizes)} sizes for {width} columns")
    return sizes


@dataclass(frozen=True)
class Reader:
    """The SQL that reads a table's cells for display (cut at ``cell_chars``) and its
    columns' exact values (for keys and page boundaries)."""

    dialect: str
    quote: Callable[[str], str]
    types: dict[str, str] = field(default_factory=dict)

    def display(self, column: str, cell_chars: int) -> str:
        """Two select terms: the value cut for display, and its size when it may be cut
        (decoded by :func:`display_cell`)."""
        return f"{self._cut(column, cell_chars)}, {self._size(column)}"

    def exact(self, column: str) -> str:
        """One select term: the column's whole value, in the form boundaries are bound in."""
        q = self.quote(column)
        if self.dialect == "postgres" and pg_shape(self.types.get(column, "bigint")) == "text":
            return f"{q}::text"
        return q

    def page(
        self, names: Sequence[str], order: Sequence[grid.SortKey], cell_chars: int
    ) -> PageTerms:
        """A page's select list: each of the columns ``names`` cut for display, the row's
        note, the order's columns whole (see :class:`PageTerms`)."""
        cut = [self._cut(name, cell_chars) for name in names]
        sizes = [self._size(name) for name in names]
        if self.dialect == "sqlite":
            listed = _joined([f"ifnull({s}, '')" for s in sizes])
        else:
            listed = f"ARRAY[{', '.join(sizes)}]::int8[]" if sizes else "'{}'::int8[]"
        odd = [t for t in (self._odd(name, cell_chars) for name in names) if t is not None]
        if len(names) > NOTED_COLUMNS_MAX:
            note = listed
        elif odd:
            note = f"CASE WHEN {' OR '.join(odd)} THEN {listed} END"
        else:
            note = "NULL"
        exact = [self.exact(s.column) for s in order]
        sql = ", ".join([*cut, note, *exact])
        return PageTerms(sql, len(names), cell_chars, self.dialect)

    def _cut(self, column: str, cell_chars: int) -> str:
        """The value as sent for display: text cut to ``cell_chars``, bytes to their first
        ``BYTES_SHOWN``, numeric as the server prints it."""
        q = self.quote(column)
        if self.dialect == "sqlite":
            return (
                f"CASE typeof({q}) WHEN 'text' THEN substr({q}, 1, {cell_chars})"
                # substr() of an empty blob is NULL: an empty blob is sent as itself.
                f" WHEN 'blob' THEN CASE WHEN length({q}) = 0 THEN {q}"
                f" ELSE substr({q}, 1, {grid.BYTES_SHOWN}) END ELSE {q} END"
            )
        shape = pg_shape(self.types[column])
        if shape == "bytes":
            return f"substring({q} from 1 for {grid.BYTES_SHOWN})"
        if shape == "numeric":
            return f"{q}::text"  # Decimal's text: the scale kept ("10.00")
        if shape == "text":
            return f"left({q}::text, {cell_chars})"
        return q

    def _size(self, column: str) -> str:
        """The whole size of a value that may be cut (characters of text, bytes of binary),
        else NULL."""
        q = self.quote(column)
        if self.dialect == "sqlite":
            return f"CASE WHEN typeof({q}) IN ('text', 'blob') THEN {_sqlite_size(q)} END"
        shape = pg_shape(self.types[column])
        if shape == "bytes":
            return f"octet_length({q})"
        if shape == "text":
            return f"char_length({q}::text)"
        return "NULL::int"

    def _odd(self, column: str, cell_chars: int) -> str | None:
        """A condition true when the column's value cannot go on the wire as the driver
        reads it (``None``: never); NULL counts as false."""
        q = self.quote(column)
        safe = grid.SAFE_INTEGER
        if self.dialect == "sqlite":  # any column may hold any storage class
            return (
                f"CASE typeof({q}) WHEN 'text' THEN {_sqlite_size(q)} > {cell_chars}"
                f" WHEN 'integer' THEN {q} NOT BETWEEN -{safe} AND {safe}"
                f" WHEN 'real' THEN abs({q}) > {_FLOAT_MAX} WHEN 'blob' THEN 1 ELSE 0 END"
            )
        type_name = self.types[column]
        shape = pg_shape(type_name)
        if shape == "integer":  # smallint, integer and oid always fit
            wide = type_name.strip().lower() in ("bigint", "int8")
            return f"{q} NOT BETWEEN -{safe} AND {safe}" if wide else None
        if shape == "float":  # NaN and the infinities are sent as words
            return f"NOT ({q} > '-Infinity' AND {q} < 'Infinity')"
        if shape == "text":
            return f"char_length({q}::text) > {cell_chars}"
        if shape in ("bytes", "array"):
            return f"{q} IS NOT NULL"
        return None  # boolean, numeric (read as text)
