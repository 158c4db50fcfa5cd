// One attached terminal (DESIGN.md §11) in xterm.js: its screen restored from the daemon's
// replay, its output followed and acknowledged (flow control), what is typed sent back, its
// size kept to the space it has; search, links, copy and paste. Read-only, it only watches.

import { FitAddon } from "/static/vendor/xterm/addon-fit/addon-fit.mjs";
import { SearchAddon } from "/static/vendor/xterm/addon-search/addon-search.mjs";
import { WebLinksAddon } from "/static/vendor/xterm/addon-web-links/addon-web-links.mjs";
import { WebglAddon } from "/static/vendor/xterm/addon-webgl/addon-webgl.mjs";
import { Terminal } from "/static/vendor/xterm/xterm/xterm.mjs";
import { h } from "../dom.js";
import { patchRowStyles, refreshStyles, styledBy } from "./xtermstyles.js";

// Acknowledge at least every ACK_BYTES written (and whenever xterm.js has caught up): the
// daemon pauses the program while an interactive client is 256 KiB behind.
const ACK_BYTES = 64 * 1024;
// A hidden tab's timers are throttled (to one wake a minute, after five minutes), and xterm.js
// parses on timers: acknowledging only what it has parsed would soon pause the program. While
// hidden, what arrives is acknowledged at once, as long as xterm.js holds less than this much
// still to parse (it refuses more than 50 MB).
const HIDDEN_LAG_BYTES = 8 * 1024 * 1024;
// What is typed travels in pieces the daemon accepts (64 KiB of UTF-8 at most): 16,000 UTF-16
// units are 48,000 bytes at most.
const INPUT_UNITS = 16_000;
const FIT_DELAY_MS = 80;
const WEBGL_KEY = "simpleaide.shell.webgl"; // "off": draw with the DOM renderer
const FONT = 'ui-monospace, "Cascadia Mono", "DejaVu Sans Mono", Menlo, Consolas, monospace';

// The console's colours (Primer's terminal palettes), light and dark.
const THEMES = {
  light: {
    background: "#ffffff", foreground: "#1f2328", cursor: "#1f2328", cursorAccent: "#ffffff",
    selectionBackground: "#add6ff", black: "#24292f", red: "#cf222e", green: "#116329",
    yellow: "#4d2d00", blue: "#0969da", magenta: "#8250df", cyan: "#1b7c83", white: "#6e7781",
    brightBlack: "#57606a", brightRed: "#a40e26", brightGreen: "#1a7f37", brightYellow: "#633c01",
    brightBlue: "#218bff", brightMagenta: "#a475f9", brightCyan: "#3192aa", brightWhite: "#8c959f",
  },
  dark: {
    background: "#0d1117", foreground: "#e6edf3", cursor: "#e6edf3", cursorAccent: "#0d1117",
    selectionBackground: "#264f78", black: "#484f58", red: "#ff7b72", green: "#3fb950",
    yellow: "#d29922", blue: "#58a6ff", magenta: "#bc8cff", cyan: "#39c5cf", white: "#b1bac4",
    brightBlack: "#6e7681", brightRed: "#ffa198", brightGreen: "#56d364", brightYellow: "#e3b341",
    brightBlue: "#79c0ff", brightMagenta: "#d2a8ff", brightCyan: "#56d4dd", brightWhite: "#ffffff",
  },
};
const MATCHES = {
  light: { matchBackground: "#fff8c5", activeMatchBackground: "#ffd33d" },
  dark: { matchBackground: "#614c00", activeMatchBackground: "#9e6a03" },
};

/** The bytes of a base64 text. */
export function fromBase64(text) {
  const raw = atob(text ?? "");
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return bytes;
}

/** "exited with code 0", "ended by SIGKILL". */
export function exitWords(exited) {
  if (!exited) return "running";
  if (exited.signal) return `ended by ${exited.signal}`;
  return `exited with code ${exited.code}`;
}

/** `text` in pieces the daemon accepts, never splitting a character. */
// Typed keys: up to this many UTF-16 units go as a notification (a key, an escape sequence).
const KEY_UNITS = 16;

function pieces(text) {
  const out = [];
  let at = 0;
  while (at < text.length) {
    let end = Math.min(at + INPUT_UNITS, text.length);
    const last = text.charCodeAt(end - 1);
    if (end < text.length && last >= 0xd800 && last <= 0xdbff) end -= 1; // a pair's first half
    out.push(text.slice(at, end));
    at = end;
  }
  return out;
}

function webglWanted() {
  try {
    return localStorage.getItem(WEBGL_KEY) !== "off";
  } catch {
    return true;
  }
}

