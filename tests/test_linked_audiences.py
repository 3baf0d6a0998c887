"""LINKED audiences through MCP, on the embedded DuckDB warehouse and on the operational database's
own (`--analytics none`): entity tables loaded from files by the CLI, a Data Graph set in HCL and read
back with its counts, the Space Schema entity tools answering from it, and an audience two levels
deep, with a trait comparison, computed from the warehouse."""

import pytest

from backend.clock import FrozenClock
from server.app import build_server
from server.cli import main
from store.analytic.store import open_analytic_store
from store.catalog import spaces
from store.db.store import Store
from tests.conftest import NOW, Caller
from tests.databases import database_url
from tests.ingest_helpers import send

from mcp import Client

pytestmark = pytest.mark.anyio

GRAPH = """
data_graph {
  version = "v1.0.0"

  entity "account" {
    name        = "Account"
    table_ref   = "accounts"
    primary_key = "ACCOUNT_ID"
  }

  entity "order" {
    name        = "Order"
    table_ref   = "orders"
    primary_key = "ORDER_ID"
  }

  entity "product" {
    name        = "Product"
    table_ref   = "products"
    primary_key = "SKU"
  }

  profile {
    profile_folder = "ANALYTICS.SEGMENT_PROFILES"
    type           = "segment:materialized"

    # level 2: the profile's accounts, by email
    relationship "accounts" {
      name           = "Accounts"
      related_entity = "account"
      external_id {
        type     = "email"
        join_key = "OWNER_EMAIL"
      }

      relationship "orders" {
        name           = "Orders"
        related_entity = "order"
        join_on        = "account.ACCOUNT_ID = order.ACCOUNT_ID"

        relationship "order-products" {
          name           = "Products ordered"
          related_entity = "product"
          junction_table {
            table_ref     = "order_lines"
            primary_key   = "LINE_ID"
            left_join_on  = "order.ORDER_ID = ORDER_ID"
            right_join_on = "SKU = product.SKU"
          }
        }
      }
    }
  }
}
"""
TABLES = {
    "accounts.csv": "ACCOUNT_ID,OWNER_EMAIL,TIER\na1,ada@example.com,gold\na2,bob@example.com,silver\n"
                    "a3,nobody@example.com,gold\n",
    "orders.csv": "ORDER_ID,ACCOUNT_ID,TOTAL,STATUS\no1,a1,120.5,shipped\no2,a1,15,open\no3,a2,40,shipped\n",
    "products.jsonl": '{"SKU": "s1", "TITLE": "Trail shoe", "PRICE": 90}\n{"SKU": "s2", "TITLE": "Hat", "PRICE": 12}\n',
    "order_lines.csv": "LINE_ID,ORDER_ID,SKU\nl1,o1,s1\nl2,o3,s2\n",
}
BIG_SPENDERS = ("entity('accounts').where(entity('orders').where(property('TOTAL') > trait('min_total') "
                "AND entity('order-products').count() >= 1).count() >= 1).count() >= 1")


@pytest.fixture(params=["duckdb", "none"])
def linked(request, tmp_path):
    """A store whose warehouse is DuckDB's (the analytic store's process) or the operational
    database's, a space with three identified profiles, and the entity tables loaded by the CLI."""
    option = f"duckdb:{tmp_path / 'analytic.duckdb'}" if request.param == "duckdb" else "none"
    url = database_url(tmp_path)
    store = Store(url, clock=FrozenClock(NOW), actor="tester", analytics=option)
    store.analytics = open_analytic_store(store, option)
    space_id = spaces.create_space(store, "Shop").space.id
    send(store, space_id,
         {"type": "identify", "userId": "ada", "traits": {"email": "ada@example.com", "min_total": 100}},
         {"type": "identify", "userId": "bob", "traits": {"email": "bob@example.com", "min_total": 10}},
         {"type": "identify", "userId": "cy", "traits": {"email": "cy@example.com", "min_total": 0}})
    if store.analytics is not None:
        store.analytics.catch_up()
    for name, content in TABLES.items():
        path = tmp_path / name
        path.write_text(content)
        assert main(["--db", url, "warehouse", "load", "--analytics", option, "--table", path.stem, str(path)]) == 0
    yield store, space_id, url, option
    if store.analytics is not None:
        store.analytics.close()
    store.close()


@pytest.fixture
async def call(linked):
    store = linked[0]
    async with Client(build_server(store), mode="legacy") as client:
        yield Caller(client)


async def test_a_data_graph_in_hcl_is_read_back_with_its_counts(call, linked):
    _, space_id, _, _ = linked
    updated = await call.ok("update_data_graph", spaceId=space_id, config=GRAPH)
    shown = await call.ok("get_data_graph", spaceId=space_id)

    assert updated["dataGraph"]["version"] == 1 and shown["dataGraph"]["config"] == GRAPH
    assert [(r["relationshipSlug"], r["level"], r["parentRelationshipSlugPath"], r["rowCount"], r["matchCount"])
            for r in shown["dataGraph"]["relationships"]] == [
        ("accounts", 2, "", 3, 2), ("orders", 3, "accounts", 3, 3), ("order-products", 4, "accounts:orders", 2, 2)]
    again = await call.ok("update_data_graph", spaceId=space_id, config=GRAPH)
    assert again["dataGraph"]["version"] == 2


