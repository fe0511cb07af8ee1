"""An example lifecycle consumer: keeps an exact "who is online" table from pushwire's
lifecycle webhook (docs/lifecycle.md). Standard library only.

    python python/lifecycle_consumer.py <port> <secret>

Listens on 127.0.0.1:<port>:
  POST /events  a pushwire webhook delivery: a JSON array of events, signed in
                X-Pushwire-Signature (sha256=<hex HMAC-SHA256 of the body with <secret>>);
                answers 204, or 401 for a bad signature (pushwire does not retry a 4xx).
  GET /online   {"users": {user: connections}, "connections": N, "nodes": [...]}

How the table stays exact:
  - connections are keyed by (node, client): a client id is unique, the node tells which
    node's fate it shares;
  - connect adds, disconnect removes; an event id seen before is ignored (deliveries are at
    least once, so duplicates happen after a retry);
  - snapshot replaces everything known of its node by the snapshot's list: events of that
    node arrive in `seq` order, so whatever the consumer missed before it is corrected;
  - node_lost removes every connection of the lost node (its clients are gone; they
    reconnect elsewhere and arrive as new connects).
"""

import hashlib
import hmac
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SEEN_IDS_MAX = 100_000


class Online:
    """The table: (node, client) -> user. Thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.connections: dict[tuple[str, str], str] = {}
        self.seen: dict[str, None] = {}

    def apply(self, event: dict) -> None:
        with self.lock:
            if event["id"] in self.seen:
                return
            self.seen[event["id"]] = None
            if len(self.seen) > SEEN_IDS_MAX:
                self.seen.pop(next(iter(self.seen)))
            kind, node = event["type"], event["node"]
            if kind == "connect":
                self.connections[(node, event["client"])] = event["user"]
            elif kind == "disconnect":
                self.connections.pop((node, event["client"]), None)
            elif kind == "snapshot":
                for key in [k for k in self.connections if k[0] == node]:
                    del self.connections[key]
                for c in event["connections"]:
                    self.connections[(node, c["client"])] = c["user"]
            elif kind == "node_lost":
                lost = event["lost_node"]
                for key in [k for k in self.connections if k[0] == lost]:
                    del self.connections[key]

    def view(self) -> dict:
        with self.lock:
            users: dict[str, int] = {}
            for user in self.connections.values():
                users[user] = users.get(user, 0) + 1
            nodes = sorted({node for node, _ in self.connections})
            return {"users": users, "connections": len(self.connections), "nodes": nodes}


def handler(table: Online, secret: bytes):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(self.headers.get("X-Pushwire-Signature", ""), expected):
                self.send_response(401)
                self.end_headers()
                return
            for event in json.loads(body):
                table.apply(event)
            self.send_response(204)
            self.end_headers()

        def do_GET(self) -> None:
            body = json.dumps(table.view()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    return Handler


def main() -> None:
    port, secret = int(sys.argv[1]), sys.argv[2].encode()
    server = ThreadingHTTPServer(("127.0.0.1", port), handler(Online(), secret))
    print("READY", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
