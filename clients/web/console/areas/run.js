// A run's page: its status, times and error; its steps with their status and durations;
// each step's artifacts (text shown up to a size cap, the whole downloadable); cancel, fail,
// complete and delete, each confirmed first. It follows the run as it changes (run.event),
// in place: what changed is updated, an open preview is read again only when its artifact's
// size or time changed, and scroll, selection, focus and a download's state stay.

import {
  badge,
  between,
  bytes,
  confirmDialog,
  duration,
  errorWords,
  fill,
  h,
  notice,
  timeEl,
} from "../dom.js";

export const PREVIEW_BYTES = 64 * 1024;
// How long the "Save … again" link of a download lives (its Blob URL is revoked then).
const SAVE_AGAIN_MS = 60_000;

/** The whole artifact as a Blob, read in chunks with artifacts.get (one version only: a
 * replaced artifact is refused midway rather than mixed). */
async function wholeArtifact(rpc, runId, step, name, onProgress) {
  const parts = [];
  let offset = 0;
  let version = null;
  let size = null;
  do {
    const params = { runId, step, name, encoding: "base64", offset };
    if (version) params.version = version;
    const chunk = await rpc.call("artifacts.get", params);
    version = chunk.version;
    size = chunk.size;
    const raw = atob(chunk.base64 ?? "");
    const data = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i += 1) data[i] = raw.charCodeAt(i);
    parts.push(data);
    offset += chunk.length;
    onProgress?.(offset, size);
    if (chunk.length === 0) break;
  } while (offset < size);
  return new Blob(parts, { type: "application/octet-stream" });
}

/** An artifact's entry: name, size and time, "Show" (its text, up to PREVIEW_BYTES) and
 * "Download whole". Returns {li, update(artifact)}: `update` changes the entry in place and
 * reads the shown text again only when the artifact's size or modification time changed. */
function artifactItem(rpc, runId, first, opened) {
  let artifact = first;
  const key = `${artifact.step}/${artifact.name}`;
  const li = h("li", {
    class: "artifact",
    dataset: { name: artifact.name, step: String(artifact.step) },
  });
  const meta = h("span", { class: "artifact-meta" });
  const showMeta = () => fill(meta, `${bytes(artifact.size)} · `, timeEl(artifact.modifiedAt));
  showMeta();
  const head = h(
    "div",
    { class: "artifact-head" },
    h("span", { class: "artifact-name" }, artifact.name),
    meta,
  );
  li.append(head);
  const version = (a) => `${a.size}|${a.modifiedAt}|${a.invalidName ?? ""}|${a.problem ?? ""}`;
  let seen = version(artifact);
  if (artifact.invalidName || artifact.problem) {
    const why = artifact.problem ?? "Its name on disk breaks the naming rules: listed, never read.";
    li.append(notice("error", why));
    return {
      li,
      update(next) {
        artifact = next;
        if (version(next) !== seen) {
          seen = version(next);
          showMeta();
        }
      },
    };
  }
  const body = h("div", { class: "artifact-body", hidden: true });
  const show = h(
    "button",
    { type: "button", class: "show", "aria-expanded": "false", dataset: { focus: `show:${key}` } },
    "Show",
  );
  const download = h(
    "button",
    { type: "button", class: "download", dataset: { focus: `download:${key}` } },
    "Download whole",
  );
  const status = h("span", { class: "download-state", "aria-live": "polite" });
  head.append(h("span", { class: "artifact-actions" }, show, download, status));
  li.append(body);

  let reads = 0; // the newest preview read: an older answer arriving late is dropped
  const preview = async () => {
    const mine = ++reads;
    if (!body.firstChild) body.replaceChildren(notice("loading", "Loading…"));
    try {
      const got = await rpc.call("artifacts.get", {
        runId,
        step: artifact.step,
        name: artifact.name,
        encoding: "text",
        length: PREVIEW_BYTES,
      });
      if (mine !== reads) return;
      delete li.dataset.binary;
      if (got.size === 0) {
        body.replaceChildren(notice("empty", "This artifact is empty."));
        return;
      }
      const cut = got.length < got.size;
      const pre = body.querySelector("pre.artifact-text");
      const note = cut
        ? h(
            "p",
            { class: "cut" },
            `The first ${bytes(got.length)} of ${bytes(got.size)} are shown: ` +
              "download it whole for the rest.",
          )
        : null;
      if (pre) {
        // The same box: its scroll stays where the reader left it.
        if (pre.textContent !== (got.text ?? "")) pre.textContent = got.text ?? "";
        body.querySelector("p.cut")?.remove();
        if (note) body.append(note);
      } else {
        fill(body, h("pre", { class: "artifact-text", tabindex: "0" }, got.text ?? ""), note);
      }
    } catch (error) {
      if (mine !== reads) return;
      if (error.code === -32602 || /not UTF-8|base64/.test(error.message)) {
        fill(body, notice("empty", "Binary content: it is not shown here. Use “Download whole”."));
        li.dataset.binary = "true";
      } else {
        body.replaceChildren(notice("error", errorWords(error, "read this artifact")));
      }
    }
  };
  const toggle = () => {
    const open = body.hidden;
    body.hidden = !open;
    show.setAttribute("aria-expanded", String(open));
    show.textContent = open ? "Hide" : "Show";
    if (open) {
      opened.add(key);
      preview();
    } else opened.delete(key);
  };
  show.addEventListener("click", toggle);
  download.addEventListener("click", async () => {
    download.disabled = true;
    status.textContent = "Reading…";
    try {
      const blob = await wholeArtifact(rpc, runId, artifact.step, artifact.name, (done, size) => {
        status.textContent = size ? `${Math.floor((done * 100) / size)} %` : "";
      });
      const url = URL.createObjectURL(blob);
      const link = h(
        "a",
        { href: url, download: artifact.name, class: "saved" },
        `Save ${artifact.name} again`,
      );
      status.replaceChildren(link);
      link.click();
      setTimeout(() => {
        URL.revokeObjectURL(url);
        // The link would lead nowhere now: "Download whole" reads it again.
        if (link.isConnected) status.replaceChildren();
      }, SAVE_AGAIN_MS);
    } catch (error) {
      status.textContent = errorWords(error, "download it");
    } finally {
      download.disabled = false;
    }
  });
  if (opened.has(key)) toggle();
  return {
    li,
    update(next) {
      artifact = next;
      if (version(next) === seen) return;
      seen = version(next);
      showMeta();
      if (!body.hidden) preview();
    },
  };
}

