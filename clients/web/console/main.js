// The web console (README: The web console): the header's five chips on top, one area per chip below,
// all fed by one JSON-RPC connection over the WebSocket at /rpc.

import "/static/simpleaide-status.js";
import { notice } from "./dom.js";
import { RpcClient } from "./rpc.js";
import { isRoute, route } from "./router.js";
import { takeToken } from "./token.js";

const HOW_TO = "Run `simpleaide open` in a terminal to open the console with its key.";

const main = document.getElementById("main");
const banner = document.getElementById("banner");
const header = document.getElementById("status");
const nav = document.getElementById("areas");

let keyless = null; // the "needs its key" section while shown

/** The page for a visitor without a valid key: how to get one, nothing else. */
function showHowToGetAKey(why) {
  header.hidden = true;
  nav.hidden = true;
  banner.hidden = true;
  const [before, command, after] = HOW_TO.split("`");
  const section = document.createElement("section");
  section.className = "keyless";
  section.setAttribute("aria-labelledby", "keyless-title");
  const title = document.createElement("h1");
  title.id = "keyless-title";
  title.textContent = "This console needs its key";
  const words = document.createElement("p");
  const code = document.createElement("code");
  code.textContent = command;
  words.append(before, code, after);
  section.append(title, notice("error", why), words);
  const more = document.createElement("p");
  const rotate = document.createElement("code");
  rotate.textContent = "simpleaide open --rotate-token";
  more.append(
    "The key travels in the address once, then stays in this browser for this address and " +
      "port. After ",
    rotate,
    " every open page needs the new one.",
  );
  section.append(more);
  main.replaceChildren(section);
  delete main.dataset.area;
  keyless = section;
  document.title = "SimpleAide console: no key";
}

// A key given in the address of a page already open (pasted, or `simpleaide open` on a page
// the browser reuses): take it (it replaces the one kept) and start again with it.
addEventListener("hashchange", () => {
  if (/(^|&)token=/.test(location.hash.replace(/^#/, ""))) {
    takeToken();
    location.reload();
  }
});

// The skip link goes to the content without touching the address (the router's).
document.querySelector("a.skip")?.addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});

const token = takeToken();
if (!token) {
  showHowToGetAKey("This browser holds no key for this console.");
} else {
  const rpc = new RpcClient(token).start();
  const context = { rpc, status: null, statusListeners: new Set() };
  let current = null; // the mounted area: {key, unmount}

  const mount = ({ focus = false } = {}) => {
    const next = route(isRoute(location.hash) ? location.hash : "");
    if (next.redirect) {
      history.replaceState(null, "", next.redirect);
    }
    current?.unmount?.();
    keyless = null;
    header.hidden = false;
    nav.hidden = false;
    main.replaceChildren();
    main.dataset.area = next.area ?? "none";
    for (const link of nav.querySelectorAll("a")) {
      if (link.dataset.area === next.area) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    document.title = `SimpleAide: ${next.title}`;
    current = { key: next.key, unmount: next.mount(context, main, next.params) };
    if (focus) {
      // A new page: the focus goes to its heading, where a screen reader starts reading.
      const heading = main.querySelector("h1");
      if (heading) {
        if (!heading.hasAttribute("tabindex")) heading.tabIndex = -1;
        heading.focus();
      }
    }
  };

  // The header: the chips from status.subscribe, status.changed keeps them live.
  header.setAttribute("mode", "feed");
  const showStatus = (doc) => {
    context.status = doc;
    header.feed(doc);
    for (const listener of context.statusListeners) listener(doc);
  };
  rpc.on("status.changed", (params) => params?.status && showStatus(params.status));
  rpc.subscribe("status.subscribe", {}, (result) => result && showStatus(result.status));
  // One run subscription for the whole page (a connection holds one): every area that shows
  // runs listens to run.event and keeps what concerns it.
  rpc.subscribe("runs.subscribe", {}, () => {});

  let troubled = false; // a failure since the area was mounted: mount it again when back
  rpc.addEventListener("state", ({ detail: { state, reason } }) => {
    document.body.dataset.connection = state;
    if (state === "refused") {
      // The key is kept (the refusal may pass); the page says how to get a key meanwhile and
      // the connection is tried again every few seconds.
      troubled = true;
      current?.unmount?.();
      current = null;
      showHowToGetAKey(
        "The daemon refused the key this browser holds (a new key was made?). " +
          "The page tries it again every few seconds.",
      );
      return;
    }
    if (state === "unreachable") {
      troubled = true;
      banner.textContent =
        `The daemon is unreachable at ${location.host} (${reason}). The page reconnects by ` +
        "itself, every few seconds at most; what it shows may be out of date meanwhile.";
      banner.hidden = false;
      header.feedUnreachable(`${location.origin}/rpc`, reason);
      return;
    }
    if (state === "open") {
      banner.hidden = true;
      banner.textContent = "";
      // Back after a loss (the subscriptions are already asked for again): the area reads
      // everything again.
      if (troubled || keyless) mount();
      troubled = false;
    }
  });
  addEventListener("hashchange", () => {
    if (isRoute(location.hash) && !keyless) mount({ focus: true });
  });
  mount();
}
