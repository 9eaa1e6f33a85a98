"""The same tick after an idle gap: where the microseconds go, stage by stage (issue 19).

    python benchmarks/idle_gap.py [--gaps 0,1,10,100] [--ticks 400] [--warm-interval-us 100]

Real venues send a symbol's book every 10-100 ms; benchmarks/tick_to_trade.py showed the tick then
costs ~8x its cost at 1 ms. This isolates why, in one process and without sockets: the objects of
benchmarks/engine_hot_path.py (mock venue frame -> decode -> book -> Pipeline and features ->
engine -> strategy -> risk -> order -> encode -> the link's write), one tick after each idle gap
spent spinning (so no wake-up is involved), with ``perf_counter_ns`` stamps between the stages.
Each gap runs twice: idle doing nothing, and idle running the engine's rehearsal
(engine/rehearsal.py) every ``--warm-interval-us``, as the engine does while busy polling.

There are no hardware counters on the VM this was written on (``perf stat`` reports cache and TLB
events as not supported), so the stamps are the profile. Last line: JSON, per gap and mode, the
p50 of each stage in µs.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import engine_hot_path as H  # noqa: E402
from latentspeed_mock_exchange import protocol as P  # noqa: E402

from latentspeed_core.engine.idle import IdleWork  # noqa: E402
from latentspeed_core.engine.rehearsal import Rehearsal  # noqa: E402

#: (Risk checks and the order's objects are one stage: the engine's compiled submit runs both, with no
#: Python call between them to stamp; replacing a check with a stamping wrapper would send the order
#: down the slower Python path instead.)
STAGES = ("decode", "book+features+engine", "strategy", "risk+order objects", "encode", "write", "total")


def run(gap_ms: float, ticks: int, warm_us: float) -> dict:
    pc = time.perf_counter_ns
    stamp: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        registry, engine, venue, link = H.build(str(Path(tmp) / "latency.jsonl"))
        runner = H.build.runner
        rehearsal = Rehearsal(registry, runner.setup, engine, runner.source) if warm_us else None
        # Stamps between the stages: wrappers around the real functions (a few 100 ns each).
        decode = P.decode_book

        def stamped_decode(*a):
            r = decode(*a)
            stamp["decode"] = pc()
            return r

        P.decode_book = stamped_decode
        handlers = engine._by_symbol["BTC-USD"]
        strategy = handlers[0]

        def stamped_strategy(msg):
            stamp["strategy"] = pc()
            strategy(msg)

        handlers[0] = stamped_strategy
        submit = engine.submit

        def stamped_submit(*a, **kw):  # (found before the class's method: the strategy context calls it)
            stamp["submit"] = pc()
            return submit(*a, **kw)

        engine.submit = stamped_submit
        send = venue.send_new_order

        def stamped_send(order):
            stamp["send0"] = pc()
            send(order)
            stamp["send1"] = pc()

        venue.send_new_order = stamped_send
        written = link.written  # the transport stamps each write
        seq = [0]

        def tick(buf: bytes) -> tuple[int, ...]:
            written.clear()
            t0 = pc()
            venue._on_frames([(P.MARKET_DATA, buf, 0)], time.time_ns())
            t1 = written[0]
            s = stamp
            out = (s["decode"] - t0, s["strategy"] - s["decode"], s["submit"] - s["strategy"], s["send0"] - s["submit"],
                   s["send1"] - s["send0"], t1 - s["send1"], t1 - t0)  # fmt: skip
            cid = engine.orders._next_id - 1
            for exec_type, leaves in ((0, P.to_fixed(0.001)), (3, 0)):
                seq[0] += 1
                r = P.encode_execution_report(seq[0], 0, cid, cid, seq[0], 1, 0, exec_type, 0, 0, leaves, 0, 0)
                venue._on_frames([(P.EXECUTION_REPORT, r, 0)], time.time_ns())
            return out

        frames = H.frames(ticks + 300)
        gc.freeze()
        for f in frames[:300]:
            tick(f)
        gap = int(gap_ms * 1e6)
        # The engine's own idle work (engine/idle.py), as its busy-poll loop calls it.
        work = IdleWork(rehearsal, warm_us, collect=False, activity=lambda: engine.rx_packets) if warm_us else None
        samples = []
        for f in frames[300:]:
            end = pc() + gap
            while pc() < end:  # spin: no wake-up, only the caches go cold
                if work is not None:
                    work()
            samples.append(tick(f))
        P.decode_book = decode
    return {name: round(statistics.median(s[i] for s in samples) / 1000, 2) for i, name in enumerate(STAGES)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gaps", default="0,1,10,100", help="idle gaps between ticks, ms")
    ap.add_argument("--ticks", type=int, default=400)
    ap.add_argument("--warm-interval-us", type=float, default=100.0)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
    result: dict[str, dict] = {}
    for g in (float(x) for x in args.gaps.split(",")):
        ticks = args.ticks if g < 100 else max(100, args.ticks // 4)
        key = f"{g:g}"
        result[key] = {}
        for mode, warm in (("idle", 0.0), ("rehearsing", args.warm_interval_us)):
            r = result[key][mode] = run(g, ticks, warm)
            print(f"gap {key:>4} ms {mode:10s} " + "  ".join(f"{k} {v}" for k, v in r.items()), flush=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