function stepDuration(step, took) {
  if (!step.startedAt) return "not started";
  return step.completedAt ? `took ${duration(took)}` : `for ${duration(took)}`;
}

/** Put `wanted` (nodes, in order) as `parent`'s children, moving only what is out of place
 * (a moved node loses the focus; one left alone keeps it, and its scroll and selection). */
function arrange(parent, wanted) {
  const keep = new Set(wanted);
  for (const child of [...parent.children]) if (!keep.has(child)) child.remove();
  wanted.forEach((node, n) => {
    if (parent.children[n] !== node) parent.insertBefore(node, parent.children[n] ?? null);
  });
}

/** A step's entry: head (number, name, status, times), error, artifacts. Returns
 * {li, update(step, artifacts)}; an update changes only what changed. */
function stepItem(rpc, runId, opened) {
  const li = h("li", { class: "step" });
  const head = h("div", { class: "step-head" });
  const error = h("p", { class: "step-error", hidden: true });
  const list = h("ul", { class: "artifacts" });
  const none = h("p", { class: "no-artifacts" }, "No artifacts.");
  li.append(head, error, list, none);
  const items = new Map(); // artifact name -> {li, update}
  let shown = "";
  return {
    li,
    update(step, artifacts) {
      li.dataset.number = String(step.number);
      li.dataset.status = step.status;
      const took = between(step.startedAt, step.completedAt);
      const key = JSON.stringify([step, stepDuration(step, took)]);
      if (key !== shown) {
        shown = key;
        fill(
          head,
          h("span", { class: "step-number" }, String(step.number).padStart(2, "0")),
          h("span", { class: "step-name" }, step.name),
          badge(step.status),
          h(
            "span",
            { class: "step-meta" },
            step.startedAt ? [h("span", {}, "started ", timeEl(step.startedAt)), " · "] : null,
            h("span", { class: "step-duration" }, stepDuration(step, took)),
          ),
        );
        error.hidden = !step.errorMessage;
        error.textContent = step.errorMessage ?? "";
      }
      list.setAttribute("aria-label", `Artifacts of step ${step.number}`);
      const wanted = [];
      const names = new Set();
      for (const artifact of artifacts) {
        names.add(artifact.name);
        let item = items.get(artifact.name);
        if (item) item.update(artifact);
        else {
          item = artifactItem(rpc, runId, artifact, opened);
          items.set(artifact.name, item);
        }
        wanted.push(item.li);
      }
      for (const name of [...items.keys()]) if (!names.has(name)) items.delete(name);
      arrange(list, wanted);
      list.hidden = artifacts.length === 0;
      none.hidden = artifacts.length > 0;
    },
  };
}

