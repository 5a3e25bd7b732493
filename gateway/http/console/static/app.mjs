// The Event Gateway web console (docs/console.md). Every figure comes from the Config API on this origin.
// Text from the gateway (event types, ids, plugin messages) is only ever rendered as text by Preact: no
// innerHTML, no dangerouslySetInnerHTML, no URL built from it except through encodeURIComponent.
import { h, render } from "./vendor/preact.mjs";
import { useCallback, useEffect, useMemo, useRef, useState } from "./vendor/preact-hooks.mjs";
import htm from "./vendor/htm.mjs";

const html = htm.bind(h);
const TOKEN_KEY = "eventgateway.configToken";
const MAX_EVENTS = 500;
const SUMMARY_EVERY_MS = 2000;
const CHART_POINTS = 150;

// -- the token and the API ---------------------------------------------------------------------------------

const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY) || "",
  set: (value) => (value ? sessionStorage.setItem(TOKEN_KEY, value) : sessionStorage.removeItem(TOKEN_KEY)),
};

class ApiFailure extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

function headers(extra = {}) {
  const out = { ...extra };
  const t = token.get();
  if (t) out.Authorization = `Bearer ${t}`;
  return out;
}

async function failure(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body && Array.isArray(body.errors) && body.errors.length) message = body.errors.map((e) => String(e.message)).join("; ");
  } catch (_) { /* not JSON */ }
  return new ApiFailure(response.status, message);
}

