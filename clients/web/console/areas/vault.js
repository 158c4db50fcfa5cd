// Vault: its state, the auto-lock countdown, lock; unlock with the passphrase; the secrets'
// names while unlocked (vault.list: names only, never a value). After a wrong passphrase the
// daemon slows the next try down: the page says so and counts the wait down.
//
// vault.list counts as a use of the vault (it restarts the idle timer), vault.status does not.
// So the countdown always comes from a vault.status read after the last vault.list, and the
// page reads the names only when the vault becomes unlocked or the user acts: an idle open
// Vault page never keeps the vault unlocked.

import { duration, errorWords, facts, h, notice } from "../dom.js";

const WRONG_PASSPHRASE = -32021;

function secretCount(status) {
  if (status.secrets != null) return String(status.secrets);
  return status.state === "locked" ? "– (locked)" : "–";
}

export function mount({ rpc, statusListeners }, main) {
  const body = h("div", { class: "vault-body" }, notice("loading", "Loading the vault's state…"));
  main.append(
    h(
      "section",
      { class: "area area-vault", "aria-labelledby": "vault-title" },
      h("h1", { id: "vault-title" }, "Vault"),
      body,
    ),
  );
  let alive = true;
  let status = null; // the last vault.status
  let readAt = 0; // when it was read (performance.now())
  let slowUntil = 0; // the next unlock may be tried from then (performance.now())
  let message = null; // the last error or wrong-passphrase words
  let names = null;
  let tick = 0;
  let busy = false;
  let reading = false; // a load is under way

  const countdown = h("span", { class: "countdown", "aria-live": "off" });
  const wait = h("p", { class: "slowdown", role: "status", hidden: true });

  const remaining = () =>
    status?.autoLockRemainingMs == null
      ? null
      : Math.max(0, status.autoLockRemainingMs - (performance.now() - readAt));

  const updateClock = () => {
    const left = remaining();
    countdown.textContent = left === null ? "never (no idle limit)" : `in ${duration(left)}`;
    const waitMs = slowUntil - performance.now();
    const button = body.querySelector("form.unlock button");
    if (waitMs > 0) {
      wait.hidden = false;
      const left = Math.ceil(waitMs / 1000);
      wait.textContent = `Slowed down after a wrong passphrase: the next try waits ${left} s.`;
      if (button) button.disabled = true;
    } else {
      wait.hidden = true;
      if (button && !busy) button.disabled = false;
    }
    // Its time is up: see whether it locked (vault.status only, which is not a use).
    if (status?.state === "unlocked" && left === 0 && !reading) load({ names: false });
  };

  const unlockForm = () => {
    const field = h("input", {
      type: "password",
      id: "passphrase",
      name: "passphrase",
      autocomplete: "current-password",
      required: true,
      maxlength: "1024",
    });
    const button = h("button", { type: "submit", class: "primary" }, "Unlock");
    const form = h(
      "form",
      { class: "unlock", "aria-label": "Unlock the vault" },
      h("label", { for: "passphrase" }, "Passphrase"),
      field,
      button,
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!field.value || busy) return;
      busy = true;
      button.disabled = true;
      button.textContent = "Unlocking…";
      const passphrase = field.value;
      try {
        await rpc.call("vault.unlock", { passphrase });
        message = null;
        slowUntil = 0;
      } catch (error) {
        if (error.code === WRONG_PASSPHRASE) {
          message = "Wrong passphrase.";
          slowUntil = performance.now() + (error.data?.retryAfterMs ?? 0);
        } else {
          message = errorWords(error, "unlock");
        }
      } finally {
        busy = false;
      }
      field.value = "";
      await load({ names: true });
      body.querySelector("#passphrase")?.focus();
    });
    return form;
  };

  const render = () => {
    const parts = [];
    if (message) parts.push(notice("error", message));
    const state = status.state;
    parts.push(
      facts([
        ["State", h("span", { class: `vault-state state-${state}` }, state)],
        ["Locks", state === "unlocked" ? countdown : "–"],
        ["Secrets", secretCount(status)],
        ["File", h("code", {}, status.file)],
      ]),
    );
    if (state === "uninitialized") {
      parts.push(
        notice(
          "empty",
          "There is no vault yet. Create it in a terminal with `simpleaide vault init` " +
            "(the console never sets a passphrase).",
        ),
      );
    } else if (state === "locked") {
      parts.push(unlockForm(), wait);
    } else if (state === "unlocked") {
      parts.push(
        h(
          "div",
          { class: "actions" },
          h("button", { type: "button", class: "lock", onclick: lock }, "Lock now"),
        ),
        h("h2", {}, "Secrets"),
        names === null
          ? notice("loading", "Loading the names…")
          : names.length
            ? h(
                "ul",
                { class: "secret-names", "aria-label": "Secret names" },
                names.map((n) => h("li", {}, h("code", {}, n))),
              )
            : notice("empty", "No secrets yet. Add them with `simpleaide vault set NAME`."),
        h("p", { class: "hint" }, "Values are never shown here: they stay with the CLI."),
      );
    } else {
      const words = `The vault reads as “${state}”. See \`simpleaide vault status\`.`;
      parts.push(notice("error", words));
    }
    body.replaceChildren(...parts);
    body.dataset.state = state;
    updateClock();
  };

  async function lock() {
    try {
      await rpc.call("vault.lock");
      message = null;
    } catch (error) {
      message = errorWords(error, "lock");
    }
    await load({ names: true });
  }

  /** Read the state; read the names too when `names` (the user acted, or the first look)
   * or when the vault became unlocked since the last read, then the state again (the list
   * was a use: the countdown restarted). */
  async function load({ names: wanted = false } = {}) {
    reading = true;
    try {
      const before = status?.state;
      let next = await rpc.call("vault.status");
      if (!alive) return;
      if (next.state !== "unlocked") names = null;
      else if (wanted || before !== "unlocked" || names === null) {
        if (status === null) {
          status = next;
          readAt = performance.now();
          render(); // the state at once, the names when they come
        }
        try {
          names = (await rpc.call("vault.list")).names;
        } catch (error) {
          names = [];
          message = errorWords(error, "list the secrets");
        }
        if (!alive) return;
        next = await rpc.call("vault.status");
        if (!alive) return;
        if (next.state !== "unlocked") names = null;
      }
      status = next;
      readAt = performance.now();
      if (next.retryAfterMs > 0) slowUntil = Math.max(slowUntil, readAt + next.retryAfterMs);
      render();
    } catch (error) {
      if (alive) body.replaceChildren(notice("error", errorWords(error, "read the vault's state")));
    } finally {
      reading = false;
    }
  }

  // The status document tells when the vault locks or unlocks elsewhere (the CLI, a timer).
  const onStatus = (doc) => {
    if (status && doc?.vault && doc.vault.state !== status.state && !busy) load();
  };
  statusListeners.add(onStatus);
  tick = setInterval(() => status && updateClock(), 1000);
  load({ names: true });
  return () => {
    alive = false;
    clearInterval(tick);
    statusListeners.delete(onStatus);
  };
}
