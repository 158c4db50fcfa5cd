// Export a table as CSV or JSON lines, in the browser: page through db.rows (keyset, the
// grid's own sort and filters) and put each page's text in a Blob part, so memory holds
// text, not the rows as objects; then download the Blob through an object URL. Pages ask for
// long cells (64 KiB each, as the CLI does); a cell still cut is asked for whole (db.cell),
// and so are bytes longer than what a page shows (64). Without a row key there is no way
// to read a cell whole: the export stops in words rather than write a cut value.

import { cellText, exactJson, exactNumbers, isBytes, isWhole, SOURCE_TEXT } from "./gridcells.js";

const EXPORT_PAGE_ROWS = 1000;
const EXPORT_CELL_BYTES = 64 * 1024;

/** One CSV field: NULL is an empty field, an empty string is `""` (so they stay apart). */
function csvField(value) {
  if (value === null || value === undefined) return "";
  const text = isBytes(value) ? `\\x${value.hex}` : cellText(value);
  return /[",\r\n]/.test(text) || text === "" ? `"${text.replaceAll('"', '""')}"` : text;
}

/** A page's rows with every cut cell replaced by its whole value. */
async function wholeRows(rpc, base, page) {
  const rows = page.rows.map((row) => row.slice());
  for (let r = 0; r < rows.length; r++) {
    for (let c = 0; c < rows[r].length; c++) {
      if (isWhole(rows[r][c])) continue;
      const key = page.keys[r] && JSON.parse(exactJson(page.keys[r])); // numbers, as sent
      if (!key?.length) {
        throw new Error(
          `${base.table} has no row key, so a value of ${page.columns[c].name} too large to come ` +
            "in a page cannot be read whole; nothing was downloaded",
        );
      }
      const params = { table: base.table, key, column: page.columns[c].name };
      if (base.schema) params.schema = base.schema;
      rows[r][c] = (await rpc.call("db.cell", params)).value;
    }
  }
  return rows;
}

/** Export the rows `params` (a db.rows request) select as `format` ("csv" or "jsonl"). */
export async function exportTable(rpc, params, format, { progress, stopped }) {
  const base = { ...params, limit: EXPORT_PAGE_ROWS, cellBytes: EXPORT_CELL_BYTES };
  delete base.after;
  delete base.before;
  const parts = [];
  let after = null;
  let columns = null;
  let count = 0;
  do {
    if (stopped()) return { stopped: true, rows: count };
    // Numbers as the daemon wrote them: 3.0 stays 3.0 (JavaScript's own would write 3).
    const page = await rpc.call("db.rows", after ? { ...base, after } : base, {
      reviver: SOURCE_TEXT ? exactNumbers : null,
    });
    if (!columns) {
      columns = page.columns.map((c) => c.name);
      if (format === "csv") parts.push(columns.map(csvField).join(",") + "\r\n");
    }
    const rows = await wholeRows(rpc, base, page);
    const lines = rows.map((row) =>
      format === "csv"
        ? row.map(csvField).join(",") + "\r\n"
        : exactJson(Object.fromEntries(columns.map((name, c) => [name, row[c]]))) + "\n",
    );
    parts.push(lines.join(""));
    count += rows.length;
    progress(count);
    after = page.next;
  } while (after);
  const type = format === "csv" ? "text/csv" : "application/x-ndjson";
  const name = `${params.table}.${format}`;
  download(new Blob(parts, { type }), name);
  return { stopped: false, rows: count, name };
}

/** Hand `blob` to the browser as a download named `name`. */
function download(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  // The download has its own reference by now; the URL is not needed any more.
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