async function api(method, path, body) {
  const init = { method, headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const response = await fetch(path, init);
  if (!response.ok) throw await failure(response);
  if (response.status === 204) return null;
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

// A write: on 401 the token dialog asks for the config token, then the write is tried once more.
let askToken = async () => false;
async function write(method, path, body) {
  try {
    return await api(method, path, body);
  } catch (error) {
    if (error.status === 401 && (await askToken("This change needs the gateway's config token."))) {
      return await api(method, path, body);
    }
    throw error;
  }
}

const seg = (value) => encodeURIComponent(value);

// -- small pieces -------------------------------------------------------------------------------------------

function ErrorBox({ error }) {
  return error ? html`<div class="error-box" role="alert">${String(error.message || error)}</div>` : null;
}

function StateBadge({ state }) {
  return html`<span class=${`badge state-${["active", "quarantined", "failed", "disabled"].includes(state) ? state : "disabled"}`}>${state}</span>`;
}

function grantsText(c) {
  if (!c) return "–";
  const parts = [];
  if (c.kv) parts.push("kv");
  if (c.metrics) parts.push("metrics");
  if (c.http && c.http.length) parts.push(`http: ${c.http.join(", ")}`);
  if (c.sensitiveHeaders && c.sensitiveHeaders.length) parts.push(`headers: ${c.sensitiveHeaders.join(", ")}`);
  return parts.length ? parts.join("; ") : "none";
}

function countsText(map) {
  const entries = Object.entries(map || {}).filter(([, n]) => n);
  return entries.length ? entries.map(([k, n]) => `${k} ${n}`).join(", ") : "0";
}

function Json({ value }) {
  return html`<pre>${JSON.stringify(value, null, 2)}</pre>`;
}

function fmtMs(ms) {
  if (ms === null || ms === undefined) return "–";
  return ms < 1 ? `${(ms * 1000).toFixed(0)} µs` : `${ms.toFixed(ms < 10 ? 2 : 0)} ms`;
}

function fmtTime(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleTimeString(undefined, { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
}

function usePoll(load, everyMs, deps = []) {
  const [state, setState] = useState({ data: null, error: null });
  const reload = useCallback(async () => {
    try { setState({ data: await load(), error: null }); } catch (error) { setState((s) => ({ data: s.data, error })); }
  }, deps);
  useEffect(() => {
    reload();
    if (!everyMs) return undefined;
    const timer = setInterval(reload, everyMs);
    return () => clearInterval(timer);
  }, [reload]);
  return [state.data, state.error, reload];
}

// -- the token dialog ---------------------------------------------------------------------------------------

function TokenDialog() {
  const dialog = useRef(null);
  const input = useRef(null);
  const pending = useRef(null);
  const [reason, setReason] = useState("");
  useEffect(() => {
    askToken = (why) => new Promise((resolve) => {
      pending.current = resolve;
      setReason(why || "");
      if (input.current) input.current.value = "";
      dialog.current.showModal();
    });
  }, []);
  const finish = (ok) => {
    const value = input.current.value.trim();
    if (ok && value) token.set(value);
    dialog.current.close();
    window.dispatchEvent(new Event("tokenchange"));
    if (pending.current) pending.current(ok && !!value);
    pending.current = null;
  };
  return html`<dialog ref=${dialog} id="token-dialog" onCancel=${() => finish(false)}>
    <p>${reason}</p>
    <p class="muted">The token is kept in this tab only (sessionStorage) and sent as a bearer token.</p>
    <input ref=${input} type="password" name="token" placeholder="config token" autocomplete="off" size="32"
      onKeyDown=${(e) => { if (e.key === "Enter") { e.preventDefault(); finish(true); } }} />
    <div class="toolbar" style=${{ marginTop: "10px" }}>
      <button class="primary" onClick=${() => finish(true)}>Use token</button>
      <button onClick=${() => finish(false)}>Cancel</button>
    </div>
  </dialog>`;
}

function TokenControl() {
  const [has, setHas] = useState(!!token.get());
  useEffect(() => {
    const update = () => setHas(!!token.get());
    window.addEventListener("tokenchange", update);
    return () => window.removeEventListener("tokenchange", update);
  }, []);
  return html`<div class="token">
    ${has ? html`<span>config token set</span>
      <button onClick=${() => { token.set(""); window.dispatchEvent(new Event("tokenchange")); }}>Forget</button>`
    : html`<button onClick=${() => askToken("The config token of this gateway (needed for changes and the live tail when the gateway has one).")}>Set token</button>`}
  </div>`;
}

// -- live tail ----------------------------------------------------------------------------------------------

function parseSse(buffer, onData) {
  // Returns what is left of `buffer` after its complete messages.
  let at;
  while ((at = buffer.indexOf("\n\n")) >= 0) {
    const message = buffer.slice(0, at);
    buffer = buffer.slice(at + 2);
    const data = message.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).replace(/^ /, "")).join("\n");
    if (data) {
      try { onData(JSON.parse(data)); } catch (_) { /* not JSON: ignored */ }
    }
  }
  return buffer;
}

function useTail(filters, paused) {
  const [events, setEvents] = useState([]);
  const [status, setStatus] = useState({ state: "connecting", message: "" });
  const pending = useRef([]);
  const pausedRef = useRef(paused);
  pausedRef.current = paused;
  const [generation, setGeneration] = useState(0);
  useEffect(() => {
    const retry = () => setGeneration((g) => g + 1);
    window.addEventListener("tokenchange", retry);
    return () => window.removeEventListener("tokenchange", retry);
  }, []);
  useEffect(() => {
    const flush = setInterval(() => {
      if (!pending.current.length || pausedRef.current) return;
      const fresh = pending.current.reverse();
      pending.current = [];
      setEvents((old) => fresh.concat(old).slice(0, MAX_EVENTS));
    }, 200);
    return () => clearInterval(flush);
  }, []);
  useEffect(() => {
    const controller = new AbortController();
    let stopped = false;
    let timer = null;
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries(filters)) if (v) query.set(k, v);
    async function connect() {
      setStatus({ state: "connecting", message: "" });
      try {
        const response = await fetch(`/v1/events/tail?${query}`, { headers: headers(), signal: controller.signal });
        if (!response.ok) {
          const error = await failure(response);
          const waitMs = response.status === 401 || response.status === 403 || response.status === 400 ? 0 : 3000;
          setStatus({ state: "error", message: error.message, status: response.status });
          if (waitMs) timer = setTimeout(connect, waitMs);
          return;
        }
        setStatus({ state: "live", message: "" });
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer = parseSse(buffer + decoder.decode(value, { stream: true }), (record) => {
            if (record && typeof record === "object") pending.current.push({ ...record, _seq: ++useTail.seq });
            if (pending.current.length > MAX_EVENTS) pending.current.splice(0, pending.current.length - MAX_EVENTS);
          });
        }
        if (!stopped) { setStatus({ state: "reconnecting", message: "the stream ended (gateway restarting?)" }); timer = setTimeout(connect, 1000); }
      } catch (error) {
        if (stopped) return;
        setStatus({ state: "reconnecting", message: String(error.message || error) });
        timer = setTimeout(connect, 2000);
      }
    }
    connect();
    return () => { stopped = true; controller.abort(); if (timer) clearTimeout(timer); };
  }, [filters.space, filters.type, filters.status, generation]);
  return [events, status, () => setEvents([])];
}
useTail.seq = 0;

