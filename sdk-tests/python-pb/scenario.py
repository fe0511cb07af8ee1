"""centrifuge-python with use_protobuf=True against pushwire.

A protobuf client (WebSocket subprotocol `centrifuge-protobuf`, binary frames) connects through a
local TCP proxy, subscribes with recovery to a fresh `chat:` channel, receives a publication made
with the HTTP API (cent), publishes one itself, loses its connection (the proxy cuts it and
refuses new ones for a while), misses three publications, reconnects by itself and must recover
exactly those, in order, then receive a live one.

Run by crates/pushwire-server/tests/sdk_transports.rs with PUSHWIRE_* in the environment; prints
`RESULT <json>` and exits 0, or prints `FAIL: <reason>` and exits 1.
"""

import asyncio
import json
import os
import secrets
import sys
import time
import traceback
from typing import Any, List, Optional
from urllib.parse import urlsplit, urlunsplit

import cent
import centrifuge

STARTED = time.monotonic()
WS_URL = os.environ["PUSHWIRE_WS_URL"]
HTTP_URL = os.environ["PUSHWIRE_HTTP_URL"]
API_KEY = os.environ["PUSHWIRE_API_KEY"]
CUT_S = 1.5
WAIT_S = 10.0


def log(*args: Any) -> None:
    ms = int((time.monotonic() - STARTED) * 1000)
    print(f"[{ms:6d} ms]", *args, flush=True)


def check_equal(actual: Any, expected: Any, what: str) -> None:
    if actual != expected:
        raise AssertionError(f"check failed: {what}: got {actual!r}, want {expected!r}")
    log(f"ok: {what} = {actual!r}")


class CutProxy:
    """A TCP proxy to the server that can cut every connection and refuse new ones a while."""

    def __init__(self, upstream_host: str, upstream_port: int):
        self.upstream = (upstream_host, upstream_port)
        self.refuse_until = 0.0
        self.pairs: List[asyncio.StreamWriter] = []
        self.server: Optional[asyncio.AbstractServer] = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        if time.monotonic() < self.refuse_until:
            log("proxy: refusing a connection")
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self.pairs += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter):
            try:
                while True:
                    data = await src.read(65536)
                    if not data:
                        break
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                dst.transport.abort()

        asyncio.ensure_future(pipe(reader, up_writer))
        asyncio.ensure_future(pipe(up_reader, writer))

    def cut(self, refuse_for: float) -> None:
        """Aborts every proxied connection and refuses new ones for `refuse_for` seconds."""
        self.refuse_until = time.monotonic() + refuse_for
        for w in self.pairs:
            w.transport.abort()
        self.pairs.clear()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


class Events:
    """SDK events in order; `expect` takes the next one of a type."""

    def __init__(self) -> None:
        self.queue: "asyncio.Queue[tuple]" = asyncio.Queue()

    def push(self, kind: str, value: Any) -> None:
        log(f"event {kind}: {value}")
        self.queue.put_nowait((kind, value))

    async def expect(self, kind: str, what: str, skip=()) -> Any:
        deadline = time.monotonic() + WAIT_S
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {kind}: {what}")
            try:
                got, value = await asyncio.wait_for(self.queue.get(), left)
            except asyncio.TimeoutError:
                raise AssertionError(f"timed out waiting for {kind}: {what}") from None
            if got in skip:
                continue
            if got != kind:
                raise AssertionError(f"expected {kind} ({what}), got {got}: {value}")
            return value


class ClientEvents(centrifuge.ClientEventHandler):
    def __init__(self, events: Events):
        self.events = events

    async def on_connecting(self, ctx: centrifuge.ConnectingContext) -> None:
        self.events.push("connecting", ctx)

    async def on_connected(self, ctx: centrifuge.ConnectedContext) -> None:
        self.events.push("connected", ctx)

    async def on_disconnected(self, ctx: centrifuge.DisconnectedContext) -> None:
        self.events.push("disconnected", ctx)

    async def on_error(self, ctx: centrifuge.ErrorContext) -> None:
        log(f"client error: {ctx}")


