"""Compute speed: full runs of representative definitions on one engine, and an incremental
recompute, against a hand-written DuckDB query over typed columns (the columnar reference), in the
same run.

Generates a seeded dataset (profiles with a user_id, a plan trait for some, ~10 events each over 60
days with a price and a brand), writes it to a fresh segment-audiences database (SQLite) and to
DuckDB tables of its own for the reference. With `--engine duckdb` or `clickhouse` (chdb, in process)
it then replicates the database into that analytic store (`replication_events_per_s`). For each
definition it times:

- `query_s`: the compiled statement alone over every profile, on the engine;
- `run_s`: a whole run (catch-up, statement, membership diff, `<key>` traits, run record) of a new audience;
- `rerun_s`: a second whole run right after, which finds nothing changed: what every cadence run,
  window sweep and schedule pays once the first run has written the members;
- `duckdb_s`: the hand-written DuckDB query; and checks that both give the same members (or values).

Then times the incremental path (the same statement restricted to 100 profiles, plus the diff, on
the operational store) and the floor under a first run's writes (`write_floor`). Prints the figures
and writes them to bench/results/compute.json.
Usage: python bench/compute.py [--engine sqlite|duckdb|clickhouse] [--profiles 100000] [--events-per-profile 10]
"""

from __future__ import annotations

import argparse
import csv
import platform
import random
import sqlite3
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.report import publish  # noqa: E402
from backend.clock import FrozenClock, to_ms  # noqa: E402
from store.analytic.engines import ClickHouse, Chdb, DuckDB  # noqa: E402
from store.analytic.store import AnalyticStore  # noqa: E402
from store.catalog import audiences, computed_traits, spaces  # noqa: E402
from store.compute import computations, runs  # noqa: E402
from store.db import bulk  # noqa: E402
from store.db.models import Trait  # noqa: E402
from store.db.store import Store  # noqa: E402

NOW = datetime(2026, 11, 22, 12, tzinfo=timezone.utc)
NOW_MS = to_ms(NOW)
DAY_MS = 86_400_000
EVENTS = ["Order Completed", "Product Added", "Login", "Page Viewed"]
BRANDS = [f"brand-{n}" for n in range(10)]

AUDIENCES = {
    "simple count": (
        "event('Order Completed').count() >= 3",
        "SELECT profile_id FROM events WHERE event = 'Order Completed' GROUP BY profile_id HAVING count(*) >= 3"),
    "property filter + window": (
        "event('Order Completed').where(property('price') >= 100).within(7 days).count() >= 1",
        f"SELECT DISTINCT profile_id FROM events WHERE event = 'Order Completed' AND price >= 100 "
        f"AND ts >= {NOW_MS - 7 * DAY_MS}"),
    "NOT": (
        "NOT event('Login').within(30 days).count() >= 1",
        f"SELECT id FROM profiles EXCEPT SELECT profile_id FROM events WHERE event = 'Login' "
        f"AND ts >= {NOW_MS - 30 * DAY_MS}"),
    "OR of three": (
        "event('Login').count() >= 5 OR event('Order Completed').where(property('brand') = 'brand-3').count() >= 2 "
        "OR trait('plan') = 'pro'",
        "SELECT profile_id FROM events WHERE event = 'Login' GROUP BY profile_id HAVING count(*) >= 5 "
        "UNION SELECT profile_id FROM events WHERE event = 'Order Completed' AND brand = 'brand-3' "
        "GROUP BY profile_id HAVING count(*) >= 2 UNION SELECT profile_id FROM traits WHERE plan = 'pro'"),
    "funnel with parent window": (
        "event('Product Added').where(event('Order Completed').within(parent: 1 days).count() = 0)"
        ".within(14 days).count() >= 1",
        f"SELECT DISTINCT a.profile_id FROM events a WHERE a.event = 'Product Added' AND a.ts >= {NOW_MS - 14 * DAY_MS} "
        f"AND NOT EXISTS (SELECT 1 FROM events b WHERE b.profile_id = a.profile_id AND b.event = 'Order Completed' "
        f"AND b.ts > a.ts AND b.ts <= a.ts + {DAY_MS})"),
}
TRAITS = {
    "computed trait sum": (
        "event('Order Completed').sum(property('price'))",
        "SELECT p.id, coalesce(sum(e.price), 0) FROM profiles p LEFT JOIN events e ON e.profile_id = p.id "
        "AND e.event = 'Order Completed' GROUP BY p.id"),
    "computed trait mode": (
        "event('Order Completed').mode(property('brand'), 2)",
        "SELECT profile_id, brand FROM (SELECT profile_id, brand, row_number() OVER (PARTITION BY profile_id "
        "ORDER BY count(*) DESC, brand) AS place FROM events WHERE event = 'Order Completed' "
        "GROUP BY profile_id, brand HAVING count(*) >= 2) WHERE place = 1"),
}


