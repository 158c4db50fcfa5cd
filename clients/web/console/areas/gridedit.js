// The grid's staged changes (DEV only): what the user changed, inserted and deleted, kept
// apart from the rows read so nothing reaches the database before "Save", which sends them
// all in ONE db.edit (all or nothing). Every update and delete carries `expect`, the row's
// values as read, so a row changed underneath fails the save instead of being overwritten.

import { h } from "../dom.js";
import { cellContent, cellText, isBytes, isTruncated, isWhole } from "./gridcells.js";

/** The JSON text naming a row by its key (the map key of its staged change). */
export function keyText(key) {
  return JSON.stringify(key);
}

/** `{column: value}` of a row exactly as read, for `expect`: the daemon compares a cut text
 * or a partial bytes cell by what it shows (size and first part). */
export function expectOf(columns, row) {
  return Object.fromEntries(columns.map((column, i) => [column.name, row[i]]));
}

export class Staged {
  constructor() {
    this.clear();
  }

  clear() {
    this.updates = new Map(); // keyText -> {key, expect, values: {column: value}}
    this.deletes = new Map(); // keyText -> {key, expect}
    this.inserts = []; // {id, values: {column: value}}: columns left out take their default
    this._nextInsert = 1;
  }

  get size() {
    let n = this.deletes.size + this.inserts.length;
    for (const [k, change] of this.updates) {
      if (!this.deletes.has(k) && Object.keys(change.values).length) n += 1;
    }
    return n;
  }

  /** Set `column` of the row `key` to `value` (text as typed, or null); a value equal to
   * the one read un-stages the cell. `asRead` is the value the editor started from: when
   * the page held the cell cut, it is the whole value read for editing (db.cell), and it
   * becomes `expect[column]`, because the daemon refuses a cut value as the expectation of
   * a column being set. A column already staged keeps the expectation it was first staged
   * with (a later read may already hold someone else's change). */
  setCell(key, expect, column, value, asRead) {
    const k = keyText(key);
    const change = this.updates.get(k) ?? { key, expect: { ...expect }, values: {} };
    if (!Object.hasOwn(change.values, column) && isWhole(asRead)) {
      change.expect = { ...change.expect, [column]: asRead };
    }
    if (sameValue(value, asRead)) delete change.values[column];
    else change.values[column] = value;
    if (Object.keys(change.values).length) this.updates.set(k, change);
    else this.updates.delete(k);
  }

  /** The staged value of a cell: {staged: true, value} or {staged: false}. */
  cell(key, column) {
    const change = this.updates.get(keyText(key));
    if (change && Object.hasOwn(change.values, column)) {
      return { staged: true, value: change.values[column] };
    }
    return { staged: false };
  }

  toggleDelete(key, expect) {
    const k = keyText(key);
    if (this.deletes.has(k)) this.deletes.delete(k);
    else this.deletes.set(k, { key, expect });
  }

  isDeleted(key) {
    return this.deletes.has(keyText(key));
  }

  addInsert() {
    const row = { id: this._nextInsert++, values: {} };
    this.inserts.push(row);
    return row;
  }

  removeInsert(id) {
    this.inserts = this.inserts.filter((r) => r.id !== id);
  }

  /** Forget every change to row `key` (after a conflict the user chose to discard). */
  forget(key) {
    const k = keyText(key);
    this.updates.delete(k);
    this.deletes.delete(k);
  }

  /** Take the row as it is now as the row read (a conflict the user re-applies over). */
  rebase(key, expect) {
    const k = keyText(key);
    const update = this.updates.get(k);
    if (update) update.expect = expect;
    const gone = this.deletes.get(k);
    if (gone) gone.expect = expect;
  }

  /** The `changes` of the db.edit call, in the order the Review panel lists them: inserts,
   * updates, deletes (a row both changed and deleted is only deleted). */
  changes() {
    const out = [];
    for (const row of this.inserts) out.push({ op: "insert", values: { ...row.values } });
    for (const [k, change] of this.updates) {
      if (this.deletes.has(k) || !Object.keys(change.values).length) continue;
      out.push({
        op: "update",
        key: change.key,
        values: { ...change.values },
        expect: change.expect,
      });
    }
    for (const change of this.deletes.values()) {
      out.push({ op: "delete", key: change.key, expect: change.expect });
    }
    return out;
  }
}

