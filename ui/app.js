// The flowd console: a page over /hours, /flows/summary and /flows/stream. No framework and
// no build step. Every name from the API is inserted as text (textContent), never as HTML,
// and every sum is kept as a BigInt from the JSON text: sums may pass 2^53.
'use strict';

const HOUR_MS = 3600 * 1000;
// Hours at or above this (2015-08-14 UTC) read as Unix hours: they are shown as dates.
const UNIX_HOUR_FLOOR = 400000;
const LIVE_INTERVAL_MS = 1000;
const TOKEN_KEY = 'flowd-token';
const GROUP_LABELS = {src_app: 'Source', dest_app: 'Destination', vpc_id: 'VPC'};
const PALETTE = 10;

const $ = (id) => document.getElementById(id);

const state = {
  summary: null,      // the last summary, numbers as strings
  etag: '',           // its ETag, for If-None-Match
  params: null,       // URLSearchParams of the range, filters, group_by and top
  range: null,        // {from, to}
  unixHours: true,    // whether hours are shown as dates
  sealed: new Set(),  // sealed hours, from /hours
  sort: {key: 'rank', dir: 'ascending'},
  live: null,         // {abort, timer, mode}
  paused: false,
  lastRefresh: 0,
  refreshTimer: 0,
  generation: 0,      // bumped per query, so late answers of an old one are dropped
};

// ---- exact JSON ---------------------------------------------------------------------

// JSON.parse with every number kept as its text: numbers outside strings are quoted first.
function parseExact(text) {
  let out = '';
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (j < n && text[j] !== '"') {
        j += text[j] === '\\' ? 2 : 1;
      }
      out += text.slice(i, j + 1);
      i = j + 1;
    } else if (c === '-' || (c >= '0' && c <= '9')) {
      let j = i + 1;
      while (j < n && /[0-9eE.+-]/.test(text[j])) {
        j++;
      }
      out += '"' + text.slice(i, j) + '"';
      i = j;
    } else {
      out += c;
      i++;
    }
  }
  return JSON.parse(out);
}

const big = (s) => BigInt(s === undefined ? 0 : s);

function formatBytes(value) {
  const units = ['B', 'KB', 'MB', 'GB', 'TB', 'PB', 'EB', 'ZB', 'YB'];
  let unit = 0;
  let scaled = Number(value);
  while (scaled >= 1000 && unit < units.length - 1) {
    scaled /= 1000;
    unit++;
  }
  if (unit === 0) {
    return value.toString() + ' B';
  }
  const digits = scaled >= 100 ? 0 : scaled >= 10 ? 1 : 2;
  return scaled.toFixed(digits) + ' ' + units[unit];
}

const formatExact = (value) => value.toLocaleString('en-US') + ' bytes';

// ---- hours --------------------------------------------------------------------------

const nowHour = () => Math.floor(Date.now() / HOUR_MS);

function hourLabel(hour, withDate) {
  if (!state.unixHours) {
    return 'hour ' + hour;
  }
  const d = new Date(hour * HOUR_MS);
  const opts = {hour: '2-digit', minute: '2-digit'};
  if (withDate) {
    Object.assign(opts, {month: 'short', day: 'numeric'});
  }
  return d.toLocaleString(undefined, opts);
}

