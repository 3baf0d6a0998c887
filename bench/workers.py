"""Many workers: per-event deliveries/s and event-to-arrival latency with 1, 2 and 4 `worker`
processes beside one `serve --no-worker` (MCP and ingest only), on SQLite and on PostgreSQL, in one run.

For each database and worker count, on a fresh database: a realtime audience ("Signed Up") sends
Audience Entered one request per event ("Send") to a receiver in its own process (bench/receiver.py).
Realtime: sign-ups are posted to the Tracking API of `serve` at `--rate` events/s for `--seconds`;
the receiver notes when each user's event arrives (p50/p99 from sending to arrival). Resync: a second
activation resends every member; the time until all have arrived gives deliveries/s. Checked after
each: messageIds that arrived more than once, and profiles with two open memberships (both must be 0).
The ratios compare 2 and 4 workers with 1 on the same database. Figures to bench/results/workers.json.

Usage: python bench/workers.py [--postgres postgresql+psycopg://USER@HOST:PORT/] [--rate 200]
[--seconds 10] [--workers 1,2,4]   (without --postgres, SQLite only)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import httpx
import psycopg
from sqlalchemy import make_url, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.delivery import SEND, activate, received, signed_up, start_receiver  # noqa: E402
from bench.report import publish  # noqa: E402
from bench.ingest import free_port  # noqa: E402
from store.catalog import audiences, spaces  # noqa: E402
from store.compute import runs  # noqa: E402
from store.db.store import Store  # noqa: E402



def fresh_database(postgres: str | None, folder: str, name: str) -> str:
    if postgres is None:
        return f"sqlite:///{folder}/{name}.db"
    database = f"bench_{name}_{uuid.uuid4().hex[:8]}"
    admin = make_url(postgres).set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{database}"')
    return make_url(postgres).set(database=database).render_as_string(hide_password=False)


def start(url: str, *command: str) -> subprocess.Popen:
    env = {**os.environ, "SEGMENT_AUDIENCES_DB": url}
    return subprocess.Popen([sys.executable, "-m", "server", *command], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_for(check, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def double_memberships(store: Store) -> int:
    with store.engine.connect() as connection:
        return connection.execute(text(
            "SELECT count(*) FROM (SELECT 1 FROM membership WHERE exited_at_ms IS NULL "
            "GROUP BY computation_id, profile_id HAVING count(*) > 1) AS doubled")).scalar_one()


def measure(url: str, workers: int, receiver: str, rate: int, seconds: float) -> dict:
    store = Store(url)
    space = spaces.create_space(store, "Workers")
    members = audiences.create_audience(store, space.space.id, name="Signed Up", audience_type="USERS",
                                        query="event('Signed Up').count() >= 1", options=None)
    runs.run(store, members.id, reason="initial")
    tag = uuid.uuid4().hex[:8]
    activate(store, space.space.id, members.id, f"{receiver}/latency/{tag}", SEND, resync=False)
    port = free_port()
    processes = [start(url, "serve", "--transport", "streamable-http", "--port", str(port), "--no-worker")]
    processes += [start(url, "worker") for _ in range(workers)]
    try:
        api = f"http://127.0.0.1:{port}"
        if not wait_for(lambda: _answers(api), 30):
            raise SystemExit("serve did not start")
        warm_up(api, space.write_key, receiver, tag, processes[1:])
        sent: dict[str, float] = {}
        per_batch, batches = max(1, rate // 10), int(seconds * 10)
        started = time.perf_counter()
        with httpx.Client(base_url=api, auth=(space.write_key, ""), timeout=30) as client:
            for n in range(batches):
                time.sleep(max(0.0, started + n * 0.1 - time.perf_counter()))
                users = range(n * per_batch, (n + 1) * per_batch)
                at = time.time()
                client.post("/v1/batch", json={"batch": [{**m, "userId": f"{tag}-{m['userId']}"} for m in signed_up(users)]})
                sent.update({f"{tag}-user-{u}": at for u in users})
        wait_for(lambda: sent.keys() <= received(receiver)["arrivals"].keys(), 120)
        arrivals = received(receiver)["arrivals"]
        latencies = sorted(arrivals[user] - at for user, at in sent.items() if user in arrivals)
        before = received(receiver)["count"]
        resync_started = time.perf_counter()
        activate(store, space.space.id, members.id, f"{receiver}/resync/{tag}", SEND, resync=True)
        wait_for(lambda: received(receiver)["count"] - before >= len(sent), 300)
        resync_seconds = time.perf_counter() - resync_started
        resent = received(receiver)["count"] - before
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)

    def percentile(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 1) if latencies else -1

    figures = {"workers": workers, "events": len(sent), "missing": len(sent) - len(latencies),
               "latency_ms": {"p50": percentile(0.5), "p99": percentile(0.99)},
               "resync_deliveries": resent, "deliveries_per_s": round(resent / resync_seconds),
               "double_memberships": double_memberships(store)}
    store.close()
    return figures


def warm_up(api: str, write_key: str, receiver: str, tag: str, workers: list[subprocess.Popen]) -> None:
    """Until every worker has started its child processes (the processor and delivery) and a first
    sign-up has gone all the way to the receiver: start-up is not measured."""
    if not wait_for(lambda: all(len(_children(worker.pid)) >= 2 for worker in workers), 60):
        raise SystemExit("the workers did not start their child processes")
    httpx.post(f"{api}/v1/batch", auth=(write_key, ""),
               json={"batch": [{**m, "userId": f"{tag}-warm-up"} for m in signed_up(range(1))]})
    if not wait_for(lambda: f"{tag}-warm-up" in received(receiver)["arrivals"], 60):
        raise SystemExit("the warm-up sign-up did not arrive")


def _children(pid: int) -> list[str]:
    """The processes `pid` started (from any of its threads)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += (task / "children").read_text().split()
    return found


def _answers(api: str) -> bool:
    try:
        httpx.post(f"{api}/v1/track", timeout=2)
        return True
    except httpx.TransportError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--postgres", help="a PostgreSQL server URL; a database is made there per measurement")
    parser.add_argument("--rate", type=int, default=200, help="sign-ups per second in the realtime phase")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--workers", default="1,2,4")
    args = parser.parse_args()
    counts = [int(count) for count in args.workers.split(",")]
    receiver, receiver_url = start_receiver()
    results: dict[str, list] = {}
    try:
        with tempfile.TemporaryDirectory() as folder:
            for name, postgres in (("sqlite", None), *((("postgresql", args.postgres),) if args.postgres else ())):
                results[name] = []
                for workers in counts:
                    url = fresh_database(postgres, folder, f"{name}{workers}")
                    figures = measure(url, workers, receiver_url, args.rate, args.seconds)
                    print(name, json.dumps(figures), flush=True)
                    results[name].append(figures)
        duplicates = received(receiver_url)["duplicates"]
    finally:
        receiver.terminate()
        receiver.wait()
    for runs_ in results.values():
        first = runs_[0]["deliveries_per_s"]
        for figures in runs_:
            figures["ratio_to_one_worker"] = round(figures["deliveries_per_s"] / first, 2)
    report = {
        "date": datetime.now(timezone.utc).date().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "rate": args.rate, "seconds": args.seconds,
        "duplicate_message_ids": duplicates,
        "results": results,
    }
    publish("workers", report)


if __name__ == "__main__":
    main()
