"""LINKED audience speed: a Data Graph of profiles → orders → order lines → products, a definition
two levels deep with a property filter and a count, timed against a hand-written query over the same
tables in the same run.

Generates a seeded dataset: profiles with an email identifier (written to a fresh segment-audiences
database), and CSV files of orders (joined to the profile by its email), order lines (joined to
their order) and products (joined to their line), loaded into the warehouse by its loader
(`load_s`). Then times, for the definition:

- `query_s`: the compiled statement alone over every profile, on the engine (best of 3);
- `run_s`: a first whole run of a new audience (catch-up, statement, membership diff, traits, run record);
- `rerun_s`: a second whole run, which finds nothing changed;
- `reference_s`: the hand-written query (best of 3), and checks both give the same members.

`--analytics duckdb` (the default) uses the DuckDB analytic store and warehouse beside a SQLite
database; `--analytics clickhouse` ClickHouse in this process (chdb) as the analytic store, its entity
tables made by ClickHouse itself from the same files (`load_s`), as a user's own tools would; `--analytics
none` the operational database's own warehouse schema (SQLite, or PostgreSQL with `--db URL`). With `--activation` the audience has an Entity Added activation (on a webhook
nobody delivers to), so its runs also read, keep and compare its matched rows, nested. Prints the
figures and writes them to bench/results/linked.json.
Usage: python bench/linked.py [--analytics duckdb|clickhouse|none] [--db URL] [--profiles 100000] [--activation]
"""

from __future__ import annotations

import argparse
import csv
import platform
import random
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import duckdb
from sqlalchemy import insert, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.compute import best_of, timed  # noqa: E402
from bench.report import publish  # noqa: E402
from backend.clock import FrozenClock  # noqa: E402
from store.analytic.engines import ClickHouse, Chdb  # noqa: E402
from store.analytic.store import AnalyticStore, open_analytic_store  # noqa: E402
from store.catalog import (activations, audiences, data_graphs, destination_instances,  # noqa: E402
                           destinations, spaces)
from store.compute import computations, linked, runs  # noqa: E402
from store.db.models import Identifier, Profile  # noqa: E402
from store.db.store import Store  # noqa: E402
from store.warehouse.location import warehouse_of  # noqa: E402
from store.warehouse.warehouses import ClickHouseWarehouse, DuckDBWarehouse  # noqa: E402

NOW = datetime(2026, 11, 22, 12, tzinfo=timezone.utc)
GRAPH = {"data_graph": {
    "entity": {"order": {"name": "Order", "table_ref": "orders", "primary_key": "ORDER_ID"},
               "line": {"name": "Order line", "table_ref": "order_lines", "primary_key": "LINE_ID"},
               "product": {"name": "Product", "table_ref": "products", "primary_key": "SKU"}},
    "profile": {"relationship": {"orders": {
        "name": "Orders", "related_entity": "order", "external_id": {"type": "email", "join_key": "EMAIL"},
        "relationship": {"order-lines": {
            "name": "Lines", "related_entity": "line", "join_on": "order.ORDER_ID = line.ORDER_ID",
            "relationship": {"line-product": {"name": "Product", "related_entity": "product",
                                              "join_on": "line.SKU = product.SKU"}}}}}}}}}
DEFINITION = ("entity('orders').where(property('STATUS') = 'shipped' AND "
              "entity('order-lines').where(property('QTY') >= 2).count() >= 2).count() >= 1")
REFERENCE = """
SELECT DISTINCT i.profile_id FROM identifier i
JOIN {orders} o ON o."EMAIL" = i.value
JOIN (SELECT "ORDER_ID" FROM {lines} WHERE "QTY" >= 2 GROUP BY "ORDER_ID" HAVING count(DISTINCT "LINE_ID") >= 2) l
  ON l."ORDER_ID" = o."ORDER_ID"
JOIN profile p ON p.id = i.profile_id
WHERE i.type = 'email' AND i.collection = 'users' AND o."STATUS" = 'shipped' AND p.merged_into IS NULL
"""


def generate(store: Store, space_id: str, folder: Path, profiles: int, seed: int = 11) -> dict[str, int]:
    """Profiles with an email in the store; orders, order lines and products as CSV files."""
    rng = random.Random(seed)
    with store.write() as session:
        connection = session.connection()
        for first in range(0, profiles, 10_000):
            people = range(first, min(first + 10_000, profiles))
            connection.execute(insert(Profile.__table__), [dict(
                id=f"use_{n:08d}", space_id=space_id, collection="users", created_at_ms=0, first_message_id="m",
                first_source_id="bench", merge_count=0) for n in people])
            connection.execute(insert(Identifier.__table__), [dict(
                space_id=space_id, collection="users", type="email", value=f"p{n}@example.com",
                profile_id=f"use_{n:08d}", created_at_ms=0, first_message_id="m", source_id="bench") for n in people])
    counts = {"orders": profiles * 3, "order_lines": profiles * 10, "products": 10_000}
    with open(folder / "products.csv", "w", newline="") as file:
        rows = csv.writer(file)
        rows.writerow(["SKU", "TITLE", "PRICE"])
        rows.writerows((f"sku{n}", f"Product {n}", rng.randint(1, 500)) for n in range(counts["products"]))
    with open(folder / "orders.csv", "w", newline="") as file:
        rows = csv.writer(file)
        rows.writerow(["ORDER_ID", "EMAIL", "STATUS", "TOTAL"])
        rows.writerows((f"o{n}", f"p{rng.randrange(int(profiles * 1.1))}@example.com",
                        rng.choice(["shipped", "shipped", "open", "returned"]), rng.randint(5, 900))
                       for n in range(counts["orders"]))
    with open(folder / "order_lines.csv", "w", newline="") as file:
        rows = csv.writer(file)
        rows.writerow(["LINE_ID", "ORDER_ID", "SKU", "QTY"])
        rows.writerows((f"l{n}", f"o{rng.randrange(counts['orders'])}", f"sku{rng.randrange(counts['products'])}",
                        rng.randint(1, 4)) for n in range(counts["order_lines"]))
    return counts