export function mount({ rpc }, main, { id }) {
  const section = h("section", { class: "area area-run", "aria-labelledby": "run-title" });
  const title = h("h1", { id: "run-title", tabindex: "-1" }, `Run ${id}`);
  // Only the run's status is announced as it changes (not every refresh of the page).
  const announce = h("p", { class: "run-announce visually-hidden", role: "status" });
  const body = h("div", { class: "run-body" }, notice("loading", "Loading the run…"));
  section.append(
    h("p", { class: "back" }, h("a", { href: "#/runs" }, "← All runs")),
    title,
    announce,
    body,
  );
  main.append(section);
  const opened = new Set(); // artifacts whose text is shown, kept across refreshes
  let alive = true;
  let timer = 0;
  let deleted = false;
  let view = null; // the page's parts while it shows the run
  const backLink = () => h("p", {}, h("a", { href: "#/runs" }, "Back to the runs"));
  const showDeleted = () => {
    deleted = true;
    view = null;
    fill(body, notice("empty", "This run was deleted."), backLink());
  };

  const act = async (label, method, params, question, options = {}) => {
    const answer = await confirmDialog(question, { action: label, ...options });
    if (!answer || !alive) return;
    const extra = options.input ? { errorMessage: answer } : {};
    try {
      await rpc.call(method, { runId: id, ...params, ...extra });
      if (method === "runs.delete") {
        showDeleted();
        return;
      }
      refresh();
    } catch (error) {
      body.prepend(notice("error", errorWords(error, label.toLowerCase())));
    }
  };

  const actions = (run) => {
    const buttons = [];
    const open = run.status === "pending" || run.status === "running";
    const button = (name, text, onclick) =>
      h(
        "button",
        { type: "button", class: `act-${name}`, dataset: { focus: name }, onclick },
        text,
      );
    if (open) {
      const question = `Cancel run ${run.id}? Its steps stop where they are.`;
      buttons.push(
        button("cancel", "Cancel run", () =>
          act("Cancel", "runs.cancel", {}, question, { danger: true }),
        ),
      );
    }
    if (run.status === "running") {
      const complete =
        `Mark run ${run.id} completed? Open steps are closed ` +
        "(running ones fail, pending ones are skipped).";
      buttons.push(
        button("complete", "Complete", () =>
          act("Complete", "runs.complete", { force: true }, complete),
        ),
        button("fail", "Fail", () =>
          act("Fail", "runs.fail", {}, `Mark run ${run.id} failed?`, {
            input: "Why it failed",
            danger: true,
          }),
        ),
      );
    }
    const remove = `Delete run ${run.id} and its files? This cannot be undone.`;
    const force = run.status === "running";
    const del = button("delete", "Delete", () =>
      act("Delete", "runs.delete", { force }, remove, { danger: true }),
    );
    del.classList.add("danger");
    buttons.push(del);
    return h("div", { class: "actions run-actions" }, buttons);
  };

  const build = () => {
    const dl = h("dl", { class: "facts" });
    const values = new Map(); // term -> dd
    const terms = ["Status", "Id", "Workspace", "Started", "Finished", "Duration", "Updated"];
    for (const term of [...terms, "Error"]) {
      const dd = h("dd", {});
      values.set(term, dd);
      dl.append(h("dt", {}, term), dd);
    }
    const steps = h("ol", { class: "steps" });
    const stepsTitle = h("h2", {});
    const noSteps = notice("empty", "No steps yet.");
    const parts = {
      dl,
      values,
      actions: h("div", { class: "actions run-actions" }),
      actionsKey: "",
      stepsTitle,
      steps,
      noSteps,
      items: new Map(), // step number -> {li, update}
    };
    body.replaceChildren(dl, parts.actions, stepsTitle, steps, noSteps);
    return parts;
  };

  /** Show `value` (text or a node) in the fact `term`, touching it only when it changed (a
   * selection in the facts survives the refreshes that leave it alone). */
  const fact = (term, value) => {
    const dd = view.values.get(term);
    const node = typeof value === "string" ? document.createTextNode(value) : value;
    const next = node.outerHTML ?? node.textContent;
    if (dd.dataset.shown === next) return;
    dd.dataset.shown = next;
    dd.replaceChildren(node);
  };

  const render = (run, artifacts) => {
    const focused = body.contains(document.activeElement) ? document.activeElement : null;
    if (!view) view = build();
    title.textContent = run.title ? `Run ${run.title}` : `Run ${run.id}`;
    if (body.dataset.status && body.dataset.status !== run.status) {
      announce.textContent = `The run is now ${run.status}.`;
    }
    body.dataset.status = run.status;
    fact("Status", badge(run.status));
    fact("Id", h("code", {}, run.id));
    fact("Workspace", h("code", {}, run.workspace));
    fact("Started", timeEl(run.startedAt));
    fact("Finished", timeEl(run.completedAt));
    fact("Duration", duration(between(run.startedAt, run.completedAt)));
    fact("Updated", timeEl(run.updatedAt));
    fact("Error", run.errorMessage ? h("span", { class: "run-error" }, run.errorMessage) : "none");
    if (view.actionsKey !== run.status) {
      view.actionsKey = run.status;
      const next = actions(run);
      view.actions.replaceWith(next);
      view.actions = next;
    }
    const byStep = new Map();
    for (const a of artifacts) {
      if (!byStep.has(a.step)) byStep.set(a.step, []);
      byStep.get(a.step).push(a);
    }
    const steps = run.steps ?? [];
    view.stepsTitle.textContent = `Steps (${steps.length})`;
    const wanted = [];
    const numbers = new Set();
    for (const step of steps) {
      numbers.add(step.number);
      let item = view.items.get(step.number);
      if (!item) {
        item = stepItem(rpc, run.id, opened);
        view.items.set(step.number, item);
      }
      item.update(step, byStep.get(step.number) ?? []);
      wanted.push(item.li);
    }
    for (const number of [...view.items.keys()]) {
      if (!numbers.has(number)) view.items.delete(number);
    }
    arrange(view.steps, wanted);
    view.steps.hidden = steps.length === 0;
    view.noSteps.hidden = steps.length > 0;
    // A control that went (an action button after the status changed): the focus goes to
    // the same control if there is one again, else to the title, not to the document's top.
    if (focused && !focused.isConnected) {
      const again = focused.dataset.focus
        ? body.querySelector(`[data-focus="${CSS.escape(focused.dataset.focus)}"]`)
        : null;
      (again ?? title).focus();
    }
  };

  const refresh = async () => {
    clearTimeout(timer);
    if (!alive || deleted) return;
    try {
      const [run, artifacts] = await Promise.all([
        rpc.call("runs.get", { runId: id, steps: true }),
        rpc.call("artifacts.list", { runId: id }),
      ]);
      if (alive && !deleted) render(run, artifacts);
    } catch (error) {
      if (!alive) return;
      view = null;
      if (error.code === -32001 || /not found|no run/i.test(error.message)) {
        fill(body, notice("empty", `There is no run ${id} (deleted, or never made).`), backLink());
      } else {
        body.replaceChildren(notice("error", errorWords(error, "load this run")));
      }
    }
  };
  const stop = rpc.on("run.event", (params) => {
    const mine = (params?.events ?? []).filter((e) => e.runId === id);
    if (!mine.length && !params?.overflow) return;
    if (mine.some((e) => e.type === "deleted")) {
      showDeleted();
      return;
    }
    clearTimeout(timer);
    timer = setTimeout(refresh, 50); // one read for a burst of changes
  });
  refresh();
  return () => {
    alive = false;
    clearTimeout(timer);
    stop();
  };
}
