// The four nets dashboard: draws /api/dashboard, redraws on each event of /api/stream.
// Hand-written SVG, no libraries: the machine that serves this has no internet.
//
// Signed in with a bearer token (README, "Signing in"): pasted into the sign-in form, kept in
// sessionStorage (this tab only, gone when it closes), sent as Authorization on every fetch.
// Never in a URL (a link, the history, a proxy's log), a cookie (sent by the browser on
// requests other sites make) or localStorage (kept after the tab is closed), and never logged.
"use strict";

const DISTRICTS = {
  yuexiu: "越秀 Yuexiu", haizhu: "海珠 Haizhu", liwan: "荔湾 Liwan", tianhe: "天河 Tianhe",
  baiyun: "白云 Baiyun", huangpu: "黄埔 Huangpu", panyu: "番禺 Panyu", huadu: "花都 Huadu",
  nansha: "南沙 Nansha", conghua: "从化 Conghua", zengcheng: "增城 Zengcheng",
};
const GROUPS = {
  elderly_alone: "独居长者 Elderly living alone", disabled: "残障人士 Disabled",
  low_income: "低收入 Low income", child: "困境儿童 Children", general: "一般市民 General public",
};
const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);
let asOf = ""; // "" = live: today, updated as events arrive

function shown(value) {
  if (typeof value === "number") return value.toLocaleString("en");
  const [whole, cents] = String(value).split(".");  // money: exact decimal strings
  return BigInt(whole).toLocaleString("en") + (cents ? "." + cents : "");
}

function el(name, attrs, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function drawNets(report) {
  const nets = $("nets");
  nets.replaceChildren();
  for (const net of report.nets) {
    const box = document.createElement("section");
    box.className = "net";
    box.innerHTML = `<h2>${net.zh} <small>${net.en}</small></h2>`;
    for (const line of net.lines) {
      const row = document.createElement("div");
      row.className = "line";
      row.innerHTML = `<span>${line.zh}<br><small>${line.en}</small></span>`;
      const n = document.createElement("span");
      n.className = "n";
      n.id = "fig-" + line.figure;
      row.append(n);
      box.append(row);
    }
    nets.append(box);
  }
  setFigures(report.figures);
}

function setFigures(figures) {
  for (const [name, value] of Object.entries(figures)) {
    const n = $("fig-" + name);
    if (!n) continue;
    const text = shown(value);
    if (n.dataset.value !== undefined && n.dataset.value !== String(value)) {
      n.classList.add("changed");
      setTimeout(() => n.classList.remove("changed"), 1500);
    }
    n.dataset.value = String(value);
    n.textContent = text;
  }
}

function everyDay(perDay) {
  // The days between the first and the last with services, the quiet ones as 0.
  if (!perDay.length) return [];
  const value = new Map(perDay);
  const days = [];
  const end = new Date(perDay[perDay.length - 1][0] + "T00:00:00Z");
  for (let d = new Date(perDay[0][0] + "T00:00:00Z"); d <= end; d.setUTCDate(d.getUTCDate() + 1)) {
    const key = d.toISOString().slice(0, 10);
    days.push([key, value.get(key) || 0]);
  }
  return days;
}

function timeChart(target, days, kind) {
  const box = $(target);
  box.replaceChildren();
  if (!days.length) { box.innerHTML = '<p class="empty">暂无数据 No data yet</p>'; return; }
  const W = 900, H = 230, L = 50, B = 24, T = 24;
  const max = Math.max(...days.map((d) => d[1]), 1);
  const x = (i) => L + (i + 0.5) * (W - L - 10) / days.length;
  const y = (v) => H - B - v * (H - B - T) / max;
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" });
  for (const f of [0, 0.5, 1]) {
    svg.append(el("line", { x1: L, x2: W - 10, y1: y(max * f), y2: y(max * f), stroke: "#ddd" }));
    svg.append(el("text", { x: L - 6, y: y(max * f) + 4, "text-anchor": "end" }, shown(Math.round(max * f))));
  }
  const step = Math.ceil(days.length / 10);
  days.forEach(([day, v], i) => {
    if (kind === "bars") {
      const w = Math.max(1, (W - L - 10) / days.length - 2);
      const bar = el("rect", { x: x(i) - w / 2, y: y(v), width: w, height: H - B - y(v), fill: "#b22222" });
      bar.append(el("title", {}, `${day}: ${shown(v)}`));
      svg.append(bar);
    }
    if (i % step === 0) svg.append(el("text", { x: x(i), y: H - 6, "text-anchor": "middle" }, day.slice(5)));
  });
  if (kind === "line") {
    const points = days.map(([, v], i) => `${x(i)},${y(v)}`).join(" ");
    svg.append(el("polyline", { points, fill: "none", stroke: "#1565c0", "stroke-width": 2.5 }));
    const [day, v] = days[days.length - 1];
    svg.append(el("text", { x: x(days.length - 1), y: y(v) - 6, "text-anchor": "end" }, `${day}: ${shown(v)}`));
  }
  box.append(svg);
}

function splitChart(target, rows, names) {
  const box = $(target);
  box.replaceChildren();
  rows = rows.filter((r) => r[1]).sort((a, b) => b[1] - a[1]);
  if (!rows.length) { box.innerHTML = '<p class="empty">暂无数据 No data yet</p>'; return; }
  const W = 500, R = 24, L = 190;
  const max = Math.max(...rows.map((r) => r[1]));
  const svg = el("svg", { viewBox: `0 0 ${W} ${rows.length * R + 6}`, role: "img" });
  rows.forEach(([key, v], i) => {
    const yy = i * R + 4;
    svg.append(el("text", { x: L - 8, y: yy + 14, "text-anchor": "end" }, names[key] || key || "未注明 Not given"));
    svg.append(el("rect", { x: L, y: yy, height: R - 6, width: Math.max(1, (W - L - 60) * v / max), fill: "#c0504d" }));
    svg.append(el("text", { x: L + (W - L - 60) * v / max + 4, y: yy + 14 }, shown(v)));
  });
  box.append(svg);
}

const TOKEN = "kapok.token";
let session = 0; // bumped on sign-in and sign-out: what an older one started stops
let stream = null; // the live stream's AbortController
let healthTimer = null;

class Refused extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

function token() { return sessionStorage.getItem(TOKEN); }

// A fetch of ours, signed in. A 401 (no token, revoked, expired) returns to the sign-in form
// with the server's reason; a 403 throws `Refused` for the caller to say.
async function api(path, options = {}) {
  const used = token();
  if (!used) throw new Refused(401, "");
  const headers = { ...(options.headers || {}), Authorization: "Bearer " + used };
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401 || response.status === 403) {
    const reason = await why(response);
    // A request made with an older token says nothing of the one in use now.
    if (response.status === 401 && token() === used) signOut("未登录 Not signed in: " + reason);
    throw new Refused(response.status, reason);
  }
  return response;
}

