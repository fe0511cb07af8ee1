"""A centrifuge-python subscriber for the queue-consumer tests: receives what a consumer
publishes from a queue, in order, exactly once, across node restarts.

Usage: consume_ordered.py CHANNEL COUNT [TIMEOUT_S]

Subscribes to CHANNEL (its namespace must force recovery) and collects publications until
COUNT have arrived. Every publication's data must carry an integer `n`; the `n`s must strictly
increase (queue order kept) and the offsets must be consecutive (nothing lost, nothing
published twice). When the connection drops (the node was killed), the SDK reconnects by
itself and the resubscribe must recover what was missed. After the last one nothing more may
arrive. RESULT: channel, epoch, ns, offsets, resubscribes, recovered (one flag per
resubscribe).
"""

import sys
import time

from common import WS_URL, CheckFailed, check, check_equal, log, main, new_client, new_subscription

if len(sys.argv) < 3:
    print("FAIL: usage: consume_ordered.py CHANNEL COUNT [TIMEOUT_S]", flush=True)
    sys.exit(1)
CHANNEL = sys.argv[1]
COUNT = int(sys.argv[2])
TIMEOUT_S = float(sys.argv[3]) if len(sys.argv) > 3 else 40.0


async def scenario():
    client, events = new_client(WS_URL, "client", min_reconnect_delay=0.2, max_reconnect_delay=1.0)
    sub, sub_events = new_subscription(client, CHANNEL, "sub")
    await sub.subscribe()
    await client.connect()
    first = await sub_events.expect("subscribed", 10, "first subscribe", ["subscribing"])
    check_equal(first.recoverable, True, "subscription is recoverable (force_recovery)")
    epoch = first.stream_position.epoch
    log("SUBSCRIBED", CHANNEL)

    ns, offsets, recovered = [], [], []
    last_offset = first.stream_position.offset
    deadline = time.monotonic() + TIMEOUT_S
    while len(ns) < COUNT:
        left = deadline - time.monotonic()
        kind, ctx = await sub_events.next(max(left, 0.01), f"publication {len(ns) + 1} of {COUNT}")
        if kind == "publication":
            n = (ctx.data or {}).get("n") if isinstance(ctx.data, dict) else None
            if not isinstance(n, int):
                raise CheckFailed(f"publication without an integer n: {ctx.data!r}")
            if ns and n <= ns[-1]:
                raise CheckFailed(f"out of order or duplicate: n={n} after n={ns[-1]} (got {ns})")
            if ctx.offset != last_offset + 1:
                raise CheckFailed(
                    f"offset {ctx.offset} after {last_offset}: a publication was lost or doubled"
                )
            last_offset = ctx.offset
            ns.append(n)
            offsets.append(ctx.offset)
        elif kind == "subscribed":
            check_equal(ctx.was_recovering, True, "resubscribe: was_recovering")
            check_equal(ctx.recovered, True, "resubscribe: recovered what was missed")
            check_equal(ctx.stream_position.epoch, epoch, "resubscribe: same epoch")
            recovered.append(ctx.recovered)
        elif kind == "subscribing":
            continue
        else:
            raise CheckFailed(f"unexpected subscription event {kind}: {ctx!r}")
    check(True, f"received {COUNT} publications in order")
    await sub_events.expect_none(0.7, "nothing after the last expected publication", ["subscribing"])
    await client.disconnect()
    return {
        "channel": CHANNEL,
        "epoch": epoch,
        "ns": ns,
        "offsets": offsets,
        "resubscribes": len(recovered),
        "recovered": recovered,
    }


main("consume ordered", scenario, timeout=TIMEOUT_S + 10)