function verdictsShort(record) {
  const parts = [];
  for (const stage of record.stages || []) {
    for (const p of stage.plugins || []) {
      parts.push({ key: `${stage.name}/${p.plugin}/${parts.length}`, cls: `verdict-${p.verdict}`,
        text: `${p.plugin}:${p.verdict}${p.status ? " " + p.status : ""}${p.faultKind ? " " + p.faultKind : ""}` });
    }
  }
  for (const c of record.calls || []) {
    parts.push({ key: `call/${c.functionId}/${parts.length}`, cls: c.ok ? "verdict-continue" : "verdict-reject",
      text: `→${c.functionId}${c.status ? " " + c.status : ""}${c.ok ? "" : " failed"}` });
  }
  return parts;
}

function EventDetail({ record }) {
  if (!record) return html`<p class="muted">Select an event to see its stages, plugin verdicts and function calls.</p>`;
  return html`<div class="detail">
    <table><tbody>
      <tr><th>id</th><td class="mono">${record.id}</td></tr>
      <tr><th>type</th><td class="mono">${record.type}</td></tr>
      <tr><th>space</th><td class="mono">${record.space}</td></tr>
      <tr><th>source</th><td class="mono">${record.source}</td></tr>
      <tr><th>kind</th><td>${record.kind}</td></tr>
      <tr><th>received</th><td>${record.receivedAt}</td></tr>
      <tr><th>status</th><td class=${record.error ? "status-error" : "status-ok"}>${String(record.status ?? "–")}</td></tr>
      <tr><th>duration</th><td>${fmtMs(record.durationMs)}</td></tr>
      ${record.traceId ? html`<tr><th>trace</th><td class="mono">${record.traceId}</td></tr>` : null}
    </tbody></table>
    <h3>Stages</h3>
    ${(record.stages || []).length === 0 ? html`<p class="muted">none recorded</p>` : null}
    ${(record.stages || []).map((stage, i) => html`<div class="stage" key=${i}>
      <h4><span class="mono">${stage.name}</span> <span class="muted">${fmtMs(stage.durationMs)}</span>${stage.note ? html` <span class="muted">— ${stage.note}</span>` : null}</h4>
      ${(stage.plugins || []).length ? html`<table class="plugins"><thead><tr><th>plugin</th><th>mode</th><th>verdict</th><th>time</th><th>fuel</th><th>message</th></tr></thead><tbody>
        ${stage.plugins.map((p, j) => html`<tr key=${j}>
          <td class="mono">${p.plugin}</td><td>${p.mode}</td>
          <td class=${`verdict-${p.verdict}`}>${p.verdict}${p.status ? ` ${p.status}` : ""}${p.faultKind ? ` (${p.faultKind})` : ""}</td>
          <td>${fmtMs(p.durationMs)}</td><td>${p.fuel ?? ""}</td><td class="mono">${p.message ?? ""}</td></tr>`)}
      </tbody></table>` : null}
    </div>`)}
    <h3>Function calls</h3>
    ${(record.calls || []).length === 0 ? html`<p class="muted">none</p>` : html`<table><thead><tr><th>function</th><th>provider</th><th>mode</th><th>attempt</th><th>result</th><th>time</th><th>error</th></tr></thead><tbody>
      ${record.calls.map((c, i) => html`<tr key=${i}><td class="mono">${c.functionId}</td><td>${c.provider}</td><td>${c.mode}</td><td>${c.attempt}</td>
        <td class=${c.ok ? "status-ok" : "status-error"}>${c.ok ? "ok" : "failed"}${c.status ? ` ${c.status}` : ""}</td><td>${fmtMs(c.durationMs)}</td><td class="mono">${c.error ?? ""}</td></tr>`)}
    </tbody></table>`}
  </div>`;
}

