// The console's one connection to the daemon: JSON-RPC 2.0 over the WebSocket at /rpc
// (README: The web console). Requests carry ids and resolve with their result (or reject with an
// RpcError); notifications go to the handlers given to `on`; subscriptions made with
// `subscribe` are made again after every reconnect. A lost connection is retried with a
// growing delay; the state says what the page should show:
//
//   "connecting"   the first attempt, not yet answered
//   "open"         connected
//   "unreachable"  no connection (the daemon stopped, or the network): retrying
//   "refused"      the shim answers but the connection fails: most likely it refuses this
//                  page's key (or closed with 1008: the key was rotated); retried slowly
//
// The browser tells nothing about why a WebSocket handshake failed (not even the HTTP
// status), so after a failure the page asks /healthz (no key needed): an answer there means
// the shim is up and the upgrade failed, most likely for the key. The key is kept all the
// same (the failure may have another cause, and passes): the page keeps trying, every
// REFUSED_RETRY_MS, until a new key is given in the address.

const PROTOCOL = "simpleaide.jsonrpc";
const TOKEN_PROTOCOL = "simpleaide.token.";
const MIN_RETRY_MS = 250;
const MAX_RETRY_MS = 3000;
const REFUSED_RETRY_MS = 5000;
const CALL_TIMEOUT_MS = 60_000;

/** A JSON-RPC error answer (or a call that could not be made: code null). */
export class RpcError extends Error {
  constructor(message, { code = null, data = null, unreachable = false } = {}) {
    super(message);
    this.name = "RpcError";
    this.code = code;
    this.data = data;
    this.unreachable = unreachable;
  }
}

export class RpcClient extends EventTarget {
  /** `token`: the console's key; `base`: the page's origin (the shim). */
  constructor(token, { base = location.origin } = {}) {
    super();
    this.token = token;
    this.base = base;
    this.url = base.replace(/^http/, "ws") + "/rpc";
    this.state = "connecting";
    this.reason = null; // why the last attempt failed, in words
    this._ws = null;
    this._nextId = 1;
    this._pending = new Map(); // id -> {resolve, reject, timer, reviver}
    this._handlers = new Map(); // notification method -> Set of handlers
    this._subscriptions = new Set(); // {method, params, onResult}
    this._retryMs = MIN_RETRY_MS;
    this._timer = 0;
    this._closed = false;
    this._waiting = []; // calls made before the first connection answered
  }

  /** Connect (and stay connected until `close`). */
  start() {
    this._closed = false;
    this._connect();
    return this;
  }

  close() {
    this._closed = true;
    clearTimeout(this._timer);
    this._ws?.close(1000);
    this._ws = null;
  }

