// Shell: the terminals the daemon hosts (README: Terminals on the wire). The list (terminals.list, read again
// every few seconds and after every action) with New, Attach, Watch (read-only), Rename and
// Kill; the attached terminal above it (terminal.js). The address names the attached terminal
// (`#/shell/<id>`, `#/shell/<id>/watch`), so a reload comes back to it with its screen, and
// `#/shell` goes back to the one this tab had attached last (until Detach).

import { badge, confirmDialog, errorWords, h, notice, timeEl } from "../dom.js";
import { exitWords, TerminalView } from "./terminal.js";

const POLL_MS = 3000;
const LAST_KEY = "simpleaide.shell.attached"; // sessionStorage: {id, watch}, this tab's last
const EMPTY = "No terminals yet — New starts your login shell.";
const METHOD_NOT_FOUND = -32601;
const NO_SUCH_TERMINAL = -32001;

function remembered() {
  try {
    const kept = JSON.parse(sessionStorage.getItem(LAST_KEY) ?? "null");
    return kept && typeof kept.id === "string" ? kept : null;
  } catch {
    return null;
  }
}

function remember(kept) {
  try {
    if (kept) sessionStorage.setItem(LAST_KEY, JSON.stringify(kept));
    else sessionStorage.removeItem(LAST_KEY);
  } catch {
    // Not kept: `#/shell` shows the list.
  }
}

