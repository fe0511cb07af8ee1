#!/usr/bin/env python3
"""Adversarial probe of a running pushwire (issue 14, item 6; docs/security.md).

Tries what an attacker would against one server on loopback, while a healthy subscriber
receives a numbered publication every 20 ms through the API, and prints one row per case:
what was sent, what the server answered, what docs/security.md promises, and whether the two
agree. At the end it checks the healthy subscriber received every acknowledged publication in
order, and (with --sigterm) sends SIGTERM while 1,000 clients are connected and counts their
3001s. Exit status 1 when any case disagrees with the documentation or anything was lost.

Needs only the Python standard library. Meant for a release build started with the default
limits plus the probe's namespace (scripts/probe.sh does both):

    scripts/probe.sh                 # builds, starts, probes, SIGTERMs
    python3 scripts/probe.py --url http://127.0.0.1:8000 --api-key KEY [--pid PID --sigterm]

Bounded: every case has a deadline, the whole run takes about a minute, loopback only.
"""

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import signal
import struct
import sys
import time
import urllib.parse

ROWS = []


def row(case, sent, got, promised, ok):
    ROWS.append((case, sent, got, promised, ok))
    mark = "ok " if ok else "BAD"
    print(f"[{mark}] {case}: {got}", flush=True)


# --- a minimal HTTP/1.1 + WebSocket client over asyncio streams -----------------------------


class Closed(Exception):
    def __init__(self, code, reason=""):
        super().__init__(f"close {code} {reason}")
        self.code = code
        self.reason = reason