class SubEvents(centrifuge.SubscriptionEventHandler):
    def __init__(self, events: Events):
        self.events = events

    async def on_subscribed(self, ctx: centrifuge.SubscribedContext) -> None:
        self.events.push("subscribed", ctx)

    async def on_subscribing(self, ctx: centrifuge.SubscribingContext) -> None:
        log(f"subscribing: {ctx}")

    async def on_unsubscribed(self, ctx: centrifuge.UnsubscribedContext) -> None:
        self.events.push("unsubscribed", ctx)

    async def on_publication(self, ctx: centrifuge.PublicationContext) -> None:
        self.events.push("publication", ctx.pub)

    async def on_error(self, ctx: centrifuge.SubscriptionErrorContext) -> None:
        log(f"subscription error: {ctx}")


def payload(pub: Any) -> Any:
    """Protobuf clients get the JSON payload as bytes."""
    data = pub.data
    if isinstance(data, (bytes, bytearray)):
        return json.loads(bytes(data).decode())
    raise AssertionError(f"a protobuf client gets bytes, got {type(data).__name__}: {data!r}")


async def scenario() -> dict:
    url = urlsplit(WS_URL)
    proxy = CutProxy(url.hostname, url.port)
    port = await proxy.start()
    proxied = urlunsplit((url.scheme, f"127.0.0.1:{port}", url.path, url.query, ""))
    api = cent.AsyncClient(f"{HTTP_URL}/api", API_KEY, timeout=5.0)
    channel = f"chat:{secrets.token_hex(6)}"
    events = Events()
    client = centrifuge.Client(
        proxied,
        events=ClientEvents(events),
        use_protobuf=True,
        proxy=None,
        min_reconnect_delay=0.2,
        max_reconnect_delay=1.0,
    )
    sub = client.new_subscription(channel, events=SubEvents(events))
    offsets: List[int] = []

    async def publish(n: int, **extra: Any) -> None:
        result = await api.publish(
            cent.PublishRequest(channel=channel, data={"n": n, "from": "api", **extra})
        )
        log(f"cent publish {n} -> offset {result.offset}")

    async def expect_pub(n: int, what: str) -> None:
        pub = await events.expect("publication", what)
        check_equal(payload(pub)["n"], n, f"{what}: data")
        check_equal(pub.offset, n, f"{what}: offset")
        offsets.append(pub.offset)

    try:
        await client.connect()
        await events.expect("connected", "first connect", skip=("connecting",))
        await sub.subscribe()
        first = await events.expect("subscribed", "first subscribe")
        check_equal((first.was_recovering, first.recovered), (False, False), "first subscribe")
        check_equal(first.recoverable, True, "recoverable")
        epoch = first.stream_position.epoch

        await publish(1)
        await expect_pub(1, "API publication")
        await sub.publish(json.dumps({"n": 2, "from": "client"}).encode())
        await expect_pub(2, "client publication")

        proxy.cut(CUT_S)
        away = await events.expect("connecting", "the cut")
        log(f"cut: connecting code {away.code} ({away.reason})")
        for n in (3, 4, 5):
            await publish(n, missed=True)
        await events.expect("connected", "reconnect after the cut", skip=("connecting",))
        again = await events.expect("subscribed", "resubscribe with recovery")
        check_equal((again.was_recovering, again.recovered), (True, True), "recovered")
        check_equal(again.stream_position.epoch, epoch, "same epoch")
        for n in (3, 4, 5):
            await expect_pub(n, f"recovered publication {n}")
        await publish(6)
        await expect_pub(6, "live after recovery")
        return {
            "protobuf": True,
            "transport": "websocket",
            "channel": channel,
            "epoch": epoch,
            "recovered": again.recovered,
            "offsets": offsets,
        }
    finally:
        await client.disconnect()
        await api.close()
        proxy.close()


def main() -> None:
    try:
        result = asyncio.run(asyncio.wait_for(scenario(), 50))
    except BaseException:  # noqa: BLE001 - report everything, then fail
        print(f"FAIL: {traceback.format_exc()}", flush=True)
        sys.exit(1)
    print(f"RESULT {json.dumps(result)}", flush=True)


if __name__ == "__main__":
    main()
