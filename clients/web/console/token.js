// The console's key (README: The web console): `simpleaide open` puts it in the address's fragment
// (`#token=…&area=runs`), which browsers never send to a server. The page moves it into
// localStorage (scoped to this origin, port included) and takes it out of the address bar.
// A key the daemon refuses is kept all the same (see rpc.js); a new one given replaces it.

export const STORAGE_KEY = "simpleaide.token";
export const AREAS = ["runs", "vault", "db", "llm", "shell", "env"];
// What a WebSocket subprotocol may carry (RFC 6455: a token); the daemon's keys are hex.
const TOKEN_SHAPE = /^[A-Za-z0-9_-]{16,512}$/;

/** Take a key offered in the fragment (then replace the address with `/#/<area>`); the key
 * to use, or null when there is none. */
export function takeToken() {
  const fragment = location.hash.replace(/^#/, "");
  if (/(^|&)token=/.test(fragment)) {
    const params = new URLSearchParams(fragment);
    const token = params.get("token") ?? "";
    const area = params.get("area");
    if (TOKEN_SHAPE.test(token)) store(token);
    const where = AREAS.includes(area) ? area : "runs";
    history.replaceState(null, "", `/#/${where}`);
  }
  const kept = read();
  return kept && TOKEN_SHAPE.test(kept) ? kept : null;
}

function store(token) {
  try {
    localStorage.setItem(STORAGE_KEY, token);
  } catch {
    // Storage refused: the key lives as long as this page.
    sessionKey = token;
  }
}

let sessionKey = null;

function read() {
  try {
    return localStorage.getItem(STORAGE_KEY) ?? sessionKey;
  } catch {
    return sessionKey;
  }
}
