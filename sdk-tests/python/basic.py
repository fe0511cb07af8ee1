"""Scenario (a): anonymous and token-authenticated centrifuge-python clients on `news`; one
publication through cent (server API), one through the client's `sub.publish`."""

import asyncio
import time

from common import (
    WS_URL,
    api_client,
    check,
    check_equal,
    hs256,
    log,
    main,
    new_client,
    new_subscription,
    publish,
)

CHANNEL = "news"


async def scenario():
    api = api_client()
    try:
        anon, anon_events = new_client(WS_URL, "anon")
        anon_sub, anon_news = new_subscription(anon, CHANNEL, f"anon/{CHANNEL}")
        await anon_sub.subscribe()
        await anon.connect()
        anon_connected = await anon_events.expect(
            "connected", 5, "anonymous connect", skip=["connecting"]
        )
        check(bool(anon_connected.client), "anonymous connect has a client id")
        subscribed = await anon_news.expect("subscribed", 5, "subscribe", skip=["subscribing"])
        check_equal(subscribed.channel, CHANNEL, "subscribed channel")
        check_equal(subscribed.recoverable, False, "news is not recoverable")
        check_equal(subscribed.was_recovering, False, "first subscribe is not recovering")

        api_data = {"text": "from cent", "n": 1, "nested": {"ok": True, "list": [1, "two", None]}}
        await publish(api, CHANNEL, api_data)
        pub = await anon_news.expect("publication", 5, "publication made with cent")
        check_equal(pub.data, api_data, "publication data (cent)")
        check_equal(pub.info, None, "API publication carries no publisher info")

        claims = {"sub": "user-42", "exp": int(time.time()) + 600, "info": {"name": "Forty Two"}}
        token = hs256(claims)
        authed, authed_events = new_client(WS_URL, "authed", token=token)
        authed_sub, authed_news = new_subscription(authed, CHANNEL, f"authed/{CHANNEL}")
        await authed_sub.subscribe()
        await authed.connect()
        authed_connected = await authed_events.expect(
            "connected", 5, "token connect", skip=["connecting"]
        )
        check(bool(authed_connected.client), "token connect has a client id")
        check(authed_connected.client != anon_connected.client, "client ids differ")
        await authed_news.expect("subscribed", 5, "token client subscribe", skip=["subscribing"])

        client_data = {"text": "from sub.publish", "unicode": "héllo ✓", "n": 2}
        await asyncio.wait_for(authed_sub.publish(client_data), 5)
        for who, inbox in (("anon", anon_news), ("authed", authed_news)):
            pub = await inbox.expect("publication", 5, f"{who} receives the client publication")
            check_equal(pub.data, client_data, f"{who}: publication data (sub.publish)")
            check(pub.info is not None, f"{who}: client publication carries publisher info")
            check_equal(pub.info.user, "user-42", f"{who}: publisher user")
            check_equal(pub.info.client, authed_connected.client, f"{who}: publisher client id")
            check_equal(pub.info.conn_info, {"name": "Forty Two"}, f"{who}: publisher conn info")
        await anon_news.expect_none(0.3, "no duplicate publications")

        await anon.disconnect()
        await authed.disconnect()
        await anon_events.expect("disconnected", 5, "anon disconnect")
        await authed_events.expect("disconnected", 5, "authed disconnect")
        log("done")
        return {
            "anonymous_client": anon_connected.client,
            "token_client": authed_connected.client,
            "user": "user-42",
        }
    finally:
        await api.close()


main("python basic", scenario)
