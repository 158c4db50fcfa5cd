// DB: the active profile's database (README: The grid): its state as last probed (db.status),
// its tables (db.tables) with a grid over the chosen one (grid.js), and a SQL console.
// DEV is editable; PROD (or a read-only database) shows no edit control at all, and says so.

import { badge, errorWords, facts, fill, h, notice, timeEl } from "../dom.js";
import { TableGrid } from "./grid.js";
import { sqlConsole } from "./sqlconsole.js";

const UNCONFIGURED =
  "No database is configured for this profile. Add one under [db] in the configuration file.";
const TABLE_KEY = "simpleaide.db.table";

function rememberedTable() {
  try {
    return sessionStorage.getItem(TABLE_KEY);
  } catch {
    return null;
  }
}

function rememberTable(id) {
  try {
    sessionStorage.setItem(TABLE_KEY, id);
  } catch {
    // Not kept: the first table is shown next time.
  }
}

const tableId = (t) => JSON.stringify([t.schema ?? null, t.name]);

/** Whether the grid may offer edits: DEV and not read-only. */
function editsAllowed(db) {
  return db.env !== "PROD" && !db.readOnly;
}

/** One entry of the table list: name, kind, row estimate, and whether rows can be edited. */
function tableEntry(t, { allowEdits, several, onPick }) {
  const estimate =
    t.rowEstimate == null ? "rows unknown" : `≈ ${t.rowEstimate.toLocaleString("en")} rows`;
  let marker = null;
  if (allowEdits) {
    marker = t.editable
      ? h("span", { class: "table-editable", title: "Rows can be edited here" }, "editable")
      : h(
          "span",
          { class: "table-fixed", title: t.kind === "view" ? "A view" : "No row key" },
          t.kind === "view" ? "read only (view)" : "read only (no row key)",
        );
  }
  return h(
    "li",
    {},
    h(
      "button",
      {
        type: "button",
        class: "table-pick",
        dataset: { table: t.name, kind: t.kind },
        onclick: () => onPick(t),
      },
      h("span", { class: "table-name" }, several && t.schema ? `${t.schema}.${t.name}` : t.name),
      h(
        "span",
        { class: "table-meta" },
        h("span", { class: `table-kind kind-${t.kind}` }, t.kind),
        h("span", { class: "table-estimate" }, estimate),
        marker,
      ),
    ),
  );
}

