// Env: the environment and API facts behind the Env chip: profile, socket, API URL,
// version, how the daemon was started, uptime, and its warnings with their reasons (live:
// the status document's `warnings`, as status.changed brings it).

import { duration, errorWords, facts, fill, h, notice, timeEl } from "../dom.js";

export function mount({ rpc, statusListeners }, main) {
  const body = h("div", { class: "env-body" }, notice("loading", "Loading the daemon's facts…"));
  main.append(
    h(
      "section",
      { class: "area area-env", "aria-labelledby": "env-title" },
      h("h1", { id: "env-title" }, "Environment"),
      body,
    ),
  );
  let alive = true;
  let info = null;
  let readAt = 0;
  let api = null;
  let warnings = null; // the status document's, newest
  const uptime = h("span", { class: "uptime" });
  const render = () => {
    if (!info) return;
    const shown = warnings ?? info.warnings ?? [];
    body.replaceChildren(
      facts([
        ["Profile", h("span", { class: `profile profile-${info.env}` }, info.env)],
        ["Version", `${info.version} (protocol ${info.apiVersion})`],
        ["Started by", info.startMode],
        ["Up for", uptime],
        ["Started", timeEl(info.startedAt)],
        ["Socket", h("code", {}, info.socket)],
        ["API URL", api?.url ? h("code", {}, api.url) : "not serving HTTP"],
        ["Configuration", info.configFile ? h("code", {}, info.configFile) : "defaults (no file)"],
        ["Reload error", info.reloadError ?? "none"],
        ["Workspaces", String(info.workspaces)],
        ["Runs", String(info.runs)],
        ["Process", `pid ${info.pid}, uid ${info.uid}`],
      ]),
      h("h2", {}, "Warnings"),
      shown.length
        ? h("ul", { class: "warnings" }, shown.map((w) => h("li", {}, w)))
        : notice("empty", "No warnings."),
    );
    tick();
  };
  const tick = () => {
    if (info) uptime.textContent = duration(info.uptimeMs + (performance.now() - readAt));
  };
  const timer = setInterval(tick, 1000);
  const onStatus = (doc) => {
    if (!doc) return;
    const apiChanged = doc.api && JSON.stringify(doc.api) !== JSON.stringify(api);
    const warningsChanged =
      Array.isArray(doc.warnings) && JSON.stringify(doc.warnings) !== JSON.stringify(warnings);
    if (apiChanged) api = doc.api;
    if (warningsChanged) warnings = doc.warnings;
    if (apiChanged || warningsChanged) render();
  };
  statusListeners.add(onStatus);
  Promise.all([rpc.call("daemon.info"), rpc.call("status.get")]).then(
    ([got, doc]) => {
      if (!alive) return;
      info = got;
      readAt = performance.now();
      api = doc.api;
      warnings = doc.warnings ?? null;
      render();
    },
    (error) => alive && fill(body, notice("error", errorWords(error, "read the daemon's facts"))),
  );
  return () => {
    alive = false;
    clearInterval(timer);
    statusListeners.delete(onStatus);
  };
}
