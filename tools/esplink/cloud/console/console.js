"use strict";
// The web console: the cloud's REST API (/v1/openapi.json) from a browser, nothing more.
// Text from the cloud goes into the page with textContent, never as HTML. The user key
// lives in sessionStorage: closing the tab logs out.

const POLL_MS = 2000;
const PAIRING_MS = 10 * 60 * 1000;  // a pairing token waits this long for its device
const TOKEN_CHARS = "0123456789abcdefghijklmnopqrstuvwxyz";
const SVG = "http://www.w3.org/2000/svg";
const COLORS = ["#0b63ce", "#d9480f", "#2b8a3e", "#862e9c"];
const NEVER = "0001-01-01";  // the seed's "not yet" date

const $ = (selector, root = document) => root.querySelector(selector);
const field = (root, name) => root.querySelector(`[data-field="${name}"]`);

const state = {
  key: sessionStorage.getItem("esplink.key"),
  email: sessionStorage.getItem("esplink.email"),
  cloud: null,      // GET /v1/cloud/: where devices connect
  devices: [],
  selected: null,   // device id of the open panel
  pairing: null,    // {token, until}
  timer: null,
};

class ApiError extends Error {
  constructor(status, message, reply) {
    super(message);
    this.status = status;
    this.reply = reply;
  }
}

async function api(method, path, body) {
  const headers = {};
  if (state.key) headers.Authorization = `token ${state.key}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let resp;
  try {
    resp = await fetch(path, {method, headers, body: body === undefined ? undefined : JSON.stringify(body)});
  } catch (e) {
    throw new ApiError(0, "the cloud cannot be reached");
  }
  let reply;
  try {
    reply = await resp.json();
  } catch (e) {
    reply = {status: resp.status, message: `HTTP ${resp.status}, not JSON`};
  }
  if (!resp.ok) throw new ApiError(resp.status, reply.message || `HTTP ${resp.status}`, reply);
  return reply;
}

function deviceQuery(extra = {}) {
  return new URLSearchParams({device_id: String(state.selected), ...extra}).toString();
}

// ---- sign in and out

async function onAuth(event) {
  event.preventDefault();
  const form = event.target;
  const join = event.submitter && event.submitter.value === "join";
  const error = $("#auth-error");
  error.textContent = "";
  try {
    const reply = await api("POST", join ? "/v1/user/join/" : "/v1/user/login/",
                            {email: form.email.value, password: form.password.value});
    state.key = reply.key.token;
    state.email = reply.user.email;
    sessionStorage.setItem("esplink.key", state.key);
    sessionStorage.setItem("esplink.email", state.email);
    form.reset();
    await enterHome();
  } catch (e) {
    error.textContent = e.message;
  }
}

function logout() {
  sessionStorage.clear();
  Object.assign(state, {key: null, email: null, devices: [], selected: null, pairing: null});
  clearInterval(state.timer);
  $("#home").hidden = true;
  $("#logout").hidden = true;
  $("#who").textContent = "";
  $("#auth").hidden = false;
}

async function enterHome() {
  $("#auth").hidden = true;
  $("#home").hidden = false;
  $("#logout").hidden = false;
  $("#who").textContent = state.email;
  try {
    state.cloud = (await api("GET", "/v1/cloud/")).cloud;
  } catch (e) {
    $("#home-error").textContent = e.message;
  }
  await tick();
  clearInterval(state.timer);
  state.timer = setInterval(tick, POLL_MS);
}

// ---- live: the device list, the open device's plot, a pairing waiting for its device

let ticking = false;

async function tick() {
  if (ticking || !state.key) return;
  ticking = true;
  try {
    await refreshDevices();
    if (state.pairing) await tryClaim();
    if (state.selected !== null) await loadPlot();
  } finally {
    ticking = false;
  }
}

async function refreshDevices() {
  try {
    state.devices = (await api("GET", "/v1/user/devices/")).devices;
    $("#home-error").textContent = "";
  } catch (e) {
    if (e.status === 403) return logout();  // the key is no longer good
    $("#home-error").textContent = e.message;
    return;
  }
  const body = $("#devices tbody");
  body.replaceChildren(...state.devices.map(deviceRow));
  $("#no-devices").hidden = state.devices.length > 0;
  $("#devices").hidden = state.devices.length === 0;
  const open = state.devices.find(d => d.id === state.selected);
  if (open) renderDevice(open);
  else if (state.selected !== null) closeDevice();
}

function seen(dev) {
  return dev.last_active.startsWith(NEVER) ? "never" : dev.last_active;
}

function stateBadge(el, online) {
  el.className = `state ${online ? "online" : "offline"}`;
  el.textContent = online ? "online" : "offline";
}

function deviceRow(dev) {
  const row = document.createElement("tr");
  row.dataset.id = dev.id;
  row.classList.toggle("selected", dev.id === state.selected);
  const cells = [dev.name, `#${dev.id}`, "", seen(dev)].map(text => {
    const td = document.createElement("td");
    td.textContent = text;
    return td;
  });
  const badge = document.createElement("span");
  stateBadge(badge, dev.online);
  cells[2].append(badge);
  row.append(...cells);
  row.addEventListener("click", () => openDevice(dev.id));
  return row;
}

