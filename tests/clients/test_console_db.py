"""The console's DB area (README: The grid) in headless Chromium, against the real daemon, its
HTTP shim and a real SQLite file of 200,000 rows: the table list, sort, filters, a scroll far
down that keeps the DOM small, NULL apart from '', whole values, editing and saving in DEV (the
file changes), a conflict (nothing applied, both versions shown), no edit control at all in
PROD, the SQL console with a cancelled query, and an export."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import shutil
import sqlite3
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import pytest
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, expect

from tests.support.daemon import running_daemon
from tests.support.sandbox import simpleaide_command

ROWS = 200_000
ROW_PX = 30  # a grid row's height (grid.js ROW_PX, console.css --grid-row)
LONG_NOTE = "long " * 1000  # 5,000 characters: more than a grid cell carries (1,024)
BLOB = bytes(range(100))  # more bytes than a grid cell shows in hex (64)
NOTES = Path("/work/notes/screens")  # where the lead looks at the screenshots
FAST_KDF = {"vault.kdf_memory_kib": 8192, "vault.kdf_iterations": 1, "vault.kdf_lanes": 1}
# A query that never ends by itself (until cancelled, or its time limit).
ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"


def seed(path: Path) -> None:
    """The items table: note is '' for ids ≡ 1 (mod 7), NULL for ids ≡ 0, else text; id 5's
    note is the text 'NULL'; id 3's note is long; id 2 holds 100 bytes; a view beside it."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, note TEXT,"
            " qty INTEGER, data BLOB)"
        )

        def note(i: int) -> str | None:
            if i == 3:
                return LONG_NOTE
            if i == 5:
                return "NULL"
            return None if i % 7 == 0 else "" if i % 7 == 1 else f"note {i}"

        db.executemany(
            "INSERT INTO items VALUES (?, ?, ?, ?, ?)",
            (
                (i, f"item {i:06d}", note(i), i % 100, BLOB if i == 2 else None)
                for i in range(1, ROWS + 1)
            ),
        )
        db.execute("CREATE VIEW cheap AS SELECT id, name FROM items WHERE qty < 10")
        # No row key, and id 2's 100 bytes come cut in a page: they cannot be read whole.
        db.execute("CREATE VIEW blobs AS SELECT id, data FROM items WHERE id <= 3")
        db.execute("ANALYZE")  # the row estimates come from sqlite_stat1
        db.commit()


def read(path: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return db.execute(sql, args).fetchall()


@dataclass
class DbConsole:
    url: str  # the console's address with its key, on the DB area
    base: str
    db: Path


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seeded file, made once; each test copies it (edits stay in their test)."""
    path = tmp_path_factory.mktemp("grid") / "seed.sqlite3"
    seed(path)
    return path


@pytest.fixture
def screens(tmp_path: Path) -> Path:
    folder = tmp_path / "screens"
    folder.mkdir()
    return folder


async def shoot(
    page: Page, screens: Path, name: str, *, keep: bool = False, whole_page: bool = True
) -> None:
    """A screenshot in the test's folder; `keep`: a copy for the lead too."""
    path = screens / f"db-{name}.png"
    if whole_page:
        await page.evaluate("window.scrollTo(0, 0)")  # the sticky header where it belongs
    await page.screenshot(path=path, full_page=whole_page)
    if keep:
        NOTES.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, NOTES / path.name)


