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