// ---- create a device: its secrets shown once

async function onCreate(event) {
  event.preventDefault();
  const form = event.target;
  const error = $("#home-error");
  error.textContent = "";
  try {
    const reply = await api("POST", "/v1/user/devices/", {name: form.elements.name.value});
    form.reset();
    showCreated(reply);
    await refreshDevices();
  } catch (e) {
    error.textContent = e.message;
  }
}

function showCreated(reply) {
  const card = $("#created");
  const key = reply.key.token;
  field(card, "name").textContent = reply.device.name;
  field(card, "product").textContent = `${reply.product.name} (#${reply.product.id})`;
  field(card, "product_secret").textContent = reply.product.secret;
  field(card, "device_secret").textContent = reply.device.secret;
  field(card, "master_key").textContent = key;
  field(card, "flash").textContent =
    `ESPLINK_DEVICE_KEY=${key} tools/flash.sh --chip esp8266 --port /dev/ttyUSB0` +
    " --firmware ESP8266_GENERIC.bin --ca ca.der";
  field(card, "virtual").textContent =
    `ESPLINK_DEVICE_KEY=${key} esplink board run --flash ./${reply.device.name}-flash --ca ca.der` +
    " --wifi home=PASSWORD";
  card.hidden = false;
}

// ---- pair a device: a fresh token, the captive portal's link, then the claim

function newToken() {
  // 40 x [0-9a-z] as Espressif's app makes it; rejection sampling keeps it uniform
  const out = [];
  while (out.length < 40) {
    for (const b of crypto.getRandomValues(new Uint8Array(48))) {
      if (b < 252 && out.length < 40) out.push(TOKEN_CHARS[b % 36]);
    }
  }
  return out.join("");
}