  /** Call `method` with `params`; its result, or an RpcError. `reviver` (optional): the
   * reply is parsed with it, as `JSON.parse`'s second argument. */
  async call(method, params = {}, { reviver = null } = {}) {
    if (this.state === "connecting") await this._firstAnswer();
    if (this.state !== "open" || this._ws?.readyState !== WebSocket.OPEN) {
      return Promise.reject(
        new RpcError("the daemon is unreachable", { unreachable: true }),
      );
    }
    const id = this._nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new RpcError(`no answer to ${method} in ${CALL_TIMEOUT_MS / 1000} s`));
      }, CALL_TIMEOUT_MS);
      this._pending.set(id, { resolve, reject, timer, reviver });
      this._send({ jsonrpc: "2.0", id, method, params });
    });
  }

  /** Send `method` as a notification (no answer, none awaited); false when not connected. */
  notify(method, params = {}) {
    if (this.state !== "open" || this._ws?.readyState !== WebSocket.OPEN) return false;
    this._send({ jsonrpc: "2.0", method, params });
    return true;
  }

  /** Call `handler(params)` for every `method` notification; returns the way to stop. */
  on(method, handler) {
    if (!this._handlers.has(method)) this._handlers.set(method, new Set());
    this._handlers.get(method).add(handler);
    return () => this._handlers.get(method)?.delete(handler);
  }

  /** Call `method` now (if connected) and after every reconnect, giving its result (or an
   * error) to `onResult(result, error)`; returns the way to stop (without unsubscribing on
   * the daemon's side: pass `unsubscribe` for that). */
  subscribe(method, params, onResult, { unsubscribe = null } = {}) {
    const sub = { method, params, onResult };
    this._subscriptions.add(sub);
    if (this.state === "open") this._resubscribe(sub);
    return () => {
      this._subscriptions.delete(sub);
      if (unsubscribe && this.state === "open") this.call(unsubscribe).catch(() => {});
    };
  }

  // --- the connection ---

  _firstAnswer() {
    return new Promise((resolve) => this._waiting.push(resolve));
  }

  _connect() {
    clearTimeout(this._timer);
    let ws;
    try {
      ws = new WebSocket(this.url, [PROTOCOL, TOKEN_PROTOCOL + this.token]);
    } catch (error) {
      this._setState("refused", `the key cannot be offered (${error.message})`);
      return;
    }
    this._ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this._retryMs = MIN_RETRY_MS;
      // The subscriptions are made again before anyone hears "open": an area mounted then
      // reads after them (a run's runs.get after runs.subscribe), so it misses no change.
      this._setState("open", null, () => {
        for (const sub of this._subscriptions) this._resubscribe(sub);
      });
    };
    ws.onmessage = (event) => this._received(event.data);
    ws.onclose = (event) => {
      if (this._ws !== ws) return;
      this._ws = null;
      this._failAll();
      if (this._closed) return;
      this._diagnose(opened, event);
    };
  }

  async _diagnose(opened, event) {
    // Closed after it was open: the daemon stopped, or the key was rotated (1008).
    let reason = opened
      ? `the connection closed (${event.code}${event.reason ? ": " + event.reason : ""})`
      : "no connection";
    let shimUp = false;
    try {
      const answer = await fetch(this.base + "/healthz", { cache: "no-store" });
      shimUp = answer.ok;
    } catch {
      shimUp = false;
    }
    if (this._closed) return;
    if (shimUp && (!opened || event.code === 1008)) {
      // The shim answers over HTTP and refused the upgrade (or closed for a rotated key):
      // the key is most likely not (or no longer) valid. Try again now and then.
      this._setState("refused", "the daemon refused this page's key");
      this._timer = setTimeout(() => this._connect(), REFUSED_RETRY_MS);
      return;
    }
    if (shimUp) reason = "the connection closed";
    this._setState("unreachable", reason);
    this._timer = setTimeout(() => this._connect(), this._retryMs);
    this._retryMs = Math.min(this._retryMs * 2, MAX_RETRY_MS);
  }

  _resubscribe(sub) {
    this.call(sub.method, sub.params).then(
      (result) => this._subscriptions.has(sub) && sub.onResult(result, null),
      (error) => this._subscriptions.has(sub) && !error.unreachable && sub.onResult(null, error),
    );
  }

  _send(message) {
    this._ws.send(JSON.stringify(message));
  }

  _received(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    if (!Array.isArray(message)) return this._dispatch(message, text);
    for (const one of message) this._dispatch(one, null);
  }

  _dispatch(message, text) {
    if (message && typeof message.method === "string" && message.id === undefined) {
      for (const handler of this._handlers.get(message.method) ?? []) {
        try {
          handler(message.params);
        } catch (error) {
          console.warn(`handler of ${message.method} failed`, error);
        }
      }
      return;
    }
    const waiting = this._pending.get(message?.id);
    if (!waiting) return;
    this._pending.delete(message.id);
    // A reply alone in its message is parsed again with the caller's reviver.
    if (waiting.reviver && text !== null) {
      try {
        message = JSON.parse(text, waiting.reviver);
      } catch (error) {
        clearTimeout(waiting.timer);
        waiting.reject(new RpcError(`the reply could not be read: ${error.message}`));
        return;
      }
    }
    clearTimeout(waiting.timer);
    if (message.error) {
      const { code, message: words, data } = message.error;
      waiting.reject(new RpcError(String(words ?? "error"), { code, data: data ?? null }));
    } else {
      waiting.resolve(message.result);
    }
  }

  _failAll() {
    for (const { reject, timer } of this._pending.values()) {
      clearTimeout(timer);
      reject(new RpcError("the daemon is unreachable", { unreachable: true }));
    }
    this._pending.clear();
  }

  _setState(state, reason, first = null) {
    const changed = state !== this.state || reason !== this.reason;
    this.state = state;
    this.reason = reason;
    first?.();
    if (state !== "connecting") {
      for (const resolve of this._waiting.splice(0)) resolve();
    }
    if (changed) this.dispatchEvent(new CustomEvent("state", { detail: { state, reason } }));
  }
}
