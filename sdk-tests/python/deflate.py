"""permessage-deflate with centrifuge-python: its `websockets` transport offers the extension
by default (`client_max_window_bits`); with `websocket.compression` on, the handshake answer
accepts it. Two clients subscribe to one channel; 20 publications of a ~2 KB document made
through the server API, and one made by a client with `sub.publish` (websockets compresses
what it sends), reach both exactly. Prints the negotiated extension of each connection."""

from common import (
    WS_URL,
    api_client,
    check,
    log,
    main,
    new_client,
    new_subscription,
    publish,
    unique_channel,
)

N = 20


def document(n):
    rows = [
        {
            "id": i,
            "name": f"instrument {i:03} – Zürich €",
            "venue": "primary exchange, continuous trading",
            "price": 1000 + n + i,
        }
        for i in range(20)
    ]
    return {"seq": n, "rows": rows}


def extensions(client):
    """The `Sec-WebSocket-Extensions` answer on the client's live connection."""
    conn = client._conn
    return conn.response.headers.get("Sec-WebSocket-Extensions") if conn else None


async def scenario():
    api = api_client()
    channel = unique_channel("deflate")
    clients = []
    try:
        inboxes = []
        for name in ("a", "b"):
            client, events = new_client(WS_URL, name)
            sub, inbox = new_subscription(client, channel, f"{name}/{channel}")
            await sub.subscribe()
            await client.connect()
            await events.expect("connected", 5, f"{name} connects", skip=["connecting"])
            await inbox.expect("subscribed", 5, f"{name} subscribes", skip=["subscribing"])
            clients.append((client, sub))
            inboxes.append(inbox)
        negotiated = [extensions(c) for c, _ in clients]
        log("extensions", negotiated)
        for n in range(1, N + 1):
            await publish(api, channel, document(n))
        await clients[0][1].publish(document(N + 1))
        for name, inbox in zip(("a", "b"), inboxes):
            for n in range(1, N + 2):
                pub = await inbox.expect("publication", 5, f"{name} publication {n}")
                check(pub.data == document(n), f"{name}: publication {n} exact")
        for client, _ in clients:
            await client.disconnect()
        return {"extensions": negotiated, "received": N + 1}
    finally:
        await api.close()


main("python deflate", scenario)