async function why(response) {
  try {
    return (await response.json()).error || response.statusText;
  } catch (error) {
    return response.statusText || String(response.status);
  }
}

function forbidden(error) {
  // Signed in, but this role may not read what the dashboard shows.
  signOut("此角色无权查看 Your role may not see this: " + error.message);
}

async function load() {
  const query = asOf ? "?as_of=" + encodeURIComponent(asOf) : "";
  let response;
  try {
    response = await api("/api/dashboard" + query);
  } catch (error) {
    if (error instanceof Refused) { if (error.status === 403) forbidden(error); return; }
    $("status").textContent = "出错 error: " + error.message;
    return;
  }
  if (!response.ok) { $("status").textContent = "出错 error " + response.status; return; }
  const data = await response.json();
  $("shown-as-of").textContent = data.report.as_of + (asOf ? "" : " (实时 live)");
  drawNets(data.report);
  const days = everyDay(data.per_day);
  let sum = 0;
  timeChart("per-day", days, "bars");
  timeChart("cumulative", days.map(([d, v]) => [d, (sum += v)]), "line");
  splitChart("by-district", data.by_district, DISTRICTS);
  splitChart("by-group", data.by_group, GROUPS);
}

function onFigures(data) {
  if (!asOf) setFigures(JSON.parse(data));  // at once; the charts follow
  load();
}

// EventSource cannot send a header, so the stream is read with fetch: its server-sent events
// parsed here, and reconnected after a pause that doubles up to 30 s while it fails.
async function listen(mine) {
  const status = $("status");
  let pause = 1000;
  while (mine === session) {
    const controller = new AbortController();
    stream = controller;
    try {
      const response = await api("/api/stream", { signal: controller.signal, cache: "no-store" });
      if (!response.ok || !response.body) throw new Error("HTTP " + response.status);
      status.textContent = "实时 Live";
      status.classList.add("live");
      pause = 1000;
      await events(response.body, (name, data) => { if (name === "figures") onFigures(data); });
    } catch (error) {
      if (error instanceof Refused) { if (error.status === 403) forbidden(error); return; }
      // else: the network, the server gone, or our own abort (then the session moved on)
    }
    if (mine !== session) return;
    status.textContent = "重新连接 reconnecting…";
    status.classList.remove("live");
    await new Promise((resolve) => setTimeout(resolve, pause * (0.75 + Math.random() / 2)));
    pause = Math.min(pause * 2, 30000);
  }
}

