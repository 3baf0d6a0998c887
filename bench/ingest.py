"""Ingest throughput: the Tracking API's /v1/batch and the file importer, against the raw ceiling.

Generates a seeded, realistic workload (visitors browsing anonymously, signing in on one or two
devices, which merges profiles; identify, track, page and group calls), then measures in one run:

- events/s through `POST /v1/batch` of a real server process (two concurrent senders, bodies
  prepared before the clock starts): acknowledged (every request answered `200`, its messages in the
  durable log) and processed (the log empty again: every message stored by the processor);
- events/s through `segment-audiences ingest FILE.jsonl` (a real process, fresh database);
- events/s of the processor alone: the messages acknowledged into a fresh database's log first (in
  requests of one batch), then stored by `process_all` in this process, timed with nothing else
  running (what the processor's process does in `serve`, without the Tracking API and the senders
  sharing the machine);
- the ceiling: the same rows the server stored (events, identifiers, profiles, traits, links),
  inserted into the same schema with plain `sqlite3` `executemany`, in transactions of one batch.

Prints the figures and their ratios and writes them to bench/results/ingest.json.
Usage: python bench/ingest.py [--events 1000000] [--profiles 100000] [--batch 500]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import re
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.report import publish  # noqa: E402
from store.catalog import spaces  # noqa: E402
from store.db.database import CACHE_KIB, CHECKPOINT_PAGES, ingest_log_file  # noqa: E402
from store.db.store import Store  # noqa: E402
from store.ingest import ingest, processor  # noqa: E402

TABLES = ("profile", "identifier", "event", "trait", "profile_link")
EVENT_NAMES = ["Product Viewed", "Product Added", "Checkout Started", "Order Completed", "Search", "Video Played"]


def workload(events: int, profiles: int, seed: int = 7) -> list[dict]:
    """Messages in the order a site would send them."""
    rng = random.Random(seed)
    start = datetime(2026, 10, 1, tzinfo=timezone.utc)
    identified: set[int] = set()
    messages = []
    for n in range(events):
        person = int(profiles * rng.random() ** 1.5)
        device = f"anon-{person}-2" if rng.random() < 0.1 else f"anon-{person}"
        user_id = f"user-{person}" if person in identified else None
        roll = rng.random()
        base = {
            "messageId": f"bench-{seed}-{n}",
            "anonymousId": device,
            "timestamp": (start + timedelta(seconds=n * 2)).isoformat().replace("+00:00", "Z"),
            "context": {"library": {"name": "analytics.js", "version": "5.2.0"}, "ip": f"10.0.{person % 250}.{n % 250}",
                        "userAgent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"},
        }
        if user_id:
            base["userId"] = user_id
        if roll < 0.12:
            identified.add(person)
            message = {**base, "type": "identify", "userId": f"user-{person}",
                       "traits": {"email": f"user-{person}@example.com", "plan": rng.choice(["free", "pro", "team"]),
                                  "logins": rng.randint(1, 500), "name": f"Person {person}"}}
        elif roll < 0.27:
            message = {**base, "type": "page", "name": rng.choice(["Home", "Pricing", "Docs"]),
                       "properties": {"path": f"/p/{n % 97}", "referrer": "https://search.example.com/"}}
        elif roll < 0.30 and user_id:
            message = {**base, "type": "group", "groupId": f"account-{person % max(profiles // 20, 1)}",
                       "traits": {"industry": rng.choice(["retail", "media", "travel"]), "employees": rng.randint(5, 5000)}}
        else:
            message = {**base, "type": "track", "event": rng.choice(EVENT_NAMES),
                       "properties": {"sku": f"SKU-{rng.randint(1, 5000)}", "price": round(rng.uniform(1, 300), 2),
                                      "currency": "EUR", "quantity": rng.randint(1, 4), "category": rng.choice(["a", "b", "c"])}}
        messages.append(message)
    return messages


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cli(env: dict, *arguments: str) -> str:
    return subprocess.run([sys.executable, "-m", "server", *arguments], env=env, cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout


def new_space(env: dict) -> tuple[str, str]:
    output = cli(env, "spaces", "create", "Bench")
    return re.search(r"id:\s+(\S+)", output).group(1), re.search(r"write key:\s+(\S+)", output).group(1)


def through_http(messages: list[dict], batch: int, directory: Path) -> tuple[float, float, Path]:
    database = directory / "http.db"
    env = {**os.environ, "SEGMENT_AUDIENCES_DB": f"sqlite:///{database}"}
    _, write_key = new_space(env)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "server", "serve", "--transport", "streamable-http", "--port", str(port)],
                              env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(port)
        bodies = [json.dumps({"batch": messages[i : i + batch], "sentAt": messages[min(i + batch, len(messages)) - 1]["timestamp"]}).encode()
                  for i in range(0, len(messages), batch)]
        queue = list(reversed(bodies))
        lock, failures = threading.Lock(), []

        def sender() -> None:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", auth=(write_key, ""), timeout=120,
                              headers={"Content-Type": "application/json"}) as client:
                while True:
                    with lock:
                        if not queue:
                            return
                        body = queue.pop()
                    response = client.post("/v1/batch", content=body)
                    if response.status_code != 200:
                        failures.append(response.text[:200])

        started = time.perf_counter()
        threads = [threading.Thread(target=sender) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        acknowledged = time.perf_counter() - started
        if failures:
            raise SystemExit(f"{len(failures)} batches failed, e.g. {failures[0]}")
        _wait_until_processed(database)
        processed = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(timeout=30)
    return acknowledged, processed, database


def _wait_until_processed(database: Path) -> None:
    """Until the server's ingest log (the file beside its database) is empty, read as another process
    would, through WAL."""
    reader = sqlite3.connect(ingest_log_file(f"sqlite:///{database}"))
    try:
        while reader.execute("select count(*) from ingest_log").fetchone()[0]:
            time.sleep(0.02)
    finally:
        reader.close()


def through_importer(messages: list[dict], batch: int, directory: Path) -> float:
    env = {**os.environ, "SEGMENT_AUDIENCES_DB": f"sqlite:///{directory / 'import.db'}"}
    space_id, _ = new_space(env)
    source = directory / "events.jsonl"
    with source.open("w") as out:
        for message in messages:
            out.write(json.dumps(message) + "\n")
    started = time.perf_counter()
    cli(env, "ingest", "--space", space_id, "--batch-size", str(batch), str(source))
    return time.perf_counter() - started


def processor_alone(messages: list[dict], batch: int, directory: Path) -> float:
    """Seconds the processor takes to store `messages`, acknowledged into the log beforehand in
    requests of `batch`. The objects made until then are frozen out of the garbage collector's full
    collections, as the processor's process freezes what it made while starting."""
    store = Store(f"sqlite:///{directory / 'processor.db'}")
    try:
        space_id = spaces.create_space(store, "Processor").space.id
        for start in range(0, len(messages), batch):
            body = json.dumps({"batch": messages[start:start + batch]}).encode()
            ingest.acknowledge(store, space_id, "batch", body, json.loads(body), "bench")
        gc.collect()
        gc.freeze()
        started = time.perf_counter()
        processor.process_all(store)
        return time.perf_counter() - started
    finally:
        gc.unfreeze()
        store.close()


