"""What one small loopback ``send`` costs the sender, to a reader asleep in epoll vs one spinning.

    python benchmarks/loopback_send.py [--sends 20000] [--gap-us 500]

Two processes pinned to the first two CPUs, one TCP connection (TCP_NODELAY), 48-byte writes
``--gap-us`` apart with the sender spinning in between (as a busy-polling engine does). The reader
either blocks in ``epoll_wait`` (``sleeping``) or spins on a non-blocking ``recv`` (``spinning``).
The difference is the kernel waking the reader's CPU from inside the sender's ``send``: on one
machine it is charged to the sender; a send to a remote venue does not pay it. This is why
``benchmarks/tick_to_trade.py`` runs the mock exchange busy polling by default
(docs/performance.md, "Tick-to-trade").

Last line: ``{"sleeping_us": {"p50", "p90", "p99"}, "spinning_us": {...}}``.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import time

import numpy as np


def reader(conn: socket.socket, spin: bool) -> None:
    if spin:
        conn.setblocking(False)
        while True:
            try:
                if not conn.recv(65536):
                    return
            except BlockingIOError:
                continue
    ep = select.epoll()
    ep.register(conn.fileno(), select.EPOLLIN)
    while True:
        ep.poll()
        if not conn.recv(65536):
            return


def measure(spin: bool, sends: int, gap_ns: int, cpus: list[int]) -> dict:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    pid = os.fork()
    if pid == 0:  # the reader
        try:
            if cpus:
                os.sched_setaffinity(0, {cpus[0]})
            conn, _ = listener.accept()
            reader(conn, spin)
        finally:
            os._exit(0)
    if cpus:
        os.sched_setaffinity(0, {cpus[-1]})
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    msg = b"x" * 48
    clock = time.perf_counter_ns
    out = np.empty(sends, dtype=np.int64)
    for i in range(sends):
        t0 = clock()
        s.send(msg)
        out[i] = clock() - t0
        t1 = clock()
        while clock() - t1 < gap_ns:
            pass
    s.close()
    os.waitpid(pid, 0)
    listener.close()
    d = out[sends // 10 :] / 1000  # the first tenth is warm-up
    return {q: round(float(np.percentile(d, int(q[1:]))), 2) for q in ("p50", "p90", "p99")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sends", type=int, default=20_000)
    ap.add_argument("--gap-us", type=float, default=500.0)
    args = ap.parse_args()
    cpus = sorted(os.sched_getaffinity(0))[:2] if hasattr(os, "sched_getaffinity") else []
    result = {}
    for name, spin in (("sleeping", False), ("spinning", True)):
        r = result[f"{name}_us"] = measure(spin, args.sends, int(args.gap_us * 1000), cpus)
        print(f"send to a {name} reader: p50 {r['p50']} p90 {r['p90']} p99 {r['p99']} us")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
