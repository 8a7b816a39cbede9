// opsflow's Ops view: pages drawn in the browser from opsflow's JSON API (../api/v1), which answers with
// Airflow's session cookie and filters every answer by the user's DAG permissions. No library, no asset
// from the internet: tables, cards and SVG charts are built here.
"use strict";

const API = new URL("../api/v1/", location.href);
const PAGES = { incidents, entities, checks, check, syncs };
const STATUSES = {
  incidents: ["open", "acknowledged", "resolved", "all"],
  entities: ["open", "resolved", "all"],
  checks: ["", "fail", "warn", "error", "pass", "skipped"],
  syncs: ["", "ok", "partial", "failed", "refused", "dry_run"],
};
const FILTERS = ["dag_id", "task_id", "owner", "table", "status", "since", "until"];

// -- small DOM helpers -------------------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === "") continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined) node.setAttribute(k, v);
  for (const c of children.flat()) if (c) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function fmtNumber(v, digits = 4) {
  if (v === null || v === undefined || v === "") return "";
  const n = Number(v);
  if (!Number.isFinite(n)) return String(v);
  return Math.abs(n) >= 1000 ? n.toLocaleString(undefined, { maximumFractionDigits: 2 })
    : Number(n.toPrecision(digits)).toString();
}
function fmtShare(v) { return v === null || v === undefined ? "" : `${(100 * Number(v)).toPrecision(3)} %`; }
function fmtTime(iso) { return iso ? new Date(iso).toLocaleString() : ""; }
function fmtAge(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const s = Math.max(0, Math.round(seconds));
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  return d ? `${d} d ${h} h` : h ? `${h} h ${m} min` : `${m} min`;
}
function link(href, text) { return href ? el("a", { href, onclick: openInAirflow }, text) : ""; }
function badge(kind, value) { return value ? el("span", { class: `${kind} ${kind}-${value}` }, value) : ""; }

// -- routing and filters -------------------------------------------------------------------------------------

// State lives in the query string and every move loads the page again: Airflow's frame follows the page's
// URL (its own address bar then holds a link to this very view, filters included).
function route() {
  const params = new URLSearchParams(location.search);
  const page = PAGES[params.get("page")] ? params.get("page") : "incidents";
  params.delete("page");
  return { page, params };
}

function go(page, params) {
  const query = new URLSearchParams(params);
  query.set("page", page);
  location.assign(`?${query}`);
}

function syncFilters(r) {
  const form = document.getElementById("filters");
  const status = form.elements.status;
  status.replaceChildren(...(STATUSES[r.page] || [""]).map((s) => el("option", { value: s }, s || "any status")));
  for (const name of FILTERS) form.elements[name].value = r.params.get(name) || (name === "status" ? status.options[0].value : "");
  for (const a of document.querySelectorAll("#tabs a")) a.classList.toggle("active", a.dataset.page === r.page || (r.page === "check" && a.dataset.page === "checks"));
}

function onFilter(event) {
  event.preventDefault();
  const r = route();
  const params = new URLSearchParams();
  if (r.page === "check") params.set("check", r.params.get("check") || "");
  for (const [k, v] of new FormData(event.target)) if (v) params.set(k, v);
  go(r.page, params);
}

// Airflow shows the view in a sandboxed frame that may not navigate the window around it; the frame is of the
// same origin, so a link into the Airflow UI asks Airflow's own router to go there (as its links do).
function openInAirflow(event) {
  const href = event.currentTarget.getAttribute("href");
  if (window.top === window || !href.startsWith("/")) return;
  try {
    window.top.history.pushState({}, "", href);
    window.top.dispatchEvent(new PopStateEvent("popstate", { state: {} }));
    event.preventDefault();
  } catch (_) { /* not reachable: let the frame follow the link */ }
}

