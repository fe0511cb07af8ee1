// Connect storm through the connect proxy (crates/pushwire-server/tests/proxies.rs caps the
// proxy's calls in flight and checks the backend never saw more): N centrifuge-js clients, each
// with its own session cookie, connect at once; every one must end up connected (an SDK that
// got 100 while the backend was saturated retries by itself).
//
// Usage: node js/proxies_storm.mjs N

import WebSocket from 'ws';
import { Centrifuge } from 'centrifuge';

import { check, env, log, main } from './lib.mjs';

const N = Number(process.argv[2] ?? 2000);

function cookieSocket(i) {
  return class extends WebSocket {
    constructor(url, protocols) {
      super(url, protocols, { headers: { Cookie: `session=storm-${i}` } });
    }
  };
}

main(
  'js proxies storm',
  async () => {
    const clients = [];
    let connected = 0;
    let retried = 0;
    const all = new Promise((resolve) => {
      for (let i = 0; i < N; i++) {
        const c = new Centrifuge(env.wsUrl, {
          websocket: cookieSocket(i),
          minReconnectDelay: 100,
          maxReconnectDelay: 2000,
        });
        c.on('connected', () => {
          connected += 1;
          if (connected === N) {
            resolve();
          }
        });
        c.on('connecting', (ctx) => {
          if (ctx.code !== 0) {
            retried += 1;
          }
        });
        clients.push(c);
        c.connect();
      }
    });
    const started = Date.now();
    const timer = setInterval(() => log(`connected ${connected}/${N}, retries ${retried}`), 1000);
    await all;
    clearInterval(timer);
    const ms = Date.now() - started;
    log(`all ${N} connected in ${ms} ms, ${retried} retries`);
    check(connected === N, 'every client connected');
    for (const c of clients) {
      c.disconnect();
    }
    return { connected, retried, ms };
  },
  120000,
);
