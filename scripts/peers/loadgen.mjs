// Load generator for scripts/bench-peers.sh: the two scenarios of `pushwire bench` (idle memory
// per subscribed connection, one-channel fanout latency and loss) against Socket.IO, NATS, or
// pushwire itself (Centrifugo JSON protocol over WebSocket, publishing through /api/publish), so
// the same Node generator can be calibrated against pushwire's own Rust bench.
//
//   node loadgen.mjs --target socketio|nats|pushwire --port PORT --scenario idle|fanout
//                    [--connections 5000] [--rate 20] [--duration 20] [--payload-bytes 64]
//                    [--connect-rate 2000] [--settle 1] [--server-pid PID] [--api-key bench]
//
// Prints one JSON report on stdout with the keys of `pushwire bench --json` that apply
// (connections, publications, deliveries, latency in µs, memory in bytes, machine) plus `cpu`
// (server and generator CPU over the publishing window, % of one core). Progress on stderr.
// Bounded: loopback only, ≤ 20,000 connections, ≤ 120 s, ≤ 1,000 publications/s, ≤ 64 KiB
// payloads, 256 handshakes in flight, 10 s per handshake, 3 s straggler wait, 5 s to close,
// and a watchdog that exits after the planned time + 60 s.
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import os from 'node:os';
import http from 'node:http';

const LIMITS = { connections: 20000, duration: 120, rate: 1000, payload: 65536, settle: 60 };
const MAX_HANDSHAKES = 256;
const HANDSHAKE_TIMEOUT_MS = 10000;
const STRAGGLER_WAIT_MS = 3000;
const CHANNEL = 'bench';
const HOST = '127.0.0.1'; // loopback only, by construction

function parseArgs(argv) {
  const a = {
    target: '', port: 0, scenario: 'fanout', connections: 5000, rate: 20, duration: 20,
    payloadBytes: 64, connectRate: 2000, settle: 1, serverPid: 0, apiKey: 'bench',
  };
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i], v = argv[i + 1];
    if (v === undefined) throw new Error(`missing value for ${k}`);
    switch (k) {
      case '--target': a.target = v; break;
      case '--port': a.port = Number(v); break;
      case '--scenario': a.scenario = v; break;
      case '--connections': a.connections = Number(v); break;
      case '--rate': a.rate = Number(v); break;
      case '--duration': a.duration = Number(v); break;
      case '--payload-bytes': a.payloadBytes = Number(v); break;
      case '--connect-rate': a.connectRate = Number(v); break;
      case '--settle': a.settle = Number(v); break;
      case '--server-pid': a.serverPid = Number(v); break;
      case '--api-key': a.apiKey = v; break;
      default: throw new Error(`unknown option ${k}`);
    }
  }
  if (!['socketio', 'nats', 'pushwire'].includes(a.target)) throw new Error('--target must be socketio, nats or pushwire');
  if (!['idle', 'fanout'].includes(a.scenario)) throw new Error('--scenario must be idle or fanout');
  const int = (name, v, lo, hi) => {
    if (!Number.isInteger(v) || v < lo || v > hi) throw new Error(`${name} must be an integer in ${lo}..${hi}`);
  };
  int('--port', a.port, 1, 65535);
  int('--connections', a.connections, 1, LIMITS.connections);
  int('--rate', a.rate, 1, LIMITS.rate);
  int('--duration', a.duration, 1, LIMITS.duration);
  int('--payload-bytes', a.payloadBytes, 16, LIMITS.payload);
  int('--connect-rate', a.connectRate, 0, 100000);
  int('--settle', a.settle, 0, LIMITS.settle);
  return a;
}

const log = (m) => process.stderr.write(`loadgen: ${m}\n`);
const nowUs = () => performance.now() * 1000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function readRss(pid) {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(s);
  if (!m) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}
function readCpuTicks(pid) {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]); // utime + stime (fields 14, 15)
}
const TICKS = 100; // USER_HZ on Linux

function withTimeout(p, ms, what) {
  let t;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise((_, rej) => { t = setTimeout(() => rej(new Error(`${what} timed out after ${ms} ms`)), ms); }),
  ]);
}

