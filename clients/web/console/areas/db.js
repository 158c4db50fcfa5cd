// DB: the active profile's database as last probed (db.status). The grid (DESIGN.md §10)
// takes the space below when its methods arrive.

import { badge, errorWords, facts, fill, h, notice, timeEl } from "../dom.js";

const UNCONFIGURED =
  "No database is configured for this profile. Add one under [db] in the configuration file.";

export function mount({ rpc, statusListeners }, main) {
  const body = h("div", { class: "db-body" }, notice("loading", "Loading the database's state…"));
  const grid = h(
    "div",
    { class: "panel grid-panel", "aria-label": "Query grid" },
    h("p", { class: "placeholder" }, "The query grid comes here in a coming version."),
  );
  main.append(
    h(
      "section",
      { class: "area area-db", "aria-labelledby": "db-title" },
      h("h1", { id: "db-title" }, "Database"),
      body,
      grid,
    ),
  );
  let alive = true;
  const render = (db) => {
    const state = db.connected ? "connected" : "not connected";
    const unconfigured = db.error === "not configured";
    body.replaceChildren(
      ...(unconfigured
        ? [notice("empty", UNCONFIGURED)]
        : []),
      facts([
        ["State", badge(db.connected ? "online" : "offline", state)],
        ["Type", db.type ?? "–"],
        ["Profile", db.env],
        ["Access", db.readOnly ? "read-only" : "read-write"],
        ["Latency", db.latencyMs == null ? "–" : `${Math.round(db.latencyMs)} ms`],
        ["Error", db.error ?? "none"],
        ["Checked", db.checkedAt ? timeEl(db.checkedAt) : "not yet"],
      ]),
    );
  };
  const onStatus = (doc) => doc?.db && render(doc.db);
  statusListeners.add(onStatus);
  rpc.call("db.status").then(
    (db) => alive && render(db),
    (error) => alive && fill(body, notice("error", errorWords(error, "read the database's state"))),
  );
  return () => {
    alive = false;
    statusListeners.delete(onStatus);
  };
}
