// Headless Chromium (playwright-core driving Debian's /usr/bin/chromium) against pushwire:
// `node browser.mjs <case>`.
//
// The page comes from a tiny static server on 127.0.0.1:0 started here (an origin the test
// configuration allows: http://127.0.0.1:*), so every connection is cross-origin, as for a real
// site: CORS preflights, `Origin` checks and the absolute emulation endpoint are exercised.
//
// Cases:
// - sdk-websocket, sdk-http_stream, sdk-sse: centrifuge-js (the browser bundle from
//   node_modules/centrifuge/dist) runs scenario.mjs over that transport;
// - eventsource-uni-sse: a plain EventSource on /connection/uni_sse (pages/uni-sse.mjs) receives
//   every publication across a server-side disconnect;
// - long-poll-fetch: a plain fetch loop on /connection/long_poll (pages/long-poll.mjs) receives
//   every publication across a server-side disconnect and a restart of its loop;
// - sdk-delta: centrifuge-js over WebSocket with `delta: 'fossil'` (scenario.mjs
//   `deltaScenario`): 200 publications reconstructed exactly, across a recovery;
// - deflate: with websocket.compression on, a raw WebSocket in the page (which offers
//   permessage-deflate, as Chromium always does) reports the negotiated extension and receives
//   ~2 KB documents published through the API and one it publishes itself (Chromium compresses
//   what it sends); a centrifuge-js client on the same channel receives them all too;
// - cookie-connect-proxy: the page sets a session cookie and centrifuge-js connects without a
//   token; the browser sends the cookie with the WebSocket upgrade and pushwire's connect proxy
//   forwards it to the backend (crates/pushwire-server/tests/proxies.rs), which names the user.
//
// The server API is called from Node (the page gets `window.pushwireApi`), never from the page.

import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

import { api, env, log, main, sleep, tokenFor, unique } from './lib.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const CHROMIUM = process.env.PUSHWIRE_CHROMIUM || '/usr/bin/chromium';
const which = process.argv[2];

/** Serves the page, the centrifuge browser bundle and the page modules. */
async function staticServer() {
  const files = {
    '/centrifuge.js': path.join(here, 'node_modules/centrifuge/dist/centrifuge.js'),
    '/scenario.mjs': path.join(here, 'scenario.mjs'),
    '/pages/uni-sse.mjs': path.join(here, 'pages/uni-sse.mjs'),
    '/pages/long-poll.mjs': path.join(here, 'pages/long-poll.mjs'),
  };
  const page =
    '<!doctype html><html><head><meta charset="utf-8"><title>pushwire transports</title>' +
    '<script src="/centrifuge.js"></script></head><body>pushwire transports</body></html>';
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    if (url.pathname === '/') {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
      res.end(page);
      return;
    }
    if (url.pathname === '/favicon.ico') {
      res.writeHead(204).end();
      return;
    }
    const file = files[url.pathname];
    if (!file) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'Content-Type': 'text/javascript; charset=utf-8' });
    res.end(readFileSync(file));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

/** Launches Chromium with a fresh profile and opens the page. */
async function openPage(origin) {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: run scripts/setup-browser.sh`);
  }
  const profile = mkdtempSync(path.join(tmpdir(), 'pushwire-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  const page = context.pages()[0] || (await context.newPage());
  page.on('console', (m) => log(`page ${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => log(`page error: ${e}`));
  page.on('requestfailed', (r) => log(`request failed: ${r.method()} ${r.url()} ${r.failure()?.errorText}`));
  await page.exposeFunction('pushwireApi', (method, body) => api(method, body));
  await page.goto(`${origin}/`);
  const close = async () => {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  };
  return { page, close };
}

/** Waits until `fn(arg)` is truthy in the page; throws naming `what` after `ms`. */
async function waitIn(page, what, fn, arg, ms = 10000) {
  try {
    await page.waitForFunction(fn, arg, { timeout: ms, polling: 50 });
  } catch (e) {
    throw new Error(`timed out after ${ms} ms waiting until ${what}: ${e.message.split('\n')[0]}`);
  }
  log(`ok: ${what}`);
}

