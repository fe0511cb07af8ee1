"""Issue 14: `slow_subscriber_policy = "resubscribe"` with the real centrifuge-python SDK.

One connection, behind a proxy throttled like a slow mobile link, subscribes to a busy channel
and a calm one (both in the `slow:` namespace: resubscribe policy, history, forced recovery).
The busy channel is flooded far past the connection's queue. The server sheds only the busy
subscription (unsubscribe 2500); the SDK resubscribes by itself and recovers from history with
`recovered: true`. The connection is never closed, the calm channel loses nothing, and the busy
channel ends with every publication exactly once, in offset order.
"""

import asyncio

import aiohttp

from common import (
    API_KEY,
    HTTP_URL,
    WS_URL,
    CutProxy,
    check,
    check_equal,
    log,
    main,
    new_client,
    new_subscription,
    unique_channel,
)

BUSY_N = 1500
PAD = "x" * 4000
CALM_N = 20


async def api(session: aiohttp.ClientSession, method: str, body: dict) -> dict:
    async with session.post(
        f"{HTTP_URL}/api/{method}", json=body, headers={"X-API-Key": API_KEY}
    ) as r:
        return await r.json()


async def scenario():
    busy = unique_channel("slow:busy-")
    calm = unique_channel("slow:calm-")
    proxy = await CutProxy.start(WS_URL)
    proxy.downstream_rate = 1_500_000
    session = aiohttp.ClientSession()
    try:
        # Operations wait out the slow link (a recovery of a few MB at 1.5 MB/s).
        client, events = new_client(proxy.rewrite(WS_URL), "client", timeout=30.0)
        busy_sub, busy_events = new_subscription(client, busy, "busy")
        busy_events.quiet.add("publication")
        calm_sub, calm_events = new_subscription(client, calm, "calm")
        await busy_sub.subscribe()
        await calm_sub.subscribe()
        await client.connect()
        await events.expect("connected", 5, "connected through the throttled proxy", ["connecting"])
        first = await busy_events.expect("subscribed", 5, "busy subscribed", ["subscribing"])
        check_equal(first.recoverable, True, "busy: recoverable")
        await calm_events.expect("subscribed", 5, "calm subscribed", ["subscribing"])

        # Flood: 1,500 x 4 KB into busy (6 MB) in batches, 15 calm ones interleaved, 5 after.
        for start in range(0, BUSY_N, 50):
            commands = [
                {"publish": {"channel": busy, "data": {"n": n, "pad": PAD}}}
                for n in range(start, start + 50)
            ]
            if start % 100 == 0:
                commands.append({"publish": {"channel": calm, "data": {"c": start // 100}}})
            reply = await api(session, "batch", {"commands": commands})
            check(all("publish" in r for r in reply["replies"]), f"batch from {start} published")
        for k in range((BUSY_N - 1) // 100 + 1, CALM_N):
            await api(session, "publish", {"channel": calm, "data": {"c": k}})

        # Collect until both channels have everything.
        busy_seen, calm_seen, offsets = [], [], []
        resubscribed = None
        shed_code = None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while (len(set(busy_seen)) < BUSY_N or len(calm_seen) < CALM_N) and loop.time() < deadline:
            got = False
            for inbox, name in ((busy_events, "busy"), (calm_events, "calm"), (events, "client")):
                while (event := inbox.take()) is not None:
                    kind, ctx = event
                    got = True
                    if name == "client":
                        check(kind not in ("disconnected", "connecting"), f"connection kept ({kind})")
                    elif name == "calm":
                        check(kind == "publication", f"calm only gets publications ({kind})")
                        calm_seen.append(ctx.data["c"])
                    elif kind == "publication":
                        busy_seen.append(ctx.data["n"])
                        offsets.append(ctx.offset)
                    elif kind == "subscribing":
                        shed_code = ctx.code
                        log("busy: subscribing again", {"code": ctx.code, "reason": ctx.reason})
                    elif kind == "subscribed":
                        resubscribed = ctx
                        log("busy: resubscribed", {"recovered": ctx.recovered, "was_recovering": ctx.was_recovering})
                    else:
                        check(False, f"unexpected busy event {kind}")
            if not got:
                await asyncio.sleep(0.05)

        check_equal(shed_code, 2500, "busy was shed with unsubscribe 2500 (then the SDK resubscribed)")
        check(resubscribed is not None, "busy resubscribed")
        check_equal(resubscribed.recovered, True, "busy: recovered on resubscribe")
        check_equal(sorted(set(busy_seen)), list(range(BUSY_N)), "busy: every publication arrived")
        check_equal(len(busy_seen), BUSY_N, "busy: none twice")
        check_equal(offsets, sorted(offsets), "busy: in offset order")
        check_equal(calm_seen, list(range(CALM_N)), "calm: every publication, in order")
        await client.disconnect()
        return {"busy": len(busy_seen), "calm": len(calm_seen), "shed_code": shed_code}
    finally:
        await session.close()
        await proxy.close()


main("python slow resubscribe", scenario, timeout=90.0)
