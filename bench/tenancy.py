"""Tenancy: what a busy space costs a quiet one.

Space B takes a sign-up every 0.2 s into its realtime audience: first with space A idle, then with A
holding --audiences realtime audiences (1,000) and taking --rate events/s (25), each of which makes
every one of A's audiences recompute its profile. The background loops run as `serve` runs them,
in this process, on a SQLite file. Reports B's ingest p50/p99 (the call the Tracking API makes,
which waits for the database's write lock like it) and event-to-membership p50/p99 in each phase,
their ratios to the idle phase, how many of B's sign-ups never became members, and how long the
first runs and the passes over A's first 500 users took before the measuring began (`first_runs_s`);
writes bench/results/tenancy.json.
Usage: python bench/tenancy.py [--audiences 1000] [--rate 25] [--seconds 20]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.report import publish  # noqa: E402
from server.worker import Worker  # noqa: E402
from store.catalog import audiences, spaces  # noqa: E402
from store.db.store import Store  # noqa: E402
from store.ingest.ingest import accept  # noqa: E402
from sqlalchemy import text  # noqa: E402

PAGES = 50
USERS = 500
SIGN_UPS_PER_SECOND = 5


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def members(store: Store, audience_id: str) -> set[str]:
    with store.engine.connect() as connection:
        return set(connection.execute(text(
            "SELECT i.value FROM membership m JOIN identifier i ON i.profile_id = m.profile_id WHERE "
            "m.computation_id = :a AND m.exited_at_ms IS NULL AND i.type = 'user_id'"), {"a": audience_id}).scalars())


def settled(store: Store, expected: int) -> bool:
    """Whether every computation has had its first run and no profile waits for a realtime pass."""
    with store.engine.connect() as connection:
        computed = connection.execute(text("SELECT count(*) FROM compute_state WHERE last_run_id IS NOT NULL"))
        waiting = connection.execute(text("SELECT count(*) FROM dirty_profile"))
        return computed.scalar_one() >= expected and waiting.scalar_one() == 0


def busy_and_quiet(store: Store, audiences_of_busy: int) -> tuple[str, str, str]:
    """A busy space of 500 users with `audiences_of_busy` realtime audiences over their page views,
    and a quiet space with one realtime audience of sign-ups; returns both spaces' ids and that
    audience's."""
    busy = spaces.create_space(store, "Busy").space.id
    quiet = spaces.create_space(store, "Quiet").space.id
    accept(store, busy, [{"type": "track", "userId": f"a{n}", "event": "Page Viewed",
                          "properties": {"page": n % PAGES}} for n in range(USERS)], "bench")
    for k in range(audiences_of_busy):
        audiences.create_audience(store, busy, name=f"Viewed {k}", audience_type="USERS", options=None,
                                  query=f"event('Page Viewed').where(property('page') = {k % PAGES})"
                                        f".count() >= {1 + k // PAGES}")
    signed_up = audiences.create_audience(store, quiet, name="Signed Up", audience_type="USERS", options=None,
                                          query="event('Signed Up').count() >= 1").id
    return busy, quiet, signed_up


@contextmanager
def busy_traffic(store: Store, space_id: str, rate: float) -> Iterator[None]:
    """`rate` page views a second into the busy space, each for one of its users, while in the block."""
    stopping = threading.Event()

    def send() -> None:
        started, sent = time.perf_counter(), 0
        while not stopping.is_set():
            time.sleep(max(0.0, started + sent / rate - time.perf_counter()))
            accept(store, space_id, [{"type": "track", "userId": f"a{random.randrange(USERS)}", "event": "Page Viewed",
                                      "properties": {"page": random.randrange(PAGES)}}], "bench")
            sent += 1

    sender = threading.Thread(target=send)
    sender.start()
    try:
        yield
    finally:
        stopping.set()
        sender.join()


def phase(store: Store, space_id: str, audience_id: str, seconds: float, label: str) -> dict:
    """Sign-ups into the quiet space for `seconds`; when each call returned and when each became a member."""
    ingest, sent, seen = [], {}, {}
    done = threading.Event()

    def watch() -> None:
        while not done.is_set() or len(seen) < len(sent):
            now = time.perf_counter()
            for user in members(store, audience_id).intersection(list(sent)) - seen.keys():
                seen[user] = now
            if done.is_set() and time.perf_counter() > deadline:
                return
            time.sleep(0.02)

    deadline = float("inf")
    watcher = threading.Thread(target=watch)
    watcher.start()
    started = time.perf_counter()
    for n in range(int(seconds * SIGN_UPS_PER_SECOND)):
        time.sleep(max(0.0, started + n / SIGN_UPS_PER_SECOND - time.perf_counter()))
        user = f"{label}{n}"
        before = time.perf_counter()
        accept(store, space_id, [{"type": "track", "userId": user, "event": "Signed Up"}], "bench")
        ingest.append(time.perf_counter() - before)
        sent[user] = before
    deadline = time.perf_counter() + 60
    done.set()
    watcher.join()
    arrival = [seen[user] - at for user, at in sent.items() if user in seen]
    return {"sign_ups": len(sent), "never_members": len(sent) - len(arrival),
            "ingest_p50_s": round(percentile(ingest, 0.5), 4), "ingest_p99_s": round(percentile(ingest, 0.99), 4),
            "membership_p50_s": round(percentile(arrival, 0.5), 3),
            "membership_p99_s": round(percentile(arrival, 0.99), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audiences", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=25)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    os.environ.setdefault("SEGMENT_AUDIENCES_MAX_COMPUTATIONS", str(args.audiences + 10))
    with tempfile.TemporaryDirectory() as directory:
        store = Store(f"sqlite:///{directory}/tenancy.db")
        busy, quiet, signed_up = busy_and_quiet(store, args.audiences)
        worker = Worker(store).start()
        started = time.perf_counter()
        while not settled(store, args.audiences + 1):
            time.sleep(0.5)
        first_runs_s = time.perf_counter() - started
        idle = phase(store, quiet, signed_up, args.seconds, "idle")
        with busy_traffic(store, busy, args.rate):
            loaded = phase(store, quiet, signed_up, args.seconds, "loaded")
        worker.stop()
        store.close()
    publish("tenancy", {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "busy_space": {"realtime_audiences": args.audiences, "events_per_second": args.rate},
        "first_runs_s": round(first_runs_s, 1),
        "idle": idle, "loaded": loaded,
        "ratio_ingest_p99": round(loaded["ingest_p99_s"] / idle["ingest_p99_s"], 2),
        "ratio_membership_p99": round(loaded["membership_p99_s"] / idle["membership_p99_s"], 2),
    })


if __name__ == "__main__":
    main()
