// A plain EventSource on /connection/uni_sse, no SDK: every publication of one channel, in
// order, across server-side disconnects. The browser reconnects by itself and sends the last
// `id:` back as Last-Event-ID, from which the server recovers what was missed.

export const state = {
  received: [], // {offset, data, recovered}
  opens: 0,
  errors: 0,
  connects: [], // the connect pushes' subscription results
  disconnects: [],
};

export function start({ httpUrl, channel, token }) {
  const connect = { token, subs: { [channel]: {} } };
  const url = `${httpUrl}/connection/uni_sse?cf_connect=${encodeURIComponent(JSON.stringify(connect))}`;
  const es = new EventSource(url);
  es.onopen = () => {
    state.opens += 1;
  };
  es.onerror = () => {
    state.errors += 1;
  };
  es.onmessage = (e) => {
    const push = JSON.parse(e.data);
    if (push.connect) {
      const sub = (push.connect.subs || {})[channel] || {};
      state.connects.push({
        recovered: Boolean(sub.recovered),
        wasRecovering: Boolean(sub.was_recovering),
        count: (sub.publications || []).length,
        lastEventId: e.lastEventId,
      });
      for (const p of sub.publications || []) {
        state.received.push({ offset: p.offset, data: p.data, recovered: true });
      }
    } else if (push.disconnect) {
      state.disconnects.push(push.disconnect);
    } else if (push.channel === channel && push.pub) {
      state.received.push({ offset: push.pub.offset, data: push.pub.data, recovered: false });
    }
  };
  window.pushwireEventSource = es;
}