async function startPairing() {
  const card = $("#pairing");
  const token = newToken();
  state.pairing = {token, until: Date.now() + PAIRING_MS};
  const host = location.hostname.includes(":") ? `[${location.hostname}]` : location.hostname;
  const port = state.cloud ? state.cloud.tls_port : 8443;
  const link = `http://10.10.7.1/?server=${encodeURIComponent(`${host}:${port}`)}&token=${token}`;
  const a = field(card, "link");
  a.href = link;
  a.textContent = link;
  field(card, "token").textContent = token;
  const local = ["localhost", "127.0.0.1", "[::1]"].includes(host);
  setPairingStatus(local
    ? "Waiting for the device… (this console is on a loopback address: a board on your Wi-Fi needs the" +
      " cloud's LAN address — serve with --host 0.0.0.0 and open the console by that address)"
    : "Waiting for the device to activate with this token…");
  card.hidden = false;
  try {
    const resp = await fetch(`/v1/qr/?${new URLSearchParams({text: link})}`,
                             {headers: {Authorization: `token ${state.key}`}});
    if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
    const img = field(card, "qr");
    if (img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
    img.src = URL.createObjectURL(await resp.blob());
  } catch (e) {
    setPairingStatus(`QR code unavailable (${e.message}); the link works.`);
  }
}

function setPairingStatus(text) {
  field($("#pairing"), "status").textContent = text;
}

async function tryClaim() {
  const pairing = state.pairing;
  if (Date.now() > pairing.until) {
    state.pairing = null;
    setPairingStatus("No device activated with this token in 10 minutes: start again.");
    return;
  }
  try {
    const reply = await api("POST", "/v1/key/authorize/", {token: pairing.token});
    state.pairing = null;
    setPairingStatus(`Paired: ${reply.device.name} (#${reply.device.id}) is in your account.`);
    await refreshDevices();
  } catch (e) {
    if (e.status !== 404) setPairingStatus(e.message);  // 404: not activated yet
  }
}

// ---- one device: switch, actions, datastream, manage

function openDevice(id) {
  state.selected = id;
  $("#reply").textContent = "–";
  $("#device-error").textContent = "";
  $("#rename-form").reset();
  for (const row of document.querySelectorAll("#devices tbody tr")) {
    row.classList.toggle("selected", Number(row.dataset.id) === id);
  }
  renderDevice(state.devices.find(d => d.id === id));
  $("#device").hidden = false;
  loadPlot();
}

function closeDevice() {
  state.selected = null;
  $("#device").hidden = true;
}

function renderDevice(dev) {
  const card = $("#device");
  field(card, "name").textContent = dev.name;
  field(card, "id").textContent = dev.id;
  stateBadge(field(card, "state"), dev.online);
  field(card, "seen").textContent = seen(dev);
  field(card, "rom").textContent = dev.rom_version || "unknown";
}

async function call(method, path, body) {
  const out = $("#reply");
  out.textContent = "…";
  try {
    const reply = await api(method, path, body);
    out.textContent = JSON.stringify(reply, null, 2);
    return reply;
  } catch (e) {
    out.textContent = e.reply ? `HTTP ${e.status}\n${JSON.stringify(e.reply, null, 2)}` : e.message;
    return null;
  }
}

function rpc(action, params = {}) {
  return call("GET", `/v1/device/rpc/?${deviceQuery({deliver_to_device: "true", ...params, action})}`);
}

function onAction(event) {
  event.preventDefault();
  const form = event.target;
  const params = {};
  for (const pair of form.params.value.split(/\s+/).filter(Boolean)) {
    const at = pair.indexOf("=");
    if (at < 1) {
      $("#reply").textContent = `bad parameter "${pair}": want key=value`;
      return;
    }
    params[pair.slice(0, at)] = pair.slice(at + 1);
  }
  rpc(form.elements.action.value, params);
}

async function onStream(event) {
  event.preventDefault();
  const form = event.target;
  const path = `/v1/datastreams/${encodeURIComponent(form.stream.value)}/datapoint/?` +
               deviceQuery({deliver_to_device: "true"});
  if (event.submitter && event.submitter.value === "read") await call("GET", path);
  else await call("POST", path, {datapoint: {x: Number(form.x.value)}});
  await loadPlot();
}

async function loadPlot() {
  const stream = $("#stream-form").stream.value;
  const caption = $("#plot-caption");
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(stream)) {
    caption.textContent = "a stream name is letters, digits, _ . -";
    return;
  }
  try {
    const [history, streams] = await Promise.all([
      api("GET", `/v1/datastreams/${stream}/datapoints/?${deviceQuery({limit: "200"})}`),
      api("GET", `/v1/datastreams/?${deviceQuery()}`),
    ]);
    $("#streams").replaceChildren(...streams.datastreams.map(s => new Option(`${s.count} datapoints`, s.name)));
    drawPlot(stream, history.datapoints);
  } catch (e) {
    caption.textContent = e.message;
  }
}

function svg(name, attrs, text) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

