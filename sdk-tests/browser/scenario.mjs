// The transport scenario of centrifuge-js, shared by Node (node-scenario.mjs) and the browser
// (browser.mjs serves this file to the page). It must not import anything: the caller passes the
// Centrifuge class, the endpoints and a way to call the server API.
//
// Steps: connect on the expected transport, subscribe with recovery to a fresh `chat:` channel,
// receive an API publication, publish from the client and receive it, get disconnected by the
// server (API `disconnect` with 3011, a reconnect code), miss three publications while away,
// reconnect on the same transport and recover exactly those three in order, then receive a live
// publication.

/** An ordered event queue with a deadline-aware `expect`. */
export class Events {
  constructor(log) {
    this.log = log;
    this.items = [];
    this.waiters = [];
  }

  push(item) {
    this.log(`event ${item.type} ${JSON.stringify(item)}`);
    const w = this.waiters.shift();
    if (w) {
      w(item);
    } else {
      this.items.push(item);
    }
  }

  take(ms) {
    if (this.items.length > 0) {
      return Promise.resolve(this.items.shift());
    }
    return new Promise((resolve) => {
      const waiter = (item) => {
        clearTimeout(timer);
        resolve(item);
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        resolve(undefined);
      }, ms);
      this.waiters.push(waiter);
    });
  }

  /** The next event of `type`, skipping those whose type is in `skip`; throws otherwise. */
  async expect(type, what, { skip = [], ms = 10000 } = {}) {
    const deadline = Date.now() + ms;
    for (;;) {
      const left = deadline - Date.now();
      const item = left > 0 ? await this.take(left) : undefined;
      if (item === undefined) {
        throw new Error(`timed out after ${ms} ms waiting for ${type}: ${what}`);
      }
      if (skip.includes(item.type)) {
        continue;
      }
      if (item.type !== type) {
        throw new Error(`expected ${type} (${what}), got ${JSON.stringify(item)}`);
      }
      return item;
    }
  }
}

