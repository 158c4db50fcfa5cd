// One table in the grid (README: The grid): a virtualised view over keyset pages (db.rows),
// sort by a header's click, filters per column, whole values on demand (db.cell), an export,
// and in DEV inline editing with staged changes saved in ONE db.edit (conflicts shown).
//
// The scroll model, honestly: keyset pages read in order, so the rows held are a window of
// consecutive pages (gridwindow.js). The scrollbar spans the rows before the window (counted
// exactly, since every page was read from the first one down), the loaded rows, and the
// estimate of the rest (db.rows's count). Scrolling near an edge of the window reads the next
// or previous page; a thumb dragged far beyond it reads pages in a row towards it (bigger ones,
// dropped as they pass: memory stays bounded) while the rows there show as "loading" and a line
// says how far the reading got. Only the rows in view, and a few around them, are in the DOM.

import { errorWords, h, notice } from "../dom.js";
import { cellContent, isBytes, isWhole, showWhole } from "./gridcells.js";
import { exportTable } from "./gridexport.js";
import { conflictTable, expectOf, keyText, keyWords, reviewContent, Staged } from "./gridedit.js";
import { RowWindow } from "./gridwindow.js";

const ROW_PX = 30; // every row's height (console.css .grid-row says the same)
const PAGE_ROWS = 200; // a page read while scrolling
const FAR_PAGE_ROWS = 1000; // a page read on the way to rows far from the window
const FAR_ROWS = 2 * PAGE_ROWS; // "far": this many rows beyond the window's edge
const MARGIN_ROWS = 8; // rows kept in the DOM above and below the view
const AHEAD_ROWS = 60; // read the next page when the view comes this near the window's edge
const MAX_WINDOW_ROWS = 3000; // rows held in memory at most (beyond one page)
const MAX_CANVAS_PX = 16_000_000; // below every browser's limit on an element's height
const CELL_BYTES = 1024;
const CONFLICT = -32011;
const STALE_CURSOR = -32602;

const FILTER_OPS = [
  ["=", "="],
  ["!=", "≠"],
  ["<", "<"],
  ["<=", "≤"],
  [">", ">"],
  [">=", "≥"],
  ["like", "like"],
  ["ilike", "ilike (any case)"],
  ["in", "in (comma-separated)"],
  ["is-null", "is NULL"],
  ["not-null", "is not NULL"],
];
const NO_VALUE_OPS = new Set(["is-null", "not-null"]);
const EDIT_HINT = "Double-click a cell to edit it.";
const SAVING_WORDS = "Saving… editing waits until the save is done.";

const NUMBERS = new Intl.NumberFormat("en"); // once: toLocaleString per call is slow

/** "200,000": a number as the grid shows it. */
function number(n) {
  return NUMBERS.format(n);
}

/** A column's width in px, from its type and name: numbers narrow, text wide. */
function columnWidth(column) {
  const type = String(column.type ?? "").toLowerCase();
  const narrow = /int|bool|real|float|double|numeric|decimal|serial/.test(type);
  const base = narrow ? 96 : /date|time/.test(type) ? 190 : 200;
  return Math.min(320, Math.max(base, 9 * column.name.length + 40));
}

/** The words for a row count: "200,000 rows", "≈ 200,000 rows", "no rows". */
function rowsWords(n, exact) {
  if (n === 0 && exact) return "no rows";
  const s = `${number(n)} row${n === 1 ? "" : "s"}`;
  return exact ? s : `≈ ${s}`;
}

export class TableGrid {
  /** `table`: an entry of db.tables; `allowEdits`: DEV and not read-only (db.status). */
  constructor(rpc, table, { allowEdits }) {
    this.rpc = rpc;
    this.table = table;
    this.allowEdits = allowEdits;
    this.sort = []; // [{column, desc}]
    this.filters = []; // [{column, op, value}]
    this.columns = []; // [{name, type}] of the result
    this.described = null; // db.describe, for generated columns and the insert form
    this.editable = false; // this result's rows can be edited (DEV, a key, a table)
    this.count = { value: null, exact: false };
    this.win = new RowWindow();
    this.staged = new Staged();
    this.whole = new Map(); // "keyText\ncolumn" -> the whole value read by db.cell
    this.shown = new Map(); // row index -> {el, version, pending}
    this.version = 0; // bumped when shown rows must be built again
    this.generation = 0; // bumped by every reload: answers for an older one are dropped
    this.loading = false;
    this.failed = null; // the last page error, until the user tries again
    this.editing = null; // {i, c, input, done}
    this.active = null; // {i, c}: the cell the keyboard is on
    this.exporting = null; // {stop}
    this.saving = false; // a db.edit is on its way: editing waits (its answer clears Staged)
    this.frame = 0;
    this.alive = true;
    this._build();
  }

  // --- building ----------------------------------------------------------------------------

