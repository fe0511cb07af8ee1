"""Shared helpers for the centrifuge-python / cent scenarios.

Every scenario runs through `main(name, scenario)`: it gets a hard timeout, prints what it
observed (one line per event, with the time since start), prints `RESULT <json>` on success and
exits 0, or prints `FAIL: <reason>` and exits 1.
"""

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import json
import os
import secrets
import sys
import time
import traceback
from typing import Any, Awaitable, Callable, Dict, Iterable, List, Optional, Set, Tuple
from urllib.parse import urlsplit, urlunsplit

import cent
import centrifuge

_STARTED = time.monotonic()


def _required(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        print(f"FAIL: environment variable {name} is not set", flush=True)
        sys.exit(1)
    return value


WS_URL = _required("PUSHWIRE_WS_URL")
HTTP_URL = _required("PUSHWIRE_HTTP_URL")
API_KEY = _required("PUSHWIRE_API_KEY")
SECRET = _required("PUSHWIRE_SECRET")


class CheckFailed(Exception):
    """A failed assertion of a scenario."""


def _show(value: Any) -> str:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, default=repr, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def log(*args: Any) -> None:
    """Prints a line prefixed with milliseconds since start."""
    ms = int((time.monotonic() - _STARTED) * 1000)
    print(f"[{ms:6d} ms]", *(_show(a) for a in args), flush=True)


def check(cond: bool, what: str) -> None:
    """Raises CheckFailed when `cond` is false."""
    if not cond:
        raise CheckFailed(f"check failed: {what}")
    log(f"ok: {what}")


def check_equal(actual: Any, expected: Any, what: str) -> None:
    """Raises CheckFailed unless `actual == expected`."""
    if actual != expected:
        raise CheckFailed(
            f"check failed: {what}: got {_show(actual)}, want {_show(expected)}"
        )
    log(f"ok: {what} = {_show(actual)}")


def unique_channel(prefix: str) -> str:
    """A channel name that no other run uses: `<prefix><random hex>`."""
    return prefix + secrets.token_hex(6)


def hs256(claims: Dict[str, Any], secret: str = SECRET) -> str:
    """An HS256 JWT for `claims`, signed with the server's HMAC secret."""

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    signing_input = f"{header}.{body}".encode()
    sig = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    return f"{header}.{body}.{b64(sig)}"


def api_client() -> cent.AsyncClient:
    """A cent client for the server API at `<PUSHWIRE_HTTP_URL>/api`."""
    return cent.AsyncClient(f"{HTTP_URL}/api", API_KEY, timeout=5.0)


async def publish(api: cent.AsyncClient, channel: str, data: Any) -> cent.PublishResult:
    """Publishes with cent and logs the result."""
    result = await asyncio.wait_for(
        api.publish(cent.PublishRequest(channel=channel, data=data)), 5.0
    )
    log(f"cent publish {_show(data)} ->", result.model_dump())
    return result


class Inbox:
    """An ordered record of SDK events: handlers `push`, the scenario takes them with `next`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.quiet: Set[str] = set()
        self._queue: "asyncio.Queue[Tuple[str, Any]]" = asyncio.Queue()

    def push(self, kind: str, ctx: Any) -> None:
        """Records an event of `kind` with its context, and logs it (unless `kind` is quiet)."""
        if kind not in self.quiet:
            log(f"{self.name}: {kind}", ctx)
        self._queue.put_nowait((kind, ctx))

    def take(self) -> Optional[Tuple[str, Any]]:
        """The next event if one is waiting, else None."""
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None

    async def next(
        self, timeout: float, what: str, skip: Iterable[str] = ()
    ) -> Tuple[str, Any]:
        """The next event, skipping those whose kind is in `skip`."""
        skip = set(skip)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                kind, ctx = await asyncio.wait_for(self._queue.get(), max(left, 0))
            except asyncio.TimeoutError:
                raise CheckFailed(
                    f"timed out after {timeout} s waiting for {self.name}: {what}"
                ) from None
            if kind not in skip:
                return kind, ctx

    async def expect(
        self, kind: str, timeout: float, what: str, skip: Iterable[str] = ()
    ) -> Any:
        """The next event, which must be of `kind`; returns its context."""
        got, ctx = await self.next(timeout, what, skip)
        if got != kind:
            raise CheckFailed(f"{self.name}: expected {kind} ({what}), got {got} {_show(ctx)}")
        return ctx

    async def expect_none(self, timeout: float, what: str, skip: Iterable[str] = ()) -> None:
        """Raises if an event not of a kind in `skip` arrives within `timeout`."""
        skip = set(skip)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                kind, ctx = await asyncio.wait_for(self._queue.get(), left)
            except asyncio.TimeoutError:
                break
            if kind not in skip:
                raise CheckFailed(f"{self.name}: unexpected {kind} {_show(ctx)}: {what}")
        log(f"ok: {what} (nothing within {timeout} s)")


class ClientEvents(centrifuge.ClientEventHandler):
    """Client events into an Inbox."""

    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    async def on_connecting(self, ctx: centrifuge.ConnectingContext) -> None:
        self.inbox.push("connecting", ctx)

    async def on_connected(self, ctx: centrifuge.ConnectedContext) -> None:
        self.inbox.push("connected", ctx)

    async def on_disconnected(self, ctx: centrifuge.DisconnectedContext) -> None:
        self.inbox.push("disconnected", ctx)

    async def on_error(self, ctx: centrifuge.ErrorContext) -> None:
        self.inbox.push("error", {"code": ctx.code, "error": repr(ctx.error)})


class SubscriptionEvents(centrifuge.SubscriptionEventHandler):
    """Subscription events into an Inbox."""

    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    async def on_subscribing(self, ctx: centrifuge.SubscribingContext) -> None:
        self.inbox.push("subscribing", ctx)

    async def on_subscribed(self, ctx: centrifuge.SubscribedContext) -> None:
        self.inbox.push("subscribed", ctx)

    async def on_unsubscribed(self, ctx: centrifuge.UnsubscribedContext) -> None:
        self.inbox.push("unsubscribed", ctx)

    async def on_publication(self, ctx: centrifuge.PublicationContext) -> None:
        self.inbox.push("publication", ctx.pub)

    async def on_error(self, ctx: centrifuge.SubscriptionErrorContext) -> None:
        self.inbox.push("error", {"code": ctx.code, "error": repr(ctx.error)})


def new_client(url: str, name: str, **options: Any) -> Tuple[centrifuge.Client, Inbox]:
    """A centrifuge-python client for `url` (no proxy from the environment) and its events."""
    inbox = Inbox(name)
    client = centrifuge.Client(url, events=ClientEvents(inbox), proxy=None, **options)
    return client, inbox


def new_subscription(
    client: centrifuge.Client, channel: str, name: str, **options: Any
) -> Tuple[centrifuge.Subscription, Inbox]:
    """A subscription on `client` and its events."""
    inbox = Inbox(name)
    sub = client.new_subscription(channel, events=SubscriptionEvents(inbox), **options)
    return sub, inbox


class CutProxy:
    """A TCP proxy between an SDK and the server that can cut the line.

    `cut()` aborts every proxied connection and refuses (accepts and immediately closes) new
    ones until `restore()`. `downstream_rate` (bytes per second, None = unlimited) throttles
    what the server sends to the SDK, like a slow mobile link; the upstream socket then keeps a
    small fixed receive buffer so the server sees the slowness at once.
    """

    def __init__(self, host: str, port: int) -> None:
        self._host = host
        self._port = port
        self.blocked = False
        self.downstream_rate: Optional[float] = None
        self.accepted = 0
        self.refused = 0
        self._writers: Set[asyncio.StreamWriter] = set()
        self._tasks: Set["asyncio.Task[None]"] = set()
        self._server: Optional[asyncio.AbstractServer] = None
        self.port = 0

    @classmethod
    async def start(cls, target_url: str) -> "CutProxy":
        """Starts a proxy on 127.0.0.1:0 in front of the host:port of `target_url`."""
        target = urlsplit(target_url)
        proxy = cls(target.hostname or "127.0.0.1", target.port or 80)
        proxy._server = await asyncio.start_server(proxy._accept, "127.0.0.1", 0)
        proxy.port = proxy._server.sockets[0].getsockname()[1]
        log(f"proxy: 127.0.0.1:{proxy.port} -> {proxy._host}:{proxy._port}")
        return proxy

    def rewrite(self, url: str) -> str:
        """`url` with its host:port replaced by the proxy's."""
        parts = urlsplit(url)
        return urlunsplit(parts._replace(netloc=f"127.0.0.1:{self.port}"))

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.blocked:
            self.refused += 1
            writer.transport.abort()
            return
        self.accepted += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(self._host, self._port)
        except OSError:
            writer.transport.abort()
            return
        pair = (writer, up_writer)
        self._writers.update(pair)
        if self.downstream_rate is not None:
            import socket

            sock = up_writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)

        async def pump(
            src: asyncio.StreamReader, dst: asyncio.StreamWriter, throttled: bool
        ) -> None:
            try:
                while True:
                    rate = self.downstream_rate if throttled else None
                    chunk = await src.read(8192 if rate else 65536)
                    if not chunk:
                        break
                    dst.write(chunk)
                    await dst.drain()
                    if rate:
                        await asyncio.sleep(len(chunk) / rate)
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                for w in pair:
                    w.transport.abort()
                    self._writers.discard(w)

        for src, dst, throttled in ((reader, up_writer, False), (up_reader, writer, True)):
            task = asyncio.ensure_future(pump(src, dst, throttled))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def cut(self) -> None:
        """Aborts every proxied connection and refuses new ones."""
        self.blocked = True
        n = len(self._writers) // 2
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()
        log(f"proxy: cut ({n} connection(s) aborted), refusing new ones")

    def restore(self) -> None:
        """Lets connections through again."""
        self.blocked = False
        log(f"proxy: restored (refused {self.refused} connection attempt(s) meanwhile)")

    async def close(self) -> None:
        """Stops the proxy."""
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()


def main(
    name: str, scenario: Callable[[], Awaitable[Optional[Dict[str, Any]]]], timeout: float = 45.0
) -> None:
    """Runs `scenario` with a hard timeout; prints RESULT and PASS, or FAIL; exits 0 or 1."""

    async def run() -> Optional[Dict[str, Any]]:
        return await asyncio.wait_for(scenario(), timeout)

    log(f"scenario: {name}")
    try:
        result = asyncio.run(run())
    except asyncio.TimeoutError:
        print(f"FAIL: {name}: hard timeout of {timeout} s", flush=True)
        sys.exit(1)
    except Exception:  # noqa: BLE001 - every failure is reported the same way
        print(f"FAIL: {name}: {traceback.format_exc()}", flush=True)
        sys.exit(1)
    print(f"RESULT {json.dumps(result or {})}", flush=True)
    print(f"PASS: {name}", flush=True)
    sys.exit(0)


__all__: List[str] = [
    "API_KEY",
    "CheckFailed",
    "CutProxy",
    "HTTP_URL",
    "Inbox",
    "SECRET",
    "WS_URL",
    "api_client",
    "check",
    "check_equal",
    "hs256",
    "log",
    "main",
    "new_client",
    "new_subscription",
    "publish",
    "unique_channel",
]
