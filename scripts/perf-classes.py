#!/usr/bin/env python3
"""Splits a `perf record -g` profile of the server into the classes docs/benchmarks.md uses
for the fan-out tail ("The tail profiled").

    perf script -i perf.data -F comm,ip,sym > stacks.txt
    python3 scripts/perf-classes.py stacks.txt

Each sample goes to the first class whose rule matches its stack (leaf first), in the order
below; prints the share of each class and the sample count.
"""
import collections
import sys


def samples(path):
    """Stacks of symbol names, leaf first, one per sample of `perf script` output."""
    stack = []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line and line[0] in "\t ":
                parts = line.strip().split(" ", 1)
                stack.append(parts[1] if len(parts) == 2 else parts[0])
                continue
            if stack:
                yield stack
            stack = []
    if stack:
        yield stack


def any_of(stack, *needles, depth=None):
    frames = stack if depth is None else stack[:depth]
    return any(n in f for f in frames for n in needles)


CLASSES = [
    ("the send system call (kernel TCP send and loopback receive)",
     lambda s: any_of(s, "__send", "sys_sendto", "sys_write", "tcp_sendmsg")),
    ("epoll, parking, timers (kernel)",
     lambda s: any_of(s, "epoll", "futex", "park")),
    ("hub fan-out loop (outbox push, notify)",
     lambda s: any_of(s, "hub::Hub::deliver")),
    ("HTTP publish request around the hub",
     lambda s: any_of(s, "api::", "hyper::", "axum") and not any_of(s, "transport::websocket")),
    ("delivery metrics",
     lambda s: any_of(s, "Delivered::of", "delivered", depth=4) and any_of(s, "pushwire", depth=4)),
    ("WebSocket write path (drain, framing, socket layers)",
     lambda s: any_of(s, "websocket::write", "Outbox::drain", "try_drain", "join_into")),
    ("read poll of the socket in select!",
     lambda s: any_of(s, "poll_next")),
    ("tokio scheduling (run queue, wake, task poll)",
     lambda s: any_of(s, "tokio::runtime", "tokio::sync", depth=3)),
    ("allocator, Bytes drop",
     lambda s: any_of(s, "mi_", "shared_drop", depth=2)),
]


def main():
    counts = collections.Counter()
    total = 0
    for stack in samples(sys.argv[1]):
        total += 1
        name = next((n for n, rule in CLASSES if rule(stack)), "other")
        counts[name] += 1
    for name, n in counts.most_common():
        print(f"{100 * n / total:5.1f}%  {name}")
    print(f"{total} samples")


if __name__ == "__main__":
    main()
