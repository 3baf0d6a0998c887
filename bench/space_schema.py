"""The Space Schema tools on a large space, and what keeping their summary costs ingest.

Generates the ingest benchmark's seeded workload (anonymous browsing, sign-ins that merge profiles;
identify, track, page and group calls) and stores it twice in this process, through the same path
the Tracking API and the importer take (`store.ingest.ingest.accept`, one transaction per batch):

- into a fresh database with the summary kept, as always;
- into another fresh database with `schema_summary.record` replaced by a no-op, the reference run.

Then, on the first database, it times each Space Schema tool (its Python function, as the MCP
server calls it) against the question asked of the event table itself (a GROUP BY over every event,
the properties of every Order Completed), the way a server without the summary would answer.

Prints the figures and ratios and writes them to bench/results/space_schema.json.
Usage: python bench/space_schema.py [--events 1000000] [--profiles 100000] [--batch 1000]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.ingest import workload  # noqa: E402
from bench.report import publish  # noqa: E402
from store.catalog import spaces  # noqa: E402
from store.db.store import Store  # noqa: E402
from store.ingest import schema_summary  # noqa: E402
from store.ingest.ingest import accept  # noqa: E402
from tools import space_schema as tools  # noqa: E402
from tools.models import PaginationInput  # noqa: E402

READS = 20


def store_all(path: Path, messages: list[dict], batch: int) -> tuple[Store, str, float]:
    """A fresh database holding `messages`, the space's id and the seconds storing took."""
    store = Store(f"sqlite:///{path}")
    space_id = spaces.create_space(store, "Bench").space.id
    bodies = [orjson.loads(orjson.dumps(messages[i : i + batch])) for i in range(0, len(messages), batch)]
    started = time.perf_counter()
    for body in bodies:
        _, rejected = accept(store, space_id, body, "bench")
        if rejected:
            raise SystemExit(f"{len(rejected)} messages rejected, e.g. {rejected[0].message}")
    return store, space_id, time.perf_counter() - started


def median_ms(read) -> float:
    """The median of READS timings of `read()`, in milliseconds."""
    timings = []
    for _ in range(READS):
        started = time.perf_counter()
        read()
        timings.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(timings), 2)


def tool_reads(store: Store, space_id: str) -> dict[str, float]:
    page = PaginationInput(count=200)
    return {
        "list_events": median_ms(lambda: tools.list_events(store, space_id, page)),
        "list_properties_from_event": median_ms(lambda: tools.list_properties_from_event(
            store, space_id, "Order Completed", page, includeSampleValues=True)),
        "list_sample_values_from_event_property": median_ms(lambda: tools.list_sample_values_from_event_property(
            store, space_id, "Order Completed", "sku", "PROPERTY")),
        "list_traits": median_ms(lambda: tools.list_traits(store, space_id, page, includeSampleValues=True)),
        "list_sample_values_from_trait": median_ms(lambda: tools.list_sample_values_from_trait(store, space_id, "plan")),
    }


def event_table_reads(store: Store, space_id: str) -> dict[str, float]:
    """The same two questions asked of the event table: which events, and which properties one has."""
    def events():
        with store.engine.connect() as connection:
            connection.exec_driver_sql(
                "select type, coalesce(event, type), count(*), max(received_at_ms) from event "
                "where space_id = ? group by 1, 2", (space_id,)).all()

    def properties():
        with store.engine.connect() as connection:
            connection.exec_driver_sql(
                "select p.key, count(*), max(e.received_at_ms) from event e, json_each(e.properties) p "
                "where e.space_id = ? and e.event = 'Order Completed' group by 1", (space_id,)).all()

    return {"events_group_by": median_ms(events), "properties_json_each": median_ms(properties)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000, help="messages per ingest transaction")
    args = parser.parse_args()

    messages = workload(args.events, args.profiles)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        record = schema_summary.record
        schema_summary.record = lambda connection, space_id, summary: None
        try:
            _, _, without_seconds = store_all(folder / "without.db", messages, args.batch)
        finally:
            schema_summary.record = record
        store, space_id, with_seconds = store_all(folder / "with.db", messages, args.batch)
        tool_ms = tool_reads(store, space_id)
        table_ms = event_table_reads(store, space_id)

    figures = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "events": args.events,
        "profiles": args.profiles,
        "batch": args.batch,
        "ingest_events_per_s_with_summary": round(args.events / with_seconds),
        "ingest_events_per_s_without_summary": round(args.events / without_seconds),
        "ingest_with_over_without_ratio": round(without_seconds / with_seconds, 2),
        "tool_median_ms": tool_ms,
        "event_table_median_ms": table_ms,
        "events_group_by_over_list_events_ratio": round(table_ms["events_group_by"] / tool_ms["list_events"]),
        "properties_json_each_over_list_properties_ratio": round(
            table_ms["properties_json_each"] / tool_ms["list_properties_from_event"]),
    }
    publish("space_schema", figures)


if __name__ == "__main__":
    main()