/** Whether a typed value equals the cell as read (text as typed against any read value). */
function sameValue(value, asRead) {
  if (value === null || asRead === null) return value === asRead;
  if (!isWhole(asRead)) return false;
  if (isBytes(value) || isBytes(asRead))
    return isBytes(value) && isBytes(asRead) && value.hex === asRead.hex;
  if (Array.isArray(value) || Array.isArray(asRead))
    return JSON.stringify(value) === JSON.stringify(asRead);
  return String(value) === cellText(asRead);
}

/** How a key reads in a sentence: "id = 5", "a = 1, b = 'x'". */
export function keyWords(keyColumns, key) {
  if (!Array.isArray(keyColumns)) return `rowid ${key.join(", ")}`;
  return keyColumns.map((c, i) => `${c} = ${JSON.stringify(key[i])}`).join(", ");
}

/** The Review panel's content: each change in words, then the exact JSON that Save sends. */
export function reviewContent(params, keyColumns) {
  const items = params.changes.map((change) => {
    if (change.op === "insert") {
      const cols = Object.entries(change.values);
      return h(
        "li",
        { dataset: { op: "insert" } },
        "Insert a row: ",
        cols.length
          ? cols.flatMap(([c, v], j) => [j ? ", " : "", h("code", {}, c), " = ", valueWords(v)])
          : "every column its default",
      );
    }
    if (change.op === "update") {
      return h(
        "li",
        { dataset: { op: "update" } },
        `Update the row ${keyWords(keyColumns, change.key)}: `,
        Object.entries(change.values).flatMap(([c, v], j) => [
          j ? ", " : "",
          h("code", {}, c),
          " ",
          valueWords(change.expect[c] ?? { $truncated: 0, text: "(not read whole)" }),
          " → ",
          valueWords(v),
        ]),
      );
    }
    return h(
      "li",
      { dataset: { op: "delete" } },
      `Delete the row ${keyWords(keyColumns, change.key)}`,
    );
  });
  return [
    h("ol", { class: "review-list" }, items),
    h(
      "details",
      { class: "review-json" },
      h("summary", {}, "The exact request (db.edit)"),
      h("pre", {}, JSON.stringify(params, null, 2)),
    ),
  ];
}

const REVIEW_CHARS = 120; // a long text in the list: its start and its size (the JSON has all)

function valueWords(value) {
  // An empty text shows as nothing in a cell; here it must be seen.
  if (value === "") return h("span", { class: "review-value cell-empty-words" }, "'' (empty text)");
  const text = typeof value === "string" ? value : isTruncated(value) ? value.text : null;
  const size = typeof value === "string" ? value.length : isTruncated(value) ? value.$truncated : 0;
  if (text !== null && size > REVIEW_CHARS) {
    return h(
      "span",
      { class: "review-value" },
      `${text.slice(0, REVIEW_CHARS)}… (${size.toLocaleString("en")} characters)`,
    );
  }
  return h("span", { class: "review-value" }, cellContent(value));
}

/** The conflict panel's table: per column, the value as read, yours, and the row now. */
export function conflictTable(columns, asRead, yours, current) {
  const rows = columns.map((column, i) => {
    const mine = Object.hasOwn(yours, column.name) ? yours[column.name] : undefined;
    const now = current ? current[i] : undefined;
    const differs = current && JSON.stringify(now) !== JSON.stringify(asRead[column.name]);
    return h(
      "tr",
      { class: differs ? "conflict-differs" : null },
      h("th", { scope: "row" }, column.name),
      h("td", {}, column.name in asRead ? cellContent(asRead[column.name]) : "–"),
      h(
        "td",
        { class: mine === undefined ? null : "cell-staged" },
        mine === undefined ? "–" : cellContent(mine),
      ),
      h("td", {}, current ? cellContent(now) : h("em", {}, "row deleted")),
    );
  });
  return h(
    "table",
    { class: "conflict-table" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", { scope: "col" }, "Column"),
        h("th", { scope: "col" }, "As you read it"),
        h("th", { scope: "col" }, "Yours"),
        h("th", { scope: "col" }, "Current"),
      ),
    ),
    h("tbody", {}, rows),
  );
}
