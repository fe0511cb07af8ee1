"""Fossil delta compression with centrifuge-python: a subscription with `delta=fossil` on a
`delta:` channel receives 100 publications of a ~2 KB document made through the server API
with `delta: true`, each rebuilt exactly; the SDK must have negotiated delta (it keeps the
base in `_prev_data`). A `chat:` subscription asking for fossil works without delta."""

import asyncio
import json
import urllib.request

import centrifuge

from common import (
    API_KEY,
    HTTP_URL,
    WS_URL,
    check,
    check_equal,
    log,
    main,
    new_client,
    new_subscription,
    unique_channel,
)

N = 100


def document(n):
    rows = [
        {
            "id": i,
            "name": f"instrument {i} – Zürich €",
            "price": 1000 + n if i == n % 16 else 1000 + i,
            "volume": n * 7 if i == (n + 5) % 16 else i * 100,
            "venue": "primary exchange, continuous trading",
        }
        for i in range(16)
    ]
    return {"seq": n, "rows": rows}


def api_publish(channel, n):
    body = json.dumps({"channel": channel, "data": document(n), "delta": True}).encode()
    req = urllib.request.Request(
        f"{HTTP_URL}/api/publish",
        data=body,
        headers={"Content-Type": "application/json", "X-API-Key": API_KEY},
    )
    answer = json.loads(urllib.request.urlopen(req, timeout=5).read())
    check("error" not in answer, f"publish {n}: {answer}")


async def scenario():
    client, events = new_client(WS_URL, "delta")
    channel = unique_channel("delta:py-")
    sub, inbox = new_subscription(
        client, channel, "delta-sub", delta=centrifuge.DeltaType.FOSSIL
    )
    await sub.subscribe()
    await client.connect()
    await events.expect("connected", 5, "connect", skip=["connecting"])
    await inbox.expect("subscribed", 5, "subscribe with delta", skip=["subscribing"])
    check(sub._delta_negotiated, "delta negotiated")
    for n in range(1, N + 1):
        await asyncio.get_running_loop().run_in_executor(None, api_publish, channel, n)
        pub = await inbox.expect("publication", 5, f"publication {n}")
        check_equal(pub.data == document(n), True, f"publication {n} rebuilt exactly")
    log(f"{N} publications rebuilt")

    plain_channel = unique_channel("chat:py-")
    plain, plain_inbox = new_subscription(
        client, plain_channel, "plain-sub", delta=centrifuge.DeltaType.FOSSIL
    )
    await plain.subscribe()
    await plain_inbox.expect("subscribed", 5, "fossil asked where not allowed", skip=["subscribing"])
    check(not plain._delta_negotiated, "no delta where the namespace does not allow it")
    await asyncio.get_running_loop().run_in_executor(None, api_publish, plain_channel, 1)
    pub = await plain_inbox.expect("publication", 5, "plain publication", skip=["join"])
    check_equal(pub.data == document(1), True, "plain publication data")
    await client.disconnect()
    return {"rebuilt": N, "plain_delta": plain._delta_negotiated}


main("python delta", scenario)
