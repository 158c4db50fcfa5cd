// <simpleaide-status>: SimpleAide's web status header (README: The chips). One ES module, no build
// step, no dependencies:
//
//   <script type="module" src="/static/simpleaide-status.js"></script>
//   <simpleaide-status></simpleaide-status>
//
// It shows the five chips of the status document (Env, Vault, DB, LLM, Runs) in the daemon's own
// words (`chips`: text, tooltip, level, href), plus "⚠ N" when the document has `warnings`.
// Each chip is a link to its area; its tooltip shows on hover and on keyboard focus.
//
// Attributes
//   src          the status URL (default "/api/status")
//   interval     milliseconds between polls and between retries (default 4000; 3000-5000 is
//                what the header is meant to use, anything from 250 is accepted)
//   stream       "auto" (default): Server-Sent Events from `${src}/stream`, falling back to
//                polling when the stream fails (and trying it again later); "off": polling only
//   href-env, href-vault, href-db, href-llm, href-runs
//                where a chip leads, instead of the chip's own `href` ("#/runs", …)
//   token        the console's key, sent as `Authorization: Bearer` (the shim asks for it
//                unless `http.public_status` is on); an EventSource cannot send it, so with a
//                token the element polls (`stream` is then ignored)
//   mode         "fetch" (default): the element reads `src` itself; "feed": it reads nothing
//                and shows what the page gives it with `feed(document)` and
//                `feedUnreachable(where, reason)` (the web console feeds it from its
//                `status.subscribe` over the WebSocket)
// Reflected by the element (read them, do not set them)
//   state        "loading" | "ok" | "unreachable"
//   transport    "stream" | "poll" | "feed"
// Properties: `lastDocument` (the last status document received, or null), `state`,
// `transport`; method `refresh()` (poll now). Event `statuschange` (detail: {state, document})
// when a new document arrives or the state changes.
//
// Styling: the custom properties --sa-ok, --sa-info, --sa-warn, --sa-bad, --sa-off, --sa-checking
// (chip colours by level; "checking": a state not known yet, drawn with a dashed border),
// --sa-tip-bg, --sa-tip-fg; parts "bar", "item", "chip" (and "chip-runs", …), "tooltip".

const NAMES = ["env", "vault", "db", "llm", "runs"];
const DEFAULT_SRC = "/api/status";
const DEFAULT_INTERVAL_MS = 4000;
const MIN_INTERVAL_MS = 250;
const MAX_INTERVAL_MS = 3_600_000;
const MAX_STREAM_BACKOFF_MS = 60_000;
// The shim sends an event at least every 5 s (the document, or a "ping"); a stream silent for
// this long belongs to a daemon that stopped answering, though its socket may still be open.
const STREAM_SILENCE_MS = 12_000;
const LEVELS = new Set(["ok", "info", "warn", "bad", "off", "checking"]);

const STYLE = `
:host {
  display: block;
  font: 600 12px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  --sa-ok: #1a7f37; --sa-info: #0969da; --sa-warn: #9a6700; --sa-bad: #cf222e; --sa-off: #6e7781;
  --sa-checking: #8250df;
  --sa-tip-bg: #1f2328; --sa-tip-fg: #ffffff;
}
@media (prefers-color-scheme: dark) {
  :host {
    --sa-ok: #3fb950; --sa-info: #58a6ff; --sa-warn: #d29922; --sa-bad: #f85149; --sa-off: #8b949e;
    --sa-checking: #a371f7;
    --sa-tip-bg: #f0f6fc; --sa-tip-fg: #1f2328;
  }
}
:host([hidden]) { display: none; }
nav { display: flex; flex-wrap: wrap; align-items: center; gap: 4px; }
.item { position: relative; display: inline-flex; }
.chip {
  --c: var(--sa-off);
  display: inline-flex; align-items: center;
  padding: 0 8px; border-radius: 999px; white-space: nowrap;
  color: var(--c); text-decoration: none; cursor: default;
  border: 1px solid var(--c);
  border-color: color-mix(in srgb, var(--c) 45%, transparent);
  background: color-mix(in srgb, var(--c) 10%, transparent);
}
a.chip { cursor: pointer; }
.chip[data-level="ok"] { --c: var(--sa-ok); }
.chip[data-level="info"] { --c: var(--sa-info); }
.chip[data-level="warn"] { --c: var(--sa-warn); }
.chip[data-level="bad"] { --c: var(--sa-bad); }
.chip[data-level="off"] { --c: var(--sa-off); }
.chip[data-level="checking"] { --c: var(--sa-checking); border-style: dashed; }
.chip:hover { background: color-mix(in srgb, var(--c) 22%, transparent); }
.chip:focus { outline: none; }
.chip:focus-visible { outline: 2px solid var(--c); outline-offset: 1px; }
.tip {
  display: none; position: absolute; top: calc(100% + 4px); left: 0; z-index: 1000;
  width: max-content; max-width: min(36em, 90vw); padding: 4px 8px; border-radius: 4px;
  background: var(--sa-tip-bg); color: var(--sa-tip-fg);
  font-weight: 400; white-space: pre-line; box-shadow: 0 2px 8px rgb(0 0 0 / 25%);
}
.item:hover > .tip, .item:focus-within > .tip { display: block; }
.item.dismissed > .tip { display: none; }
`;

