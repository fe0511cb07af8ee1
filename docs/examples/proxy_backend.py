"""An application backend for pushwire's proxies (docs/proxies.md), in Python with aiohttp.

The request and response JSON is Centrifugo's, so this backend works with Centrifugo too.
It authenticates connections from a `session` cookie, decides subscriptions and publications,
extends sessions, answers RPC calls and receives one-way `send` messages.

    pip install aiohttp
    python proxy_backend.py 3000        # then point pushwire's proxies at http://127.0.0.1:3000

pushwire's test suite runs this file against the real centrifuge-js client
(crates/pushwire-server/tests/proxies/proxies.rs), so it stays correct.
"""

import asyncio
import json
import sys
import time

from aiohttp import web

SESSION_TTL = 3600  # seconds a connection lives before the refresh proxy is asked again


def session_user(request: web.Request) -> str | None:
    """The user behind the request's `session` cookie (here: the cookie value itself), or
    behind an `X-Session` header the SDK emulated (centrifuge-js `headers` option; pushwire
    forwards it with `emulated_headers = ["X-Session"]`).

    A real application looks the session up in its store.
    """
    return request.cookies.get("session") or request.headers.get("X-Session")


async def connect(request: web.Request) -> web.Response:
    # {"client", "transport", "protocol", "encoding", "name", "version", "data", "channels"}
    body = await request.json()
    user = session_user(request)
    if user is None:
        # Close the connection with an application code (4500..4999: no reconnect).
        return web.json_response({"disconnect": {"code": 4501, "reason": "no session"}})
    return web.json_response(
        {
            "result": {
                "user": user,
                "expire_at": int(time.time()) + SESSION_TTL,
                "info": {"name": f"User {user}"},  # shown in presence and publications
                "data": {"hello": user},  # goes to the client's connect result
                "meta": {"session": user},  # server-only, sent back with include_connection_meta
                "channels": [],  # server-side subscriptions, e.g. [f"personal:{user}"]
            }
        }
    )


async def refresh(request: web.Request) -> web.Response:
    # {"client", "transport", "protocol", "encoding", "user", "meta"}
    body = await request.json()
    if body.get("meta", {}).get("session") is None:
        return web.json_response({"result": {"expired": True}})  # the client gets 3005
    return web.json_response({"result": {"expire_at": int(time.time()) + SESSION_TTL}})


async def subscribe(request: web.Request) -> web.Response:
    # {"client", "transport", "protocol", "encoding", "user", "channel", "token", "data"}
    body = await request.json()
    channel = body["channel"]
    if channel.startswith("denied:"):
        return web.json_response({"error": {"code": 103, "message": "permission denied"}})
    return web.json_response(
        {
            "result": {
                "info": {"via": "proxy"},  # channel info of this subscriber
                "data": {"welcome": channel},  # goes to the client's subscribe result
                # Namespace options for this subscription only.
                "override": {"presence": {"value": not channel.startswith("pres:hidden")}},
            }
        }
    )


async def publish(request: web.Request) -> web.Response:
    # {"client", "transport", "protocol", "encoding", "user", "channel", "data"}
    body = await request.json()
    text = (body.get("data") or {}).get("text", "")
    if text == "forbidden":
        return web.json_response({"error": {"code": 1001, "message": "forbidden word"}})
    # The publication subscribers get instead of the client's data.
    return web.json_response({"result": {"data": {"text": text.upper(), "by": body["user"]}}})


async def sub_refresh(request: web.Request) -> web.Response:
    # {"client", "transport", "protocol", "encoding", "user", "channel"}
    return web.json_response({"result": {"expire_at": int(time.time()) + SESSION_TTL}})


async def rpc(request: web.Request) -> web.Response:
    # {"client", "transport", "protocol", "encoding", "user", "method", "data"}
    body = await request.json()
    if body["method"] == "echo":
        return web.json_response(
            {"result": {"data": {"echo": body.get("data"), "user": body["user"]}}}
        )
    return web.json_response({"error": {"code": 1002, "message": "rpc failed"}})


async def send(request: web.Request) -> web.Response:
    # {"client", "transport", "protocol", "encoding", "user", "data"}; the answer is ignored.
    body = await request.json()
    print("SEND", json.dumps(body), flush=True)
    return web.json_response({})


def app() -> web.Application:
    a = web.Application()
    for path, handler in [
        ("/connect", connect),
        ("/refresh", refresh),
        ("/subscribe", subscribe),
        ("/publish", publish),
        ("/sub_refresh", sub_refresh),
        ("/rpc", rpc),
        ("/send", send),
    ]:
        a.router.add_post(path, handler)
    return a


async def serve(port: int) -> None:
    runner = web.AppRunner(app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    bound = runner.addresses[0][1]  # the real port when 0 was asked
    print(f"READY {bound}", flush=True)
    while True:
        await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]) if len(sys.argv) > 1 else 3000))