async def test_the_space_schema_entity_tools_answer_from_the_graph(call, linked):
    _, space_id, _, _ = linked
    await call.ok("update_data_graph", spaceId=space_id, config=GRAPH)

    paths = await call.ok("list_entity_paths", spaceId=space_id)
    columns = await call.ok("list_properties_from_entity", spaceId=space_id, entitySlug="order",
                            includeSampleValues=True, samplesCount=2)
    samples = await call.ok("list_sample_values_from_entity_property", spaceId=space_id, entitySlug="order",
                            propertyName="status")

    assert [(p["entitySlug"], p["pathName"], p["relationshipSlugs"], p["childRelationshipSlugs"])
            for p in paths["entityPaths"]] == [
        ("account", "Accounts", ["accounts"], ["orders"]),
        ("order", "Accounts → Orders", ["accounts", "orders"], ["order-products"]),
        ("product", "Accounts → Orders → Products ordered", ["accounts", "orders", "order-products"], [])]
    assert [(c["name"], c["primaryKey"], c["dataType"]) for c in columns["entityProperties"]] == [
        ("ORDER_ID", True, "STRING"), ("ACCOUNT_ID", False, "STRING"), ("TOTAL", False, "NUMBER"),
        ("STATUS", False, "STRING")]
    assert columns["entityProperties"][3]["samples"] == ["shipped", "open"]
    assert samples["sampleValues"] == ["shipped", "open"]


async def test_a_linked_audience_two_levels_deep_with_a_trait_comparison_is_computed_from_the_warehouse(call, linked):
    store, space_id, _, _ = linked
    await call.ok("update_data_graph", spaceId=space_id, config=GRAPH)

    created = await call.ok("create_audience", spaceId=space_id, audienceType="LINKED", name="Big spenders",
                            definition={"query": BIG_SPENDERS})
    run = await call.ok("force_execute_audience_run", spaceId=space_id, audienceId=created["audience"]["id"])

    assert run["run"]["status"] == "COMPLETED", run
    assert run["run"]["size"] == 2  # ada: o1 (120.5 > 100, one product); bob: o3 (40 > 10, one product)
    assert run["run"]["engine"] == ("duckdb" if store.analytics is not None else store.engine.dialect.name)


async def test_a_graph_change_that_would_break_an_audience_is_refused_with_its_name(call, linked):
    _, space_id, _, _ = linked
    await call.ok("update_data_graph", spaceId=space_id, config=GRAPH)
    created = await call.ok("create_audience", spaceId=space_id, audienceType="LINKED", name="Big spenders",
                            definition={"query": BIG_SPENDERS})
    without_products = GRAPH[:GRAPH.index('        relationship "order-products"')] + "      }\n    }\n  }\n}\n"

    refused = await call.error("update_data_graph", spaceId=space_id, config=without_products)
    retargeted = await call.ok("update_data_graph", spaceId=space_id,
                               config=GRAPH.replace('table_ref   = "orders"', 'table_ref   = "ORDERS"'))

    assert refused["type"] == "conflict" and "'Big spenders'" in refused["message"]
    assert created["audience"]["id"] in refused["message"] and "order-products" in refused["message"]
    assert "Big spenders" in retargeted["warnings"][0] and "ORDERS" in retargeted["warnings"][0]


@pytest.mark.parametrize(("change", "field", "words"), [
    ('table_ref   = "orders"', "entity.order.table_ref", "is not a table in the warehouse"),
    ('primary_key = "SKU"', "entity.product.primary_key", "is not a column of table products"),
    ('join_on        = "account.ACCOUNT_ID = order.ACCOUNT_ID"', "relationship.orders.join_on", "is not a column"),
    ('join_key = "OWNER_EMAIL"', "relationship.accounts.external_id.join_key", "is not a column"),
])
async def test_a_graph_that_does_not_fit_the_warehouse_names_the_block_and_field(call, linked, change, field, words):
    _, space_id, _, _ = linked
    broken = GRAPH.replace(change, change.replace('"orders"', '"missing"').replace('"SKU"', '"CODE"').replace(
        "order.ACCOUNT_ID", "order.ACCOUNT").replace('"OWNER_EMAIL"', '"EMAIL"'))

    error = await call.error("update_data_graph", spaceId=space_id, config=broken)

    assert error["type"] == "input-validation" and error["field"] == field and words in error["message"], error


async def test_a_definition_that_does_not_fit_the_graph_is_refused_naming_both_types(call, linked):
    _, space_id, _, _ = linked
    await call.ok("update_data_graph", spaceId=space_id, config=GRAPH)

    wrong_type = await call.error("create_audience", spaceId=space_id, audienceType="LINKED", name="Wrong",
                                  definition={"query": "entity('accounts').where(entity('orders').where("
                                                       "property('TOTAL') = 'big').count() >= 1).count() >= 1"})
    users = await call.error("create_audience", spaceId=space_id, audienceType="USERS", name="Users",
                             definition={"query": "entity('accounts').count() >= 1"})

    assert wrong_type["type"] == "input-validation" and "'TOTAL' is a number, and 'big' is a string" in wrong_type["message"]
    assert users["type"] == "input-validation" and "only valid in LINKED audiences" in users["message"]


async def test_a_breakdown_sizes_a_linked_definitions_blocks_where_its_warehouse_is(call, linked):
    _, space_id, _, _ = linked
    await call.ok("update_data_graph", spaceId=space_id, config=GRAPH)
    created = (await call.ok("create_audience", spaceId=space_id, audienceType="LINKED", name="Big spenders",
                             definition={"query": f"{BIG_SPENDERS} AND trait('min_total') >= 1"}))["audience"]
    await call.ok("force_execute_audience_run", spaceId=space_id, audienceId=created["id"])

    found = (await call.ok("get_audience_breakdown", spaceId=space_id, id=created["id"],
                           traitKey="min_total"))["breakdown"]

    assert found["members"] == 2 and {v["value"]: v["count"] for v in found["values"]} == {100: 1, 10: 1}
    assert found["operator"] == "AND"
    assert [(b["query"], b["size"]) for b in found["blocks"]] == [(BIG_SPENDERS, 2), ("trait('min_total') >= 1", 2)]
