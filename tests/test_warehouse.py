"""The warehouse's entity tables: loaded from CSV, Parquet and JSON lines with their types inferred,
replaced or appended, listed and dropped, on the DuckDB file and on the operational database's own
schema; and a load in another process never shows a statement half a table."""

import subprocess
import sys

import duckdb
import pytest

from server.cli import main
from store.db.errors import InputValidation, NotFound
from store.db.store import Store
from store.warehouse.location import warehouse_of
from store.warehouse.warehouses import SCHEMA
from tests.databases import database_url


@pytest.fixture(params=["duckdb", "none"])
def store(request, tmp_path):
    option = f"duckdb:{tmp_path / 'analytic.duckdb'}" if request.param == "duckdb" else "none"
    store = Store(database_url(tmp_path), analytics=option)
    yield store
    store.close()


def test_files_load_with_their_types_inferred_and_replace_or_append(store, tmp_path):
    (tmp_path / "orders.csv").write_text("ORDER_ID,TOTAL,PLACED,GIFT\no1,10.5,2026-01-02,true\no2,3,2026-02-03,false\n")
    duckdb.sql("SELECT 's1' AS SKU, 30 AS PRICE").write_parquet(str(tmp_path / "products.parquet"))
    (tmp_path / "lines.jsonl").write_text('{"LINE_ID": "l1", "QTY": 2}\n{"LINE_ID": "l2", "QTY": null}\n')
    warehouse = warehouse_of(store)

    orders = warehouse.load("orders", tmp_path / "orders.csv")
    products = warehouse.load("products", tmp_path / "products.parquet")
    lines = warehouse.load("lines", tmp_path / "lines.jsonl")
    appended = warehouse.load("lines", tmp_path / "lines.jsonl", append=True)
    replaced = warehouse.load("lines", tmp_path / "lines.jsonl")

    assert [c.family for c in orders.columns] == ["string", "number", "date", "boolean"] and orders.rows == 2
    assert [(c.name, c.family) for c in products.columns] == [("SKU", "string"), ("PRICE", "number")]
    assert (lines.rows, appended.rows, replaced.rows) == (2, 4, 2)
    assert [(t.name, t.rows) for t in warehouse.tables()] == [("lines", 2), ("orders", 2), ("products", 1)]
    assert warehouse.describe("ORDERS").name == "orders" and warehouse.describe("nothing") is None
    warehouse.drop("products")
    assert [t.name for t in warehouse.tables()] == ["lines", "orders"]


def test_a_bad_file_or_table_name_is_refused_saying_what_is_taken(store, tmp_path):
    (tmp_path / "orders.xlsx").write_text("x")
    warehouse = warehouse_of(store)
    with pytest.raises(InputValidation, match=r"\.csv, \.tsv, \.parquet"):
        warehouse.load("orders", tmp_path / "orders.xlsx")
    with pytest.raises(InputValidation, match="no file at"):
        warehouse.load("orders", tmp_path / "missing.csv")
    with pytest.raises(InputValidation, match="not a table name"):
        warehouse.load("drop table;", tmp_path / "orders.xlsx")
    with pytest.raises(NotFound):
        warehouse.drop("orders")


def test_the_cli_loads_lists_and_drops(tmp_path, capsys):
    (tmp_path / "orders.csv").write_text("ORDER_ID,TOTAL\no1,1\n")
    db = ["--db", database_url(tmp_path)]
    assert main([*db, "warehouse", "load", "--table", "orders", str(tmp_path / "orders.csv")]) == 0
    assert main([*db, "warehouse", "tables"]) == 0
    assert main([*db, "warehouse", "drop", "--table", "orders"]) == 0
    assert main([*db, "warehouse", "drop", "--table", "orders"]) == 2
    out = capsys.readouterr().out
    assert "orders: 1 rows, 2 columns" in out and "orders\t1 rows\tORDER_ID" in out and "dropped orders" in out


def test_a_load_waits_for_a_statement_reading_the_duckdb_file_which_sees_the_table_whole(tmp_path):
    store = Store(database_url(tmp_path), analytics=f"duckdb:{tmp_path / 'analytic.duckdb'}")
    (tmp_path / "orders.csv").write_text("ORDER_ID\no1\n")
    (tmp_path / "more.csv").write_text("ORDER_ID\n" + "".join(f"n{i}\n" for i in range(1000)))
    warehouse = warehouse_of(store)
    warehouse.load("orders", tmp_path / "orders.csv")
    reader = duckdb.connect(str(tmp_path / "reader.duckdb"))
    with warehouse.attached(reader):
        loading = subprocess.Popen([sys.executable, "-m", "server", "--db", store.url, "warehouse", "load",
                                    "--analytics", store.analytics_option, "--table", "orders", str(tmp_path / "more.csv")],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        seen = reader.execute(f"SELECT count(*) FROM {SCHEMA}.main.orders").fetchone()[0]
        still_waiting = loading.poll() is None
    assert loading.wait(timeout=120) == 0, loading.stderr.read().decode()
    with warehouse.attached(reader):
        after = reader.execute(f"SELECT count(*) FROM {SCHEMA}.main.orders").fetchone()[0]
    assert (seen, still_waiting, after) == (1, True, 1000)
    reader.close()
    store.close()