let sheet = null;

/** The element's style sheet, made once and shared by every instance. */
function sharedSheet() {
  if (!sheet) {
    sheet = new CSSStyleSheet();
    sheet.replaceSync(STYLE);
  }
  return sheet;
}

/** `value` if it is a link that is safe to follow (a relative or http(s) URL), else null. */
function safeHref(value) {
  if (typeof value !== "string" || !value.trim()) return null;
  try {
    const url = new URL(value, document.baseURI);
    return url.protocol === "http:" || url.protocol === "https:" ? value : null;
  } catch {
    return null;
  }
}

/** "4 s", "0.5 s". */
function seconds(ms) {
  return `${Number((ms / 1000).toFixed(1))} s`;
}

class SimpleAideStatus extends HTMLElement {
  static get observedAttributes() {
    return ["src", "interval", "stream", "token", "mode", ...NAMES.map((name) => `href-${name}`)];
  }

  constructor() {
    super();
    const root = this.attachShadow({ mode: "open" });
    // A constructed style sheet, not a <style> element: a page with a strict
    // Content-Security-Policy (the console's: no inline style) applies it all the same.
    if (typeof CSSStyleSheet === "function" && "adoptedStyleSheets" in root) {
      root.adoptedStyleSheets = [sharedSheet()];
      root.innerHTML = `<nav part="bar" aria-label="SimpleAide status"></nav>`;
    } else {
      root.innerHTML = `<style>${STYLE}</style><nav part="bar" aria-label="SimpleAide status"></nav>`;
    }
    this._bar = root.querySelector("nav");
    this._doc = null; // the last status document
    this._etag = null; // its ETag, for If-None-Match
    this._problem = null; // why the daemon is unreachable, while it is
    this._state = "loading";
    this._transport = null;
    this._run = 0; // bumped by every (re)start and stop: callbacks of older runs do nothing
    this._started = false;
    this._timer = 0;
    this._source = null; // the EventSource while streaming
    this._abort = null; // the AbortController of the fetch in flight
    this._streamFailures = 0;
    this._streamRetryAt = 0;
    this._keys = ""; // the items on show, to update them in place when they stay the same
    // Escape hides an open tooltip until the pointer or focus leaves its chip (WCAG 1.4.13).
    root.addEventListener("keydown", (event) => {
      if (event.key !== "Escape") return;
      for (const item of this._bar.querySelectorAll(".item:hover, .item:focus-within")) {
        item.classList.add("dismissed");
      }
    });
    const undismiss = (event) => {
      const item = event.target.closest?.(".item");
      if (item && !item.contains(event.relatedTarget)) item.classList.remove("dismissed");
    };
    root.addEventListener("pointerout", undismiss);
    root.addEventListener("focusout", undismiss);
  }

  // --- attributes and properties ---

  get src() {
    return this.getAttribute("src") || DEFAULT_SRC;
  }

  get interval() {
    const value = Number(this.getAttribute("interval"));
    if (!this.hasAttribute("interval") || !Number.isFinite(value) || value <= 0) {
      return DEFAULT_INTERVAL_MS;
    }
    return Math.min(Math.max(Math.round(value), MIN_INTERVAL_MS), MAX_INTERVAL_MS);
  }

  get stream() {
    return (this.getAttribute("stream") || "auto").toLowerCase() === "off" ? "off" : "auto";
  }

  get token() {
    return this.getAttribute("token") || null;
  }

  get mode() {
    return (this.getAttribute("mode") || "fetch").toLowerCase() === "feed" ? "feed" : "fetch";
  }

  /** Show `doc` (mode "feed"): a status document from the page's own connection. */
  feed(doc) {
    if (!Array.isArray(doc?.chips)) return;
    this._setTransport("feed");
    this._accept(doc);
  }

  /** Show the daemon as unreachable (mode "feed"): `where` it was asked, and why not. */
  feedUnreachable(where, reason) {
    this._setTransport("feed");
    this._unreachable(new URL(where, document.baseURI), reason);
  }

  /** The last status document received (null before the first). */
  get lastDocument() {
    return this._doc;
  }

