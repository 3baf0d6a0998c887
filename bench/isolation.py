"""Isolation: what misbehaving destinations cost a healthy one.

A healthy Webhooks destination receives "Audience Entered" for users who each enter a realtime audience
as their event is ingested, at --rate events/s for --seconds; the receiver (bench/receiver.py, its own
process) notes when each arrives. First alone; then beside three neighbours in spaces of their own,
each resyncing a backlog of --backlog members: one whose responses drip a byte every 3 s, one
answering 429 with Retry-After: 40, and one whose activation has an invalid URL; then once more with
the neighbours also taking their own stream of --rate events/s (four times the ingest and compute
in one process, reported without a target). The background loops run as `serve` runs them:
ingest and compute in this process, delivery in a child process of its own (a few unmeasured
seconds of healthy events first, while that process starts). Reports
the healthy destination's event-to-arrival p50/p99 in each phase and the ratio to the first, and
writes bench/results/isolation.json.
Usage: python bench/isolation.py [--rate 50] [--seconds 20] [--backlog 1000]
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.delivery import SEND, activate, received, signed_up, start_receiver  # noqa: E402
from bench.report import publish  # noqa: E402
from server.worker import start_loops  # noqa: E402
from store.catalog import audiences, spaces  # noqa: E402
from store.compute import runs  # noqa: E402
from store.db.store import Store  # noqa: E402
from store.ingest.ingest import accept  # noqa: E402

WARM_UP_SECONDS = 3  # unmeasured: the delivery process the loops start is still starting at first
NEIGHBOURS = {"drip": "{url}/drip", "busy": "{url}/busy", "broken": "http://[::1"}


def realtime_audience(store: Store, name: str, url: str, backlog: int = 0) -> str:
    """A space with a realtime audience of everyone who did `name` (first `backlog` members, resynced
    to the destination at once), activated to `url`; its id."""
    space_id = spaces.create_space(store, name).space.id
    for first in range(0, backlog, 1000):
        accept(store, space_id, signed_up(range(first, min(backlog, first + 1000)), name), "bench")
    audience = audiences.create_audience(store, space_id, name=name, audience_type="USERS",
                                         query=f"event('{name}').count() >= 1", options=None)
    runs.run(store, audience.id, reason="initial")
    activate(store, space_id, audience.id, url, SEND, resync=backlog > 0)
    return space_id


def phase(store: Store, url: str, healthy: str, neighbours: dict[str, str], rate: int, seconds: float) -> dict:
    """Ingest `rate` new members a second into the healthy space (and as many into each neighbour's)
    and measure when the healthy ones arrive."""
    sent: dict[str, float] = {}
    per_tick = max(1, rate // 10)
    offset = 20_000_000 + len(received(url)["arrivals"]) * 10
    started = time.perf_counter()
    for tick in range(int(seconds * 10)):
        time.sleep(max(0.0, started + tick * 0.1 - time.perf_counter()))
        users = range(offset + tick * per_tick, offset + (tick + 1) * per_tick)
        at = time.time()
        accept(store, healthy, signed_up(users, "Healthy"), "bench")
        sent.update({f"user-{u}": at for u in users})
        for name, space_id in neighbours.items():
            accept(store, space_id, signed_up(users, name), "bench")
    deadline = time.monotonic() + 60
    while not sent.keys() <= received(url)["arrivals"].keys() and time.monotonic() < deadline:
        time.sleep(0.2)
    arrivals = received(url)["arrivals"]
    latencies = sorted(arrivals[user] - at for user, at in sent.items() if user in arrivals)

    def percentile(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 1)

    return {"events": len(sent), "missing": len(sent) - len(latencies),
            "latency_ms": {"p50": percentile(0.5), "p99": percentile(0.99), "max": round(latencies[-1] * 1000, 1)}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=50, help="healthy events per second")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--backlog", type=int, default=1000, help="members each bad neighbour resyncs")
    args = parser.parse_args()
    receiver, url = start_receiver()
    try:
        with tempfile.TemporaryDirectory() as folder:
            store = Store(f"sqlite:///{folder}/isolation.db")
            worker = start_loops(store)
            try:
                alone_space = realtime_audience(store, "Healthy", f"{url}/latency/alone")
                phase(store, url, alone_space, {}, args.rate, WARM_UP_SECONDS)
                alone = phase(store, url, alone_space, {}, args.rate, args.seconds)
                neighbours = {name: realtime_audience(store, name, target.format(url=url), args.backlog)
                              for name, target in NEIGHBOURS.items()}
                beside_space = realtime_audience(store, "Healthy", f"{url}/latency/beside")
                beside = phase(store, url, beside_space, {}, args.rate, args.seconds)
                loaded_space = realtime_audience(store, "Healthy", f"{url}/latency/loaded")
                loaded = phase(store, url, loaded_space, neighbours, args.rate, args.seconds)
            finally:
                worker.stop(15)
                store.close()
    finally:
        receiver.terminate()
        receiver.wait()
    def ratio(measured: dict) -> float:
        return round(measured["latency_ms"]["p99"] / max(alone["latency_ms"]["p99"], 0.1), 2)

    figures = {
        "date": datetime.now(timezone.utc).date().isoformat(),
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, Python {platform.python_version()}",
        "rate_per_s": args.rate, "seconds": args.seconds, "neighbour_backlog": args.backlog,
        "alone": alone,
        "beside_drip_429_and_invalid_url": {**beside, "p99_ratio_to_alone": ratio(beside)},
        "beside_them_with_their_own_streams": {**loaded, "p99_ratio_to_alone": ratio(loaded)},
        "target": "p99 beside the bad neighbours within 1.5x of p99 alone, nothing missing",
    }
    publish("isolation", figures)


if __name__ == "__main__":
    main()
