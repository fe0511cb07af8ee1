"""The cut-the-line scenario shared by recovery.py and gap.py.

A centrifuge-python client subscribes through a CutProxy to a channel whose namespace forces
recovery, receives one publication, loses its connection (the proxy aborts it and refuses
reconnects for CUT_S), misses `missed` publications made with cent meanwhile, and reconnects
by itself once the proxy lets it through again.
"""

import asyncio
import time

from common import (
    WS_URL,
    CutProxy,
    api_client,
    check,
    check_equal,
    new_client,
    new_subscription,
    publish,
    unique_channel,
)

CUT_S = 1.5


async def cut_scenario(prefix: str, missed: int, expect_recovered: bool):
    """Runs the scenario on a fresh channel `<prefix><random>`.

    With `expect_recovered` the resubscribe must recover exactly the missed publications;
    without, it must report `recovered=False` and deliver none of them.
    """
    api = api_client()
    proxy = await CutProxy.start(WS_URL)
    try:
        return await _run(api, proxy, unique_channel(prefix), missed, expect_recovered)
    finally:
        await proxy.close()
        await api.close()


async def _run(api, proxy, channel, missed, expect_recovered):
    client, events = new_client(
        proxy.rewrite(WS_URL), "client", min_reconnect_delay=0.2, max_reconnect_delay=1.0
    )
    sub, sub_events = new_subscription(client, channel, channel)
    await sub.subscribe()
    await client.connect()

    first_connect = await events.expect("connected", 5, "connect through the proxy", ["connecting"])
    first = await sub_events.expect("subscribed", 5, "first subscribe", ["subscribing"])
    check_equal(first.recoverable, True, "first subscribe: recoverable (force_recovery)")
    check_equal(first.was_recovering, False, "first subscribe: was_recovering")
    check(first.stream_position is not None, "first subscribe: has a stream position")
    epoch = first.stream_position.epoch

    r0 = await publish(api, channel, {"n": 0, "phase": "before cut"})
    p0 = await sub_events.expect("publication", 5, "live publication before the cut")
    check_equal(p0.data, {"n": 0, "phase": "before cut"}, "live publication data")
    check_equal(p0.offset, r0.offset, "live publication offset = offset returned by cent")

    cut_at = time.monotonic()
    proxy.cut()
    await events.expect("connecting", 5, "client notices the cut", ["error"])
    await sub_events.expect("subscribing", 5, "subscription goes back to subscribing")

    sent = []
    for i in range(1, missed + 1):
        data = {"n": i, "phase": "while away"}
        r = await publish(api, channel, data)
        sent.append((data, r.offset))
    check_equal(
        [o for _, o in sent],
        [p0.offset + i for i in range(1, missed + 1)],
        "offsets returned by cent while away are consecutive",
    )
    await asyncio.sleep(max(0.0, CUT_S - (time.monotonic() - cut_at)))
    proxy.restore()

    again = await events.expect(
        "connected", 10, "SDK reconnects by itself", ["connecting", "error"]
    )
    check(again.client != first_connect.client, "reconnect is a new connection (new client id)")
    check(proxy.refused > 0, "SDK tried to reconnect while the line was cut")
    resub = await sub_events.expect("subscribed", 5, "resubscribe after the reconnect")
    check_equal(resub.was_recovering, True, "resubscribe: was_recovering")
    check_equal(resub.recovered, expect_recovered, "resubscribe: recovered")
    check_equal(resub.recoverable, True, "resubscribe: recoverable")
    position = resub.stream_position
    check_equal(position and position.epoch, epoch, "resubscribe: same epoch")
    top = sent[-1][1]

    if expect_recovered:
        for data, offset in sent:
            p = await sub_events.expect("publication", 5, f"recovered publication {offset}")
            check_equal(p.data, data, f"recovered publication {offset}: data")
            check_equal(p.offset, offset, "recovered publication offset")
        await sub_events.expect_none(0.7, "no duplicate or extra publications after recovery")
    else:
        check_equal(
            resub.stream_position.offset, top, "unrecovered resubscribe: position is the stream top"
        )
        await sub_events.expect_none(1.0, "no missed publications delivered when recovery failed")

    live = {"n": missed + 1, "phase": "after reconnect"}
    r_live = await publish(api, channel, live)
    check_equal(r_live.offset, top + 1, "offset of the publication after the reconnect")
    p_live = await sub_events.expect("publication", 5, "live publication after the reconnect")
    check_equal(p_live.data, live, "live publication data")
    check_equal(p_live.offset, top + 1, "live publication offset")
    await sub_events.expect_none(0.3, "nothing else on the subscription")

    await client.disconnect()
    await events.expect("disconnected", 5, "disconnect", ["error"])
    return {
        "channel": channel,
        "epoch": epoch,
        "first_offset": p0.offset,
        "missed_offsets": [o for _, o in sent],
        "final_offset": top + 1,
        "recovered": resub.recovered,
        "refused_while_cut": proxy.refused,
    }