// ---------------------------------------------------------------- drivers
// connect(i, onData, onClose) resolves to { close() } once subscribed; onData(ts, seq) per message.
// publisher() resolves to { publish(obj) -> Promise, close() }.

async function socketioDriver(port) {
  const { io } = await import('socket.io-client');
  const url = `http://${HOST}:${port}`;
  const opts = { transports: ['websocket'], forceNew: true, reconnection: false, timeout: HANDSHAKE_TIMEOUT_MS, perMessageDeflate: false };
  return {
    connect(i, onData, onClose) {
      return new Promise((resolve, reject) => {
        const s = io(url, opts);
        let subscribed = false;
        s.on('m', (d) => onData(d.ts, d.seq));
        s.on('connect_error', (e) => { s.close(); reject(e); });
        s.on('disconnect', () => { if (subscribed) onClose(); });
        s.on('connect', () => s.emit('sub', CHANNEL, () => { subscribed = true; resolve({ close: () => s.close() }); }));
      });
    },
    publisher() {
      return new Promise((resolve, reject) => {
        const s = io(url, opts);
        s.on('connect_error', reject);
        s.on('connect', () => resolve({
          publish: (obj) => withTimeout(new Promise((r) => s.emit('pub', CHANNEL, obj, r)), 5000, 'publish ack'),
          close: () => s.close(),
        }));
      });
    },
  };
}

async function natsDriver(port) {
  const { connect } = await import('nats');
  const opts = { servers: `${HOST}:${port}`, reconnect: false, timeout: HANDSHAKE_TIMEOUT_MS, noEcho: true };
  const dec = new TextDecoder();
  return {
    async connect(i, onData, onClose) {
      const nc = await connect(opts);
      let closing = false;
      nc.subscribe(CHANNEL, {
        callback: (err, m) => {
          if (err) return;
          const d = JSON.parse(dec.decode(m.data));
          onData(d.ts, d.seq);
        },
      });
      nc.closed().then(() => { if (!closing) onClose(); });
      await nc.flush(); // the server has the SUB once the PONG is back
      return { close: () => { closing = true; return nc.close(); } };
    },
    async publisher() {
      const nc = await connect(opts);
      const enc = new TextEncoder();
      return {
        publish: async (obj) => { nc.publish(CHANNEL, enc.encode(JSON.stringify(obj))); },
        close: () => nc.drain(),
      };
    },
  };
}

async function pushwireDriver(port, apiKey) {
  const { default: WebSocket } = await import('ws');
  const url = `ws://${HOST}:${port}/connection/websocket`;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  return {
    connect(i, onData, onClose) {
      return new Promise((resolve, reject) => {
        const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: HANDSHAKE_TIMEOUT_MS });
        let subscribed = false;
        ws.on('open', () => {
          ws.send('{"id":1,"connect":{}}');
          ws.send(`{"id":2,"subscribe":{"channel":"${CHANNEL}"}}`);
        });
        ws.on('message', (buf) => {
          const text = buf.toString();
          for (const line of text.split('\n')) {
            if (line === '' ) continue;
            if (line === '{}') { ws.send('{}'); continue; } // server ping → pong
            const msg = JSON.parse(line);
            if (msg.push) {
              const d = msg.push.pub && msg.push.pub.data;
              if (d) onData(d.ts, d.seq);
            } else if (msg.id === 2) {
              if (msg.error) { reject(new Error(`subscribe: ${JSON.stringify(msg.error)}`)); ws.terminate(); return; }
              subscribed = true;
              resolve({ close: () => ws.close() });
            } else if (msg.error) {
              reject(new Error(`connect: ${JSON.stringify(msg.error)}`)); ws.terminate(); return;
            }
          }
        });
        ws.on('error', (e) => { if (!subscribed) reject(e); });
        ws.on('close', () => { if (subscribed) onClose(); else reject(new Error('closed before subscribe')); });
      });
    },
    async publisher() {
      return {
        publish: (obj) => withTimeout(new Promise((resolve, reject) => {
          const body = JSON.stringify({ channel: CHANNEL, data: obj });
          const req = http.request({
            host: HOST, port, path: '/api/publish', method: 'POST', agent,
            headers: { 'Content-Type': 'application/json', 'X-API-Key': apiKey, 'Content-Length': Buffer.byteLength(body) },
          }, (res) => {
            let out = '';
            res.on('data', (c) => { out += c; });
            res.on('end', () => (res.statusCode === 200 && !out.includes('"error"') ? resolve() : reject(new Error(`publish: ${res.statusCode} ${out}`))));
          });
          req.on('error', reject);
          req.end(body);
        }), 5000, 'publish'),
        close: () => agent.destroy(),
      };
    },
  };
}

