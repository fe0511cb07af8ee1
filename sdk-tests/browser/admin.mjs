// The admin page in headless Chromium (playwright-core driving Debian's /usr/bin/chromium):
// `node admin.mjs <password> [screenshot.png]`.
//
// Logs in (a wrong password first), watches the counters move when a WebSocket client of this
// script connects and subscribes, publishes from the page and checks the client receives it,
// reads the channel's history on the page, and disconnects the user from the page. With a
// screenshot path, it then runs some load (subscribers and publications) and saves a
// screenshot of the page under load.

import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { chromium } from 'playwright-core';
import WebSocket from 'ws';

import { api, env, log, main, sleep, tokenFor, unique } from './lib.mjs';

const CHROMIUM = process.env.PUSHWIRE_CHROMIUM || '/usr/bin/chromium';
const password = process.argv[2];
const screenshot = process.argv[3];

/** A raw protocol client over `ws`: connect, subscribe, collect pushes, answer pings. */
async function wsClient(user, channels) {
  const ws = new WebSocket(env.wsUrl);
  const client = { ws, pubs: [], closed: null, replies: new Map() };
  ws.on('message', (data) => {
    for (const line of data.toString().split('\n').filter(Boolean)) {
      const m = JSON.parse(line);
      if (m.id) client.replies.set(m.id, m);
      else if (m.push && m.push.pub) client.pubs.push({ channel: m.push.channel, data: m.push.pub.data });
      else if (Object.keys(m).length === 0) ws.send('{}');
    }
  });
  ws.on('close', (code) => { client.closed = code; });
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  let id = 0;
  const command = async (body) => {
    id += 1;
    const mine = id;
    ws.send(JSON.stringify({ id: mine, ...body }));
    for (let i = 0; i < 500 && !client.replies.has(mine); i++) await sleep(10);
    const reply = client.replies.get(mine);
    if (!reply || reply.error) throw new Error(`command ${JSON.stringify(body)} failed: ${JSON.stringify(reply)}`);
    return reply;
  };
  await command({ connect: { token: tokenFor(user) } });
  for (const channel of channels) await command({ subscribe: { channel } });
  return client;
}

async function until(what, fn, ms = 20000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const v = await fn();
    if (v) {
      log(`ok: ${what}`);
      return v;
    }
    await sleep(50);
  }
  throw new Error(`timed out after ${ms} ms waiting until ${what}`);
}

const number = async (page, id) => Number((await page.textContent(`#${id}`)).replace(/[^0-9.]/g, ''));

main('admin', async () => {
  if (!password) throw new Error('usage: node admin.mjs <password> [screenshot.png]');
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run scripts/setup-browser.sh`);
  const profile = mkdtempSync(path.join(tmpdir(), 'pushwire-admin-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 1100 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const result = {};
  try {
    const page = context.pages()[0] || (await context.newPage());
    page.on('console', (m) => log(`page ${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => log(`page error: ${e}`));
    const external = [];
    page.on('request', (r) => { if (!r.url().startsWith(env.httpUrl)) external.push(r.url()); });
    await page.goto(`${env.httpUrl}/admin`);
    result.userAgent = await page.evaluate(() => navigator.userAgent);

    // Log in: a wrong password first.
    await page.waitForSelector('#login-form', { state: 'visible' });
    await page.fill('#password', `${password}-wrong`);
    await page.click('#login-button');
    await page.waitForFunction(() => document.getElementById('login-error').textContent.includes('Wrong password'));
    result.wrongPassword = await page.textContent('#login-error');
    await page.fill('#password', password);
    await page.click('#login-button');
    await page.waitForSelector('#dashboard-view', { state: 'visible' });
    await page.waitForFunction(() => Number(document.body.dataset.polls || 0) >= 2);
    result.cookies = (await context.cookies()).map((c) => ({ name: c.name, httpOnly: c.httpOnly, sameSite: c.sameSite }));
    result.cookieReadableByScript = await page.evaluate(() => document.cookie.includes('pushwire_admin'));

    // Counters move when a client connects and subscribes.
    const clientsBefore = await number(page, 'stat-clients');
    const subsBefore = await number(page, 'stat-subscriptions');
    const channel = unique('chat:admin-');
    const user = unique('watcher-');
    const client = await wsClient(user, [channel]);
    result.clientsBefore = clientsBefore;
    result.clientsAfter = await until('the page counts the new client', async () => {
      const n = await number(page, 'stat-clients');
      return n === clientsBefore + 1 ? n : 0;
    });
    result.subscriptionsAfter = await until('the page counts its subscription', async () => {
      const n = await number(page, 'stat-subscriptions');
      return n === subsBefore + 1 ? n : 0;
    });
    result.channelRow = await until('the channel is listed with one subscriber', async () => {
      const row = await page.$(`#channels-body tr[data-channel="${channel}"]`);
      return row ? (await row.textContent()) : null;
    });

    // Publish from the page; the client receives it.
    const payload = { from: 'admin page', n: 42 };
    await page.fill('#publish-channel', channel);
    await page.fill('#publish-data', JSON.stringify(payload));
    await page.click('#publish-button');
    const got = await until('the client receives the page publication', async () => client.pubs.find((p) => p.channel === channel));
    result.received = got.data;
    // The publication can reach the client before the page has handled its own API answer.
    result.publishResult = await until('the page shows the publish result', async () => (await page.textContent('#publish-result')) || null);
    const pubRate = await until('the page shows publications counted', async () => (await number(page, 'stat-publications')) || 0);
    result.publications = pubRate;

    // History of the channel, on the page.
    await page.fill('#history-channel', channel);
    await page.click('#history-button');
    await page.waitForSelector('#history-list li');
    result.history = await page.$$eval('#history-list li', (lis) => lis.map((li) => li.textContent));

    // Disconnect the user from the page.
    await page.fill('#disconnect-user', user);
    await page.click('#disconnect-button');
    result.disconnectCode = await until('the client is disconnected', async () => client.closed);
    result.disconnectResult = await until('the page shows the disconnect result', async () => (await page.textContent('#disconnect-result')) || null);
    await until('the page counts the client gone', async () => (await number(page, 'stat-clients')) === clientsBefore);

    if (screenshot) {
      // Load: subscribers on a few channels, publications through the API for a while.
      const channels = ['chat:lobby', 'chat:news', 'chat:sports', 'prices:eurusd'.replace('prices:', 'ticks-')];
      const clients = [];
      for (let i = 0; i < 24; i++) clients.push(await wsClient(`user-${i % 9}`, channels.slice(0, 1 + (i % channels.length))));
      const stop = Date.now() + 9000;
      let n = 0;
      while (Date.now() < stop) {
        const batch = [];
        for (const ch of channels) batch.push(api('publish', { channel: ch, data: { n: n++, text: 'load' } }));
        await Promise.all(batch);
        await sleep(15);
      }
      await page.fill('#history-channel', 'chat:news');
      await page.fill('#history-limit', '8');
      await page.click('#history-button');
      await page.waitForSelector('#history-list li');
      await page.fill('#publish-channel', 'chat:lobby');
      await page.screenshot({ path: screenshot, fullPage: true });
      result.screenshot = screenshot;
      result.loadPublications = n;
      clients.forEach((c) => c.ws.close());
    }
    client.ws.close();
    result.external = external;
    return result;
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
}, 55000);
