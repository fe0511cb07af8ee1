"""Soak load for scripts/soak.sh: raw Centrifugo protocol v2 (JSON over WebSocket) and the HTTP API.

Load (all bounded):
- STABLE subscribers (1,000), each on its own channel `soak:c<i>` and on the shared `soak:all`;
- churn clients: CHURN_RATE connects/s (100), each subscribes to a random `soak:c<j>`, stays
  0.5-1.5 s and leaves (a fifth of them drop the TCP connection without a close handshake), so
  about as many disconnects/s;
- subscribe/unsubscribe churn on stable connections: SUB_CHURN_RATE/s (20) subscribe an extra
  random channel and unsubscribe it about 1 s later;
- PUB_RATE publications/s (500) round-robin over the 1,000 channels through `POST /api/publish`,
  each carrying a per-channel sequence number, plus 1/s into `soak:all`;
- HISTORY_RATE history reads/s (20) through `POST /api/history`.

Before the run every channel's history (size 100) is filled through `/api/batch` (one
publication per command), so the history buffers are at their steady size from the start and
RSS growth means something.
Churn stops CHURN_STOP seconds (10) before the end. Every 10 s the server's VmRSS, open files
and a few gauges from /metrics are written to the CSV (pushwire exports no queued-bytes gauge,
so there is no such column).

Pass: after the warm-up (20 % of the run, at least 30 s) the median RSS of the last 3 samples is
< 5 % above the first post-warm-up sample; open files at the end are within +20 of the count
before churn started; every stable subscriber received every acknowledged publication of its
channel and of `soak:all` exactly once and in order; no stable connection was closed; churn,
publish and history errors stay under 25 % (counted, the first one printed). Prints
`SOAK PASS …` and exits 0, or `SOAK FAIL …` with one `FAIL: <reason>` line per failed
criterion and exits 1.
"""

import argparse
import asyncio
import csv
import json
import multiprocessing as mp
import os
import random
import statistics
import sys
import time
from typing import Dict, List, Optional, Set

import aiohttp
from websockets.asyncio.client import connect as ws_connect

PAD = "x" * 64
API_POOL = 64  # HTTP API connections at most (kept alive)
T0 = time.monotonic()


def log(*args) -> None:
    print(f"[{time.monotonic() - T0:8.1f} s]", *args, flush=True)


class Stats:
    def __init__(self) -> None:
        self.deliveries = 0  # checked deliveries to stable subscribers (own channel + soak:all)
        self.extra_deliveries = 0  # publications of sub-churn channels on stable connections
        self.churn_ok = 0
        self.churn_err = 0
        self.churn_first_err: Optional[str] = None
        self.churn_aborted = 0
        self.sub_churn_ok = 0
        self.sub_churn_err = 0
        self.sub_churn_first_err: Optional[str] = None
        self.pub_ok = 0
        self.pub_err = 0
        self.pub_first_err: Optional[str] = None
        self.hist_ok = 0
        self.hist_err = 0
        self.hist_first_err: Optional[str] = None
        self.pings = 0
        self.stable_failures: List[str] = []


S = Stats()


def first(old: Optional[str], new: str) -> str:
    return old if old is not None else new