  _build() {
    const t = this.table;
    this.countEl = h("span", { class: "grid-count", "aria-live": "polite" });
    this.messages = h("div", { class: "grid-messages", "aria-live": "polite" });
    this.where = h("p", { class: "grid-where", "aria-live": "off" });
    this.head = h("div", { class: "grid-head", role: "row", "aria-rowindex": "1" });
    this.canvas = h("div", { class: "grid-canvas", role: "rowgroup" });
    this.viewport = h(
      "div",
      {
        class: "grid-viewport",
        role: "grid",
        tabindex: "0",
        "aria-label": `Rows of ${t.name}`,
        "aria-readonly": this.allowEdits ? null : "true",
      },
      h("div", { class: "grid-headgroup", role: "rowgroup" }, this.head),
      this.canvas,
    );
    this.viewport.addEventListener("scroll", () => this._schedule(), { passive: true });
    this.resize = new ResizeObserver(() => this._schedule());
    this.resize.observe(this.viewport);
    this.canvas.addEventListener("click", (event) => this._onClick(event));
    this.viewport.addEventListener("keydown", (event) => this._onKey(event));
    if (this.allowEdits) {
      this.canvas.addEventListener("dblclick", (event) => this._onDoubleClick(event));
    }

    const tools = h(
      "div",
      { class: "toolbar grid-tools" },
      h("button", { type: "button", class: "grid-reload", onclick: () => this.reload() }, "Reload"),
      h(
        "button",
        { type: "button", class: "export-csv", onclick: () => this._export("csv") },
        "Export CSV",
      ),
      h(
        "button",
        { type: "button", class: "export-jsonl", onclick: () => this._export("jsonl") },
        "Export JSONL",
      ),
    );
    this.filterBar = h("div", { class: "grid-filters", "aria-label": "Filters" });
    this.editBar = null;
    this.newRows = null;
    this.review = null;
    this.conflict = null;
    if (this.allowEdits) this._buildEditing(tools);

    this.element = h(
      "section",
      { class: "table-view", "aria-labelledby": "table-title", dataset: { table: t.name } },
      h(
        "div",
        { class: "table-title-line" },
        h(
          "h2",
          { id: "table-title" },
          t.schema && t.schema !== "main" ? `${t.schema}.${t.name}` : t.name,
        ),
        h("span", { class: `badge badge-kind` }, t.kind),
        this.allowEdits ? null : h("span", { class: "badge badge-readonly" }, "read-only"),
        this.countEl,
      ),
      tools,
      this.filterBar,
      this.editBar,
      this.conflict,
      this.review,
      this.newRows,
      this.messages,
      this.viewport,
      this.where,
    );
    this._renderFilters();
  }

  /** The DEV-only controls; none of them exists in PROD (not even hidden). */
  _buildEditing(tools) {
    this.saveButton = h(
      "button",
      { type: "button", class: "primary grid-save", onclick: () => this.save() },
      "Save",
    );
    this.reviewButton = h(
      "button",
      {
        type: "button",
        class: "grid-review",
        "aria-expanded": "false",
        onclick: () => this._toggleReview(),
      },
      "Review",
    );
    this.discardButton = h(
      "button",
      { type: "button", class: "grid-discard", onclick: () => this._discardAll() },
      "Discard changes",
    );
    this.insertButton = h(
      "button",
      { type: "button", class: "grid-insert", onclick: () => this._addInsert() },
      "Insert row",
    );
    this.stagedWords = h("span", { class: "staged-words", "aria-live": "polite" });
    this.editBar = h(
      "div",
      { class: "toolbar grid-edit-tools", hidden: true },
      this.insertButton,
      this.reviewButton,
      this.saveButton,
      this.discardButton,
      this.stagedWords,
      (this.editHint = h("span", { class: "hint" }, EDIT_HINT)),
    );
    this.review = h("div", {
      class: "grid-review-panel",
      hidden: true,
      "aria-label": "Changes to save",
    });
    this.conflict = h("div", { class: "grid-conflict", hidden: true, role: "alert" });
    this.newRows = h("div", { class: "grid-new-rows", hidden: true });
    this._showStaged();
  }

  // --- loading -----------------------------------------------------------------------------

  _params(extra = {}) {
    const p = { table: this.table.name, ...extra };
    if (this.table.schema) p.schema = this.table.schema;
    return p;
  }

  _rowsParams(extra) {
    const p = this._params({ limit: PAGE_ROWS, cellBytes: CELL_BYTES, ...extra });
    if (this.sort.length) p.sort = this.sort.map((s) => ({ column: s.column, desc: s.desc }));
    if (this.filters.length) p.filters = this.filters;
    return p;
  }

  /** Start over from the first row (a new sort or filter, or the user asked). */
  async reload() {
    this.generation += 1;
    const mine = this.generation;
    this._closeEditor(false);
    this.active = null; // its index names another row once the rows are read again
    this.loading = true;
    this.failed = null;
    this.win.reset();
    // A whole value read before belongs to the rows read before: edited again after a
    // reload, it must be read again, or an old value would become the edit's expectation.
    this.whole.clear();
    this.version += 1;
    this._say(notice("loading", `Loading ${this.table.name}…`));
    if (!this.described) this._describe();
    try {
      const page = await this.rpc.call("db.rows", this._rowsParams({}));
      if (mine !== this.generation || !this.alive) return;
      this.loading = false;
      this._takeColumns(page);
      this.count = page.count ?? { value: null, exact: false };
      this.win.start(page);
      this.viewport.scrollTop = 0;
      this._say();
      if (!page.rows.length)
        this._say(
          notice(
            "empty",
            this.filters.length ? "No rows match these filters." : "This table has no rows yet.",
          ),
        );
      this._layout();
      this._render();
      this._ensure();
      this._refineCount(mine);
    } catch (error) {
      if (mine !== this.generation || !this.alive) return;
      this.loading = false;
      this._say(notice("error", errorWords(error, `read ${this.table.name}`)));
    }
  }

  async _describe() {
    try {
      this.described = await this.rpc.call("db.describe", this._params());
      this.version += 1;
      this._render();
    } catch {
      // Without it generated columns are not known in advance: the daemon still refuses them.
    }
  }

  /** A better count than the page's estimate, when it comes (db.count: bounded in time). */
  async _refineCount(mine) {
    if (this.win.atEnd) return;
    try {
      const params = this._params();
      if (this.filters.length) params.filters = this.filters;
      const count = await this.rpc.call("db.count", params);
      if (mine !== this.generation || !this.alive || count?.value == null) return;
      this.count = count;
      this._layout();
      this._render();
    } catch {
      // The page's estimate stays.
    }
  }

  _takeColumns(page) {
    const same =
      this.columns.length === page.columns.length &&
      this.columns.every((c, i) => c.name === page.columns[i].name);
    this.columns = page.columns;
    this.keyColumns = page.key;
    this.editable = Boolean(this.allowEdits && page.editable && page.key);
    if (this.editBar) this.editBar.hidden = !this.editable;
    if (!same) this._renderHead();
    this._renderFilters();
    this.widths = this.columns.map((c) => `${columnWidth(c)}px`).join(" ");
    this.gutterDigits = 0;
    this.viewport.setAttribute("aria-colcount", String(this.columns.length + 1));
  }