function toLocalInput(hour) {
  const d = new Date(hour * HOUR_MS);
  const pad = (v) => String(v).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:00`;
}

function fromInput(input) {
  const v = input.value.trim();
  if (v === '') {
    return NaN;
  }
  if (state.unixHours) {
    return Math.floor(new Date(v).getTime() / HOUR_MS);
  }
  return /^\d+$/.test(v) ? Number(v) : NaN;
}

function setRangeInputs(range) {
  for (const [input, hour] of [[$('from'), range.from], [$('to'), range.to]]) {
    if (state.unixHours) {
      input.type = 'datetime-local';
      input.step = '3600';
      input.value = toLocalInput(hour);
    } else {
      input.type = 'number';
      input.min = '0';
      input.value = String(hour);
    }
  }
}

// The range the form asks for, or an error text.
function rangeOf(hours) {
  if ($('range-mode').value === 'between') {
    const from = fromInput($('from'));
    const to = fromInput($('to'));
    if (!Number.isInteger(from) || !Number.isInteger(to) || from < 0 || to <= from) {
      return {error: 'Pick a start before the end.'};
    }
    return {from, to};
  }
  const n = Number($('last-hours').value);
  if (!Number.isInteger(n) || n < 1) {
    return {error: 'The number of hours must be a whole number of at least 1.'};
  }
  const newest = hours.length ? Number(hours[hours.length - 1].hour) : -1;
  const end = state.unixHours ? Math.max(nowHour(), newest) : Math.max(newest, 0);
  return {from: Math.max(0, end + 1 - n), to: end + 1};
}

// SPEC: a range holds an open hour when one of its hours is not sealed and at or after the
// current Unix hour minus one.
function holdsOpenHour(range) {
  for (let h = Math.max(range.from, nowHour() - 1); h < range.to; h++) {
    if (!state.sealed.has(h)) {
      return true;
    }
    if (h > nowHour() + 2) {
      break;
    }
  }
  return false;
}

// ---- the API ------------------------------------------------------------------------

function authHeaders(extra) {
  const headers = Object.assign({}, extra || {});
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) {
    headers.Authorization = 'Bearer ' + token;
  }
  return headers;
}

let tokenWaiters = null;

// Shows the token prompt once, however many requests are waiting for it.
function askToken() {
  if (tokenWaiters) {
    return new Promise((resolve) => tokenWaiters.push(resolve));
  }
  tokenWaiters = [];
  const dialog = $('token-dialog');
  $('token').value = '';
  dialog.returnValue = '';
  dialog.showModal();
  return new Promise((resolve) => tokenWaiters.push(resolve));
}

function answerToken(ok) {
  const waiters = tokenWaiters || [];
  tokenWaiters = null;
  if (ok) {
    sessionStorage.setItem(TOKEN_KEY, $('token').value.trim());
  }
  $('token').value = '';
  waiters.forEach((resolve) => resolve(ok));
}

class ApiError extends Error {}

async function problemText(res) {
  try {
    const body = await res.json();
    if (body && body.detail) {
      return `${res.status} ${body.title || ''}: ${body.detail}`;
    }
  } catch (e) {
    // Not a problem body; the status says enough.
  }
  return `${res.status} ${res.statusText}`;
}

// fetch() with the token; a 401 asks for one and tries again.
async function api(path, options) {
  const opts = Object.assign({}, options || {});
  for (;;) {
    opts.headers = authHeaders((options || {}).headers);
    const res = await fetch(path, opts);
    if (res.status !== 401) {
      return res;
    }
    sessionStorage.removeItem(TOKEN_KEY);
    if (!(await askToken())) {
      throw new ApiError('flowd needs a token with the read scope to answer.');
    }
  }
}

async function getJson(path) {
  const res = await api(path);
  if (!res.ok) {
    throw new ApiError(await problemText(res));
  }
  return parseExact(await res.text());
}

// ---- the query ----------------------------------------------------------------------

function filterParams(params) {
  for (const dim of ['src_app', 'dest_app', 'vpc_id']) {
    for (const raw of $('f-' + dim).value.split(',')) {
      const item = raw.trim();
      if (item === '') {
        continue;
      }
      if (item.startsWith('!') && item.length > 1) {
        params.append(dim + '_exclude', item.slice(1));
      } else if (item.endsWith('*') && item.length > 1) {
        params.append(dim + '_prefix', item.slice(0, -1));
      } else {
        params.append(dim, item);
      }
    }
  }
}

function summaryParams(range) {
  const params = new URLSearchParams();
  params.set('from', String(range.from));
  params.set('to', String(range.to));
  filterParams(params);
  params.set('group_by', $('group-by').value);
  params.set('top', $('top').value);
  return params;
}

function showMessage(text) {
  const m = $('message');
  m.textContent = text || '';
  m.hidden = !text;
}

async function run() {
  const generation = ++state.generation;
  stopLive();
  showMessage('');
  try {
    const hours = await getJson('/hours');
    if (generation !== state.generation) {
      return;
    }
    const newest = hours.length ? Number(hours[hours.length - 1].hour) : nowHour();
    const wasUnix = state.unixHours;
    state.unixHours = newest >= UNIX_HOUR_FLOOR;
    state.sealed = new Set(hours.filter((h) => h.sealed === true).map((h) => Number(h.hour)));
    if (wasUnix !== state.unixHours && $('range-mode').value === 'between') {
      return showMessage('Hours are now shown as ' +
                         (state.unixHours ? 'dates' : 'numbers') + '; pick the range again.');
    }
    const range = rangeOf(hours);
    if (range.error) {
      return showMessage(range.error);
    }
    state.range = range;
    state.params = summaryParams(range);
    state.etag = '';
    await refresh(generation);
    if (generation === state.generation) {
      startLive(generation);
    }
  } catch (e) {
    if (generation === state.generation) {
      showMessage(e instanceof ApiError ? e.message : 'Request failed: ' + e.message);
    }
  }
}

// Fetches the summary (series=hour) again; an unchanged one answers 304 and costs nothing.
async function refresh(generation) {
  state.lastRefresh = Date.now();
  const params = new URLSearchParams(state.params);
  params.set('series', 'hour');
  const headers = state.etag ? {'If-None-Match': state.etag} : {};
  const res = await api('/flows/summary?' + params.toString(), {headers});
  if (generation !== state.generation || res.status === 304) {
    return;
  }
  if (!res.ok) {
    throw new ApiError(await problemText(res));
  }
  const text = await res.text();
  state.etag = res.headers.get('ETag') || '';
  state.summary = parseExact(text);
  render();
}

// ---- rendering ----------------------------------------------------------------------

function groupFields() {
  return state.summary.group_by;
}

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    e.setAttribute(k, v);
  }
  if (text !== undefined) {
    e.textContent = text;
  }
  return e;
}

function bytesCell(value) {
  const td = el('td', {class: 'num', title: formatExact(value), 'data-value': value.toString()},
                formatBytes(value));
  return td;
}

function rowTotal(row) {
  return big(row.bytes_tx) + big(row.bytes_rx);
}

const columns = () => [
  {key: 'rank', label: '#', num: true},
  ...groupFields().map((f) => ({key: f, label: GROUP_LABELS[f] || f})),
  {key: 'bytes_tx', label: 'Sent', num: true},
  {key: 'bytes_rx', label: 'Received', num: true},
  {key: 'bytes', label: 'Total', num: true},
];

function sortValue(row, key) {
  if (key === 'rank') {
    return BigInt(row.rank);
  }
  if (key === 'bytes') {
    return rowTotal(row);
  }
  if (key === 'bytes_tx' || key === 'bytes_rx') {
    return big(row[key]);
  }
  return row[key];
}

function sortedTop() {
  const rows = state.summary.top.map((row, i) => Object.assign({rank: i + 1}, row));
  const {key, dir} = state.sort;
  const sign = dir === 'ascending' ? 1 : -1;
  rows.sort((a, b) => {
    const x = sortValue(a, key);
    const y = sortValue(b, key);
    return (x < y ? -1 : x > y ? 1 : a.rank - b.rank) * sign;
  });
  return rows;
}

function renderTable() {
  const table = $('top-table');
  const head = table.tHead.rows[0];
  head.replaceChildren();
  for (const col of columns()) {
    const th = el('th', {scope: 'col', class: col.num ? 'num' : ''});
    if (state.sort.key === col.key) {
      th.setAttribute('aria-sort', state.sort.dir);
    }
    const button = el('button', {type: 'button', 'data-sort': col.key}, col.label);
    button.addEventListener('click', () => {
      const same = state.sort.key === col.key;
      const numeric = col.key !== 'rank' && col.num;
      state.sort = {
        key: col.key,
        dir: same ? (state.sort.dir === 'ascending' ? 'descending' : 'ascending')
                  : (numeric ? 'descending' : 'ascending'),
      };
      renderTable();
      table.querySelector(`th button[data-sort="${col.key}"]`).focus();
    });
    th.append(button);
    head.append(th);
  }
  const body = table.tBodies[0];
  body.replaceChildren();
  for (const row of sortedTop()) {
    const tr = el('tr', {class: 'top'});
    const rank = el('td', {class: 'num'});
    rank.append(el('span', {class: 'swatch s' + ((row.rank - 1) % PALETTE), 'aria-hidden': 'true'}),
                document.createTextNode(String(row.rank)));
    tr.append(rank);
    for (const f of groupFields()) {
      tr.append(el('td', {class: 'name', 'data-field': f}, row[f]));
    }
    tr.append(bytesCell(big(row.bytes_tx)), bytesCell(big(row.bytes_rx)), bytesCell(rowTotal(row)));
    body.append(tr);
  }
  const foot = table.tFoot;
  foot.replaceChildren();
  for (const name of ['other', 'total']) {
    const part = state.summary[name];
    const tr = el('tr', {class: name});
    tr.append(el('td', {}, ''));
    const label = el('td', {colspan: String(groupFields().length), class: 'name'},
                     `${name} (${part.groups} ${part.groups === '1' ? 'group' : 'groups'})`);
    tr.append(label, bytesCell(big(part.bytes_tx)), bytesCell(big(part.bytes_rx)),
              bytesCell(rowTotal(part)));
    foot.append(tr);
  }
  const r = state.range;
  $('table-caption').textContent = `${hourLabel(r.from, true)} to ${hourLabel(r.to, true)}` +
      ` (${r.to - r.from} hours), by ${groupFields().map((f) => GROUP_LABELS[f]).join(' and ')}`;
}

function seriesName(row) {
  return groupFields().map((f) => row[f]).join(' \u2192 ');
}

function renderChart() {
  const s = state.summary;
  const hours = (s.hours || []).map(Number);
  const series = s.top.map((row, i) => ({name: seriesName(row), cls: 's' + (i % PALETTE), row}));
  series.push({name: 'other', cls: 's-other', row: s.other});
  const perHour = (row, i) => big(row.bytes_tx_by_hour[i]) + big(row.bytes_rx_by_hour[i]);
  let max = 0n;
  hours.forEach((_, i) => {
    const t = perHour(s.total, i);
    if (t > max) {
      max = t;
    }
  });

  const box = $('chart');
  const width = Math.max(320, box.clientWidth || 800);
  const height = window.matchMedia('(max-width: 600px)').matches ? 200 : 260;
  const pad = {left: 64, right: 8, top: 8, bottom: 24};
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', `Bytes per hour, ${hours.length} hours, top ${s.top.length} and other`);
  const add = (parent, tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) {
      e.setAttribute(k, String(v));
    }
    if (text !== undefined) {
      e.textContent = text;
    }
    parent.append(e);
    return e;
  };
  const maxN = Number(max) || 1;
  for (const frac of [0, 0.5, 1]) {
    const y = pad.top + plotH - frac * plotH;
    add(svg, 'line', {x1: pad.left, x2: width - pad.right, y1: y, y2: y, class: 'axis'});
    add(svg, 'text', {x: pad.left - 4, y: y + 4, 'text-anchor': 'end'},
        formatBytes(BigInt(Math.round(frac * maxN))));
  }
  const band = plotW / Math.max(1, hours.length);
  const labelEvery = Math.max(1, Math.ceil(hours.length / Math.max(1, Math.floor(plotW / 90))));
  hours.forEach((hour, i) => {
    const x = pad.left + i * band;
    let y = pad.top + plotH;
    for (const item of series) {
      const v = perHour(item.row, i);
      if (v === 0n) {
        continue;
      }
      const h = (Number(v) / maxN) * plotH;
      y -= h;
      const rect = add(svg, 'rect', {x: x + band * 0.1, y, width: Math.max(1, band * 0.8),
                                     height: Math.max(0.5, h), class: item.cls});
      add(rect, 'title', {}, `${item.name}, ${hourLabel(hour, true)}: ${formatBytes(v)}` +
                             ` (${formatExact(v)})`);
    }
    if (i % labelEvery === 0) {
      add(svg, 'text', {x: x + band / 2, y: height - 6, 'text-anchor': 'middle'},
          hourLabel(hour, false));
    }
  });
  box.replaceChildren(svg);

  const legend = $('legend');
  legend.replaceChildren();
  for (const item of series) {
    const li = el('li');
    li.append(el('span', {class: 'swatch ' + item.cls, 'aria-hidden': 'true'}),
              document.createTextNode(item.name));
    legend.append(li);
  }
}

function renderExport() {
  const params = new URLSearchParams(state.params);
  params.set('format', 'csv');
  const path = '/flows/summary?' + params.toString();
  $('csv').href = path;
  const auth = sessionStorage.getItem(TOKEN_KEY) ? ' -H "Authorization: Bearer $FLOWD_TOKEN"' : '';
  const url = location.origin + '/flows/summary?' + state.params.toString();
  $('curl').value = `curl -sS${auth} '${url}'`;
}

function render() {
  if (!state.summary) {
    return;
  }
  renderTable();
  renderChart();
  renderExport();
}

// ---- live ---------------------------------------------------------------------------

function setLive(text, cls) {
  const live = $('live');
  live.textContent = text;
  live.className = 'live ' + cls;
}

function stopLive() {
  if (state.live) {
    state.live.abort.abort();
    clearInterval(state.live.timer);
    state.live = null;
  }
  clearTimeout(state.refreshTimer);
  state.refreshTimer = 0;
  $('pause').hidden = true;
  setLive('not live', 'off');
}

// At most one summary refetch per interval, however many changes arrive.
function scheduleRefresh(generation) {
  if (state.refreshTimer || state.paused) {
    return;
  }
  const wait = Math.max(0, state.lastRefresh + LIVE_INTERVAL_MS - Date.now());
  state.refreshTimer = setTimeout(() => {
    state.refreshTimer = 0;
    if (generation !== state.generation) {
      return;
    }
    if ($('range-mode').value === 'last') {
      const next = rangeOf([{hour: String(state.range.to - 1)}]);
      if (!next.error && next.to !== state.range.to) {
        return run();  // the clock moved into a new hour: slide the window
      }
    }
    refresh(generation).catch((e) => showMessage('Refresh failed: ' + e.message));
  }, wait);
}

// Reads the stream's events; any change after `synced` (or a reset) marks the summary stale.
async function follow(generation, live) {
  const params = new URLSearchParams(state.params);
  params.delete('group_by');
  params.delete('top');
  params.set('interval', LIVE_INTERVAL_MS + 'ms');
  let res;
  try {
    res = await api('/flows/stream?' + params.toString(),
                    {headers: {Accept: 'text/event-stream'}, signal: live.abort.signal});
  } catch (e) {
    return false;
  }
  if (!res.ok || !res.body) {
    return false;
  }
  setLive('live', 'on');
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let synced = false;
  for (;;) {
    const {value, done} = await reader.read();
    if (done || generation !== state.generation) {
      return true;
    }
    buffer += value.replace(/\r\n?/g, '\n');
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const type = (block.match(/^event: ?(.*)$/m) || [])[1] || 'message';
      if (type === 'synced') {
        synced = true;
      } else if (type === 'reset') {
        synced = false;
        scheduleRefresh(generation);
      } else if (type === 'rows' && synced) {
        scheduleRefresh(generation);
      }
    }
  }
}

function startLive(generation) {
  if (!holdsOpenHour(state.range)) {
    return;
  }
  $('pause').hidden = false;
  if (state.paused) {
    setLive('paused', 'paused');
    return;
  }
  const live = {abort: new AbortController(), timer: 0};
  state.live = live;
  setLive('live', 'on');
  follow(generation, live).then((streamed) => {
    if (state.live !== live || generation !== state.generation) {
      return;
    }
    // No stream to follow (or it ended): poll with If-None-Match, once per interval.
    setLive(streamed ? 'live' : 'live (polling)', 'on');
    live.timer = setInterval(() => scheduleRefresh(generation), LIVE_INTERVAL_MS);
  }, () => {});
}

// ---- wiring -------------------------------------------------------------------------

function syncRangeMode() {
  const between = $('range-mode').value === 'between';
  document.querySelectorAll('.when-between').forEach((e) => { e.hidden = !between; });
  document.querySelectorAll('.when-last').forEach((e) => { e.hidden = between; });
  if (between && state.range) {
    setRangeInputs(state.range);
  }
  $('range-note').textContent = state.unixHours ? 'times in your time zone' : 'hour numbers';
}

let resizeTimer = 0;

document.addEventListener('DOMContentLoaded', () => {
  $('query').addEventListener('submit', (e) => {
    e.preventDefault();
    run();
  });
  $('range-mode').addEventListener('change', syncRangeMode);
  $('pause').addEventListener('click', () => {
    state.paused = !state.paused;
    $('pause').textContent = state.paused ? 'Resume' : 'Pause';
    $('pause').setAttribute('aria-pressed', String(state.paused));
    const generation = state.generation;
    stopLive();
    startLive(generation);
    if (!state.paused) {
      scheduleRefresh(generation);
    }
  });
  $('token-dialog').addEventListener('close', () => answerToken($('token-dialog').returnValue === 'ok'));
  $('token-cancel').addEventListener('click', () => $('token-dialog').close('cancel'));
  $('csv').addEventListener('click', async (e) => {
    if (!sessionStorage.getItem(TOKEN_KEY)) {
      return;  // the plain link works without a token
    }
    e.preventDefault();
    const res = await api($('csv').getAttribute('href'));
    if (!res.ok) {
      return showMessage(await problemText(res));
    }
    const url = URL.createObjectURL(await res.blob());
    const a = el('a', {href: url, download: 'flowd-summary.csv'});
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  });
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => state.summary && renderChart(), 150);
  });
  syncRangeMode();
  run().then(syncRangeMode);
});
