"""One server API call made with the real `cent` client, for the cluster tests.

    python python/cluster_api.py <method> '<json params>'

Calls `<PUSHWIRE_HTTP_URL>/api` (one node of a cluster) with cent's typed request for
`method` (disconnect, unsubscribe, subscribe, refresh, info, channels) built from the JSON
params, and prints `RESULT <json>` with the result, or exits 1 with cent's error.
"""

import asyncio
import json
import sys

import cent

from common import api_client

REQUESTS = {
    "disconnect": cent.DisconnectRequest,
    "unsubscribe": cent.UnsubscribeRequest,
    "subscribe": cent.SubscribeRequest,
    "refresh": cent.RefreshRequest,
    "info": cent.InfoRequest,
    "channels": cent.ChannelsRequest,
}


async def main() -> None:
    method, params = sys.argv[1], json.loads(sys.argv[2])
    if "disconnect" in params:
        params["disconnect"] = cent.Disconnect(**params["disconnect"])
    request = REQUESTS[method](**params)
    api = api_client()
    try:
        result = await asyncio.wait_for(getattr(api, method)(request), 10.0)
    finally:
        await api.close()
    print("RESULT " + json.dumps(result.model_dump(mode="json")), flush=True)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except cent.CentError as e:
        print(f"FAIL: cent {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
