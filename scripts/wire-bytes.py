#!/usr/bin/env python3
"""Bytes on the wire for one stream of publications, four ways, in one run.

Usage: wire-bytes.py HTTP_URL API_KEY CHANNEL N [PAYLOAD_BYTES]

Four raw WebSocket subscribers subscribe to CHANNEL on the server at HTTP_URL: plain,
permessage-deflate, `delta: "fossil"`, and fossil with permessage-deflate (the namespace must
allow fossil; the server must have `websocket.compression` on, else the deflate subscribers
fail). The script publishes N documents of about PAYLOAD_BYTES (2048) through the server API
with `delta: true`, paced 20 ms apart so that every publication travels in its own frame, and
counts the payload bytes of the frames each subscriber received as they were on the wire
(compressed, for the deflate subscribers: counted inside the websockets extension before it
inflates). For comparison it also computes what permessage-deflate WITH context takeover
would have sent for the plain and fossil frames (one compressor per connection, Z_SYNC_FLUSH,
trailing 00 00 ff ff dropped, level 1): pushwire negotiates no context takeover (every message
compressed on its own, no compressor kept per connection), as Centrifugo does.
Prints one JSON object.
"""

import json
import sys
import threading
import time
import urllib.request
import zlib

from websockets.frames import Opcode
from websockets.sync.client import connect


def document(seq, payload_bytes):
    """The bench's `--document` shape: rows of a dashboard, a few fields changing."""
    row = 100
    rows = max(1, (payload_bytes - 48) // row)
    out = []
    for i in range(rows):
        price = 1000 + seq if i == seq % rows else 1000 + i
        volume = seq * 7 if i == (seq + 5) % rows else i * 100
        out.append(
            {
                "id": i,
                "name": f"instrument {i:03}",
                "venue": "primary exchange, continuous",
                "price": price,
                "volume": volume,
            }
        )
    return {"ts": time.time_ns(), "seq": seq, "rows": out}


def deflated(messages, level=1):
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    total = 0
    for m in messages:
        out = c.compress(m) + c.flush(zlib.Z_SYNC_FLUSH)
        total += len(out) - 4
    return total


def count_wire(ws, sizes):
    """Records the on-wire payload size of every data frame, before the extension inflates it;
    returns whether permessage-deflate was negotiated."""
    for ext in ws.protocol.extensions:
        original = ext.decode

        def decode(frame, *, max_size=None, _original=original):
            if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
                sizes.append(len(frame.data))
            return _original(frame, max_size=max_size)

        ext.decode = decode
    return bool(ws.protocol.extensions)


def subscriber(ws_url, channel, delta, deflate, n, out, ready):
    with connect(ws_url, compression="deflate" if deflate else None, max_size=None) as ws:
        sizes = []
        negotiated = count_wire(ws, sizes)
        if negotiated != deflate:
            raise SystemExit(f"permessage-deflate negotiated: {negotiated}, wanted {deflate}")
        sub = {"channel": channel}
        if delta:
            sub["delta"] = "fossil"
        ws.send(json.dumps({"id": 1, "connect": {}}) + "\n" + json.dumps({"id": 2, "subscribe": sub}))
        replies = 0
        while replies < 2:
            for line in ws.recv().split("\n"):
                if line.strip() and line != "{}":
                    replies += 1
        ready.release()
        pubs = 0
        while pubs < n:
            frame = ws.recv()
            if isinstance(frame, str):
                frame = frame.encode()
            # Frames are not fragmented: one message, one size (all but the last were read).
            wire = sizes[-1] if deflate else len(frame)
            lines = [l for l in frame.split(b"\n") if l.strip() and l != b"{}"]
            if not lines:
                ws.send("{}")
                continue
            out.append((frame, wire))
            pubs += sum(1 for l in lines if b'"pub"' in l)


def main():
    http_url, api_key, channel, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    payload_bytes = int(sys.argv[5]) if len(sys.argv) > 5 else 2048
    ws_url = http_url.replace("http://", "ws://") + "/connection/websocket"
    frames = {"plain": [], "plain+deflate": [], "fossil": [], "fossil+deflate": []}
    ready = threading.Semaphore(0)
    threads = [
        threading.Thread(
            target=subscriber,
            args=(ws_url, channel, d.startswith("fossil"), d.endswith("+deflate"), n, frames[d], ready),
        )
        for d in frames
    ]
    for t in threads:
        t.start()
    for _ in threads:
        ready.acquire()
    raw_payload = 0
    for seq in range(1, n + 1):
        data = document(seq, payload_bytes)
        raw_payload += len(json.dumps(data, separators=(",", ":")))
        body = json.dumps({"channel": channel, "data": data, "delta": True}).encode()
        req = urllib.request.Request(
            f"{http_url}/api/publish",
            data=body,
            headers={"Content-Type": "application/json", "X-API-Key": api_key},
        )
        urllib.request.urlopen(req, timeout=5).read()
        time.sleep(0.02)
    for t in threads:
        t.join(timeout=30)
    result = {"publications": n, "payload_bytes_avg": raw_payload / n}
    for name, fs in frames.items():
        result[name] = sum(wire for _, wire in fs)
        result[f"{name}_frames"] = len(fs)
        result[f"{name}_inflated"] = sum(len(f) for f, _ in fs)
        if not name.endswith("+deflate"):
            result[f"{name}+deflate_takeover_computed"] = deflated([f for f, _ in fs])
    print(json.dumps(result))


if __name__ == "__main__":
    main()
