// One attached terminal (README: Terminals on the wire) in xterm.js: its screen restored from the daemon's
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
// The most output xterm.js is given and has not parsed yet (it throws past 50 MB). Beyond it the
// view is stale: what arrives is acknowledged and dropped, and the terminal is attached again
// (a fresh replay) once xterm.js has caught up, or once a hidden tab is shown again. An
// interactive client never gets this far behind unless the daemon stopped waiting for it; a
// read-only one is never waited for.
const LAG_BYTES = 8 * 1024 * 1024;
// A hidden tab's timers are throttled (to one wake a minute, after five minutes), and xterm.js
// parses on timers: acknowledging only what it has parsed would soon pause the program. While
// hidden, what arrives is acknowledged at once, and dropped past this much not yet parsed.
const HIDDEN_LAG_BYTES = 2 * 1024 * 1024;
// A paste travels in pieces of at most this many bytes of UTF-8, each sent once the daemon took
// the one before; smaller ones when the daemon says its limit (terminals.max_input_bytes, at
// least 1 KiB) is lower.
const PASTE_BYTES = 32 * 1024;
// The daemon refuses input while the program leaves 1 MiB of it unread: the piece is offered
// again after each of these pauses, then the paste stops (and says how much got through).
const PASTE_RETRY_MS = [250, 500, 1000, 2000];
const LIMIT_EXCEEDED = -32040;
const RESET = [0x1b, 0x63]; // ESC c: the terminal's full reset, written before a replay
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

// Typed keys: up to this many UTF-16 units go as a notification (a key, an escape sequence).
const KEY_UNITS = 16;

/** Whether `params` (`{text}`, or `{data}`: a few bytes from xterm.js) is a key or a few. */
function isKey(params) {
  return params.text === undefined || params.text.length <= KEY_UNITS;
}

/** Where the piece of `text` starting at `at` ends: at most `budget` bytes of UTF-8 (one
 * character at least), never splitting a character. */
export function pieceEnd(text, at, budget) {
  let bytes = 0;
  let end = at;
  while (end < text.length) {
    const unit = text.charCodeAt(end);
    let size = unit < 0x80 ? 1 : unit < 0x800 ? 2 : 3;
    let units = 1;
    if (unit >= 0xd800 && unit <= 0xdbff && end + 1 < text.length) {
      const low = text.charCodeAt(end + 1);
      if (low >= 0xdc00 && low <= 0xdfff) [size, units] = [4, 2]; // a surrogate pair
    }
    if (end > at && bytes + size > budget) break;
    bytes += size;
    end += units;
  }
  return end;
}

const count = (n) => n.toLocaleString("en");
const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Open a link from the terminal (the web-links addon's, or an OSC 8 hyperlink's): on
 * Ctrl+click (⌘+click) only, a plain click being the terminal's (select, focus); http(s) only. */
