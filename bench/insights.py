"""Insight tools on a large space: size history, overlap and breakdown, timed against the plainest question on
the same rows in the same run.

Writes, straight into a fresh database of the project's schema, the membership history of
`--audiences` audiences over `--profiles` profiles and 90 days: each profile is in each audience with
a probability of 10 % to 60 % (per audience), entered on a random day, and a third of the stays have
ended on a later day (some profiles came back: a second stay). Then times, median of 5:

- `size_history` by DAY over the 90 days and by HOUR over the last 7 (`store.insights.size_history`);
- `overlap` of two audiences and of all of them (`store.insights.overlap`);
- `breakdown` of the first audience's members by a trait of 4 values (`plan`) and by a numeric one
  binned (`spend`), both written for every profile (`store.insights.breakdown`; its definition has
  no top-level blocks, so this is the value counts alone);
- the reference: `SELECT count(*)` of one audience's current members, the cheapest question the
  membership table answers.

Each audience's `<key>` values are written too (true for a current member, false for a past one), as
its runs write them. With `--analytics duckdb` (the default) overlap of all audiences is also timed on
a DuckDB analytic store, which answers it from copies of those values: the first question (which
copies them whole) apart, then the median of the next ones (which find nothing changed).

Prints the figures and writes them to bench/results/insights.json (one entry per database).
Usage: python bench/insights.py [--profiles 1000000] [--audiences 10] [--db URL] [--analytics duckdb|none]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.report import publish  # noqa: E402
from store.analytic.engines import DuckDB  # noqa: E402
from store.analytic.store import AnalyticStore  # noqa: E402
from store.catalog import audiences, spaces  # noqa: E402
from store.db import bulk  # noqa: E402
from store.db.models import Membership, Trait  # noqa: E402
from store.db.store import Store  # noqa: E402
from store.insights import breakdown, overlap, size_history  # noqa: E402

DAY_MS = 86_400_000
DAYS = 90
END = datetime(2026, 12, 1, tzinfo=timezone.utc)
COLUMNS = ("space_id", "computation_id", "profile_id", "entered_at_ms", "entered_run_id", "exited_at_ms",
           "exited_run_id")
TRAIT_COLUMNS = ("profile_id", "key", "space_id", "value", "trait_class", "source_id", "updated_at_ms")


def stays(rng: random.Random, space_id: str, audience_id: str, profiles: int, share: float):
    """One audience's membership rows."""
    start_ms = int((END - timedelta(days=DAYS)).timestamp() * 1000)
    for n in range(profiles):
        if rng.random() >= share:
            continue
        profile_id = f"use_{n:08d}"
        entered = start_ms + rng.randrange(DAYS * DAY_MS)
        if rng.random() < 1 / 3:
            exited = entered + rng.randrange(max(1, start_ms + DAYS * DAY_MS - entered))
            yield (space_id, audience_id, profile_id, entered, "run_bench", exited, "run_bench")
            if rng.random() < 0.3:
                back = exited + rng.randrange(max(1, start_ms + DAYS * DAY_MS - exited))
                yield (space_id, audience_id, profile_id, back, "run_bench", None, None)
        else:
            yield (space_id, audience_id, profile_id, entered, "run_bench", None, None)


def fill(store: Store, space_id: str, audiences_by_key: dict[str, str], profiles: int) -> int:
    """Each audience's membership rows, and its `<key>` value for every profile that has been a member."""
    rng = random.Random(11)
    written = 0
    for key, audience_id in audiences_by_key.items():
        rows = list(stays(rng, space_id, audience_id, profiles, 0.1 + 0.5 * rng.random()))
        member = {}
        for row in rows:
            member[row[2]] = member.get(row[2], False) or row[5] is None
        values = [(profile_id, key, space_id, "true" if now else "false", "audience", "bench", 0)
                  for profile_id, now in member.items()]
        with store.write() as session:
            bulk.insert_rows(session.connection(), Membership.__table__, COLUMNS, rows)
            bulk.insert_rows(session.connection(), Trait.__table__, TRAIT_COLUMNS, values)
        written += len(rows)
    return written


def traits(store: Store, space_id: str, profiles: int) -> None:
    """A `plan` (4 values) and a `spend` (0-999) trait for every profile."""
    rng = random.Random(13)
    rows = [(f"use_{n:08d}", key, space_id, value, "custom", "bench", 0) for n in range(profiles)
            for key, value in (("plan", f'"{rng.choice(["free", "pro", "team", "enterprise"])}"'),
                               ("spend", str(rng.randrange(1000))))]
    with store.write() as session:
        bulk.insert_rows(session.connection(), Trait.__table__, TRAIT_COLUMNS, rows)