function checkEqual(actual, expected, what) {
  if (JSON.stringify(actual) !== JSON.stringify(expected)) {
    throw new Error(
      `check failed: ${what}: got ${JSON.stringify(actual)}, want ${JSON.stringify(expected)}`,
    );
  }
  log(`ok: ${what} = ${JSON.stringify(actual)}`);
}

async function publish(channel, n) {
  const answer = await api('publish', { channel, data: { n } });
  log(`API publish ${n} -> ${JSON.stringify(answer.result)}`);
}

async function disconnect(user) {
  const answer = await api('disconnect', {
    user,
    disconnect: { code: 3011, reason: 'force reconnect' },
  });
  log(`API disconnect ${user} -> ${JSON.stringify(answer)}`);
}

const sdkTransports = {
  'sdk-websocket': { transport: 'websocket', endpoint: env.wsUrl },
  'sdk-http_stream': { transport: 'http_stream', endpoint: `${env.httpUrl}/connection/http_stream` },
  'sdk-sse': { transport: 'sse', endpoint: `${env.httpUrl}/connection/sse` },
};

async function sdkCase(page) {
  const entry = sdkTransports[which];
  const user = unique('user-');
  const args = {
    endpoints: [entry],
    emulationEndpoint: `${env.httpUrl}/emulation`,
    expectTransport: entry.transport,
    token: tokenFor(user),
    user,
    channel: unique('chat:'),
  };
  const result = await page.evaluate(async (a) => {
    const s = await import('/scenario.mjs');
    return s.recoveryScenario({
      ...a,
      Centrifuge: globalThis.Centrifuge,
      options: { emulationEndpoint: a.emulationEndpoint },
      api: (m, b) => window.pushwireApi(m, b),
      log: (line) => console.log(line),
    });
  }, args);
  return { ...result, userAgent: await page.evaluate(() => navigator.userAgent) };
}

async function deltaCase(page) {
  const user = unique('user-');
  const args = {
    endpoints: env.wsUrl,
    token: tokenFor(user),
    user,
    channel: unique('delta:'),
    plainChannel: unique('chat:'),
  };
  const result = await page.evaluate(async (a) => {
    const s = await import('/scenario.mjs');
    return s.deltaScenario({
      ...a,
      Centrifuge: globalThis.Centrifuge,
      options: {},
      api: (m, b) => window.pushwireApi(m, b),
      log: (line) => console.log(line),
    });
  }, args);
  return { case: which, ...result, userAgent: await page.evaluate(() => navigator.userAgent) };
}

function deflateDocument(seq) {
  const rows = [];
  for (let i = 0; i < 20; i++) {
    rows.push({ id: i, name: `instrument ${i} – Zürich €`, venue: 'primary exchange, continuous', price: 1000 + i + seq });
  }
  return { seq, rows };
}

