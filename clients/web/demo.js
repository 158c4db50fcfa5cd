// The demo page of <simpleaide-status> (/static/demo.html): ?interval=… and ?stream=… set the
// header's attributes, to try them out. A key goes in the fragment (#token=…), which the
// browser never sends to a server; the page takes it out of the address at once.

const status = document.getElementById("status");
const params = new URLSearchParams(location.search);
for (const name of ["interval", "stream"]) {
  if (params.has(name)) status.setAttribute(name, params.get(name));
}
const takeToken = () => {
  const fragment = new URLSearchParams(location.hash.replace(/^#/, ""));
  if (!fragment.has("token")) return;
  status.setAttribute("token", fragment.get("token"));
  history.replaceState(null, "", location.pathname + location.search);
};
takeToken();
const area = document.getElementById("area");
const showArea = () => {
  area.textContent = location.hash || "none";
};
addEventListener("hashchange", () => {
  takeToken();
  showArea();
});
showArea();
const documentView = document.getElementById("document");
status.addEventListener("statuschange", (event) => {
  const doc = event.detail.document;
  if (doc) documentView.textContent = JSON.stringify(doc, null, 2);
});
