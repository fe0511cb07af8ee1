// Scenario (d): cent.js `pipeline()`, which POSTs newline-delimited commands to the legacy
// `/api` route and splits the response on newlines.

import {
  centApi,
  centCall,
  checkEqual,
  env,
  log,
  main,
  newCentrifuge,
  recordClient,
  recordSubscription,
  uniqueChannel,
} from './lib.mjs';

main('js cent.js pipeline', async () => {
  const api = centApi();
  const channel = uniqueChannel('chat:pipe-');
  const client = newCentrifuge(env.wsUrl);
  const events = recordClient(client, 'client');
  const sub = client.newSubscription(channel);
  const subEvents = recordSubscription(sub, channel);
  sub.subscribe();
  client.connect();
  await events.expect('connected', 5000, 'connect', ['connecting']);
  await subEvents.expect('subscribed', 5000, 'subscribe', ['subscribing']);

  const results = await centCall(
    api.pipeline([
      { method: 'publish', params: { channel, data: { n: 1 } } },
      { method: 'publish', params: { channel, data: { n: 2 } } },
      { method: 'history', params: { channel, limit: -1 } },
    ]),
    'cent.js pipeline',
  );
  log('pipeline results', results);
  checkEqual(results.length, 3, 'one result per command');
  checkEqual(results[0]?.offset, 1, 'first publish offset');
  checkEqual(results[1]?.offset, 2, 'second publish offset');
  checkEqual(
    results[2]?.publications?.map((p) => [p.offset, p.data]),
    [
      [1, { n: 1 }],
      [2, { n: 2 }],
    ],
    'history after the publishes',
  );
  checkEqual(results[2]?.offset, 2, 'history top offset');
  for (const n of [1, 2]) {
    const p = await subEvents.expect('publication', 5000, `publication ${n}`);
    checkEqual([p.offset, p.data], [n, { n }], `publication ${n} delivered in order`);
  }
  await subEvents.expectNone(300, 'no extra publications');
  client.disconnect();
  await events.expect('disconnected', 5000, 'disconnect');
  return { channel, epoch: results[2].epoch, offsets: [1, 2] };
});