async function getJSON(path, params) {
  const url = new URL(path, API);
  for (const [k, v] of params || []) {
    if (!v) continue;
    // Dates picked in the form are whole local days: since = start of that day, until = end of it.
    if (k === "since" && /^\d{4}-\d\d-\d\d$/.test(v)) url.searchParams.set(k, new Date(`${v}T00:00:00`).toISOString());
    else if (k === "until" && /^\d{4}-\d\d-\d\d$/.test(v)) url.searchParams.set(k, new Date(`${v}T23:59:59.999`).toISOString());
    else url.searchParams.set(k, v);
  }
  const answer = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (!answer.ok) {
    let detail = answer.statusText;
    try { detail = (await answer.json()).detail || detail; } catch (_) { /* not JSON */ }
    const hint = answer.status === 401 ? " (log in to Airflow, then reload)" : "";
    throw new Error(`${answer.status}: ${typeof detail === "string" ? detail : JSON.stringify(detail)}${hint}`);
  }
  return answer.json();
}

// -- tables that sort --------------------------------------------------------------------------------------

function table(columns, rows, empty) {
  if (!rows.length) return el("div", { class: "empty" }, empty);
  const body = el("tbody");
  let sortKey = null, ascending = true;
  const draw = () => {
    const sorted = sortKey === null ? rows : [...rows].sort((a, b) => {
      const col = columns[sortKey];
      const va = col.value ? col.value(a) : a[col.key], vb = col.value ? col.value(b) : b[col.key];
      const cmp = va === vb ? 0 : va === null || va === undefined ? 1 : vb === null || vb === undefined ? -1
        : typeof va === "number" && typeof vb === "number" ? va - vb : String(va).localeCompare(String(vb));
      return ascending ? cmp : -cmp;
    });
    body.replaceChildren(...sorted.map((row) => el("tr", {}, columns.map((c) =>
      el("td", { class: c.num ? "num" : null }, c.render ? c.render(row) : (row[c.key] ?? ""))))));
  };
  const heads = columns.map((c, i) => el("th", { title: "sort", onclick: () => {
    ascending = sortKey === i ? !ascending : true; sortKey = i;
    heads.forEach((h, j) => h.className = j === i ? (ascending ? "sorted-asc" : "sorted-desc") : "");
    draw();
  } }, c.label));
  draw();
  return el("table", {}, el("thead", {}, el("tr", {}, heads)), body);
}

function cards(items) {
  return el("div", { class: "cards" }, items.map(([label, value, cls]) =>
    el("div", { class: `card ${cls || ""}` }, el("b", {}, value), el("span", {}, label))));
}

function truncatedNote(data) {
  return data.truncated ? el("p", { class: "muted" }, "More matched than shown: narrow the filters.") : "";
}

function where(row) {
  return el("div", {}, el("b", {}, row.check || row.sync_id || ""),
    el("div", { class: "muted" }, `${row.dag_id} › ${row.task_id}`), row.entity_key ? el("div", {}, `entity ${row.entity_key}`) : "");
}

// -- pages -----------------------------------------------------------------------------------------------------

async function incidents(r) {
  const data = await getJSON("incidents", r.params);
  const t = data.totals || {};
  const bySeverity = Object.entries(t.by_severity || {}).map(([sev, n]) => [sev, n, `sev-card-${sev}`]);
  return [
    cards([["open incidents", t.open ?? data.incidents.length], ...bySeverity]),
    table([
      { label: "severity", key: "severity", render: (x) => badge("sev", x.severity) },
      { label: "status", key: "status" },
      { label: "check", value: (x) => `${x.dag_id}/${x.task_id}/${x.check}`, render: where },
      { label: "owner", key: "owner" },
      { label: "age", value: (x) => x.age_seconds, num: true, render: (x) => fmtAge(x.age_seconds) },
      { label: "first seen", key: "first_seen", render: (x) => fmtTime(x.first_seen) },
      { label: "last seen", key: "last_seen", render: (x) => fmtTime(x.last_seen) },
      { label: "runs failing", key: "fail_streak", num: true },
      { label: "evidence", value: (x) => x.evidence?.violating_count, render: evidence },
      { label: "links", render: incidentLinks },
    ], data.incidents, "No incident matches: nothing is broken here."),
    truncatedNote(data),
  ];
}

