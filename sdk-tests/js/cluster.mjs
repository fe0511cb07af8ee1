// Cluster scenario: one centrifuge-js client over HTTP-streaming or SSE emulation through a load
// balancer that sends every request (stream, /emulation POSTs, API calls) to any node.
//
//   node js/cluster.mjs <transport> <channel> <user> [token]
//
// - transport: http_stream | sse (| websocket); the endpoint is
//   `<PUSHWIRE_HTTP_URL>/connection/<transport>`, emulation `<PUSHWIRE_HTTP_URL>/emulation`;
// - channel: in a namespace with history (>= 120) and force_recovery;
// - user, token: the connection token's user (`sub`); without a token one is signed with
//   PUSHWIRE_SECRET;
// - env: PUSHWIRE_HTTP_URL (the balancer), PUSHWIRE_API_KEY, PUSHWIRE_API_URL (optional,
//   default PUSHWIRE_HTTP_URL): publishes are `POST <api>/api/publish` with `X-API-Key`.
//
// Steps: connect and subscribe; publish {"n":0..99}, which must arrive in order exactly once;
// `POST /api/disconnect {"user", "disconnect": {"code": 4000}}` (4000-4499: the SDK
// reconnects); while the client waits to reconnect publish {"n":100..119}; after the reconnect
// the subscription must report wasRecovering and recovered, and deliver 100..119 in order with
// no duplicate. Prints `RESULT <json>` and exits 0, or `FAIL: <reason>` and exits 1 (also after
// 60 s).

import { EventSource } from 'eventsource';
import WebSocket from 'ws';
import { Centrifuge } from 'centrifuge';

import {
  check,
  checkEqual,
  env,
  hs256,
  log,
  main,
  recordClient,
  recordSubscription,
} from './lib.mjs';

const [transport, channel, user, givenToken] = process.argv.slice(2);
const apiUrl = process.env.PUSHWIRE_API_URL || env.httpUrl;
const DISCONNECT_CODE = 4000;
const FIRST = 100;
const AWAY = 20;

/** `POST <api>/api/<method>`; returns `result`, throws on any error. */
async function api(method, body) {
  const resp = await fetch(`${apiUrl}/api/${method}`, {
    method: 'POST',
    headers: { 'X-API-Key': env.apiKey, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
  });
  const text = await resp.text();
  if (resp.status !== 200) {
    throw new Error(`${method} ${JSON.stringify(body)}: HTTP ${resp.status} ${text}`);
  }
  const reply = JSON.parse(text);
  if (reply.error) {
    throw new Error(`${method} ${JSON.stringify(body)}: error ${JSON.stringify(reply.error)}`);
  }
  return reply.result;
}

/**
 * Checks that `pubs` is exactly {n: i, offset: offsets[i]} for every i, in order; a failure
 * names the first difference.
 */
function checkSequence(pubs, offsets, what) {
  for (let i = 0; i < Math.max(pubs.length, offsets.length); i += 1) {
    const want = i < offsets.length ? { n: i, offset: offsets[i] } : 'nothing more';
    if (JSON.stringify(pubs[i]) !== JSON.stringify(want)) {
      throw new Error(
        `check failed: ${what}: publication #${i} is ${JSON.stringify(pubs[i])}, ` +
          `want ${JSON.stringify(want)} (received ${pubs.length}, published ${offsets.length})`,
      );
    }
  }
  log(`ok: ${what}: each exactly once, in order, offsets as published`);
}

/** Publications as they arrive, with a waiter for a count. */
class Received {
  constructor() {
    this.pubs = [];
    this.waiter = null;
  }

  push(ctx) {
    this.pubs.push({ n: ctx.data?.n, offset: ctx.offset });
    if (this.waiter && this.pubs.length >= this.waiter.count) {
      this.waiter.resolve();
      this.waiter = null;
    }
  }

  async atLeast(count, ms, what) {
    if (this.pubs.length < count) {
      await new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`timed out after ${ms} ms: ${what} (have ${this.pubs.length})`)),
          ms,
        );
        this.waiter = { count, resolve: () => (clearTimeout(timer), resolve()) };
      });
    }
    log(`ok: ${what} (${this.pubs.length} publications)`);
  }
}

main(
  `cluster ${transport}`,
  async () => {
    check(['http_stream', 'sse', 'websocket'].includes(transport), `transport ${transport}`);
    check(Boolean(channel) && Boolean(user), 'channel and user given');
    const token = givenToken || hs256({ sub: user });
    const endpoint =
      transport === 'websocket' ? env.wsUrl : `${env.httpUrl}/connection/${transport}`;
    const client = new Centrifuge([{ transport, endpoint }], {
      websocket: WebSocket,
      eventsource: EventSource,
      emulationEndpoint: `${env.httpUrl}/emulation`,
      token,
      // Long enough that the publications made while away are all made before the reconnect.
      minReconnectDelay: 1500,
      maxReconnectDelay: 3000,
    });
    const events = recordClient(client, 'client');
    const sub = client.newSubscription(channel);
    const subEvents = recordSubscription(sub, channel);
    const received = new Received();
    // recordSubscription logs each publication too; the checks use `received`.
    sub.on('publication', (ctx) => received.push(ctx));
    const skipPubs = ['subscribing', 'publication'];
    sub.subscribe();
    client.connect();

    const connected = await events.expect('connected', 10000, 'connect', ['connecting']);
    checkEqual(connected.transport, transport, 'transport in use');
    const first = await subEvents.expect('subscribed', 10000, 'subscribe', skipPubs);
    checkEqual(first.recoverable, true, 'subscription is recoverable (force_recovery)');

    const offsets = [];
    for (let n = 0; n < FIRST; n += 1) {
      offsets.push((await api('publish', { channel, data: { n } })).offset);
    }
    await received.atLeast(FIRST, 10000, `${FIRST} live publications`);
    checkSequence(received.pubs, offsets, `live publications 0..${FIRST - 1}`);

    await api('disconnect', {
      user,
      disconnect: { code: DISCONNECT_CODE, reason: 'cluster test reconnect' },
    });
    const away = await events.expect('connecting', 10000, 'disconnect through the API', ['error']);
    checkEqual(away.code, DISCONNECT_CODE, 'disconnect code');
    await subEvents.expect('subscribing', 5000, 'subscription waits to resubscribe', [
      'publication',
    ]);
    for (let n = FIRST; n < FIRST + AWAY; n += 1) {
      offsets.push((await api('publish', { channel, data: { n } })).offset);
    }
    checkEqual(sub.state, 'subscribing', `all ${AWAY} published while the client was away`);
    checkEqual(received.pubs.length, FIRST, 'nothing delivered while away');

    await events.expect('connected', 15000, 'reconnect', ['connecting', 'error']);
    const again = await subEvents.expect('subscribed', 10000, 'resubscribe', skipPubs);
    checkEqual(again.wasRecovering, true, 'resubscribe: wasRecovering');
    checkEqual(again.recovered, true, 'resubscribe: recovered');
    await received.atLeast(FIRST + AWAY, 10000, `${AWAY} recovered publications`);
    // Anything late would be a duplicate.
    await new Promise((resolve) => setTimeout(resolve, 500));
    checkSequence(received.pubs, offsets, `publications 0..${FIRST + AWAY - 1}`);
    client.disconnect();
    return {
      transport,
      channel,
      received: received.pubs.length,
      live: FIRST,
      recovered: AWAY,
      duplicates: 0,
      epoch: again.streamPosition?.epoch,
      offset: offsets[offsets.length - 1],
    };
  },
  60000,
);
