"""A centrifuge-python client that reports every event as one JSON line on stdout.

    python python/cluster_user.py <ws_url> <token> [channel] [seconds=60]

Connects to `ws_url` (e.g. a load balancer's `/connection/websocket`) with `token` (`-` for
none, i.e. anonymous), subscribes to `channel` when given (`-` or omitted: none, server-side
subscriptions only), and prints, flushed, one line per event:

    {"event": "connecting", "code": ..., "reason": ...}
    {"event": "connected", "client": ...}
    {"event": "disconnected", "code": ..., "reason": ...}
    {"event": "subscribed", "channel": ..., "recovered": ..., "was_recovering": ...}
    {"event": "unsubscribed", "channel": ..., "code": ..., "reason": ...}
    {"event": "server_subscribed", "channel": ..., "recovered": ..., "was_recovering": ...}
    {"event": "server_unsubscribed", "channel": ...}
    {"event": "publication", "channel": ..., "data": ..., "offset": ..., "server_side": ...}

`connecting` comes first with code 0, then after every disconnect the SDK recovers from (with
its code: 3001 shutdown, 4000-4499 custom, < 3000 transport closed), followed by `connected`
again; `disconnected` is the SDK's terminal state (codes 3500-3999, 4500-4999). Errors go to
stderr. Runs until killed, or exits 0 after `seconds`.
"""

import asyncio
import json
import sys
from typing import Any

import centrifuge


def emit(event: str, **fields: Any) -> None:
    """Prints one event line and flushes it."""
    print(json.dumps({"event": event, **fields}, default=repr), flush=True)


def note(*args: Any) -> None:
    """A diagnostic line on stderr."""
    print(*args, file=sys.stderr, flush=True)


class ClientEvents(centrifuge.ClientEventHandler):
    """Client and server-side subscription events as lines."""

    async def on_connecting(self, ctx: centrifuge.ConnectingContext) -> None:
        emit("connecting", code=ctx.code, reason=ctx.reason)

    async def on_connected(self, ctx: centrifuge.ConnectedContext) -> None:
        emit("connected", client=ctx.client)

    async def on_disconnected(self, ctx: centrifuge.DisconnectedContext) -> None:
        emit("disconnected", code=ctx.code, reason=ctx.reason)

    async def on_error(self, ctx: centrifuge.ErrorContext) -> None:
        note(f"client error: {ctx.code} {ctx.error!r}")

    async def on_subscribed(self, ctx: centrifuge.ServerSubscribedContext) -> None:
        emit(
            "server_subscribed",
            channel=ctx.channel,
            recovered=ctx.recovered,
            was_recovering=ctx.was_recovering,
        )

    async def on_unsubscribed(self, ctx: centrifuge.ServerUnsubscribedContext) -> None:
        emit("server_unsubscribed", channel=ctx.channel)

    async def on_publication(self, ctx: centrifuge.ServerPublicationContext) -> None:
        emit(
            "publication",
            channel=ctx.channel,
            data=ctx.pub.data,
            offset=ctx.pub.offset,
            server_side=True,
        )


class SubscriptionEvents(centrifuge.SubscriptionEventHandler):
    """A client-side subscription's events as lines."""

    def __init__(self, channel: str) -> None:
        self.channel = channel

    async def on_subscribing(self, ctx: centrifuge.SubscribingContext) -> None:
        note(f"subscribing {self.channel}: {ctx.code} {ctx.reason}")

    async def on_subscribed(self, ctx: centrifuge.SubscribedContext) -> None:
        emit(
            "subscribed",
            channel=self.channel,
            recovered=ctx.recovered,
            was_recovering=ctx.was_recovering,
        )

    async def on_unsubscribed(self, ctx: centrifuge.UnsubscribedContext) -> None:
        emit("unsubscribed", channel=self.channel, code=ctx.code, reason=ctx.reason)

    async def on_publication(self, ctx: centrifuge.PublicationContext) -> None:
        emit(
            "publication",
            channel=self.channel,
            data=ctx.pub.data,
            offset=ctx.pub.offset,
            server_side=False,
        )

    async def on_error(self, ctx: centrifuge.SubscriptionErrorContext) -> None:
        note(f"subscription error {self.channel}: {ctx.code} {ctx.error!r}")


async def run(url: str, token: str, channel: str, seconds: float) -> None:
    """Connects, subscribes, and reports events for `seconds`."""
    client = centrifuge.Client(
        url, events=ClientEvents(), token="" if token == "-" else token, proxy=None
    )
    if channel and channel != "-":
        sub = client.new_subscription(channel, events=SubscriptionEvents(channel))
        await sub.subscribe()
    await client.connect()
    await asyncio.sleep(seconds)
    await client.disconnect()


def main() -> None:
    """Parses argv and runs."""
    if len(sys.argv) < 3:
        note(__doc__)
        sys.exit(2)
    url, token = sys.argv[1], sys.argv[2]
    channel = sys.argv[3] if len(sys.argv) > 3 else "-"
    seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 60.0
    asyncio.run(run(url, token, channel, seconds))


if __name__ == "__main__":
    main()
