// The dashboard in the browser: renders what the JSON API answers and follows the SSE
// streams. No business rule lives here: which actions a job offers, plot points and series,
// ages and costs all come computed from the server (ow/web/present.py).
"use strict";

const BOOT = JSON.parse(document.getElementById("boot").textContent);
const ORG = BOOT.org;
const API = `/api/orgs/${encodeURIComponent(ORG)}`;
const main = document.getElementById("main");
const enc = encodeURIComponent;

document.getElementById("org").addEventListener("change", (e) => {
  location.href = `/o/${enc(e.target.value)}/jobs`;
});

// --- small helpers ---------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

async function api(path, options) {
  const r = await fetch(API + path, { credentials: "same-origin", ...options });
  const body = await r.json().catch(() => ({ error: `HTTP ${r.status}` }));
  if (r.status === 401) location.href = `/login?next=${enc(location.pathname)}`;
  if (!r.ok) throw new Error(body.error || `HTTP ${r.status}`);
  return body;
}

function fail(err) {
  main.replaceChildren(h("p", { class: "error" }, String(err.message || err)));
}

const when = (ts) => (ts ? String(ts).replace("T", " ").slice(0, 19) : "");
const badge = (s) => h("span", { class: `badge ${s}` }, s);
const jobLink = (id) => h("a", { href: `/o/${enc(ORG)}/jobs/${enc(id)}` }, id);
const runLink = (id) => (id ? h("a", { href: `/o/${enc(ORG)}/runs/${enc(id)}` }, id) : "");
const fileLink = (id, label) => h("a", { href: `${API}/files/${enc(id)}` }, label || id);
const json = (v) => h("pre", {}, JSON.stringify(v ?? {}, null, 2));

function table(columns, rows, empty) {
  if (!rows.length) return h("p", { class: "muted" }, empty || "nothing yet");
  return h("table", {},
    h("thead", {}, h("tr", {}, columns.map(([label]) => h("th", {}, label)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, columns.map(([, get, cls]) =>
      h("td", cls ? { class: cls } : {}, get(r)))))));
}