// ---------------------------------------------------------------- run

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return Math.round(sorted[idx]);
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const planned = a.scenario === 'fanout' ? a.rate * a.duration : 0;
  const watchdogMs = (a.connections / Math.max(1, a.connectRate || 1000) + a.settle + a.duration + 60) * 1000;
  setTimeout(() => { log('watchdog: run exceeded its time bound, exiting'); process.exit(3); }, watchdogMs).unref();

  const driver = a.target === 'socketio' ? await socketioDriver(a.port)
    : a.target === 'nats' ? await natsDriver(a.port) : await pushwireDriver(a.port, a.apiKey);

  const report = {
    schema_version: 1, generator: 'scripts/peers/loadgen.mjs', target: a.target, scenario: a.scenario,
    complete: false, problems: [],
    params: { connections: a.connections, rate: a.rate, duration_secs: a.duration, payload_bytes: a.payloadBytes, connect_rate: a.connectRate, settle_secs: a.settle },
    machine: { cpus: os.availableParallelism ? os.availableParallelism() : os.cpus().length, load_avg_start: os.loadavg()[0], load_avg_end: null, node: process.version },
    connections: { requested: a.connections, established: 0, errors: 0, first_error: null, dropped: 0, secs: 0, per_sec: 0 },
    publications: null, deliveries: null, latency: null, memory: null, cpu: null,
  };

  const rssBefore = a.serverPid ? readRss(a.serverPid) : null;

  // Per-connection receive state: a bitmap over seq tells first deliveries from duplicates.
  const seen = planned > 0 ? new Uint8Array(a.connections * planned) : null;
  const lat = planned > 0 ? new Float64Array(a.connections * planned) : null;
  let delivered = 0, duplicates = 0, stray = 0;
  const handles = [];
  let closing = false;

  // Open connections, paced at connect-rate, at most MAX_HANDSHAKES in flight.
  log(`opening ${a.connections} connections to ${a.target} on ${HOST}:${a.port}`);
  const t0 = performance.now();
  let inFlight = 0, next = 0;
  await new Promise((done) => {
    let finished = 0;
    const launch = () => {
      while (inFlight < MAX_HANDSHAKES && next < a.connections) {
        if (a.connectRate > 0 && next >= ((performance.now() - t0) / 1000) * a.connectRate) {
          setTimeout(launch, 2);
          return;
        }
        const i = next++;
        inFlight++;
        const onData = (ts, seq) => {
          if (seq === undefined || seq < 0 || seq >= planned) { stray++; return; }
          const k = i * planned + seq;
          if (seen[k]) { duplicates++; return; }
          seen[k] = 1;
          lat[delivered++] = nowUs() - ts;
        };
        const onClose = () => { if (!closing) report.connections.dropped++; };
        withTimeout(driver.connect(i, onData, onClose), HANDSHAKE_TIMEOUT_MS, 'connect + subscribe')
          .then((h) => { handles.push(h); report.connections.established++; })
          .catch((e) => { report.connections.errors++; if (!report.connections.first_error) report.connections.first_error = String(e && e.message || e); })
          .finally(() => { inFlight--; finished++; if (finished === a.connections) done(); else launch(); });
      }
    };
    launch();
  });
  const c = report.connections;
  c.secs = (performance.now() - t0) / 1000;
  c.per_sec = c.established / c.secs;
  log(`${c.established} established, ${c.errors} errors in ${c.secs.toFixed(2)} s${c.first_error ? ` (first: ${c.first_error})` : ''}`);

  if (c.established > 0) await sleep(a.settle * 1000);
  if (a.serverPid) {
    const after = readRss(a.serverPid);
    report.memory = {
      rss_before: rssBefore, rss_after: after, rss_delta: after - rssBefore,
      bytes_per_connection: c.established > 0 ? Math.trunc((after - rssBefore) / c.established) : null,
    };
  }

  if (a.scenario === 'fanout' && c.established > 0) {
    const pub = await withTimeout(driver.publisher(), HANDSHAKE_TIMEOUT_MS, 'publisher connect');
    const pad = 'x'.repeat(Math.max(0, a.payloadBytes - 48));
    const p = { planned, sent: 0, errors: 0, first_error: null, secs: 0, per_sec: 0 };
    report.publications = p;
    const cpu0 = a.serverPid ? readCpuTicks(a.serverPid) : 0;
    const self0 = process.cpuUsage();
    const wall0 = performance.now();
    log(`publishing ${a.rate}/s for ${a.duration} s to ${c.established} subscribers`);
    const pending = [];
    const start = performance.now();
    for (let seq = 0; seq < planned; seq++) {
      const due = start + (seq * 1000) / a.rate;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      const obj = { ts: nowUs(), seq, pad };
      pending.push(pub.publish(obj).then(() => { p.sent++; }, (e) => { p.errors++; if (!p.first_error) p.first_error = String(e && e.message || e); }));
    }
    await Promise.all(pending);
    p.secs = (performance.now() - start) / 1000;
    p.per_sec = p.sent / p.secs;
    const expected = p.sent * c.established;
    const deadline = performance.now() + STRAGGLER_WAIT_MS;
    while (delivered < expected && performance.now() < deadline) await sleep(20);
    const wall = (performance.now() - wall0) / 1000;
    const self = process.cpuUsage(self0);
    report.cpu = {
      window_secs: wall,
      server_pct: a.serverPid ? (100 * (readCpuTicks(a.serverPid) - cpu0)) / TICKS / wall : null,
      loadgen_pct: (100 * (self.user + self.system)) / 1e6 / wall,
    };
    report.deliveries = {
      expected, delivered, lost: Math.max(0, expected - delivered), duplicates, stray,
      loss_ratio: expected > 0 ? Math.max(0, expected - delivered) / expected : 0,
      per_sec: delivered / p.secs,
    };
    const sorted = lat.subarray(0, delivered).sort();
    let sum = 0;
    for (let k = 0; k < sorted.length; k++) sum += sorted[k];
    report.latency = {
      samples: sorted.length, mean_us: sorted.length ? Math.round(sum / sorted.length) : null,
      p50_us: percentile(sorted, 50), p90_us: percentile(sorted, 90), p99_us: percentile(sorted, 99),
      p999_us: percentile(sorted, 99.9), max_us: sorted.length ? Math.round(sorted[sorted.length - 1]) : null,
    };
    await Promise.resolve(pub.close()).catch(() => {});
  }

  report.machine.load_avg_end = os.loadavg()[0];
  if (c.errors) report.problems.push(`${c.errors} connect errors (first: ${c.first_error})`);
  if (c.dropped) report.problems.push(`${c.dropped} connections dropped`);
  if (report.publications && report.publications.errors) report.problems.push(`${report.publications.errors} publish errors (first: ${report.publications.first_error})`);
  if (report.deliveries && report.deliveries.lost) report.problems.push(`${report.deliveries.lost} deliveries lost`);
  if (report.deliveries && report.deliveries.duplicates) report.problems.push(`${report.deliveries.duplicates} duplicates`);
  report.complete = report.problems.length === 0;
  report.exit_code = report.complete ? 0 : 2;

  log('closing connections');
  closing = true;
  await withTimeout(Promise.allSettled(handles.map((h) => Promise.resolve().then(() => h.close()))), 5000, 'close').catch(() => {});
  process.stdout.write(`${JSON.stringify(report)}\n`);
  process.exit(report.exit_code);
}

main().catch((e) => { log(`error: ${e && e.stack || e}`); process.exit(1); });
