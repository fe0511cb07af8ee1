// Scenario (a): anonymous and token-authenticated centrifuge-js clients on `news`; one
// publication through cent.js (server API), one through the client's `sub.publish`.

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
  unixNow,
  withTimeout,
} from './lib.mjs';

const CHANNEL = 'news';

main('js basic', async () => {
  const api = centApi();

  // Anonymous subscriber.
  const anon = newCentrifuge(env.wsUrl);
  const anonEvents = recordClient(anon, 'anon');
  const anonSub = anon.newSubscription(CHANNEL);
  const anonNews = recordSubscription(anonSub, `anon/${CHANNEL}`);
  anonSub.subscribe();
  anon.connect();
  const anonConnected = await anonEvents.expect('connected', 5000, 'anonymous connect', [
    'connecting',
  ]);
  check(
    typeof anonConnected.client === 'string' && anonConnected.client.length > 0,
    'anonymous connect has a client id',
  );
  checkEqual(anonConnected.transport, 'websocket', 'transport');
  const subscribed = await anonNews.expect('subscribed', 5000, 'subscribe', ['subscribing']);
  checkEqual(subscribed.channel, CHANNEL, 'subscribed channel');
  checkEqual(subscribed.recoverable, false, 'news is not recoverable');
  checkEqual(subscribed.wasRecovering, false, 'first subscribe is not recovering');

  // Publication through the server API (cent.js).
  const apiData = { text: 'from cent.js', n: 1, nested: { ok: true, list: [1, 'two', null] } };
  const apiResult = await centCall(
    api.publish({ channel: CHANNEL, data: apiData }),
    'cent.js publish',
  );
  log('cent.js publish result', apiResult);
  check(apiResult && typeof apiResult === 'object', 'cent.js publish returns a result object');
  const fromApi = await anonNews.expect('publication', 5000, 'publication made with cent.js');
  checkEqual(fromApi.channel, CHANNEL, 'publication channel');
  checkEqual(fromApi.data, apiData, 'publication data (cent.js)');
  checkEqual(fromApi.info, undefined, 'API publication carries no publisher info');

  // Token-authenticated publisher.
  const token = hs256({ sub: 'user-42', exp: unixNow() + 600, info: { name: 'Forty Two' } });
  const authed = newCentrifuge(env.wsUrl, { token });
  const authedEvents = recordClient(authed, 'authed');
  const authedSub = authed.newSubscription(CHANNEL);
  const authedNews = recordSubscription(authedSub, `authed/${CHANNEL}`);
  authedSub.subscribe();
  authed.connect();
  const authedConnected = await authedEvents.expect('connected', 5000, 'token connect', [
    'connecting',
  ]);
  check(
    typeof authedConnected.client === 'string' && authedConnected.client.length > 0,
    'token connect has a client id',
  );
  check(authedConnected.client !== anonConnected.client, 'client ids differ');
  await authedNews.expect('subscribed', 5000, 'token client subscribe', ['subscribing']);

  // Publication through the client (sub.publish).
  const clientData = { text: 'from sub.publish', unicode: 'héllo ✓', n: 2 };
  const publishResult = await withTimeout(authedSub.publish(clientData), 5000, 'sub.publish');
  log('sub.publish result', publishResult);
  for (const [who, inbox] of [
    ['anon', anonNews],
    ['authed', authedNews],
  ]) {
    const p = await inbox.expect('publication', 5000, `${who} receives the client publication`);
    checkEqual(p.data, clientData, `${who}: publication data (sub.publish)`);
    checkEqual(p.info?.user, 'user-42', `${who}: publisher user`);
    checkEqual(p.info?.client, authedConnected.client, `${who}: publisher client id`);
    checkEqual(p.info?.connInfo, { name: 'Forty Two' }, `${who}: publisher conn info`);
  }
  await anonNews.expectNone(300, 'no duplicate publications');

  anon.disconnect();
  authed.disconnect();
  await anonEvents.expect('disconnected', 5000, 'anon disconnect');
  await authedEvents.expect('disconnected', 5000, 'authed disconnect');
  return {
    anonymous_client: anonConnected.client,
    token_client: authedConnected.client,
    user: 'user-42',
  };
});