// The text/event-stream format (the parts Kapok sends): lines ending in LF or CRLF, an event
// ended by an empty line, its fields "event:" and "data:" (several data lines joined by LF),
// lines starting with ":" comments (the server's keep-alive). Resolves when the body ends.
async function events(body, dispatch) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "", name = "", data = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    const lines = buffer.split("\n");
    buffer = lines.pop(); // an unfinished line waits for the rest of it
    for (let line of lines) {
      if (line.endsWith("\r")) line = line.slice(0, -1);
      if (line === "") {
        if (data.length) dispatch(name || "message", data.join("\n"));
        name = ""; data = [];
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let text = colon < 0 ? "" : line.slice(colon + 1);
      if (text.startsWith(" ")) text = text.slice(1);
      if (field === "event") name = text;
      else if (field === "data") data.push(text);
    }
  }
}

async function checkHealth() {
  // Whatever /api/health says is not "ok" (dead letters, chain breaks, a stalled source, a
  // part down) is said above the figures: they may be incomplete. It names the problems only
  // to the roles that watch (ops, administrator); to others it gives the status alone.
  const banner = $("health");
  let body;
  try {
    body = await (await api("/api/health")).json();
  } catch (error) {
    if (error instanceof Refused) return;
    body = { status: "down", problems: ["报告服务无响应 reporting does not answer"] };
  }
  if (!token()) return;
  if (body.status === "ok") { banner.hidden = true; return; }
  const title = body.status === "down"
    ? "数据可能已过时 The figures may be stale: reporting is not ready"
    : "数据可能不完整 The figures may be incomplete: reporting is degraded";
  banner.className = "banner " + body.status;
  banner.replaceChildren(document.createTextNode(title));
  const list = document.createElement("ul");
  for (const problem of body.problems || []) {
    const item = document.createElement("li");
    item.textContent = problem;  // text, never HTML: a reason can quote a stranger's bytes
    list.append(item);
  }
  if (!body.problems) {
    const item = document.createElement("li");
    item.textContent = "详情仅供运维与管理员 The details are shown to the ops and administrator roles";
    list.append(item);
  }
  banner.append(list);
  banner.hidden = false;
}

// The report links fetch with the token, then show what came back from a Blob URL (no
// token in it): the printable page in a new tab, the CSV and the JSON as downloads.
async function openReport(event) {
  event.preventDefault();
  const format = event.currentTarget.dataset.format;
  const said = $("report-status");
  const query = new URLSearchParams({ format });
  if (asOf) query.set("as_of", asOf);
  said.textContent = "";
  let blob;
  try {
    const response = await api("/api/report?" + query);
    if (!response.ok) throw new Error((await why(response)) || "HTTP " + response.status);
    blob = await response.blob();
  } catch (error) {
    if (!(error instanceof Refused && error.status === 401)) {
      said.textContent = (error.status === 403 ? "此角色无权 Your role may not: " : "出错 error: ") + error.message;
    }
    return;
  }
  const url = URL.createObjectURL(blob);
  setTimeout(() => URL.revokeObjectURL(url), 60000); // time for the tab or the download to read it
  if (format === "html" && window.open(url, "_blank")) return;
  const save = document.createElement("a");
  save.href = url;
  save.download = `kapok-report-${asOf || "today"}.${format === "html" ? "html" : format}`;
  document.body.append(save);
  save.click();
  save.remove();
}

function clearBoard() {
  for (const id of ["nets", "per-day", "cumulative", "by-district", "by-group"]) $(id).replaceChildren();
  $("shown-as-of").textContent = "—";
  $("health").hidden = true;
  $("report-status").textContent = "";
}

function show(signedIn) {
  $("signin").hidden = signedIn;
  for (const id of ["as-of-form", "board", "reports"]) $(id).hidden = !signedIn;
}

function start() {
  session += 1;
  show(true);
  $("status").textContent = "连接中 connecting…";
  load();
  listen(session);
  checkHealth();
  healthTimer = setInterval(checkHealth, 5000);
}

function signOut(message) {
  session += 1;
  sessionStorage.removeItem(TOKEN);
  if (stream) stream.abort();
  stream = null;
  clearInterval(healthTimer);
  $("status").classList.remove("live");
  clearBoard();
  show(false);
  $("signin-message").textContent = message || "";
  $("token").focus();
}

$("signin-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const given = $("token").value.trim();
  $("token").value = "";
  if (!given) return;
  sessionStorage.setItem(TOKEN, given);
  $("signin-message").textContent = "";
  start();
});
$("sign-out").addEventListener("click", () => signOut(""));
$("as-of").addEventListener("change", (event) => { asOf = event.target.value; load(); });
$("live").addEventListener("click", () => { asOf = ""; $("as-of").value = ""; load(); });
for (const link of document.querySelectorAll("#reports a")) link.addEventListener("click", openReport);
if (token()) start(); else signOut("");