def raw_ceiling(stored: Path, batch: int, directory: Path) -> float:
    """Seconds to insert the rows the server stored into an empty copy of its schema, with plain
    sqlite3 executemany and the server's pragmas (WAL, page cache, checkpoints), one transaction per batch."""
    target = directory / "raw.db"
    source = sqlite3.connect(stored)
    schema = [sql for (sql,) in source.execute("select sql from sqlite_master where sql is not null and name not like 'sqlite_%'")]
    rows = {table: source.execute(f"select * from {table}").fetchall() for table in TABLES}
    source.close()
    connection = sqlite3.connect(target, isolation_level=None)
    connection.execute("pragma journal_mode=wal")
    connection.execute(f"pragma cache_size=-{CACHE_KIB}")
    connection.execute(f"pragma wal_autocheckpoint={CHECKPOINT_PAGES}")
    for statement in schema:
        connection.execute(statement)
    events = len(rows["event"])
    chunks = max(events // batch, 1)
    started = time.perf_counter()
    for chunk in range(chunks):
        connection.execute("begin immediate")
        for table in TABLES:
            part = rows[table]
            size = -(-len(part) // chunks)
            piece = part[chunk * size : (chunk + 1) * size]
            if piece:
                marks = ",".join("?" * len(piece[0]))
                connection.executemany(f"insert into {table} values ({marks})", piece)
        connection.execute("commit")
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed


def _wait_for(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit("server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500, help="messages per /v1/batch request and per import transaction")
    args = parser.parse_args()

    messages = workload(args.events, args.profiles)
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        http_seconds, processed_seconds, stored = through_http(messages, args.batch, directory)
        stored_events = sqlite3.connect(stored).execute("select count(*) from event").fetchone()[0]
        merges = sqlite3.connect(stored).execute("select count(*) from profile_merge").fetchone()[0]
        raw_seconds = raw_ceiling(stored, args.batch, directory)
        import_seconds = through_importer(messages, args.batch, directory)
        processor_seconds = processor_alone(messages, args.batch, directory)

    figures = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "events": args.events,
        "profiles": args.profiles,
        "batch": args.batch,
        "stored_events": stored_events,
        "merges": merges,
        "http_batch_events_per_s": round(args.events / http_seconds),
        "http_processed_events_per_s": round(args.events / processed_seconds),
        "processed_after_last_acknowledgement_s": round(processed_seconds - http_seconds, 2),
        "file_import_events_per_s": round(args.events / import_seconds),
        "processor_alone_events_per_s": round(args.events / processor_seconds),
        "raw_sqlite_executemany_events_per_s": round(stored_events / raw_seconds),
    }
    figures["raw_over_http_ratio"] = round(figures["raw_sqlite_executemany_events_per_s"] / figures["http_batch_events_per_s"], 2)
    figures["http_over_raw_ratio"] = round(figures["http_batch_events_per_s"] / figures["raw_sqlite_executemany_events_per_s"], 2)
    figures["processed_over_raw_ratio"] = round(figures["http_processed_events_per_s"] / figures["raw_sqlite_executemany_events_per_s"], 2)
    figures["processor_alone_over_raw_ratio"] = round(figures["processor_alone_events_per_s"] / figures["raw_sqlite_executemany_events_per_s"], 2)
    figures["raw_over_import_ratio"] = round(figures["raw_sqlite_executemany_events_per_s"] / figures["file_import_events_per_s"], 2)
    publish("ingest", figures, entry=f"batch-{args.batch}", show=False)
    for key, value in figures.items():
        print(f"{key:40} {value}")


if __name__ == "__main__":
    main()