function kv(pairs) {
  return h("dl", { class: "kv" }, pairs.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

// Re-render on change without piling up requests: at most one in flight, one queued.
function refresher(load) {
  let running = false, again = null;
  return async function refresh(arg) {
    if (running) { again = arg; return; }
    running = true;
    try { await load(arg); } catch (e) { fail(e); }
    running = false;
    if (again !== null) { const a = again; again = null; refresh(a); }
  };
}

// --- live streams: SSE resumed from the last sequence shown ------------------------------

const conn = document.getElementById("conn");
const streams = new Map();

function showConn() {
  const down = [...streams.values()].some((ok) => !ok);
  conn.textContent = streams.size ? (down ? "reconnecting…" : "live") : "";
  conn.className = `conn ${streams.size ? (down ? "down" : "live") : ""}`;
}

// Follow `path` after sequence `after`; `on` maps SSE event names to handlers. The browser
// resumes with Last-Event-ID by itself; if it gives up, start again after the last id seen.
function live(path, after, on) {
  const key = Symbol(path);
  let last = after;
  const start = () => {
    const url = new URL(API + path, location.href);
    url.searchParams.set("after", last);
    const es = new EventSource(url);
    es.onopen = () => { streams.set(key, true); showConn(); };
    es.onerror = () => {
      streams.set(key, false); showConn();
      if (es.readyState === EventSource.CLOSED) setTimeout(start, 1000);
    };
    for (const [name, fn] of Object.entries(on)) {
      es.addEventListener(name, (ev) => {
        last = Number(ev.lastEventId);
        fn(JSON.parse(ev.data), last);
      });
    }
  };
  streams.set(key, false);
  start();
}

// --- pages -------------------------------------------------------------------------------

function eventItem(e) {
  const ids = Object.entries(e.ids).map(([k, v]) => `${k}=${v}`).join(" ");
  const why = Object.entries(e.why).map(([k, v]) => `${k}: ${v}`).join("; ");
  const evidence = Object.keys(e.evidence).length
    ? h("dl", { class: "kv evidence" }, Object.entries(e.evidence).map(([k, v]) =>
      [h("dt", {}, k), h("dd", { class: "mono" }, typeof v === "object" ? JSON.stringify(v) : String(v))]))
    : null;
  return h("li", { "data-seq": e.seq },
    h("span", { class: "muted mono" }, `#${e.seq} ${when(e.ts)} `), h("b", {}, e.type),
    h("span", { class: "muted" }, ` ${e.actor} `), h("span", { class: "mono" }, ids),
    why ? h("div", { class: "why" }, why) : null, evidence);
}

async function jobsPage() {
  const params = new URLSearchParams(location.search);
  const limit = 50;
  const status = h("select", { name: "status" }, ["", "pending", "in_progress", "completed",
    "failed", "canceled"].map((s) => h("option", { value: s, selected: s === (params.get("status") || "") }, s || "any status")));
  const type = h("input", { name: "type", placeholder: "type", value: params.get("type") || "", size: 12 });
  const q = h("input", { name: "q", placeholder: "job id prefix", value: params.get("q") || "", size: 24 });
  const list = h("div", { id: "jobs" });
  const pager = h("div", { class: "pager" });
  const form = h("form", { class: "filters", onsubmit: (ev) => { ev.preventDefault(); params.set("offset", "0"); apply(); } },
    status, type, q, h("button", { type: "submit" }, "filter"));
  main.replaceChildren(h("h1", {}, "Jobs"), form, list, pager);
  let position = null;

  const load = refresher(async (atLeast) => {
    const query = new URLSearchParams(params);
    query.set("limit", limit);
    if (atLeast) query.set("at_least", atLeast);
    const data = await api(`/jobs?${query}`);
    list.replaceChildren(table([
      ["job", (j) => jobLink(j.job_id), "mono"], ["type", (j) => j.type],
      ["status", (j) => badge(j.status)], ["model", (j) => j.model || ""],
      ["runs", (j) => j.runs ?? 0, "num"], ["current run", (j) => runLink(j.run_id), "mono"],
      ["created", (j) => when(j.created_at)], ["updated", (j) => when(j.updated_at)],
    ], data.jobs, "no jobs match"));
    const offset = Number(params.get("offset") || 0);
    pager.replaceChildren(
      h("button", { disabled: offset <= 0, onclick: () => { params.set("offset", Math.max(0, offset - limit)); apply(); } }, "‹ newer"),
      h("span", { class: "muted" }, data.total ? `${offset + 1}–${offset + data.jobs.length} of ${data.total}` : ""),
      h("button", { disabled: offset + limit >= data.total, onclick: () => { params.set("offset", offset + limit); apply(); } }, "older ›"));
    if (position === null) {
      position = data.position;
      live("/events/stream?aggregate=job", position, { event: (_e, seq) => load(seq) });
    }
  });
  function apply() {
    for (const [k, el] of [["status", status], ["type", type], ["q", q]]) {
      if (el.value) params.set(k, el.value); else params.delete(k);
    }
    history.replaceState(null, "", `?${params}`);
    load(0);
  }
  await load(0);
}

async function jobPage() {
  const id = BOOT.job_id;
  let position = null;
  const load = refresher(async (atLeast) => {
    const d = await api(`/jobs/${enc(id)}${atLeast ? `?at_least=${atLeast}` : ""}`);
    const message = h("span", { class: "error", id: "action-error" });
    const act = (verb) => async () => {
      try { await api(`/jobs/${enc(id)}/${verb}`, { method: "POST" }); }
      catch (e) { message.textContent = e.message; }
    };
    const buttons = d.actions.map((a) => h("button", { class: a === "cancel" ? "danger" : "", id: `${a}-button`, onclick: act(a) }, a));
    main.replaceChildren(
      h("h1", {}, `Job ${d.job_id} `, badge(d.status)),
      h("div", { class: "actions" }, buttons, message),
      h("div", { class: "grid" },
        h("div", {}, h("h2", {}, "Job"), kv([["type", d.type], ["model", d.model || ""],
          ["generation", d.gen], ["image", d.image || ""], ["requires VRAM (GB)", d.requires_vram_gb ?? ""],
          ["created", when(d.created_at)], ["updated", when(d.updated_at)], ["error", d.error || ""]]),
        h("h2", {}, "Params"), json(d.params)),
        h("div", {}, h("h2", {}, "Outputs"), json(d.outputs))),
      h("h2", {}, "Runs"),
      h("div", { id: "runs" }, table([["gen", (r) => r.gen, "num"], ["run", (r) => runLink(r.run_id), "mono"],
        ["status", (r) => badge(r.status)], ["worker", (r) => r.worker_id || "", "mono"],
        ["exit", (r) => r.exit_code ?? "", "num"], ["started", (r) => when(r.started_at)],
        ["finished", (r) => when(r.finished_at)],
        ["log", (r) => (r.log_file ? fileLink(r.log_file, "download") : "")],
        ["artifacts", (r) => Object.entries(r.artifacts || {}).map(([path, fid]) => [fileLink(fid, path), " "])],
      ], d.runs_detail, "no runs yet")),
      h("h2", {}, "Events"),
      h("ol", { class: "timeline", id: "timeline" }, d.events.map(eventItem)));
    if (position === null) {
      position = d.position;
      live(`/events/stream?job_id=${enc(id)}`, position, { event: (_e, seq) => load(seq) });
    }
  });
  await load(0);
}

const COLORS = ["#2f6fde", "#d9534f", "#2a9d5b", "#e49b0f", "#8e44ad", "#16a2b8", "#7f8c8d", "#c0392b"];

const STEP_INCRS = [1, 2, 5].flatMap((m) => [1, 10, 100, 1e3, 1e4, 1e5, 1e6].map((e) => m * e))
  .sort((a, b) => a - b);  // steps are whole numbers: no ticks between them

// The run's points by step, kept as uPlot's column arrays: a record at a new, larger step
// (the usual case) is an append, so a live update costs a redraw, not a rebuild.
function plotter(el, shown) {
  const xs = [], cols = new Map(), index = new Map(), counts = {};
  let plot = null, received = 0, pending = false, newSeries = true;
  function slot(step) {
    let i = index.get(step);
    if (i !== undefined) return i;
    if (!xs.length || step > xs[xs.length - 1]) {
      i = xs.length;
      xs.push(step);
      for (const col of cols.values()) col.push(null);
      index.set(step, i);
      return i;
    }
    i = xs.findIndex((x) => x > step);  // an earlier step, late: insert it in order
    xs.splice(i, 0, step);
    for (const col of cols.values()) col.splice(i, 0, null);
    index.clear();
    xs.forEach((x, j) => index.set(x, j));
    return i;
  }
  function put(step, name, value) {
    const i = slot(step);
    let col = cols.get(name);
    if (!col) {
      col = new Array(xs.length).fill(null);
      cols.set(name, col);
      newSeries = true;
    }
    if (col[i] === null) counts[name] = (counts[name] || 0) + 1;
    col[i] = value;
  }
  function draw() {
    pending = false;
    el.dataset.points = JSON.stringify(counts);
    el.dataset.records = received;
    const names = [...cols.keys()];
    if (!names.length) { el.textContent = "no numeric metrics yet"; return; }
    const data = [xs, ...names.map((n) => cols.get(n))];
    if (plot && !newSeries) { plot.setData(data); return; }
    if (plot) plot.destroy();
    newSeries = false;
    el.textContent = "";
    const visible = shown.length ? shown : names.slice(0, 1);
    plot = new uPlot({
      width: Math.max(300, el.clientWidth - 16), height: 320, scales: { x: { time: false } },
      series: [{ label: "step" }, ...names.map((n, i) => ({
        label: n, stroke: COLORS[i % COLORS.length], width: 2, spanGaps: true,
        show: visible.includes(n),
      }))],
      axes: [{ label: "step", incrs: STEP_INCRS }, {}],
    }, data, el);
    window.owPlot = plot;
  }
  return {
    add(points, records) {
      received += records;
      for (const p of points) {
        for (const [k, v] of Object.entries(p.values)) put(p.step, k, v);
      }
      if (!pending) { pending = true; requestAnimationFrame(draw); }
    },
  };
}

async function runPage() {
  const id = BOOT.run_id;
  const d = await api(`/runs/${enc(id)}`);
  const plotEl = h("div", { id: "plot" });
  const latest = h("div", { id: "latest" });
  const log = h("pre", { class: "log", id: "log" });
  main.replaceChildren(
    h("h1", {}, `Run ${d.run_id} `, badge(d.status)),
    kv([["job", jobLink(d.job_id)], ["generation", d.gen], ["worker", d.worker_id || ""],
      ["started", when(d.started_at)], ["finished", when(d.finished_at)],
      ["log file", d.log_file ? fileLink(d.log_file, "download") : "(when the run ends)"]]),
    h("h2", {}, "Metrics ", h("span", { class: "muted" }, "(click a series in the legend to show it)")),
    plotEl, h("h2", {}, "Latest values"), latest, h("h2", {}, "Log"), log);
  const plot = plotter(plotEl, d.shown);
  const values = {};
  const showLatest = (l) => {
    Object.assign(values, l);
    latest.replaceChildren(table([["key", (r) => r[0], "mono"], ["value", (r) => JSON.stringify(r[1]), "mono"]],
      Object.entries(values).sort(), "nothing logged yet"));
  };
  plot.add(d.points, d.records);
  showLatest(d.latest);
  live(`/runs/${enc(id)}/metrics/stream`, d.position, {
    points: (m) => { plot.add(m.points, m.records); showLatest(m.latest); },
  });
  live(`/runs/${enc(id)}/log/stream`, 0, {
    log: (text) => {
      const stick = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
      log.append(text);
      if (log.textContent.length > 400000) log.textContent = log.textContent.slice(-300000);
      if (stick) log.scrollTop = log.scrollHeight;
    },
  });
}

async function workersPage() {
  let position = null;
  const load = refresher(async () => {
    const d = await api("/workers");
    main.replaceChildren(h("h1", {}, "Workers"), table([
      ["worker", (w) => w.worker_id, "mono"], ["status", (w) => badge(w.status)],
      ["provider", (w) => w.provider || ""], ["hardware", (w) => w.hardware || ""],
      ["isolation", (w) => w.isolation || ""],
      ["GPUs", (w) => (w.gpus || []).join(", ")], ["VRAM GB", (w) => w.vram_gb ?? "", "num"],
      ["heartbeat age", (w) => (w.heartbeat_age_s === null ? "" : `${w.heartbeat_age_s} s`), "num"],
      ["current run", (w) => runLink(w.run_id), "mono"],
      ["$/hour", (w) => (w.price_per_hour ? w.price_per_hour.toFixed(2) : ""), "num"],
      ["cost so far", (w) => `$${w.cost_usd.toFixed(4)}`, "num"],
    ], d.workers, "no workers"));
    if (position === null) {
      position = d.position;
      live("/events/stream?aggregate=worker", position, { event: () => load() });
      live("/workers/pings/stream", d.pings_position, { ping: () => load() });
    }
  });
  await load();
}

async function eventsPage() {
  const d = await api("/events?limit=200");
  const list = h("ol", { class: "timeline", id: "timeline" }, d.events.map(eventItem));
  main.replaceChildren(h("h1", {}, "Events"), list);
  live("/events/stream", d.position, {
    event: (e) => {
      list.append(eventItem(e));
      while (list.children.length > 1000) list.firstChild.remove();
    },
  });
}

async function anomaliesPage() {
  const d = await api("/anomalies");
  main.replaceChildren(h("h1", {}, "Audit: events the fold rejected"), table([
    ["seq", (a) => a.seq, "num"], ["stream", (a) => a.stream], ["type", (a) => a.type],
    ["aggregate", (a) => a.aggregate_id, "mono"], ["rule", (a) => a.rule],
    ["event", (a) => a.event_id, "mono"],
  ], d.anomalies, "no anomalies: every event was accepted"));
}

async function costsPage() {
  const d = await api("/costs");
  main.replaceChildren(h("h1", {}, "Costs"),
    kv([["org total (all workers)", `$${d.org_cost_usd.toFixed(4)}`]]),
    h("h2", {}, "Per job"), table([
      ["job", (j) => jobLink(j.job_id), "mono"], ["type", (j) => j.type || ""],
      ["runs", (j) => j.runs, "num"], ["run time", (j) => `${j.seconds.toFixed(0)} s`, "num"],
      ["cost", (j) => `$${j.cost_usd.toFixed(4)}`, "num"],
    ], d.jobs, "no runs yet"));
}

const PAGES = { jobs: jobsPage, job: jobPage, run: runPage, workers: workersPage,
  events: eventsPage, anomalies: anomaliesPage, costs: costsPage };
(PAGES[BOOT.page] || jobsPage)().catch(fail);
