// The grid's window of loaded rows over a table read by keyset pages (README: The grid).
//
// Keyset pages cannot jump to row N: a page is read after the `next` cursor of the one before
// it, or before the `prev` cursor of the one after it. So the grid keeps a *window*: a run of
// consecutive pages, starting at row `base` of the whole result. It grows at the bottom
// (`append`, after the last page's `next`) and at the top (`prepend`, before the first page's
// `prev`), and pages far from what is shown are dropped (`dropAbove`, `dropBelow`) so memory
// stays bounded however far the user scrolls. Since every page is read from the first one
// down, `base` counts the rows before the window exactly (while the table does not change).

export class RowWindow {
  constructor() {
    this.reset();
  }

  reset() {
    this.base = 0; // the result's row number of rows[0]
    this.rows = []; // [[cell, …], …]
    this.keys = []; // the row key's values per row ([] when the table has no key)
    this.pages = []; // {count, prev, next}: the cursors around each loaded page
    this.version = 0; // bumped whenever an index may now hold another row
  }

  get loaded() {
    return this.pages.length > 0;
  }

  /** The window reaches the result's first row (its first page has no `prev`). */
  get atStart() {
    return this.loaded && this.pages[0].prev === null;
  }

  /** The window reaches the result's last row (its last page has no `next`). */
  get atEnd() {
    return this.loaded && this.pages.at(-1).next === null;
  }

  get end() {
    return this.base + this.rows.length;
  }

  /** The row at result index `i`, or undefined when it is not loaded. */
  row(i) {
    return this.rows[i - this.base];
  }

  key(i) {
    return this.keys[i - this.base];
  }

  has(i) {
    return i >= this.base && i < this.end;
  }

  /** The first page of a result: the window starts over from row 0. */
  start(page) {
    this.reset();
    this._push(page);
  }

  /** A page read after the last one. */
  append(page) {
    this._push(page);
  }

  _push(page) {
    this.rows.push(...page.rows);
    this.keys.push(...page.keys);
    this.pages.push({ count: page.rows.length, prev: page.prev, next: page.next });
  }

  /** A page read before the first one; returns how many rows every index moved by (> 0 when
   * the rows before the window turned out more than counted, e.g. rows inserted above, so
   * the caller keeps the same rows in view). */
  prepend(page) {
    const n = page.rows.length;
    this.rows.unshift(...page.rows);
    this.keys.unshift(...page.keys);
    this.pages.unshift({ count: n, prev: page.prev, next: page.next });
    let base = this.base - n;
    let shift = 0;
    // The first page: it starts at row 0 whatever was counted. More rows than counted above
    // (base < 0) or fewer (base > 0 at the start): renumber so the window starts right.
    if (base < 0 || (page.prev === null && base !== 0)) {
      shift = -base;
      base = 0;
    }
    this.base = base;
    this.version += 1;
    return shift;
  }

  /** Drop whole pages that end before result row `limit` while over `maxRows`. */
  dropAbove(limit, maxRows) {
    while (this.pages.length > 1 && this.rows.length > maxRows) {
      const first = this.pages[0];
      if (this.base + first.count > limit) break;
      this.rows.splice(0, first.count);
      this.keys.splice(0, first.count);
      this.pages.shift();
      this.base += first.count;
    }
  }

  /** Drop whole pages that start after result row `limit` while over `maxRows`. */
  dropBelow(limit, maxRows) {
    while (this.pages.length > 1 && this.rows.length > maxRows) {
      const last = this.pages.at(-1);
      if (this.end - last.count < limit) break;
      this.rows.splice(this.rows.length - last.count, last.count);
      this.keys.splice(this.keys.length - last.count, last.count);
      this.pages.pop();
    }
  }

  /** The index of the loaded row with key text `keyText` (JSON of its key), or -1. */
  find(keyText) {
    const at = this.keys.findIndex((k) => JSON.stringify(k) === keyText);
    return at < 0 ? -1 : this.base + at;
  }

  /** Replace row `i` (as read back after an edit). */
  replace(i, key, row) {
    this.rows[i - this.base] = row;
    this.keys[i - this.base] = key;
    this.version += 1;
  }

  /** Take row `i` out (deleted): the page holding it counts one row less. */
  remove(i) {
    let at = i - this.base;
    this.rows.splice(at, 1);
    this.keys.splice(at, 1);
    for (const page of this.pages) {
      if (at < page.count) {
        page.count -= 1;
        break;
      }
      at -= page.count;
    }
    this.version += 1;
  }
}
