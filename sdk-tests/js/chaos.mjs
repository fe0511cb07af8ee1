// Chaos observer: many centrifuge-js WebSocket clients through the load balancer, all
// subscribed (with recovery) to one channel, counting which publications {"n": i} each one got
// while the test publishes and kills nodes. This script never publishes.
//
//   node js/chaos.mjs <channel> <last> [clients=300] [timeout_s=120] [user]
//
// - env: PUSHWIRE_WS_URL (the balancer's /connection/websocket); clients connect anonymously,
//   or, with `user`, with a token for that user signed with PUSHWIRE_SECRET (so the test can
//   disconnect them all with the `disconnect` API);
// - channel: in a namespace with history and force_recovery;
// - last: the `n` of the test's final publication (it publishes 0..=last).
//
// Prints `READY` once every client is subscribed (the test starts publishing then), a progress
// line every 5 s, and, once every client has received `last` (plus 1 s for late duplicates) or
// at the timeout, `RESULT {"clients","lost","duplicated","reconnects","complete",…}` and exits 0:
// - lost: numbers in 0..=last a client never received, summed over clients;
// - duplicated: deliveries of a number a client already had, summed;
// - reconnects: `connected` events after each client's first, summed;
// - complete: clients that received every number in 0..=last exactly once;
// - outOfOrder: deliveries with a smaller n than the client's previous one;
// - unrecovered: resubscribes that reported recovered = false;
// - timedOut: whether the timeout ended the run.
// Exits 1 (FAIL) only when the clients cannot all subscribe within 60 s.

import { env, hs256, log, main, newCentrifuge, sleep } from './lib.mjs';

const channel = process.argv[2];
const last = Number(process.argv[3]);
const clients = Number(process.argv[4] ?? 300);
const timeoutS = Number(process.argv[5] ?? 120);
const user = process.argv[6];
const READY_MS = 60000;

/** One client's view. */
class Observer {
  constructor(i) {
    this.i = i;
    this.counts = new Uint16Array(last + 1);
    this.prev = -1;
    this.connects = 0;
    this.subscribed = false;
    this.outOfOrder = 0;
    this.unexpected = 0;
    this.unrecovered = 0;
    this.client = newCentrifuge(env.wsUrl, user ? { token: hs256({ sub: user }) } : {});
    this.client.on('connected', () => {
      this.connects += 1;
    });
    const sub = this.client.newSubscription(channel);
    sub.on('subscribed', (ctx) => {
      this.subscribed = true;
      if (ctx.wasRecovering && !ctx.recovered) {
        this.unrecovered += 1;
        log(`client ${i}: resubscribed without recovery`, ctx.streamPosition);
      }
    });
    sub.on('publication', (ctx) => this.onPublication(ctx.data?.n));
    sub.subscribe();
    this.client.connect();
  }

  onPublication(n) {
    if (!Number.isInteger(n) || n < 0 || n > last) {
      this.unexpected += 1;
      return;
    }
    if (n < this.prev) {
      this.outOfOrder += 1;
    }
    this.prev = n;
    this.counts[n] += 1;
  }

  get done() {
    return this.counts[last] > 0;
  }

  tally() {
    let lost = 0;
    let duplicated = 0;
    for (const c of this.counts) {
      if (c === 0) lost += 1;
      else duplicated += c - 1;
    }
    return { lost, duplicated };
  }
}

main(
  `chaos ${clients} clients`,
  async () => {
    if (!channel || !Number.isInteger(last) || last < 0 || !(clients > 0) || !(timeoutS > 0)) {
      throw new Error('usage: chaos.mjs <channel> <last> [clients=300] [timeout_s=120] [user]');
    }
    const observers = Array.from({ length: clients }, (_, i) => new Observer(i));
    const readyBy = Date.now() + READY_MS;
    while (observers.some((o) => !o.subscribed)) {
      if (Date.now() > readyBy) {
        const n = observers.filter((o) => o.subscribed).length;
        throw new Error(`only ${n} of ${clients} clients subscribed within ${READY_MS} ms`);
      }
      await sleep(20);
    }
    console.log('READY');

    const endBy = Date.now() + timeoutS * 1000;
    let nextProgress = Date.now() + 5000;
    while (observers.some((o) => !o.done) && Date.now() < endBy) {
      if (Date.now() >= nextProgress) {
        nextProgress += 5000;
        const done = observers.filter((o) => o.done).length;
        const top = Math.max(...observers.map((o) => o.prev));
        log(`progress: ${done}/${clients} got n=${last}, highest n seen ${top}`);
      }
      await sleep(50);
    }
    const timedOut = observers.some((o) => !o.done);
    if (!timedOut) {
      await sleep(1000); // late duplicates
    }

    const result = {
      clients,
      lost: 0,
      duplicated: 0,
      reconnects: 0,
      complete: 0,
      outOfOrder: 0,
      unrecovered: 0,
      unexpected: 0,
      timedOut,
    };
    for (const o of observers) {
      const { lost, duplicated } = o.tally();
      if (lost || duplicated || o.outOfOrder) {
        log(`client ${o.i}: lost ${lost}, duplicated ${duplicated}, out of order ${o.outOfOrder}`);
      }
      result.lost += lost;
      result.duplicated += duplicated;
      result.reconnects += Math.max(0, o.connects - 1);
      result.complete += lost === 0 && duplicated === 0 ? 1 : 0;
      result.outOfOrder += o.outOfOrder;
      result.unrecovered += o.unrecovered;
      result.unexpected += o.unexpected;
      o.client.disconnect();
    }
    return result;
  },
  READY_MS + timeoutS * 1000 + 30000,
);