class WS:
    """A WebSocket client that can also misbehave (raw frames, unmasked, lies about lengths)."""

    def __init__(self, reader, writer):
        self.r, self.w = reader, writer

    @classmethod
    async def open(cls, host, port, path="/connection/websocket", headers=None, timeout=5):
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        head = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        )
        for k, v in (headers or {}).items():
            head += f"{k}: {v}\r\n"
        writer.write((head + "\r\n").encode())
        await writer.drain()
        status = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        code = int(status.split(b" ", 2)[1])
        if code != 101:
            writer.close()
            raise Closed(code, "http")
        return cls(reader, writer)

    def frame(self, opcode, payload, fin=True, mask=True, rsv=0, claimed_len=None):
        n = len(payload) if claimed_len is None else claimed_len
        b0 = (0x80 if fin else 0) | rsv << 4 | opcode
        m = 0x80 if mask else 0
        if n < 126:
            head = struct.pack("!BB", b0, m | n)
        elif n < 1 << 16:
            head = struct.pack("!BBH", b0, m | 126, n)
        else:
            head = struct.pack("!BBQ", b0, m | 127, n)
        if mask:
            key = os.urandom(4)
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
            head += key
        self.w.write(head + payload)

    async def send(self, obj_or_text):
        text = obj_or_text if isinstance(obj_or_text, str) else json.dumps(obj_or_text)
        self.frame(1, text.encode())
        await self.w.drain()

    async def recv(self, timeout=10):
        """Next data frame's text; raises Closed on a close frame or EOF."""
        while True:
            try:
                head = await asyncio.wait_for(self.r.readexactly(2), timeout)
            except asyncio.IncompleteReadError:
                raise Closed(None, "eof")
            op, n = head[0] & 0x0F, head[1] & 0x7F
            if n == 126:
                n = struct.unpack("!H", await self.r.readexactly(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", await self.r.readexactly(8))[0]
            payload = await asyncio.wait_for(self.r.readexactly(n), timeout)
            if op == 8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                raise Closed(code, payload[2:].decode(errors="replace"))
            if op == 9:
                self.frame(10, payload)
                continue
            if op in (1, 2):
                return payload.decode(errors="replace")

    async def close_code(self, timeout=15):
        """Reads until the server closes: the close code, "eof" (closed without a close frame),
        "reset" (the close frame lost to a TCP reset: the peer closed with unread input) or
        "timeout"."""
        try:
            while True:
                await self.recv(timeout)
        except Closed as c:
            return c.code if c.code is not None else "eof"
        except ConnectionResetError:
            return "reset"
        except ConnectionError:
            return "eof"
        except asyncio.TimeoutError:
            return "timeout"

    def abort(self):
        self.w.transport.abort()


def replies(text):
    return [json.loads(line) for line in text.split("\n") if line.strip()]


async def connected(host, port, token=None, subs=None):
    ws = await WS.open(host, port)
    body = {}
    if token:
        body["token"] = token
    if subs:
        body["subs"] = subs
    await ws.send({"id": 1, "connect": body})
    r = replies(await ws.recv())
    return ws, r[0]


async def http(host, port, raw, timeout=15, read_all=False):
    """Sends raw bytes; (status or None, seconds until the answer or the close, body)."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(raw)
    await writer.drain()
    try:
        data = await asyncio.wait_for(reader.read(65536) if not read_all else reader.read(), timeout)
    except asyncio.TimeoutError:
        writer.transport.abort()
        return None, time.monotonic() - started, b""
    except ConnectionError:
        return None, time.monotonic() - started, b""
    writer.transport.abort()
    status = None
    if data.startswith(b"HTTP/1.1 "):
        status = int(data[9:12])
    return status, time.monotonic() - started, data


def post(path, body, host, port, extra=""):
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n{extra}\r\n"
    ).encode() + body


def hs256(claims, secret):
    enc = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=")
    head = enc(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = enc(json.dumps(claims).encode())
    sig = enc(hmac.new(secret.encode(), head + b"." + body, hashlib.sha256).digest())
    return (head + b"." + body + b"." + sig).decode()


# --- the healthy bystander ------------------------------------------------------------------


class Bystander:
    """One subscriber on `probe:healthy` and a publisher numbering publications through the API."""

    def __init__(self, a):
        self.a = a
        self.acked = []
        self.seen = []
        self.stop = asyncio.Event()
        self.closed = None

    async def run_subscriber(self):
        ws, _ = await connected(self.a.host, self.a.port)
        await ws.send({"id": 2, "subscribe": {"channel": "probe:healthy"}})
        self.ready.set()
        while not (self.stop.is_set() and len(self.seen) >= len(self.acked)):
            try:
                text = await ws.recv(timeout=3)
            except asyncio.TimeoutError:
                if self.stop.is_set():
                    break
                continue
            except (Closed, ConnectionError) as e:
                self.closed = str(e)
                break
            for m in replies(text):
                if m == {}:
                    await ws.send({})  # protocol v2 ping: answer with a pong
                    continue
                n = m.get("push", {}).get("pub", {}).get("data", {}).get("n")
                if n is not None:
                    self.seen.append(n)

    async def run_publisher(self):
        await self.ready.wait()
        n = 0
        while not self.stop.is_set():
            n += 1
            status, _, data = await http(
                self.a.host, self.a.port,
                post("/api/publish", {"channel": "probe:healthy", "data": {"n": n}},
                     self.a.host, self.a.port, f"X-API-Key: {self.a.api_key}\r\n"),
                timeout=10, read_all=True)
            if status == 200 and b'"result"' in data:
                self.acked.append(n)
            await asyncio.sleep(0.02)

    def start(self):
        self.ready = asyncio.Event()
        return [asyncio.create_task(self.run_subscriber()), asyncio.create_task(self.run_publisher())]


# --- the cases ------------------------------------------------------------------------------


async def case_malformed_frames(a):
    results = []
    for name, act, promised in [
        ("invalid JSON command", lambda ws: ws.frame(1, b"{not json"), 3501),
        ("unmasked client frame", lambda ws: ws.frame(1, b'{"id":9}', mask=False), 1002),
        ("reserved opcode 3", lambda ws: ws.frame(3, b"x"), 1002),
        ("RSV1 without the extension", lambda ws: ws.frame(1, b"{}", rsv=4), 1002),
        ("binary garbage on the JSON protocol", lambda ws: ws.frame(2, os.urandom(64)), 3501),
    ]:
        ws = await WS.open(a.host, a.port)
        act(ws)
        await ws.w.drain()
        code = await ws.close_code()
        results.append((name, code, promised))
    ok = all(c == p or (p == 1002 and c in ("eof", "reset")) for _, c, p in results)
    row("malformed frames", "; ".join(n for n, _, _ in results),
        ", ".join(f"{n} → {c}" for n, c, _ in results),
        "3501 for bad commands; 1002 or a closed socket for WebSocket protocol violations", ok)


async def case_huge_frame(a):
    ws = await WS.open(a.host, a.port)
    started = time.monotonic()
    ws.frame(1, b"x" * 1024, claimed_len=100 * 1024 * 1024)
    await ws.w.drain()
    code = await ws.close_code()
    took = time.monotonic() - started
    row("huge frame", "header claiming 100 MB, 1 KB sent",
        f"close {code} after {took:.2f} s", "1009 before the payload is read (an attacker with unread "
        "input in flight may see the TCP reset instead)",
        code in (1009, "reset") and took < 5)


async def case_channel_name_1mb(a):
    ws, _ = await connected(a.host, a.port)
    name = "c" * (1024 * 1024)
    await ws.send({"id": 2, "subscribe": {"channel": name}})
    code = await ws.close_code()
    status, _, data = await http(a.host, a.port, post(
        "/api/publish", {"channel": name, "data": {}}, a.host, a.port,
        f"X-API-Key: {a.api_key}\r\n"), read_all=True)
    row("1 MB channel name", "subscribe over WebSocket; publish through the API",
        f"WebSocket close {code}; API HTTP {status}",
        "1009 (message_size_limit 64 KiB); API 413 (max_body_size 1 MiB)",
        code in (1009, "reset") and status == 413)


async def case_100k_subscriptions(a):
    ws, _ = await connected(a.host, a.port)
    errors, oks, code = {}, 0, None
    sent = 0
    try:
        for batch in range(200):  # 200 frames × 500 commands = 100,000
            cmds = "\n".join(json.dumps({"id": 10 + sent + i, "subscribe": {"channel": f"s{sent + i}"}})
                             for i in range(500))
            sent += 500
            await ws.send(cmds)
            deadline = time.monotonic() + 5
            got = 0
            while got < 500 and time.monotonic() < deadline:
                for m in replies(await ws.recv(timeout=5)):
                    if "id" in m:
                        got += 1
                        if "error" in m:
                            errors[m["error"]["code"]] = errors.get(m["error"]["code"], 0) + 1
                        else:
                            oks += 1
    except Closed as c:
        code = c.code
    except asyncio.TimeoutError:
        code = "timeout"
    ws.abort()
    row("100k subscriptions on one connection", f"{sent} subscribe commands, 500 per frame",
        f"{oks} subscribed, errors {errors}, connection {'closed ' + str(code) if code else 'open'}",
        "at most channel_limit (128) subscribed; the rest 106 or 111 (rate); the connection stays",
        oks <= 128 and code is None and sum(errors.values()) > 0)


async def case_slowloris(a):
    reader, writer = await asyncio.open_connection(a.host, a.port)
    started = time.monotonic()
    head = b"GET /connection/websocket HTTP/1.1\r\nHost: x\r\nX-Slow: "
    closed_after = None
    for i in range(40):
        try:
            writer.write(head[i:i + 1] if i < len(head) else b"a")
            await writer.drain()
            data = await asyncio.wait_for(reader.read(1024), 1.0)
            if data == b"" or data:
                closed_after = time.monotonic() - started
                break
        except asyncio.TimeoutError:
            continue
        except ConnectionError:
            closed_after = time.monotonic() - started
            break
    writer.transport.abort()
    row("slowloris", "request head dribbled one byte a second",
        f"closed after {closed_after:.1f} s" if closed_after else "still open after 40 s",
        "closed at header_read_timeout (10 s)",
        closed_after is not None and closed_after < 15)


async def case_half_open(a):
    # a socket that sends nothing; an upgrade that never sends `connect`
    reader, writer = await asyncio.open_connection(a.host, a.port)
    started = time.monotonic()
    try:
        data = await asyncio.wait_for(reader.read(1024), 20)
        silent = time.monotonic() - started if data == b"" else f"answered {data[:20]!r}"
    except asyncio.TimeoutError:
        silent = None
    except ConnectionError:
        silent = time.monotonic() - started
    writer.transport.abort()
    ws = await WS.open(a.host, a.port)
    started = time.monotonic()
    code = await ws.close_code(timeout=20)
    upgraded = time.monotonic() - started
    row("half-open connections", "TCP connect sending nothing; WebSocket upgrade never sending connect",
        f"silent socket closed after {silent if silent is None else f'{silent:.1f} s'}; "
        f"upgrade closed {code} after {upgraded:.1f} s",
        "closed at handshake_timeout (10 s); 3502 at stale_close_delay (10 s)",
        isinstance(silent, float) and silent < 15 and code == 3502 and upgraded < 15)


async def case_api_flood(a, bystander):
    started = time.monotonic()
    sem = asyncio.Semaphore(100)
    statuses = {}

    async def one(i):
        async with sem:
            status, _, _ = await http(a.host, a.port, post(
                "/api/publish", {"channel": f"flood{i % 50}", "data": {"i": i}}, a.host, a.port,
                f"X-API-Key: {a.api_key}\r\n"), read_all=True)
            statuses[status] = statuses.get(status, 0) + 1

    before = len(bystander.seen)
    await asyncio.gather(*(one(i) for i in range(5000)))
    took = time.monotonic() - started
    during = len(bystander.seen) - before
    row("API flood", "5,000 publishes, 100 at a time",
        f"{took:.1f} s, statuses {statuses}; the bystander received {during} meanwhile",
        "answered; other clients keep receiving",
        statuses.get(200, 0) == 5000 and during > 0)


async def case_huge_token(a):
    ws = await WS.open(a.host, a.port)
    token = "e" * (10 * 1024 * 1024)
    ws.frame(1, json.dumps({"id": 1, "connect": {"token": token}}).encode())
    try:
        await ws.w.drain()
    except ConnectionError:
        pass
    code = await ws.close_code()
    big = hs256({"sub": "u", "pad": "x" * 40000}, "wrong-secret")
    ws2 = await WS.open(a.host, a.port)
    await ws2.send({"id": 1, "connect": {"token": big}})
    code2 = await ws2.close_code()
    status, _, _ = await http(a.host, a.port, post(
        "/connection/http_stream", {"token": token[:200000]}, a.host, a.port))
    row("huge tokens", "10 MB token over WebSocket; 40 KB forged JWT; 200 KB token over HTTP-stream",
        f"close {code}; close {code2}; HTTP {status}",
        "1009; 3500; 413 (connection_body_size_limit 64 KiB)",
        code in (1009, "reset") and code2 == 3500 and status == 413)


async def case_emulation_garbage(a):
    results = []
    for body in [os.urandom(512), b"{\"session\":", json.dumps({"session": "nope", "node": "x", "data": "!!"}).encode(),
                 b"x" * 200000]:
        status, _, _ = await http(a.host, a.port, (
            f"POST /emulation HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body, read_all=True)
        results.append(status)
    row("garbage to /emulation", "random bytes; truncated JSON; unknown session; 200 KB",
        f"HTTP {results}", "4xx each (400/404; 413 past 64 KiB), nothing else disturbed",
        all(s is not None and 400 <= s < 500 for s in results) and results[-1] == 413)


async def case_withheld_body(a):
    status, took, _ = await http(a.host, a.port, (
        "POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"X-API-Key: {a.api_key}\r\nContent-Length: 65536\r\n\r\n{{").encode(), timeout=25)
    row("withheld request body", "Content-Length 65536, one byte sent",
        f"HTTP {status} after {took:.1f} s", "408 at body_read_timeout (10 s)",
        status == 408 and took < 15)


async def gauge(a, family, label):
    """One sample of the server's /metrics (0 when absent)."""
    _, _, data = await http(a.host, a.port, (
        f"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").encode(), read_all=True)
    for line in data.decode(errors="replace").split("\n"):
        if line.startswith(f"{family}{{{label}}} "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def case_stalled_sse_reader(a):
    # a uni SSE reader that never reads, while its channel is flooded; the server's connection
    # gauge says when the server let go of the socket (reading here would unstall it)
    import socket as so
    family, label = "pushwire_connections", 'transport="uni_sse"'
    base = await gauge(a, family, label)
    sock = so.socket()
    sock.setsockopt(so.SOL_SOCKET, so.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (a.host, a.port))
    q = urllib.parse.quote(json.dumps({"subs": {"probe:hold": {}}}))
    await loop.sock_sendall(sock, f"GET /connection/uni_sse?cf_connect={q} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    for _ in range(50):
        if await gauge(a, family, label) > base:
            break
        await asyncio.sleep(0.1)
    opened = await gauge(a, family, label) > base
    started = time.monotonic()
    payload = {"blob": "y" * 1000}
    for i in range(0, 4000, 100):
        cmds = [{"publish": {"channel": "probe:hold", "data": payload}}] * 100
        await http(a.host, a.port, post("/api/batch", {"commands": cmds}, a.host, a.port,
                                        f"X-API-Key: {a.api_key}\r\n"), read_all=True)
    released = None
    while time.monotonic() - started < 40:
        if await gauge(a, family, label) <= base:
            released = time.monotonic() - started
            break
        await asyncio.sleep(0.5)
    sock.close()
    row("stalled streaming reader", "uni SSE with a 4 KB receive buffer that never reads, 4,000 × 1 KB published into its channel",
        (f"the server let go of the socket {released:.1f} s after the flood began" if released
         else "still held after 40 s") + ("" if opened else " (the stream never opened)"),
        "3008 in the hub, socket closed within write_timeout (10 s) of the stall",
        opened and released is not None and released < 25)


async def case_jwt_dates(a):
    now = time.time()
    good = hs256({"sub": "u1", "exp": now + 3600.5}, a.secret)
    ws, r = await connected(a.host, a.port, token=good)
    ws.abort()
    frac_ok = "connect" in r
    bad_nbf = hs256({"sub": "u1", "exp": int(now) + 3600, "nbf": "tomorrow"}, a.secret)
    ws = await WS.open(a.host, a.port)
    await ws.send({"id": 1, "connect": {"token": bad_nbf}})
    code = await ws.close_code()
    neg = hs256({"sub": "u1", "exp": -5}, a.secret)
    ws, r2 = await connected(a.host, a.port, token=neg)
    ws.abort()
    neg_code = r2.get("error", {}).get("code")
    row("JWT NumericDate", "exp 3600.5 s ahead (fractional); nbf a string; exp negative",
        f"{'connected' if frac_ok else r}; close {code}; error {neg_code}",
        "connects; 3500; 109", frac_ok and code == 3500 and neg_code == 109)


async def case_connect_subs(a):
    subs = {f"probe:c{i}": {} for i in range(200)}
    ws = await WS.open(a.host, a.port)
    await ws.send({"id": 1, "connect": {"subs": subs}})
    code = await ws.close_code()
    row("connect.subs beyond channel_limit", "200 channels in connect.subs (limit 128)",
        f"close {code}", "3505", code == 3505)


async def case_deep_json(a):
    deep = "[" * 30000 + "]" * 30000
    status, _, data = await http(a.host, a.port, post(
        "/api/publish", f'{{"channel":"probe:deep","data":{deep}}}'.encode(), a.host, a.port,
        f"X-API-Key: {a.api_key}\r\n"), read_all=True)
    code = None
    try:
        body = json.loads(data.split(b"\r\n\r\n", 1)[1])
        code = body.get("error", {}).get("code")
    except Exception:  # noqa: BLE001 - whatever came back is reported
        pass
    row("30,000-deep JSON", "API publish of [[[…]]] 30,000 deep", f"HTTP {status}, error {code}",
        "error 107", code == 107)


async def case_batch(a):
    cmds = [{"history": {"channel": "probe:healthy", "limit": -1}}] * 2000
    status, took, data = await http(a.host, a.port, post(
        "/api/batch", {"commands": cmds}, a.host, a.port, f"X-API-Key: {a.api_key}\r\n"),
        read_all=True)
    text = data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in data else b""
    row("oversized API batch", "2,000 history commands in one batch (cap 1,000)",
        f"HTTP {status} in {took:.2f} s: {text[:80].decode(errors='replace')}",
        "refused: more than batch_max_commands", status is not None and b"106" in text or status == 400)


async def case_sigterm(a, pid):
    clients = []
    refused = 0
    while len(clients) < 1000:
        try:
            ws, r = await connected(a.host, a.port)
            clients.append(ws)
        except Closed as c:
            if c.code in (429, 503):
                refused += 1
                await asyncio.sleep(0.2)
                continue
            raise
    started = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    codes = await asyncio.gather(*(ws.close_code(timeout=60) for ws in clients))
    took = time.monotonic() - started
    counts = {}
    for c in codes:
        counts[c] = counts.get(c, 0) + 1
    gone = None
    for _ in range(300):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            gone = time.monotonic() - started
            break
        await asyncio.sleep(0.1)
    row("SIGTERM with 1,000 clients", f"1,000 WebSocket clients connected ({refused} connect attempts paced by 429), then SIGTERM",
        f"close codes {counts} within {took:.1f} s; process exited after "
        f"{'%.1f s' % gone if gone else 'more than 30 s'}",
        "every client 3001; the process exits", counts.get(3001, 0) == 1000 and gone is not None)


async def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--api-key", default="probe-api-key")
    p.add_argument("--secret", default="probe-secret", help="client.token.hmac_secret_key")
    p.add_argument("--pid", type=int, help="the server's pid (RSS, open files, --sigterm)")
    p.add_argument("--sigterm", action="store_true", help="end with SIGTERM and 1,000 clients")
    p.add_argument("--report", help="write the table as Markdown here")
    a = p.parse_args()
    u = urllib.parse.urlparse(a.url)
    a.host, a.port = u.hostname, u.port

    def proc():
        if not a.pid:
            return ""
        rss = int(open(f"/proc/{a.pid}/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        fds = len(os.listdir(f"/proc/{a.pid}/fd"))
        return f"RSS {rss / 1e6:.0f} MB, {fds} open files"

    print(f"probe: {a.url} {proc()}", flush=True)
    bystander = Bystander(a)
    tasks = bystander.start()
    await asyncio.wait_for(bystander.ready.wait(), 10)
    started = time.monotonic()
    # timing cases run together (each waits on a server timeout); the others one after another
    await asyncio.gather(case_slowloris(a), case_half_open(a), case_withheld_body(a),
                         case_malformed_frames(a), case_huge_frame(a),
                         case_channel_name_1mb(a), case_huge_token(a), case_emulation_garbage(a))
    for c in (case_stalled_sse_reader, case_100k_subscriptions, case_jwt_dates, case_connect_subs, case_deep_json, case_batch):
        await c(a)
    await case_api_flood(a, bystander)
    bystander.stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 30)
    missing = sorted(set(bystander.acked) - set(bystander.seen))
    in_order = bystander.seen == sorted(bystander.seen)
    row("healthy bystander", f"{len(bystander.acked)} publications acknowledged during the probe",
        f"{len(bystander.seen)} received, {len(missing)} missing, {'in order' if in_order else 'OUT OF ORDER'}"
        + (f", disconnected: {bystander.closed}" if bystander.closed else ""),
        "every acknowledged publication, in order; never disconnected",
        not missing and in_order and bystander.closed is None)
    print(f"probe: after {time.monotonic() - started:.0f} s: {proc()}", flush=True)
    if a.sigterm and a.pid:
        await case_sigterm(a, a.pid)

    bad = [r for r in ROWS if not r[4]]
    lines = ["| case | sent | got | promised (docs/security.md) | |", "|---|---|---|---|---|"]
    for case, sent, got, promised, ok in ROWS:
        lines.append(f"| {case} | {sent} | {got} | {promised} | {'ok' if ok else '**differs**'} |")
    table = "\n".join(lines)
    print("\n" + table)
    if a.report:
        open(a.report, "w").write(table + "\n")
    print(f"\nprobe: {len(ROWS) - len(bad)} of {len(ROWS)} cases as documented", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
