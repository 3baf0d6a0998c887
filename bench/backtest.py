"""Backtests on a large space: `backtest_audience` over 7 and 30 days, timed against one full
computation of the same definition at now on the same engine (the least a backtest can cost), in
the same run.

Uses `bench/compute.py`'s seeded dataset (profiles with a user_id, a plan trait for some, ~10 events
each over 60 days), replicated into the analytic store (`--engine duckdb` or `clickhouse`) or read
on SQLite. For each definition it times, best of 3:

- `statement_s`: the definition computed once over every profile at now (`runs.full_result`);
- `backtest_7_s`, `backtest_30_s`: `store.insights.backtest` over the last 7 and 30 days;

and checks that the backtest's last day has the statement's size. Prints the figures and writes
them to bench/results/backtest.json.
Usage: python bench/backtest.py [--engine sqlite|duckdb|clickhouse] [--profiles 1000000]
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.compute import AUDIENCES, NOW, best_of, generate, replicate, timed  # noqa: E402
from bench.report import publish  # noqa: E402
from backend import cql  # noqa: E402
from backend.clock import FrozenClock, to_ms  # noqa: E402
from store.catalog import spaces  # noqa: E402
from store.compute import runs  # noqa: E402
from store.compute.computations import Computation  # noqa: E402
from store.db.store import Store  # noqa: E402
from store.insights import backtest  # noqa: E402

DEFINITIONS = ["simple count", "property filter + window", "NOT", "OR of three"]


def measure(store: Store, space_id: str) -> dict:
    figures = {}
    for name in DEFINITIONS:
        query = AUDIENCES[name][0]
        computation = Computation("bench", space_id, "audience", "", query, "USERS", {"includeHistoricalData": True},
                                  to_ms(NOW), cql.validate(query, kind="audience", audience_type="USERS"))
        full, statement_s = best_of(lambda: runs.full_result(store, computation, NOW))
        size = len(full.rows)
        row = {"size": size, "statement_s": round(statement_s, 3)}
        for days in (7, 30):
            found, seconds = best_of(lambda: backtest.backtest(
                store, space_id, audience_type="USERS", query=query, start=NOW - timedelta(days=days - 1), end=NOW))
            assert found.days[-1].size == size, (name, found.days[-1].size, size)
            row[f"backtest_{days}_s"] = round(seconds, 3)
            row[f"backtest_{days}_ratio"] = round(seconds / statement_s, 1)
        figures[name] = row
        print(f"{name}: statement {statement_s:.3f}s, 7 days {row['backtest_7_s']:.3f}s, "
              f"30 days {row['backtest_30_s']:.3f}s (size {size})")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=("sqlite", "duckdb", "clickhouse"), default="duckdb")
    parser.add_argument("--profiles", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        store = Store(f"sqlite:///{folder}/bench.db", clock=FrozenClock(NOW))
        space_id = spaces.create_space(store, "Backtest").space.id
        events, generate_s = timed(lambda: generate(store, space_id, Path(folder), args.profiles, 10))
        print(f"generated {args.profiles} profiles and {events} events in {generate_s:.0f}s")
        replicate(store, args.engine, folder, events)
        figures = measure(store, space_id)
        if store.analytics is not None:
            store.analytics.close()
        store.close()
    publish("backtest", {
        "date": NOW.date().isoformat(), "machine": f"{platform.machine()}, {platform.python_version()}",
        "engine": args.engine, "profiles": args.profiles, "events": events, "definitions": figures,
    }, entry=f"{args.engine}:{args.profiles}", show=False)


if __name__ == "__main__":
    main()