def generate(store: Store, space_id: str, folder: Path, profiles: int, per_profile: int, seed: int = 7) -> int:
    """Write the dataset to the store's SQLite file and to CSV files for DuckDB, in chunks of 10,000
    profiles; returns the event count."""
    rng = random.Random(seed)
    database = sqlite3.connect(store.url.removeprefix("sqlite:///"))
    events = 0
    with open(folder / "events.csv", "w", newline="") as events_file, open(folder / "traits.csv", "w", newline="") as traits_file:
        events_csv, traits_csv = csv.writer(events_file), csv.writer(traits_file)
        for first in range(0, profiles, 10_000):
            profile_rows, identifier_rows, trait_rows, event_rows = [], [], [], []
            for person in range(first, min(first + 10_000, profiles)):
                profile_id = f"use_{person:08d}"
                profile_rows.append((profile_id, space_id, "users", 0, "m", "bench"))
                identifier_rows.append((space_id, "users", "user_id", f"user-{person}", profile_id, 0, "m", "bench"))
                if rng.random() < 0.3:
                    plan = rng.choice(["pro", "free", "team"])
                    trait_rows.append((profile_id, "plan", space_id, orjson.dumps(plan).decode(), "custom", "bench", 0))
                    traits_csv.writerow((profile_id, plan))
                for _ in range(rng.randint(per_profile // 2, per_profile * 3 // 2)):
                    name, price, brand = rng.choice(EVENTS), rng.randint(1, 200), rng.choice(BRANDS)
                    timestamp = NOW_MS - rng.randint(0, 60 * DAY_MS)
                    properties = orjson.dumps({"price": price, "brand": brand}).decode()
                    events += 1
                    event_rows.append((space_id, profile_id, f"m{events}", "track", name, timestamp, 0, "bench",
                                       properties, "{}", "[]"))
                    events_csv.writerow((events, profile_id, name, timestamp, price, brand))
            _insert(database, profile_rows, identifier_rows, trait_rows, event_rows)
    database.execute("ANALYZE")
    database.close()
    return events


def _insert(database: sqlite3.Connection, profile_rows, identifier_rows, trait_rows, event_rows) -> None:
    with database:
        database.executemany("INSERT INTO profile (id, space_id, collection, created_at_ms, first_message_id, "
                             "first_source_id, merge_count) VALUES (?, ?, ?, ?, ?, ?, 0)", profile_rows)
        database.executemany("INSERT INTO identifier (space_id, collection, type, value, profile_id, created_at_ms, "
                             "first_message_id, source_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", identifier_rows)
        database.executemany("INSERT INTO trait (profile_id, key, space_id, value, trait_class, source_id, "
                             "updated_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?)", trait_rows)
        database.executemany("INSERT INTO event (space_id, profile_id, message_id, type, event, timestamp_ms, "
                             "received_at_ms, source_id, properties, context, external_ids) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", event_rows)


def columnar(folder: Path, profiles: int) -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    connection.execute(f"CREATE TABLE events AS SELECT * FROM read_csv('{folder / 'events.csv'}', header = false, "
                       "columns = {'id': 'BIGINT', 'profile_id': 'VARCHAR', 'event': 'VARCHAR', 'ts': 'BIGINT', "
                       "'price': 'INTEGER', 'brand': 'VARCHAR'})")
    connection.execute(f"CREATE TABLE traits AS SELECT * FROM read_csv('{folder / 'traits.csv'}', header = false, "
                       "columns = {'profile_id': 'VARCHAR', 'plan': 'VARCHAR'})")
    connection.execute(f"CREATE TABLE profiles AS SELECT printf('use_%08d', range) AS id FROM range({profiles})")
    return connection


def timed(work):
    started = time.perf_counter()
    result = work()
    return result, time.perf_counter() - started


def best_of(work, times: int = 3):
    results = [timed(work) for _ in range(times)]
    return results[0][0], min(seconds for _, seconds in results)


def measure(store: Store, space_id: str, reference: duckdb.DuckDBPyConnection) -> dict:
    figures = {}
    for name, (query, sql) in {**AUDIENCES, **TRAITS}.items():
        kind = "audience" if name in AUDIENCES else "computed_trait"
        if kind == "audience":
            row = audiences.create_audience(store, space_id, name=name, audience_type="USERS", query=query,
                                            options={"includeHistoricalData": True, "backfillEventDataDays": 365})
            computation = computations.for_audience(row)
        else:
            row = computed_traits.create_computed_trait(store, space_id, name=name, query=query, definition_type="USERS")
            computation = computations.for_trait(row)
        if store.analytics is None:
            statement = computation.statement(NOW)
            with store.read() as session:
                ours, query_s = best_of(lambda: session.execute(statement).all())
        else:
            tables = store.analytics.tables_for(computation.analysis.property_paths)
            statement = computation.statement(NOW, analytic=tables)
            ours, query_s = best_of(lambda: store.analytics.engine.run(statement))
        run, run_s = timed(lambda: runs.run(store, row.id, reason="forced"))
        assert run.status == "COMPLETED", run.error
        assert run.engine == engine_name(store), run.engine
        rerun, rerun_s = timed(lambda: runs.run(store, row.id, reason="forced"))
        assert rerun.status == "COMPLETED" and rerun.entered == rerun.exited == 0, rerun
        theirs, duckdb_s = best_of(lambda: reference.execute(sql).fetchall())
        if kind == "audience":
            same = {profile_id for (profile_id,) in ours} == {profile_id for (profile_id,) in theirs}
        else:
            expected = {profile_id: value for profile_id, value in theirs}
            same = {p: orjson.loads(v) for p, v in ours if v is not None} == expected
        figures[name] = {"query_s": round(query_s, 3), "run_s": round(run_s, 3), "rerun_s": round(rerun_s, 3),
                         "duckdb_s": round(duckdb_s, 4),
                         "query_over_duckdb": round(query_s / duckdb_s, 1),
                         "run_over_duckdb": round(run_s / duckdb_s, 1), "members_identical": same,
                         "size": run.size}
        print(f"{name:28s} query {query_s:7.3f}s  run {run_s:7.3f}s  rerun {rerun_s:7.3f}s  duckdb {duckdb_s:7.4f}s  "
              f"query/duckdb {query_s / duckdb_s:6.1f}  run/duckdb {run_s / duckdb_s:6.1f}  same={same}  "
              f"size={run.size}")
    return figures


def incremental(store: Store, space_id: str, profiles: int) -> float:
    """Median seconds to recompute 100 profiles for the property-filter audience, diff and write included."""
    row = audiences.list_audiences(store, space_id, audiences.Search("NAME", "property filter"),
                                   audiences.PageRequest(None, 1)).items[0]
    computation = computations.for_audience(row)
    rng = random.Random(3)
    samples = []
    for _ in range(20):
        ids = [f"use_{rng.randrange(profiles):08d}" for _ in range(100)]
        with store.write() as session:
            started = time.perf_counter()
            runs.apply_realtime(session, computation, NOW, ids)
            samples.append(time.perf_counter() - started)
    samples.sort()
    return samples[len(samples) // 2]


def write_floor(store: Store, space_id: str, profiles: int) -> dict:
    """Seconds to write one `<key>` trait row per profile in one transaction, rolled back after: into
    the trait table as a run writes them (`bulk.upsert_newer_distinct`), and with plain `sqlite3` into
    a bare table of its columns and key, without the change-log trigger and computed-value index: the
    floor under a first run's trait writes on this machine."""
    fixed = dict(key="bench_floor", space_id=space_id, trait_class="audience", source_id="bench", updated_at_ms=NOW_MS)
    values = [(f"use_{person:08d}", "true") for person in range(profiles)]
    rows = [(profile_id, fixed["key"], space_id, value, "audience", "bench", NOW_MS) for profile_id, value in values]
    with store.engine.connect() as connection:
        transaction = connection.begin()
        _, trait_s = timed(lambda: bulk.upsert_newer_distinct(connection, Trait.__table__, ("profile_id", "value"),
                                                              values, ("profile_id", "key"), "updated_at_ms", fixed))
        transaction.rollback()
    database = sqlite3.connect(store.url.removeprefix("sqlite:///"), isolation_level=None)
    database.execute("CREATE TABLE bench_bare AS SELECT * FROM trait WHERE 0")
    database.execute("CREATE UNIQUE INDEX bench_bare_key ON bench_bare (profile_id, key)")
    database.execute("BEGIN IMMEDIATE")
    _, bare_s = timed(lambda: database.executemany("INSERT INTO bench_bare VALUES (?, ?, ?, ?, ?, ?, ?)", rows))
    database.execute("ROLLBACK")
    database.execute("DROP TABLE bench_bare")
    database.close()
    print(f"{profiles} trait rows: {trait_s:.2f}s into the trait table as a run writes them, "
          f"{bare_s:.2f}s with plain sqlite3 into a bare table of its columns and key")
    return {"trait_table_s": round(trait_s, 2), "bare_table_s": round(bare_s, 2)}


def engine_name(store: Store) -> str:
    return "sqlite" if store.analytics is None else store.analytics.name


def replicate(store: Store, engine: str, folder: str, events: int) -> float | None:
    """Attach the analytic store and copy the database into it; returns events copied per second."""
    if engine == "sqlite":
        return None
    analytic = DuckDB(f"{folder}/analytic.duckdb") if engine == "duckdb" else ClickHouse(Chdb(f"{folder}/chdb"))
    store.analytics = AnalyticStore(store, analytic)
    _, replicate_s = timed(store.analytics.catch_up)
    print(f"replicated {events} events (and the profiles' rows) in {replicate_s:.1f}s: {events / replicate_s:,.0f}/s")
    return events / replicate_s


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", choices=("sqlite", "duckdb", "clickhouse"), default="sqlite")
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--events-per-profile", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        store = Store(f"sqlite:///{folder}/bench.db", clock=FrozenClock(NOW))
        space_id = spaces.create_space(store, "Bench").space.id
        events, generate_s = timed(lambda: generate(store, space_id, Path(folder), args.profiles,
                                                    args.events_per_profile))
        print(f"generated {args.profiles} profiles and {events} events in {generate_s:.0f}s")
        reference = columnar(Path(folder), args.profiles)
        replication_rate = replicate(store, args.engine, folder, events)
        figures = measure(store, space_id, reference)
        incremental_s = incremental(store, space_id, args.profiles)
        print(f"incremental recompute of 100 profiles: {incremental_s * 1000:.1f} ms (median of 20)")
        floor = write_floor(store, space_id, args.profiles)
        if store.analytics is not None:
            store.analytics.close()
        store.close()
    publish("compute", {
        "date": NOW.date().isoformat(),
        "machine": f"{platform.machine()}, {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
                   f"DuckDB {duckdb.__version__}",
        "engine": args.engine, "profiles": args.profiles, "events": events, "definitions": figures,
        "replication_events_per_s": None if replication_rate is None else round(replication_rate),
        "incremental_100_profiles_ms": round(incremental_s * 1000, 1),
        "trait_write_floor": floor,
    }, entry=f"{args.engine}:{args.profiles}", show=False)


if __name__ == "__main__":
    main()
