// LLM: each configured backend with its URL, state, models, error, latency and when it was
// last checked; "Probe now" asks every backend again (llm.probe).

import { errorWords, facts, fill, h, notice, timeEl } from "../dom.js";

const UNCONFIGURED =
  "No LLM backend is configured. Add one under [[llm.backends]] in the configuration file.";

function backendCard(b) {
  const state = b.online ? "online" : "offline";
  return h(
    "li",
    { class: "card backend", dataset: { name: b.name, state } },
    h("h2", {}, b.name, " ", h("span", { class: `badge badge-${state}` }, state)),
    facts([
      ["Kind", b.kind],
      ["URL", h("code", { class: "url" }, b.url)],
      ["Model", b.model ?? "any"],
      ["Models", b.models.length ? h("span", { class: "models" }, b.models.join(", ")) : "none"],
      ["Error", b.error ? h("span", { class: "backend-error" }, b.error) : "none"],
      ["Latency", b.latencyMs == null ? "–" : `${Math.round(b.latencyMs)} ms`],
      ["Checked", b.checkedAt ? timeEl(b.checkedAt) : "not yet"],
    ]),
  );
}

export function mount({ rpc, statusListeners }, main) {
  const probe = h("button", { type: "button", class: "probe primary" }, "Probe now");
  const state = h("p", { class: "probe-state", role: "status" });
  const body = h("div", { class: "llm-body" }, notice("loading", "Loading the LLM backends…"));
  main.append(
    h(
      "section",
      { class: "area area-llm", "aria-labelledby": "llm-title" },
      h("h1", { id: "llm-title" }, "LLM backends"),
      h("div", { class: "toolbar" }, probe, state),
      body,
    ),
  );
  let alive = true;
  let shown = "";
  let probing = false; // a probe is under way: the button waits for its answer
  let configured = false;

  const render = (section) => {
    const key = JSON.stringify(section);
    if (key === shown) return;
    shown = key;
    fill(
      body,
      section.backends.length
        ? [
            h("p", {}, `${section.online} of ${section.total} online.`),
            h("ul", { class: "cards backends" }, section.backends.map(backendCard)),
          ]
        : notice("empty", UNCONFIGURED),
    );
    configured = section.backends.length > 0;
    probe.disabled = probing || !configured;
  };

  const load = async () => {
    try {
      const section = await rpc.call("llm.status");
      if (alive) render(section);
    } catch (error) {
      if (alive) body.replaceChildren(notice("error", errorWords(error, "read the LLM backends")));
    }
  };

  probe.addEventListener("click", async () => {
    probing = true;
    probe.disabled = true;
    state.textContent = "Probing every backend…";
    try {
      const section = await rpc.call("llm.probe");
      if (!alive) return;
      render(section);
      state.textContent = `Probed at ${new Date().toLocaleTimeString()}.`;
    } catch (error) {
      if (alive) state.textContent = errorWords(error, "probe");
    } finally {
      probing = false;
      probe.disabled = !configured;
    }
  });

  const onStatus = (doc) => doc?.llm && render(doc.llm);
  statusListeners.add(onStatus);
  load();
  return () => {
    alive = false;
    statusListeners.delete(onStatus);
  };
}
