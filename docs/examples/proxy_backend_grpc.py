"""The application backend of proxy_backend.py, over gRPC (docs/proxies.md): Centrifugo's
`CentrifugoProxy` service with grpcio, so it works with Centrifugo too.

    pip install grpcio grpcio-tools
    python proxy_backend_grpc.py 3001 ../../proto/proxy.proto
    # then point pushwire's proxies at grpc://127.0.0.1:3001

The stubs are generated from proto/proxy.proto at start-up (into a temporary directory), so this
file runs as is. pushwire's test suite runs it against the real centrifuge-js client
(crates/pushwire-server/tests/proxies/proxies.rs), so it stays correct.
"""

import asyncio
import importlib
import json
import os
import sys
import tempfile
import time

import grpc
from grpc_tools import protoc

SESSION_TTL = 3600


def load_stubs(proto_path: str):
    """Generates and imports proxy_pb2 / proxy_pb2_grpc for `proto_path`."""
    out = tempfile.mkdtemp(prefix="proxy-stubs-")
    include = os.path.dirname(os.path.abspath(proto_path))
    grpc_include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    code = protoc.main(
        [
            "protoc",
            f"-I{include}",
            f"-I{grpc_include}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            os.path.abspath(proto_path),
        ]
    )
    if code != 0:
        raise SystemExit(f"protoc failed on {proto_path}")
    sys.path.insert(0, out)
    return importlib.import_module("proxy_pb2"), importlib.import_module("proxy_pb2_grpc")


def dumps(value) -> bytes:
    return json.dumps(value).encode()


def loads(raw: bytes):
    return json.loads(raw) if raw else None


def session_user(context: grpc.aio.ServicerContext) -> str | None:
    """The user behind the `session` cookie (forwarded as metadata with http_headers=["Cookie"]),
    or behind an emulated `X-Session` header (emulated_headers=["X-Session"])."""
    metadata = dict(context.invocation_metadata())
    for part in metadata.get("cookie", "").split(";"):
        name, _, v = part.strip().partition("=")
        if name == "session":
            return v
    return metadata.get("x-session")


def make_servicer(pb, pb_grpc):
    class Backend(pb_grpc.CentrifugoProxyServicer):
        async def Connect(self, request, context):
            user = session_user(context)
            if user is None:
                return pb.ConnectResponse(disconnect=pb.Disconnect(code=4501, reason="no session"))
            return pb.ConnectResponse(
                result=pb.ConnectResult(
                    user=user,
                    expire_at=int(time.time()) + SESSION_TTL,
                    info=dumps({"name": f"User {user}"}),
                    data=dumps({"hello": user}),
                    meta=dumps({"session": user}),
                )
            )

        async def Refresh(self, request, context):
            return pb.RefreshResponse(
                result=pb.RefreshResult(expire_at=int(time.time()) + SESSION_TTL)
            )

        async def Subscribe(self, request, context):
            if request.channel.startswith("denied:"):
                return pb.SubscribeResponse(
                    error=pb.Error(code=103, message="permission denied")
                )
            presence = not request.channel.startswith("pres:hidden")
            return pb.SubscribeResponse(
                result=pb.SubscribeResult(
                    info=dumps({"via": "proxy"}),
                    data=dumps({"welcome": request.channel}),
                    override=pb.SubscribeOptionOverride(presence=pb.BoolValue(value=presence)),
                )
            )

        async def Publish(self, request, context):
            text = (loads(request.data) or {}).get("text", "")
            if text == "forbidden":
                return pb.PublishResponse(error=pb.Error(code=1001, message="forbidden word"))
            return pb.PublishResponse(
                result=pb.PublishResult(data=dumps({"text": text.upper(), "by": request.user}))
            )

        async def RPC(self, request, context):
            if request.method == "echo":
                data = {"echo": loads(request.data), "user": request.user}
                return pb.RPCResponse(result=pb.RPCResult(data=dumps(data)))
            return pb.RPCResponse(error=pb.Error(code=1002, message="rpc failed"))

        async def SubRefresh(self, request, context):
            return pb.SubRefreshResponse(
                result=pb.SubRefreshResult(expire_at=int(time.time()) + SESSION_TTL)
            )

    return Backend()


async def serve(port: int, proto_path: str) -> None:
    pb, pb_grpc = load_stubs(proto_path)
    server = grpc.aio.server()
    pb_grpc.add_CentrifugoProxyServicer_to_server(make_servicer(pb, pb_grpc), server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print(f"READY {bound}", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    default_proto = os.path.join(here, "..", "..", "proto", "proxy.proto")
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 3001
    asyncio.run(serve(port, sys.argv[2] if len(sys.argv) > 2 else default_proto))
