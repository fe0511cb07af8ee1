// Summarizes the JSON reports of scripts/bench-peers.sh (CASE__SERVER__RUN.json in OUT, from
// `pushwire bench --json` or scripts/peers/loadgen.mjs, same keys) into one table: each cell is
// the median of the runs with (min–max). Usage: node summarize.mjs OUT [--markdown]
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.argv[2];
const markdown = process.argv.includes('--markdown');
if (!dir) { console.error('usage: node summarize.mjs OUT [--markdown]'); process.exit(1); }

const groups = new Map();
for (const f of readdirSync(dir).filter((n) => n.endsWith('.json')).sort()) {
  const [kase, server] = f.replace(/\.json$/, '').split('__');
  let r = null;
  try { r = JSON.parse(readFileSync(join(dir, f), 'utf8')); } catch { /* no report: counted as failed */ }
  const key = `${kase}__${server}`;
  if (!groups.has(key)) groups.set(key, { kase, server, reports: [], failed: 0 });
  if (r && r.connections) groups.get(key).reports.push(r); else groups.get(key).failed++;
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const fmt = (v, digits) => v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
function cell(xs, digits = 1) {
  const v = xs.filter((x) => x !== null && x !== undefined && Number.isFinite(x));
  if (v.length === 0) return '-';
  if (v.length === 1) return fmt(v[0], digits);
  return `${fmt(median(v), digits)} (${fmt(Math.min(...v), digits)}–${fmt(Math.max(...v), digits)})`;
}
const ms = (us) => (us === null || us === undefined ? null : us / 1000);
const order = ['pushwire', 'pushwire-node', 'socketio', 'nats'];
const label = { pushwire: 'pushwire (Rust bench)', 'pushwire-node': 'pushwire (Node loadgen)', socketio: 'Socket.IO', nats: 'NATS' };
const sorted = [...groups.values()].sort((a, b) => (a.kase === b.kase ? order.indexOf(a.server) - order.indexOf(b.server) : a.kase.localeCompare(b.kase)));

const header = ['case', 'server', 'runs', 'established', 'conn errors', 'B/conn', 'expected', 'lost', 'dup', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'server CPU %', 'loadgen CPU %', 'load avg'];
const rows = sorted.map((g) => {
  const R = g.reports;
  const d = (f) => R.map((r) => (r.deliveries ? f(r.deliveries) : null));
  const l = (k) => R.map((r) => (r.latency ? ms(r.latency[k]) : null));
  const loads = R.flatMap((r) => [r.machine && r.machine.load_avg_start, r.machine && r.machine.load_avg_end]).filter((x) => typeof x === 'number');
  return [
    g.kase, label[g.server] || g.server, `${R.length}${g.failed ? ` (+${g.failed} failed)` : ''}`,
    cell(R.map((r) => r.connections.established), 0), cell(R.map((r) => r.connections.errors), 0),
    g.kase === 'memory' ? cell(R.map((r) => (r.memory ? r.memory.bytes_per_connection : null)), 0) : '-',
    cell(d((x) => x.expected), 0), cell(d((x) => x.lost), 0), cell(d((x) => x.duplicates), 0),
    cell(l('p50_us')), cell(l('p90_us')), cell(l('p99_us')), cell(l('max_us')),
    cell(R.map((r) => (r.cpu ? r.cpu.server_pct : null)), 0), cell(R.map((r) => (r.cpu ? r.cpu.loadgen_pct : null)), 0),
    loads.length ? `${fmt(Math.min(...loads), 2)}–${fmt(Math.max(...loads), 2)}` : '-',
  ];
});

if (markdown) {
  console.log(`| ${header.join(' | ')} |`);
  console.log(`|${header.map(() => '---').join('|')}|`);
  for (const r of rows) console.log(`| ${r.join(' | ')} |`);
} else {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (r) => r.map((c, i) => String(c).padEnd(widths[i])).join('  ');
  console.log(line(header));
  for (const r of rows) console.log(line(r));
}
