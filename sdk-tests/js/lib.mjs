// Shared helpers for the centrifuge-js / cent.js scenarios.
//
// Every scenario is run by `main(name, fn)`: it gets a hard timeout, prints what it observed
// (one line per event, with the time since start), prints `RESULT <json>` on success and exits
// 0, or prints `FAIL: <reason>` and exits 1.

import { createHmac, randomBytes } from 'node:crypto';
import net from 'node:net';
import { isDeepStrictEqual } from 'node:util';

import { CentClient } from 'cent.js';
import { Centrifuge } from 'centrifuge';
import WebSocket from 'ws';

const started = Date.now();

/** Server location, from the environment the Rust runner sets. */
export const env = {
  wsUrl: required('PUSHWIRE_WS_URL'),
  httpUrl: required('PUSHWIRE_HTTP_URL'),
  apiKey: required('PUSHWIRE_API_KEY'),
  secret: required('PUSHWIRE_SECRET'),
};

function required(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`FAIL: environment variable ${name} is not set`);
    process.exit(1);
  }
  return v;
}

/** Prints a line prefixed with milliseconds since start. */
export function log(...args) {
  const ms = String(Date.now() - started).padStart(6);
  console.log(`[${ms} ms]`, ...args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))));
}

/** Throws when `cond` is false. */
export function check(cond, what) {
  if (!cond) {
    throw new Error(`check failed: ${what}`);
  }
  log(`ok: ${what}`);
}

/** Throws unless `actual` deep-equals `expected`. */
export function checkEqual(actual, expected, what) {
  if (!isDeepStrictEqual(actual, expected)) {
    throw new Error(
      `check failed: ${what}: got ${JSON.stringify(actual)}, want ${JSON.stringify(expected)}`,
    );
  }
  log(`ok: ${what} = ${JSON.stringify(actual)}`);
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Rejects with a message naming `what` when `promise` takes longer than `ms`. */
export async function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Awaits a cent.js call with a timeout; a failure names the call (cent.js reports an HTTP error
 * status only as a body it cannot parse).
 */
export async function centCall(promise, what) {
  try {
    return await withTimeout(promise, 5000, what);
  } catch (err) {
    throw new Error(`${what} failed: ${err}`, { cause: err });
  }
}

/** A channel name that no other run uses: `<prefix><random hex>`. */
export function uniqueChannel(prefix) {
  return `${prefix}${randomBytes(6).toString('hex')}`;
}

/** An HS256 JWT for `claims`, signed with the server's HMAC secret. */
export function hs256(claims, secret = env.secret) {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  const sig = createHmac('sha256', secret).update(body).digest('base64url');
  return `${body}.${sig}`;
}

/** Seconds since the Unix epoch. */
export function unixNow() {
  return Math.floor(Date.now() / 1000);
}

/** A centrifuge-js client for `url` (ws:// string endpoint), using the `ws` package. */
export function newCentrifuge(url, options = {}) {
  return new Centrifuge(url, { websocket: WebSocket, ...options });
}

/** A cent.js client for the server API at `<PUSHWIRE_HTTP_URL>/api`. */
export function centApi() {
  return new CentClient({ url: `${env.httpUrl}/api`, apiKey: env.apiKey });
}

/**
 * An ordered record of events with waiters: `push` from event handlers, `next` to take the
 * next one in order. Every event is logged as it arrives.
 */
export class Inbox {
  constructor(name) {
    this.name = name;
    this.items = [];
    this.waiters = [];
  }

  /** Records `item` (an object with a `type`). */
  push(item) {
    log(`${this.name}: ${item.type}`, summarize(item));
    const waiter = this.waiters.shift();
    if (waiter) {
      waiter(item);
    } else {
      this.items.push(item);
    }
  }

  /**
   * The next event, skipping (and logging) those whose type is in `skip`; throws after `ms`.
   */
  async next(ms, what, skip = []) {
    const deadline = Date.now() + ms;
    for (;;) {
      const item = await this.take(deadline);
      if (item === undefined) {
        throw new Error(`timed out after ${ms} ms waiting for ${this.name}: ${what}`);
      }
      if (!skip.includes(item.type)) {
        return item;
      }
    }
  }

  /** The next event, which must be of `type`. */
  async expect(type, ms, what, skip = []) {
    const item = await this.next(ms, what, skip);
    if (item.type !== type) {
      const got = `${item.type} ${JSON.stringify(summarize(item))}`;
      throw new Error(`${this.name}: expected ${type} (${what}), got ${got}`);
    }
    return item;
  }

  /** Throws if any event not of a type in `skip` arrives within `ms`. */
  async expectNone(ms, what, skip = []) {
    const deadline = Date.now() + ms;
    for (;;) {
      const item = await this.take(deadline);
      if (item === undefined) {
        log(`ok: ${what} (nothing within ${ms} ms)`);
        return;
      }
      if (!skip.includes(item.type)) {
        throw new Error(
          `${this.name}: unexpected ${item.type} ${JSON.stringify(summarize(item))}: ${what}`,
        );
      }
    }
  }

  /** Forgets events received so far. */
  clear() {
    this.items = [];
  }

  // The next item, or undefined once `deadline` (ms since the epoch) has passed.
  take(deadline) {
    if (this.items.length > 0) {
      return Promise.resolve(this.items.shift());
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        resolve(undefined);
      }, Math.max(0, deadline - Date.now()));
      const waiter = (item) => {
        clearTimeout(timer);
        resolve(item);
      };
      this.waiters.push(waiter);
    });
  }
}

