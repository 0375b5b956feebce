// The Tessera console: one page, four views over the server's own HTTP API (/metrics,
// /v1/console/history, /v1/console/rejects, /v1/views, /v1/features). No framework; charts are
// uPlot (embedded beside this file). Numbers in tables carry data-metric / data-labels so that
// tests can check them against /metrics.
'use strict';

const $ = (id) => document.getElementById(id);
const esc = (s) => String(s).replace(/[&<>"']/g,
  (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
const REFRESH_MS = 2000;
let catalog = null;  // /v1/views

async function getJson(path) {
  const r = await fetch(path);
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || `${path}: HTTP ${r.status}`);
  return body;
}

// ---- Prometheus text ----------------------------------------------------------------------

function parseMetrics(text) {
  const out = new Map();  // name -> [{labels, value}]
  for (const line of text.split('\n')) {
    if (!line || line[0] === '#') continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/);
    if (!m) continue;
    const labels = {};
    for (const l of (m[2] || '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
    }
    const v = m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ? -Infinity : Number(m[3]);
    if (!out.has(m[1])) out.set(m[1], []);
    out.get(m[1]).push({ labels, value: v });
  }
  return out;
}

function matches(labels, want) {
  return Object.entries(want).every(([k, v]) => labels[k] === v);
}

// Sum of the series of `name` whose labels include `want`; null when there is none.
function metricSum(ms, name, want = {}) {
  let sum = null;
  for (const s of ms.get(name) || []) {
    if (matches(s.labels, want)) sum = (sum ?? 0) + s.value;
  }
  return sum;
}

function fmt(v, digits = 0) {
  if (v === null || v === undefined || Number.isNaN(v)) return '—';
  if (!Number.isFinite(v)) return String(v);
  return v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

function fmtBytes(v) {
  if (v === null || v === undefined) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

// A table cell showing metric `name` (several: joined by '+') summed over `labels` (the test
// reads these back).
function cell(ms, name, labels, format = fmt) {
  let v = null;
  for (const n of name.split('+')) {
    const x = metricSum(ms, n, labels);
    if (x !== null) v = (v ?? 0) + x;
  }
  return `<td data-metric="${esc(name)}" data-labels="${esc(JSON.stringify(labels))}"` +
    ` data-value="${v === null ? '' : v}">${format(v)}</td>`;
}

// ---- History ------------------------------------------------------------------------------

// The tracks of `name` (several: joined by '+') and `kind` grouped by the value of label `by` (summed within a group).
function tracks(history, name, kind, by, filter = {}) {
  const groups = new Map();
  const names = name.split('+');
  for (const s of history.series) {
    if (!names.includes(s.name) || s.kind !== kind || !matches(s.labels, filter)) continue;
    const key = by ? (s.labels[by] ?? '') : name;
    const prev = groups.get(key);
    if (!prev) {
      groups.set(key, s.values.slice());
    } else if (kind === 'counter' || kind === 'count' || kind === 'gauge') {
      groups.set(key, prev.map((v, i) => (v === null || s.values[i] === null ? v ?? s.values[i]
        : v + s.values[i])));
    } else {
      groups.set(key, prev.map((v, i) => (v === null ? s.values[i]
        : s.values[i] === null ? v : Math.max(v, s.values[i]))));
    }
  }
  return groups;
}

// Per-second rate of a cumulative series (null where either point is missing).
function rate(t, values) {
  return values.map((v, i) => {
    if (i === 0 || v === null || values[i - 1] === null) return null;
    const dt = (t[i] - t[i - 1]) / 1000;
    return dt > 0 ? Math.max(0, (v - values[i - 1]) / dt) : null;
  });
}

function lastRate(history, name, kind, filter) {
  const g = tracks(history, name, kind, null, filter).get(name);
  if (!g) return null;
  const r = rate(history.t, g);
  return r.length ? r[r.length - 1] : null;
}

// ---- Overview -----------------------------------------------------------------------------

const charts = new Map();  // title -> {plot, names}

const CHARTS = [
  { title: 'Rows/s by source', name: 'tessera_source_rows_total', kind: 'counter', by: 'source', rate: true },
  { title: 'Rejected rows/s by source', name: 'tessera_source_rejected_total+tessera_ingest_rejected_rows_total', kind: 'counter', by: 'source', rate: true },
  { title: 'Watermark lag (s)', name: 'tessera_watermark_lag_seconds', kind: 'gauge', by: 'source' },
  { title: 'Freshness: age of the newest event (s)', name: 'tessera_freshness_seconds', kind: 'gauge', by: 'source' },
  { title: 'Open tile memory (MiB)', name: 'tessera_open_tile_bytes', kind: 'gauge', by: 'source', scale: 1 / 1048576 },
  { title: 'HTTP requests/s by route', name: 'tessera_http_request_seconds', kind: 'count', by: 'route', rate: true },
  { title: 'HTTP p99 latency by route (ms)', name: 'tessera_http_request_seconds', kind: 'p99', by: 'route', scale: 1000 },
  { title: 'Flush p99 (s)', name: 'tessera_flush_seconds', kind: 'p99', by: 'source' },
];

// What the overview asks of the history: the charts' families and the tables' rates.
const HISTORY_FAMILIES = [...new Set(CHARTS.flatMap((c) => c.name.split('+')).concat(
  ['tessera_store_write_seconds']))];

const PALETTE = ['#2f6fdb', '#e0633a', '#2e9e5b', '#8b4fd6', '#c9a227', '#d6457a', '#3aa6b9', '#7a7f8c'];

function drawChart(spec, history) {
  const groups = tracks(history, spec.name, spec.kind, spec.by);
  const names = [...groups.keys()].sort();
  const t = history.t.map((ms) => ms / 1000);
  const data = [t];
  for (const n of names) {
    let v = groups.get(n);
    if (spec.rate) v = rate(history.t, v);
    if (spec.scale) v = v.map((x) => (x === null ? null : x * spec.scale));
    data.push(v);
  }
  let entry = charts.get(spec.title);
  if (entry && entry.names.join('\n') !== names.join('\n')) {
    entry.plot.destroy();
    entry.box.remove();
    entry = null;
  }
  if (!entry) {
    const box = document.createElement('div');
    box.className = 'chart';
    box.dataset.chart = spec.title;
    box.innerHTML = `<h4>${esc(spec.title)}</h4>`;
    $('charts').appendChild(box);
    const opts = {
      width: 440, height: 180,
      series: [{}, ...names.map((n, i) => ({ label: n || '(all)', stroke: PALETTE[i % PALETTE.length], width: 1.5 }))],
      axes: [{}, { size: 60 }],
      legend: { live: false },
    };
    entry = { plot: new uPlot(opts, data, box), names, box };
    charts.set(spec.title, entry);
  } else {
    entry.plot.setData(data);
  }
  const points = data.slice(1).reduce((n, s) => n + s.filter((x) => x !== null).length, 0);
  entry.box.dataset.points = String(points);
}

// The watermark itself: the wall clock minus its lag (the metric the engine exports).
function watermark(lagSeconds) {
  if (lagSeconds === null || !Number.isFinite(lagSeconds)) return '—';
  return new Date(Date.now() - lagSeconds * 1000).toISOString().replace(/\.\d+Z$/, 'Z');
}

function renderOverview(ms, history) {
  const sources = catalog ? catalog.sources.map((s) => s.name) : [];
  let html = '<tr><th>source</th><th>rows/s</th><th>rows</th><th>rejected</th><th>late</th>' +
    '<th>null key</th><th>field errors</th><th>watermark</th><th>watermark lag (s)</th><th>freshness (s)</th>' +
    '<th>open tiles</th><th>open tile memory</th><th>tiles written</th><th>flush p99 (ms)</th>' +
    '<th>store write p99 (ms)</th></tr>';
  for (const src of sources) {
    const l = { source: src };
    const r = lastRate(history, 'tessera_source_rows_total', 'counter', l);
    const flush = tracks(history, 'tessera_flush_seconds', 'p99', null, l).get('tessera_flush_seconds');
    const store = tracks(history, 'tessera_store_write_seconds', 'p99', null, l).get('tessera_store_write_seconds');
    const last = (v) => (v && v.length ? v[v.length - 1] : null);
    html += `<tr><td class="text">${esc(src)}</td><td data-rate="rows">${fmt(r, 1)}</td>` +
      cell(ms, 'tessera_source_rows_total', l) +
      cell(ms, 'tessera_source_rejected_total+tessera_ingest_rejected_rows_total', l) +
      cell(ms, 'tessera_source_late_total+tessera_ingest_late_rows_total', l) + cell(ms, 'tessera_view_null_key_total', l) +
      cell(ms, 'tessera_source_field_errors_total', l) +
      `<td class="text">${watermark(metricSum(ms, 'tessera_watermark_lag_seconds', l))}</td>` +
      cell(ms, 'tessera_watermark_lag_seconds', l, (v) => fmt(v, 1)) +
      cell(ms, 'tessera_freshness_seconds', l, (v) => fmt(v, 1)) +
      cell(ms, 'tessera_open_tiles', l) + cell(ms, 'tessera_open_tile_bytes', l, fmtBytes) +
      cell(ms, 'tessera_flush_tiles_written_total', l) +
      `<td>${fmt(last(flush) === null ? null : last(flush) * 1000, 1)}</td>` +
      `<td>${fmt(last(store) === null ? null : last(store) * 1000, 1)}</td></tr>`;
  }
  $('sources-table').innerHTML = html;

  const parts = ms.get('tessera_kafka_partition_lag') || [];
  $('partitions').innerHTML = parts.length === 0 ? '' :
    '<h3>Partition lag (messages)</h3><table><tr><th>source</th><th>partition</th><th>lag</th></tr>' +
    parts.map((p) => `<tr><td class="text">${esc(p.labels.source || p.labels.topic || '')}</td>` +
      `<td>${esc(p.labels.partition)}</td>` + cell(ms, 'tessera_kafka_partition_lag', p.labels) + '</tr>').join('') +
    '</table>';

  html = '<tr><th>view</th><th>source</th><th>rows in</th><th>filtered</th><th>aggregated</th>' +
    '<th>null key</th><th>key too long</th><th>open tiles</th><th>open tile memory</th></tr>';
  for (const v of catalog ? catalog.views : []) {
    const l = { view: v.name };
    html += `<tr><td class="text">${esc(v.name)}</td><td class="text">${esc(v.source)}</td>` +
      cell(ms, 'tessera_view_rows_in_total', l) + cell(ms, 'tessera_view_filtered_total', l) +
      cell(ms, 'tessera_view_rows_aggregated_total', l) + cell(ms, 'tessera_view_null_key_total', l) +
      cell(ms, 'tessera_view_key_too_long_total', l) + cell(ms, 'tessera_view_open_tiles', l) +
      cell(ms, 'tessera_view_open_tile_bytes', l, fmtBytes) + '</tr>';
  }
  $('views-table').innerHTML = html;

  const routes = new Set((ms.get('tessera_http_request_seconds_count') || []).map((s) => s.labels.route));
  html = '<tr><th>route</th><th>requests</th><th>requests/s</th><th>p50 (ms)</th><th>p99 (ms)</th></tr>';
  for (const route of [...routes].sort()) {
    const l = { route };
    const p = (kind) => {
      const g = tracks(history, 'tessera_http_request_seconds', kind, null, l).get('tessera_http_request_seconds');
      const v = g && g.length ? g[g.length - 1] : null;
      return v === null ? null : v * 1000;
    };
    html += `<tr><td class="text">${esc(route)}</td>` + cell(ms, 'tessera_http_request_seconds_count', l) +
      `<td>${fmt(lastRate(history, 'tessera_http_request_seconds', 'count', l), 1)}</td>` +
      `<td>${fmt(p('p50'), 3)}</td><td>${fmt(p('p99'), 3)}</td></tr>`;
  }
  $('serving-table').innerHTML = html;

  for (const spec of CHARTS) drawChart(spec, history);
}

async function refreshOverview() {
  const [text, history] = await Promise.all([
    fetch('/metrics').then((r) => r.text()),
    getJson(`/v1/console/history?families=${HISTORY_FAMILIES.join(',')}`),
  ]);
  renderOverview(parseMetrics(text), history);
}

// ---- Feature explorer ---------------------------------------------------------------------

function viewDef(name) {
  return catalog.views.find((v) => v.name === name);
}

// The text form of a key: parts joined by '|', with '|' and '\' escaped (engine/entity_key.h).
function keyText(parts) {
  return parts.length === 1 ? parts[0]
    : parts.map((p) => p.replace(/[\\|]/g, (c) => '\\' + c)).join('|');
}

// A path segment %-encoded, quotes and parentheses included (the curl snippet is single-quoted).
function pathPart(s) {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
}

function readUrl(view, key, windows, at) {
  const q = new URLSearchParams();
  if (windows) q.set('windows', windows);
  if (at) q.set('at', at);
  const qs = q.toString();
  return `/v1/features/${pathPart(view)}/${pathPart(key)}${qs ? '?' + qs : ''}`;
}

function explorerInputs() {
  const view = $('ex-view').value;
  const parts = [...document.querySelectorAll('#ex-keys input')].map((i) => i.value);
  return { view, key: keyText(parts), windows: $('ex-windows').value.trim(), at: $('ex-at').value.trim() };
}

function renderKeyFields() {
  const v = viewDef($('ex-view').value);
  $('ex-keys').innerHTML = (v ? v.keys : []).map((k) =>
    `<label>${esc(k)} <input data-key="${esc(k)}" size="18"></label>`).join('');
  $('se-feature').innerHTML = (v ? v.features : []).map((f) =>
    `<option>${esc(f.name)}</option>`).join('');
}

async function readFeatures(ev) {
  if (ev) ev.preventDefault();
  const { view, key, windows, at } = explorerInputs();
  const url = readUrl(view, key, windows, at);
  $('ex-curl').textContent = `curl '${location.origin}${url}'`;
  const win = windows ? `, windows=${JSON.stringify(windows.split(','))}` : '';
  const atArg = at ? `, at=${JSON.stringify(at)}` : '';
  $('ex-python').textContent = 'from tessera import Client\n\n' +
    `with Client(${JSON.stringify(location.origin)}) as client:\n` +
    `    print(client.get(${JSON.stringify(view)}, ${JSON.stringify(key)}${win}${atArg}))`;
  $('ex-error').hidden = true;
  try {
    const r = await getJson(url);
    const wins = Object.keys(r.windows);
    const features = wins.length ? Object.keys(r.windows[wins[0]]) : [];
    let html = `<tr><th>feature</th>${wins.map((w) => `<th>${esc(w)}</th>`).join('')}</tr>`;
    for (const f of features) {
      html += `<tr><td class="text">${esc(f)}</td>` + wins.map((w) => {
        const v = r.windows[w][f];
        return `<td data-window="${esc(w)}" data-feature="${esc(f)}" data-json="${esc(JSON.stringify(v))}">` +
          `${esc(typeof v === 'object' && v !== null ? JSON.stringify(v) : v ?? 'null')}</td>`;
      }).join('') + '</tr>';
    }
    $('ex-table').innerHTML = html;
    $('ex-table').dataset.at = r.at;
    $('se-window').innerHTML = wins.map((w) => `<option>${esc(w)}</option>`).join('');
  } catch (e) {
    $('ex-error').textContent = e.message;
    $('ex-error').hidden = false;
    $('ex-table').innerHTML = '';
  }
}

function parseDurationMs(s) {
  const m = String(s).match(/^(\d+)(ms|s|m|h|d)$/);
  if (!m) return 300000;
  return Number(m[1]) * { ms: 1, s: 1000, m: 60000, h: 3600000, d: 86400000 }[m[2]];
}

let seriesPlot = null;

// One feature at tile boundaries over the last N hours: at most 97 reads.
async function chartSeries(ev) {
  if (ev) ev.preventDefault();
  const { view, key, at } = explorerInputs();
  const feature = $('se-feature').value;
  const window = $('se-window').value || '1h';
  const hours = Math.max(1, Math.min(24 * 30, Number($('se-hours').value) || 6));
  const tile = parseDurationMs(viewDef(view).tile);
  const end = Math.floor((at ? Date.parse(at) : Date.now()) / tile) * tile;
  const step = Math.max(tile, Math.ceil(hours * 3600000 / 96 / tile) * tile);
  const times = [];
  for (let t = end - Math.floor(hours * 3600000 / step) * step; t <= end; t += step) times.push(t);
  const values = await Promise.all(times.map(async (t) => {
    try {
      const r = await getJson(readUrl(view, key, window, new Date(t).toISOString()));
      const v = r.windows[window][feature];
      return typeof v === 'number' ? v : null;
    } catch (e) {
      return null;
    }
  }));
  if (seriesPlot) seriesPlot.destroy();
  const box = $('se-chart');
  box.innerHTML = `<h4>${esc(feature)} over ${esc(window)} windows, every ${esc(step / 60000)} min</h4>`;
  seriesPlot = new uPlot({
    width: 700, height: 220,
    series: [{}, { label: feature, stroke: PALETTE[0], width: 1.5, points: { show: true } }],
  }, [times.map((t) => t / 1000), values], box);
  box.dataset.points = String(values.filter((v) => v !== null).length);
}

// ---- Catalog and rejects ------------------------------------------------------------------

function renderCatalog() {
  let html = '<h2>Sources</h2>';
  for (const s of catalog.sources) {
    html += `<div class="card" data-source="${esc(s.name)}"><h3>${esc(s.name)}</h3>` +
      `<p class="muted">lateness ${esc(s.lateness)} · HTTP ingest ${s.ingest ? 'on' : 'off'}</p>` +
      '<table><tr><th>column</th><th>type</th></tr>' +
      s.columns.map((c) => `<tr><td class="text">${esc(c.name)}</td><td class="text">${esc(c.type)}</td></tr>`).join('') +
      '</table><h4>Options</h4><table><tr><th>option</th><th>value</th></tr>' +
      Object.entries(s.options || {}).map(([k, v]) => `<tr><td class="text">${esc(k)}</td><td class="text">${esc(v)}</td></tr>`).join('') +
      '</table></div>';
  }
  html += '<h2>Feature views</h2>';
  for (const v of catalog.views) {
    html += `<div class="card" data-view="${esc(v.name)}"><h3>${esc(v.name)}</h3>` +
      `<p class="muted">source ${esc(v.source)} · tile ${esc(v.tile)} · keys ${esc(v.keys.join(', '))}</p>` +
      `<pre class="sql">${esc(v.sql)}</pre><pre class="sql">${esc(v.plan || '')}</pre></div>`;
  }
  $('catalog').innerHTML = html;
}

function position(r) {
  if (r.offset !== undefined) return `partition ${r.partition ?? '?'} offset ${r.offset}`;
  if (r.message_id !== undefined) return `message ${r.message_id}`;
  return `line ${r.line}`;
}

async function refreshRejects() {
  const j = await getJson('/v1/console/rejects');
  let html = '';
  for (const s of j.sources) {
    html += `<h2>${esc(s.source)} <span class="muted">(${fmt(s.total)} rejected since start)</span></h2>`;
    if (s.recent.length === 0) { html += '<p class="muted">none</p>'; continue; }
    html += '<table data-rejects="' + esc(s.source) + '"><tr><th>at</th><th>input</th><th>position</th>' +
      '<th>reason</th><th>line</th></tr>' + s.recent.map((r) =>
      `<tr><td class="text">${esc(new Date(r.at).toISOString())}</td><td class="text">${esc(r.input)}</td>` +
      `<td class="text">${esc(position(r))}</td><td class="text">${esc(r.reason)}</td>` +
      `<td class="text"><code>${esc(r.raw)}</code>${r.raw_bytes ? ` <span class="muted">(${r.raw_bytes} bytes)</span>` : ''}</td></tr>`).join('') +
      '</table>';
  }
  $('rejects').innerHTML = html || '<p class="muted">No source ingests here.</p>';
}

// ---- Navigation ---------------------------------------------------------------------------

let page = 'overview';

async function refresh() {
  try {
    const ready = await fetch('/readyz');
    $('status').textContent = ready.ok ? `ready · updated ${new Date().toLocaleTimeString()}` : 'not ready';
    $('status').className = ready.ok ? 'status' : 'status bad';
    if (page === 'overview') await refreshOverview();
    if (page === 'rejects') await refreshRejects();
  } catch (e) {
    $('status').textContent = `error: ${e.message}`;
    $('status').className = 'status bad';
  }
}

function show() {
  page = (location.hash || '#overview').slice(1);
  if (!['overview', 'explorer', 'catalog', 'rejects'].includes(page)) page = 'overview';
  for (const p of document.querySelectorAll('.page')) p.hidden = p.id !== `page-${page}`;
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('active', a.dataset.page === page);
  if (page === 'catalog') {
    getJson('/v1/views').then((c) => { catalog = c; renderCatalog(); }).catch((e) => {
      $('catalog').textContent = e.message;
    });
  }
  refresh();
}

async function main() {
  catalog = await getJson('/v1/views');
  $('ex-view').innerHTML = catalog.views.map((v) => `<option>${esc(v.name)}</option>`).join('');
  renderKeyFields();
  $('ex-view').addEventListener('change', renderKeyFields);
  $('explorer-form').addEventListener('submit', readFeatures);
  $('series-form').addEventListener('submit', chartSeries);
  window.addEventListener('hashchange', show);
  show();
  setInterval(refresh, REFRESH_MS);
}

main().catch((e) => {
  $('status').textContent = `error: ${e.message}`;
  $('status').className = 'status bad';
});