export function mount({ rpc, statusListeners }, main) {
  const body = h("div", { class: "db-body" }, notice("loading", "Loading the database's state…"));
  const mode = h("p", { class: "db-mode", hidden: true });
  const offline = h("div", { class: "db-offline" }); // filled while a shown grid's database is away
  const list = h("ul", { class: "table-list" });
  const listState = h("div", { class: "table-list-state" });
  const host = h("div", { class: "table-host" });
  const sqlHost = h("div", { class: "sql-host" });
  const workspace = h(
    "div",
    { class: "grid-panel db-workspace", hidden: true },
    h(
      "nav",
      { class: "tables", "aria-labelledby": "tables-title" },
      h("h2", { id: "tables-title" }, "Tables"),
      listState,
      list,
    ),
    host,
  );
  main.append(
    h(
      "section",
      { class: "area area-db", "aria-labelledby": "db-title" },
      h("h1", { id: "db-title" }, "Database"),
      body,
      mode,
      offline,
      workspace,
      sqlHost,
    ),
  );
  let alive = true;
  let shownFor = null; // "<env>|<read-only>|<unconfigured>": what the area was built for
  let built = false; // the tables and the console are shown
  let grid = null;
  let sql = null;
  let tables = [];
  let allowEdits = false;

  const renderFacts = (db) => {
    // "checking": the daemon has not had its first answer yet (just started, or reloaded).
    const [kind, state] = db.connected
      ? ["online", "connected"]
      : db.checking
        ? ["checking", "checking (no answer yet)"]
        : ["offline", "not connected"];
    const unconfigured = db.error === "not configured";
    body.replaceChildren(
      ...(unconfigured ? [notice("empty", UNCONFIGURED)] : []),
      facts([
        ["State", badge(kind, state)],
        ["Type", db.type ?? "–"],
        ["Profile", db.env],
        ["Access", db.readOnly ? "read-only" : "read-write"],
        ["Latency", db.latencyMs == null ? "–" : `${Math.round(db.latencyMs)} ms`],
        ["Error", db.error ?? "none"],
        ["Checked", db.checkedAt ? timeEl(db.checkedAt) : "not yet"],
      ]),
    );
  };

  const pick = (t) => {
    grid?.destroy();
    grid = new TableGrid(rpc, t, { allowEdits });
    host.replaceChildren(grid.element);
    for (const button of list.querySelectorAll(".table-pick")) {
      const chosen = button.dataset.table === t.name && button.dataset.kind === t.kind;
      button.setAttribute("aria-current", chosen ? "true" : "false");
    }
    rememberTable(tableId(t));
    grid.reload();
  };

  const loadTables = async () => {
    listState.replaceChildren(notice("loading", "Loading the tables…"));
    try {
      tables = await rpc.call("db.tables");
      if (!alive) return;
    } catch (error) {
      if (alive) listState.replaceChildren(notice("error", errorWords(error, "list the tables")));
      return;
    }
    const several = new Set(tables.map((t) => t.schema)).size > 1;
    fill(
      list,
      tables.map((t) => tableEntry(t, { allowEdits, several, onPick: pick })),
    );
    fill(
      listState,
      tables.length ? null : notice("empty", "This database has no tables or views yet."),
    );
    const wanted = rememberedTable();
    // The table last looked at, else the first table (a view's rows cannot be edited).
    const first =
      tables.find((t) => tableId(t) === wanted) ??
      tables.find((t) => t.kind === "table") ??
      tables[0];
    if (first) pick(first);
    else {
      grid?.destroy();
      grid = null;
      host.replaceChildren();
    }
  };

  /** (Re)build the grid and the console when what they depend on changed: the profile,
   * read-only. A PROD page never holds an edit control, not even hidden. A database that
   * stops answering for a while keeps the grid (and its staged changes): a line says so. */
  const render = (db) => {
    renderFacts(db);
    const unconfigured = db.error === "not configured";
    const key = `${db.env}|${Boolean(db.readOnly)}|${unconfigured}`;
    if (key !== shownFor) {
      shownFor = key;
      allowEdits = editsAllowed(db);
      grid?.destroy();
      grid = null;
      sql?.destroy();
      sql = null;
      built = false;
      host.replaceChildren();
      sqlHost.replaceChildren();
      mode.hidden = unconfigured;
      mode.replaceChildren(
        allowEdits
          ? h("span", { class: "badge badge-editable" }, `${db.env}: editable`)
          : h("span", { class: "badge badge-readonly" }, `${db.env}: read-only`),
        allowEdits
          ? " Changes are staged in the grid and saved together."
          : " Nothing can be changed from here: the grid shows no edit controls.",
      );
    }
    if (unconfigured) {
      workspace.hidden = true;
      return;
    }
    fill(
      offline,
      built && !db.connected
        ? notice(
            "error",
            "The database is not answering at the moment (see the state above): the grid " +
              "shows what it read, and changes wait until it answers again.",
          )
        : null,
    );
    if (!db.connected) {
      if (!built) {
        workspace.hidden = true;
        sqlHost.replaceChildren(
          notice(
            "empty",
            db.checking
              ? "The database is being checked: its tables show here when it answers."
              : "The database is not connected: its tables show here when it answers.",
          ),
        );
      }
      return;
    }
    if (built) return;
    built = true;
    workspace.hidden = false;
    sql = sqlConsole(rpc, { readOnly: !allowEdits });
    sqlHost.replaceChildren(sql.element);
    loadTables();
  };

  // A status event is newer than the db.status reply whenever it is rendered first: the
  // reply may have been read before the event was sent, so it must not undo the event.
  let eventSeen = false;
  const onStatus = (doc) => {
    if (!doc?.db || !alive) return;
    eventSeen = true;
    render(doc.db);
  };
  statusListeners.add(onStatus);
  rpc.call("db.status").then(
    (db) => alive && !eventSeen && render(db),
    (error) =>
      alive &&
      !eventSeen &&
      fill(body, notice("error", errorWords(error, "read the database's state"))),
  );
  return () => {
    alive = false;
    statusListeners.delete(onStatus);
    grid?.destroy();
    sql?.destroy();
  };
}
