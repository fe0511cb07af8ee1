// Proxies to the application backend (crates/pushwire-server/tests/proxies.rs starts the backend
// and the server): centrifuge-js connects with a session cookie and no token (connect proxy),
// subscribes where the subscribe proxy allows (with a presence override) and is refused (103),
// publishes through the publish proxy (rewritten, and refused with the backend's error), calls
// RPC methods (data, backend error, unknown namespace 104) and sends a one-way message. A client
// without the cookie is disconnected by the backend's choice (4501).

import WebSocket from 'ws';
import { Centrifuge } from 'centrifuge';

import {
  check,
  checkEqual,
  env,
  log,
  main,
  recordClient,
  recordSubscription,
  withTimeout,
} from './lib.mjs';

/** `ws` with a session cookie on the HTTP upgrade request, as a browser would send it. */
class CookieWebSocket extends WebSocket {
  constructor(url, protocols) {
    super(url, protocols, { headers: { Cookie: 'session=alice; theme=dark' } });
  }
}

async function rejects(promise, what) {
  try {
    const r = await withTimeout(promise, 5000, what);
    throw new Error(`${what}: expected a rejection, got ${JSON.stringify(r)}`);
  } catch (e) {
    if (e.code === undefined) {
      throw e;
    }
    log(`${what}: rejected`, { code: e.code, message: e.message });
    return e;
  }
}

main('js proxies', async () => {
  const client = new Centrifuge(env.wsUrl, {
    websocket: CookieWebSocket,
    data: { app: 'js' },
    name: 'js-proxies',
  });
  const events = recordClient(client, 'alice');
  client.connect();
  const connected = await events.expect('connected', 5000, 'connect through the proxy', [
    'connecting',
  ]);
  checkEqual(connected.data, { hello: 'alice' }, 'connect data from the backend');

  // Subscribe proxy: allowed, with channel info and data; presence kept, and switched off by
  // the backend's override on `pres:hidden`.
  const pres = client.newSubscription('pres:room');
  const presEvents = recordSubscription(pres, 'pres:room');
  pres.subscribe();
  const subscribed = await presEvents.expect('subscribed', 5000, 'subscribe allowed', [
    'subscribing',
  ]);
  checkEqual(subscribed.data, { welcome: 'pres:room' }, 'subscribe data from the backend');
  const presence = await withTimeout(pres.presence(), 5000, 'presence');
  const entries = Object.values(presence.clients);
  checkEqual(entries.length, 1, 'presence entry');
  checkEqual(entries[0].user, 'alice', 'presence user');
  checkEqual(entries[0].chanInfo, { via: 'proxy' }, 'channel info from the backend');
  checkEqual(entries[0].connInfo, { name: 'User alice' }, 'connection info from the backend');

  const hidden = client.newSubscription('pres:hidden');
  const hiddenEvents = recordSubscription(hidden, 'pres:hidden');
  hidden.subscribe();
  await hiddenEvents.expect('subscribed', 5000, 'subscribe pres:hidden', ['subscribing']);
  const none = await withTimeout(hidden.presence(), 5000, 'presence pres:hidden');
  checkEqual(Object.keys(none.clients).length, 0, 'presence switched off by override');

  // Subscribe proxy: refused.
  const denied = client.newSubscription('denied:room');
  const deniedEvents = recordSubscription(denied, 'denied:room');
  denied.subscribe();
  const refused = await deniedEvents.expect('unsubscribed', 5000, 'subscribe refused', [
    'subscribing',
    'error',
  ]);
  checkEqual(refused.code, 103, 'refused subscribe code');

  // Publish proxy: rewritten, then refused with the backend's own error.
  const chat = client.newSubscription('pub:chat');
  const chatEvents = recordSubscription(chat, 'pub:chat');
  chat.subscribe();
  await chatEvents.expect('subscribed', 5000, 'subscribe pub:chat', ['subscribing']);
  await withTimeout(chat.publish({ text: 'hello' }), 5000, 'publish');
  const pub = await chatEvents.expect('publication', 5000, 'rewritten publication');
  checkEqual(pub.data, { text: 'HELLO', by: 'alice' }, 'publication rewritten by the backend');
  const pubErr = await rejects(chat.publish({ text: 'forbidden' }), 'publish refused');
  checkEqual(pubErr.code, 1001, 'publish error code from the backend');
  checkEqual(pubErr.message, 'forbidden word', 'publish error message from the backend');

  // RPC: round trip, backend error, unknown namespace.
  const echo = await withTimeout(client.rpc('echo', { n: 1 }), 5000, 'rpc echo');
  checkEqual(echo.data, { echo: { n: 1 }, user: 'alice' }, 'rpc result');
  const rpcErr = await rejects(client.rpc('fail', {}), 'rpc error');
  checkEqual(rpcErr.code, 1002, 'rpc error code');
  const unknown = await rejects(client.rpc('nowhere:x', {}), 'rpc unknown namespace');
  checkEqual(unknown.code, 104, 'unknown rpc namespace');

  // Send: one-way, the backend records it (checked by the Rust test).
  await withTimeout(client.send({ note: 'fire and forget' }), 5000, 'send');

  // No cookie, but a session header emulated by the SDK (the `headers` option travels in the
  // connect command; the proxy forwards it with `emulated_headers`).
  const emulated = new Centrifuge(env.wsUrl, {
    websocket: WebSocket,
    headers: { 'X-Session': 'dave' },
  });
  const emulatedEvents = recordClient(emulated, 'dave');
  emulated.connect();
  const dave = await emulatedEvents.expect('connected', 5000, 'connect from an emulated header', [
    'connecting',
  ]);
  checkEqual(dave.data, { hello: 'dave' }, 'user from the emulated header');
  emulated.disconnect();

  // No cookie: the backend answers with a disconnect.
  const anon = new Centrifuge(env.wsUrl, { websocket: WebSocket });
  const anonEvents = recordClient(anon, 'anon');
  anon.connect();
  const gone = await anonEvents.expect('disconnected', 5000, 'no session', ['connecting']);
  checkEqual(gone.code, 4501, 'disconnect code chosen by the backend');
  check(gone.reason === 'no session', 'disconnect reason from the backend');

  // Let the send reach the backend before leaving.
  const echo2 = await withTimeout(client.rpc('echo', { n: 2 }), 5000, 'rpc after send');
  checkEqual(echo2.data.echo, { n: 2 }, 'rpc after send');
  const clientId = connected.client;
  client.disconnect();
  return { client: clientId };
});