class Stable:
    """One stable subscriber: `soak:c<i>` + `soak:all`; records the sequence numbers it gets."""

    def __init__(self, i: int, ws_url: str) -> None:
        self.i = i
        self.channel = f"soak:c{i}"
        self.ws_url = ws_url
        self.ws = None
        self.got: List[int] = []
        self.got_all: List[int] = []
        self.next_id = 10
        self.pending: Dict[int, str] = {}
        self.extra: Set[str] = set()
        self.closing = False
        self.reader: Optional[asyncio.Task] = None

    async def start(self) -> None:
        self.ws = await ws_connect(
            self.ws_url, ping_interval=None, max_queue=None, open_timeout=20, compression=None
        )
        await self.ws.send(
            '{"id":1,"connect":{}}\n'
            f'{{"id":2,"subscribe":{{"channel":"{self.channel}"}}}}\n'
            '{"id":3,"subscribe":{"channel":"soak:all"}}'
        )
        replies = {}
        while len(replies) < 3:
            frame = await asyncio.wait_for(self.ws.recv(), 20)
            for line in frame.split("\n"):
                if not line:
                    continue
                msg = json.loads(line)
                if "id" in msg:
                    replies[msg["id"]] = msg
                elif not msg:
                    await self.ws.send("{}")
        for rid, msg in replies.items():
            if "error" in msg:
                raise RuntimeError(f"stable {self.i}: reply {rid} error {msg['error']}")
        self.reader = asyncio.create_task(self.read())

    async def read(self) -> None:
        ws = self.ws
        why = "connection ended"
        try:
            async for frame in ws:
                for line in frame.split("\n"):
                    if not line:
                        continue
                    msg = json.loads(line)
                    if not msg:
                        S.pings += 1
                        await ws.send("{}")
                        continue
                    push = msg.get("push")
                    if push is not None:
                        self.on_push(push)
                        continue
                    rid = msg.get("id")
                    kind = self.pending.pop(rid, None)
                    if "error" in msg:
                        S.sub_churn_err += 1
                        S.sub_churn_first_err = first(
                            S.sub_churn_first_err, f"{kind}: {msg['error']}"
                        )
                    elif kind is not None:
                        S.sub_churn_ok += 1
        except Exception as e:  # noqa: BLE001 - any failure of a stable client is reported
            why = f"{type(e).__name__}: {e}"
        if not self.closing:
            code = ws.close_code
            reason = ws.close_reason
            S.stable_failures.append(
                f"stable {self.channel} lost its connection ({why}; close code {code} {reason!r})"
            )

    def on_push(self, push: dict) -> None:
        channel = push.get("channel")
        pub = push.get("pub")
        if pub is None:
            if channel in (self.channel, "soak:all") or "disconnect" in push:
                S.stable_failures.append(f"stable {self.channel}: unexpected push {push}")
            return
        if channel == self.channel:
            self.got.append(pub["data"]["s"])
            S.deliveries += 1
        elif channel == "soak:all":
            self.got_all.append(pub["data"]["s"])
            S.deliveries += 1
        else:
            S.extra_deliveries += 1

    async def sub_churn(self, nchannels: int) -> None:
        """Subscribes an extra channel, unsubscribes it about a second later."""
        j = random.randrange(nchannels)
        channel = f"soak:c{j}"
        if j == self.i or channel in self.extra:
            return
        self.extra.add(channel)
        try:
            self.next_id += 1
            self.pending[self.next_id] = "subscribe"
            await self.ws.send(f'{{"id":{self.next_id},"subscribe":{{"channel":"{channel}"}}}}')
            await asyncio.sleep(random.uniform(0.5, 1.5))
            self.next_id += 1
            self.pending[self.next_id] = "unsubscribe"
            await self.ws.send(f'{{"id":{self.next_id},"unsubscribe":{{"channel":"{channel}"}}}}')
            await asyncio.sleep(0.5)
        except Exception as e:  # noqa: BLE001 - the reader reports the connection loss
            S.sub_churn_err += 1
            S.sub_churn_first_err = first(S.sub_churn_first_err, f"send: {e}")
        finally:
            self.extra.discard(channel)

    async def close(self) -> None:
        self.closing = True
        await self.ws.close()
        if self.reader is not None:
            await asyncio.wait([self.reader], timeout=5)


async def churn_client(ws_url: str, nchannels: int) -> None:
    """One churn client: connect, subscribe a random channel, stay about a second, leave."""
    try:
        async with asyncio.timeout(15):
            ws = await ws_connect(ws_url, ping_interval=None, open_timeout=10, compression=None)
            try:
                channel = f"soak:c{random.randrange(nchannels)}"
                await ws.send(
                    '{"id":1,"connect":{}}\n'
                    f'{{"id":2,"subscribe":{{"channel":"{channel}"}}}}'
                )
                replies = 0
                while replies < 2:
                    for line in (await ws.recv()).split("\n"):
                        if not line:
                            continue
                        msg = json.loads(line)
                        if "error" in msg:
                            raise RuntimeError(f"reply error {msg['error']}")
                        if "id" in msg:
                            replies += 1
                stay = random.uniform(0.5, 1.5)
                try:
                    async with asyncio.timeout(stay):
                        async for _ in ws:
                            pass
                    raise RuntimeError(f"server closed a churn client ({ws.close_code})")
                except TimeoutError:
                    pass
                if random.random() < 0.2:
                    ws.transport.abort()
                    S.churn_aborted += 1
                else:
                    await ws.close()
            except BaseException:
                ws.transport.abort()
                raise
        S.churn_ok += 1
    except Exception as e:  # noqa: BLE001 - counted and reported
        S.churn_err += 1
        S.churn_first_err = first(S.churn_first_err, f"{type(e).__name__}: {e}")
        if S.churn_err in (1, 10, 100) or S.churn_err % 1000 == 0:
            log(f"churn error #{S.churn_err}: {type(e).__name__}: {e}")


