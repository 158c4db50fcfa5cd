// How one database cell looks and reads (README: Values on the wire): SQL
// NULL apart from an empty string, long text cut by the daemon with a way to see it whole,
// bytes as their size and hex. Shared by the grid, the SQL console and the export.

import { bytes as sizeWords, h } from "../dom.js";

/** Whether `value` is the daemon's marker of a text cut short (`{$truncated, text}`). */
export function isTruncated(value) {
  return value !== null && typeof value === "object" && "$truncated" in value;
}

/** Whether `value` is a binary cell (`{$bytes: size, hex}`). */
export function isBytes(value) {
  return value !== null && typeof value === "object" && "$bytes" in value;
}

/** Whether the cell holds its whole value: a cut text or a bytes cell with only its first
 * bytes in hex cannot be sent back (the daemon refuses them), nor compared as "expect". */
export function isWhole(value) {
  if (isTruncated(value)) return false;
  if (isBytes(value)) return typeof value.hex === "string" && value.hex.length === 2 * value.$bytes;
  return true;
}

/** A number as the daemon wrote it: JavaScript reads `3.0` as 3 and `1e16` as
 * 10000000000000000, which an export must not write in their place. */
export class ExactNumber {
  constructor(text) {
    this.text = text;
  }

  toString() {
    return this.text;
  }
}

/** Whether this browser gives a reviver each number's source text (Chromium 114 and later,
 * Firefox 135 and later): without it, `exactNumbers` could only return numbers unchanged. */
export const SOURCE_TEXT = JSON.parse("1.0", (_key, _value, context) => context?.source) === "1.0";

/** A `JSON.parse` reviver (`rpc.call`'s `reviver`) that keeps each fraction or exponent as
 * written (an ExactNumber); integers stay numbers (beyond 2^53 they come as text anyway). */
export function exactNumbers(_key, value, context) {
  if (typeof value === "number" && /[.eE]/.test(context?.source ?? "")) {
    return new ExactNumber(context.source);
  }
  return value;
}

/** `value` as JSON text, each ExactNumber as written. */
export function exactJson(value) {
  if (value instanceof ExactNumber) return value.text;
  if (Array.isArray(value)) return `[${value.map(exactJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const members = Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}:${exactJson(v)}`);
    return `{${members.join(",")}}`;
  }
  return JSON.stringify(value);
}

/** The plain text of a cell, for a title, a CSV field or an editor: NULL gives null. */
export function cellText(value) {
  if (value === null || value === undefined) return null;
  if (value instanceof ExactNumber) return value.text;
  if (isTruncated(value)) return value.text;
  if (isBytes(value)) return value.hex;
  if (Array.isArray(value) || typeof value === "object") return exactJson(value);
  return String(value);
}

/** "12 B · 00ff10…": a bytes cell in words. */
export function bytesWords(value) {
  const shown = value.hex.length / 2;
  return `${sizeWords(value.$bytes)} · ${value.hex}${shown < value.$bytes ? "…" : ""}`;
}

/** The element for a cell's content. `onWhole` (optional): called to show the whole value
 * of a cut text or of a bytes cell whose hex is partial; the caller fetches it (db.cell). */
export function cellContent(value, { onWhole = null } = {}) {
  if (value === null || value === undefined) {
    // NULL is not a value: dimmed, italic, and marked so a test or a reader can tell it
    // from the text "NULL" (which renders as plain text).
    return h("span", { class: "cell-null", title: "SQL NULL (no value)" }, "NULL");
  }
  if (value === "") {
    return h("span", { class: "cell-empty", title: "an empty string" }, "");
  }
  if (isTruncated(value)) {
    return h(
      "span",
      { class: "cell-cut" },
      h("span", { class: "cell-text" }, value.text),
      onWhole
        ? h(
            "button",
            {
              type: "button",
              class: "cell-whole",
              title: `Show the whole value (${value.$truncated.toLocaleString()} characters)`,
              onclick: (event) => {
                event.stopPropagation();
                onWhole();
              },
            },
            "show whole",
          )
        : h("span", { class: "cell-more" }, "…"),
    );
  }
  if (isBytes(value)) {
    return h(
      "span",
      { class: "cell-bytes", title: `${value.$bytes} bytes` },
      bytesWords(value),
      onWhole && !isWhole(value)
        ? h(
            "button",
            {
              type: "button",
              class: "cell-whole",
              onclick: (event) => {
                event.stopPropagation();
                onWhole();
              },
            },
            "show whole",
          )
        : null,
    );
  }
  if (typeof value === "number" || typeof value === "boolean") {
    return h("span", { class: "cell-number" }, String(value));
  }
  return h("span", { class: "cell-text" }, cellText(value));
}

/** A dialog with a cell's whole value (text, or bytes as size and hex), closed by its button
 * or Escape. */
export function showWhole(title, value) {
  const body =
    value === null
      ? h("p", {}, h("span", { class: "cell-null" }, "NULL"))
      : h(
          "pre",
          { class: "cell-whole-text" },
          isBytes(value) ? `${sizeWords(value.$bytes)}\n${value.hex}` : cellText(value),
        );
  const close = h("button", { type: "button", class: "primary" }, "Close");
  const dialog = h(
    "dialog",
    { class: "confirm cell-dialog", "aria-label": title },
    h("h2", {}, title),
    body,
    h("div", { class: "actions" }, close),
  );
  const finish = () => {
    dialog.close();
    dialog.remove();
  };
  close.addEventListener("click", finish);
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  close.focus();
}

/** A small read-only table of `columns` and `rows` (the SQL console's results, a conflict's
 * two versions). */
export function plainTable(columns, rows, { caption = null, className = "result-table" } = {}) {
  return h(
    "table",
    { class: className },
    caption ? h("caption", {}, caption) : null,
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        columns.map((c) => h("th", { scope: "col", title: c.type ?? "" }, c.name)),
      ),
    ),
    h(
      "tbody",
      {},
      rows.map((row) =>
        h(
          "tr",
          {},
          row.map((value) => h("td", {}, cellContent(value))),
        ),
      ),
    ),
  );
}