async function deflateCase(page) {
  const user = unique('user-');
  const channel = unique('chat:');
  await page.evaluate(async (a) => {
    const state = { extensions: null, raw: [], sdk: [], replies: [] };
    window.dfl = state;
    const ws = new WebSocket(a.wsUrl, 'centrifuge-json');
    state.ws = ws;
    ws.onmessage = (e) => {
      for (const line of e.data.split('\n')) {
        if (!line) continue;
        const m = JSON.parse(line);
        if (Object.keys(m).length === 0) {
          ws.send('{}');
        } else if (m.push && m.push.pub) {
          state.raw.push(m.push.pub.data);
        } else if (m.id) {
          state.replies.push(m);
        }
      }
    };
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = () => reject(new Error('websocket error'));
    });
    state.extensions = ws.extensions;
    ws.send(`${JSON.stringify({ id: 1, connect: { token: a.token } })}\n${JSON.stringify({ id: 2, subscribe: { channel: a.channel } })}`);
    const client = new globalThis.Centrifuge(a.wsUrl, { token: a.token });
    const sub = client.newSubscription(a.channel);
    sub.on('publication', (ctx) => state.sdk.push(ctx.data));
    const subscribed = new Promise((resolve) => sub.on('subscribed', resolve));
    sub.subscribe();
    client.connect();
    await subscribed;
  }, { wsUrl: env.wsUrl, token: tokenFor(user), channel });
  await waitIn(page, 'the raw client is connected and subscribed', () => window.dfl.replies.length >= 2);
  const docs = [];
  for (let seq = 1; seq <= 10; seq++) {
    docs.push(deflateDocument(seq));
    await api('publish', { channel, data: deflateDocument(seq) });
  }
  docs.push(deflateDocument(11));
  await page.evaluate((a) => {
    window.dfl.ws.send(JSON.stringify({ id: 3, publish: { channel: a.channel, data: a.doc } }));
  }, { channel, doc: deflateDocument(11) });
  await waitIn(page, '11 publications on both clients', () => window.dfl.raw.length >= 11 && window.dfl.sdk.length >= 11);
  const state = await page.evaluate(() => {
    const s = window.dfl;
    return { extensions: s.extensions, raw: s.raw, sdk: s.sdk, replies: s.replies };
  });
  checkEqual(state.replies.filter((r) => r.error), [], 'no error replies');
  if (JSON.stringify(state.raw) !== JSON.stringify(docs) || JSON.stringify(state.sdk) !== JSON.stringify(docs)) {
    throw new Error(`publications differ: raw ${JSON.stringify(state.raw).length} B, sdk ${JSON.stringify(state.sdk).length} B`);
  }
  log('ok: 11 documents exact on both clients');
  return { case: which, extensions: state.extensions, received: state.raw.length, userAgent: await page.evaluate(() => navigator.userAgent) };
}

async function uniSseCase(page) {
  const user = unique('user-');
  const channel = unique('chat:');
  await page.evaluate(async (a) => {
    window.uni = await import('/pages/uni-sse.mjs');
    window.uni.start(a);
  }, { httpUrl: env.httpUrl, channel, token: tokenFor(user) });
  await waitIn(page, 'connected', () => window.uni.state.connects.length >= 1);
  for (const n of [1, 2, 3]) {
    await publish(channel, n);
  }
  await waitIn(page, '3 live publications', () => window.uni.state.received.length >= 3);
  await disconnect(user);
  await waitIn(page, 'the stream ended', () => window.uni.state.errors >= 1);
  for (const n of [4, 5, 6]) {
    await publish(channel, n);
  }
  await waitIn(
    page,
    'the EventSource reconnected by itself and recovered',
    () => window.uni.state.connects.length >= 2 && window.uni.state.received.length >= 6,
  );
  await publish(channel, 7);
  await waitIn(page, 'a live publication after recovery', () => window.uni.state.received.length >= 7);
  await sleep(200);
  const state = await page.evaluate(() => window.uni.state);
  log(`page state ${JSON.stringify(state)}`);
  checkEqual(state.received.map((p) => p.offset), [1, 2, 3, 4, 5, 6, 7], 'offsets');
  checkEqual(state.received.map((p) => p.data.n), [1, 2, 3, 4, 5, 6, 7], 'data');
  checkEqual(
    state.received.map((p) => p.recovered),
    [false, false, false, true, true, true, false],
    'which were recovered',
  );
  checkEqual(state.disconnects.map((d) => d.code), [3011], 'disconnect pushes');
  checkEqual(
    [state.connects[1].wasRecovering, state.connects[1].recovered, state.connects[1].count],
    [true, true, 3],
    'second connect recovered 3',
  );
  return { case: which, channel, offsets: state.received.map((p) => p.offset), recovered: true, opens: state.opens };
}