@contextlib.asynccontextmanager
async def db_console(
    isolated_env: Path, socket_path: Path, seeded: Path, env: str = "DEV", url: str | None = None
) -> AsyncIterator[DbConsole]:
    """A daemon whose `env` profile's database is a copy of the seeded file (or `url`), with
    its shim."""
    db = isolated_env / f"{env.lower()}.sqlite3"
    shutil.copy(seeded, db)
    settings = {
        "env": env,
        f"db.{env}.url": url or f"sqlite://{db}",
        "http.listen": "127.0.0.1:0",
        "vault.file": str(isolated_env / "data" / "vault.json"),
        **FAST_KDF,
    }
    async with running_daemon(socket_path, isolated_env / "state", **settings):
        done = await anyio.run_process(
            [simpleaide_command(), "--socket", str(socket_path), "open", "db", "--print"],
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode()
        url = done.stdout.decode().strip()
        parts = urlsplit(url)
        yield DbConsole(url, f"{parts.scheme}://{parts.netloc}", db)


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    made = await browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    try:
        yield made
    finally:
        await made.close()


@pytest.fixture
def errors() -> Iterator[list[str]]:
    """The page's console errors and uncaught exceptions: none expected."""
    found: list[str] = []
    yield found
    assert found == [], "console errors:\n" + "\n".join(found)


@pytest.fixture
async def page(context: BrowserContext, errors: list[str]) -> Page:
    opened = await context.new_page()

    def logged(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    opened.on("console", logged)
    opened.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
    return opened


@pytest.fixture
async def dev(isolated_env: Path, socket_path: Path, seeded: Path) -> AsyncIterator[DbConsole]:
    async with db_console(isolated_env, socket_path, seeded) as made:
        yield made


async def open_db(page: Page, console: DbConsole) -> None:
    """Open the console on the DB area and wait for the items table's first rows."""
    await page.goto(console.url)
    await expect(page).to_have_url(f"{console.base}/#/db")
    await expect(row(page, 0)).to_be_visible()


def row(page: Page, index: int) -> Any:
    """The grid's row at result index `index` (row number index + 1)."""
    return page.locator(f".grid-row[data-index='{index}']")


def cell(page: Page, index: int, column: int) -> Any:
    return row(page, index).locator(f".grid-cell[data-col='{column}']")


async def rendered_rows(page: Page) -> int:
    return int(await page.locator(".grid-row").count())


async def scroll_to_row(page: Page, index: int) -> None:
    """Scroll the grid so row `index` is at the top (rows are ROW_PX tall, as grid.js says)."""
    await page.locator(".grid-viewport").evaluate(
        f"(el) => {{ el.scrollTop = {index} * {ROW_PX}; }}"
    )


ID, NAME, NOTE, QTY, DATA = range(5)


# -- browsing -------------------------------------------------------------------------------


async def test_the_table_list_the_grid_null_apart_from_empty_and_whole_values(
    dev: DbConsole, page: Page, screens: Path
) -> None:
    await open_db(page, dev)
    items = page.locator(".table-pick[data-table='items']")
    await expect(items).to_contain_text("≈ 200,000 rows")
    await expect(items).to_contain_text("editable")
    await expect(items).to_have_attribute("aria-current", "true")
    view = page.locator(".table-pick[data-table='cheap']")
    await expect(view).to_contain_text("view")
    await expect(view).to_contain_text("read only (view)")
    await expect(page.locator(".db-mode")).to_contain_text("DEV: editable")
    await expect(page.locator(".grid-colhead .colname")).to_have_text(
        ["id", "name", "note", "qty", "data"]
    )
    await expect(cell(page, 0, NAME)).to_have_text("item 000001")
    # id 1: '' (an empty cell); id 7: NULL (marked, dimmed); id 5: the text "NULL" (plain).
    await expect(cell(page, 0, NOTE).locator(".cell-empty")).to_have_count(1)
    await expect(cell(page, 0, NOTE).locator(".cell-null")).to_have_count(0)
    await expect(cell(page, 6, NOTE).locator(".cell-null")).to_have_text("NULL")
    await expect(cell(page, 4, NOTE).locator(".cell-null")).to_have_count(0)
    await expect(cell(page, 4, NOTE)).to_have_text("NULL")
    font = "(el) => getComputedStyle(el).fontStyle"
    styles = [
        await cell(page, 6, NOTE).locator(".cell-null").evaluate(font),
        await cell(page, 4, NOTE).locator("span").evaluate(font),
    ]
    assert styles == ["italic", "normal"]
    # Bytes: size and hex; the long note: cut, with a way to read it whole (db.cell).
    await expect(cell(page, 1, DATA)).to_contain_text("100 B · 000102030405")
    await expect(cell(page, 2, NOTE).locator(".cell-whole")).to_have_text("show whole")  # id 3
    await shoot(page, screens, "dev-grid", keep=True)
    await cell(page, 2, NOTE).locator(".cell-whole").click()
    dialog = page.locator("dialog.cell-dialog")
    await expect(dialog).to_be_visible()
    whole = await dialog.locator("pre").text_content()
    assert whole == LONG_NOTE
    await dialog.get_by_role("button", name="Close").click()
    await expect(dialog).to_have_count(0)
    # Narrow and dark: nothing wider than the screen (the grid scrolls inside its box).
    await page.emulate_media(color_scheme="dark")
    await page.set_viewport_size({"width": 360, "height": 720})
    await expect(cell(page, 0, NAME)).to_be_visible()
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"the DB area scrolls sideways by {overflow} px at 360 px"
    await page.locator(".table-view").scroll_into_view_if_needed()
    await shoot(page, screens, "dev-grid-360-dark", keep=True, whole_page=False)
    await page.set_viewport_size({"width": 1280, "height": 900})
    await page.emulate_media(color_scheme="light")
    # The view: its rows, and no edit control for them.
    await view.click()
    await expect(page.locator(".table-view")).to_have_attribute("data-table", "cheap")
    await expect(cell(page, 0, 1)).to_have_text(re.compile(r"^item \d{6}$"))
    await expect(page.locator(".grid-edit-tools")).to_be_hidden()


async def test_sorting_by_a_header_and_filtering_a_column(
    dev: DbConsole, page: Page, screens: Path
) -> None:
    await open_db(page, dev)
    sort_id = page.locator(".grid-colhead[data-col='0'] button.sort")
    await sort_id.click()  # ascending
    await expect(page.locator(".grid-colhead[data-col='0']")).to_have_attribute(
        "aria-sort", "ascending"
    )
    await sort_id.click()  # descending
    await expect(page.locator(".grid-colhead[data-col='0']")).to_have_attribute(
        "aria-sort", "descending"
    )
    await expect(cell(page, 0, ID)).to_have_text("200000")
    await expect(cell(page, 1, ID)).to_have_text("199999")
    await sort_id.click()  # unsorted again: the key's order
    await expect(page.locator(".grid-colhead[data-col='0']")).to_have_attribute("aria-sort", "none")
    await expect(cell(page, 0, ID)).to_have_text("1")
    # Sort by note: NULL is the smallest value, so it comes first ascending.
    await page.locator(".grid-colhead[data-col='2'] button.sort").click()
    await expect(cell(page, 0, NOTE).locator(".cell-null")).to_have_count(1)  # NULL first

    form = page.locator(".filter-form")
    await form.locator("select[name=filter-column]").select_option("qty")
    await form.locator("select[name=filter-op]").select_option("=")
    await form.locator("input[name=filter-value]").fill("42")
    await form.get_by_role("button", name="Filter").click()
    await expect(page.locator(".filter-chip")).to_contain_text("qty")
    await expect(cell(page, 0, QTY)).to_have_text("42")
    # Sorted by note (NULL first) among qty = 42: ids 42, 742, … hold NULL (≡ 0 mod 7).
    await expect(cell(page, 0, ID)).to_have_text("42")
    await page.locator(".grid-colhead[data-col='2'] button.sort").click()  # note descending
    await page.locator(".grid-colhead[data-col='2'] button.sort").click()  # unsorted
    await expect(cell(page, 1, ID)).to_have_text("142")
    await form.locator("select[name=filter-column]").select_option("note")
    await form.locator("select[name=filter-op]").select_option("is-null")
    await expect(form.locator("input[name=filter-value]")).to_be_hidden()
    await form.get_by_role("button", name="Filter").click()
    await expect(page.locator(".filter-chip")).to_have_count(2)
    # qty = 42 and note NULL: ids ≡ 42 (mod 100) and ≡ 0 (mod 7): 42, 742, 1442, …
    await expect(cell(page, 0, ID)).to_have_text("42")
    await expect(cell(page, 1, ID)).to_have_text("742")
    await expect(page.locator(".grid-count")).to_have_text(re.compile(r"286 rows"))
    await shoot(page, screens, "dev-filtered", keep=True)
    await page.locator(".filter-chip").first.get_by_role("button").click()
    await page.locator(".filter-chip").first.get_by_role("button").click()
    await expect(page.locator(".filter-chip")).to_have_count(0)
    await expect(cell(page, 1, ID)).to_have_text("2")


async def test_scrolling_far_keeps_few_rows_in_the_page_and_shows_the_right_ones(
    dev: DbConsole, page: Page, screens: Path
) -> None:
    await open_db(page, dev)
    # Scroll down as a user does, a screen at a time, past several pages.
    for n in range(1, 31):
        await scroll_to_row(page, n * 25)
        await expect(cell(page, n * 25, ID)).to_have_text(str(n * 25 + 1))
    assert await rendered_rows(page) < 60
    # The thumb dragged far: the pages on the way are read in order, the rows shown are right.
    await scroll_to_row(page, 150_000)
    await expect(cell(page, 150_000, ID)).to_have_text("150001", timeout=30_000)
    await expect(cell(page, 150_000, NAME)).to_have_text("item 150001")
    assert await rendered_rows(page) < 60
    held = await page.locator(".grid-where").text_content()
    assert held and re.search(r"Rows 150,001–", held), held
    loaded = re.search(r"rows ([\d,]+)–([\d,]+) loaded", held or "")
    assert loaded, held
    first, last = (int(v.replace(",", "")) for v in loaded.groups())
    assert last - first < 5000, "the window of loaded rows stays bounded"
    await shoot(page, screens, "dev-deep", keep=True)
    # To the very end: the last row, and the count becomes exact.
    await page.locator(".grid-viewport").evaluate("(el) => { el.scrollTop = el.scrollHeight; }")
    await expect(page.locator(".grid-count")).to_have_text("200,000 rows", timeout=30_000)
    await page.locator(".grid-viewport").evaluate("(el) => { el.scrollTop = el.scrollHeight; }")
    await expect(cell(page, ROWS - 1, ID)).to_have_text(str(ROWS))
    assert await rendered_rows(page) < 60
    # And back up a little: the pages before the window are read again.
    await scroll_to_row(page, ROWS - 4000)
    await expect(cell(page, ROWS - 4000, ID)).to_have_text(str(ROWS - 3999), timeout=30_000)
    assert await rendered_rows(page) < 60


# -- editing (DEV) --------------------------------------------------------------------------


async def edit(page: Page, index: int, column: int, text: str) -> None:
    await cell(page, index, column).dblclick()
    field = cell(page, index, column).locator("input.cell-input")
    await expect(field).to_be_focused()
    await field.fill(text)
    await field.press("Enter")
    await expect(cell(page, index, column)).to_have_class(re.compile("cell-staged"))


async def test_edits_are_staged_reviewed_and_saved_in_one_go(
    dev: DbConsole, page: Page, screens: Path
) -> None:
    sent: list[dict[str, Any]] = []  # the db.edit requests the page sends

    def frame(payload: str | bytes) -> None:
        message = json.loads(payload)
        if isinstance(message, dict) and message.get("method") == "db.edit":
            sent.append(message["params"])

    page.on("websocket", lambda ws: ws.on("framesent", frame))
    await open_db(page, dev)
    await edit(page, 9, NAME, "renamed")
    await edit(page, 10, QTY, "7")
    await cell(page, 11, NOTE).dblclick()  # note → NULL with the explicit control
    await cell(page, 11, NOTE).locator("button.cell-set-null").click()
    await expect(cell(page, 11, NOTE).locator(".cell-null")).to_have_count(1)
    # The keyboard: a click puts it on a cell, the arrows move, Enter edits (here the long
    # note of id 3, cut in the grid: the editor holds it whole).
    await cell(page, 1, NAME).click()
    await page.keyboard.press("ArrowDown")
    await page.keyboard.press("ArrowRight")
    await expect(cell(page, 2, NOTE)).to_have_class(re.compile("cell-active"))
    await page.keyboard.press("Enter")
    field = cell(page, 2, NOTE).locator("input.cell-input")
    await expect(field).to_have_value(LONG_NOTE)
    await field.press("End")
    await field.press_sequentially("!")
    await field.press("Enter")
    await expect(page.locator(".grid-viewport")).to_be_focused()
    await expect(cell(page, 2, NOTE)).to_have_class(re.compile("cell-staged"))
    await row(page, 12).locator("button.row-delete").click()
    await expect(row(page, 12)).to_have_class(re.compile("row-deleted"))
    await page.locator(".grid-insert").click()
    new = page.locator(".grid-new-rows tr[data-insert]")
    await new.locator("input[name=name]").fill("brand new")
    await new.locator("input[name=note]").fill("x")
    await new.locator("input[name=note]").fill("")  # typed, then emptied: ''
    await page.locator(".grid-review").click()
    review = page.locator(".grid-review-panel")
    await expect(review.locator(".review-list li")).to_have_count(6)
    await expect(review.locator(".review-list li[data-op='insert']")).to_contain_text("brand new")
    await expect(review.locator(".review-list li[data-op='delete']")).to_contain_text("id = 13")
    await review.locator("details summary").click()
    await shoot(page, screens, "dev-review", keep=True)
    shown = await review.locator("pre").text_content()
    assert shown is not None
    assert '"op": "update"' in shown and '"expect"' in shown and '"renamed"' in shown
    assert '"qty": "7"' in shown  # typed text goes as text: the daemon binds it by type
    assert read(dev.db, "SELECT name FROM items WHERE id = 10") == [("item 000010",)]
    assert sent == []  # nothing sent before Save
    await page.locator(".grid-save").click()
    await expect(page.locator(".grid-messages")).to_contain_text("Saved 6 changes.")
    assert len(sent) == 1 and json.loads(shown) == sent[0]  # one request, the one reviewed
    assert [c["op"] for c in sent[0]["changes"]] == [
        "insert",
        "update",
        "update",
        "update",
        "update",
        "delete",
    ]
    update = sent[0]["changes"][1]
    assert update["key"] == [10] and update["values"] == {"name": "renamed"}
    assert update["expect"] == {  # the row as read
        "id": 10,
        "name": "item 000010",
        "note": "note 10",
        "qty": 10,
        "data": None,
    }
    assert read(dev.db, "SELECT name, qty FROM items WHERE id IN (10, 11) ORDER BY id") == [
        ("renamed", 10),
        ("item 000011", 7),
    ]
    assert read(dev.db, "SELECT note IS NULL FROM items WHERE id = 12") == [(1,)]
    assert read(dev.db, "SELECT note FROM items WHERE id = 3") == [(LONG_NOTE + "!",)]
    assert read(dev.db, "SELECT count(*) FROM items WHERE id = 13") == [(0,)]
    assert read(dev.db, "SELECT note FROM items WHERE name = 'brand new'") == [("",)]
    await expect(cell(page, 9, NAME)).to_have_text("renamed")
    await expect(page.locator(".cell-staged")).to_have_count(0)
    await expect(page.locator(".grid-save")).to_be_disabled()


async def test_a_row_changed_underneath_is_a_conflict_shown_both_ways(
    dev: DbConsole, page: Page, screens: Path
) -> None:
    await open_db(page, dev)
    await edit(page, 19, NAME, "mine")
    await edit(page, 20, NAME, "also mine")
    with contextlib.closing(sqlite3.connect(dev.db)) as db:
        db.execute("UPDATE items SET name = 'theirs' WHERE id = 20")
        db.commit()
    await page.locator(".grid-save").click()
    conflict = page.locator(".grid-conflict")
    await expect(conflict).to_be_visible()
    await expect(conflict).to_contain_text("Nothing was saved")
    await expect(conflict).to_contain_text("id = 20")
    differing = conflict.locator("tr.conflict-differs")
    await expect(differing.locator("th")).to_have_text(["name"])
    await expect(differing.locator("td")).to_have_text(["item 000020", "mine", "theirs"])
    await shoot(page, screens, "dev-conflict", keep=True)
    # Nothing applied: row 21's change waited with it.
    assert read(dev.db, "SELECT id, name FROM items WHERE id IN (20, 21) ORDER BY id") == [
        (20, "theirs"),
        (21, "item 000021"),
    ]
    await conflict.get_by_role("button", name=re.compile("Re-apply")).click()
    await expect(conflict).to_be_hidden()
    await expect(cell(page, 19, NAME)).to_have_text("mine")  # still staged over "theirs"
    await page.locator(".grid-save").click()
    await expect(page.locator(".grid-messages")).to_contain_text("Saved 2 changes.")
    assert read(dev.db, "SELECT name FROM items WHERE id IN (20, 21) ORDER BY id") == [
        ("mine",),
        ("also mine",),
    ]
    # Again, and this time the other way out: discard mine, the row shows as it is now.
    await edit(page, 19, NAME, "again")
    with contextlib.closing(sqlite3.connect(dev.db)) as db:
        db.execute("DELETE FROM items WHERE id = 20")
        db.commit()
    await page.locator(".grid-save").click()
    await expect(conflict).to_contain_text("was deleted")
    await expect(conflict.get_by_role("button", name=re.compile("Re-apply"))).to_have_count(0)
    await conflict.get_by_role("button", name="Discard my change").click()
    await expect(page.locator(".grid-save")).to_be_disabled()
    await expect(cell(page, 19, ID)).to_have_text("21")  # row 20 is gone from the grid too


def db_edits(page: Page) -> list[dict[str, Any]]:
    """The params of every db.edit the page sends, as it sends them."""
    sent: list[dict[str, Any]] = []

    def frame(payload: str | bytes) -> None:
        message = json.loads(payload)
        if isinstance(message, dict) and message.get("method") == "db.edit":
            sent.append(message["params"])

    page.on("websocket", lambda ws: ws.on("framesent", frame))
    return sent


def change_note(path: Path, note: str) -> None:
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("UPDATE items SET note = ? WHERE id = 3", (note,))
        db.commit()


async def test_a_cut_value_is_edited_and_expected_whole_and_read_again_after_a_reload(
    dev: DbConsole, page: Page
) -> None:
    sent = db_edits(page)
    await open_db(page, dev)
    note = cell(page, 2, NOTE)  # id 3: the long note, cut in the grid
    field = note.locator("input.cell-input")
    await note.dblclick()
    await expect(field).to_have_value(LONG_NOTE)
    await field.press("Escape")
    # Someone else changes its end: same size, same beginning (what a cut cell shows).
    theirs = LONG_NOTE[:-1] + "X"
    change_note(dev.db, theirs)
    await page.locator(".grid-reload").click()
    await expect(page.locator(".grid-messages")).not_to_contain_text("Loading")
    await note.dblclick()
    await expect(field).to_have_value(theirs)  # read again, not the value read before
    await field.press("End")
    await field.press_sequentially("!")
    await field.press("Enter")
    await page.locator(".grid-save").click()
    await expect(page.locator(".grid-messages")).to_contain_text("Saved 1 change.")
    assert sent[-1]["changes"][0]["expect"]["note"] == theirs  # whole, as read for editing
    assert read(dev.db, "SELECT note FROM items WHERE id = 3") == [(theirs + "!",)]
    # Changed again while the editor is open: the whole value read is the expectation, so
    # the save is a conflict, even though size and beginning still match.
    await note.dblclick()
    await expect(field).to_have_value(theirs + "!")
    change_note(dev.db, LONG_NOTE[:-1] + "Y!")
    await field.press("End")
    await field.press_sequentially("?")
    await field.press("Enter")
    await page.locator(".grid-save").click()
    await expect(page.locator(".grid-conflict")).to_contain_text("Nothing was saved")
    assert sent[-1]["changes"][0]["expect"]["note"] == theirs + "!"
    assert read(dev.db, "SELECT note FROM items WHERE id = 3") == [(LONG_NOTE[:-1] + "Y!",)]


async def test_editing_waits_while_a_save_is_on_its_way(dev: DbConsole, page: Page) -> None:
    await open_db(page, dev)
    await edit(page, 9, NAME, "first")
    lock = sqlite3.connect(dev.db, isolation_level=None)  # holds the save back
    try:
        lock.execute("BEGIN IMMEDIATE")
        await page.locator(".grid-save").click()
        await expect(page.locator(".grid-save")).to_have_text("Saving…")
        await expect(page.locator(".grid-edit-tools")).to_contain_text(
            "editing waits until the save is done"
        )
        await cell(page, 10, NAME).dblclick()
        await expect(page.locator(".grid-messages")).to_contain_text("editing waits")
        assert await page.locator("input.cell-input").count() == 0
        await expect(row(page, 10).locator("button.row-delete")).to_be_disabled()
        await expect(page.locator(".grid-insert")).to_be_disabled()
        await expect(page.locator(".grid-discard")).to_be_disabled()
    finally:
        lock.execute("COMMIT")
        lock.close()
    await expect(page.locator(".grid-messages")).to_contain_text("Saved 1 change.")
    await expect(page.locator(".staged-words")).to_have_text("No changes")
    # Editing is back, and what is staged now is kept until it is saved.
    await edit(page, 10, NAME, "second")
    await expect(page.locator(".staged-words")).to_have_text("1 change not saved")
    await page.locator(".grid-save").click()
    await expect(page.locator(".grid-messages")).to_contain_text("Saved 1 change.")
    assert read(dev.db, "SELECT name FROM items WHERE id IN (10, 11) ORDER BY id") == [
        ("first",),
        ("second",),
    ]


async def test_an_editor_whose_whole_value_came_during_a_save_does_not_open(
    dev: DbConsole, page: Page
) -> None:
    """A cut cell reads its whole value before its editor opens: if Save is pressed
    meanwhile, the editor waits like every other (its edit would be cleared with the save)."""
    sent = db_edits(page)
    await open_db(page, dev)
    await edit(page, 9, NAME, "first")
    everything = sqlite3.connect(dev.db, isolation_level=None, timeout=10)
    writes = sqlite3.connect(dev.db, isolation_level=None, timeout=10)
    try:
        everything.execute("BEGIN EXCLUSIVE")  # db.cell (a read) and db.edit both wait
        await cell(page, 2, NOTE).dblclick()  # a cut cell: its whole value is read first
        await anyio.sleep(0.3)
        await page.locator(".grid-save").click()
        await expect(page.locator(".grid-save")).to_have_text("Saving…")
        everything.execute("COMMIT")
        writes.execute("BEGIN IMMEDIATE")  # the read goes on, the save's write still waits
        await expect(page.locator(".grid-messages")).to_contain_text("editing waits")
        assert await page.locator("input.cell-input").count() == 0
    finally:
        for connection in (everything, writes):
            if connection.in_transaction:
                connection.execute("COMMIT")
            connection.close()
    await expect(page.locator(".grid-messages")).to_contain_text("Saved 1 change.")
    assert [sorted(c["values"]) for e in sent for c in e["changes"]] == [["name"]]


async def test_a_postgres_array_is_edited_as_a_json_list(
    isolated_env: Path, socket_path: Path, seeded: Path, page: Page, postgres: str
) -> None:
    import psycopg

    schema = f"console_db_{os.getpid()}_{anyio.current_time():.0f}"
    table = f"lists_{os.getpid()}"
    with psycopg.connect(postgres, autocommit=True) as db:
        db.execute(f'CREATE SCHEMA "{schema}"')
        db.execute(
            f'CREATE TABLE "{schema}"."{table}" (id int PRIMARY KEY, nums int[], tags text[])'
        )
        db.execute(f"INSERT INTO \"{schema}\".\"{table}\" VALUES (1, '{{1,2}}', '{{a,b}}')")
    try:
        async with db_console(isolated_env, socket_path, seeded, url=postgres) as console:
            sent = db_edits(page)
            await page.goto(console.url)
            await page.locator(f".table-pick[data-table='{table}']").click()
            await expect(cell(page, 0, 1)).to_have_text("[1,2]")
            await edit(page, 0, 1, "[7, 8]")
            await cell(page, 0, 2).dblclick()
            field = cell(page, 0, 2).locator("input.cell-input")
            await expect(field).to_have_value('["a","b"]')
            await field.fill("a, b, c")  # not a JSON list: refused in words, nothing staged
            await field.press("Enter")
            await expect(page.locator(".grid-messages .notice-error")).to_contain_text(
                "“tags” is a list"
            )
            await expect(page.locator(".staged-words")).to_have_text("1 change not saved")
            await page.locator(".grid-save").click()
            await expect(page.locator(".grid-messages")).to_contain_text("Saved 1 change.")
            assert sent[-1]["changes"][0]["values"] == {"nums": [7, 8]}
            with psycopg.connect(postgres) as db:
                found = db.execute(f'SELECT nums, tags FROM "{schema}"."{table}"').fetchall()
            assert found == [([7, 8], ["a", "b"])]
            await page.close()  # before its daemon stops (it would try to reconnect)
    finally:
        with psycopg.connect(postgres, autocommit=True) as db:
            db.execute(f'DROP SCHEMA "{schema}" CASCADE')


# -- PROD -----------------------------------------------------------------------------------


async def test_prod_is_read_only_with_no_edit_control_at_all(
    isolated_env: Path, socket_path: Path, seeded: Path, page: Page, screens: Path
) -> None:
    async with db_console(isolated_env, socket_path, seeded, env="PROD") as prod:
        await open_db(page, prod)
        await expect(page.locator(".db-mode")).to_contain_text("PROD: read-only")
        await expect(page.locator(".table-view .badge-readonly")).to_have_text("read-only")
        await expect(page.locator(".grid-viewport")).to_have_attribute("aria-readonly", "true")
        controls = (
            ".grid-edit-tools, .grid-save, .grid-insert, .grid-review, .grid-discard,"
            " .row-delete, .cell-set-null, .grid-review-panel, .grid-new-rows, .grid-conflict,"
            " .table-editable"
        )
        assert await page.locator(controls).count() == 0
        await cell(page, 0, NAME).dblclick()
        assert await page.locator("input.cell-input").count() == 0
        await shoot(page, screens, "prod-grid", keep=True)
        # The SQL console reads, and a write is refused in words.
        await run_sql(page, "SELECT count(*) AS n FROM items")
        await expect(page.locator(".sql-results td")).to_have_text(["200000"])
        await run_sql(page, "DELETE FROM items")
        await expect(page.locator(".sql-state .notice-error")).to_contain_text("read-only")
        assert read(prod.db, "SELECT count(*) FROM items") == [(ROWS,)]
        await page.close()  # before its daemon stops (it would try to reconnect)


# -- the SQL console and the export -----------------------------------------------------------


async def run_sql(page: Page, sql: str) -> None:
    await page.locator("#sql-text").fill(sql)
    await page.locator(".sql-run").click()


async def test_a_long_query_counts_its_time_and_is_cancelled(
    dev: DbConsole, page: Page, screens: Path
) -> None:
    await open_db(page, dev)
    await run_sql(page, "SELECT id, note FROM items WHERE id <= 8 ORDER BY id")
    await expect(page.locator(".sql-state")).to_contain_text("8 rows")
    await expect(page.locator(".sql-results tbody tr")).to_have_count(8)
    seventh = page.locator(".sql-results tbody tr").nth(6)
    await expect(seventh.locator(".cell-null")).to_have_count(1)  # id 7's note: NULL
    await run_sql(page, "SELECT id FROM items")  # more than the cap (1,000 rows)
    await expect(page.locator(".sql-truncated")).to_contain_text("truncated")
    await run_sql(page, ENDLESS)
    timer = page.locator(".sql-timer")
    await expect(timer).to_have_text(re.compile(r"Running… [1-9]\.\d s"))
    await expect(page.locator(".sql-cancel")).to_be_enabled()
    await shoot(page, screens, "dev-query-running", keep=True)
    await page.locator(".sql-cancel").click()
    await expect(page.locator(".sql-state .notice-error")).to_have_text("The query was cancelled.")
    await expect(timer).to_have_text(re.compile(r"Stopped after"))
    await expect(page.locator(".sql-run")).to_be_enabled()
    # The database answers as before.
    await run_sql(page, "SELECT name FROM items WHERE id = 2")
    await expect(page.locator(".sql-results td")).to_have_text(["item 000002"])


async def test_an_export_pages_through_the_filtered_rows_into_a_download(
    dev: DbConsole, page: Page
) -> None:
    await open_db(page, dev)
    form = page.locator(".filter-form")
    await form.locator("select[name=filter-column]").select_option("qty")
    await form.locator("input[name=filter-value]").fill("1")
    await form.get_by_role("button", name="Filter").click()
    await expect(cell(page, 1, ID)).to_have_text("101")
    async with page.expect_download() as waiting:
        await page.locator(".export-csv").click()
    download = await waiting.value
    assert download.suggested_filename == "items.csv"
    text = Path(await download.path()).read_text()
    lines = list(csv.reader(io.StringIO(text)))
    assert lines[0] == ["id", "name", "note", "qty", "data"]
    assert len(lines) == 1 + 2000  # ids ≡ 1 (mod 100): 2,000 of them, over several pages
    assert lines[1][:4] == ["1", "item 000001", "", "1"]
    # NULL is an empty field, '' a quoted empty one: id 1's note is '', id 1001's is NULL
    # (1001 ≡ 0 mod 7).
    raw = text.splitlines()
    assert raw[1].startswith('1,item 000001,"",1,')
    assert next(r for r in raw if r.startswith("1001,")) == "1001,item 001001,,1,"
    await expect(page.locator(".grid-messages")).to_contain_text("Exported 2,000 rows")
    # JSON lines carry every value whole: the long note (cut in the grid) and all 100 bytes
    # (the grid shows 64), read cell by cell (db.cell) on the way.
    await page.locator(".filter-chip button").click()
    await form.locator("select[name=filter-column]").select_option("id")
    await form.locator("select[name=filter-op]").select_option("<=")
    await form.locator("input[name=filter-value]").fill("3")
    await form.get_by_role("button", name="Filter").click()
    await expect(cell(page, 2, ID)).to_have_text("3")
    async with page.expect_download() as waiting:
        await page.locator(".export-jsonl").click()
    download = await waiting.value
    assert download.suggested_filename == "items.jsonl"
    records = [json.loads(r) for r in Path(await download.path()).read_text().splitlines()]
    assert [r["id"] for r in records] == [1, 2, 3]
    assert records[0]["note"] == "" and records[0]["data"] is None
    assert records[1]["data"] == {"$bytes": 100, "hex": BLOB.hex()}
    assert records[2]["note"] == LONG_NOTE


async def test_an_export_writes_numbers_as_the_daemon_sent_them(dev: DbConsole, page: Page) -> None:
    # JavaScript reads 3.0 as 3 and 1e+16 as 10000000000000000: an export writes what the
    # daemon sent. Integers beyond 2^53 come as text anyway. The rows are keyed by the float
    # itself, and one holds a text too long for a page: it is read whole by that key.
    long_tag = "long " * 20_000  # 100,000 characters: more than a page's 64 KiB
    with contextlib.closing(sqlite3.connect(dev.db)) as db:
        db.execute("CREATE TABLE measures (x REAL NOT NULL PRIMARY KEY, n INTEGER, tags TEXT)")
        db.executemany(
            "INSERT INTO measures VALUES (?, ?, ?)",
            [(3.0, 1, long_tag), (0.1, 2**60, None), (1e16, -2, "")],
        )
        db.commit()
    await open_db(page, dev)
    await page.locator(".table-pick[data-table='measures']").click()
    await expect(cell(page, 2, 1)).to_have_text("-2")
    async with page.expect_download() as waiting:
        await page.locator(".export-csv").click()
    text = Path(await (await waiting.value).path()).read_text()
    # In the key's order, as the daemon wrote them.
    assert text.splitlines() == [
        "x,n,tags",
        "0.1,1152921504606846976,",
        f"3.0,1,{long_tag}",
        '1e+16,-2,""',
    ]
    async with page.expect_download() as waiting:
        await page.locator(".export-jsonl").click()
    lines = Path(await (await waiting.value).path()).read_text().splitlines()
    assert lines == [
        '{"x":0.1,"n":"1152921504606846976","tags":null}',
        f'{{"x":3.0,"n":1,"tags":"{long_tag}"}}',
        '{"x":1e+16,"n":-2,"tags":""}',
    ]


async def test_an_export_without_a_row_key_stops_at_a_value_it_cannot_read_whole(
    dev: DbConsole, page: Page
) -> None:
    downloads: list[Any] = []
    page.on("download", lambda d: downloads.append(d))
    await open_db(page, dev)
    await page.locator(".table-pick[data-table='blobs']").click()
    await expect(cell(page, 1, 1)).to_contain_text("100 B")
    for fmt in ("csv", "jsonl"):
        await page.locator(f".export-{fmt}").click()
        await expect(page.locator(".grid-messages .notice-error")).to_have_text(
            "Cannot export the table: blobs has no row key, so a value of data too large to"
            " come in a page cannot be read whole; nothing was downloaded."
        )
    assert downloads == []