/** A command line as a shell would read it back: `bash -l`, `sh -c 'echo hi'`. */
export function commandLine(argv) {
  return (argv ?? [])
    .map((arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", "'\\''")}'`))
    .join(" ");
}

function attachedWords(t) {
  if (!t.attached) return "no one attached";
  const watching = t.readOnly ? ` (${t.readOnly} read-only)` : "";
  return `${t.attached} attached${watching}`;
}

function listErrorWords(error) {
  if (error?.code === METHOD_NOT_FOUND) {
    return (
      "This daemon hosts no terminals: it runs an older version than this console. Restart " +
      "it with the current version to use the Shell."
    );
  }
  return errorWords(error, "list the terminals");
}

export function mount({ rpc }, main, { id = null, watch = false } = {}) {
  const newButton = h(
    "button",
    { type: "button", class: "terminal-new primary", "aria-expanded": "false" },
    "New terminal",
  );
  const nameField = h("input", {
    id: "terminal-name",
    name: "name",
    type: "text",
    maxlength: "64",
    autocomplete: "off",
    placeholder: "optional",
  });
  const folderField = h("input", {
    id: "terminal-folder",
    name: "cwd",
    type: "text",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "your home folder, or a full path",
  });
  const startButton = h("button", { type: "submit", class: "primary" }, "Start");
  const cancelButton = h("button", { type: "button", class: "cancel" }, "Cancel");
  const formMessage = h("div", { class: "terminal-form-message" });
  const newForm = h(
    "form",
    { class: "terminal-form", hidden: true, "aria-label": "New terminal" },
    h("label", { for: "terminal-name" }, "Name"),
    nameField,
    h("label", { for: "terminal-folder" }, "Folder"),
    folderField,
    h("span", { class: "terminal-form-actions" }, startButton, cancelButton),
    formMessage,
  );
  const message = h("div", { class: "shell-message" });
  const slot = h("div", { class: "terminal-slot" });
  const state = h("div", { class: "list-state", "aria-live": "polite" });
  const list = h("ul", { class: "terminal-list", "aria-label": "Terminals, oldest first" });
  const heading = h("h1", { id: "shell-title" }, "Shell");
  main.append(
    h(
      "section",
      { class: "area area-shell", "aria-labelledby": "shell-title" },
      heading,
      h("div", { class: "toolbar" }, newButton),
      newForm,
      message,
      slot,
      h("h2", { class: "terminals-title" }, "Terminals"),
      state,
      list,
    ),
  );

  let alive = true;
  let loaded = false; // the list was read at least once
  let failure = null; // the last list's error, if it failed
  let pollTimer = 0;
  let view = null; // the attached terminal's TerminalView
  let redirected = false;
  const rows = new Map(); // id -> {li, key}

  const say = (kind, words) => message.replaceChildren(words ? notice(kind, words) : "");

  // --- the list -----------------------------------------------------------------------------

  const showState = () => {
    if (failure) state.replaceChildren(notice("error", listErrorWords(failure)));
    else if (!loaded) state.replaceChildren(notice("loading", "Loading the terminals…"));
    else if (rows.size === 0) state.replaceChildren(notice("empty", EMPTY));
    else state.replaceChildren();
    list.hidden = rows.size === 0;
  };

  const row = (t) => {
    const current = view?.id === t.id;
    const running = !t.exited;
    const attach = h(
      "a",
      {
        class: "button attach",
        href: `#/shell/${t.id}`,
        dataset: { action: "attach" },
        "aria-current": current && !watch ? "true" : null,
      },
      current && !watch ? "Attached" : "Attach",
    );
    const look = h(
      "a",
      {
        class: "button watch",
        href: `#/shell/${t.id}/watch`,
        dataset: { action: "watch" },
        "aria-current": current && watch ? "true" : null,
      },
      current && watch ? "Watching" : "Watch read-only",
    );
    const rename = h(
      "button",
      { type: "button", class: "rename", dataset: { action: "rename" } },
      "Rename",
    );
    const kill = h(
      "button",
      { type: "button", class: running ? "kill danger" : "remove", dataset: { action: "kill" } },
      running ? "Kill" : "Remove",
    );
    rename.addEventListener("click", () => renameTerminal(t));
    kill.addEventListener("click", () => killTerminal(t));
    const status = running
      ? badge("running")
      : badge(t.exited.code === 0 ? "completed" : "failed", exitWords(t.exited));
    return h(
      "li",
      {
        class: "terminal-row",
        dataset: { id: t.id, state: running ? "running" : "exited" },
        "aria-current": current ? "true" : null,
      },
      h(
        "div",
        { class: "terminal-summary" },
        h("span", { class: "terminal-heading" }, h("span", { class: "terminal-name" }, t.name), status),
        h("code", { class: "terminal-command" }, commandLine(t.argv)),
        h(
          "span",
          { class: "terminal-meta" },
          h("span", {}, "in ", h("code", { class: "terminal-folder" }, t.cwd)),
          h("span", {}, "started ", timeEl(t.createdAt)),
          h("span", { class: "terminal-size" }, `${t.cols}×${t.rows}`),
          h("span", { class: "terminal-attached" }, attachedWords(t)),
        ),
      ),
      h("div", { class: "terminal-actions" }, attach, look, rename, kill),
    );
  };

  const render = (terminals) => {
    const seen = new Set();
    for (const t of terminals) {
      seen.add(t.id);
      const key = JSON.stringify([t, view?.id === t.id, watch]);
      const old = rows.get(t.id);
      if (old?.key === key) continue;
      const li = row(t);
      if (old) {
        // Replaced in place; a control that had the focus hands it to its successor (the one
        // with the same action: Kill's is Remove once the terminal ended), or to the row's first.
        const focused = old.li.contains(document.activeElement) ? document.activeElement : null;
        old.li.replaceWith(li);
        if (focused) {
          const action = focused.dataset?.action;
          const successor = action ? li.querySelector(`[data-action="${action}"]`) : null;
          (successor ?? li.querySelector("[data-action]"))?.focus();
        }
      } else {
        list.append(li);
      }
      rows.set(t.id, { li, key });
    }
    for (const [gone, { li }] of rows) {
      if (seen.has(gone)) continue;
      li.remove();
      rows.delete(gone);
    }
    const mine = view && terminals.find((t) => t.id === view.id);
    if (mine) {
      if (mine.name !== view.name) view.rename(mine.name);
      document.title = `SimpleAide: Terminal ${mine.name}`;
      view.follow(mine);
    }
    showState();
    // `#/shell` goes back to the terminal this tab had attached, if it is still there.
    const kept = remembered();
    if (!id && !redirected && kept && terminals.some((t) => t.id === kept.id)) {
      redirected = true;
      location.replace(`#/shell/${kept.id}${kept.watch ? "/watch" : ""}`);
    }
  };

  const load = async () => {
    clearTimeout(pollTimer);
    if (!alive) return;
    if (document.hidden && loaded) {
      pollTimer = setTimeout(load, POLL_MS); // no one looks: read it when they do
      return;
    }
    try {
      const terminals = await rpc.call("terminals.list");
      if (!alive) return;
      loaded = true;
      failure = null;
      render(terminals);
    } catch (error) {
      if (!alive) return;
      failure = error;
      showState();
    } finally {
      if (alive) {
        clearTimeout(pollTimer);
        pollTimer = setTimeout(load, POLL_MS);
      }
    }
  };
  const onVisible = () => !document.hidden && load();
  document.addEventListener("visibilitychange", onVisible);

  // --- actions ------------------------------------------------------------------------------

  const showForm = (open) => {
    newForm.hidden = !open;
    newButton.setAttribute("aria-expanded", String(open));
    formMessage.replaceChildren();
    if (open) nameField.focus();
  };
  newButton.addEventListener("click", () => showForm(newForm.hidden));
  cancelButton.addEventListener("click", () => {
    showForm(false);
    newButton.focus();
  });
  newForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const params = {};
    const name = nameField.value.trim();
    const cwd = folderField.value.trim();
    if (name) params.name = name;
    if (cwd) {
      if (!cwd.startsWith("/")) {
        formMessage.replaceChildren(
          notice("error", "The folder must be a full path, starting with / (or empty: your home)."),
        );
        folderField.focus();
        return;
      }
      params.cwd = cwd;
    }
    if (view?.term) Object.assign(params, { cols: view.term.cols, rows: view.term.rows });
    startButton.disabled = true;
    formMessage.replaceChildren(notice("loading", "Starting…"));
    try {
      const created = await rpc.call("terminals.create", params);
      if (!alive) return;
      newForm.reset();
      showForm(false);
      location.hash = `#/shell/${created.id}`;
    } catch (error) {
      if (!alive) return;
      // The daemon names the parameter ("cwd: no such folder: /x"): the form says "Folder".
      const words = error?.message?.replace(/^(cwd|argv): /, "") ?? error;
      formMessage.replaceChildren(
        notice("error", errorWords({ ...error, message: words }, "start a terminal")),
      );
    } finally {
      startButton.disabled = false;
    }
  });

  const renameTerminal = async (t) => {
    const name = await confirmDialog(`Rename the terminal “${t.name}”`, {
      action: "Rename",
      input: "New name",
      value: t.name,
    });
    if (!alive || name === null || name === t.name) return;
    try {
      await rpc.call("terminals.rename", { id: t.id, name });
      if (alive) say("done", `The terminal “${t.name}” is now “${name}”.`);
    } catch (error) {
      if (alive) say("error", errorWords(error, `rename the terminal “${t.name}”`));
    }
    load();
  };

  const killTerminal = async (t) => {
    const running = !t.exited;
    if (running) {
      const sure = await confirmDialog(
        `Kill the terminal “${t.name}”? Its programs get a hang-up signal (then TERM and ` +
          "KILL if they live on), and it leaves the list.",
        { action: "Kill", danger: true },
      );
      if (!sure || !alive) return;
    }
    try {
      await rpc.call("terminals.kill", { id: t.id, remove: true });
      if (remembered()?.id === t.id) remember(null);
      if (!alive) return;
      say(
        "done",
        running
          ? `The terminal “${t.name}” was told to hang up; it leaves the list once it has ended.`
          : `The terminal “${t.name}” was removed.`,
      );
    } catch (error) {
      if (alive) say("error", errorWords(error, `${running ? "kill" : "remove"} “${t.name}”`));
    }
    load();
  };

  // --- the attached terminal ----------------------------------------------------------------

  const detach = () => {
    remember(null);
    location.hash = "#/shell";
  };

  const gone = (what) => {
    if (remembered()?.id === what) remember(null);
    slot.replaceChildren(
      h(
        "div",
        { class: "terminal-gone" },
        notice(
          "error",
          `The terminal ${what} is gone: terminals end when the daemon stops (a restart, a ` +
            "reboot) or when they are killed or removed. Attach to another one below, or " +
            "start a new one with New terminal.",
        ),
        h("p", {}, h("a", { href: "#/shell" }, "Back to the terminals")),
      ),
    );
  };

  const changed = (v) => {
    if (!alive || v !== view) return;
    if (v.state === "exited") load();
    if (v.state === "gone") {
      view = null;
      v.dispose();
      gone(v.id);
      load();
    }
  };

  // Whether the focus is free for the terminal: on nothing, or on the heading the console
  // focuses when the address changes (an attach asked for). Elsewhere (the header, say, when
  // the area is mounted again after a lost connection) it stays where the user put it.
  const focusFree = () => {
    const active = document.activeElement;
    return !active || active === document.body || active === heading;
  };

  if (id) {
    view = new TerminalView({ rpc, id, name: id, readOnly: watch, onChange: changed, onDetach: detach });
    slot.replaceChildren(view.element);
    const opened = view;
    opened.open().then(
      () => {
        if (!alive || view !== opened) return;
        if (focusFree()) opened.focus();
        remember({ id, watch });
        load(); // the attached count, the name
      },
      (error) => {
        if (!alive || view !== opened) return;
        if (error?.code === NO_SUCH_TERMINAL) return; // `changed` said so
        view = null;
        opened.dispose();
        const words = error?.unreachable
          ? "The daemon is unreachable: the terminal is attached again, with its screen, when " +
            "it answers."
          : error?.code === METHOD_NOT_FOUND
            ? listErrorWords(error)
            : errorWords(error, `attach to the terminal ${id}`);
        slot.replaceChildren(notice("error", words));
      },
    );
  }

  showState();
  load();

  return () => {
    alive = false;
    clearTimeout(pollTimer);
    document.removeEventListener("visibilitychange", onVisible);
    view?.dispose();
    view = null;
  };
}