  /** Read the page the view needs next, if any: the one after the window when the view
   * nears its bottom, the one before it when the view nears its top. */
  async _ensure() {
    if (this.loading || this.failed || !this.win.loaded || !this.alive) return;
    const { first, last } = this.range;
    const win = this.win;
    let direction = null;
    if (!win.atEnd && last + AHEAD_ROWS >= win.end) direction = "forward";
    else if (!win.atStart && first - AHEAD_ROWS < win.base) direction = "backward";
    if (!direction) {
      this._showWhere();
      return;
    }
    const far = direction === "forward" ? first > win.end + FAR_ROWS : last < win.base - FAR_ROWS;
    const limit = far ? FAR_PAGE_ROWS : PAGE_ROWS;
    const cursor =
      direction === "forward" ? { after: win.pages.at(-1).next } : { before: win.pages[0].prev };
    const mine = this.generation;
    this.loading = true;
    this._showWhere(far ? direction : null);
    try {
      const page = await this.rpc.call("db.rows", this._rowsParams({ ...cursor, limit }));
      if (mine !== this.generation || !this.alive) return;
      this.loading = false;
      const { first: from, last: to } = this.range;
      if (direction === "forward") {
        win.append(page);
        win.dropAbove(from - MARGIN_ROWS - PAGE_ROWS, MAX_WINDOW_ROWS);
      } else {
        const shift = win.prepend(page);
        win.dropBelow(to + MARGIN_ROWS + PAGE_ROWS, MAX_WINDOW_ROWS);
        if (shift) this._shiftBy(shift);
      }
      if (page.count?.value != null && !this.count.exact) this.count = page.count;
      this._layout();
      this._render();
      this._ensure();
    } catch (error) {
      if (mine !== this.generation || !this.alive) return;
      this.loading = false;
      this.failed = error;
      const again = h("button", { type: "button", onclick: () => this._tryAgain() }, "Try again");
      const reload = h(
        "button",
        { type: "button", onclick: () => this.reload() },
        "Reload the table",
      );
      this._say(
        notice(
          "error",
          errorWords(error, "read more rows"),
          " ",
          error.code === STALE_CURSOR ? reload : again,
        ),
      );
    }
  }

  _tryAgain() {
    this.failed = null;
    this._say();
    this._ensure();
  }

  // --- the scroll model --------------------------------------------------------------------

  /** How many rows the scrollbar spans: the rows up to the window's end, plus the estimate of
   * the rest (at least a page while more exist, so the bottom always reads on). */
  _total() {
    const win = this.win;
    if (!win.loaded) return 0;
    if (win.atEnd) return win.end;
    const counted = this.count.value ?? 0;
    // An exact count is trusted (one more row at least, since more exist); an estimate
    // leaves a page of room below what is loaded.
    if (this.count.exact) return Math.max(counted, win.end + 1);
    return Math.max(counted, win.end + PAGE_ROWS);
  }

  _metrics() {
    const total = this._total();
    const viewH = Math.max(ROW_PX, this.viewport.clientHeight - this.head.offsetHeight);
    const fullH = total * ROW_PX;
    return {
      total,
      viewH,
      visible: viewH / ROW_PX,
      canvasH: Math.min(fullH, MAX_CANVAS_PX),
      // More rows than an element can be tall: the scrollbar maps onto rows proportionally.
      scaled: fullH > MAX_CANVAS_PX,
    };
  }

  /** The (fractional) row at the top of the view for a scroll position. */
  _rowAt(m, scrollTop) {
    if (!m.scaled) return scrollTop / ROW_PX;
    const span = Math.max(1, m.canvasH - m.viewH);
    return (Math.min(scrollTop, span) / span) * Math.max(0, m.total - m.visible);
  }

  /** The scroll position that puts row `row` at the top of the view. */
  _scrollFor(m, row) {
    if (!m.scaled) return row * ROW_PX;
    const rows = Math.max(1, m.total - m.visible);
    return (row / rows) * Math.max(0, m.canvasH - m.viewH);
  }

  /** Size the canvas for the rows the scrollbar spans, keeping the row at the top in place
   * when the scale changes. */
  _layout() {
    const before = this.metrics;
    const top = before ? this._rowAt(before, this.viewport.scrollTop) : 0;
    const m = this._metrics();
    this.canvas.style.height = `${m.canvasH}px`;
    this.metrics = m;
    // The row numbers' column fits the largest number the scrollbar reaches.
    const digits = number(m.total).length;
    if (digits !== this.gutterDigits && this.widths !== undefined) {
      this.gutterDigits = digits;
      const gutter = `calc(${Math.max(digits, 3)}ch + ${this.editable ? 2.8 : 1.2}em)`;
      this.viewport.style.setProperty("--grid-columns", `${gutter} ${this.widths}`);
    }
    // Only when the scale changed: writing scrollTop on every frame would break the
    // browser's own smooth (wheel, touch) scrolling.
    const rescaled = before && (before.scaled || m.scaled) && before.total !== m.total;
    if (rescaled) this.viewport.scrollTop = this._scrollFor(m, top);
    const exact = this.win.atEnd || (this.count.exact && this.count.value === m.total);
    this.viewport.setAttribute("aria-rowcount", exact ? String(m.total + 1) : "-1");
  }

  /** Rows were found above the window (it is renumbered): the view keeps the same rows. */
  _shiftBy(rows) {
    this.version += 1;
    this._layout();
    this.viewport.scrollTop += rows * ROW_PX;
  }

