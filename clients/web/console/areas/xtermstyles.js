// xterm.js under the console's Content-Security-Policy (`style-src 'self'`, no inline style).
//
// xterm.js 6 writes the rules that vary by terminal (its colours, cursor, selection, the
// scrollbar's slider, the DOM renderer's row layout) as the text of <style> elements it
// creates, and the DOM renderer gives true-colour cells a `style` attribute. The CSP refuses
// both (the page logs a violation for each, and the rules do not apply). Upstream moved to
// constructed style sheets once and went back (xtermjs/xterm.js#4611, reverted in #4680 over a
// Chromium crash when sheets were spliced out of `adoptedStyleSheets`), so the console does it
// here, without loosening the policy:
//
// - While xterm.js builds its elements (`styledBy`), `document.createElement("style")` gives
//   an inert <template> instead, whose text goes to ONE constructed style sheet adopted by the
//   document: the CSP does not govern constructed sheets. The sheet is adopted once and never
//   taken out (its text is rewritten), which avoids the pattern behind that crash.
// - The DOM renderer's row factory gets its `_addStyle` replaced by one that goes through the
//   CSSOM (`element.style`), which the CSP allows (`patchRowStyles`). This touches one private
//   method: tests/clients/test_console_shell.py fails (colour lost, a violation logged) if an
//   update of xterm.js moves it, which vendor/xterm/README.md says to check.

const holders = new Map(); // the <template> standing in for a <style> -> its CSS text
let sheet = null; // the one constructed sheet, adopted on first use
let queued = false;

function adopt() {
  if (sheet) return sheet;
  sheet = new CSSStyleSheet();
  document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
  return sheet;
}

/** Rewrite the sheet from the stand-ins in the document (once per task, however many
 * changed): a stand-in not (or no longer) in the document contributes nothing. */
function refresh() {
  queued = false;
  const text = [];
  for (const [holder, css] of holders) if (holder.isConnected) text.push(css);
  adopt().replaceSync(text.join("\n"));
}

function queueRefresh() {
  if (queued) return;
  queued = true;
  queueMicrotask(refresh);
}

/** A stand-in for a <style> element: holds its text (never rendered, never checked by the
 * CSP) and hands it to the constructed sheet. */
function styleHolder(create) {
  const holder = create.call(document, "template");
  holder.dataset.xtermStyle = "";
  holders.set(holder, "");
  Object.defineProperty(holder, "textContent", {
    configurable: true,
    get: () => holders.get(holder) ?? "",
    set: (css) => {
      holders.set(holder, String(css ?? ""));
      queueRefresh();
    },
  });
  holder.remove = () => {
    holders.delete(holder);
    Element.prototype.remove.call(holder);
    queueRefresh();
  };
  return holder;
}

/** Run `build` (xterm.js's open, loading or disposing a renderer) with every <style> it
 * creates replaced by a stand-in; its result. */
export function styledBy(build) {
  const create = Document.prototype.createElement;
  document.createElement = function (name, options) {
    if (String(name).toLowerCase() === "style") return styleHolder(create);
    return create.call(this, name, options);
  };
  try {
    return build();
  } finally {
    delete document.createElement; // the prototype's again
    queueRefresh(); // stand-ins connected by now (a terminal disposed: gone)
  }
}

function addStyle(element, declaration) {
  element.style.cssText += `${declaration};`;
}

/** Have the DOM renderer set its cells' colours through the CSSOM: its row factory's class
 * is found through `term`'s renderer (the DOM one, as after `open`) and changed for every
 * terminal from then on, renderers made again later (WebGL turned off, its context lost)
 * included; whether it was found. */
export function patchRowStyles(term) {
  const factory = term?._core?._renderService?._renderer?.value?._rowFactory;
  const kind = factory && Object.getPrototypeOf(factory);
  if (!kind || typeof kind._addStyle !== "function") return false;
  if (kind._addStyle !== addStyle) kind._addStyle = addStyle;
  return true;
}

/** Write the sheet again now (after a terminal was disposed, say). */
export function refreshStyles() {
  if (holders.size || sheet) refresh();
}