function openLink(event, uri) {
  if (!(event.ctrlKey || event.metaKey)) return;
  let url;
  try {
    url = new URL(uri);
  } catch {
    return;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return;
  window.open(url.href, "_blank", "noopener,noreferrer");
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
    this._attaching = false; // an attach is on its way
    this._early = null; // while attaching: the notifications that came before its answer
    this._expected = 0; // the offset of the next byte to write
    this._consumed = 0; // written and processed by xterm.js up to here
    this._acked = 0;
    this._screen = 0; // counts the attaches: a write from before the last one no longer counts
    this._writing = 0; // writes (since the last attach) xterm.js has not processed yet
    this._replaying = 0; // replays xterm.js has not processed: what it answers is not typed
    this._stale = false; // output dropped (xterm.js too far behind): attach again for the screen
    this._queue = []; // what is typed behind a paste on its way
    this._typing = false; // a paste (and what was typed behind it) is on its way
    this._pieceBytes = PASTE_BYTES;
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
    this.detachButton = detach;
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
        "size does not change the terminal's. Ctrl+Shift+X leaves the terminal."
      : "Select to copy with Ctrl+Shift+C, paste with Ctrl+Shift+V, search with " +
        "Ctrl+Shift+F; Ctrl+click opens a link. Tab and Esc go to the program: " +
        "Ctrl+Shift+X leaves the terminal (to its Detach button).";
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
      // OSC 8 hyperlinks: as the links found in the text (xterm.js's own handler asks with
      // confirm() on a plain click).
      linkHandler: { activate: (event, uri) => openLink(event, uri) },
    });
    this.term = term;
    // The xterm.js Terminal, for the browser's developer tools (and the tests).
    this.host.terminal = term;
    this.fit = new FitAddon();
    this.search = new SearchAddon({ highlightLimit: 2000 });
    term.loadAddon(this.fit);
    term.loadAddon(this.search);
    term.loadAddon(new WebLinksAddon(openLink));
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

    // Back from a lost connection, the console mounts the area again: a new view attaches.
    const onState = ({ detail: { state } }) => {
      if (state === "open") return;
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
    // Shown again after output was dropped while hidden: the screen comes back from a replay.
    const onVisible = () => !document.hidden && this._resync();
    document.addEventListener("visibilitychange", onVisible);
    this._cleanups.push(() => document.removeEventListener("visibilitychange", onVisible));

    if (!this.readOnly) {
      this.fit.fit();
      const observer = new ResizeObserver(() => {
        clearTimeout(this._fitTimer);
        this._fitTimer = setTimeout(() => this._fit(), FIT_DELAY_MS);
      });
      observer.observe(this.host);
      this._cleanups.push(() => observer.disconnect());
      term.onResize(({ cols, rows }) => {
        if (this._attached && !this.exited) this._resize(cols, rows);
      });
    }
    await this._attach();
  }

  /** Give the terminal the keys (an interactive one that runs). */
  focus() {
    if (!this.readOnly && !this.exited) this.term?.focus();
  }

  _resize(cols, rows) {
    this.rpc.call("terminals.resize", { id: this.id, cols, rows }).catch(() => {});
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
    this._attaching = true;
    this.exited = null;
    this._early = [];
    this._setState("connecting", "Attaching…");
    const params = { id: this.id, readOnly: this.readOnly };
    if (!this.readOnly) Object.assign(params, { cols: term.cols, rows: term.rows });
    let answer;
    try {
      answer = await this.rpc.call("terminals.attach", params);
    } catch (error) {
      this._attaching = false;
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
    this._attaching = false;
    if (this._disposed) return; // (dispose sent the detach)
    this._lost = false;
    this._attached = true;
    // A new screen: the writes before it no longer count (nor wait to be acknowledged).
    this._screen += 1;
    this._writing = 0;
    this._stale = false;
    delete this.element.dataset.stale;
    if (this.readOnly) term.resize(answer.cols, answer.rows);
    this._expected = answer.offset;
    this._consumed = answer.start;
    this._acked = answer.start;
    this._replay(fromBase64(answer.replay), answer.offset);
    const early = this._early;
    this._early = null;
    if (answer.exited) this._finish(answer.exited);
    for (const later of early) later();
    if (!this.exited) {
      term.options.disableStdin = this.readOnly;
      this._setState("live", this.readOnly ? "Watching" : "Live");
      // Resized while the attach was on its way: the daemon has the size the attach carried.
      if (!this.readOnly && (term.cols !== answer.cols || term.rows !== answer.rows)) {
        this._resize(term.cols, term.rows);
      }
    }
  }

  async _reattach() {
    try {
      await this._attach();
    } catch {
      // Said in the state.
    }
  }

  /** Attach again for a fresh screen, if output was dropped (and the tab is shown, and xterm.js
   * has parsed what it was given). */
  _resync() {
    if (!this._stale || this._disposed || this._attaching || !this._attached) return;
    if (document.hidden || this._writing > 0) return; // then: when shown, when parsed
    this._reattach();
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
    if (params.replay) {
      // Behind the scrollback (a slow viewer): the screen starts again from what is kept. Its
      // data ends with the modes in force: live output goes on from `end`, not from the
      // offset plus its length.
      const end = params.end ?? params.offset + bytes.length;
      if (end <= this._expected) return;
      this._expected = end;
      if (!this._dropped(end)) this._replay(bytes, end);
      return;
    }
    const end = params.offset + bytes.length;
    if (end <= this._expected) return; // had it already (the replay held it)
    const skip = Math.max(0, this._expected - params.offset);
    this._expected = end;
    if (!this._dropped(end)) this._write(skip ? bytes.subarray(skip) : bytes, end);
  }

  /** Whether the output up to `end` is dropped instead of written: xterm.js would hold too much
   * not yet parsed (a flood to a read-only viewer, a hidden tab), and the view is stale until
   * attached again. Acknowledged all the same: the program is not paused for it. */
  _dropped(end) {
    const most = document.hidden ? HIDDEN_LAG_BYTES : LAG_BYTES;
    if (!this._stale && end - this._consumed > most) this._goStale();
    if (this._stale) this._ack(end);
    return this._stale;
  }

  _goStale() {
    this._stale = true;
    this.element.dataset.stale = "true";
    this._resync();
  }

  /** Write a replay (the attach's, or a resync's) on a screen reset in-band: after whatever
   * xterm.js still holds of the output before it. What xterm.js answers to the queries in it
   * (the program asked long ago) is not typed. */
  _replay(bytes, end) {
    const data = new Uint8Array(RESET.length + bytes.length);
    data.set(RESET);
    data.set(bytes, RESET.length);
    this._replaying += 1;
    this._write(data, end, () => {
      this._replaying -= 1;
    });
  }

  _write(bytes, end, done = null) {
    const screen = this._screen;
    this._writing += 1;
    try {
      this.term.write(bytes, () => {
        done?.();
        if (this._disposed || screen !== this._screen) return;
        this._writing -= 1;
        this._consumed = Math.max(this._consumed, end);
        if (this._writing === 0 || this._consumed - this._acked >= ACK_BYTES) {
          this._ack(this._consumed);
        }
        if (this._writing === 0) this._resync();
      });
    } catch (error) {
      // xterm.js refused it (it holds too much not yet parsed): the screen comes back from a
      // replay once it has caught up.
      console.warn("The terminal could not take more output; it is attached again:", error);
      this._writing -= 1;
      done?.();
      this._ack(end);
      this._goStale();
      return;
    }
    if (document.hidden) this._ack(end);
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
    // xterm.js answering the queries in a replay (device attributes, the cursor's position, a
    // colour): the program asked long ago, and was answered then, or by no one.
    if (this._replaying > 0) return;
    // A key (or a few) goes as a notification, as terminado's stdin does: no reply to send
    // before the echo, which is then one frame sooner. Its refusals are known here already
    // (read-only, exited; a gone terminal shows on re-attach). A paste goes as requests, one
    // after the other, so a refused one is said; what is typed meanwhile waits behind it.
    if (!this._typing && isKey(params)) {
      if (this.rpc.notify("terminals.input", { id: this.id, ...params })) return;
    }
    this._queue.push(params);
    if (!this._typing) this._send();
  }

  /** Send what waits to be typed, in order: keys as notifications, pastes in pieces. */
  async _send() {
    this._typing = true;
    try {
      while (this._queue.length && !this._disposed && !this.exited) {
        const params = this._queue.shift();
        if (isKey(params)) this.rpc.notify("terminals.input", { id: this.id, ...params });
        else await this._paste(params);
      }
    } finally {
      this._typing = false;
      this._queue.length = 0;
    }
  }

  /** Send a paste (any text longer than a key) in pieces, each once the daemon took the one
   * before: a refused piece never leaves a hole. */
  async _paste({ text }) {
    const total = text.length;
    let at = 0;
    let retries = 0;
    while (at < total) {
      if (this._disposed || this.exited) return;
      const end = pieceEnd(text, at, this._pieceBytes);
      try {
        await this.rpc.call("terminals.input", { id: this.id, text: text.slice(at, end) });
        at = end;
        retries = 0;
        continue;
      } catch (error) {
        if (this._disposed || this.exited) return;
        const words = String(error?.message ?? error);
        if (error?.code === LIMIT_EXCEEDED) {
          // Over the daemon's limit for one message: smaller pieces from here on.
          const limit = Number(/over the (\d+)-byte limit/.exec(words)?.[1]);
          if (limit && limit < this._pieceBytes) {
            this._pieceBytes = limit;
            continue;
          }
          // The program leaves its input unread (busy, or not reading at all): wait a little.
          if (/not reading its input/.test(words) && retries < PASTE_RETRY_MS.length) {
            await pause(PASTE_RETRY_MS[retries++]);
            continue;
          }
        }
        this._inputFailed(error, at, total);
        return;
      }
    }
  }

  /** Say that what was typed did not (all) reach the terminal: `sent` of `total` characters. */
  _inputFailed(error, sent, total) {
    if (error?.code === -32010) return; // it ended: terminal.exited says so
    if (error?.unreachable) return; // the state says so
    if (error?.code === -32001) {
      this._setState("gone", "Gone");
      this._say("This terminal is gone: it was removed, or the daemon restarted.");
      return;
    }
    const words = String(error?.message ?? error);
    if (error?.code === LIMIT_EXCEEDED && /not reading its input/.test(words)) {
      this._say(
        `The program is not reading its input: ${count(sent)} of ${count(total)} characters ` +
          "of the paste reached it; the rest was not sent.",
      );
    } else if (sent > 0) {
      this._say(
        `Only ${count(sent)} of ${count(total)} characters of the paste reached the ` +
          `terminal: ${words}.`,
      );
    } else {
      this._say(`What you typed did not reach the terminal: ${words}.`);
    }
  }

  _key(event) {
    const mod = event.ctrlKey && event.shiftKey && !event.altKey && !event.metaKey;
    if (!mod) return true;
    // The letter on the key, or, where the layout has none (Cyrillic, Greek…), the letter at
    // its place on a US keyboard (event.code): Ctrl+Shift+F is found on every layout.
    const letter = /^[a-z]$/i.test(event.key)
      ? event.key.toLowerCase()
      : (/^Key([A-Z])$/.exec(event.code)?.[1].toLowerCase() ?? null);
    const act = (what) => {
      if (event.type === "keydown") {
        event.preventDefault();
        what();
      }
      return false;
    };
    if (letter === "f") return act(() => this.openSearch());
    if (letter === "c") return act(() => this.copy());
    // Tab and Esc are the program's: Ctrl+Shift+X is the way out of the terminal.
    if (letter === "x") return act(() => this.detachButton.focus());
    // Ctrl+Shift+V: left to the browser, whose paste event xterm.js turns into input.
    return letter !== "v";
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
    // While the attach is on its way too: answered in order, the detach comes after it.
    if ((this._attached || this._attaching) && !this._lost) {
      this.rpc.call("terminals.detach", { id: this.id }).catch(() => {});
    }
    this._attached = false;
    this._attaching = false;
    this._queue.length = 0;
    const term = this.term;
    this.term = null;
    if (term) styledBy(() => term.dispose());
    delete this.host.terminal;
    refreshStyles();
  }
}
