"""The gRPC server API (proto/api.proto) called with grpcio, against the same server state as
the HTTP API, with a centrifuge-python client watching.

Needs `PUSHWIRE_GRPC_API` (host:port of the gRPC API listener) on top of the usual variables;
with `PUSHWIRE_GRPC_API_CA` (a PEM file) every call goes over TLS, trusting that certificate
for the name `localhost`.
The stubs are generated from ../proto/api.proto at start-up (into a temporary directory).

Every method is called over gRPC and its answer compared with the HTTP API's answer on the same
state: publish via gRPC → history via HTTP, publish via HTTP → history via gRPC, presence,
presence stats, channels, info, broadcast, batch, rpc, server-side subscribe / unsubscribe,
refresh, history_remove, disconnect. Errors come in the response's `error` field (transport
mode: a status); a wrong or missing key is UNAUTHENTICATED.
"""

import asyncio
import importlib
import json
import os
import sys
import tempfile
import time
import urllib.request
from typing import Any, Dict

import grpc
from grpc_tools import protoc

from common import (
    API_KEY,
    HTTP_URL,
    WS_URL,
    ClientEvents,
    check,
    check_equal,
    hs256,
    log,
    main,
    new_subscription,
    unique_channel,
)

import centrifuge

GRPC_ADDR = os.environ["PUSHWIRE_GRPC_API"]
PROTO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "proto", "api.proto")


def load_stubs():
    """Generates and imports api_pb2 / api_pb2_grpc from proto/api.proto."""
    out = tempfile.mkdtemp(prefix="api-stubs-")
    include = os.path.dirname(os.path.abspath(PROTO))
    grpc_include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    code = protoc.main(
        ["protoc", f"-I{include}", f"-I{grpc_include}", f"--python_out={out}",
         f"--grpc_python_out={out}", os.path.abspath(PROTO)]
    )
    if code != 0:
        raise SystemExit("protoc failed on proto/api.proto")
    sys.path.insert(0, out)
    return importlib.import_module("api_pb2"), importlib.import_module("api_pb2_grpc")


pb, pb_grpc = load_stubs()
AUTH = (("authorization", f"apikey {API_KEY}"),)