def median_seconds(work, times: int = 5) -> float:
    spent = []
    for _ in range(times):
        started = time.perf_counter()
        work()
        spent.append(time.perf_counter() - started)
    return round(statistics.median(spent), 3)


def on_duckdb(store: Store, space_id: str, audience_ids: list[str], path: Path) -> dict:
    """Overlap of all the audiences on a DuckDB analytic store: the first question, then the next ones;
    checked against the operational store's answer."""
    expected = overlap.overlap(store, space_id, audience_ids)
    store.analytics = AnalyticStore(store, DuckDB(str(path)))
    try:
        store.analytics.catch_up()
        started = time.perf_counter()
        first = overlap.overlap(store, space_id, audience_ids)
        first_s = round(time.perf_counter() - started, 3)
        assert first == expected, "DuckDB's overlap differs from the operational store's"
        return {"overlap_all_duckdb_first_s": first_s,
                "overlap_all_duckdb_s": median_seconds(lambda: overlap.overlap(store, space_id, audience_ids))}
    finally:
        store.analytics.close()
        store.analytics = None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--audiences", type=int, default=10)
    parser.add_argument("--db", help="a SQLAlchemy URL of an empty database (default: a SQLite file here)")
    parser.add_argument("--analytics", choices=("duckdb", "none"), default="duckdb")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        store = Store(args.db or f"sqlite:///{folder}/insights.db")
        space_id = spaces.create_space(store, "Insights").space.id
        created = [audiences.create_audience(store, space_id, name=f"Audience {n}", audience_type="USERS",
                                             query=f"event('Event {n}').count() >= 1")
                   for n in range(args.audiences)]
        audience_ids = [audience.id for audience in created]
        started = time.perf_counter()
        rows = fill(store, space_id, {audience.key: audience.id for audience in created}, args.profiles)
        traits(store, space_id, args.profiles)
        fill_seconds = time.perf_counter() - started
        if store.engine.dialect.name == "postgresql":
            with store.engine.begin() as connection:  # committed: statistics an ANALYZE rolled back are lost
                connection.exec_driver_sql("ANALYZE membership")
                connection.exec_driver_sql("ANALYZE trait")
        first = audience_ids[0]

        def reference() -> None:
            with store.read() as session:
                session.execute(select(func.count()).select_from(Membership).where(
                    Membership.computation_id == first, Membership.exited_at_ms.is_(None))).scalar_one()

        figures = {
            "date": datetime.now(timezone.utc).date().isoformat(),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            "database": store.engine.dialect.name, "profiles": args.profiles, "audiences": args.audiences,
            "membership_rows": rows, "fill_seconds": round(fill_seconds, 1),
            "reference_count_s": median_seconds(reference),
            "size_history_day_90_s": median_seconds(lambda: size_history.size_history(
                store, space_id, first, END - timedelta(days=DAYS), END, "DAY")),
            "size_history_hour_7_s": median_seconds(lambda: size_history.size_history(
                store, space_id, first, END - timedelta(days=7), END, "HOUR")),
            "overlap_two_s": median_seconds(lambda: overlap.overlap(store, space_id, audience_ids[:2])),
            "overlap_all_s": median_seconds(lambda: overlap.overlap(store, space_id, audience_ids)),
            "breakdown_values_s": median_seconds(lambda: breakdown.breakdown(store, space_id, first, trait_key="plan")),
            "breakdown_bins_s": median_seconds(lambda: breakdown.breakdown(store, space_id, first, trait_key="spend")),
        }
        timed = ["size_history_day_90_s", "size_history_hour_7_s", "overlap_two_s", "overlap_all_s",
                 "breakdown_values_s", "breakdown_bins_s"]
        if args.analytics == "duckdb":
            figures.update(on_duckdb(store, space_id, audience_ids, Path(folder) / "insights.duckdb"))
            timed.append("overlap_all_duckdb_s")
        for name in timed:
            figures[name.removesuffix("_s") + "_over_reference"] = round(figures[name] / figures["reference_count_s"], 1)
        store.close()
    publish("insights", figures, entry=figures["database"])


if __name__ == "__main__":
    main()
