"""Scenario: connection and subscription tokens with a short lifetime, refreshed by
centrifuge-python through its get_token callbacks while publications flow through the server API.

The server closes an unrefreshed connection (3005) or subscription (2501) two seconds after its
token expires, so every token must be refreshed in time. Checks: every publication is received
exactly once and in order, the client never reconnects nor resubscribes, and both get_token
callbacks ran more than once (the first call plus at least one refresh)."""

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
    unique_channel,
)

import cent

USER = "refresh-user"
TTL = 3  # seconds a token lives
RUN_S = 9.0  # publishing time: three token lifetimes
PUBLISH_EVERY_S = 0.04


async def scenario():
    channel = unique_channel("$refresh-")
    api = api_client()
    tokens = {"connection": 0, "subscription": 0}

    async def connection_token() -> str:
        tokens["connection"] += 1
        log(f"get_token (connection) #{tokens['connection']}")
        return hs256({"sub": USER, "exp": int(time.time()) + TTL})

    async def subscription_token(ch: str) -> str:
        tokens["subscription"] += 1
        log(f"get_token (subscription {ch}) #{tokens['subscription']}")
        return hs256({"sub": USER, "channel": ch, "exp": int(time.time()) + TTL})

    try:
        client, client_events = new_client(WS_URL, "client", get_token=connection_token)
        sub, sub_events = new_subscription(
            client, channel, channel, get_token=subscription_token
        )
        await sub.subscribe()
        await client.connect()
        connected = await client_events.expect("connected", 5, "connect", skip=["connecting"])
        await sub_events.expect("subscribed", 5, "subscribe", skip=["subscribing"])

        sent = 0
        until = time.monotonic() + RUN_S
        while time.monotonic() < until:
            sent += 1
            await asyncio.wait_for(
                api.publish(cent.PublishRequest(channel=channel, data={"n": sent})), 5
            )
            await asyncio.sleep(PUBLISH_EVERY_S)
        log(f"published {sent}")

        received = []
        deadline = time.monotonic() + 5
        while len(received) < sent:
            kind, ctx = await sub_events.next(max(deadline - time.monotonic(), 0), "publications")
            check(kind == "publication", f"only publications after subscribe (got {kind})")
            received.append(ctx.data["n"])
        await sub_events.expect_none(0.2, "no duplicate publications")
        check_equal(received, list(range(1, sent + 1)), "every publication exactly once, in order")
        await client_events.expect_none(0.01, "client never disconnected")
        check(tokens["connection"] >= 2, f"connection token refreshed ({tokens['connection']})")
        check(
            tokens["subscription"] >= 2, f"subscription token refreshed ({tokens['subscription']})"
        )

        await client.disconnect()
        await client_events.expect("disconnected", 5, "disconnect")
        return {
            "client": connected.client,
            "channel": channel,
            "published": sent,
            "received": len(received),
            "connection_tokens": tokens["connection"],
            "subscription_tokens": tokens["subscription"],
        }
    finally:
        await api.close()


main("python refresh", scenario)