// The fields worth printing of an SDK event context.
function summarize(item) {
  const out = {};
  for (const [k, v] of Object.entries(item)) {
    if (k !== 'type' && typeof v !== 'function' && !(v instanceof Error)) {
      out[k] = v;
    } else if (v instanceof Error) {
      out[k] = String(v);
    }
  }
  return out;
}

/** Records the events of a centrifuge-js client into an Inbox. */
export function recordClient(client, name) {
  const inbox = new Inbox(name);
  for (const type of ['connecting', 'connected', 'disconnected', 'error']) {
    client.on(type, (ctx) => inbox.push({ type, ...flatten(ctx) }));
  }
  return inbox;
}

/** Records the events of a centrifuge-js subscription into an Inbox. */
export function recordSubscription(sub, name) {
  const inbox = new Inbox(name);
  for (const type of ['subscribing', 'subscribed', 'unsubscribed', 'publication', 'error']) {
    sub.on(type, (ctx) => inbox.push({ type, ...flatten(ctx) }));
  }
  return inbox;
}

// An event context as plain fields; an error becomes "<code> <message>", and the context's own
// `type` (error category) is kept as `errorType` so it does not hide the event type.
function flatten(ctx) {
  const out = { ...ctx };
  if (out.error) {
    out.error = `${out.error.code ?? ''} ${out.error.message ?? out.error}`.trim();
  }
  if ('type' in out) {
    out.errorType = out.type;
    delete out.type;
  }
  return out;
}

/**
 * A TCP proxy between an SDK and the server that can cut the line: `cut()` destroys every
 * proxied socket and refuses (accepts and immediately destroys) new ones until `restore()`.
 */
export class CutProxy {
  /** Starts a proxy on 127.0.0.1:0 in front of the host:port of `targetUrl`. */
  static async start(targetUrl) {
    const target = new URL(targetUrl);
    const proxy = new CutProxy(target.hostname, Number(target.port));
    await new Promise((resolve, reject) => {
      proxy.server.once('error', reject);
      proxy.server.listen(0, '127.0.0.1', resolve);
    });
    proxy.port = proxy.server.address().port;
    log(`proxy: 127.0.0.1:${proxy.port} -> ${target.hostname}:${target.port}`);
    return proxy;
  }

  constructor(host, port) {
    this.blocked = false;
    this.sockets = new Set();
    this.accepted = 0;
    this.refused = 0;
    this.server = net.createServer((downstream) => {
      if (this.blocked) {
        this.refused += 1;
        downstream.destroy();
        return;
      }
      this.accepted += 1;
      const upstream = net.connect(port, host);
      const pair = [downstream, upstream];
      const close = () => {
        for (const s of pair) {
          s.destroy();
          this.sockets.delete(s);
        }
      };
      for (const s of pair) {
        this.sockets.add(s);
        s.on('error', close);
        s.on('close', close);
      }
      downstream.pipe(upstream);
      upstream.pipe(downstream);
    });
  }

  /** `ws://127.0.0.1:<proxy port><path of url>`. */
  rewrite(url) {
    const u = new URL(url);
    u.host = `127.0.0.1:${this.port}`;
    return u.toString();
  }

  /** Destroys every proxied connection and refuses new ones. */
  cut() {
    this.blocked = true;
    const n = this.sockets.size;
    for (const s of this.sockets) {
      s.destroy();
    }
    this.sockets.clear();
    log(`proxy: cut (${n / 2} connection(s) destroyed), refusing new ones`);
  }

  /** Lets connections through again. */
  restore() {
    this.blocked = false;
    log(`proxy: restored (refused ${this.refused} connection attempt(s) meanwhile)`);
  }

  /** Stops the proxy. */
  async close() {
    this.cut();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

/**
 * Runs scenario `fn` with a hard timeout of `ms`. Prints `RESULT <json>` with what `fn` returns
 * and exits 0, or prints `FAIL: ...` and exits 1.
 */
export function main(name, fn, ms = 45000) {
  const hard = setTimeout(() => {
    console.log(`FAIL: ${name}: hard timeout of ${ms} ms`);
    process.exit(1);
  }, ms);
  log(`scenario: ${name}`);
  fn()
    .then((result) => {
      clearTimeout(hard);
      console.log(`RESULT ${JSON.stringify(result ?? {})}`);
      console.log(`PASS: ${name}`);
      process.exit(0);
    })
    .catch((err) => {
      clearTimeout(hard);
      console.log(`FAIL: ${name}: ${err && err.stack ? err.stack : err}`);
      process.exit(1);
    });
}