function evidence(x) {
  const e = x.evidence || {};
  const parts = [];
  if (e.observed !== null && e.observed !== undefined) parts.push(`observed ${fmtNumber(e.observed)}`);
  if (e.violating_count !== null && e.violating_count !== undefined) parts.push(`${fmtNumber(e.violating_count)} violating`);
  if (e.violating_share !== null && e.violating_share !== undefined) parts.push(fmtShare(e.violating_share));
  const samples = Array.isArray(e.samples) && e.samples.length
    ? el("details", {}, el("summary", {}, `${e.samples.length} sample row(s)`),
      el("div", { class: "samples" }, e.samples.map((s) => JSON.stringify(s)).join("\n"))) : "";
  return el("div", {}, parts.join(" · "), e.message ? el("div", { class: "muted" }, e.message) : "", samples);
}

function incidentLinks(x) {
  const l = x.links || {};
  const tickets = (l.tickets || []).map((t) => link(t.url, `${t.system} ${t.key}`));
  return el("div", {}, link(l.task_instance_url, "task"), " ", l.log_url !== l.task_instance_url ? link(l.log_url, "log") : "", " ",
    l.slack?.url ? link(l.slack.url, "Slack") : "", ...tickets.map((t) => [" ", t]));
}

async function entities(r) {
  const data = await getJSON("entities", r.params);
  const t = data.totals || {};
  const amounts = typeof t.amount === "object" && t.amount !== null
    ? Object.entries(t.amount).map(([cur, v]) => [`at stake (${cur})`, fmtNumber(v)])
    : t.amount !== null && t.amount !== undefined ? [["at stake", fmtNumber(t.amount)]] : [];
  return [
    cards([["entities", t.count ?? data.entities.length], ["over SLA", t.over_sla ?? 0, "over"], ...amounts]),
    table([
      { label: "entity", key: "entity_key", render: (x) => el("b", {}, x.entity_key) },
      { label: "check", value: (x) => `${x.dag_id}/${x.task_id}/${x.check}`, render: where },
      { label: "since", key: "since", render: (x) => fmtTime(x.since) },
      { label: "age", value: (x) => x.age_seconds, num: true,
        render: (x) => el("span", { class: x.over_sla ? "over" : null }, fmtAge(x.age_seconds),
          x.sla_seconds ? ` / SLA ${fmtAge(x.sla_seconds)}` : "") },
      { label: "amount", value: (x) => x.amount, num: true, render: (x) => `${fmtNumber(x.amount)} ${x.currency || ""}` },
      { label: "status", key: "status" },
      { label: "links", render: incidentLinks },
    ], data.entities, "No entity is stuck."),
    truncatedNote(data),
  ];
}

async function checks(r) {
  const data = await getJSON("checks", r.params);
  return [
    table([
      { label: "status", key: "latest_status", render: (x) => badge("status", x.latest_status) },
      { label: "check", value: (x) => `${x.dag_id}/${x.task_id}/${x.check}`,
        render: (x) => el("a", { href: `?${new URLSearchParams({ page: "check", dag_id: x.dag_id, task_id: x.task_id, check: x.check })}` }, where(x)) },
      { label: "table", key: "table" },
      { label: "runs", key: "runs", num: true },
      { label: "failures", key: "failures", num: true },
      { label: "pass rate", key: "pass_rate", num: true, render: (x) => fmtShare(x.pass_rate) },
      { label: "failing for", key: "failure_streak", num: true, render: (x) => x.failure_streak ? `${x.failure_streak} run(s)` : "" },
      { label: "flakiness", key: "flakiness", num: true, render: (x) => fmtShare(x.flakiness) },
      { label: "time to resolve", key: "mean_time_to_resolve_seconds", num: true, render: (x) => fmtAge(x.mean_time_to_resolve_seconds) },
      { label: "latest run", key: "latest_run_time", render: (x) => link(x.links?.task_instance_url, fmtTime(x.latest_run_time)) },
    ], data.checks, "No check results in this window."),
    truncatedNote(data),
  ];
}

