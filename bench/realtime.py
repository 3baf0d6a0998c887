"""Realtime latency: how long after an event is acknowledged its profile's membership is updated,
while events arrive at 1,000/s.

A store with 20,000 profiles and two REALTIME audiences (one plain, one with a window) runs the
background loops as `serve` does (`start_loops`: the processor, storing what is acknowledged, in a
child process, started before the clock; realtime passes in threads here). A sender
acknowledges a batch of 100 events every 0.1 s as `/v1/batch` does (checked and appended to the
durable log), each batch carrying one event that makes a new user a member; a monitor polls the
membership table and records, per batch, the time from the acknowledgement to membership. Prints the percentiles and writes them to bench/results/realtime.json.
Usage: python bench/realtime.py [--seconds 20] [--rate 1000]
"""

from __future__ import annotations

import argparse
import platform
import random
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.report import publish  # noqa: E402
from server.worker import start_loops  # noqa: E402
from store.catalog import audiences, spaces  # noqa: E402
from store.compute import recompute  # noqa: E402
from store.db.store import Store  # noqa: E402
from store.ingest import log  # noqa: E402
from store.ingest.ingest import accept, acknowledge  # noqa: E402

BATCH = 100
PROFILES = 20_000


def track(user: str, event: str, total: int) -> dict:
    return {"type": "track", "userId": user, "event": event, "properties": {"total": total},
            "timestamp": datetime.now(timezone.utc).isoformat()}


def warm_up(store: Store, space_id: str) -> None:
    """Until the processor's process has started and stored a first batch (unmeasured)."""
    batch = [track(f"user-{n}", "Page Viewed", 1) for n in range(BATCH)]
    acknowledge(store, space_id, "batch", orjson.dumps({"batch": batch}), {"batch": batch}, "bench")
    deadline = time.monotonic() + 60
    while log.backlog(store, space_id).messages and time.monotonic() < deadline:
        time.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rate", type=int, default=1000, help="events per second")
    args = parser.parse_args()
    rng = random.Random(5)
    with tempfile.TemporaryDirectory() as folder:
        store = Store(f"sqlite:///{folder}/realtime.db")
        space_id = spaces.create_space(store, "Realtime").space.id
        for first in range(0, PROFILES, 1000):
            accept(store, space_id, [track(f"user-{n}", "Page Viewed", 1) for n in range(first, first + 1000)], "bench")
        buyers = audiences.create_audience(store, space_id, name="Buyers", audience_type="USERS",
                                           query="event('Order Completed').where(property('total') >= 50).count() >= 1")
        audiences.create_audience(store, space_id, name="Active", audience_type="USERS",
                                  query="event('Page Viewed').within(1 hours).count() >= 3")
        recompute.run_due(store)
        recompute.process_dirty(store, limit=PROFILES)
        worker = start_loops(store, ("ingest", "compute"))
        warm_up(store, space_id)

        accepted: dict[str, float] = {}
        seen: dict[str, float] = {}
        done = threading.Event()

        def monitor() -> None:
            while not done.is_set() or len(seen) < len(accepted):
                with store.engine.connect() as connection:
                    rows = connection.exec_driver_sql(
                        "SELECT i.value FROM membership m JOIN identifier i ON i.profile_id = m.profile_id "
                        "WHERE m.computation_id = ? AND i.type = 'user_id' AND i.value LIKE 'new-%'",
                        (buyers.id,)).fetchall()
                now = time.perf_counter()
                for (user,) in rows:
                    seen.setdefault(user, now)
                if done.is_set() and time.perf_counter() - stop_time > 10:
                    break
                time.sleep(0.005)

        watcher = threading.Thread(target=monitor)
        watcher.start()
        interval = BATCH / args.rate
        batches = int(args.seconds / interval)
        started = time.perf_counter()
        for n in range(batches):
            due = started + n * interval
            time.sleep(max(0.0, due - time.perf_counter()))
            batch = [track(f"user-{rng.randrange(PROFILES)}", "Page Viewed", 1) for _ in range(BATCH - 1)]
            batch.append(track(f"new-{n}", "Order Completed", 80))
            acknowledge(store, space_id, "batch", orjson.dumps({"batch": batch}), {"batch": batch}, "bench")
            accepted[f"new-{n}"] = time.perf_counter()
        elapsed = time.perf_counter() - started
        stop_time = time.perf_counter()
        done.set()
        watcher.join()
        worker.stop(10)
        store.close()
    latencies = sorted(seen[user] - accepted[user] for user in accepted if user in seen)
    missing = len(accepted) - len(latencies)

    def percentile(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 1)

    figures = {"date": datetime.now(timezone.utc).date().isoformat(),
               "machine": f"{platform.machine()}, Python {platform.python_version()}",
               "events_per_s": round(batches * BATCH / elapsed), "batches": batches, "missing": missing,
               "latency_ms": {"p50": percentile(0.5), "p95": percentile(0.95), "p99": percentile(0.99),
                              "max": round(latencies[-1] * 1000, 1)}}
    publish("realtime", figures)


if __name__ == "__main__":
    main()