class Api:
    def __init__(self, http_url: str, key: str) -> None:
        self.url = http_url.rstrip("/")
        self.headers = {"X-API-Key": key, "Content-Type": "application/json"}
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=API_POOL),
            timeout=aiohttp.ClientTimeout(total=10),
        )

    async def call(self, method: str, body: dict) -> dict:
        async with self.session.post(
            f"{self.url}/api/{method}", data=json.dumps(body), headers=self.headers
        ) as r:
            text = await r.text()
            if r.status != 200:
                raise RuntimeError(f"HTTP {r.status}: {text[:200]}")
            reply = json.loads(text)
            if "error" in reply:
                raise RuntimeError(f"error {reply['error']}")
            return reply.get("result", {})

    async def metrics(self) -> Dict[str, float]:
        out: Dict[str, float] = {}
        async with self.session.get(f"{self.url}/metrics") as r:
            for line in (await r.text()).splitlines():
                if line.startswith("#") or " " not in line:
                    continue
                name, value = line.rsplit(" ", 1)
                try:
                    out[name] = float(value)
                except ValueError:
                    pass
        return out


class Publisher:
    """Per-channel sequence numbers; a channel's publishes go one at a time, in order."""

    def __init__(self, api: Api, nchannels: int) -> None:
        self.api = api
        self.locks = [asyncio.Lock() for _ in range(nchannels)]
        self.seq = [0] * nchannels
        self.acked: List[List[int]] = [[] for _ in range(nchannels)]
        self.uncertain: List[Set[int]] = [set() for _ in range(nchannels)]
        self.all_seq = 0
        self.all_acked: List[int] = []
        self.all_uncertain: Set[int] = set()
        self.inflight = asyncio.Semaphore(API_POOL)

    async def publish(self, c: int) -> None:
        async with self.inflight, self.locks[c]:
            self.seq[c] += 1
            s = self.seq[c]
            try:
                await self.api.call(
                    "publish", {"channel": f"soak:c{c}", "data": {"s": s, "pad": PAD}}
                )
                self.acked[c].append(s)
                S.pub_ok += 1
            except Exception as e:  # noqa: BLE001 - counted; the publication may still exist
                self.uncertain[c].add(s)
                S.pub_err += 1
                S.pub_first_err = first(S.pub_first_err, f"soak:c{c}: {type(e).__name__}: {e}")
                if S.pub_err in (1, 10, 100) or S.pub_err % 1000 == 0:
                    log(f"publish error #{S.pub_err}: soak:c{c}: {type(e).__name__}: {e}")

    async def publish_all(self) -> None:
        self.all_seq += 1
        s = self.all_seq
        try:
            await self.api.call("publish", {"channel": "soak:all", "data": {"s": s, "pad": PAD}})
            self.all_acked.append(s)
            S.pub_ok += 1
        except Exception as e:  # noqa: BLE001
            self.all_uncertain.add(s)
            S.pub_err += 1
            S.pub_first_err = first(S.pub_first_err, f"soak:all: {type(e).__name__}: {e}")


# Shared counters between the processes (index into a multiprocessing Array).
C_PUB_OK, C_PUB_ERR, C_HIST_OK, C_HIST_ERR, C_CHURN_OK, C_CHURN_ERR = range(6)