function LiveView() {
  const [form, setForm] = useState({ space: "", type: "", status: "" });
  const [filters, setFilters] = useState({ space: "", type: "", status: "" });
  const [paused, setPaused] = useState(false);
  const [selected, setSelected] = useState(null);
  const [events, status, clear] = useTail(filters, paused);
  const chosen = events.find((e) => e._seq === selected) || null;
  const field = (name) => (e) => setForm({ ...form, [name]: e.target.value });
  return html`<section class="panel">
    <h2>Live events</h2>
    <form class="toolbar" onSubmit=${(e) => { e.preventDefault(); setFilters({ ...form }); }}>
      <input name="space" placeholder="space" value=${form.space} onInput=${field("space")} />
      <input name="type" placeholder="event type" value=${form.type} onInput=${field("type")} />
      <select name="status" value=${form.status} onChange=${field("status")}>
        <option value="">any status</option><option value="error">errors</option><option value="ok">ok</option>
        <option value="4xx">4xx</option><option value="5xx">5xx</option>
      </select>
      <button type="submit">Filter</button>
      <button type="button" onClick=${() => setPaused(!paused)}>${paused ? "Resume" : "Pause"}</button>
      <button type="button" onClick=${clear}>Clear</button>
      <span id="tail-status" class=${status.state === "live" ? "status-ok" : "muted"}>${status.state}</span>
    </form>
    ${status.state === "error" ? html`<div class="error-box">${status.message}${status.status === 401 ? " — set the config token (top right)." : ""}</div>` : null}
    <div class="stream">
      <div>
        <table id="events"><thead><tr><th>time</th><th>status</th><th>space</th><th>type</th><th>id</th><th>plugins / calls</th></tr></thead>
        <tbody>
          ${events.length === 0 ? html`<tr><td colspan="6" class="muted">Waiting for events… (send one to the Events API)</td></tr>` : null}
          ${events.map((r) => (r.dropped !== undefined && r.id === undefined)
            ? html`<tr key=${r._seq}><td colspan="6" class="notice">${r.dropped} events dropped: this page read too slowly</td></tr>`
            : html`<tr key=${r._seq} class=${`event${r._seq === selected ? " selected" : ""}`} onClick=${() => setSelected(r._seq)}>
                <td>${fmtTime(r.receivedAt)}</td>
                <td class=${r.error ? "status-error" : "status-ok"}>${String(r.status ?? "–")}</td>
                <td class="mono">${r.space}</td><td class="mono">${r.type}</td><td class="mono">${r.id}</td>
                <td class="verdicts">${verdictsShort(r).map((p) => html`<span key=${p.key} class=${p.cls}>${p.text} </span>`)}</td>
              </tr>`)}
        </tbody></table>
      </div>
      <div id="event-detail"><${EventDetail} record=${chosen} /></div>
    </div>
  </section>`;
}

// -- charts ---------------------------------------------------------------------------------------------

