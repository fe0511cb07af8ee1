// Node-side helpers of the transport scenarios: server location from the environment, logging,
// tokens, the server API, and `main()` which prints `RESULT <json>` and exits 0, or prints
// `FAIL: <reason>` and exits 1.

import { createHmac, randomBytes } from 'node:crypto';

const started = Date.now();

function required(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`FAIL: environment variable ${name} is not set`);
    process.exit(1);
  }
  return v;
}

/** Server location, from the environment the Rust runner sets. */
export const env = {
  httpUrl: required('PUSHWIRE_HTTP_URL'),
  wsUrl: required('PUSHWIRE_WS_URL'),
  apiKey: required('PUSHWIRE_API_KEY'),
  secret: required('PUSHWIRE_SECRET'),
};

/** Prints a line prefixed with milliseconds since start. */
export function log(...args) {
  const ms = String(Date.now() - started).padStart(6);
  console.log(`[${ms} ms]`, ...args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))));
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** `<prefix><random hex>`. */
export function unique(prefix) {
  return `${prefix}${randomBytes(6).toString('hex')}`;
}

/** An HS256 connection token for `user`, valid for an hour. */
export function tokenFor(user) {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({
    sub: user,
    exp: Math.floor(Date.now() / 1000) + 3600,
  })}`;
  const sig = createHmac('sha256', env.secret).update(body).digest('base64url');
  return `${body}.${sig}`;
}

/** Calls `POST /api/<method>`; throws on a non-200 status or an `error` in the answer. */
export async function api(method, body) {
  const resp = await fetch(`${env.httpUrl}/api/${method}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-API-Key': env.apiKey },
    body: JSON.stringify(body),
  });
  const text = await resp.text();
  if (resp.status !== 200) {
    throw new Error(`API ${method} answered ${resp.status}: ${text}`);
  }
  const answer = JSON.parse(text);
  if (answer.error) {
    throw new Error(`API ${method} failed: ${text}`);
  }
  return answer;
}

/** Runs `fn` with a hard timeout; prints RESULT and exits 0, or FAIL and exits 1. */
export function main(name, fn, timeoutMs = 50000) {
  const timer = setTimeout(() => {
    console.log(`FAIL: ${name} timed out after ${timeoutMs} ms`);
    process.exit(1);
  }, timeoutMs);
  fn().then(
    (result) => {
      clearTimeout(timer);
      console.log(`RESULT ${JSON.stringify(result)}`);
      process.exit(0);
    },
    (err) => {
      clearTimeout(timer);
      console.log(`FAIL: ${name}: ${err && err.stack ? err.stack : err}`);
      process.exit(1);
    },
  );
}