async function check(r) {
  const [dag, task, name] = ["dag_id", "task_id", "check"].map((k) => r.params.get(k) || "");
  if (!dag || !task || !name) return el("div", { class: "empty" }, "Pick a check on the Check history page.");
  const params = new URLSearchParams(r.params);
  for (const k of ["dag_id", "task_id", "check"]) params.delete(k);
  const data = await getJSON(`checks/${[dag, task, name].map(encodeURIComponent).join("/")}/history`, params);
  const out = [el("h2", {}, `${name} `, el("span", { class: "muted" }, `${dag} › ${task}`))];
  if (data.series && data.series.length) {
    const banded = data.series.some((p) => p.low !== null && p.low !== undefined);
    out.push(el("h2", {}, banded ? "Series, predicted band and flagged points" : "Series and flagged points"),
      seriesChart(data.series));
  }
  if (data.results && data.results.length) out.push(el("h2", {}, "Status and violations per run"), statusChart(data.results));
  if (data.streaks && data.streaks.length) {
    out.push(el("h2", {}, "Streaks"), table([
      { label: "status", key: "status", render: (x) => badge("status", x.status) },
      { label: "from", key: "from", render: (x) => fmtTime(x.from) },
      { label: "to", key: "to", render: (x) => fmtTime(x.to) },
      { label: "runs", key: "runs", num: true },
    ], data.streaks, ""));
  }
  out.push(el("h2", {}, "Runs"), table([
    { label: "run time", key: "run_time", render: (x) => link(x.task_instance_url, fmtTime(x.run_time)) },
    { label: "status", key: "status", render: (x) => badge("status", x.status) },
    { label: "observed", key: "observed", render: (x) => fmtNumber(x.observed) },
    { label: "violating", key: "violating_count", num: true },
    { label: "share", key: "violating_share", num: true, render: (x) => fmtShare(x.violating_share) },
    { label: "threshold", key: "threshold" },
    { label: "message", key: "message" },
    { label: "log", render: (x) => link(x.log_url, "log") },
  ], (data.results || []).slice().reverse(), "No runs stored for this check."), truncatedNote(data));
  return out;
}

async function syncs(r) {
  const data = await getJSON("syncs", r.params);
  const totals = Object.entries(data.totals || {}).map(([dest, t]) =>
    [dest, typeof t === "object" ? `${fmtNumber(t.runs ?? "")} runs · ${fmtNumber(t.failed ?? 0)} failed` : t]);
  const out = [cards(totals), table([
    { label: "recorded", key: "recorded_at", render: (x) => link(x.task_instance_url, fmtTime(x.recorded_at)) },
    { label: "sync", value: (x) => `${x.dag_id}/${x.task_id}`, render: where },
    { label: "destination", key: "destination" },
    { label: "status", key: "status", render: (x) => badge("status", x.status) },
    ...["added", "changed", "deleted", "unchanged", "failed", "invalid"].map((k) => ({ label: k, key: k, num: true })),
    { label: "rejected", value: (x) => (x.rejections || []).length, num: true, render: rejections },
    { label: "why", key: "reason" },
    { label: "log", render: (x) => link(x.log_url, "log") },
  ], data.runs, "No sync runs in this window."), truncatedNote(data)];
  if (data.pending && data.pending.length) {
    out.push(el("h2", {}, "Records pending after an interrupted run"), table([
      { label: "sync", key: "sync_id" }, { label: "destination", key: "destination" },
      { label: "key", key: "key" }, { label: "since", key: "since", render: (x) => fmtTime(x.since) },
    ], data.pending, ""));
  }
  return out;
}

function rejections(x) {
  const list = x.rejections || [];
  if (!list.length) return "";
  return el("details", {}, el("summary", {}, String(list.length)),
    el("div", { class: "samples" }, list.map((j) => `${j.key}: ${j.reason}`).join("\n")));
}

// -- charts (SVG) ---------------------------------------------------------------------------------------------

function scales(xs, ys, w, h, pad) {
  const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
  const sx = (x) => pad + (x1 === x0 ? 0.5 : (x - x0) / (x1 - x0)) * (w - 2 * pad);
  const sy = (y) => h - pad - (y1 === y0 ? 0.5 : (y - y0) / (y1 - y0)) * (h - 2 * pad);
  return { sx, sy, x0, x1, y0, y1 };
}

function axisLabels(s, w, h, pad) {
  const t = (iso) => new Date(iso).toLocaleDateString();
  return [svg("text", { x: pad, y: h - 4 }, t(s.x0)), svg("text", { x: w - pad, y: h - 4, "text-anchor": "end" }, t(s.x1)),
    svg("text", { x: 4, y: pad }, fmtNumber(s.y1)), svg("text", { x: 4, y: h - pad }, fmtNumber(s.y0))];
}