async function longPollCase(page) {
  const user = unique('user-');
  const channel = unique('chat:');
  await page.evaluate(async (a) => {
    window.lp = await import('/pages/long-poll.mjs');
    window.lp.start(a);
  }, { httpUrl: env.httpUrl, channel, token: tokenFor(user) });
  await waitIn(page, 'the first answer gave the position', () => window.lp.state.answers.length >= 1);
  for (const n of [1, 2, 3]) {
    await publish(channel, n);
    await sleep(100);
  }
  await waitIn(page, '3 publications', () => window.lp.state.received.length >= 3);
  await sleep(300);
  const before = await page.evaluate(() => window.lp.state.answers.length);
  const cutAt = Date.now();
  await disconnect(user);
  await waitIn(
    page,
    'the held poll was ended by the server',
    (n) => window.lp.state.answers.length > n,
    before,
    5000,
  );
  const cutMs = Date.now() - cutAt;
  log(`the held poll ended ${cutMs} ms after the disconnect (its timeout is 10 s)`);
  for (const n of [4, 5]) {
    await publish(channel, n);
  }
  await waitIn(page, '5 publications', () => window.lp.state.received.length >= 5);
  await page.evaluate(() => window.lp.stop());
  log('loop stopped');
  for (const n of [6, 7]) {
    await publish(channel, n);
  }
  await page.evaluate(() => window.lp.restart());
  log('loop restarted');
  await waitIn(page, 'the missed 6 and 7', () => window.lp.state.received.length >= 7);
  await publish(channel, 8);
  await waitIn(page, 'a live publication', () => window.lp.state.received.length >= 8);
  await page.evaluate(() => window.lp.stop());
  const state = await page.evaluate(() => window.lp.state);
  log(`page state ${JSON.stringify({ ...state, answers: state.answers.slice(-12) })}`);
  checkEqual(state.received.map((p) => p.offset), [1, 2, 3, 4, 5, 6, 7, 8], 'offsets');
  checkEqual(state.received.map((p) => p.data.n), [1, 2, 3, 4, 5, 6, 7, 8], 'data');
  checkEqual(state.answers.filter((a) => a.reload).length, 0, 'reloads');
  checkEqual(state.errors, [], 'errors');
  return { case: which, channel, offsets: state.received.map((p) => p.offset), polls: state.polls, cutMs };
}

async function cookieCase(page) {
  // Cookies belong to the host, not the port: the page's cookie goes to pushwire too.
  const result = await page.evaluate(async (wsUrl) => {
    document.cookie = 'session=carol; path=/';
    const client = new globalThis.Centrifuge(wsUrl);
    const connected = new Promise((resolve, reject) => {
      client.on('connected', resolve);
      client.on('disconnected', (ctx) => reject(new Error(`disconnected ${ctx.code} ${ctx.reason}`)));
    });
    client.connect();
    const ctx = await connected;
    const rpc = await client.rpc('echo', { from: 'chromium' });
    client.disconnect();
    return { data: ctx.data, client: ctx.client, rpc: rpc.data };
  }, env.wsUrl);
  log(`page result ${JSON.stringify(result)}`);
  checkEqual(result.data, { hello: 'carol' }, 'connect data from the backend');
  checkEqual(result.rpc, { echo: { from: 'chromium' }, user: 'carol' }, 'rpc as the cookie user');
  return { case: which, ...result, userAgent: await page.evaluate(() => navigator.userAgent) };
}

main(`browser ${which}`, async () => {
  let run;
  if (sdkTransports[which]) {
    run = sdkCase;
  } else if (which === 'sdk-delta') {
    run = deltaCase;
  } else if (which === 'deflate') {
    run = deflateCase;
  } else if (which === 'eventsource-uni-sse') {
    run = uniSseCase;
  } else if (which === 'long-poll-fetch') {
    run = longPollCase;
  } else if (which === 'cookie-connect-proxy') {
    run = cookieCase;
  } else {
    throw new Error(`unknown case ${which}`);
  }
  const server = await staticServer();
  const origin = `http://127.0.0.1:${server.address().port}`;
  log(`page origin ${origin}, server ${env.httpUrl}`);
  const { page, close } = await openPage(origin);
  try {
    return await run(page);
  } finally {
    await close();
    server.close();
  }
});