function quantile(before, after, q) {
  // The q-quantile (seconds) of the observations between two cumulative histogram readings.
  if (!before || !after) return null;
  const prev = new Map(before.buckets.map(([le, n]) => [le, n]));
  const rows = after.buckets.map(([le, n]) => [le, n - (prev.get(le) || 0)]);
  const total = rows.length ? rows[rows.length - 1][1] : 0;
  if (total <= 0) return null;
  const rank = q * total;
  let lower = 0; let below = 0;
  for (const [le, count] of rows) {
    if (count >= rank) {
      if (le === null) return lower;
      const inBucket = count - below;
      return inBucket > 0 ? lower + (le - lower) * ((rank - below) / inBucket) : le;
    }
    if (le !== null) lower = le;
    below = count;
  }
  return lower;
}

function Chart({ title, series, data, id }) {
  const box = useRef(null);
  const plot = useRef(null);
  const key = series.join("|");
  useEffect(() => {
    if (typeof uPlot === "undefined") return undefined;
    const width = Math.max(280, box.current.clientWidth || 320);
    const palette = ["#2f5bd3", "#c62828", "#1a7f37", "#b25e00", "#7b3fb5", "#00838f"];
    plot.current = new uPlot({ width, height: 160, series: [{}, ...series.map((label, i) => ({ label, stroke: palette[i % palette.length], width: 1.5 }))],
      axes: [{}, { size: 50 }], legend: { live: false } }, data, box.current);
    return () => { plot.current.destroy(); plot.current = null; };
  }, [key]);
  useEffect(() => { if (plot.current) plot.current.setData(data); }, [data]);
  return html`<div class="chart" id=${id}><h3>${title}</h3><div ref=${box}></div></div>`;
}

function MetricsView() {
  const [history, setHistory] = useState([]);
  const [error, setError] = useState(null);
  useEffect(() => {
    let alive = true;
    const read = async () => {
      try {
        const reading = await api("GET", "/v1/metrics/summary");
        if (alive) { setHistory((h0) => h0.concat([reading]).slice(-(CHART_POINTS + 1))); setError(null); }
      } catch (e) { if (alive) setError(e); }
    };
    read();
    const timer = setInterval(read, SUMMARY_EVERY_MS);
    return () => { alive = false; clearInterval(timer); };
  }, []);
  const charts = useMemo(() => {
    const t = []; const rate = []; const errors = []; const p99 = [];
    const plugins = new Set();
    for (const r of history) for (const name of Object.keys(r.plugins || {})) plugins.add(name);
    const names = [...plugins].sort();
    const perPlugin = names.map(() => []);
    for (let i = 1; i < history.length; i++) {
      const a = history[i - 1]; const b = history[i];
      const dt = Math.max(0.001, b.time - a.time);
      t.push(b.time);
      rate.push((b.events.received - a.events.received) / dt);
      errors.push(((b.functions.failure - a.functions.failure) + (b.pluginFaults - a.pluginFaults)) / dt);
      const q = quantile(a.latencySeconds, b.latencySeconds, 0.99);
      p99.push(q === null ? null : q * 1000);
      names.forEach((name, j) => {
        const qa = a.plugins[name] ? a.plugins[name].seconds : { buckets: [] };
        const qb = b.plugins[name] ? b.plugins[name].seconds : null;
        const v = qb ? quantile(qa, qb, 0.99) : null;
        perPlugin[j].push(v === null ? null : v * 1e6);
      });
    }
    return { t, rate, errors, p99, names, perPlugin };
  }, [history]);
  const last = history.length ? history[history.length - 1] : null;
  return html`<section class="panel">
    <h2>Metrics <span class="muted">(from /v1/metrics/summary every 2 s)</span></h2>
    <${ErrorBox} error=${error} />
    ${last ? html`<p class="muted" id="metrics-totals">events received ${last.events.received}, function calls ok ${last.functions.success} / failed ${last.functions.failure}, plugin faults ${last.pluginFaults}, plugin rejections ${last.pluginRejections}</p>` : null}
    <div class="charts">
      <${Chart} id="chart-rate" title="events/s" series=${["events/s"]} data=${[charts.t, charts.rate]} />
      <${Chart} id="chart-errors" title="errors/s (failed calls + plugin faults)" series=${["errors/s"]} data=${[charts.t, charts.errors]} />
      <${Chart} id="chart-p99" title="p99 event latency (ms)" series=${["p99 ms"]} data=${[charts.t, charts.p99]} />
      <${Chart} id="chart-plugins" title="p99 plugin reaction time (µs)" series=${charts.names.length ? charts.names : ["(no plugin)"]}
        data=${[charts.t, ...(charts.names.length ? charts.perPlugin : [charts.t.map(() => null)])]} />
    </div>
  </section>`;
}

