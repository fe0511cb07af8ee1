// Load generator for scripts/bench-proxy.sh, raw Centrifugo JSON protocol over `ws`
// (NODE_PATH=sdk-tests/node_modules), connections authenticated with HS256 tokens (secret
// "bench"). Prints one JSON line: calls, errors, calls/s, p50 and p99 in ms.
//
//   node load.cjs rpc URL METHOD CONNS SECONDS       closed-loop rpc calls per connection
//   node load.cjs subscribe URL PREFIX CONNS COUNT   COUNT subscribes per connection, in turn
//
// An rpc to a method namespace `local:` expects an error other than 111 (no proxy there: the
// node answers at once); any other call counts as an error unless it succeeds. The first error
// reply is in the report.
const WebSocket = require("ws");
const crypto = require("crypto");

const [mode, url, target, connsArg, amountArg] = process.argv.slice(2);
const conns = Number(connsArg);
const amount = Number(amountArg);

const b64 = (b) => Buffer.from(b).toString("base64url");
function token(sub) {
  const head = b64(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const body = b64(JSON.stringify({ sub, exp: Math.floor(Date.now() / 1000) + 3600 }));
  const sig = crypto.createHmac("sha256", "bench").update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${sig}`;
}

function client(i) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const waiting = new Map();
    let next = 1;
    ws.on("message", (raw) => {
      for (const line of raw.toString().split("\n")) {
        if (!line) continue;
        const m = JSON.parse(line);
        if (!m.id) {
          if (Object.keys(m).length === 0) ws.send("{}"); // ping → pong
          continue;
        }
        const done = waiting.get(m.id);
        waiting.delete(m.id);
        if (done) done(m);
      }
    });
    const call = (cmd) =>
      new Promise((done) => {
        const id = next++;
        waiting.set(id, done);
        ws.send(JSON.stringify({ id, ...cmd }));
      });
    ws.on("error", reject);
    ws.on("open", async () => {
      const r = await call({ connect: { token: token(`u${i}`) } });
      if (!r.connect) reject(new Error(`connect: ${JSON.stringify(r)}`));
      else resolve({ ws, call });
    });
  });
}

const pct = (sorted, p) =>
  sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] : 0;

(async () => {
  const clients = await Promise.all([...Array(conns).keys()].map(client));
  const latencies = [];
  let errors = 0;
  let firstError = null;
  const started = process.hrtime.bigint();
  const elapsedMs = () => Number(process.hrtime.bigint() - started) / 1e6;
  const timed = async (call, cmd) => {
    const t = process.hrtime.bigint();
    const r = await call(cmd);
    latencies.push(Number(process.hrtime.bigint() - t) / 1e6);
    return r;
  };
  await Promise.all(
    clients.map(async ({ call }, i) => {
      if (mode === "rpc") {
        while (elapsedMs() < amount * 1000) {
          const r = await timed(call, { rpc: { method: target, data: { i } } });
          const ok = target.startsWith("local:") ? r.error && r.error.code !== 111 : r.rpc;
          if (!ok) {
            errors++;
            if (!firstError) firstError = r;
          }
        }
      } else {
        for (let j = 0; j < amount; j++) {
          const r = await timed(call, { subscribe: { channel: `${target}${i}-${j}` } });
          if (!r.subscribe) errors++;
        }
      }
    }),
  );
  const seconds = elapsedMs() / 1000;
  latencies.sort((a, b) => a - b);
  console.log(
    JSON.stringify({
      mode,
      target,
      conns,
      calls: latencies.length,
      errors,
      per_sec: Math.round(latencies.length / seconds),
      p50_ms: +pct(latencies, 0.5).toFixed(2),
      p99_ms: +pct(latencies, 0.99).toFixed(2),
      first_error: firstError,
    }),
  );
  clients.forEach(({ ws }) => ws.close());
  process.exit(0);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