function seriesChart(series) {
  const w = 900, h = 260, pad = 36;
  const pts = series.filter((p) => p.value !== null && p.value !== undefined).map((p) => ({ ...p, t: Date.parse(p.bucket) }));
  const ys = pts.flatMap((p) => [p.value, p.low, p.high].filter((v) => v !== null && v !== undefined));
  const s = scales(pts.map((p) => p.t), ys, w, h, pad);
  const banded = pts.filter((p) => p.low !== null && p.low !== undefined && p.high !== null && p.high !== undefined);
  const band = banded.length ? banded.map((p) => `${s.sx(p.t)},${s.sy(p.high)}`).concat(
    banded.slice().reverse().map((p) => `${s.sx(p.t)},${s.sy(p.low)}`)).join(" ") : "";
  const expected = pts.filter((p) => p.expected !== null && p.expected !== undefined);
  return svg("svg", { class: "chart", viewBox: `0 0 ${w} ${h}`, role: "img", "aria-label": "metric series with its predicted band" },
    band ? svg("polygon", { class: "band", points: band }) : null,
    expected.length ? svg("polyline", { class: "expected", points: expected.map((p) => `${s.sx(p.t)},${s.sy(p.expected)}`).join(" ") }) : null,
    svg("polyline", { class: "line", points: pts.map((p) => `${s.sx(p.t)},${s.sy(p.value)}`).join(" ") }),
    pts.filter((p) => p.anomalous || p.marked).map((p) =>
      svg("circle", { class: p.marked ? "marked" : "flag", cx: s.sx(p.t), cy: s.sy(p.value), r: 4 },
        svg("title", {}, `${fmtTime(p.bucket)}: ${fmtNumber(p.value)}${p.marked ? " (marked expected)" : " (flagged)"}`))),
    axisLabels(s, w, h, pad));
}

function statusChart(results) {
  const w = 900, h = 160, pad = 36;
  const pts = results.map((x) => ({ ...x, t: Date.parse(x.run_time) }));
  const counts = pts.map((p) => Number(p.violating_count || 0));
  const s = scales(pts.map((p) => p.t), [0, ...counts], w, h - 24, pad);
  const color = { pass: "var(--ok)", fail: "var(--error)", error: "var(--critical)", warn: "var(--warn)" };
  const bw = Math.max(2, Math.min(24, 0.8 * (w - 2 * pad) / Math.max(1, pts.length)));
  return svg("svg", { class: "chart", viewBox: `0 0 ${w} ${h}`, role: "img", "aria-label": "status and violations per run" },
    pts.map((p) => svg("rect", { x: s.sx(p.t) - bw / 2, y: h - 20, width: bw, height: 12, fill: color[p.status] || "var(--muted)" },
      svg("title", {}, `${fmtTime(p.run_time)}: ${p.status}`))),
    pts.map((p, i) => counts[i] ? svg("rect", { x: s.sx(p.t) - bw / 2, y: s.sy(counts[i]), width: bw,
      height: Math.max(1, s.sy(0) - s.sy(counts[i])), fill: "var(--error)", opacity: 0.6 },
      svg("title", {}, `${counts[i]} violating`)) : null),
    axisLabels(s, w, h - 24, pad));
}

// -- main ------------------------------------------------------------------------------------------------------

async function render() {
  const r = route();
  syncFilters(r);
  const page = document.getElementById("page");
  page.replaceChildren(el("p", { class: "muted" }, "Loading…"));
  try {
    page.replaceChildren(...[await PAGES[r.page](r)].flat());
  } catch (e) {
    page.replaceChildren(el("div", { class: "error", role: "alert" }, e.message));
  }
}

document.getElementById("filters").addEventListener("submit", onFilter);
document.getElementById("copy-link").addEventListener("click", async () => {
  let here = location.href;
  try { here = window.top.location.href; } catch (_) { /* another origin frames us: our own address */ }
  try { await navigator.clipboard.writeText(here); } catch (_) { prompt("Copy this link", here); }
});
render();