// -- plugins --------------------------------------------------------------------------------------------

function PluginsView() {
  const [data, error, reload] = usePoll(() => api("GET", "/v1/plugins"), 3000);
  const [fuel] = usePoll(() => api("GET", "/v1/metrics/summary"), 5000);
  const [actionError, setActionError] = useState(null);
  const act = async (name, action) => {
    setActionError(null);
    try {
      if (action === "delete") {
        if (!confirm(`Delete plugin ${name}?`)) return;
        await write("DELETE", `/v1/plugins/${seg(name)}`);
      } else {
        await write("POST", `/v1/plugins/${seg(name)}/${action}`);
      }
      reload();
    } catch (e) { setActionError(e); }
  };
  const plugins = (data && data.plugins) || [];
  return html`<section class="panel">
    <h2>Plugins</h2>
    <${ErrorBox} error=${error} /><${ErrorBox} error=${actionError} />
    ${data && plugins.length === 0 ? html`<p class="muted">No plugin is configured (--plugin, --plugins-config or POST /v1/plugins).</p>` : null}
    <table id="plugins"><thead><tr><th>plugin</th><th>state</th><th>subscriptions</th><th>grants</th><th>counters</th><th>last fault</th><th>fuel / reaction</th><th></th></tr></thead>
    <tbody>${plugins.map((p) => {
      const stats = fuel && fuel.plugins ? fuel.plugins[p.name] : null;
      const avgFuel = stats && stats.fuel && stats.fuel.count ? Math.round(stats.fuel.sum / stats.fuel.count) : null;
      return html`<tr key=${p.name} class="plugin" data-plugin=${p.name}>
        <td><strong class="mono">${p.name}</strong><div class="muted">${p.source}: <span class="mono">${p.origin}</span></div>
          <details><summary>settings</summary><${Json} value=${p.settings} /></details></td>
        <td><${StateBadge} state=${p.state} />
          ${p.state === "quarantined" ? html`<div class="muted">retry ${p.retryInSeconds !== null ? `in ${p.retryInSeconds.toFixed(1)} s` : ""}${p.quarantineReason ? ` — ${p.quarantineReason}` : ""}</div>` : null}
          ${p.state === "failed" && p.lastFault ? html`<div class="status-error">${p.lastFault.message || ""}</div>` : null}</td>
        <td class="mono">${(p.subscriptions || []).map((s, i) => html`<div key=${i}>${s.eventType} (${s.type})</div>`)}</td>
        <td class="grants">${grantsText(p.capabilities)}${p.importedCapabilities && p.importedCapabilities.length ? html`<div class="muted">imports: ${p.importedCapabilities.join(", ")}</div>` : null}</td>
        <td class="counters"><div>reactions: ${countsText(p.counters && p.counters.reactions)}</div><div>faults: ${countsText(p.counters && p.counters.faults)}</div></td>
        <td>${p.lastFault ? html`<div class="status-error">${p.lastFault.kind || ""}</div><div class="mono">${p.lastFault.message || ""}</div><div class="muted">${p.lastFault.at || ""}</div>` : html`<span class="muted">none</span>`}</td>
        <td>${avgFuel !== null ? `${avgFuel} fuel` : "–"}</td>
        <td>${p.source === "api" ? html`
          ${p.state === "disabled" ? html`<button onClick=${() => act(p.name, "enable")}>Enable</button>` : html`<button onClick=${() => act(p.name, "disable")}>Disable</button>`}
          <button class="danger" onClick=${() => act(p.name, "delete")}>Delete</button>` : html`<span class="muted" title="changed only through its flag or file">${p.source}</span>`}</td>
      </tr>`;
    })}</tbody></table>
  </section>`;
}

