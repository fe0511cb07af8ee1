// Scenario: connection and subscription tokens with a short lifetime, refreshed by
// centrifuge-js through its getToken callbacks while publications flow through the server API.
//
// The server closes an unrefreshed connection (3005) or subscription (2501) two seconds after
// its token expires, so every token must be refreshed in time. Checks: every publication is
// received exactly once and in order, the client never reconnects nor resubscribes, and both
// getToken callbacks ran more than once (the first call plus at least one refresh).

import {
  centApi,
  centCall,
  check,
  checkEqual,
  env,
  hs256,
  log,
  main,
  newCentrifuge,
  recordClient,
  recordSubscription,
  sleep,
  uniqueChannel,
  unixNow,
} from './lib.mjs';

const USER = 'refresh-user';
const TTL = 3; // seconds a token lives
const RUN_MS = 9000; // publishing time: three token lifetimes
const PUBLISH_EVERY_MS = 40;

main('js refresh', async () => {
  const channel = uniqueChannel('$refresh-');
  const api = centApi();
  const tokens = { connection: 0, subscription: 0 };

  const client = newCentrifuge(env.wsUrl, {
    getToken: async () => {
      tokens.connection += 1;
      log(`getToken (connection) #${tokens.connection}`);
      return hs256({ sub: USER, exp: unixNow() + TTL });
    },
  });
  const clientEvents = recordClient(client, 'client');
  const sub = client.newSubscription(channel, {
    getToken: async (ctx) => {
      tokens.subscription += 1;
      log(`getToken (subscription ${ctx.channel}) #${tokens.subscription}`);
      return hs256({ sub: USER, channel: ctx.channel, exp: unixNow() + TTL });
    },
  });
  const received = [];
  sub.on('publication', (ctx) => received.push(ctx.data.n));
  const subEvents = recordSubscription(sub, channel);
  sub.subscribe();
  client.connect();
  const connected = await clientEvents.expect('connected', 5000, 'connect', ['connecting']);
  await subEvents.expect('subscribed', 5000, 'subscribe', ['subscribing']);

  let sent = 0;
  const until = Date.now() + RUN_MS;
  while (Date.now() < until) {
    sent += 1;
    await centCall(api.publish({ channel, data: { n: sent } }), `publish ${sent}`);
    await sleep(PUBLISH_EVERY_MS);
  }
  log(`published ${sent}`);
  const deadline = Date.now() + 5000;
  while (received.length < sent && Date.now() < deadline) {
    await sleep(20);
  }
  await sleep(200); // a duplicate would arrive now

  const expected = Array.from({ length: sent }, (_, i) => i + 1);
  checkEqual(received.length, sent, 'publications received');
  checkEqual(received, expected, 'every publication exactly once, in order');
  // Only publications were recorded after subscribe: no disconnect, resubscribe or error.
  await clientEvents.expectNone(10, 'client never disconnected');
  await subEvents.expectNone(10, 'subscription never dropped', ['publication']);
  check(tokens.connection >= 2, `connection token refreshed (${tokens.connection} tokens)`);
  check(tokens.subscription >= 2, `subscription token refreshed (${tokens.subscription} tokens)`);

  client.disconnect();
  await clientEvents.expect('disconnected', 5000, 'disconnect');
  return {
    client: connected.client,
    channel,
    published: sent,
    received: received.length,
    connection_tokens: tokens.connection,
    subscription_tokens: tokens.subscription,
  };
});