def publisher_process(a, n: int, end: float, counters, conn) -> None:
    """Child process: publications (per-channel and soak:all) and history reads until `end`."""

    async def run() -> dict:
        api = Api(a.http_url, a.api_key)
        pub = Publisher(api, n)
        pub_tasks: Set[asyncio.Task] = set()
        hist_tasks: Set[asyncio.Task] = set()
        rr = iter(range(10**12))

        async def history_read() -> None:
            c = random.randrange(n)
            try:
                r = await api.call("history", {"channel": f"soak:c{c}", "limit": 10})
                if len(r.get("publications", [])) != 10:
                    raise RuntimeError(f"{len(r.get('publications', []))} publications, want 10")
                S.hist_ok += 1
            except Exception as e:  # noqa: BLE001
                S.hist_err += 1
                S.hist_first_err = first(S.hist_first_err, f"soak:c{c}: {type(e).__name__}: {e}")

        async def all_loop() -> None:
            while time.monotonic() < end:
                await pub.publish_all()
                await asyncio.sleep(1)

        async def count() -> None:
            while time.monotonic() < end + 1:
                counters[C_PUB_OK], counters[C_PUB_ERR] = S.pub_ok, S.pub_err
                counters[C_HIST_OK], counters[C_HIST_ERR] = S.hist_ok, S.hist_err
                await asyncio.sleep(0.5)

        counter = asyncio.create_task(count())
        pub_skipped, hist_skipped, _ = await asyncio.gather(
            paced(a.pub_rate, end, lambda: pub.publish(next(rr) % n), pub_tasks, API_POOL * 2),
            paced(a.history_rate, end, history_read, hist_tasks, 16),
            all_loop(),
        )
        rest = list(pub_tasks | hist_tasks)
        if rest:
            await asyncio.wait(rest, timeout=20)
        counter.cancel()
        await api.session.close()
        return {
            "acked": pub.acked,
            "uncertain": [sorted(u) for u in pub.uncertain],
            "all_acked": pub.all_acked,
            "all_uncertain": sorted(pub.all_uncertain),
            "pub_ok": S.pub_ok, "pub_err": S.pub_err, "pub_first_err": S.pub_first_err,
            "hist_ok": S.hist_ok, "hist_err": S.hist_err, "hist_first_err": S.hist_first_err,
            "pub_skipped": pub_skipped, "hist_skipped": hist_skipped,
        }

    conn.send(asyncio.run(run()))
    conn.close()


def churn_process(a, n: int, end: float, counters, conn) -> None:
    """Child process: churn clients (connect, subscribe, ~1 s, leave) until `end`."""

    async def run() -> dict:
        tasks: Set[asyncio.Task] = set()

        async def count() -> None:
            while True:
                counters[C_CHURN_OK], counters[C_CHURN_ERR] = S.churn_ok, S.churn_err
                await asyncio.sleep(0.5)

        counter = asyncio.create_task(count())
        skipped = await paced(a.churn_rate, end, lambda: churn_client(a.ws_url, n), tasks,
                              a.churn_max)
        # Churn stops at `end`: stragglers get 3 s, then their sockets are dropped.
        if tasks:
            await asyncio.wait(list(tasks), timeout=3)
        late = len(tasks)
        for t in list(tasks):
            t.cancel()
        if tasks:
            await asyncio.wait(list(tasks), timeout=5)
        counter.cancel()
        return {"churn_ok": S.churn_ok, "churn_err": S.churn_err,
                "churn_first_err": S.churn_first_err, "churn_aborted": S.churn_aborted,
                "churn_skipped": skipped, "churn_cut": late}

    conn.send(asyncio.run(run()))
    conn.close()


async def paced(rate: float, until: float, spawn, tasks: Set[asyncio.Task], cap: int) -> int:
    """Starts `spawn()` `rate` times a second until `until` (monotonic), at most `cap` running;
    a start due while `cap` are running is skipped, not made up later. Returns the skipped."""
    start = time.monotonic()
    slots = 0
    skipped = 0
    while True:
        now = time.monotonic()
        if now >= until:
            return skipped
        due = int((now - start) * rate) - slots
        for _ in range(max(0, due)):
            slots += 1
            if len(tasks) >= cap:
                skipped += 1
                continue
            t = asyncio.create_task(spawn())
            tasks.add(t)
            t.add_done_callback(tasks.discard)
        await asyncio.sleep(0.01)


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def check_sequence(name: str, got: List[int], acked: List[int], uncertain: Set[int]) -> List[str]:
    """Every acknowledged number exactly once, in order; unacknowledged ones may appear."""
    problems = []
    dups = len(got) - len(set(got))
    if dups:
        problems.append(f"{name}: {dups} duplicates")
    if any(b <= a for a, b in zip(got, got[1:])):
        problems.append(f"{name}: out of order")
    have = set(got)
    missing = [s for s in acked if s not in have]
    if missing:
        problems.append(f"{name}: {len(missing)} lost, first {missing[:5]}")
    unknown = have - set(acked) - uncertain
    if unknown:
        problems.append(f"{name}: {len(unknown)} never published, e.g. {sorted(unknown)[:5]}")
    return problems