// -- spaces ---------------------------------------------------------------------------------------------

function CreateForm({ fields, onCreate, label }) {
  const [values, setValues] = useState(() => Object.fromEntries(fields.map((f) => [f.name, f.value || ""])));
  const submit = async (e) => {
    e.preventDefault();
    if (await onCreate(values)) setValues(Object.fromEntries(fields.map((f) => [f.name, f.value || ""])));
  };
  return html`<form class="inline" onSubmit=${submit}>
    ${fields.map((f) => f.options
      ? html`<select key=${f.name} name=${f.name} value=${values[f.name]} onChange=${(e) => setValues({ ...values, [f.name]: e.target.value })}>${f.options.map((o) => html`<option key=${o} value=${o}>${o}</option>`)}</select>`
      : html`<input key=${f.name} name=${f.name} placeholder=${f.placeholder || f.name} size=${f.size || 16} value=${values[f.name]}
          onInput=${(e) => setValues({ ...values, [f.name]: e.target.value })} />`)}
    <button class="primary" type="submit">${label}</button>
  </form>`;
}

function SpaceView({ space }) {
  const base = `/v1/spaces/${seg(space)}`;
  const load = () => Promise.all(["eventtypes", "functions", "subscriptions"].map((k) => api("GET", `${base}/${k}`)));
  const [data, error, reload] = usePoll(load, 5000, [space]);
  const [actionError, setActionError] = useState(null);
  const run = async (fn) => {
    setActionError(null);
    try { await fn(); reload(); return true; } catch (e) { setActionError(e); return false; }
  };
  const [types, functions, subscriptions] = data ? [data[0].eventTypes || [], data[1].functions || [], data[2].subscriptions || []] : [[], [], []];
  const remove = (what, id) => run(async () => { if (confirm(`Delete ${what} ${id}?`)) await write("DELETE", `${base}/${what}/${seg(id)}`); });
  return html`<div>
    <${ErrorBox} error=${error} /><${ErrorBox} error=${actionError} />
    <section class="panel"><h2>Event types in <span class="mono">${space}</span></h2>
      <table id="eventtypes"><thead><tr><th>name</th><th>authorizer</th><th>metadata</th><th></th></tr></thead><tbody>
        ${types.map((t) => html`<tr key=${t.name}><td class="mono">${t.name}</td><td class="mono">${t.authorizerId || ""}</td><td class="mono">${t.metadata ? JSON.stringify(t.metadata) : ""}</td>
          <td><button class="danger" onClick=${() => remove("eventtypes", t.name)}>Delete</button></td></tr>`)}
      </tbody></table>
      <${CreateForm} label="Create event type" fields=${[{ name: "name", placeholder: "user.created" }, { name: "authorizerId", placeholder: "authorizer (optional)" }]}
        onCreate=${(v) => run(() => write("POST", `${base}/eventtypes`, v.authorizerId ? v : { name: v.name }))} />
    </section>
    <section class="panel"><h2>Functions</h2>
      <table id="functions"><thead><tr><th>id</th><th>type</th><th>provider</th><th></th></tr></thead><tbody>
        ${functions.map((f) => html`<tr key=${f.functionId}><td class="mono">${f.functionId}</td><td>${f.type}</td><td><${Json} value=${f.provider} /></td>
          <td><button class="danger" onClick=${() => remove("functions", f.functionId)}>Delete</button></td></tr>`)}
      </tbody></table>
      <${CreateForm} label="Create function" fields=${[{ name: "functionId", placeholder: "function id" },
        { name: "type", options: ["http", "awslambda", "awskinesis", "awsfirehose", "awssqs"], value: "http" },
        { name: "provider", placeholder: '{"url":"http://127.0.0.1:3000/"}', size: 40 }]}
        onCreate=${(v) => run(async () => {
          let provider;
          try { provider = JSON.parse(v.provider || "{}"); } catch (e) { throw new Error(`provider is not JSON: ${e.message}`); }
          await write("POST", `${base}/functions`, { functionId: v.functionId, type: v.type, provider });
        })} />
    </section>
    <section class="panel"><h2>Subscriptions</h2>
      <table id="subscriptions"><thead><tr><th>type</th><th>event type</th><th>function</th><th>method</th><th>path</th><th>id</th><th></th></tr></thead><tbody>
        ${subscriptions.map((s) => html`<tr key=${s.subscriptionId}><td>${s.type}</td><td class="mono">${s.eventType}</td><td class="mono">${s.functionId}</td>
          <td>${s.method}</td><td class="mono">${s.path}</td><td class="mono muted">${s.subscriptionId}</td>
          <td><button class="danger" onClick=${() => remove("subscriptions", s.subscriptionId)}>Delete</button></td></tr>`)}
      </tbody></table>
      <${CreateForm} label="Create subscription" fields=${[{ name: "type", options: ["async", "sync"], value: "async" },
        { name: "eventType", placeholder: "event type" }, { name: "functionId", placeholder: "function id" },
        { name: "method", placeholder: "POST", size: 6 }, { name: "path", placeholder: "/", size: 12 }]}
        onCreate=${(v) => run(() => write("POST", `${base}/subscriptions`, Object.fromEntries(Object.entries(v).filter(([, x]) => x))))} />
    </section>
  </div>`;
}

