// pushwire admin page: polls /admin/api/stats every second, draws messages per second on a
// canvas, lists channels, and calls the server API through /admin/api/<method>.
'use strict';

const POLL_MS = 1000;
const CHANNELS_MS = 2000;
const HISTORY_POINTS = 120;

const $ = (id) => document.getElementById(id);
const state = { last: null, series: [], timers: [], cpuLast: null };

async function call(path, body) {
  const init = body === undefined
    ? { method: 'GET', credentials: 'same-origin' }
    : { method: 'POST', credentials: 'same-origin', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) };
  const resp = await fetch(path, init);
  if (resp.status === 401 && !path.endsWith('/login')) {
    showLogin();
    throw new Error('session ended');
  }
  const text = await resp.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (_) { json = null; }
  return { status: resp.status, json, text };
}

/** Calls a server API method; resolves to its result or throws its error. */
async function api(method, params) {
  const r = await call(`/admin/api/${method}`, params);
  if (r.status !== 200) throw new Error(`HTTP ${r.status}: ${r.text}`);
  if (r.json && r.json.error) throw new Error(`${r.json.error.code}: ${r.json.error.message}`);
  return r.json ? r.json.result : null;
}

function fmt(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return '–';
  if (n >= 1e9) return (n / 1e9).toFixed(2) + 'G';
  if (n >= 1e6) return (n / 1e6).toFixed(2) + 'M';
  if (n >= 1e4) return (n / 1e3).toFixed(1) + 'k';
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}

