// Small helpers every area uses: building elements, words for times, sizes and states.

/** An element: `h("a", {href: "#/runs", class: "x"}, "text", child…)`. Attributes with
 * value null/false are left out; `on<event>` keys add listeners; text is never HTML. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "class") {
      el.className = value;
    } else if (name === "dataset") {
      Object.assign(el.dataset, value);
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  el.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

/** Replace `el`'s children with `children` (arrays flattened, null and false left out). */
export function fill(el, ...children) {
  const kept = children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false);
  el.replaceChildren(...kept);
  return el;
}

/** `text` with its `commands` in backquotes shown as code. */
export function prose(text) {
  return String(text)
    .split("`")
    .map((part, n) => (n % 2 ? h("code", {}, part) : part))
    .filter((part) => part !== "");
}

/** A paragraph in words for a state: "loading", "empty", "error", "unreachable". */
export function notice(kind, words, ...extra) {
  return h(
    "p",
    { class: `notice notice-${kind}`, role: kind === "error" ? "alert" : "status" },
    typeof words === "string" ? prose(words) : words,
    ...extra,
  );
}

/** The words for an error from a call. */
export function errorWords(error, doing) {
  if (error?.unreachable) return `Cannot ${doing}: the daemon is unreachable.`;
  return `Cannot ${doing}: ${error?.message ?? error}.`;
}

/** "3.2 s", "4 min 10 s", "2 h 5 min", "3 d 4 h". */
export function duration(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "–";
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.floor(s % 60)} s`;
  const hours = Math.floor(m / 60);
  if (hours < 48) return `${hours} h ${m % 60} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

/** Milliseconds between two ISO times (the second: now, when null). */
export function between(start, end) {
  if (!start) return null;
  const a = Date.parse(start);
  const b = end ? Date.parse(end) : Date.now();
  return Number.isFinite(a) && Number.isFinite(b) ? b - a : null;
}

/** A local date and time, short; "–" for none. */
export function when(iso) {
  if (!iso) return "–";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return date.toLocaleString(undefined, {
    year: "numeric",
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  });
}

/** A <time> element for an ISO time. */
export function timeEl(iso) {
  return iso ? h("time", { datetime: iso }, when(iso)) : h("span", {}, "–");
}

/** "812 B", "1.4 KiB", "3.0 MiB". */
export function bytes(n) {
  if (!Number.isFinite(n)) return "–";
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = n;
  let unit = "B";
  for (const next of units) {
    if (value < 1024) break;
    value /= 1024;
    unit = next;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${unit}`;
}

/** A status badge ("running", "failed"…), coloured by `status`, saying `words` (or it). */
export function badge(status, words = status) {
  return h("span", { class: `badge badge-${status}` }, String(words));
}

/** A definition list from [term, value] pairs (value: text or a node). */
export function facts(pairs) {
  return h(
    "dl",
    { class: "facts" },
    pairs.flatMap(([term, value]) => [h("dt", {}, term), h("dd", {}, value ?? "–")]),
  );
}

/** Ask the user to confirm in a modal dialog; resolves true (confirmed) or false. With
 * `input`, the dialog has a text field (holding `value` at first) and resolves its value (or
 * null when cancelled). */
export function confirmDialog(
  question,
  { action = "Confirm", input = null, value = "", danger = false } = {},
) {
  return new Promise((resolve) => {
    const field = input
      ? h("input", { type: "text", name: "value", required: true, "aria-label": input })
      : null;
    if (field) field.value = value;
    const form = h(
      "form",
      {},
      h("p", {}, question),
      field ? h("label", {}, input, field) : null,
      h(
        "div",
        { class: "actions" },
        h("button", { type: "button", value: "cancel", class: "cancel" }, "Keep it"),
        h("button", { type: "submit", value: "ok", class: danger ? "danger" : "primary" }, action),
      ),
    );
    const dialog = h("dialog", { class: "confirm", "aria-label": question }, form);
    let answered = false;
    const finish = (value) => {
      if (answered) return;
      answered = true;
      dialog.close();
      dialog.remove();
      resolve(value);
    };
    form.querySelector(".cancel").addEventListener("click", () => finish(input ? null : false));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (field && !field.value.trim()) return;
      finish(field ? field.value.trim() : true);
    });
    dialog.addEventListener("cancel", () => finish(input ? null : false));
    document.body.append(dialog);
    dialog.showModal();
    (field ?? form.querySelector(".cancel")).focus();
    field?.select();
  });
}
