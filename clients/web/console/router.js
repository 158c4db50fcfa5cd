// Which area an address shows: `#/runs`, `#/runs/<id>`, `#/vault`, `#/db`, `#/llm`,
// `#/shell`, `#/shell/<terminal id>` (attached), `#/shell/<terminal id>/watch` (read-only),
// `#/env` (anything else: the runs, or "no such page" for an unknown path).

import * as db from "./areas/db.js";
import * as env from "./areas/env.js";
import * as llm from "./areas/llm.js";
import * as run from "./areas/run.js";
import * as runs from "./areas/runs.js";
import * as shell from "./areas/shell.js";
import * as vault from "./areas/vault.js";
import { h, notice } from "./dom.js";

const AREAS = { runs, vault, db, llm, shell, env };
const TITLES = {
  runs: "Runs",
  vault: "Vault",
  db: "Database",
  llm: "LLM",
  shell: "Shell",
  env: "Environment",
};
const RUN_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const TERMINAL_ID = /^[0-9a-f]{8}$/;

function notFound(context, main, { path }) {
  main.append(
    h("h1", {}, "No such page"),
    notice("empty", `The console has no page at “${path}”.`),
    h("p", {}, h("a", { href: "#/runs" }, "Go to the runs")),
  );
}

/** Whether `hash` names a page (`#/…`, or none: the runs) rather than a place in the page
 * (the skip link's `#main`), which the router leaves alone. */
export function isRoute(hash) {
  return !hash || hash === "#" || hash.startsWith("#/");
}

/** The area for `hash`: {area, key, title, params, mount, redirect?}. */
export function route(hash) {
  const raw = (hash || "").replace(/^#/, "");
  let path;
  try {
    path = decodeURIComponent(raw) || "/";
  } catch {
    // A broken escape (`#/runs/%ZZ`): no page has that address.
    return {
      area: null,
      key: "none",
      title: "No such page",
      params: { path: raw },
      mount: notFound,
    };
  }
  if (path === "/" || path === "") {
    return { ...route("#/runs"), redirect: "#/runs" };
  }
  const parts = path.replace(/^\/+/, "").split("/").filter(Boolean);
  const [name, id, ...rest] = parts;
  if (name === "runs" && id !== undefined && rest.length === 0 && RUN_ID.test(id)) {
    return { area: "runs", key: `run:${id}`, title: `Run ${id}`, params: { id }, mount: run.mount };
  }
  const watch = rest.length === 1 && rest[0] === "watch";
  if (name === "shell" && TERMINAL_ID.test(id ?? "") && (rest.length === 0 || watch)) {
    return {
      area: "shell",
      key: `terminal:${id}:${watch ? "watch" : "attach"}`,
      title: `Terminal ${id}`,
      params: { id, watch },
      mount: shell.mount,
    };
  }
  if (Object.hasOwn(AREAS, name) && id === undefined) {
    return { area: name, key: name, title: TITLES[name], params: {}, mount: AREAS[name].mount };
  }
  return { area: null, key: "none", title: "No such page", params: { path }, mount: notFound };
}