function bytes(n) {
  if (n === null || n === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function duration(s) {
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  return `${m}m ${s % 60}s`;
}

function set(id, text) {
  const el = $(id);
  if (el.textContent !== text) el.textContent = text;
}

async function poll() {
  let r;
  try { r = await call('/admin/api/stats'); } catch (_) { return; }
  if (r.status !== 200 || !r.json) return;
  const s = r.json;
  const now = performance.now();
  let pubRate = 0, msgRate = 0, cpu = null;
  if (state.last) {
    const dt = (now - state.last.at) / 1000;
    if (dt > 0) {
      pubRate = Math.max(0, (s.publications - state.last.s.publications) / dt);
      msgRate = Math.max(0, (s.messages_delivered - state.last.s.messages_delivered) / dt);
      if (s.cpu_seconds !== null && state.last.s.cpu_seconds !== null) {
        cpu = Math.max(0, (s.cpu_seconds - state.last.s.cpu_seconds) / dt) * 100;
      }
    }
  }
  state.last = { at: now, s };
  state.series.push({ pub: pubRate, msg: msgRate });
  if (state.series.length > HISTORY_POINTS) state.series.shift();
  set('node-line', `${s.name} · v${s.version} · ${s.id.slice(0, 8)}`);
  set('stat-connections', fmt(s.connections));
  set('stat-clients', fmt(s.clients));
  set('stat-users', fmt(s.users));
  set('stat-channels', fmt(s.channels));
  set('stat-subscriptions', fmt(s.subscriptions));
  set('stat-pub-rate', fmt(Math.round(pubRate)));
  set('stat-msg-rate', fmt(Math.round(msgRate)));
  set('stat-publications', fmt(s.publications));
  set('stat-slow', fmt(s.slow_disconnects));
  set('stat-rss', bytes(s.resident_bytes));
  set('stat-cpu', cpu === null ? '–' : `${cpu.toFixed(0)} %`);
  set('stat-uptime', duration(s.uptime));
  set('stat-engine', s.engine);
  set('stat-engine-label', s.engine_disk_bytes == null ? 'Engine' : `Engine · ${bytes(s.engine_disk_bytes)} on disk`);
  document.body.dataset.polls = String(Number(document.body.dataset.polls || 0) + 1);
  draw();
}

function draw() {
  const canvas = $('chart');
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== w * ratio || canvas.height !== h * ratio) {
    canvas.width = w * ratio;
    canvas.height = h * ratio;
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const css = getComputedStyle(document.documentElement);
  const colors = { line: css.getPropertyValue('--line'), muted: css.getPropertyValue('--muted'),
    msg: css.getPropertyValue('--accent'), pub: css.getPropertyValue('--accent2') };
  const left = 56, bottom = h - 22, top = 10, right = w - 10;
  const max = Math.max(10, ...state.series.map((p) => Math.max(p.msg, p.pub)));
  const scale = niceCeil(max);
  ctx.font = '11px system-ui, sans-serif';
  ctx.fillStyle = colors.muted;
  ctx.strokeStyle = colors.line;
  ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = bottom - (bottom - top) * i / 4;
    ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(right, y); ctx.stroke();
    ctx.textAlign = 'right'; ctx.textBaseline = 'middle';
    ctx.fillText(fmt(scale * i / 4), left - 6, y);
  }
  ctx.textAlign = 'center'; ctx.textBaseline = 'top';
  for (let s = 0; s <= HISTORY_POINTS; s += 30) {
    const x = right - (right - left) * s / (HISTORY_POINTS - 1);
    ctx.fillText(s === 0 ? 'now' : `-${s}s`, Math.max(left, x), bottom + 6);
  }
  const line = (key, color) => {
    const n = state.series.length;
    if (n < 2) return;
    ctx.strokeStyle = color; ctx.lineWidth = 2; ctx.beginPath();
    state.series.forEach((p, i) => {
      const x = right - (right - left) * (n - 1 - i) / (HISTORY_POINTS - 1);
      const y = bottom - (bottom - top) * Math.min(1, p[key] / scale);
      if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    ctx.stroke();
  };
  line('pub', colors.pub);
  line('msg', colors.msg);
}

function niceCeil(v) {
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

async function refreshChannels() {
  let result;
  try { result = await api('channels', {}); } catch (_) { return; }
  const rows = Object.entries(result.channels || {}).sort((a, b) => b[1].num_clients - a[1].num_clients || a[0].localeCompare(b[0]));
  const body = $('channels-body');
  body.replaceChildren();
  if (!rows.length) {
    const tr = document.createElement('tr');
    const td = document.createElement('td');
    td.colSpan = 3; td.className = 'muted'; td.textContent = 'No channels';
    tr.append(td); body.append(tr);
    return;
  }
  for (const [name, info] of rows.slice(0, 200)) {
    const tr = document.createElement('tr');
    tr.dataset.channel = name;
    const c = document.createElement('td'); c.textContent = name;
    const n = document.createElement('td'); n.className = 'num'; n.textContent = fmt(info.num_clients);
    const a = document.createElement('td');
    const h = document.createElement('button'); h.className = 'link'; h.textContent = 'history';
    h.addEventListener('click', () => { $('history-channel').value = name; showHistory(); });
    const p = document.createElement('button'); p.className = 'link'; p.textContent = 'publish';
    p.addEventListener('click', () => { $('publish-channel').value = name; $('publish-data').focus(); });
    a.append(h, p);
    tr.append(c, n, a);
    body.append(tr);
  }
}

function result(id, ok, text) {
  const el = $(id);
  el.className = `result ${ok ? 'ok' : 'bad'}`;
  el.textContent = text;
}

async function publish(ev) {
  ev.preventDefault();
  const channel = $('publish-channel').value.trim();
  let data;
  try { data = JSON.parse($('publish-data').value); } catch (e) {
    result('publish-result', false, `data is not JSON: ${e.message}`);
    return;
  }
  try {
    const r = await api('publish', { channel, data });
    const where = r && r.offset ? ` at offset ${r.offset}` : '';
    result('publish-result', true, `published to ${channel}${where}`);
  } catch (e) {
    result('publish-result', false, `publish failed: ${e.message}`);
  }
}

async function disconnectUser(ev) {
  ev.preventDefault();
  const user = $('disconnect-user').value.trim();
  try {
    await api('disconnect', { user });
    result('disconnect-result', true, `disconnected ${user}`);
  } catch (e) {
    result('disconnect-result', false, `disconnect failed: ${e.message}`);
  }
}

async function showHistory(ev) {
  if (ev) ev.preventDefault();
  const channel = $('history-channel').value.trim();
  const limit = Number($('history-limit').value) || 20;
  const list = $('history-list');
  list.replaceChildren();
  try {
    const r = await api('history', { channel, limit, reverse: true });
    const pubs = r.publications || [];
    $('history-info').textContent = `${channel}: ${pubs.length} shown · stream offset ${r.offset || 0} · epoch ${r.epoch || '–'}`;
    for (const p of pubs) {
      const li = document.createElement('li');
      li.value = p.offset || 0;
      li.textContent = JSON.stringify(p.data);
      list.append(li);
    }
  } catch (e) {
    $('history-info').textContent = `history failed: ${e.message}`;
  }
}

function stopTimers() {
  state.timers.forEach(clearInterval);
  state.timers = [];
}

function showLogin() {
  stopTimers();
  $('dashboard-view').hidden = true;
  $('logout-button').hidden = true;
  $('login-view').hidden = false;
  $('password').focus();
}

function showDashboard() {
  $('login-view').hidden = true;
  $('dashboard-view').hidden = false;
  $('logout-button').hidden = false;
  stopTimers();
  state.last = null;
  poll();
  refreshChannels();
  state.timers.push(setInterval(poll, POLL_MS), setInterval(refreshChannels, CHANNELS_MS));
}

async function login(ev) {
  ev.preventDefault();
  const r = await call('/admin/api/login', { password: $('password').value });
  if (r.status === 200) {
    $('password').value = '';
    $('login-error').textContent = '';
    showDashboard();
  } else if (r.status === 429) {
    $('login-error').textContent = 'Too many failed attempts: wait a minute.';
  } else {
    $('login-error').textContent = r.status === 401 ? 'Wrong password.' : `Login failed (HTTP ${r.status}).`;
  }
}

async function logout() {
  await call('/admin/api/logout', {});
  showLogin();
}

async function start() {
  $('login-form').addEventListener('submit', login);
  $('logout-button').addEventListener('click', logout);
  $('publish-form').addEventListener('submit', publish);
  $('disconnect-form').addEventListener('submit', disconnectUser);
  $('history-form').addEventListener('submit', showHistory);
  window.addEventListener('resize', draw);
  const r = await call('/admin/api/stats').catch(() => null);
  if (r && r.status === 200) showDashboard(); else showLogin();
}

document.addEventListener('DOMContentLoaded', start);
