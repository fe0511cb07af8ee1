"""A centrifuge-python subscriber for the change-data-capture tests: receives the change
events a CDC consumer routes to one channel, exactly once, across node restarts.

Usage: consume_changes.py CHANNEL COUNT [TIMEOUT_S]

Subscribes to CHANNEL (its namespace must force recovery) and collects publications until
COUNT have arrived. Each is a change event {"op","schema","table","row","old","lsn",
"commit_time"}; the offsets must be consecutive (nothing lost, nothing published twice) and
the publication tag `op` must equal the event's op. When the connection drops (the node was
killed), the SDK reconnects by itself and the resubscribe must recover what was missed. After
the last one nothing more may arrive. RESULT: channel, changes ([op, row.id, row.n] in
arrival order), resubscribes.
"""

import sys
import time

from common import WS_URL, CheckFailed, check, check_equal, log, main, new_client, new_subscription

if len(sys.argv) < 3:
    print("FAIL: usage: consume_changes.py CHANNEL COUNT [TIMEOUT_S]", flush=True)
    sys.exit(1)
CHANNEL = sys.argv[1]
COUNT = int(sys.argv[2])
TIMEOUT_S = float(sys.argv[3]) if len(sys.argv) > 3 else 60.0


async def scenario():
    client, events = new_client(WS_URL, "client", min_reconnect_delay=0.2, max_reconnect_delay=1.0)
    sub, sub_events = new_subscription(client, CHANNEL, "sub")
    await sub.subscribe()
    await client.connect()
    first = await sub_events.expect("subscribed", 10, "first subscribe", ["subscribing"])
    check_equal(first.recoverable, True, "subscription is recoverable (force_recovery)")
    epoch = first.stream_position.epoch
    log("SUBSCRIBED", CHANNEL)

    changes, resubscribes = [], 0
    last_offset = first.stream_position.offset
    deadline = time.monotonic() + TIMEOUT_S
    while len(changes) < COUNT:
        left = deadline - time.monotonic()
        kind, ctx = await sub_events.next(max(left, 0.01), f"change {len(changes) + 1} of {COUNT}")
        if kind == "publication":
            ev = ctx.data if isinstance(ctx.data, dict) else None
            if ev is None or ev.get("op") not in ("insert", "update", "delete"):
                raise CheckFailed(f"not a change event: {ctx.data!r}")
            if (ctx.tags or {}).get("op") != ev["op"]:
                raise CheckFailed(f"tag op {ctx.tags!r} does not match the event {ev['op']}")
            if ctx.offset != last_offset + 1:
                raise CheckFailed(
                    f"offset {ctx.offset} after {last_offset}: a change was lost or doubled"
                )
            last_offset = ctx.offset
            row = ev.get("row") or {}
            changes.append([ev["op"], row.get("id"), row.get("n")])
        elif kind == "subscribed":
            check_equal(ctx.was_recovering, True, "resubscribe: was_recovering")
            check_equal(ctx.recovered, True, "resubscribe: recovered what was missed")
            check_equal(ctx.stream_position.epoch, epoch, "resubscribe: same epoch")
            resubscribes += 1
        elif kind == "subscribing":
            continue
        else:
            raise CheckFailed(f"unexpected subscription event {kind}: {ctx!r}")
    check(True, f"received {COUNT} changes")
    await sub_events.expect_none(0.7, "nothing after the last expected change", ["subscribing"])
    await client.disconnect()
    return {"channel": CHANNEL, "changes": changes, "resubscribes": resubscribes}


main("consume changes", scenario, timeout=TIMEOUT_S + 10)
