"""Consumers scenario: a centrifuge-python subscriber receives the events a pushwire consumer
takes from a message queue (RabbitMQ, Redis Streams, PostgreSQL outbox, ...).

Usage: consume.py CHANNEL COUNT [--tag KEY=VALUE] [--timeout SECONDS] [--grace SECONDS]

Subscribes to CHANNEL (with a tags filter KEY=VALUE when given), prints `SUBSCRIBED` once the
subscription is active, then records every publication: its offset, `data.n` and its tags. Every publication's data carries an integer `n`. It survives node restarts (the SDK reconnects and recovers from history). It stops when
COUNT distinct `n`s have arrived and no further publication comes within the grace period, then
checks from the client's point of view:
- no duplicate `n` (a redelivered message must not reach the client twice);
- offsets and `n`s strictly increasing (order kept).
RESULT: {"channel", "ns", "offsets", "tags", "resubscribes"}.
"""

import argparse
import asyncio
import time
from typing import Any, Dict, List

from centrifuge import Filter

from common import WS_URL, CheckFailed, check, main, new_client, new_subscription


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("channel")
    p.add_argument("count", type=int)
    p.add_argument("--tag", default="")
    p.add_argument("--timeout", type=float, default=40.0)
    p.add_argument("--grace", type=float, default=0.7)
    return p.parse_args()


ARGS = parse()


async def scenario() -> Dict[str, Any]:
    client, cin = new_client(WS_URL, "client", min_reconnect_delay=0.05, max_reconnect_delay=0.5)
    options: Dict[str, Any] = {}
    if ARGS.tag:
        key, _, value = ARGS.tag.partition("=")
        options["tags_filter"] = Filter.eq(key, value)
    sub, sin = new_subscription(client, ARGS.channel, "sub", **options)
    await client.connect()
    await sub.subscribe()
    await sin.expect("subscribed", 10.0, "subscribed", skip=("subscribing",))
    print("SUBSCRIBED", flush=True)

    ns: List[int] = []
    offsets: List[int] = []
    tags: List[Dict[str, str]] = []
    resubscribes = 0
    deadline = time.monotonic() + ARGS.timeout
    while True:
        left = deadline - time.monotonic()
        if len(set(ns)) >= ARGS.count:
            left = min(left, ARGS.grace)
        if left <= 0:
            break
        try:
            kind, ctx = await sin.next(left, "publication")
        except CheckFailed:
            break
        if kind == "publication":
            n = ctx.data.get("n") if isinstance(ctx.data, dict) else None
            if not isinstance(n, int):
                raise CheckFailed(f"publication without an integer n: {ctx.data!r}")
            ns.append(n)
            offsets.append(ctx.offset)
            tags.append(dict(ctx.tags or {}))
        elif kind == "subscribed":
            resubscribes += 1
            check(bool(ctx.recovered), "resubscribe recovered what was missed")
        elif kind == "unsubscribed":
            raise CheckFailed(f"unsubscribed: {ctx}")
    await client.disconnect()

    dups = sorted({n for n in ns if ns.count(n) > 1})
    check(not dups, f"no duplicate n (duplicates: {dups})")
    check(all(a < b for a, b in zip(offsets, offsets[1:])), "offsets strictly increasing")
    check(all(a < b for a, b in zip(ns, ns[1:])), "n strictly increasing (order kept)")
    check(len(ns) == ARGS.count, f"received {len(ns)} of {ARGS.count}")
    return {
        "channel": ARGS.channel,
        "ns": ns,
        "offsets": offsets,
        "tags": tags,
        "resubscribes": resubscribes,
    }


main("consume " + ARGS.channel, scenario, timeout=ARGS.timeout + 20.0)