  _schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      if (!this.alive) return;
      this._layout();
      this._render();
      this._ensure();
    });
  }

  /** Put in the DOM exactly the rows in view and MARGIN_ROWS around them. */
  _render() {
    const m = this.metrics ?? this._metrics();
    const scrollTop = this.viewport.scrollTop;
    const top = this._rowAt(m, scrollTop);
    const first = Math.max(0, Math.floor(top));
    const last = Math.min(m.total - 1, Math.ceil(top + m.visible) - 1);
    this.range = { first, last: Math.max(first, last) };
    const from = Math.max(0, first - MARGIN_ROWS);
    const to = Math.min(m.total, last + 1 + MARGIN_ROWS);
    if (this.editing && (this.editing.i < from || this.editing.i >= to)) this._closeEditor(true);
    const version = this.version + this.win.version * 1e6;
    for (const [i, entry] of this.shown) {
      const stale = entry.version !== version || (entry.pending && this.win.has(i));
      if (i < from || i >= to || (stale && this.editing?.i !== i)) {
        entry.el.remove();
        this.shown.delete(i);
      }
    }
    for (let i = from; i < to; i++) {
      let entry = this.shown.get(i);
      if (!entry) {
        entry = { el: this._row(i), version, pending: !this.win.has(i) };
        this.shown.set(i, entry);
        this.canvas.append(entry.el);
      }
      // Scaled, a row's place moves with the scroll position; else it is i rows down.
      const y = Math.round(m.scaled ? scrollTop + (i - top) * ROW_PX : i * ROW_PX);
      if (entry.y !== y) {
        entry.y = y;
        entry.el.style.transform = `translateY(${y}px)`;
      }
    }
    this.canvas.dataset.rendered = String(this.shown.size);
    this._showWhere();
  }

  _showWhere(reading = null) {
    if (!this.win.loaded || !this.range) {
      this.where.textContent = "";
      return;
    }
    const m = this.metrics;
    const exact = this.win.atEnd || (this.count.exact && this.count.value === m.total);
    this.countEl.textContent = rowsWords(m.total, exact);
    if (!m.total) {
      this.where.textContent = "";
      return;
    }
    const { first, last } = this.range;
    let words =
      `Rows ${number(first + 1)}–${number(last + 1)} ` +
      `of ${rowsWords(m.total, exact)}; rows ${number(this.win.base + 1)}–` +
      `${number(this.win.end)} loaded.`;
    if (reading) {
      // Keyset pages cannot jump: the grid reads every page on the way, and says so.
      words +=
        ` Reading pages in order ${reading === "forward" ? "down" : "up"} to row ` +
        `${number(first + 1)}…`;
    }
    this.where.textContent = words;
    this.where.dataset.reading = reading ? "true" : "false";
  }

  // --- rows and cells ------------------------------------------------------------------------

  _row(i) {
    const row = this.win.row(i);
    if (!row) {
      return h(
        "div",
        {
          class: "grid-row row-pending",
          role: "row",
          "aria-rowindex": String(i + 2),
          "aria-busy": "true",
        },
        h("div", { class: "grid-gutter", role: "rowheader" }, number(i + 1)),
        h("div", { class: "grid-cell grid-pending", role: "gridcell" }, "loading…"),
      );
    }
    const key = this.win.key(i);
    const deleted = this.editable && this.staged.isDeleted(key);
    const cells = this.columns.map((column, c) => {
      const staged = this.editable ? this.staged.cell(key, column.name) : { staged: false };
      const value = staged.staged ? staged.value : row[c];
      const onWhole = isWhole(value) ? null : () => this._showWhole(i, c);
      const classes = ["grid-cell"];
      if (staged.staged) classes.push("cell-staged");
      if (typeof value === "number") classes.push("cell-num");
      if (this.active?.i === i && this.active.c === c) classes.push("cell-active");
      return h(
        "div",
        {
          class: classes.join(" "),
          role: "gridcell",
          dataset: { col: String(c) },
          title: staged.staged ? "changed, not saved yet" : null,
        },
        cellContent(value, { onWhole }),
      );
    });
    return h(
      "div",
      {
        class: `grid-row${deleted ? " row-deleted" : ""}${i % 2 ? " row-odd" : ""}`,
        role: "row",
        "aria-rowindex": String(i + 2),
        dataset: { index: String(i) },
      },
      h(
        "div",
        { class: "grid-gutter", role: "rowheader" },
        h("span", { class: "row-number" }, number(i + 1)),
        this.editable
          ? h(
              "button",
              {
                type: "button",
                class: "row-delete",
                disabled: this.saving,
                "aria-pressed": deleted ? "true" : "false",
                title: deleted ? "Keep this row" : "Delete this row (on Save)",
                "aria-label": deleted ? `Keep row ${i + 1}` : `Delete row ${i + 1}`,
                onclick: () => this._toggleDelete(i),
              },
              deleted ? "↺" : "✕",
            )
          : null,
      ),
      cells,
    );
  }

  async _wholeValue(i, c) {
    const key = this.win.key(i);
    const name = this.columns[c].name;
    const id = `${keyText(key)}\n${name}`;
    if (this.whole.has(id)) return this.whole.get(id);
    const { value } = await this.rpc.call("db.cell", this._params({ key, column: name }));
    this.whole.set(id, value);
    return value;
  }

  async _showWhole(i, c) {
    if (!this.win.key(i)?.length) {
      this._say(notice("error", "This table has no row key: a cut value cannot be read whole."));
      return;
    }
    try {
      const value = await this._wholeValue(i, c);
      showWhole(`${this.columns[c].name}, row ${i + 1}`, value);
    } catch (error) {
      this._say(notice("error", errorWords(error, "read the whole value")));
    }
  }

  // --- header: sort and filters ------------------------------------------------------------

  _renderHead() {
    const cells = this.columns.map((column, c) => {
      const sorted = this.sort.find((s) => s.column === column.name);
      const order = sorted ? (sorted.desc ? "descending" : "ascending") : "none";
      const arrow = sorted ? (sorted.desc ? " ▼" : " ▲") : "";
      return h(
        "div",
        {
          class: "grid-colhead",
          role: "columnheader",
          "aria-sort": order,
          dataset: { col: String(c) },
        },
        h(
          "button",
          {
            type: "button",
            class: "sort",
            title: `${column.type || "untyped"} · sort (shift: add to the sort)`,
            onclick: (event) => this._sortBy(column.name, event.shiftKey),
          },
          h("span", { class: "colname" }, column.name),
          h("span", { class: "sort-arrow", "aria-hidden": "true" }, arrow),
        ),
        h(
          "button",
          {
            type: "button",
            class: "col-filter",
            title: `Filter by ${column.name}`,
            "aria-label": `Filter by ${column.name}`,
            onclick: () => this._focusFilter(column.name),
          },
          "▾",
        ),
      );
    });
    this.head.replaceChildren(
      h("div", { class: "grid-gutter", role: "columnheader" }, "#"),
      ...cells,
    );
  }

  /** A header click: ascending, then descending, then unsorted (shift keeps other columns). */
  _sortBy(column, add) {
    const at = this.sort.findIndex((s) => s.column === column);
    const current = this.sort[at];
    let next;
    if (!current) next = { column, desc: false };
    else if (!current.desc) next = { column, desc: true };
    else next = null;
    if (add) {
      const kept = this.sort.filter((s) => s.column !== column);
      this.sort = next
        ? at < 0
          ? [...kept, next]
          : this.sort.map((s) => (s.column === column ? next : s))
        : kept;
    } else {
      this.sort = next ? [next] : [];
    }
    this._renderHead();
    this._reloadKeepingEdits();
  }

  _renderFilters() {
    const chips = this.filters.map((f, n) =>
      h(
        "span",
        { class: "filter-chip" },
        h("code", {}, f.column),
        ` ${FILTER_OPS.find(([op]) => op === f.op)?.[1] ?? f.op} `,
        NO_VALUE_OPS.has(f.op)
          ? null
          : h("code", {}, Array.isArray(f.value) ? f.value.join(", ") : String(f.value)),
        h(
          "button",
          {
            type: "button",
            class: "filter-remove",
            "aria-label": `Remove the filter on ${f.column}`,
            onclick: () => {
              this.filters.splice(n, 1);
              this._renderFilters();
              this._reloadKeepingEdits();
            },
          },
          "✕",
        ),
      ),
    );
    const column = h(
      "select",
      { name: "filter-column", "aria-label": "Column to filter" },
      this.columns.map((c) => h("option", { value: c.name }, c.name)),
    );
    const op = h(
      "select",
      { name: "filter-op", "aria-label": "Comparison" },
      FILTER_OPS.map(([value, words]) => h("option", { value }, words)),
    );
    const value = h("input", {
      type: "text",
      name: "filter-value",
      "aria-label": "Value",
      placeholder: "value",
    });
    op.addEventListener("change", () => {
      value.hidden = NO_VALUE_OPS.has(op.value);
    });
    const form = h(
      "form",
      { class: "filter-form", "aria-label": "Add a filter" },
      column,
      op,
      value,
      h("button", { type: "submit" }, "Filter"),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const filter = { column: column.value, op: op.value };
      if (!NO_VALUE_OPS.has(op.value)) {
        // Typed values go as text: the daemon binds them by the column's type.
        filter.value =
          op.value === "in" ? value.value.split(",").map((v) => v.trim()) : value.value;
      }
      this.filters.push(filter);
      this._renderFilters();
      this._reloadKeepingEdits();
    });
    this.filterForm = form;
    this.filterBar.replaceChildren(...chips, form);
  }

  _focusFilter(name) {
    const select = this.filterForm.querySelector("select[name=filter-column]");
    select.value = name;
    this.filterForm.querySelector("input[name=filter-value]").focus();
  }

  /** Sorting and filtering read the result again; staged changes are kept (they name rows
   * by key, not by place). */
  _reloadKeepingEdits() {
    this.reload();
  }

  // --- the keyboard ------------------------------------------------------------------------

  /** A click puts the keyboard on that cell. */
  _onClick(event) {
    const cell = event.target.closest(".grid-cell[data-col]");
    const rowEl = cell?.closest(".grid-row[data-index]");
    if (!cell || !rowEl || cell.classList.contains("editing")) return;
    this._activate(Number(rowEl.dataset.index), Number(cell.dataset.col), false);
  }

  /** Arrows move between cells; Enter (or F2) edits the cell in DEV, or shows a cut value
   * whole; Escape leaves the cells. Other keys scroll as usual. */
  _onKey(event) {
    if (event.target !== this.viewport || !this.win.loaded || !this.columns.length) return;
    const moves = { ArrowDown: [1, 0], ArrowUp: [-1, 0], ArrowRight: [0, 1], ArrowLeft: [0, -1] };
    const at = this.active ?? { i: this.range?.first ?? 0, c: 0 };
    if (event.key in moves) {
      event.preventDefault();
      const [di, dc] = this.active ? moves[event.key] : [0, 0];
      const last = (this.metrics?.total ?? 1) - 1;
      const i = Math.min(Math.max(at.i + di, 0), last);
      const c = Math.min(Math.max(at.c + dc, 0), this.columns.length - 1);
      this._activate(i, c, true);
    } else if ((event.key === "Enter" || event.key === "F2") && this.active) {
      event.preventDefault();
      const cell = this._cellEl(at.i, at.c);
      const value = this.win.row(at.i)?.[at.c];
      if (this.editable && cell) this._edit(at.i, at.c);
      else if (value !== undefined && !isWhole(value)) this._showWhole(at.i, at.c);
    } else if (event.key === "Escape" && this.active) {
      this._activate(null);
    }
  }

  _cellEl(i, c) {
    return this.shown.get(i)?.el.querySelector(`.grid-cell[data-col="${c}"]`) ?? null;
  }

  /** Put the keyboard on cell (i, c) (null: on none), scrolling it into view if asked. */
  _activate(i, c, reveal) {
    for (const el of this.canvas.querySelectorAll(".cell-active")) {
      el.classList.remove("cell-active");
    }
    this.active = i === null ? null : { i, c };
    if (!this.active) return;
    if (reveal) {
      const m = this.metrics;
      const { first, last } = this.range;
      if (i < first) this.viewport.scrollTop = this._scrollFor(m, i);
      else if (i > last)
        this.viewport.scrollTop = this._scrollFor(m, i - Math.floor(m.visible) + 1);
      this._render();
    }
    const cell = this._cellEl(i, c);
    cell?.classList.add("cell-active");
    if (reveal && cell) this._revealColumn(cell);
  }

  /** Scroll sideways so the cell is not hidden (the row numbers stick to the left). */
  _revealColumn(cell) {
    const gutter = this.head.firstElementChild?.offsetWidth ?? 0;
    const left = cell.offsetLeft;
    const right = left + cell.offsetWidth;
    const view = this.viewport;
    if (left - gutter < view.scrollLeft) view.scrollLeft = left - gutter;
    else if (right > view.scrollLeft + view.clientWidth) view.scrollLeft = right - view.clientWidth;
  }

  // --- editing (DEV) -------------------------------------------------------------------------

  _onDoubleClick(event) {
    const cell = event.target.closest(".grid-cell[data-col]");
    const rowEl = cell?.closest(".grid-row[data-index]");
    if (!cell || !rowEl || !this.editable) return;
    this._edit(Number(rowEl.dataset.index), Number(cell.dataset.col));
  }

  _generated(name) {
    return this.described?.columns?.find((c) => c.name === name)?.generated ?? false;
  }

  async _edit(i, c) {
    const column = this.columns[c];
    const key = this.win.key(i);
    if (!key?.length) return;
    if (this.saving) {
      this._say(notice("loading", SAVING_WORDS));
      return;
    }
    if (this._generated(column.name)) {
      this._say(
        notice("error", `“${column.name}” is computed by the database: it cannot be edited.`),
      );
      return;
    }
    if (this.staged.isDeleted(key)) {
      this._say(notice("error", "This row is to be deleted: keep it first to edit it."));
      return;
    }
    this._closeEditor(true);
    const asRead = this.win.row(i)[c];
    let whole = asRead;
    if (!isWhole(asRead)) {
      try {
        whole = await this._wholeValue(i, c); // a cut value is edited whole, never its part
      } catch (error) {
        this._say(notice("error", errorWords(error, "read the whole value to edit it")));
        return;
      }
    }
    if (this.saving) {
      // Save was pressed while the whole value was being read: the editor waits too.
      this._say(notice("loading", SAVING_WORDS));
      return;
    }
    const staged = this.staged.cell(key, column.name);
    const value = staged.staged ? staged.value : whole;
    if (keyText(this.win.key(i) ?? []) !== keyText(key)) return; // the rows moved meanwhile
    // Looked up now: closing another editor, or the wait, may have built the row again.
    const cell = this._cellEl(i, c);
    if (cell && !this.editing) this._openEditor(i, c, cell, value, whole);
  }

  _openEditor(i, c, cell, value, asRead) {
    const column = this.columns[c];
    const binary = isBytes(asRead);
    const text =
      value === null
        ? ""
        : binary && typeof value === "object"
          ? value.hex
          : typeof value === "object"
            ? JSON.stringify(value)
            : String(value);
    const input = h("input", {
      type: "text",
      class: "cell-input",
      "aria-label": `${column.name}, row ${i + 1}${binary ? " (hex)" : ""}`,
      placeholder: value === null ? "NULL" : "",
    });
    input.value = text;
    let isNull = value === null;
    input.addEventListener("input", () => {
      isNull = false;
      input.placeholder = "";
    });
    const nullButton = h(
      "button",
      { type: "button", class: "cell-set-null", title: "Set this cell to SQL NULL" },
      "NULL",
    );
    // Pressing the button must not blur the input first (the blur would save the text).
    nullButton.addEventListener("mousedown", (event) => event.preventDefault());
    nullButton.addEventListener("click", () => this._commit(null, { refocus: true }));
    const editor = h("div", { class: "cell-editor" }, input, nullButton);
    cell.replaceChildren(editor);
    cell.classList.add("editing");
    this.editing = {
      i,
      c,
      input,
      done: false,
      asRead,
      binary,
      isNull: () => isNull,
    };
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        this._commit(isNull ? null : input.value, { refocus: true });
      } else if (event.key === "Escape") {
        event.preventDefault();
        this._closeEditor(false, { refocus: true });
      }
    });
    input.addEventListener("blur", () => {
      if (this.editing?.input === input) this._commit(isNull ? null : input.value);
    });
    input.focus();
    input.select();
  }

  /** Stage what the editor holds (`value`: the typed text, or null for NULL). */
  _commit(value, { refocus = false } = {}) {
    const e = this.editing;
    if (!e || e.done) return;
    e.done = true;
    if (this.saving) {
      // Staged now, it would be cleared with the changes being saved, unsaved.
      this._closeEditor(false);
      this._say(notice("error", "This edit came during a save and was not kept: make it again."));
      return;
    }
    const column = this.columns[e.c];
    let sent = value;
    if (value !== null && e.binary) {
      const hex = value.replace(/\s+/g, "").toLowerCase();
      if (!/^([0-9a-f]{2})*$/.test(hex)) {
        this._say(
          notice("error", `“${column.name}” holds bytes: type them as hex digits, two per byte.`),
        );
        this.editing = null;
        this.version += 1;
        this._render();
        return;
      }
      sent = { $bytes: hex.length / 2, hex };
    } else if (value !== null && isList(column, e.asRead)) {
      // A PostgreSQL array goes as a JSON list (text would not be read as one).
      sent = parseList(value);
      if (sent === undefined) {
        this._say(
          notice(
            "error",
            `“${column.name}” is a list (${column.type ?? "an array"}): type it as JSON, ` +
              `like [1, 2] or ["a", "b"]. Nothing was staged.`,
          ),
        );
        this.editing = null;
        this.version += 1;
        this._render();
        return;
      }
    }
    const key = this.win.key(e.i);
    this.staged.setCell(
      key,
      expectOf(this.columns, this.win.row(e.i)),
      column.name,
      sent,
      e.asRead,
    );
    this.editing = null;
    this.version += 1;
    this._showStaged();
    this._render();
    // Back to the cells for the keyboard (not when the user clicked elsewhere).
    if (refocus) this.viewport.focus({ preventScroll: true });
  }

  _closeEditor(save, { refocus = false } = {}) {
    const e = this.editing;
    if (!e) return;
    if (save) {
      this._commit(e.isNull() ? null : e.input.value);
      return;
    }
    e.done = true;
    this.editing = null;
    this.version += 1;
    this._render();
    if (refocus) this.viewport.focus({ preventScroll: true });
  }

  _toggleDelete(i) {
    if (this.saving) return;
    const key = this.win.key(i);
    this.staged.toggleDelete(key, expectOf(this.columns, this.win.row(i)));
    this.version += 1;
    this._showStaged();
    this._render();
  }

  _addInsert() {
    if (this.saving) return;
    this.staged.addInsert();
    this._showStaged();
    this.newRows.querySelector("tbody tr:last-child input")?.focus();
  }

  _discardAll() {
    if (this.saving) return;
    this.staged.clear();
    this.conflict.hidden = true;
    this.version += 1;
    this._showStaged();
    this._render();
  }

  /** The edit bar's words, the Review panel and the new rows, after any staged change. */
  _showStaged() {
    if (!this.allowEdits) return;
    const n = this.staged.size;
    this.stagedWords.textContent = n ? `${n} change${n === 1 ? "" : "s"} not saved` : "No changes";
    this.reviewButton.textContent = n ? `Review (${n})` : "Review";
    this.saveButton.disabled = n === 0 || this.saving;
    this.discardButton.disabled = n === 0 || this.saving;
    this.insertButton.disabled = this.saving;
    this.editHint.textContent = this.saving ? SAVING_WORDS : EDIT_HINT;
    this.newRows.inert = this.saving;
    this.element?.classList.toggle("has-changes", n > 0);
    this._renderNewRows();
    if (!this.review.hidden) this._renderReview();
  }

  _editParams() {
    return this._params({ changes: this.staged.changes() });
  }

  _toggleReview() {
    const open = this.review.hidden;
    this.review.hidden = !open;
    this.reviewButton.setAttribute("aria-expanded", String(open));
    if (open) this._renderReview();
  }

  _renderReview() {
    const params = this._editParams();
    this.review.replaceChildren(
      h("h3", {}, "Changes to save"),
      ...(params.changes.length
        ? reviewContent(params, this.keyColumns)
        : [
            h(
              "p",
              { class: "hint" },
              "Nothing staged: double-click a cell, insert or delete a row.",
            ),
          ]),
    );
  }

  /** The staged inserts: one line of inputs per new row; a column left untouched is left
   * out of the insert (the database's default applies), "NULL" sends NULL. */
  _renderNewRows() {
    const inserts = this.staged.inserts;
    this.newRows.hidden = inserts.length === 0;
    if (!inserts.length) {
      this.newRows.replaceChildren();
      return;
    }
    const columns = this.columns.filter((c) => !this._generated(c.name));
    const line = (row) =>
      h(
        "tr",
        { dataset: { insert: String(row.id) } },
        columns.map((column) => h("td", {}, this._newCell(row, column))),
        h(
          "td",
          {},
          h(
            "button",
            {
              type: "button",
              class: "insert-remove",
              "aria-label": "Remove this new row",
              onclick: () => {
                this.staged.removeInsert(row.id);
                this._showStaged();
              },
            },
            "✕",
          ),
        ),
      );
    this.newRows.replaceChildren(
      h("h3", {}, "New rows"),
      h(
        "div",
        { class: "new-rows-scroll" },
        h(
          "table",
          { class: "new-rows" },
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              columns.map((c) => h("th", { scope: "col" }, c.name)),
              h("th", {}, ""),
            ),
          ),
          h("tbody", {}, inserts.map(line)),
        ),
      ),
    );
  }

  _newCell(row, column) {
    const has = Object.hasOwn(row.values, column.name);
    const value = has ? row.values[column.name] : undefined;
    const input = h("input", {
      type: "text",
      class: "new-cell",
      name: column.name,
      "aria-label": `New row: ${column.name}`,
      placeholder: !has ? "default" : value === null ? "NULL" : "",
    });
    input.value = typeof value === "string" ? value : "";
    input.addEventListener("input", () => {
      row.values[column.name] = input.value; // typed: sent as text, even when emptied
      input.placeholder = "";
      this._afterNewCell();
    });
    const toNull = h(
      "button",
      { type: "button", class: "cell-set-null", title: `Set ${column.name} to NULL` },
      "NULL",
    );
    toNull.addEventListener("click", () => {
      row.values[column.name] = null;
      input.value = "";
      input.placeholder = "NULL";
      this._afterNewCell();
    });
    const toDefault = h(
      "button",
      { type: "button", class: "cell-set-default", title: `Leave ${column.name} to its default` },
      "default",
    );
    toDefault.addEventListener("click", () => {
      delete row.values[column.name];
      input.value = "";
      input.placeholder = "default";
      this._afterNewCell();
    });
    return h("span", { class: "new-cell-box" }, input, toNull, toDefault);
  }

  _afterNewCell() {
    if (!this.review.hidden) this._renderReview();
    const n = this.staged.size;
    this.stagedWords.textContent = n ? `${n} change${n === 1 ? "" : "s"} not saved` : "No changes";
  }

  /** Send every staged change in ONE db.edit; on a conflict nothing was applied, and the
   * panel shows the row as read, as changed, and as it is now. */
  async save() {
    if (this.saving) return;
    this._closeEditor(true);
    const params = this._editParams();
    if (!params.changes.length) return;
    // Nothing can be staged until the answer comes: it settles exactly the changes sent,
    // and a change staged meanwhile would be lost with them (or sent twice).
    this.saving = true;
    this.saveButton.textContent = "Saving…";
    this.conflict.hidden = true;
    this.version += 1;
    this._showStaged();
    this._render();
    try {
      const result = await this.rpc.call("db.edit", params);
      if (!this.alive) return;
      this._applySaved(params.changes, result);
    } catch (error) {
      if (!this.alive) return;
      if (error.code === CONFLICT && error.data && Number.isInteger(error.data.change)) {
        this._showConflict(params.changes[error.data.change], error.data);
      } else {
        this._say(notice("error", errorWords(error, "save the changes") + " Nothing was saved."));
      }
    } finally {
      this.saving = false;
      this.saveButton.textContent = "Save";
      this.version += 1;
      this._showStaged();
      this._render();
    }
  }

  _applySaved(changes, result) {
    let inserted = 0;
    changes.forEach((change, n) => {
      const back = result.rows?.[n];
      const i = change.key ? this.win.find(keyText(change.key)) : -1;
      if (change.op === "insert") inserted += 1;
      else if (change.op === "update" && i >= 0 && back) this.win.replace(i, back.key, back.row);
      else if (change.op === "delete" && i >= 0) this.win.remove(i);
    });
    this.staged.clear();
    this.whole.clear();
    this.version += 1;
    const words = `Saved ${changes.length} change${changes.length === 1 ? "" : "s"}.`;
    const reload = h("button", { type: "button", onclick: () => this.reload() }, "Reload");
    this._say(
      h(
        "p",
        { class: "notice notice-done", role: "status" },
        words,
        inserted
          ? [
              ` The new row${inserted === 1 ? "" : "s"} show in their place after a reload. `,
              reload,
            ]
          : null,
      ),
    );
    this._layout();
    this._render();
  }

  _showConflict(change, data) {
    const names = (data.columns ?? this.columns).map((c) =>
      typeof c === "string" ? { name: c } : c,
    );
    const key = data.key ?? change.key;
    const current = data.current ?? null;
    const discard = h(
      "button",
      {
        type: "button",
        class: "conflict-discard",
        onclick: () => this._resolve(key, names, current, false),
      },
      "Discard my change",
    );
    const reapply = current
      ? h(
          "button",
          {
            type: "button",
            class: "conflict-reapply primary",
            onclick: () => this._resolve(key, names, current, true),
          },
          change.op === "delete"
            ? "Delete it anyway (as it is now)"
            : "Re-apply mine over the current row",
        )
      : null;
    this.conflict.replaceChildren(
      h(
        "p",
        {},
        h("strong", {}, "Nothing was saved: "),
        current
          ? `the row ${keyWords(this.keyColumns, key)} changed since you read it.`
          : `the row ${keyWords(this.keyColumns, key)} was deleted since you read it.`,
      ),
      conflictTable(names, change.expect ?? {}, change.values ?? {}, current),
      h("div", { class: "actions" }, discard, reapply),
    );
    this.conflict.hidden = false;
  }

  /** After a conflict: forget the change, or keep it over the row as it is now (its values
   * become the new `expect`); either way the grid shows the row as it is now. */
  async _resolve(key, columns, current, reapply) {
    let expect = null;
    if (reapply && current) {
      // The conflict shows long values cut; the columns being set need their whole value
      // as the new expectation (the daemon refuses a cut one).
      expect = expectOf(columns, current);
      const setting = this.staged.updates.get(keyText(key))?.values ?? {};
      try {
        for (const name of Object.keys(setting)) {
          if (isWhole(expect[name])) continue;
          const read = await this.rpc.call("db.cell", this._params({ key, column: name }));
          expect[name] = read.value;
        }
      } catch (error) {
        this._say(notice("error", errorWords(error, "read the row as it is now")));
        return;
      }
      if (!this.alive) return;
    }
    const i = this.win.find(keyText(key));
    if (current && i >= 0) {
      const row = this.columns.map(
        (c) => current[columns.findIndex((n) => n.name === c.name)] ?? null,
      );
      this.win.replace(i, key, row);
    } else if (!current && i >= 0) {
      this.win.remove(i);
    }
    for (const id of [...this.whole.keys()])
      if (id.startsWith(`${keyText(key)}\n`)) this.whole.delete(id);
    if (expect) this.staged.rebase(key, expect);
    else this.staged.forget(key);
    this.conflict.hidden = true;
    this.version += 1;
    this._showStaged();
    this._layout();
    this._render();
  }

  // --- export --------------------------------------------------------------------------------

  async _export(format) {
    if (this.exporting) {
      this.exporting.stop();
      return;
    }
    const status = h("p", { class: "notice notice-loading", role: "status" }, "Exporting…");
    let stopped = false;
    const stop = h("button", { type: "button", onclick: () => (stopped = true) }, "Stop");
    const line = h("div", { class: "export-status" }, status, stop);
    this._say(line);
    this.exporting = { stop: () => (stopped = true) };
    try {
      const done = await exportTable(this.rpc, this._rowsParams({}), format, {
        progress: (n) => (status.textContent = `Exporting… ${number(n)} rows`),
        stopped: () => stopped || !this.alive,
      });
      if (!this.alive) return;
      if (done.stopped) this._say(notice("empty", "Export stopped: nothing was downloaded."));
      else
        this._say(
          h(
            "p",
            { class: "notice notice-done", role: "status" },
            `Exported ${number(done.rows)} rows as ${done.name}.`,
          ),
        );
    } catch (error) {
      if (this.alive) this._say(notice("error", errorWords(error, "export the table")));
    } finally {
      this.exporting = null;
    }
  }

  // --- the rest ------------------------------------------------------------------------------

  /** Show `parts` in the message line (none: clear it). */
  _say(...parts) {
    this.messages.replaceChildren(...parts);
  }

  destroy() {
    this.alive = false;
    this.generation += 1;
    cancelAnimationFrame(this.frame);
    this.resize.disconnect();
  }
}

/** Whether `column` holds lists (a PostgreSQL array): its type says so, or a value read. */
function isList(column, asRead) {
  return Array.isArray(asRead) || String(column.type ?? "").trim().endsWith("[]");
}

/** The list typed as JSON text, or undefined when the text is not a JSON list. */
function parseList(text) {
  try {
    const value = JSON.parse(text);
    return Array.isArray(value) ? value : undefined;
  } catch {
    return undefined;
  }
}
