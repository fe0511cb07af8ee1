"""Scenario: a server started from an unchanged Centrifugo v6 config.json
(crates/pushwire-server/tests/fixtures/centrifugo/sdk-centrifugo-v6.json). Two
centrifuge-python clients connect with HS256 tokens signed with the file's
client.token.hmac_secret_key and subscribe to `chat:room` (allow_subscribe_for_client); cent,
with the file's http_api.key, publishes; a subscriber publishes (allow_publish_for_subscriber);
presence and history answer as the namespace says (presence, history_size 10); a channel of an
unknown namespace is refused (102)."""

import asyncio
import time

import cent

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

CHANNEL = "chat:room"


async def connect(name: str, user: str):
    token = hs256({"sub": user, "exp": int(time.time()) + 600})
    client, events = new_client(WS_URL, name, token=token)
    sub, inbox = new_subscription(client, CHANNEL, f"{name}/{CHANNEL}")
    await sub.subscribe()
    await client.connect()
    await events.expect("connected", 5, f"{name} connects with a token", skip=["connecting"])
    await inbox.expect("subscribed", 5, f"{name} subscribes", skip=["subscribing"])
    return client, sub, inbox


async def scenario():
    api = api_client()
    try:
        alice, _alice_sub, alice_inbox = await connect("alice", "alice")
        bob, bob_sub, bob_inbox = await connect("bob", "bob")

        await publish(api, CHANNEL, {"text": "from cent"})
        for who, inbox in (("alice", alice_inbox), ("bob", bob_inbox)):
            pub = await inbox.expect("publication", 5, f"{who} gets the cent publication")
            check_equal(pub.data, {"text": "from cent"}, f"{who}: data")

        await asyncio.wait_for(bob_sub.publish({"text": "from bob"}), 5)
        pub = await alice_inbox.expect("publication", 5, "alice gets bob's publication")
        check_equal(pub.info.user, "bob", "publisher")

        presence = await asyncio.wait_for(api.presence(cent.PresenceRequest(channel=CHANNEL)), 5)
        users = sorted(info.user for info in presence.presence.values())
        log("presence", users)
        check_equal(users, ["alice", "bob"], "presence users")

        history = await asyncio.wait_for(
            api.history(cent.HistoryRequest(channel=CHANNEL, limit=10)), 5
        )
        check_equal(len(history.publications), 2, "history keeps both publications")

        stranger = bob.new_subscription("nowhere:room")
        refused = None
        try:
            await asyncio.wait_for(stranger.subscribe(), 5)
            await asyncio.sleep(0.5)
        except Exception as e:  # noqa: BLE001 - the SDK reports the refusal either way
            refused = str(e)
        check(stranger.state.value != "subscribed", "unknown namespace is not subscribed")
        log("unknown namespace", refused)

        await alice.disconnect()
        await bob.disconnect()
        log("done")
        return {"presence": users, "history": len(history.publications)}
    finally:
        await api.close()


if __name__ == "__main__":
    main("centrifugo_config", scenario)