def clickhouse_load(store: Store, table: str, file: Path) -> None:
    """A table ClickHouse makes from the file itself, its types inferred by ClickHouse."""
    client = store.analytics.engine.client
    client.command(f"CREATE TABLE `{table}` ENGINE = MergeTree ORDER BY tuple() "
                   f"AS SELECT * FROM file('{file}', 'CSVWithNames')")


def settle(store: Store) -> None:
    """On PostgreSQL, analyzes the freshly written profile tables, as autovacuum does within a minute
    of a bulk write: a statement planned on empty statistics would measure the planner, not the engine."""
    if store.engine.dialect.name == "postgresql":
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("ANALYZE profile, identifier, trait"))


def reference_rows(store: Store) -> list[tuple]:
    """The hand-written query, on the engine that holds the warehouse and the profile tables."""
    warehouse = warehouse_of(store)
    if isinstance(warehouse, DuckDBWarehouse):
        engine = store.analytics.engine
        with engine.attached(warehouse.attached):
            return engine.run(text(REFERENCE.format(orders="warehouse.main.orders", lines="warehouse.main.order_lines")))
    if isinstance(warehouse, ClickHouseWarehouse):
        return store.analytics.engine.run(text(REFERENCE.format(orders="orders", lines="order_lines")))
    with store.read() as session:
        sql = REFERENCE.format(orders="warehouse.orders", lines="warehouse.order_lines")
        return [tuple(row) for row in session.execute(text(sql))]


def compiled_rows(store: Store, computation) -> list[tuple]:
    """The compiled statement alone, where a run sends it."""
    result = linked.full_result(store, computation, NOW, runs.UNLIMITED)
    if result is not None:
        return result.rows
    with store.read() as session:
        return [tuple(row) for row in session.execute(computation.statement(NOW))]


def activate(store: Store, space_id: str, audience_id: str) -> None:
    """An Entity Added activation with a personalized column, on a webhook nobody delivers to."""
    destination = destination_instances.add_destination(store, space_id, "webhooks-actions", "Hook", {})
    connection = destinations.connect(store, space_id, audience_id, destination.id, "destination", None, None).connection
    activations.add_activation(store, space_id, audience_id, connection.id, activation_name="Added",
                               activation_type="Entity Added", perform_resync=False,
                               personalization={"entities": [{"relationshipSlug": "orders", "properties": ["TOTAL"]}]},
                               destination_mapping={"actionId": "webhooks-send",
                                                    "settings": {"url": "http://127.0.0.1:9/"}})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--analytics", choices=("duckdb", "clickhouse", "none"), default="duckdb")
    parser.add_argument("--db", help="a database URL (default: a SQLite file in a temporary folder)")
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--activation", action="store_true", help="an Entity Added activation on the audience")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        option = {"duckdb": f"duckdb:{folder}/analytic.duckdb"}.get(args.analytics, args.analytics)
        store = Store(args.db or f"sqlite:///{folder}/bench.db", clock=FrozenClock(NOW), analytics=option)
        space_id = spaces.create_space(store, "Bench").space.id
        counts, generate_s = timed(lambda: generate(store, space_id, Path(folder), args.profiles))
        print(f"generated {args.profiles} profiles and {counts} in {generate_s:.0f}s")
        settle(store)
        if args.analytics == "clickhouse":
            store.analytics = AnalyticStore(store, ClickHouse(Chdb(f"{folder}/chdb")))
            store.analytics.catch_up()
            _, load_s = timed(lambda: [clickhouse_load(store, name, Path(folder) / f"{name}.csv") for name in counts])
        else:
            warehouse = warehouse_of(store)
            _, load_s = timed(lambda: [warehouse.load(name, Path(folder) / f"{name}.csv") for name in counts])
            store.analytics = open_analytic_store(store, option)
            if store.analytics is not None:
                store.analytics.catch_up()
        data_graphs.update_data_graph(store, space_id, config_json=GRAPH)
        audience = audiences.create_audience(store, space_id, name="Shipped multi-line", audience_type="LINKED",
                                             query=DEFINITION)
        if args.activation:
            activate(store, space_id, audience.id)
        computation = computations.with_data_graph(store, computations.for_audience(audience))
        compiled, query_s = best_of(lambda: compiled_rows(store, computation))
        first, run_s = timed(lambda: runs.run(store, audience.id, reason="forced"))
        second, rerun_s = timed(lambda: runs.run(store, audience.id, reason="forced"))
        reference, reference_s = best_of(lambda: reference_rows(store))
        assert first.status == second.status == "COMPLETED", first.error
        assert {row[0] for row in compiled} == {row[0] for row in reference}, "the statement and the reference disagree"
        engine = first.engine
        if store.analytics is not None:
            store.analytics.close()
        store.close()
    figures = {"date": NOW.date().isoformat(),
               "machine": f"{platform.machine()}, {platform.python_version()}, DuckDB {duckdb.__version__}",
               "engine": engine, "profiles": args.profiles, "rows": counts, "members": first.size,
               "load_s": round(load_s, 2), "query_s": round(query_s, 3), "reference_s": round(reference_s, 3),
               "query_vs_reference": round(query_s / reference_s, 2), "run_s": round(run_s, 2),
               "rerun_s": round(rerun_s, 2), "activation": args.activation}
    publish("linked", figures, entry=f"{engine}:{args.profiles}{':activation' if args.activation else ''}")


if __name__ == "__main__":
    main()