function same(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Throws unless `actual` equals `expected` (as JSON). */
export function checkEqual(log, actual, expected, what) {
  if (!same(actual, expected)) {
    throw new Error(
      `check failed: ${what}: got ${JSON.stringify(actual)}, want ${JSON.stringify(expected)}`,
    );
  }
  log(`ok: ${what} = ${JSON.stringify(actual)}`);
}

/** JSON payload codec: identity for the JSON build, bytes of JSON text for the protobuf build. */
export const jsonCodec = { encode: (v) => v, decode: (v) => v };
export const bytesCodec = {
  encode: (v) => new TextEncoder().encode(JSON.stringify(v)),
  decode: (v) => JSON.parse(new TextDecoder().decode(v)),
};

/**
 * Runs the scenario. `args`:
 * - `Centrifuge`: the class (JSON or protobuf build);
 * - `endpoints`: a ws:// string or the transports array;
 * - `options`: extra client options (websocket, eventsource, emulationEndpoint...);
 * - `expectTransport`: the transport the client must land on;
 * - `token`, `user`: the connection token and its user (the API disconnects that user);
 * - `channel`: a fresh `chat:` channel;
 * - `api(method, body)`: calls the server API, resolves to the parsed answer;
 * - `log(line)`; `codec`: jsonCodec (default) or bytesCodec.
 */
export async function recoveryScenario(args) {
  const { Centrifuge, endpoints, options, expectTransport, token, user, channel, api, log } =
    args;
  const codec = args.codec || jsonCodec;
  const events = new Events(log);
  const client = new Centrifuge(endpoints, {
    token,
    // A reconnect never happens sooner than this: time enough to publish while away.
    minReconnectDelay: 1500,
    maxReconnectDelay: 3000,
    timeout: 5000,
    ...options,
  });
  client.on('connecting', (ctx) =>
    events.push({ type: 'connecting', code: ctx.code, reason: ctx.reason }),
  );
  client.on('connected', (ctx) => events.push({ type: 'connected', transport: ctx.transport }));
  client.on('disconnected', (ctx) =>
    events.push({ type: 'disconnected', code: ctx.code, reason: ctx.reason }),
  );
  client.on('error', (ctx) => log(`client error: ${JSON.stringify(ctx.error)} (${ctx.type})`));
  const sub = client.newSubscription(channel);
  sub.on('subscribed', (ctx) =>
    events.push({
      type: 'subscribed',
      wasRecovering: ctx.wasRecovering,
      recovered: ctx.recovered,
      recoverable: ctx.recoverable,
      streamPosition: ctx.streamPosition,
    }),
  );
  sub.on('publication', (ctx) =>
    events.push({ type: 'publication', data: codec.decode(ctx.data), offset: ctx.offset }),
  );
  sub.on('unsubscribed', (ctx) =>
    events.push({ type: 'unsubscribed', code: ctx.code, reason: ctx.reason }),
  );
  sub.on('error', (ctx) => log(`subscription error: ${JSON.stringify(ctx.error)} (${ctx.type})`));

  const offsets = [];
  const pub = async (n, what) => {
    const p = await events.expect('publication', what);
    checkEqual(log, p.data.n, n, `${what}: data`);
    offsets.push(p.offset);
    return p;
  };
  try {
    client.connect();
    sub.subscribe();
    const connected = await events.expect('connected', 'first connect', { skip: ['connecting'] });
    checkEqual(log, connected.transport, expectTransport, 'transport');
    const first = await events.expect('subscribed', 'first subscribe');
    checkEqual(log, [first.wasRecovering, first.recovered], [false, false], 'first subscribe');
    checkEqual(log, first.recoverable, true, 'recoverable');
    const epoch = first.streamPosition.epoch;
    checkEqual(log, first.streamPosition.offset, 0, 'fresh stream offset');

    await api('publish', { channel, data: { n: 1, from: 'api' } });
    checkEqual(log, (await pub(1, 'API publication')).offset, 1, 'offset of 1');

    await sub.publish(codec.encode({ n: 2, from: 'client' }));
    checkEqual(log, (await pub(2, 'client publication')).offset, 2, 'offset of 2');

    const answer = await api('disconnect', {
      user,
      disconnect: { code: 3011, reason: 'force reconnect' },
    });
    log(`API disconnect answered ${JSON.stringify(answer)}`);
    const away = await events.expect('connecting', 'the server disconnects');
    checkEqual(log, away.code, 3011, 'disconnect code');
    for (const n of [3, 4, 5]) {
      await api('publish', { channel, data: { n, from: 'api', missed: true } });
    }
    const again = await events.expect('connected', 'reconnect', { skip: ['connecting'] });
    checkEqual(log, again.transport, expectTransport, 'transport after reconnect');
    const recovered = await events.expect('subscribed', 'resubscribe with recovery');
    checkEqual(
      log,
      [recovered.wasRecovering, recovered.recovered],
      [true, true],
      'wasRecovering, recovered',
    );
    checkEqual(log, recovered.streamPosition.epoch, epoch, 'same epoch');
    for (const n of [3, 4, 5]) {
      const p = await pub(n, `recovered publication ${n}`);
      checkEqual(log, p.offset, n, `offset of ${n}`);
    }
    await api('publish', { channel, data: { n: 6, from: 'api' } });
    checkEqual(log, (await pub(6, 'live after recovery')).offset, 6, 'offset of 6');
    return { transport: again.transport, channel, epoch, recovered: recovered.recovered, offsets };
  } finally {
    client.disconnect();
  }
}

/**
 * A ~2 KB JSON document of which only a few fields change with `n` (a dashboard row set), with
 * some non-ASCII text so that deltas of UTF-8 are exercised.
 */
export function deltaDocument(n) {
  const rows = [];
  for (let i = 0; i < 16; i += 1) {
    rows.push({
      id: i,
      name: `instrument ${i} – Zürich €`,
      venue: 'primary exchange, continuous trading',
      price: i === n % 16 ? 1000 + n : 1000 + i,
      volume: i === (n + 5) % 16 ? n * 7 : i * 100,
    });
  }
  return { seq: n, status: n % 10 === 0 ? 'halted' : 'open', rows };
}

/**
 * Fossil delta compression scenario. `args` as for `recoveryScenario`, plus `plainChannel`
 * (a channel whose namespace does not allow fossil) and `total` (publications, default 200).
 *
 * A subscription with `delta: 'fossil'` to `channel` (history, recovery, fossil allowed)
 * receives `total` publications made through the API with `delta: true`: the first half live,
 * the next quarter while the connection is away (recovered on resubscribe), the rest live
 * again. Every reconstructed payload must equal the original. Then a subscription asking for
 * fossil on `plainChannel` must work without delta.
 */
export async function deltaScenario(args) {
  const { Centrifuge, endpoints, options, token, user, channel, plainChannel, api, log } = args;
  const codec = args.codec || jsonCodec;
  const total = args.total || 200;
  const events = new Events(log);
  const quiet = () => {};
  const client = new Centrifuge(endpoints, {
    token,
    minReconnectDelay: 1500,
    maxReconnectDelay: 3000,
    timeout: 5000,
    ...options,
  });
  client.on('connecting', (ctx) => events.push({ type: 'connecting', code: ctx.code }));
  client.on('connected', (ctx) => events.push({ type: 'connected', transport: ctx.transport }));
  client.on('error', (ctx) => log(`client error: ${JSON.stringify(ctx.error)} (${ctx.type})`));
  const received = new Events(quiet);
  const mismatches = [];
  const watch = (sub, name) => {
    sub.on('subscribed', (ctx) =>
      events.push({
        type: 'subscribed',
        name,
        wasRecovering: ctx.wasRecovering,
        recovered: ctx.recovered,
      }),
    );
    sub.on('publication', (ctx) => {
      const data = codec.decode(ctx.data);
      if (!same(data, deltaDocument(data.seq))) {
        mismatches.push({ offset: ctx.offset, got: data });
      }
      received.push({ type: 'publication', name, seq: data.seq, offset: ctx.offset });
    });
    sub.on('error', (ctx) => log(`${name} error: ${JSON.stringify(ctx.error)} (${ctx.type})`));
  };
  const sub = client.newSubscription(channel, { delta: 'fossil' });
  watch(sub, 'delta');
  const publish = (ch, n) => api('publish', { channel: ch, data: deltaDocument(n), delta: true });
  const expectSeqs = async (from, to, what) => {
    for (let n = from; n <= to; n += 1) {
      const p = await received.expect('publication', `${what} ${n}`);
      if (p.seq !== n || p.offset !== n) {
        throw new Error(`${what}: got seq ${p.seq} offset ${p.offset}, want ${n}`);
      }
    }
    log(`ok: ${what} ${from}..${to} reconstructed`);
  };
  try {
    client.connect();
    sub.subscribe();
    await events.expect('connected', 'connect', { skip: ['connecting'] });
    await events.expect('subscribed', 'subscribe with delta');
    const live = Math.floor(total / 2);
    const away = Math.floor(total / 4);
    for (let n = 1; n <= live; n += 1) {
      await publish(channel, n);
    }
    await expectSeqs(1, live, 'live');
    await api('disconnect', { user, disconnect: { code: 3011, reason: 'force reconnect' } });
    await events.expect('connecting', 'the server disconnects');
    for (let n = live + 1; n <= live + away; n += 1) {
      await publish(channel, n);
    }
    await events.expect('connected', 'reconnect', { skip: ['connecting'] });
    const resub = await events.expect('subscribed', 'resubscribe');
    checkEqual(log, [resub.wasRecovering, resub.recovered], [true, true], 'recovered');
    await expectSeqs(live + 1, live + away, 'recovered');
    for (let n = live + away + 1; n <= total; n += 1) {
      await publish(channel, n);
    }
    await expectSeqs(live + away + 1, total, 'live after recovery');
    checkEqual(log, mismatches, [], 'every payload equals its original');
    const stats = sub.deltaStats();
    log(`delta stats ${JSON.stringify(stats)}`);

    const plain = client.newSubscription(plainChannel, { delta: 'fossil' });
    watch(plain, 'plain');
    plain.subscribe();
    await events.expect('subscribed', 'subscribe asking for fossil where it is not allowed');
    for (let n = 1; n <= 3; n += 1) {
      await publish(plainChannel, n);
      const p = await received.expect('publication', `plain publication ${n}`);
      checkEqual(log, p.seq, n, 'plain publication');
    }
    checkEqual(log, mismatches, [], 'plain payloads equal their originals');
    const plainStats = plain.deltaStats();
    return { total, channel, stats, plainStats };
  } finally {
    client.disconnect();
  }
}
