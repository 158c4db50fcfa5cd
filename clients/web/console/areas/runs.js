// Runs: a workspace's runs (or every workspace's), newest first, filtered by status, loaded
// page by page as the list scrolls (runs.list `before`), and live (runs.subscribe).

import { badge, between, duration, errorWords, h, notice, timeEl } from "../dom.js";

const PAGE = 50;
const STATUSES = ["pending", "running", "completed", "failed", "cancelled", "corrupt"];
const WORKSPACE_KEY = "simpleaide.workspace";

function remembered() {
  try {
    return localStorage.getItem(WORKSPACE_KEY) ?? "";
  } catch {
    return "";
  }
}

function remember(workspace) {
  try {
    localStorage.setItem(WORKSPACE_KEY, workspace);
  } catch {
    // Not kept: the picker starts from every workspace next time.
  }
}

/** One run's row: a link to its page. */
export function runRow(run) {
  const took = between(run.startedAt, run.completedAt);
  const title = run.title || run.id;
  return h(
    "li",
    { class: "run-row", dataset: { id: run.id, status: run.status } },
    h(
      "a",
      { href: `#/runs/${encodeURIComponent(run.id)}`, class: "run-link" },
      badge(run.status),
      h("span", { class: "run-title" }, title),
      h(
        "span",
        { class: "run-meta" },
        run.title ? h("span", { class: "run-id" }, run.id) : null,
        h("span", {}, "started ", timeEl(run.startedAt)),
        h("span", {}, run.completedAt ? `took ${duration(took)}` : `for ${duration(took)}`),
        h("span", {}, `${run.stepCount} step${run.stepCount === 1 ? "" : "s"}`),
      ),
      run.errorMessage ? h("span", { class: "run-error" }, run.errorMessage) : null,
    ),
  );
}

export function mount({ rpc }, main) {
  const workspaces = h(
    "select",
    { id: "workspace", name: "workspace" },
    h("option", { value: "" }, "All workspaces"),
  );
  const statusFilter = h(
    "select",
    { id: "status-filter", name: "status" },
    h("option", { value: "" }, "Any status"),
    STATUSES.map((s) => h("option", { value: s }, s)),
  );
  const state = h("div", { class: "list-state", "aria-live": "polite" });
  const list = h("ol", { class: "runs-list", "aria-label": "Runs, newest first" });
  const more = h("button", { type: "button", class: "more", hidden: true }, "Load older runs");
  main.append(
    h(
      "section",
      { class: "area area-runs", "aria-labelledby": "runs-title" },
      h("h1", { id: "runs-title" }, "Runs"),
      h(
        "div",
        { class: "toolbar" },
        h("label", { for: "workspace" }, "Workspace"),
        workspaces,
        h("label", { for: "status-filter" }, "Status"),
        statusFilter,
      ),
      state,
      list,
      more,
    ),
  );

  let alive = true;
  let generation = 0; // bumped by every reload: answers for an older list are dropped
  let nextBefore = null;
  let loading = false;
  const rows = new Map(); // id -> li

  const matches = (run) =>
    (!workspaces.value || run.workspace === workspaces.value) &&
    (!statusFilter.value || run.status === statusFilter.value);

  const showState = () => {
    if (loading && rows.size === 0) state.replaceChildren(notice("loading", "Loading runs…"));
    else if (rows.size === 0) {
      const filtered = statusFilter.value ? ` with status “${statusFilter.value}”` : "";
      const where = workspaces.value ? " in this workspace" : "";
      state.replaceChildren(
        notice(
          "empty",
          `No runs${filtered}${where} yet. Runs made by a tool or with ` +
            "`simpleaide runs create` appear here as they start.",
        ),
      );
    } else state.replaceChildren();
    list.hidden = rows.size === 0;
    more.hidden = nextBefore === null;
  };

  const params = (before) => {
    const p = { limit: PAGE };
    if (workspaces.value) p.workspace = workspaces.value;
    if (statusFilter.value) p.status = statusFilter.value;
    if (before) p.before = before;
    return p;
  };

  const loadPage = async () => {
    if (loading || !alive) return;
    const mine = generation;
    const first = rows.size === 0;
    loading = true;
    showState();
    try {
      const page = await rpc.call("runs.list", params(first ? null : nextBefore));
      if (mine !== generation || !alive) return;
      const items = [];
      for (const run of page.runs) {
        if (rows.has(run.id)) continue;
        const row = runRow(run);
        rows.set(run.id, row);
        items.push(row);
      }
      list.append(...items);
      nextBefore = page.nextBefore;
      loading = false;
      showState();
      list.dataset.loaded = String(rows.size);
    } catch (error) {
      if (mine !== generation || !alive) return;
      loading = false;
      state.replaceChildren(notice("error", errorWords(error, "load the runs")));
      more.hidden = nextBefore === null;
    }
  };

  const reload = () => {
    generation += 1;
    loading = false;
    rows.clear();
    list.replaceChildren();
    nextBefore = null;
    loadPage();
  };

  // Newest first: a run goes before the first row with a smaller id (ids grow with time).
  const insert = (run) => {
    const row = runRow(run);
    rows.set(run.id, row);
    const after = [...list.children].find((li) => li.dataset.id < run.id);
    list.insertBefore(row, after ?? null);
  };

  const onEvents = (params) => {
    if (!alive) return;
    if (params?.overflow) {
      reload();
      return;
    }
    for (const event of params?.events ?? []) {
      const where = event.run?.workspace;
      if (where && ![...workspaces.options].some((o) => o.value === where)) {
        workspaces.append(h("option", { value: where }, where)); // a workspace served since
      }
      const old = rows.get(event.runId);
      if (event.type === "deleted") {
        old?.remove();
        rows.delete(event.runId);
      } else if (event.run) {
        if (!matches(event.run)) {
          old?.remove();
          rows.delete(event.runId);
        } else if (old) {
          const row = runRow(event.run);
          old.replaceWith(row);
          rows.set(event.runId, row);
        } else if (event.type === "created" || nextBefore === null || event.runId > nextBefore) {
          insert(event.run); // new, or now matching the filter and within the loaded pages
        }
      }
    }
    showState();
  };

  const stopEvents = rpc.on("run.event", onEvents);

  workspaces.addEventListener("change", () => {
    remember(workspaces.value);
    reload();
  });
  statusFilter.addEventListener("change", reload);
  more.addEventListener("click", loadPage);
  const observer = new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting) && nextBefore !== null) loadPage();
  });
  observer.observe(more);

  (async () => {
    try {
      const served = await rpc.call("workspaces.list");
      if (!alive) return;
      const paths = served.map((w) => w.path).sort();
      for (const w of served.sort((a, b) => a.path.localeCompare(b.path))) {
        workspaces.append(h("option", { value: w.path }, `${w.path} (${w.runs})`));
      }
      const wanted = remembered();
      if (paths.includes(wanted)) workspaces.value = wanted;
    } catch {
      // The list still shows every workspace's runs; the error shows there if it persists.
    }
    if (alive) reload();
  })();
  showState();

  return () => {
    alive = false;
    observer.disconnect();
    stopEvents();
  };
}
