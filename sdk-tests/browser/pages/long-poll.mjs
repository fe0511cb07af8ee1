// A plain long-polling loop with fetch on /connection/long_poll, no SDK: it keeps its position
// (offset, epoch) and asks from there, so it receives every publication even when a poll is cut
// short by the server or the loop is stopped and restarted.

export const state = {
  received: [], // {offset, data}
  polls: 0,
  answers: [], // {publications, offset, epoch, reload, ms}
  errors: [],
  running: false,
  position: null,
};

let controller = null;
let loopDone = Promise.resolve();
let params = null;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function loop() {
  const { httpUrl, channel, token } = params;
  while (state.running) {
    const q = new URLSearchParams({ channel, timeout: '10' });
    if (state.position) {
      q.set('offset', String(state.position.offset));
      q.set('epoch', state.position.epoch);
    }
    controller = new AbortController();
    const started = Date.now();
    state.polls += 1;
    try {
      const resp = await fetch(`${httpUrl}/connection/long_poll?${q}`, {
        headers: { Authorization: `Bearer ${token}` },
        signal: controller.signal,
      });
      const answer = await resp.json();
      if (!resp.ok) {
        state.errors.push({ status: resp.status, answer });
        await sleep(200);
        continue;
      }
      state.answers.push({
        publications: answer.publications.length,
        offset: answer.offset,
        epoch: answer.epoch,
        reload: answer.reload,
        ms: Date.now() - started,
      });
      for (const p of answer.publications) {
        state.received.push({ offset: p.offset, data: p.data });
      }
      state.position = { offset: answer.offset, epoch: answer.epoch };
    } catch (e) {
      if (!state.running) {
        break;
      }
      state.errors.push({ error: String(e) });
      await sleep(200);
    }
  }
}

export function start(p) {
  params = p;
  state.running = true;
  loopDone = loop();
}

/** Stops the loop and aborts the poll in flight; resolves when the loop has ended. */
export async function stop() {
  state.running = false;
  if (controller) {
    controller.abort();
  }
  await loopDone;
}

/** Starts the loop again from the position it kept. */
export function restart() {
  state.running = true;
  loopDone = loop();
}