def http(method: str, body: Dict[str, Any]) -> Dict[str, Any]:
    """POST /api/<method> with the key; the parsed response."""
    req = urllib.request.Request(
        f"{HTTP_URL}/api/{method}",
        data=json.dumps(body).encode(),
        headers={"X-API-Key": API_KEY, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


async def http_api(method: str, body: Dict[str, Any]) -> Dict[str, Any]:
    result = await asyncio.to_thread(http, method, body)
    log(f"HTTP {method} {json.dumps(body)} ->", result)
    return result


def error_of(resp) -> Any:
    """(code, message) of a response's error field, or None."""
    return (resp.error.code, resp.error.message) if resp.HasField("error") else None


def open_channel() -> grpc.aio.Channel:
    """A channel to the gRPC API: plain text, or TLS with PUSHWIRE_GRPC_API_CA."""
    ca = os.environ.get("PUSHWIRE_GRPC_API_CA")
    if not ca:
        return grpc.aio.insecure_channel(GRPC_ADDR)
    with open(ca, "rb") as f:
        creds = grpc.ssl_channel_credentials(root_certificates=f.read())
    log("gRPC over TLS")
    return grpc.aio.secure_channel(
        GRPC_ADDR, creds, options=(("grpc.ssl_target_name_override", "localhost"),)
    )


class Events(ClientEvents):
    """Client events plus server-side subscriptions."""

    async def on_subscribed(self, ctx: centrifuge.ServerSubscribedContext) -> None:
        self.inbox.push("server_subscribed", ctx.channel)

    async def on_unsubscribed(self, ctx: centrifuge.ServerUnsubscribedContext) -> None:
        self.inbox.push("server_unsubscribed", ctx.channel)


async def scenario() -> Dict[str, Any]:
    from common import Inbox

    result: Dict[str, Any] = {}
    channel = unique_channel("chat:grpc-")
    user = "grpc-user"
    token = hs256({"sub": user, "exp": int(time.time()) + 3600, "info": {"name": "G"}})
    inbox = Inbox("client")
    client = centrifuge.Client(WS_URL, events=Events(inbox), proxy=None, token=token)
    sub, sub_inbox = new_subscription(client, channel, "sub")
    await client.connect()
    await inbox.expect("connected", 5, "client connects", skip=["connecting"])
    await sub.subscribe()
    await sub_inbox.expect("subscribed", 5, "subscribed", skip=["subscribing"])

    async with open_channel() as ch:
        api = pb_grpc.CentrifugoApiStub(ch)

        # Auth: wrong key, no key.
        for what, md in (("wrong key", (("authorization", "apikey nope"),)), ("no key", ())):
            try:
                await api.Info(pb.InfoRequest(), metadata=md)
                check(False, f"{what} is refused")
            except grpc.aio.AioRpcError as e:
                check_equal(e.code(), grpc.StatusCode.UNAUTHENTICATED, f"{what}: status")
        result["unauthenticated"] = True

        # Publish over gRPC: the subscriber gets it, HTTP history has it.
        pub = await api.Publish(
            pb.PublishRequest(channel=channel, data=b'{"n":1}', tags={"k": "v"}), metadata=AUTH
        )
        check(error_of(pub) is None, f"gRPC publish succeeds: {pub}")
        got = await sub_inbox.expect("publication", 5, "publication from gRPC")
        check_equal(got.data, {"n": 1}, "subscriber data")
        check_equal(got.offset, pub.result.offset, "subscriber offset = gRPC publish offset")
        result["publish_offset"] = pub.result.offset
        result["delivered"] = got.data
        h = await http_api("history", {"channel": channel, "limit": -1})
        check_equal(h["result"]["epoch"], pub.result.epoch, "HTTP history epoch = gRPC publish epoch")
        check_equal([p["data"] for p in h["result"]["publications"]], [{"n": 1}], "HTTP history data")
        check_equal(h["result"]["publications"][0].get("tags"), {"k": "v"}, "tags kept")

        # Publish over HTTP: gRPC history has both, as HTTP does.
        await http_api("publish", {"channel": channel, "data": {"n": 2}})
        await sub_inbox.expect("publication", 5, "publication from HTTP")
        gh = await api.History(pb.HistoryRequest(channel=channel, limit=-1), metadata=AUTH)
        h = await http_api("history", {"channel": channel, "limit": -1})
        grpc_pubs = [(json.loads(p.data), p.offset, dict(p.tags)) for p in gh.result.publications]
        http_pubs = [(p["data"], p["offset"], p.get("tags", {})) for p in h["result"]["publications"]]
        check_equal(grpc_pubs, http_pubs, "gRPC history = HTTP history")
        check_equal((gh.result.epoch, gh.result.offset),
                    (h["result"]["epoch"], h["result"]["offset"]), "stream position")
        since = await api.History(
            pb.HistoryRequest(channel=channel, limit=10,
                              since=pb.StreamPosition(offset=1, epoch=gh.result.epoch)),
            metadata=AUTH)
        check_equal([p.offset for p in since.result.publications], [2], "history since offset 1")
        result["history_offsets"] = [p.offset for p in gh.result.publications]

        # Presence and stats.
        pr = await api.Presence(pb.PresenceRequest(channel=channel), metadata=AUTH)
        hp = await http_api("presence", {"channel": channel})
        grpc_presence = {k: (v.user, v.client, json.loads(v.conn_info)) for k, v in pr.result.presence.items()}
        http_presence = {k: (v["user"], v["client"], v.get("conn_info")) for k, v in hp["result"]["presence"].items()}
        check_equal(grpc_presence, http_presence, "gRPC presence = HTTP presence")
        check_equal([v[0] for v in grpc_presence.values()], [user], "presence user")
        result["presence_users"] = [v[0] for v in grpc_presence.values()]
        ps = await api.PresenceStats(pb.PresenceStatsRequest(channel=channel), metadata=AUTH)
        check_equal((ps.result.num_clients, ps.result.num_users), (1, 1), "presence stats")
        result["presence_stats"] = [ps.result.num_clients, ps.result.num_users]

        # Channels and info.
        chans = await api.Channels(pb.ChannelsRequest(pattern="chat:grpc-*"), metadata=AUTH)
        hc = await http_api("channels", {"pattern": "chat:grpc-*"})
        check_equal({k: v.num_clients for k, v in chans.result.channels.items()},
                    {k: v["num_clients"] for k, v in hc["result"]["channels"].items()},
                    "gRPC channels = HTTP channels")
        check_equal(chans.result.channels[channel].num_clients, 1, "channel has its subscriber")
        info = await api.Info(pb.InfoRequest(), metadata=AUTH)
        hi = await http_api("info", {})
        check_equal([n.uid for n in info.result.nodes], [n["uid"] for n in hi["result"]["nodes"]], "info uids")
        check(info.result.nodes[0].num_clients >= 1 and info.result.nodes[0].version != "", "info numbers")
        result["info_num_clients"] = info.result.nodes[0].num_clients

        # Errors in the error field, as over HTTP.
        bad = await api.Publish(pb.PublishRequest(channel="", data=b"{}"), metadata=AUTH)
        check_equal(error_of(bad), (107, "bad request"), "publish without channel")
        unknown = await api.Publish(pb.PublishRequest(channel="nope:x", data=b"{}"), metadata=AUTH)
        http_unknown = await http_api("publish", {"channel": "nope:x", "data": {}})
        check_equal(list(error_of(unknown)), [http_unknown["error"]["code"], http_unknown["error"]["message"]],
                    "unknown namespace: same error as HTTP")
        rpc = await api.RPC(pb.RPCRequest(method="sum", params=b'{"a":1}'), metadata=AUTH)
        http_rpc = await http_api("rpc", {"method": "sum", "params": {"a": 1}})
        check_equal(list(error_of(rpc)), [http_rpc["error"]["code"], http_rpc["error"]["message"]], "rpc: same as HTTP")
        result["errors"] = [bad.error.code, unknown.error.code, rpc.error.code]
        try:
            await api.Publish(pb.PublishRequest(channel=""), metadata=AUTH + (("x-centrifugo-error-mode", "transport"),))
            check(False, "transport error mode answers with a status")
        except grpc.aio.AioRpcError as e:
            check_equal(e.code(), grpc.StatusCode.INVALID_ARGUMENT, "transport error mode status")
            result["transport_status"] = e.code().name

        # Broadcast: one response per channel.
        other = unique_channel("chat:grpc-")
        bc = await api.Broadcast(pb.BroadcastRequest(channels=[channel, other, ""], data=b'{"n":3}'), metadata=AUTH)
        check_equal([error_of(r) for r in bc.result.responses][2], (107, "bad request"), "broadcast error item")
        check_equal(bc.result.responses[1].result.offset, 1, "broadcast to a fresh channel")
        await sub_inbox.expect("publication", 5, "broadcast publication")
        result["broadcast_offsets"] = [r.result.offset for r in bc.result.responses[:2]]

        # Batch: replies in order, keyed by method.
        batch = await api.Batch(pb.BatchRequest(commands=[
            pb.Command(publish=pb.PublishRequest(channel=channel, data=b'{"n":4}')),
            pb.Command(presence_stats=pb.PresenceStatsRequest(channel=channel)),
            pb.Command(rpc=pb.RPCRequest(method="")),
        ]), metadata=AUTH)
        check_equal(batch.replies[0].publish.offset, 4, "batch publish offset")
        check_equal(batch.replies[1].presence_stats.num_clients, 1, "batch presence_stats")
        check_equal(error_of(batch.replies[2]), (107, "bad request"), "batch rpc error")
        await sub_inbox.expect("publication", 5, "batch publication")
        result["batch"] = [batch.replies[0].publish.offset, batch.replies[1].presence_stats.num_clients,
                           batch.replies[2].error.code]

        # Server-side subscribe / unsubscribe reach the connection.
        side = unique_channel("chat:side-")
        s = await api.Subscribe(pb.SubscribeRequest(user=user, channel=side), metadata=AUTH)
        check(error_of(s) is None, "server-side subscribe")
        check_equal(await inbox.expect("server_subscribed", 5, "server-side subscription"), side, "subscribed")
        u = await api.Unsubscribe(pb.UnsubscribeRequest(user=user, channel=side), metadata=AUTH)
        check(error_of(u) is None, "server-side unsubscribe")
        check_equal(await inbox.expect("server_unsubscribed", 5, "server-side unsubscribe"), side, "unsubscribed")
        r = await api.Refresh(pb.RefreshRequest(user=user, expire_at=int(time.time()) + 7200), metadata=AUTH)
        check(error_of(r) is None, "refresh")

        # history_remove: publications gone, position kept, as HTTP sees it.
        hr = await api.HistoryRemove(pb.HistoryRemoveRequest(channel=channel), metadata=AUTH)
        check(error_of(hr) is None, "history_remove")
        h = await http_api("history", {"channel": channel, "limit": -1})
        check_equal((h["result"]["publications"], h["result"]["offset"]), ([], 4), "history after remove")

        # Disconnect with a custom code: the client sees it.
        d = await api.Disconnect(pb.DisconnectRequest(user=user, disconnect=pb.Disconnect(code=4500, reason="bye")),
                                 metadata=AUTH)
        check(error_of(d) is None, "disconnect")
        ctx = await inbox.expect("disconnected", 5, "disconnected by gRPC", skip=["connecting"])
        check_equal((ctx.code, ctx.reason), (4500, "bye"), "disconnect code and reason")
        result["disconnect"] = [ctx.code, ctx.reason]
        result["methods"] = ["Publish", "History", "Presence", "PresenceStats", "Channels", "Info", "RPC",
                             "Broadcast", "Batch", "Subscribe", "Unsubscribe", "Refresh", "HistoryRemove",
                             "Disconnect"]
    await client.disconnect()
    return result


if __name__ == "__main__":
    main("grpc_api", scenario)
