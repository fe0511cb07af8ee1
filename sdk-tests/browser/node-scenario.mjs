// centrifuge-js 5.8 in Node 20 over one transport: `node node-scenario.mjs <case>`.
//
// Cases:
// - websocket, http_stream, sse: a transports array with that single entry;
// - fallback-http_stream: [websocket to a 404 path, http_stream, sse] must land on http_stream;
// - fallback-sse: [websocket to a 404 path, http_stream to a 404 path, sse] must land on sse;
// - protobuf-websocket: the protobuf build (`centrifuge/build/protobuf`) over WebSocket;
// - delta-websocket, delta-protobuf-websocket, delta-http_stream: Fossil delta compression
//   (scenario.mjs `deltaScenario`) with the JSON or protobuf build.
//
// Node 20 has no global WebSocket or EventSource: `ws` and `eventsource@4` are passed in; fetch
// and ReadableStream are global. The emulation endpoint is an absolute URL.

import { createRequire } from 'node:module';

import { EventSource } from 'eventsource';
import WebSocket from 'ws';

import { api, env, log, main, tokenFor, unique } from './lib.mjs';
import { bytesCodec, deltaScenario, jsonCodec, recoveryScenario } from './scenario.mjs';

const require = createRequire(import.meta.url);
const which = process.argv[2];
const ws = { transport: 'websocket', endpoint: env.wsUrl };
const blockedWs = {
  transport: 'websocket',
  endpoint: env.wsUrl.replace('/connection/websocket', '/connection/blocked'),
};
const httpStream = { transport: 'http_stream', endpoint: `${env.httpUrl}/connection/http_stream` };
const blockedHttpStream = { transport: 'http_stream', endpoint: `${env.httpUrl}/connection/blocked` };
const sse = { transport: 'sse', endpoint: `${env.httpUrl}/connection/sse` };

const cases = {
  websocket: { endpoints: [ws], expect: 'websocket' },
  http_stream: { endpoints: [httpStream], expect: 'http_stream' },
  sse: { endpoints: [sse], expect: 'sse' },
  'fallback-http_stream': { endpoints: [blockedWs, httpStream, sse], expect: 'http_stream' },
  'fallback-sse': { endpoints: [blockedWs, blockedHttpStream, sse], expect: 'sse' },
  'protobuf-websocket': { endpoints: [ws], expect: 'websocket', protobuf: true },
  'delta-websocket': { endpoints: [ws], delta: true },
  'delta-protobuf-websocket': { endpoints: [ws], protobuf: true, delta: true },
  'delta-http_stream': { endpoints: [httpStream], delta: true },
};

main(`node-scenario ${which}`, async () => {
  const c = cases[which];
  if (!c) {
    throw new Error(`unknown case ${which}; one of ${Object.keys(cases).join(', ')}`);
  }
  const { Centrifuge } = c.protobuf
    ? require('centrifuge/build/protobuf')
    : require('centrifuge');
  const user = unique('user-');
  if (c.delta) {
    const result = await deltaScenario({
      Centrifuge,
      endpoints: c.endpoints,
      options: {
        websocket: WebSocket,
        eventsource: EventSource,
        emulationEndpoint: `${env.httpUrl}/emulation`,
      },
      token: tokenFor(user),
      user,
      channel: unique('delta:'),
      plainChannel: unique('chat:'),
      api,
      log,
      codec: c.protobuf ? bytesCodec : jsonCodec,
    });
    return { case: which, protobuf: Boolean(c.protobuf), ...result };
  }
  const result = await recoveryScenario({
    Centrifuge,
    endpoints: c.endpoints,
    options: {
      websocket: WebSocket,
      eventsource: EventSource,
      emulationEndpoint: `${env.httpUrl}/emulation`,
    },
    expectTransport: c.expect,
    token: tokenFor(user),
    user,
    channel: unique('chat:'),
    api,
    log,
    codec: c.protobuf ? bytesCodec : jsonCodec,
  });
  return { case: which, protobuf: Boolean(c.protobuf), ...result };
});
