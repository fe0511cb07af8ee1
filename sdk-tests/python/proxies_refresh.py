"""Scenario: server-side refresh by the application backend (crates/pushwire-server/tests/
proxies.rs starts the backend and the server).

centrifuge-python connects with a session cookie and no token; the connect proxy grants a
3-second session. It subscribes to `exp:<random>`, which the subscribe proxy grants for one
second. The sub_refresh proxy extends the subscription once, then answers expired: the server
unsubscribes with 2501 and the SDK resubscribes by itself (the subscribe proxy grants it again).
The refresh proxy extends the connection once, then answers expired: the server closes it with
3005 and the SDK reconnects by itself (the connect proxy lets it in again)."""

from common import WS_URL, check, check_equal, log, main, new_client, new_subscription, unique_channel


async def scenario():
    channel = unique_channel("exp:")
    client, events = new_client(
        WS_URL, "client", headers={"Cookie": "session=short-py"}
    )
    sub, sub_events = new_subscription(client, channel, channel)
    try:
        await sub.subscribe()
        await client.connect()
        connected = await events.expect("connected", 5, "connect", skip=["connecting"])
        check_equal(connected.data, {"hello": "short-py"}, "connect data from the backend")
        await sub_events.expect("subscribed", 5, "subscribe", skip=["subscribing"])

        # sub_refresh: extended once (~1 s), expired at the second call (~2 s): 2501, resubscribe.
        resub = await sub_events.expect("subscribing", 6, "subscription expired by the backend")
        check_equal(resub.code, 2501, "unsubscribe code")
        await sub_events.expect("subscribed", 5, "resubscribed", skip=["subscribing"])

        # refresh: extended once (~3 s), expired at the second call (~6 s): 3005, reconnect.
        again = await events.expect("connecting", 10, "connection expired by the backend", skip=["error"])
        check_equal(again.code, 3005, "disconnect code")
        reconnected = await events.expect("connected", 10, "reconnected", skip=["connecting", "error"])
        check(reconnected.client != connected.client, "a new connection")
        return {"channel": channel, "first": connected.client, "second": reconnected.client}
    finally:
        await client.disconnect()


if __name__ == "__main__":
    main("python proxies refresh", scenario)
