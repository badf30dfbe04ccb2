// provd admin App: pages over the ProvdAdmin API (README "The admin App").
import { AppConnection, websocketUrl } from "./login.js";

const app = document.body.dataset.app;
const main = document.getElementById("main");
const connLabel = document.getElementById("conn");
const inFrame = window.parent !== window;

// --- small DOM helpers -------------------------------------------------------------------
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
const time = (t) => (t ? new Date(t * 1000).toLocaleString() : "–");
const ago = (t) => {
  if (!t) return "";
  const s = Math.max(0, Math.round(Date.now() / 1000 - t));
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 129600) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
};
const badge = (state) =>
  h("span", { class: `badge ${["provisioned", "pending", "failed"].includes(state) ? state : "other"}` }, state);
function setPage(title, ...content) {
  main.replaceChildren(h("h2", { id: "page-title" }, title), ...content.flat());
  main.setAttribute("aria-busy", "false");
  document.title = `${title} – provd`;
}

// --- theme -------------------------------------------------------------------------------
const themeButton = document.getElementById("theme");
function store(key, value) {
  try { if (value === undefined) return localStorage.getItem(key); localStorage.setItem(key, value); } catch { /* storage blocked */ }
  return null;
}
function applyTheme(theme) {
  document.documentElement.dataset.theme = theme;
  themeButton.setAttribute("aria-pressed", theme === "dark" ? "true" : "false");
  themeButton.textContent = "Dark theme";
}
const params = new URLSearchParams(location.search);
applyTheme(params.get("theme") || store("provd-theme")
  || (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light"));
themeButton.addEventListener("click", () => {
  const next = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
  applyTheme(next);
  store("provd-theme", next);
});

// --- connection and login ----------------------------------------------------------------
const loginDialog = document.getElementById("login-dialog");
const loginForm = document.getElementById("login-form");
const loginError = document.getElementById("login-error");
function askPassword() {
  return new Promise((resolve) => {
    const input = document.getElementById("login-password");
    input.value = "";
    if (!loginDialog.open) loginDialog.showModal();
    input.focus();
    loginForm.addEventListener("submit", (e) => {
      e.preventDefault();
      loginDialog.close();
      resolve(input.value);
    }, { once: true });
  });
}

const state = { phones: new Map(), route: null, subscribed: false };
const conn = new AppConnection(websocketUrl(location.href), app, {
  inFrame,
  password: askPassword,
  onstate(s, detail) {
    connLabel.dataset.state = s;
    connLabel.textContent = {
      connecting: "Connecting…", login: "Logging in…", connected: `Connected${detail ? ` as ${detail}` : ""}`,
      reconnecting: `Connection lost, ${detail}`, refused: `Login refused: ${detail}`, retry: "Wrong password",
    }[s] || s;
    if (s === "retry") loginError.textContent = "Wrong password, try again.";
  },
  onconnected() {
    loginError.textContent = "";
    subscribe();
    route();
  },
});
conn.open();

async function subscribe() {
  const first = await conn.request("SubscribePhones", {}, (msg) => {
    if (msg.mt === "PhoneUpdate") {
      state.phones.set(msg.phone.mac, msg.phone);
      onPhoneChanged(msg.phone.mac);
    } else if (msg.mt === "PhoneRemoved") {
      state.phones.delete(msg.mac);
      onPhoneChanged(msg.mac);
    } else if (msg.mt === "Phones") {
      state.phones = new Map(msg.phones.map((p) => [p.mac, p]));
      onPhoneChanged(null);
    }
  });
  state.phones = new Map((first.phones || []).map((p) => [p.mac, p]));
  state.subscribed = true;
  onPhoneChanged(null);
}

// --- routing -----------------------------------------------------------------------------
window.addEventListener("hashchange", () => route(true));
function route(focus = false) {
  if (conn.state !== "connected") return;
  const hash = location.hash || "#/phones";
  const [, page, arg] = hash.split("/");
  for (const a of document.querySelectorAll("[data-nav]")) {
    if (a.dataset.nav === (page === "phone" ? "phones" : page)) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  state.route = { page, arg: arg ? decodeURIComponent(arg) : "" };
  main.setAttribute("aria-busy", "true");
  if (page === "phone") showPhone(state.route.arg);
  else if (page === "health") showHealth();
  else if (page === "settings") showSettings();
  else showPhones();
  if (focus) main.focus();
}
function onPhoneChanged(mac) {
  const r = state.route;
  if (!r || !state.subscribed) return;
  if (r.page === "phones" || !r.page) renderPhoneRows(mac);
  else if (r.page === "phone" && (mac === null || mac === r.arg)) showPhone(r.arg, true);
}

// --- phones ------------------------------------------------------------------------------
const filters = { q: "", state: "", vendor: "", category: "" };
function select(id, label, key, values) {
  const el = h("select", { id, onchange: (e) => { filters[key] = e.target.value; renderPhoneRows(null); } },
    h("option", { value: "" }, "All"), ...values.map((v) => h("option", { value: v }, v || "(none)")));
  el.value = filters[key];
  return h("div", {}, h("label", { for: id }, label), el);
}
function showPhones() {
  const phones = [...state.phones.values()];
  const uniq = (f) => [...new Set(phones.map(f))].sort();
  const search = h("input", {
    id: "q", type: "search", value: filters.q, placeholder: "MAC, user or name", autocomplete: "off",
    oninput: (e) => { filters.q = e.target.value; renderPhoneRows(null); },
  });
  setPage("Phones",
    h("div", { class: "filters", role: "search" },
      h("div", { class: "grow" }, h("label", { for: "q" }, "Search"), search),
      select("f-state", "State", "state", uniq((p) => p.state)),
      select("f-vendor", "Vendor", "vendor", uniq((p) => p.vendor)),
      select("f-category", "Category", "category", uniq((p) => p.category))),
    h("p", { id: "phones-summary", class: "summary", role: "status" }),
    h("table", { id: "phones", class: "cards", "aria-describedby": "phones-summary" },
      h("caption", { class: "visually-hidden" }, "Phones provd provisions"),
      h("thead", {}, h("tr", {}, ...["MAC", "User", "Name", "Vendor", "Category", "State", "Online", "Changed"]
        .map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {})));
  renderPhoneRows(null);
}
function matches(p) {
  const q = filters.q.trim().toLowerCase();
  if (q && ![p.mac, p.user, p.cn, p.hwid].some((v) => (v || "").toLowerCase().includes(q.replace(/[:-]/g, "")) || (v || "").toLowerCase().includes(q))) return false;
  return (!filters.state || p.state === filters.state) && (!filters.vendor || p.vendor === filters.vendor)
    && (!filters.category || p.category === filters.category);
}
function phoneRow(p) {
  return h("tr", { "data-mac": p.mac },
    h("td", { class: "mono", "data-label": "MAC" }, h("a", { href: `#/phone/${p.mac}` }, p.mac)),
    h("td", { "data-label": "User" }, p.user || "–"),
    h("td", { "data-label": "Name" }, p.cn || "–"),
    h("td", { "data-label": "Vendor" }, p.vendor || "–"),
    h("td", { "data-label": "Category" }, p.category || "–"),
    h("td", { "data-label": "State", class: "state" }, badge(p.state), p.error ? h("div", { class: "hint" }, p.error) : null),
    h("td", { "data-label": "Online", class: p.online ? "online" : "offline" }, p.online ? "online" : "offline"),
    h("td", { "data-label": "Changed", title: time(p.updated) }, ago(p.updated)));
}
function refreshOptions(all) {
  // Live updates may bring new states, vendors or categories: keep the filters complete.
  for (const [id, key] of [["f-state", "state"], ["f-vendor", "vendor"], ["f-category", "category"]]) {
    const el = document.getElementById(id);
    const values = [...new Set(all.map((p) => p[key]))].sort();
    const have = [...el.options].slice(1).map((o) => o.value);
    if (JSON.stringify(have) === JSON.stringify(values)) continue;
    el.replaceChildren(h("option", { value: "" }, "All"), ...values.map((v) => h("option", { value: v }, v || "(none)")));
    el.value = values.includes(filters[key]) ? filters[key] : "";
    filters[key] = el.value;
  }
}
function renderPhoneRows(changed) {
  const tbody = document.querySelector("#phones tbody");
  if (!tbody) return;
  const all = [...state.phones.values()].sort((a, b) => a.mac.localeCompare(b.mac));
  refreshOptions(all);
  const shown = all.filter(matches);
  tbody.replaceChildren(...shown.map((p) => {
    const row = phoneRow(p);
    if (changed && p.mac === changed) row.classList.add("flash");
    return row;
  }));
  const summary = document.getElementById("phones-summary");
  const online = all.filter((p) => p.online).length;
  summary.textContent = all.length === 0 ? "No phones yet: provision one from the Users app."
    : `${shown.length} of ${all.length} phones shown · ${online} online`;
}

// --- phone detail ------------------------------------------------------------------------
async function showPhone(mac, live = false) {
  const answer = await conn.request("GetPhone", { mac });
  if (state.route.page !== "phone" || state.route.arg !== mac) return;
  if (answer.error) {
    setPage(`Phone ${mac}`, h("p", { class: "notice bad" }, answer.error), h("a", { href: "#/phones" }, "Back to phones"));
    return;
  }
  const p = answer.phone;
  const opened = new Set([...main.querySelectorAll("details[open]")].map((d) => d.id));
  const status = h("p", { id: "action-status", role: "status", class: "muted" });
  const act = (label, mt, cls = "") => h("button", { type: "button", class: cls, id: `act-${mt.toLowerCase()}`, onclick: async () => {
    status.textContent = `${label}…`;
    const r = await conn.request(mt, { mac });
    status.textContent = r.error ? `${label} failed: ${r.error}` : `${label}: done`;
    if (!r.error && mt !== "RemovePhone") showPhone(mac, true);
  } }, label);
  const remove = h("button", { type: "button", class: "danger", id: "act-remove", onclick: () => confirmRemove(p, status) }, "Remove…");
  const facts = [
    ["State", [badge(p.state), p.error ? ` ${p.error}` : ""]],
    ["Online", p.online ? "online (Devices session up)" : "offline"],
    ["User", `${p.user || "–"}${p.cn ? ` (${p.cn})` : ""}`],
    ["Vendor / model", `${p.vendor || "?"} ${p.model || ""}`],
    ["Category", p.category || "–"],
    ["Last fetch from", p.address || "no fetch yet"],
    ["Domain", p.domain || "–"],
    ["Created", time(p.created)],
    ["Last change", `${time(p.updated)} (${ago(p.updated)})`],
    ["Revision", p.revision],
    ["Actor", p.running ? "running" : "not running"],
  ];
  const items = Object.entries(answer.items || {});
  const fetches = answer.fetches || [];
  setPage(`Phone ${mac}`,
    h("p", {}, h("a", { href: "#/phones" }, "← All phones")),
    h("div", { class: "grid" },
      h("section", { class: "panel", "aria-labelledby": "h-life" }, h("h3", { id: "h-life" }, "Lifecycle"),
        h("dl", { class: "facts" }, ...facts.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]))),
      h("section", { class: "panel", "aria-labelledby": "h-act" }, h("h3", { id: "h-act" }, "Actions"),
        h("p", { class: "hint" }, "Force reconnect restarts the phone's Devices session; re-render drops cached files so the next fetch is rendered anew."),
        h("div", { class: "actions" }, act("Force reconnect", "Reconnect"), act("Re-render", "Rerender", "ghost"), remove), status)),
    h("h3", {}, "Devices items"),
    items.length ? items.map(([t, item]) => h("details", { id: `item-${t}`, open: opened.has(`item-${t}`) },
      h("summary", {}, t), h("pre", {}, JSON.stringify(item, null, 2)))) : h("p", { class: "muted" }, "None received yet."),
    h("h3", {}, "Fetch history"),
    fetches.length ? h("table", { class: "cards" },
      h("thead", {}, h("tr", {}, ...["Time", "Address", "File", "Model", "Firmware"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, ...fetches.map((f) => h("tr", {},
        h("td", { "data-label": "Time" }, time(f.time)), h("td", { class: "mono", "data-label": "Address" }, f.address),
        h("td", { class: "mono", "data-label": "File" }, f.file), h("td", { "data-label": "Model" }, f.model || "–"),
        h("td", { "data-label": "Firmware" }, f.firmware || "–")))))
      : h("p", { class: "muted" }, "The phone has not fetched its file yet."),
    h("h3", {}, "The file it would get"),
    answer.file.error ? h("p", { class: "muted" }, answer.file.error)
      : h("details", { id: "file", open: opened.has("file") || !live },
        h("summary", {}, `${answer.file.name} (${answer.file.contentType}), secrets masked`),
        h("pre", { id: "file-text", tabindex: "0" }, answer.file.text)));
}
function confirmRemove(p, status) {
  const dialog = document.getElementById("confirm-dialog");
  document.getElementById("confirm-text").textContent =
    `Remove ${p.mac} (${p.user || "no user"}) from provd? It stops being served and must be provisioned again.`;
  dialog.returnValue = "";
  dialog.showModal();
  document.getElementById("confirm-cancel").focus();
  dialog.addEventListener("close", async () => {
    if (dialog.returnValue !== "ok") return;
    const r = await conn.request("RemovePhone", { mac: p.mac });
    if (r.error) status.textContent = `Remove failed: ${r.error}`;
    else location.hash = "#/phones";
  }, { once: true });
}

// --- health ------------------------------------------------------------------------------
async function showHealth() {
  const r = await conn.request("GetHealth");
  if (state.route.page !== "health") return;
  const dev = r.devices || {};
  const up = (v) => (v === true ? "up" : v === false ? "down" : "unknown");
  const panel = (id, title, rows) => h("section", { class: "panel", "aria-labelledby": id },
    h("h3", { id }, title), h("dl", { class: "facts" }, ...rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])));
  const errors = r.errors || [];
  setPage("Health",
    h("div", { class: "actions" }, h("button", { type: "button", class: "ghost", onclick: () => showHealth() }, "Refresh")),
    h("div", { class: "grid", style: null },
      panel("h-pbx", "PBX sessions", [["Sessions", r.pbx.sessions], ["PBX", (r.pbx.names || []).join(", ") || "–"], ["State", up(r.pbx.up)], ["Since", time(r.pbx.since)]]),
      panel("h-dev", "Devices connection", [["State", up(dev.up)], ["URL", h("span", { class: "mono" }, dev.url || "not known yet")], ["Since", time(dev.since)], ["Last error", dev.error || dev.last_error || "–"]]),
      panel("h-hs", "Handshake queue", [["In flight", `${r.handshakes.inFlight} of ${r.handshakes.limit}`], ["Waiting", r.handshakes.waiting]]),
      panel("h-ph", "Phones", [["Stored", r.phones], ["Online", r.online], ["By state", Object.entries(r.states || {}).map(([k, v]) => `${k}: ${v}`).join(", ") || "–"], ["Version", r.version], ["Last reload", r.lastReload ? `${r.lastReload.ok ? "ok" : "refused"} ${time(r.lastReload.time)}` : "none"]])),
    h("h3", {}, `Errors and warnings of the last hour (${errors.length})`),
    errors.length ? h("table", { class: "cards", id: "errors" },
      h("thead", {}, h("tr", {}, ...["Time", "Level", "Event", "Details"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, ...errors.map((e) => h("tr", {},
        h("td", { "data-label": "Time" }, time(e.time)), h("td", { "data-label": "Level" }, e.level),
        h("td", { class: "mono", "data-label": "Event" }, e.event),
        h("td", { class: "mono", "data-label": "Details" }, Object.entries(e.fields).map(([k, v]) => `${k}=${v}`).join(" "))))))
      : h("p", { class: "notice ok" }, "None."));
}

// --- settings ----------------------------------------------------------------------------
const SETTING_HINTS = {
  resync_interval: "Seconds between a phone's periodic re-fetches (at least 60).",
  time_server: "NTP server for every phone instead of Devices' (empty: Devices').",
  time_zone: "IANA zone like Europe/Berlin instead of Devices' (empty: Devices').",
  firmware: "One per line: vendor model = URL (or a file name in phones.firmware_dir); model * for all.",
  keys: "One category per line: category = kind:target:label, kind:target:label (kind line, blf or speed); * for phones without one.",
  username: "HTTP Basic user phones must send (empty: none).",
  password: "HTTP Basic password; leave empty to keep the current one.",
};
function firmwareText(fw) {
  return Object.entries(fw).flatMap(([v, models]) => Object.entries(models).map(([m, u]) => `${v} ${m} = ${u}`)).join("\n");
}
function keysText(keys) {
  return Object.entries(keys).map(([c, list]) => `${c} = ${list.join(", ")}`).join("\n");
}
function parseFirmware(text) {
  const out = {};
  text.split("\n").forEach((line, i) => {
    if (!line.trim()) return;
    const m = line.match(/^\s*(\S+)\s+(\S+)\s*=\s*(\S+)\s*$/);
    if (!m) throw new Error(`phones.firmware: line ${i + 1}: write "vendor model = URL"`);
    (out[m[1]] ||= {})[m[2]] = m[3];
  });
  return out;
}
function parseKeys(text) {
  const out = {};
  text.split("\n").forEach((line, i) => {
    if (!line.trim()) return;
    const m = line.match(/^\s*([^=]+?)\s*=\s*(.*)$/);
    if (!m) throw new Error(`phones.keys: line ${i + 1}: write "category = kind:target:label, ..."`);
    out[m[1]] = m[2].split(",").map((k) => k.trim()).filter(Boolean);
  });
  return out;
}
async function showSettings(notice = null) {
  const r = await conn.request("GetSettings");
  if (state.route.page !== "settings") return;
  const s = r.settings;
  const field = (name, label, input) => h("div", { class: "field" },
    h("label", { for: `s-${name}` }, label, (r.stored || []).includes(name) ? h("span", { class: "muted" }, " (set here)") : null),
    input, h("p", { class: "hint", id: `s-${name}-hint` }, SETTING_HINTS[name] || ""),
    h("p", { class: "error", id: `s-${name}-error` }));
  const text = (name, value, type = "text", extra = {}) =>
    h("input", { id: `s-${name}`, name, type, value, "aria-describedby": `s-${name}-hint s-${name}-error`, ...extra });
  const transport = h("fieldset", { id: "s-sip_transport", "aria-describedby": "s-sip_transport-error" },
    h("legend", {}, "SIP transport"),
    ...["tls", "tcp"].map((t) => h("label", {}, h("input", { type: "radio", name: "sip_transport", value: t, checked: s.sip_transport === t }), t.toUpperCase())),
    h("p", { class: "error", id: "s-sip_transport-error" }));
  const summary = h("div", { id: "settings-result", role: "alert", tabindex: "-1" });
  if (notice) summary.append(notice);
  const form = h("form", { id: "settings-form", class: "panel", novalidate: true },
    transport,
    field("resync_interval", "Resync interval (seconds)", text("resync_interval", s.resync_interval, "number", { min: 60, step: 1 })),
    field("time_server", "Time server", text("time_server", s.time_server)),
    field("time_zone", "Time zone override", text("time_zone", s.time_zone, "text", { placeholder: "Europe/Berlin" })),
    field("firmware", "Firmware URLs", h("textarea", { id: "s-firmware", name: "firmware", "aria-describedby": "s-firmware-hint s-firmware-error" }, firmwareText(s.firmware))),
    field("keys", "Function keys per category", h("textarea", { id: "s-keys", name: "keys", "aria-describedby": "s-keys-hint s-keys-error" }, keysText(s.keys))),
    field("username", "Phone credentials: user", text("username", s.username, "text", { autocomplete: "off" })),
    field("password", "Phone credentials: password", text("password", "", "password", { autocomplete: "new-password", placeholder: s.password_set ? "(set; unchanged)" : "(none)" })),
    h("div", { class: "actions" }, h("button", { type: "submit", id: "settings-save" }, "Save and apply")));
  form.addEventListener("submit", (e) => { e.preventDefault(); saveSettings(form, s, summary); });
  setPage("Settings", h("p", { class: "muted" }, "Changes are stored by provd and applied at once, like a reload; they win over the config file."), summary, form);
}
function showErrors(form, summary, errors) {
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  for (const el of form.querySelectorAll(".error")) el.textContent = "";
  const list = h("ul", {});
  for (const e of errors) {
    const name = (e.field || "").replace(/^phones\./, "").split(".")[0];
    const input = form.querySelector(`#s-${name}`);
    const slot = form.querySelector(`#s-${name}-error`);
    if (input) input.setAttribute("aria-invalid", "true");
    if (slot) slot.textContent = `${e.field}: ${e.error}`;
    list.append(h("li", {}, e.field ? h("a", { href: `#/settings`, onclick: (ev) => { ev.preventDefault(); input && input.focus(); } }, e.field) : "", e.field ? `: ${e.error}` : e.error));
  }
  summary.replaceChildren(h("div", { class: "notice bad" }, h("p", {}, `Not saved: ${errors.length} problem${errors.length > 1 ? "s" : ""}.`), list));
  summary.focus();
}
async function saveSettings(form, current, summary) {
  const data = new FormData(form);
  const changes = {};
  const errors = [];
  const put = (name, value) => { if (JSON.stringify(value) !== JSON.stringify(current[name])) changes[name] = value; };
  put("sip_transport", data.get("sip_transport"));
  const resync = Number(data.get("resync_interval"));
  put("resync_interval", Number.isFinite(resync) && data.get("resync_interval") !== "" ? resync : data.get("resync_interval"));
  put("time_server", data.get("time_server").trim());
  put("time_zone", data.get("time_zone").trim());
  try { put("firmware", parseFirmware(data.get("firmware"))); } catch (e) { errors.push({ field: "phones.firmware", error: e.message.replace(/^phones\.firmware: /, "") }); }
  try { put("keys", parseKeys(data.get("keys"))); } catch (e) { errors.push({ field: "phones.keys", error: e.message.replace(/^phones\.keys: /, "") }); }
  put("username", data.get("username").trim());
  if (data.get("password")) changes.password = data.get("password");
  if (errors.length) return showErrors(form, summary, errors);
  if (Object.keys(changes).length === 0) {
    summary.replaceChildren(h("p", { class: "notice ok" }, "Nothing changed."));
    return;
  }
  const r = await conn.request("SetSettings", { settings: changes });
  if (r.error) return showErrors(form, summary, [{ field: "", error: r.error }]);
  if (r.errors) return showErrors(form, summary, r.errors);
  showSettings(h("p", { class: "notice ok", id: "settings-saved" }, `Saved and applied: ${Object.keys(changes).map((k) => `phones.${k}`).join(", ")}.`));
}