function drawPlot(stream, points) {
  const plot = $("#plot");
  const caption = $("#plot-caption");
  const [W, H, left, right, top, bottom] = [600, 220, 48, 12, 12, 28];
  const keys = [...new Set(points.flatMap(p => Object.keys(p).filter(k => k !== "at" && typeof p[k] === "number")))];
  if (!points.length || !keys.length) {
    plot.replaceChildren(svg("text", {x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty"},
                             `no numeric datapoints in ${stream} yet`));
    caption.textContent = "";
    return;
  }
  const times = points.map(p => Date.parse(p.at.replace(" ", "T") + "Z"));
  const values = points.flatMap(p => keys.map(k => p[k]).filter(v => typeof v === "number"));
  let [t0, t1] = [Math.min(...times), Math.max(...times)];
  let [v0, v1] = [Math.min(...values), Math.max(...values)];
  if (t0 === t1) [t0, t1] = [t0 - 30000, t1 + 30000];
  if (v0 === v1) [v0, v1] = [v0 - 1, v1 + 1];
  const x = t => left + (t - t0) / (t1 - t0) * (W - left - right);
  const y = v => top + (v1 - v) / (v1 - v0) * (H - top - bottom);
  const hhmmss = t => new Date(t).toISOString().slice(11, 19);
  const parts = [
    svg("line", {x1: left, y1: H - bottom, x2: W - right, y2: H - bottom, class: "axis"}),
    svg("line", {x1: left, y1: top, x2: left, y2: H - bottom, class: "axis"}),
    svg("text", {x: left - 6, y: y(v1) + 4, "text-anchor": "end", class: "label"}, String(v1)),
    svg("text", {x: left - 6, y: y(v0) + 4, "text-anchor": "end", class: "label"}, String(v0)),
    svg("text", {x: left, y: H - 8, class: "label"}, hhmmss(t0)),
    svg("text", {x: W - right, y: H - 8, "text-anchor": "end", class: "label"}, `${hhmmss(t1)} UTC`),
  ];
  keys.forEach((k, i) => {
    const color = COLORS[i % COLORS.length];
    const pts = points.map((p, j) => [times[j], p[k]]).filter(([, v]) => typeof v === "number");
    parts.push(svg("polyline", {points: pts.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" "),
                                stroke: color, "data-key": k}));
    for (const [t, v] of pts) parts.push(svg("circle", {cx: x(t).toFixed(1), cy: y(v).toFixed(1), r: 3, fill: color}));
    parts.push(svg("text", {x: W - right - 4, y: top + 12 + 14 * i, "text-anchor": "end", fill: color,
                            class: "label"}, k));
  });
  plot.replaceChildren(...parts);
  const last = {...points[points.length - 1]};
  delete last.at;
  caption.textContent = `${points.length} datapoints in ${stream}; latest ${JSON.stringify(last)}` +
                        ` at ${points[points.length - 1].at} UTC`;
}

async function manage(method, path, body, done) {
  const error = $("#device-error");
  error.textContent = "";
  try {
    const reply = await api(method, path, body);
    if (done) done(reply);
    await refreshDevices();
  } catch (e) {
    error.textContent = e.message;
  }
}

function onRename(event) {
  event.preventDefault();
  const form = event.target;
  manage("PUT", `/v1/device/?${deviceQuery()}`, {name: form.elements.name.value}, () => form.reset());
}

function onShare(event) {
  event.preventDefault();
  const form = event.target;
  const email = form.email.value;
  manage("POST", "/v1/key/share/", {device_id: state.selected, email}, () => {
    form.reset();
    $("#device-error").textContent = `Shared with ${email}.`;
  });
}

function onDelete() {
  const dev = state.devices.find(d => d.id === state.selected);
  if (!dev || !confirm(`Delete ${dev.name}? Its keys and datapoints go too; the board must be paired again.`)) return;
  manage("DELETE", `/v1/device/?${deviceQuery()}`, undefined, closeDevice);
}

// ---- wiring

document.addEventListener("DOMContentLoaded", () => {
  $("#auth-form").addEventListener("submit", onAuth);
  $("#logout").addEventListener("click", logout);
  $("#create-form").addEventListener("submit", onCreate);
  $("#pair-button").addEventListener("click", startPairing);
  for (const button of document.querySelectorAll("[data-close]")) {
    button.addEventListener("click", () => {
      const card = button.closest(".card");
      card.hidden = true;
      if (card.id === "created") for (const el of card.querySelectorAll("[data-field]")) el.textContent = "";
      if (card.id === "pairing") state.pairing = null;
    });
  }
  for (const button of document.querySelectorAll("[data-action]")) {
    button.addEventListener("click", () => rpc(button.dataset.action));
  }
  $("#action-form").addEventListener("submit", onAction);
  $("#stream-form").addEventListener("submit", onStream);
  $("#rename-form").addEventListener("submit", onRename);
  $("#share-form").addEventListener("submit", onShare);
  $("#delete").addEventListener("click", onDelete);
  if (state.key) enterHome();
  else $("#auth").hidden = false;
});