function rememberWebgl(on) {
  try {
    if (on) localStorage.removeItem(WEBGL_KEY);
    else localStorage.setItem(WEBGL_KEY, "off");
  } catch {
    // Not kept: the next terminal tries WebGL again.
  }
}

function scheme() {
  return matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

/**
 * A terminal attached over `rpc`: `element` is its section (toolbar, search bar, screen).
 * `onChange(view)` hears of every change of `state` ("connecting", "live", "exited", "gone",
 * "offline", "failed") and `exited`; `onDetach()` is called by its Detach button.
 */
export class TerminalView {
  constructor({ rpc, id, name, readOnly, onChange = () => {}, onDetach = () => {} }) {
    this.rpc = rpc;
    this.id = id;
    this.name = name ?? id;
    this.readOnly = readOnly;
    this.onChange = onChange;
    this.state = "connecting";
    this.exited = null;
    this.words = "";
    this._disposed = false;
    this._lost = false; // the connection dropped since the attach: nothing to detach
    this._attached = false;
    this._early = null; // while attaching: the notifications that came before its answer
    this._expected = 0; // the offset of the next byte to write
    this._consumed = 0; // written and processed by xterm.js up to here
    this._acked = 0;
    this._writing = 0; // writes xterm.js has not processed yet
    this._cleanups = [];
    this._fitTimer = 0;
    this._build(onDetach);
  }

  // --- the elements -------------------------------------------------------------------------

  _build(onDetach) {
    this.title = h("h2", { class: "terminal-title" }, this.name);
    this.mode = h(
      "span",
      { class: `badge badge-${this.readOnly ? "readonly" : "interactive"}` },
      this.readOnly ? "read-only" : "interactive",
    );
    this.status = h("span", { class: "terminal-state", role: "status" });
    this.searchButton = h(
      "button",
      { type: "button", class: "terminal-search-open", "aria-expanded": "false" },
      "Search",
    );
    this.webglBox = h("input", { type: "checkbox", class: "terminal-webgl" });
    this.webglBox.checked = webglWanted();
    const detach = h("button", { type: "button", class: "terminal-detach" }, "Detach");
    detach.addEventListener("click", () => onDetach());
    this.searchButton.addEventListener("click", () => this.openSearch());
    this.webglBox.addEventListener("change", () => {
      rememberWebgl(this.webglBox.checked);
      this._useRenderer(this.webglBox.checked);
    });

    this.searchField = h("input", {
      type: "search",
      class: "terminal-search-text",
      "aria-label": "Search the terminal",
      placeholder: "Search the terminal",
      autocomplete: "off",
      spellcheck: "false",
    });
    this.searchCount = h("span", { class: "terminal-search-count", "aria-live": "polite" });
    const previous = h("button", { type: "button", class: "terminal-search-previous" }, "Previous");
    const next = h("button", { type: "submit", class: "terminal-search-next" }, "Next");
    const close = h("button", { type: "button", class: "terminal-search-close" }, "Close");
    this.searchForm = h(
      "form",
      { class: "terminal-search", role: "search", hidden: true },
      this.searchField,
      previous,
      next,
      close,
      this.searchCount,
    );
    this.searchForm.addEventListener("submit", (event) => {
      event.preventDefault();
      this._find(true);
    });
    previous.addEventListener("click", () => this._find(false));
    close.addEventListener("click", () => this.closeSearch());
    this.searchField.addEventListener("input", () => this._find(true, { incremental: true }));
    this.searchField.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        this.closeSearch();
      } else if (event.key === "Enter" && event.shiftKey) {
        event.preventDefault();
        this._find(false);
      }
    });

    this.host = h("div", {
      class: "terminal-host",
      role: "region",
      "aria-label": `Terminal ${this.name}`,
    });
    this.note = h("p", { class: "terminal-note", role: "alert", hidden: true });
    const hint = this.readOnly
      ? "Read-only: you watch; nothing you type reaches the program, and your window's " +
        "size does not change the terminal's."
      : "Select to copy with Ctrl+Shift+C, paste with Ctrl+Shift+V, search with " +
        "Ctrl+Shift+F; Ctrl+click opens a link.";
    this.element = h(
      "section",
      {
        class: "terminal-view",
        "aria-labelledby": `terminal-title-${this.id}`,
        dataset: { id: this.id, mode: this.readOnly ? "read-only" : "interactive" },
      },
      h(
        "div",
        { class: "terminal-bar" },
        this.title,
        this.mode,
        this.status,
        h(
          "span",
          { class: "terminal-tools" },
          this.searchButton,
          h(
            "label",
            {
              class: "terminal-webgl-label",
              title: "Draw with the GPU (WebGL); turn it off if the terminal shows glitches",
            },
            this.webglBox,
            " WebGL",
          ),
          detach,
        ),
      ),
      this.searchForm,
      this.note,
      this.host,
      h("p", { class: "hint terminal-hint" }, hint),
    );
    this.title.id = `terminal-title-${this.id}`;
    this._setState("connecting", "Connecting…");
  }

  _setState(state, words) {
    this.state = state;
    this.words = words;
    this.element.dataset.state = state;
    this.status.textContent = words;
    this.onChange(this);
  }

  /** Say `words` above the screen (null: nothing). */
  _say(words) {
    this.note.hidden = !words;
    this.note.textContent = words ?? "";
  }

  rename(name) {
    this.name = name;
    this.title.textContent = name;
    this.host.setAttribute("aria-label", `Terminal ${name}`);
  }

  // --- xterm.js -----------------------------------------------------------------------------

  /** Make the screen (once the element is in the page) and attach; rejects with the
   * attach's error. */
  async open() {
    const look = scheme();
    const term = new Terminal({
      allowProposedApi: true, // the search addon's highlights are decorations
      fontFamily: FONT,
      fontSize: 14,
      scrollback: 10_000,
      theme: THEMES[look],
      disableStdin: this.readOnly,
      cursorBlink: !this.readOnly,
      macOptionIsMeta: true,
    });
    this.term = term;
    // The xterm.js Terminal, for the browser's developer tools (and the tests).
    this.host.terminal = term;
    this.fit = new FitAddon();
    this.search = new SearchAddon({ highlightLimit: 2000 });
    term.loadAddon(this.fit);
    term.loadAddon(this.search);
    term.loadAddon(
      new WebLinksAddon((event, uri) => {
        if (event.ctrlKey || event.metaKey) window.open(uri, "_blank", "noopener,noreferrer");
      }),
    );
    styledBy(() => term.open(this.host));
    // While the DOM renderer is the one in use (as after open): before it draws a cell.
    if (!patchRowStyles(term)) console.warn("xterm.js changed: true colours need inline styles");
    this._useRenderer(this.webglBox.checked);

    // (What xterm.js and its addons hand out goes with term.dispose(); the rest is undone here.)
    this.search.onDidChangeResults(({ resultIndex, resultCount }) => {
      this.searchCount.textContent = !this.searchField.value
        ? ""
        : resultCount === 0
          ? "No match"
          : resultIndex < 0
            ? `${resultCount} matches`
            : `${resultIndex + 1} of ${resultCount}`;
    });
    term.onData((text) => this._type({ text }));
    term.onBinary((binary) => this._type({ data: btoa(binary) }));
    this._cleanups.push(
      this.rpc.on("terminal.output", (params) => this._output(params)),
      this.rpc.on("terminal.exited", (params) => this._exit(params)),
    );
    term.attachCustomKeyEventHandler((event) => this._key(event));

    const dark = matchMedia("(prefers-color-scheme: dark)");
    const onScheme = () => {
      term.options.theme = THEMES[scheme()];
      if (this.searchField.value) this._find(true, { incremental: true });
    };
    dark.addEventListener("change", onScheme);
    this._cleanups.push(() => dark.removeEventListener("change", onScheme));

    const onState = ({ detail: { state } }) => {
      if (state === "open") {
        // Back (if the page did not start the area again): attach again, screen restored.
        if (this._lost && !this._disposed) this._reattach();
        return;
      }
      this._lost = true;
      this._attached = false;
      term.options.disableStdin = true;
      this._setState(
        "offline",
        "Connection lost: the terminal comes back with its screen when the daemon answers again.",
      );
    };
    this.rpc.addEventListener("state", onState);
    this._cleanups.push(() => this.rpc.removeEventListener("state", onState));

    if (!this.readOnly) {
      this.fit.fit();
      const observer = new ResizeObserver(() => {
        clearTimeout(this._fitTimer);
        this._fitTimer = setTimeout(() => this._fit(), FIT_DELAY_MS);
      });
      observer.observe(this.host);
      this._cleanups.push(() => observer.disconnect());
      term.onResize(({ cols, rows }) => {
        if (this._attached && !this.exited) {
          this.rpc.call("terminals.resize", { id: this.id, cols, rows }).catch(() => {});
        }
      });
    }
    await this._attach();
  }

  /** The DOM renderer, or WebGL on top of it when asked for and the browser has it. */
  _useRenderer(webgl) {
    const term = this.term;
    if (!term) return;
    if (this._webgl && !webgl) {
      const addon = this._webgl;
      this._webgl = null;
      styledBy(() => addon.dispose()); // xterm.js puts its DOM renderer back
    } else if (!this._webgl && webgl) {
      let addon = null;
      try {
        addon = new WebglAddon();
        styledBy(() => term.loadAddon(addon));
        this._webgl = addon;
        addon.onContextLoss(() => {
          // The GPU took the context back (driver reset, too many contexts): go on drawing
          // with the DOM.
          if (this._webgl === addon) this._useRenderer(false);
          this._webgl = null;
        });
      } catch (error) {
        console.info("WebGL unavailable for the terminal; drawing with the DOM:", error);
        this._webgl = null;
        try {
          styledBy(() => addon?.dispose());
        } catch {
          // Half made: what is left goes with the terminal.
        }
      }
    }
    const renderer = this._webgl ? "webgl" : "dom";
    this.element.dataset.renderer = renderer;
    this.webglBox.checked = renderer === "webgl";
  }

  _fit() {
    if (this._disposed || this.readOnly || !this.host.isConnected) return;
    try {
      this.fit.fit();
    } catch {
      // No size yet (hidden): the next resize fits it.
    }
  }

  // --- attaching ----------------------------------------------------------------------------

  async _attach() {
    const term = this.term;
    this._attached = false;
    this.exited = null;
    this._early = [];
    this._setState("connecting", "Attaching…");
    const params = { id: this.id, readOnly: this.readOnly };
    if (!this.readOnly) Object.assign(params, { cols: term.cols, rows: term.rows });
    let answer;
    try {
      answer = await this.rpc.call("terminals.attach", params);
    } catch (error) {
      this._early = null;
      if (this._disposed) return;
      if (error?.code === -32001) {
        this._setState("gone", "Gone");
      } else if (error?.unreachable) {
        this._lost = true;
        this._setState("offline", "The daemon is unreachable; the terminal comes back with it.");
      } else {
        this._setState("failed", `Cannot attach: ${error?.message ?? error}.`);
      }
      throw error;
    }
    if (this._disposed) return;
    this._lost = false;
    this._attached = true;
    if (this.readOnly) term.resize(answer.cols, answer.rows);
    term.reset();
    this._expected = answer.offset;
    this._consumed = answer.start;
    this._acked = answer.start;
    this._write(fromBase64(answer.replay), answer.offset);
    const early = this._early;
    this._early = null;
    if (answer.exited) this._finish(answer.exited);
    for (const later of early) later();
    if (!this.exited) {
      term.options.disableStdin = this.readOnly;
      this._setState("live", this.readOnly ? "Watching" : "Live");
      if (!this.readOnly) term.focus();
    }
  }

  async _reattach() {
    try {
      await this._attach();
    } catch {
      // Said in the state.
    }
  }

  /** A read-only view follows the terminal's size (the list tells it). */
  follow(info) {
    if (!this.term || !this.readOnly || !this._attached) return;
    if (info.cols !== this.term.cols || info.rows !== this.term.rows) {
      this.term.resize(info.cols, info.rows);
    }
  }

  // --- output -------------------------------------------------------------------------------

  _output(params) {
    if (this._disposed || params?.id !== this.id) return;
    if (this._early) {
      this._early.push(() => this._output(params));
      return;
    }
    if (!this._attached) return;
    const bytes = fromBase64(params.data);
    const end = params.offset + bytes.length;
    if (params.replay) {
      // Behind the scrollback (a slow viewer): the screen starts again from what is kept.
      if (end <= this._expected) return;
      this.term.reset();
      this._expected = end;
      this._write(bytes, end);
      return;
    }
    if (end <= this._expected) return; // had it already (the replay held it)
    const skip = Math.max(0, this._expected - params.offset);
    this._expected = end;
    this._write(skip ? bytes.subarray(skip) : bytes, end);
  }

  _write(bytes, end) {
    this._writing += 1;
    this.term.write(bytes, () => {
      this._writing -= 1;
      this._consumed = Math.max(this._consumed, end);
      if (this._writing === 0 || this._consumed - this._acked >= ACK_BYTES) {
        this._ack(this._consumed);
      }
    });
    if (document.hidden && end - this._consumed <= HIDDEN_LAG_BYTES) this._ack(end);
  }

  _ack(offset) {
    if (this._disposed || !this._attached || offset <= this._acked) return;
    // A notification: the daemon needs no more, and the page no answer.
    if (this.rpc.notify("terminals.ack", { id: this.id, offset })) this._acked = offset;
  }

  _exit(params) {
    if (this._disposed || params?.id !== this.id) return;
    if (this._early) {
      this._early.push(() => this._exit(params));
      return;
    }
    if (!this._attached || this.exited) return;
    this._finish({ code: params.code ?? null, signal: params.signal ?? null });
  }

  /** The program has ended: say so on the screen (after its last output) and above it. */
  _finish(exited) {
    this.exited = exited;
    const term = this.term;
    term.options.disableStdin = true;
    term.write("", () => {
      const fresh = term.buffer.active.cursorX === 0 ? "" : "\r\n";
      term.write(`${fresh}\x1b[0m\x1b[2m[process ${exitWords(exited)}]\x1b[0m\r\n\x1b[?25l`);
    });
    this._setState("exited", `The program ${exitWords(exited)}.`);
  }

  // --- input --------------------------------------------------------------------------------

  _type(params) {
    if (this.readOnly || this.exited || !this._attached || this._disposed) return;
    // A key (or a few) goes as a notification, as terminado's stdin does: no reply to send
    // before the echo, which is then one frame sooner. Its refusals are known here already
    // (read-only, exited; a gone terminal shows on re-attach). A paste goes as requests, so
    // a refused one is said.
    const key = (params.text?.length ?? 4) <= KEY_UNITS;
    if (key && this.rpc.notify("terminals.input", { id: this.id, ...params })) return;
    const parts = params.text !== undefined ? pieces(params.text).map((text) => ({ text })) : [params];
    for (const part of parts) {
      this.rpc.call("terminals.input", { id: this.id, ...part }).catch((error) => {
        if (this._disposed || this.exited) return;
        if (error?.code === -32010) return; // it ended: terminal.exited says so
        if (error?.unreachable) return; // the state says so
        if (error?.code === -32001) {
          this._setState("gone", "Gone");
          this._say("This terminal is gone: it was removed, or the daemon restarted.");
          return;
        }
        this._say(`What you typed did not reach the terminal: ${error?.message ?? error}.`);
      });
    }
  }

  _key(event) {
    const mod = event.ctrlKey && event.shiftKey && !event.altKey && !event.metaKey;
    if (!mod) return true;
    const key = event.key.toLowerCase();
    if (key === "f") {
      if (event.type === "keydown") {
        event.preventDefault();
        this.openSearch();
      }
      return false;
    }
    if (key === "c") {
      if (event.type === "keydown") {
        event.preventDefault();
        this.copy();
      }
      return false;
    }
    // Ctrl+Shift+V: left to the browser, whose paste event xterm.js turns into input.
    return key !== "v";
  }

  /** Copy the selection to the clipboard. */
  async copy() {
    const text = this.term?.getSelection() ?? "";
    if (!text) return;
    try {
      await navigator.clipboard.writeText(text);
      this._say(null);
    } catch {
      this._say("The browser did not let the page copy: use its Copy command instead.");
    }
  }

  // --- search -------------------------------------------------------------------------------

  openSearch() {
    this.searchForm.hidden = false;
    this.searchButton.setAttribute("aria-expanded", "true");
    const selected = this.term?.getSelection();
    if (selected && !selected.includes("\n")) this.searchField.value = selected;
    this.searchField.focus();
    this.searchField.select();
  }

  closeSearch() {
    this.searchForm.hidden = true;
    this.searchButton.setAttribute("aria-expanded", "false");
    this.searchCount.textContent = "";
    this.search?.clearDecorations();
    this.term?.focus();
  }

  _find(forward, { incremental = false } = {}) {
    const text = this.searchField.value;
    if (!this.search) return;
    if (!text) {
      this.search.clearDecorations();
      this.searchCount.textContent = "";
      return;
    }
    const look = MATCHES[scheme()];
    const options = {
      incremental,
      decorations: {
        ...look,
        matchOverviewRuler: look.activeMatchBackground,
        activeMatchColorOverviewRuler: look.activeMatchBackground,
      },
    };
    const found = forward
      ? this.search.findNext(text, options)
      : this.search.findPrevious(text, options);
    if (!found) this.searchCount.textContent = "No match";
  }

  // --- the end ------------------------------------------------------------------------------

  /** Stop following (detach, unless the connection that attached is gone) and free it all. */
  dispose() {
    if (this._disposed) return;
    this._disposed = true;
    clearTimeout(this._fitTimer);
    for (const cleanup of this._cleanups.splice(0)) {
      try {
        cleanup();
      } catch {
        // Already gone.
      }
    }
    if (this._attached && !this._lost && this.rpc.state === "open") {
      this.rpc.call("terminals.detach", { id: this.id }).catch(() => {});
    }
    this._attached = false;
    const term = this.term;
    this.term = null;
    if (term) styledBy(() => term.dispose());
    delete this.host.terminal;
    refreshStyles();
  }
}
