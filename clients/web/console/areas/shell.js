// Shell: the terminals (DESIGN.md §11) take this space when their methods arrive; for now
// the area says so, with the daemon's connection facts.

import { errorWords, facts, fill, h, notice } from "../dom.js";

export function mount({ rpc }, main) {
  const body = h("div", { class: "shell-body" }, notice("loading", "Loading…"));
  main.append(
    h(
      "section",
      { class: "area area-shell", "aria-labelledby": "shell-title" },
      h("h1", { id: "shell-title" }, "Shell"),
      h("div", { class: "tabs", role: "tablist", "aria-label": "Terminals" }),
      h(
        "div",
        { class: "panel terminal-panel" },
        notice(
          "empty",
          "No terminals: this version of the daemon does not run terminals yet. " +
            "Use your own terminal meanwhile.",
        ),
      ),
      body,
    ),
  );
  let alive = true;
  rpc.call("daemon.info").then(
    (info) =>
      alive &&
      body.replaceChildren(
        h("h2", {}, "Connections"),
        facts([
          ["Open", String(info.connections?.open ?? "–")],
          ["Limit", String(info.connections?.limit ?? "–")],
        ]),
      ),
    (error) => alive && fill(body, notice("error", errorWords(error, "read the daemon's state"))),
  );
  return () => {
    alive = false;
  };
}