  /** "loading" | "ok" | "unreachable". */
  get state() {
    return this._state;
  }

  /** "stream" | "poll" (null before the start). */
  get transport() {
    return this._transport;
  }

  /** Ask for the status now (a poll, unless the stream is on). */
  refresh() {
    if (this._started && !this._source && this.mode !== "feed") this._start();
  }

  connectedCallback() {
    this._started = true;
    this._reflect("state", this._state);
    this._render();
    this._start();
  }

  disconnectedCallback() {
    this._started = false;
    this._stop();
  }

  attributeChangedCallback(name, oldValue, newValue) {
    if (oldValue === newValue) return;
    if (name.startsWith("href-")) {
      this._render();
      return;
    }
    if (name === "src" || name === "token") this._etag = null;
    if (this._started) this._start();
  }

  // --- fetching ---

  _url() {
    return new URL(this.src, document.baseURI);
  }

  _streamUrl() {
    const url = this._url();
    url.pathname = `${url.pathname.replace(/\/+$/, "")}/stream`;
    return url;
  }

  _useStream() {
    return this.stream === "auto" && !this.token && typeof EventSource === "function";
  }

  _start() {
    this._stop();
    if (this.mode === "feed") return; // the page feeds it
    const run = this._run;
    if (this._useStream() && Date.now() >= this._streamRetryAt) this._openStream(run);
    else this._poll(run);
  }

  _stop() {
    this._run += 1;
    clearTimeout(this._timer);
    this._timer = 0;
    this._source?.close();
    this._source = null;
    this._abort?.abort();
    this._abort = null;
  }

  _openStream(run) {
    let source;
    try {
      source = new EventSource(this._streamUrl());
    } catch {
      this._streamFailed(run);
      return;
    }
    this._source = source;
    this._setTransport("stream");
    let heard = Date.now();
    const watchdog = setInterval(() => {
      if (run !== this._run || this._source !== source) {
        clearInterval(watchdog);
      } else if (Date.now() - heard > STREAM_SILENCE_MS) {
        clearInterval(watchdog);
        source.close();
        this._source = null;
        this._streamFailed(run);
      }
    }, 1000);
    source.addEventListener("ping", () => {
      heard = Date.now();
    });
    source.addEventListener("status", (event) => {
      heard = Date.now();
      if (run !== this._run) return;
      let doc;
      try {
        doc = JSON.parse(event.data);
      } catch {
        return; // not a document: the next message will be
      }
      if (!Array.isArray(doc?.chips)) return;
      this._streamFailures = 0;
      this._etag = null; // the stream carries no ETag: the next poll gets the whole document
      this._accept(doc);
    });
    source.addEventListener("error", () => {
      if (run !== this._run) return;
      source.close();
      this._source = null;
      this._streamFailed(run);
    });
  }

  /** The stream failed: poll at once, and try the stream again later (backing off). */
  _streamFailed(run) {
    this._streamFailures += 1;
    const backoff = this.interval * 2 ** (this._streamFailures - 1);
    this._streamRetryAt = Date.now() + Math.min(backoff, MAX_STREAM_BACKOFF_MS);
    this._poll(run);
  }

  async _poll(run) {
    this._setTransport("poll");
    const url = this._url();
    const controller = new AbortController();
    this._abort = controller;
    const timeoutMs = Math.min(Math.max(this.interval, 2000), 10_000);
    const timeout = setTimeout(() => controller.abort(), timeoutMs);
    let answered = false;
    try {
      const headers = this._etag ? { "If-None-Match": this._etag } : {};
      if (this.token) headers.Authorization = `Bearer ${this.token}`;
      const response = await fetch(url, {
        cache: "no-store",
        headers,
        signal: controller.signal,
      });
      if (run !== this._run) return;
      if (response.status === 304 && this._doc) {
        answered = true;
        this._accept(this._doc, { unchanged: true });
      } else if (response.ok) {
        const doc = await response.json();
        if (run !== this._run) return;
        if (!Array.isArray(doc?.chips)) throw new SyntaxError("no chips");
        answered = true;
        this._etag = response.headers.get("ETag");
        this._accept(doc);
      } else {
        const why = response.status === 401 ? "its key is missing or refused: HTTP 401" : `HTTP ${response.status}`;
        this._unreachable(url, why);
      }
    } catch (error) {
      if (run !== this._run) return;
      const reason = controller.signal.aborted
        ? `no answer in ${seconds(timeoutMs)}`
        : error?.name === "SyntaxError"
          ? "the answer is not a status document"
          : "no connection";
      this._unreachable(url, reason);
    } finally {
      clearTimeout(timeout);
      if (this._abort === controller) this._abort = null;
    }
    if (run !== this._run) return;
    if (answered && this._useStream() && Date.now() >= this._streamRetryAt) {
      this._openStream(run);
      return;
    }
    this._timer = setTimeout(() => this._poll(run), this.interval);
  }

