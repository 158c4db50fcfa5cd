// The SQL console (README: The grid): one statement at a time through db.query, with a timer
// counting while it runs and a Cancel that sends db.cancel with the query's id. Results show
// as a plain table (the daemon caps them in rows: the "truncated" marker says so).
//
// The daemon answers a connection's requests one after the other, so a query runs on a
// connection of its own: the page's connection stays free for the grid and for db.cancel
// (which, sent behind the query on the same connection, would only arrive after it ended).

import { duration, h, notice } from "../dom.js";
import { RpcClient } from "../rpc.js";
import { plainTable } from "./gridcells.js";

const TIMEOUT_MS = 30_000; // the daemon's default, said out loud (the call waits 60 s at most)

/** Words for a db.query error code, in the user's terms. */
function queryErrorWords(error, readOnly) {
  if (error?.unreachable) return "The query did not finish: the daemon is unreachable.";
  switch (error?.code) {
    case -32800:
      return "The query was cancelled.";
    case -32040:
      return `The query ran longer than its limit (${duration(TIMEOUT_MS)}) and was stopped.`;
    case -32030:
      return readOnly
        ? "This database is read-only here (PROD): the console runs reads only."
        : `Refused: ${error.message}.`;
    case -32050:
      return `The database is unreachable: ${error.message}.`;
    default:
      return `The query failed: ${error?.message ?? error}.`;
  }
}

function newQueryId() {
  const random =
    globalThis.crypto?.randomUUID?.() ?? `${Date.now()}-${Math.random()}`.replace(".", "");
  return `console-${random}`.slice(0, 64);
}

/** The SQL console's panel; `readOnly`: PROD (writes are refused by the daemon). */
export function sqlConsole(rpc, { readOnly }) {
  const sql = h("textarea", {
    id: "sql-text",
    name: "sql",
    class: "sql-text",
    rows: "5",
    spellcheck: "false",
    placeholder: "select * from …",
  });
  const run = h("button", { type: "submit", class: "primary sql-run" }, "Run");
  const cancel = h("button", { type: "button", class: "sql-cancel", disabled: true }, "Cancel");
  const timer = h("span", { class: "sql-timer", "aria-live": "off" });
  const state = h("div", { class: "sql-state", "aria-live": "polite" });
  const results = h("div", { class: "sql-results" });
  const form = h(
    "form",
    { class: "sql-form", "aria-label": "SQL console" },
    h(
      "label",
      { for: "sql-text" },
      "One SQL statement",
      readOnly ? " (read-only: reads only)" : "",
    ),
    sql,
    h(
      "div",
      { class: "actions" },
      run,
      cancel,
      timer,
      h("span", { class: "hint" }, "Ctrl+Enter runs it."),
    ),
  );
  let running = null; // {queryId, started, tick}
  let queries = null; // the connection queries run on, opened at the first one

  const stopTimer = () => {
    clearInterval(running?.tick);
    run.disabled = false;
    cancel.disabled = true;
    form.dataset.running = "false";
  };

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = sql.value.trim();
    if (!text || running) return;
    const queryId = newQueryId();
    const started = performance.now();
    running = { queryId, started };
    running.tick = setInterval(() => {
      timer.textContent = `Running… ${duration(performance.now() - started)}`;
    }, 100);
    timer.textContent = "Running…";
    run.disabled = true;
    cancel.disabled = false;
    form.dataset.running = "true";
    state.replaceChildren();
    results.replaceChildren();
    try {
      queries ??= new RpcClient(rpc.token, { base: rpc.base }).start();
      const result = await queries.call("db.query", { sql: text, queryId, timeoutMs: TIMEOUT_MS });
      stopTimer();
      timer.textContent = `Done in ${duration(result.elapsedMs ?? performance.now() - started)}`;
      showResult(result);
    } catch (error) {
      stopTimer();
      timer.textContent = `Stopped after ${duration(performance.now() - started)}`;
      state.replaceChildren(notice("error", queryErrorWords(error, readOnly)));
    } finally {
      running = null;
    }
  });

  const showResult = (result) => {
    const n = result.rowCount ?? result.rows.length;
    const shown = result.rows.length.toLocaleString("en");
    const words = result.columns.length
      ? `${n.toLocaleString("en")} row${n === 1 ? "" : "s"}`
      : `${n.toLocaleString("en")} row${n === 1 ? "" : "s"} affected`;
    state.replaceChildren(
      h(
        "p",
        { class: "notice notice-done", role: "status" },
        words,
        result.truncated
          ? h(
              "strong",
              { class: "sql-truncated" },
              ` — truncated: only the first ${shown} rows are shown`,
            )
          : null,
      ),
    );
    if (result.columns.length) {
      results.replaceChildren(
        h("div", { class: "result-scroll" }, plainTable(result.columns, result.rows)),
      );
    }
  };

  cancel.addEventListener("click", async () => {
    if (!running) return;
    cancel.disabled = true;
    const { queryId } = running;
    try {
      const { cancelled } = await rpc.call("db.cancel", { queryId });
      if (!cancelled && running?.queryId === queryId)
        state.replaceChildren(notice("empty", "The query had already finished."));
    } catch (error) {
      state.replaceChildren(notice("error", queryErrorWords(error, readOnly)));
    }
  });

  sql.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  const element = h(
    "section",
    { class: "sql-console", "aria-labelledby": "sql-title" },
    h("h2", { id: "sql-title" }, "SQL console"),
    form,
    state,
    results,
  );
  const destroy = () => {
    clearInterval(running?.tick);
    queries?.close(); // a query still running is cancelled when its connection closes
  };
  return { element, destroy };
}