def plot_rss(csv_path: str, svg_path: str, limit_pct: float = 5.0) -> None:
    """Writes an SVG line chart of the server's RSS over time from a soak CSV: warm-up
    shaded, the post-warm-up baseline and the +limit_pct line dashed."""
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    t = [float(r["t_secs"]) / 60 for r in rows]
    mb = [int(r["rss_kb"]) / 1024 for r in rows]
    post = [i for i, r in enumerate(rows) if r["phase"] != "warmup"]
    base = mb[post[0]] if post else mb[0]
    w, h, left, right, top, bottom = 720, 320, 60, 20, 30, 40
    t_max = max(t) or 1
    y_lo = min(min(mb), base) * 0.95
    y_hi = max(max(mb), base * (1 + limit_pct / 100)) * 1.02

    def x(v: float) -> float:
        return left + (w - left - right) * v / t_max

    def y(v: float) -> float:
        return top + (h - top - bottom) * (1 - (v - y_lo) / (y_hi - y_lo))

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
           f'viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>']
    if post:
        out.append(f'<rect x="{x(0):.1f}" y="{top}" width="{x(t[post[0]]) - x(0):.1f}" '
                   f'height="{h - top - bottom}" fill="#eee"/>')
        out.append(f'<text x="{x(0) + 4:.1f}" y="{top + 14}" fill="#666">warm-up</text>')
    for k in range(6):
        v = y_lo + (y_hi - y_lo) * k / 5
        out.append(f'<line x1="{left}" x2="{w - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
                   f'stroke="#ddd"/><text x="{left - 6}" y="{y(v) + 4:.1f}" '
                   f'text-anchor="end">{v:.0f}</text>')
    for k in range(7):
        v = t_max * k / 6
        out.append(f'<text x="{x(v):.1f}" y="{h - bottom + 16}" text-anchor="middle">'
                   f'{v:.{0 if t_max >= 6 else 1}f}</text>')
    for v, label in [(base, "baseline"), (base * (1 + limit_pct / 100), f"+{limit_pct:g} % limit")]:
        out.append(f'<line x1="{left}" x2="{w - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
                   f'stroke="#c33" stroke-dasharray="5,4"/><text x="{w - right - 4}" '
                   f'y="{y(v) - 4:.1f}" text-anchor="end" fill="#c33">{label}</text>')
    pts = " ".join(f"{x(a):.1f},{y(b):.1f}" for a, b in zip(t, mb))
    out.append(f'<polyline points="{pts}" fill="none" stroke="#1f5fbf" stroke-width="2"/>')
    out.append(f'<text x="{w / 2}" y="{h - 6}" text-anchor="middle">minutes</text>')
    out.append(f'<text x="14" y="{h / 2}" text-anchor="middle" '
               f'transform="rotate(-90 14 {h / 2})">server RSS (MiB)</text>')
    out.append(f'<text x="{w / 2}" y="18" text-anchor="middle" font-weight="bold">'
               f'pushwire soak: server RSS every 10 s ({t_max:.0f} min)</text>')
    out.append("</svg>")
    with open(svg_path, "w") as f:
        f.write("\n".join(out) + "\n")