  // --- state ---

  _accept(doc, { unchanged = false } = {}) {
    const recovered = this._state !== "ok";
    this._doc = doc;
    this._problem = null;
    this._setState("ok");
    if (unchanged && !recovered) return;
    this._render();
    this._emit();
  }

  _unreachable(url, reason) {
    const changed = this._state !== "unreachable" || this._problem?.reason !== reason;
    this._etag = null; // the daemon that comes back answers with a whole document
    this._problem = { url: url.href, reason };
    this._setState("unreachable");
    if (!changed) return;
    this._render();
    this._emit();
  }

  _setState(state) {
    this._state = state;
    this._reflect("state", state);
  }

  _setTransport(transport) {
    this._transport = transport;
    this._reflect("transport", transport);
  }

  _reflect(name, value) {
    if (this._started && this.getAttribute(name) !== value) this.setAttribute(name, value);
  }

  _emit() {
    this.dispatchEvent(
      new CustomEvent("statuschange", { detail: { state: this._state, document: this._doc } }),
    );
  }

  // --- rendering ---

  /** What to show: one view per item, {key, text, level, tooltip, href|null, alert?}. */
  _views() {
    if (this._state === "unreachable" && this._problem) {
      const { url, reason } = this._problem;
      return [
        {
          key: "unreachable",
          text: "daemon unreachable",
          level: "bad",
          tooltip:
            `The SimpleAide daemon is unreachable at ${url} (${reason}). ` +
            (this.mode === "feed" ? "Reconnecting." : `Retrying every ${seconds(this.interval)}.`),
          href: null,
          alert: true,
        },
      ];
    }
    if (!this._doc) {
      return [
        {
          key: "loading",
          text: "SimpleAide …",
          level: "off",
          tooltip:
            this.mode === "feed"
              ? "Waiting for the daemon's status"
              : `Loading the status from ${this._url().href}`,
          href: null,
        },
      ];
    }
    const views = [];
    for (const chip of Array.isArray(this._doc.chips) ? this._doc.chips : []) {
      const name = String(chip?.name ?? "");
      const href =
        safeHref(this.getAttribute(`href-${name}`)) ??
        safeHref(chip?.href) ??
        (NAMES.includes(name) ? `#/${name}` : null);
      views.push({
        key: `chip-${name}`,
        name,
        text: String(chip?.text ?? ""),
        level: LEVELS.has(chip?.level) ? chip.level : "off",
        tooltip: String(chip?.tooltip ?? ""),
        href,
      });
    }
    const warnings = Array.isArray(this._doc.warnings) ? this._doc.warnings : [];
    if (warnings.length) {
      views.push({
        key: "warnings",
        text: `⚠ ${warnings.length}`,
        level: "warn",
        tooltip: warnings.map(String).join("\n"),
        href: null,
      });
    }
    return views;
  }

  _render() {
    const views = this._views();
    const keys = views.map((view) => `${view.key}:${view.href === null ? "span" : "a"}`).join(" ");
    if (keys !== this._keys) {
      this._keys = keys;
      this._bar.replaceChildren(...views.map((view) => this._item(view)));
    }
    views.forEach((view, n) => this._update(this._bar.children[n], view));
  }

  _item(view) {
    const item = document.createElement("span");
    item.className = "item";
    item.setAttribute("part", "item");
    item.dataset.name = view.name ?? view.key;
    const chip = document.createElement(view.href === null ? "span" : "a");
    chip.className = "chip";
    chip.setAttribute("part", `chip chip-${view.name ?? view.key}`);
    if (view.href === null) chip.tabIndex = 0;
    if (view.alert) chip.setAttribute("role", "alert");
    const tip = document.createElement("span");
    tip.className = "tip";
    tip.setAttribute("part", "tooltip");
    tip.id = `tip-${view.name ?? view.key}`;
    tip.setAttribute("role", "tooltip");
    chip.setAttribute("aria-describedby", tip.id);
    item.append(chip, tip);
    return item;
  }

  _update(item, view) {
    const [chip, tip] = item.children;
    if (chip.textContent !== view.text) chip.textContent = view.text;
    if (chip.dataset.level !== view.level) chip.dataset.level = view.level;
    if (view.href !== null && chip.getAttribute("href") !== view.href) {
      chip.setAttribute("href", view.href);
    }
    if (tip.textContent !== view.tooltip) tip.textContent = view.tooltip;
  }
}

if (!customElements.get("simpleaide-status")) {
  customElements.define("simpleaide-status", SimpleAideStatus);
}

export { SimpleAideStatus };