function SpacesView() {
  const [data, error] = usePoll(() => api("GET", "/v1/spaces"), 5000);
  const [space, setSpace] = useState("default");
  const [typed, setTyped] = useState("");
  const spaces = [...new Set(["default", ...((data && data.spaces) || [])])].sort();
  return html`<div>
    <section class="panel"><h2>Spaces</h2>
      <${ErrorBox} error=${error} />
      <div class="toolbar" id="spaces">
        ${spaces.map((s) => html`<button key=${s} class=${s === space ? "primary" : ""} onClick=${() => setSpace(s)}>${s}</button>`)}
        <form class="inline" onSubmit=${(e) => { e.preventDefault(); if (typed) { setSpace(typed); setTyped(""); } }}>
          <input placeholder="another space" value=${typed} onInput=${(e) => setTyped(e.target.value)} /><button type="submit">Open</button>
        </form>
      </div>
    </section>
    <${SpaceView} key=${space} space=${space} />
  </div>`;
}

// -- the page -------------------------------------------------------------------------------------------

const TABS = [["live", "Live"], ["spaces", "Spaces"], ["plugins", "Plugins"], ["metrics", "Metrics"]];

function currentTab() {
  const name = location.hash.replace(/^#/, "");
  return TABS.some(([id]) => id === name) ? name : "live";
}

function App() {
  const [tab, setTab] = useState(currentTab());
  useEffect(() => {
    const onHash = () => setTab(currentTab());
    window.addEventListener("hashchange", onHash);
    return () => window.removeEventListener("hashchange", onHash);
  }, []);
  return html`<div>
    <header>
      <h1>Event Gateway</h1>
      <nav>${TABS.map(([id, label]) => html`<a key=${id} href=${`#${id}`} id=${`tab-${id}`} class=${tab === id ? "active" : ""}>${label}</a>`)}</nav>
      <span class="spacer"></span>
      <a href="/v1/openapi.json" style=${{ color: "#cfd6e4" }}>OpenAPI</a>
      <${TokenControl} />
    </header>
    <main>
      ${tab === "live" ? html`<${LiveView} />` : null}
      ${tab === "spaces" ? html`<${SpacesView} />` : null}
      ${tab === "plugins" ? html`<${PluginsView} />` : null}
      ${tab === "metrics" ? html`<${MetricsView} />` : null}
    </main>
    <${TokenDialog} />
  </div>`;
}

const root = document.getElementById("app");
root.textContent = ""; // the "Loading" line
render(html`<${App} />`, root);
