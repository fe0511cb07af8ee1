// The cut-the-line scenario shared by recovery.mjs and gap.mjs.
//
// A centrifuge-js client subscribes through a CutProxy to a channel whose namespace forces
// recovery, receives one publication, loses its connection (the proxy destroys it and refuses
// reconnects for CUT_MS), misses `missed` publications made with cent.js meanwhile, and
// reconnects by itself once the proxy lets it through again.

import {
  centApi,
  centCall,
  check,
  checkEqual,
  CutProxy,
  env,
  log,
  newCentrifuge,
  recordClient,
  recordSubscription,
  sleep,
  uniqueChannel,
} from './lib.mjs';

/** How long the proxy refuses connections. */
export const CUT_MS = 1500;

/**
 * Runs the scenario on a fresh channel `<prefix><random>`. With `expectRecovered` the
 * resubscribe must recover exactly the missed publications; without, it must report
 * `recovered: false` and deliver none of them.
 */
export async function cutScenario({ prefix, missed, expectRecovered }) {
  const api = centApi();
  const channel = uniqueChannel(prefix);
  const publish = async (data) => {
    const r = await centCall(
      api.publish({ channel, data }),
      `cent.js publish ${JSON.stringify(data)}`,
    );
    log('cent.js publish result', r);
    return r;
  };
  const proxy = await CutProxy.start(env.wsUrl);
  const client = newCentrifuge(proxy.rewrite(env.wsUrl), {
    minReconnectDelay: 200,
    maxReconnectDelay: 1000,
  });
  const events = recordClient(client, 'client');
  const sub = client.newSubscription(channel);
  const subEvents = recordSubscription(sub, channel);
  sub.subscribe();
  client.connect();

  const firstConnect = await events.expect('connected', 5000, 'connect through the proxy', [
    'connecting',
  ]);
  const first = await subEvents.expect('subscribed', 5000, 'first subscribe', ['subscribing']);
  checkEqual(first.recoverable, true, 'first subscribe: recoverable (force_recovery)');
  checkEqual(first.wasRecovering, false, 'first subscribe: wasRecovering');
  check(first.streamPosition !== undefined, 'first subscribe: has a stream position');
  const epoch = first.streamPosition.epoch;

  const r0 = await publish({ n: 0, phase: 'before cut' });
  const p0 = await subEvents.expect('publication', 5000, 'live publication before the cut');
  checkEqual(p0.data, { n: 0, phase: 'before cut' }, 'live publication data');
  checkEqual(p0.offset, r0.offset, 'live publication offset = offset returned by cent.js');

  // Cut the line and wait until the SDK has noticed.
  const cutAt = Date.now();
  proxy.cut();
  await events.expect('connecting', 5000, 'client notices the cut', ['error']);
  await subEvents.expect('subscribing', 5000, 'subscription goes back to subscribing');

  const sent = [];
  for (let i = 1; i <= missed; i += 1) {
    const data = { n: i, phase: 'while away' };
    const r = await publish(data);
    sent.push({ data, offset: r.offset });
  }
  checkEqual(
    sent.map((s) => s.offset),
    sent.map((_, i) => p0.offset + 1 + i),
    'offsets returned by cent.js while away are consecutive',
  );
  await sleep(Math.max(0, CUT_MS - (Date.now() - cutAt)));
  proxy.restore();

  const again = await events.expect('connected', 10000, 'SDK reconnects by itself', [
    'connecting',
    'error',
  ]);
  check(again.client !== firstConnect.client, 'reconnect is a new connection (new client id)');
  check(proxy.refused > 0, 'SDK tried to reconnect while the line was cut');
  const resub = await subEvents.expect('subscribed', 5000, 'resubscribe after the reconnect');
  checkEqual(resub.wasRecovering, true, 'resubscribe: wasRecovering');
  checkEqual(resub.recovered, expectRecovered, 'resubscribe: recovered');
  checkEqual(resub.recoverable, true, 'resubscribe: recoverable');
  checkEqual(
    resub.hasRecoveredPublications,
    expectRecovered,
    'resubscribe: hasRecoveredPublications',
  );
  checkEqual(resub.streamPosition?.epoch, epoch, 'resubscribe: same epoch');
  const top = sent[sent.length - 1].offset;

  if (expectRecovered) {
    for (const s of sent) {
      const p = await subEvents.expect('publication', 5000, `recovered publication ${s.offset}`);
      checkEqual(p.data, s.data, `recovered publication ${s.offset}: data`);
      checkEqual(p.offset, s.offset, 'recovered publication offset');
    }
    await subEvents.expectNone(700, 'no duplicate or extra publications after recovery');
  } else {
    checkEqual(
      resub.streamPosition?.offset,
      top,
      'unrecovered resubscribe: position is the stream top',
    );
    await subEvents.expectNone(1000, 'no missed publications delivered when recovery failed');
  }

  // The stream goes on live from the right place.
  const rLive = await publish({ n: missed + 1, phase: 'after reconnect' });
  checkEqual(rLive.offset, top + 1, 'offset of the publication after the reconnect');
  const pLive = await subEvents.expect('publication', 5000, 'live publication after the reconnect');
  checkEqual(pLive.data, { n: missed + 1, phase: 'after reconnect' }, 'live publication data');
  checkEqual(pLive.offset, top + 1, 'live publication offset');
  await subEvents.expectNone(300, 'nothing else on the subscription');

  client.disconnect();
  await events.expect('disconnected', 5000, 'disconnect', ['error']);
  await proxy.close();
  return {
    channel,
    epoch,
    first_offset: p0.offset,
    missed_offsets: sent.map((s) => s.offset),
    final_offset: top + 1,
    recovered: resub.recovered,
    refused_while_cut: proxy.refused,
  };
}