async def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ws-url", required=True)
    p.add_argument("--http-url", required=True)
    p.add_argument("--api-key", required=True)
    p.add_argument("--server-pid", type=int, required=True)
    p.add_argument("--duration", type=float, default=120)
    p.add_argument("--csv", default="soak.csv")
    p.add_argument("--stable", type=int, default=1000)
    p.add_argument("--churn-rate", type=float, default=100)
    p.add_argument("--sub-churn-rate", type=float, default=20)
    p.add_argument("--pub-rate", type=float, default=500)
    p.add_argument("--history-rate", type=float, default=20)
    p.add_argument("--churn-max", type=int, default=250, help="churn clients at once at most")
    p.add_argument("--churn-stop", type=float, default=10, help="seconds without churn at the end")
    p.add_argument("--sample-every", type=float, default=10)
    p.add_argument("--rss-growth-max", type=float, default=5.0, help="percent")
    p.add_argument("--fd-slack", type=int, default=20)
    a = p.parse_args()
    n = a.stable
    pid = a.server_pid
    warmup = max(0.2 * a.duration, 30.0)
    if a.duration < warmup + 3 * a.sample_every:
        print(f"FAIL: --duration {a.duration} leaves fewer than 3 samples after the {warmup:.0f} s warm-up")
        return 1

    api = Api(a.http_url, a.api_key)
    failures: List[str] = []
    try:
        # Fill every channel's history to its size (100) so its memory is steady from the start.
        log(f"filling the history of {n} channels")
        # One publication per command (a broadcast would share one payload between channels).
        chans = [f"soak:c{i}" for i in range(n)] + ["soak:all"]
        fill = [{"publish": {"channel": c, "data": {"fill": k, "pad": PAD}}}
                for k in range(100) for c in chans]
        batches = [fill[i:i + 500] for i in range(0, len(fill), 500)]
        fill_sem = asyncio.Semaphore(4)

        async def fill_batch(commands: list) -> None:
            async with fill_sem:
                async with api.session.post(
                    f"{api.url}/api/batch", data=json.dumps({"commands": commands}),
                    headers=api.headers, timeout=aiohttp.ClientTimeout(total=60),
                ) as r:
                    reply = await r.json(content_type=None)
                if r.status != 200 or any("error" in x for x in reply.get("replies", [{}])):
                    raise RuntimeError(f"history fill: HTTP {r.status} {str(reply)[:200]}")

        await asyncio.gather(*(fill_batch(b) for b in batches))

        log(f"connecting {n} stable subscribers")
        stables = [Stable(i, a.ws_url) for i in range(n)]
        sem = asyncio.Semaphore(50)

        async def start(s: Stable) -> None:
            async with sem:
                await s.start()

        await asyncio.gather(*(start(s) for s in stables))
        log("stable subscribers connected")

        # Open the API pool up to its size before the baseline, so its sockets count there too.
        await asyncio.gather(
            *(api.call("history", {"channel": "soak:c0", "limit": 1}) for _ in range(API_POOL))
        )

        rows = []
        csv_file = open(a.csv, "w", newline="")
        writer = csv.writer(csv_file)
        writer.writerow(
            ["t_secs", "phase", "rss_kb", "open_fds", "ws_connections", "subscriptions",
             "channels", "publications_acked", "deliveries", "churn_connects", "history_reads",
             "queued_bytes"]
        )

        begin = time.monotonic()
        end = begin + a.duration
        churn_end = end - a.churn_stop
        pub_end = end - 2

        ctx = mp.get_context("spawn")
        counters = ctx.Array("q", 8, lock=False)
        pub_rx, pub_tx = ctx.Pipe(duplex=False)
        churn_rx, churn_tx = ctx.Pipe(duplex=False)
        pub_proc = ctx.Process(target=publisher_process, args=(a, n, pub_end, counters, pub_tx),
                               daemon=True)
        churn_proc = ctx.Process(target=churn_process, args=(a, n, churn_end, counters, churn_tx),
                                 daemon=True)

        async def sampler() -> None:
            k = 0
            while True:
                t_due = begin + k * a.sample_every
                if t_due > end + 0.5:
                    return
                await asyncio.sleep(max(0.0, t_due - time.monotonic()))
                t = time.monotonic() - begin
                try:
                    rss, fds = rss_kb(pid), open_fds(pid)
                    m = await api.metrics()
                except Exception as e:  # noqa: BLE001
                    failures.append(f"server sample failed at {t:.0f} s: {e}")
                    return
                phase = "warmup" if t < warmup else ("churn" if t < a.duration - a.churn_stop else "quiet")
                row = [round(t, 1), phase, rss, fds,
                       int(m.get('pushwire_connections{transport="websocket"}', -1)),
                       int(m.get('pushwire_subscriptions{transport="websocket"}', -1)),
                       int(m.get("pushwire_channels", -1)),
                       counters[C_PUB_OK], S.deliveries, counters[C_CHURN_OK], counters[C_HIST_OK],
                       int(m.get("pushwire_queued_bytes", -1))]
                rows.append(row)
                writer.writerow(row)
                csv_file.flush()
                log(f"sample {row}  churn_err={counters[C_CHURN_ERR]} pub_err={counters[C_PUB_ERR]} "
                    f"hist_err={counters[C_HIST_ERR]} stable_failures={len(S.stable_failures)}")
                if k == 0:
                    pub_proc.start()
                    churn_proc.start()
                k += 1

        log(f"load for {a.duration:.0f} s: warm-up {warmup:.0f} s, churn stops at "
            f"{a.duration - a.churn_stop:.0f} s")
        loop = asyncio.get_running_loop()
        sub_tasks: Set[asyncio.Task] = set()
        sample_task = asyncio.create_task(sampler())
        sub_churn = asyncio.create_task(
            paced(a.sub_churn_rate, churn_end, lambda: random.choice(stables).sub_churn(n),
                  sub_tasks, 2000)
        )
        while time.monotonic() < end and not S.stable_failures and not sample_task.done():
            await asyncio.sleep(0.5)
        if S.stable_failures or failures:
            failures.append("stopped early")
            for p_ in (pub_proc, churn_proc):
                if p_.is_alive():
                    p_.kill()
            sub_churn.cancel()
            sample_task.cancel()
            csv_file.close()
            failures.extend(S.stable_failures[:10])
            for f in failures:
                print(f"FAIL: {f}", flush=True)
            print(f"SOAK FAIL stopped early; csv={a.csv}", flush=True)
            return 1
        await sample_task
        await sub_churn
        if sub_tasks:
            await asyncio.wait(list(sub_tasks), timeout=10)

        # Results of the child processes.
        async def result(rx, proc, what: str) -> dict:
            ready = await loop.run_in_executor(None, rx.poll, 60)
            if not ready:
                raise RuntimeError(f"the {what} process gave no result (exit code {proc.exitcode})")
            return rx.recv()

        pr = await result(pub_rx, pub_proc, "publisher")
        cr = await result(churn_rx, churn_proc, "churn")
        pub_proc.join(5)
        churn_proc.join(5)
        acked: List[List[int]] = pr["acked"]
        uncertain = [set(u) for u in pr["uncertain"]]
        all_acked: List[int] = pr["all_acked"]
        all_uncertain = set(pr["all_uncertain"])
        S.pub_ok, S.pub_err, S.pub_first_err = pr["pub_ok"], pr["pub_err"], pr["pub_first_err"]
        S.hist_ok, S.hist_err, S.hist_first_err = pr["hist_ok"], pr["hist_err"], pr["hist_first_err"]
        S.churn_ok, S.churn_err = cr["churn_ok"], cr["churn_err"]
        S.churn_first_err, S.churn_aborted = cr["churn_first_err"], cr["churn_aborted"]

        # Stragglers: wait until every acknowledged publication has arrived (at most 15 s).
        expected = sum(len(x) for x in acked) + len(all_acked) * n
        deadline = time.monotonic() + 15
        while S.deliveries < expected and time.monotonic() < deadline and not S.stable_failures:
            await asyncio.sleep(0.2)

        # Verdict.
        failures.extend(S.stable_failures[:10])
        if len(S.stable_failures) > 10:
            failures.append(f"... {len(S.stable_failures) - 10} more stable failures")
        seq_problems: List[str] = []
        lost = 0
        for s in stables:
            seq_problems += check_sequence(s.channel, s.got, acked[s.i], uncertain[s.i])
            seq_problems += check_sequence(
                f"{s.channel} (soak:all)", s.got_all, all_acked, all_uncertain
            )
            lost += len(set(acked[s.i]) - set(s.got)) + len(set(all_acked) - set(s.got_all))
        failures.extend(seq_problems[:10])
        if len(seq_problems) > 10:
            failures.append(f"... {len(seq_problems) - 10} more sequence problems")

        def ratio(err: int, ok: int) -> float:
            return err / max(1, err + ok)

        for what, err, ok, first_err in [
            ("publish", S.pub_err, S.pub_ok, S.pub_first_err),
            ("churn connect", S.churn_err, S.churn_ok, S.churn_first_err),
            ("subscribe churn", S.sub_churn_err, S.sub_churn_ok, S.sub_churn_first_err),
            ("history", S.hist_err, S.hist_ok, S.hist_first_err),
        ]:
            # Timeouts come in bursts on a loaded machine; a broken server fails most calls.
            if ratio(err, ok) > 0.25:
                failures.append(f"{what}: {err} errors of {err + ok} (> 25 %), first: {first_err}")

        post = [r for r in rows if r[0] >= warmup - 0.5]
        rss_start = rss_end = growth = None
        fd_base = rows[0][3] if rows else None
        fd_end = rows[-1][3] if rows else None
        if len(post) >= 4:
            rss_start = post[0][2]
            rss_end = statistics.median(r[2] for r in post[-3:])
            growth = 100.0 * (rss_end - rss_start) / rss_start
            if growth >= a.rss_growth_max:
                failures.append(
                    f"RSS grew {growth:.2f} % after warm-up ({rss_start} kB at {post[0][0]:.0f} s "
                    f"-> median {rss_end:.0f} kB of the last 3 samples), limit {a.rss_growth_max} %"
                )
        elif not S.stable_failures:
            failures.append(f"only {len(post)} samples after the warm-up, need 4")
        # A loaded server may still be closing the last churn sockets: give it 15 s.
        fd_wait = 0.0
        if fd_base is not None:
            t_end = time.monotonic()
            while fd_end - fd_base > a.fd_slack and time.monotonic() - t_end < 15:
                await asyncio.sleep(1)
                fd_end = open_fds(pid)
            fd_wait = time.monotonic() - t_end
            if fd_end - fd_base > a.fd_slack:
                failures.append(
                    f"open files {fd_end} 15 s after the end vs {fd_base} before churn "
                    f"(> +{a.fd_slack})"
                )

        csv_file.close()
        for s in stables:
            if s.ws is not None:
                s.closing = True
        await asyncio.gather(*(s.close() for s in stables), return_exceptions=True)

        verdict = "PASS" if not failures else "FAIL"
        g = f"{growth:+.2f}%" if growth is not None else "n/a"
        print(
            f"SOAK {verdict} duration={a.duration:.0f}s warmup={warmup:.0f}s "
            f"rss_start_kb={rss_start} rss_end_kb={rss_end} rss_growth={g} "
            f"fds_before_churn={fd_base} fds_end={fd_end} (after {fd_wait:.0f} s) "
            f"max_fds={max((r[3] for r in rows), default=None)} "
            f"published={S.pub_ok} ({S.pub_ok / a.duration:.0f}/s) publish_errors={S.pub_err} "
            f"deliveries={S.deliveries} expected={expected} lost={lost} "
            f"extra_deliveries={S.extra_deliveries} "
            f"churn_connects={S.churn_ok} ({S.churn_ok / (a.duration - a.churn_stop):.0f}/s) "
            f"churn_aborted={S.churn_aborted} churn_errors={S.churn_err} "
            f"churn_skipped={cr['churn_skipped']} churn_cut_at_stop={cr['churn_cut']} "
            f"publish_skipped={pr['pub_skipped']} "
            f"sub_churn_replies={S.sub_churn_ok} sub_churn_errors={S.sub_churn_err} "
            f"history_reads={S.hist_ok} history_errors={S.hist_err} pings={S.pings} "
            f"csv={a.csv}",
            flush=True,
        )
        for what, err in [("publish", S.pub_first_err), ("churn", S.churn_first_err),
                          ("subscribe churn", S.sub_churn_first_err),
                          ("history", S.hist_first_err)]:
            if err is not None:
                print(f"first {what} error: {err}", flush=True)
        for f in failures:
            print(f"FAIL: {f}", flush=True)
        return 0 if not failures else 1
    finally:
        await api.session.close()


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--plot":
        # soak.py --plot SOAK.csv OUT.svg: the RSS chart of docs/benchmarks.md.
        plot_rss(sys.argv[2], sys.argv[3])
        sys.exit(0)
    sys.exit(asyncio.run(main()))
