"""The agent references as MCP resources: listed, readable, pointed to by the tools, and every CQL and
FQL example in them accepted by the parsers exactly as an agent would copy it."""

import json
import re
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import Column, MetaData, Table

from backend import fql
from backend.cql import parse
from backend.cql.evaluate import EventRecord, ProfileData, is_member
from backend.cql.linked_checks import check_linked
from backend.datagraph.config import parse_hcl
from backend.datagraph.linked import ResolvedTable, resolve
from server.resources import CATALOG_URI, CQL_URI, DATA_GRAPH_URI, FQL_URI, REFERENCES
from store.catalog import definitions
from store.delivery import destination_catalog

pytestmark = pytest.mark.anyio


def examples(name: str, language: str) -> list[str]:
    text = (REFERENCES / name).read_text()
    blocks = re.findall(rf"```{language}\n(.*?)```", text, re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


async def test_the_references_and_the_catalog_are_listed_and_read(client):
    listed = {str(resource.uri): resource for resource in (await client.list_resources()).resources}
    assert set(listed) == {CQL_URI, FQL_URI, DATA_GRAPH_URI, CATALOG_URI}
    cql = (await client.read_resource(CQL_URI)).contents[0].text
    assert "## Reducers" in cql and "within_last" in cql and "## Limits" in cql
    fql_text = (await client.read_resource(FQL_URI)).contents[0].text
    assert "match(s, pattern)" in fql_text
    entries = json.loads((await client.read_resource(CATALOG_URI)).contents[0].text)["destinations"]
    assert [entry["slug"] for entry in entries] == [entry.slug for entry in destination_catalog.CATALOG]


async def test_the_tools_that_take_cql_fql_or_settings_point_to_their_reference(client):
    tools = {tool.name.removeprefix("segment_audiences_"): tool.description for tool in (await client.list_tools()).tools}
    assert CQL_URI in tools["create_audience"] and CQL_URI in tools["create_computed_trait"]
    assert FQL_URI in tools["create_filter_for_space"]
    assert CATALOG_URI in tools["create_destination"]
    schemas = {tool.name.removeprefix("segment_audiences_"): json.dumps(tool.input_schema)
               for tool in (await client.list_tools()).tools}
    assert DATA_GRAPH_URI in schemas["update_data_graph"]


@pytest.mark.parametrize("query", examples("cql.md", "cql-audience"))
def test_every_audience_example_is_a_valid_definition(query):
    definitions.check_definition(query, kind="audience", audience_type="USERS")


@pytest.mark.parametrize("query", examples("cql.md", "cql-accounts"))
def test_every_account_audience_example_is_a_valid_definition(query):
    definitions.check_definition(query, kind="audience", audience_type="ACCOUNTS")


def test_the_data_graph_example_is_a_valid_config_and_its_linked_examples_fit_it():
    [config] = re.findall(r"```hcl\n(.*?)```", (REFERENCES / "data-graph.md").read_text(), re.S)
    graph = parse_hcl(config)
    columns = {"accounts": ["ACCOUNT_ID", "OWNER_EMAIL", "TIER"], "orders": ["ORDER_ID", "ACCOUNT_ID", "TOTAL"],
               "products": ["SKU", "TITLE"], "order_lines": ["LINE_ID", "ORDER_ID", "SKU"]}

    def table_of(ref):
        families = {name.lower(): (name, "number" if name == "TOTAL" else "string") for name in columns[ref]}
        return ResolvedTable(Table(ref, MetaData(), *(Column(name) for name in columns[ref])), families)

    linked = resolve(graph, table_of)
    queries = examples("data-graph.md", "cql-linked")
    assert len(queries) == 3
    for query in queries:
        definitions.check_definition(query, kind="audience", audience_type="LINKED")
        check_linked(parse(query), linked)


def test_the_cql_reference_shows_funnels_parent_references_and_between():
    audiences = examples("cql.md", "cql-audience")
    assert any("within(parent:" in query for query in audiences)
    assert any("property(parent:" in query for query in audiences)
    assert any(".between(" in query for query in audiences)
    assert examples("cql.md", "cql-accounts")


def test_the_funnel_examples_mean_what_the_reference_says():
    """Who added a product and ordered within a day is in the first funnel; who added and did not
    order within a day (ordering later counts not) is in the second; the third needs the returned sku
    to be the bought one."""
    ordered, then_not, same_sku = [q for q in examples("cql.md", "cql-audience") if "parent:" in q]
    now = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)

    def at(name, days, **properties):
        return EventRecord(name, now - timedelta(days=days), properties, {}, "web")

    quick = ProfileData(events=[at("Product Added", 3), at("Order Completed", 2.5)])
    late = ProfileData(events=[at("Product Added", 3), at("Order Completed", 1)])
    assert [is_member(parse(ordered), p, now) for p in (quick, late)] == [True, False]
    assert [is_member(parse(then_not), p, now) for p in (quick, late)] == [False, True]
    returned = [at("Shoes Bought", 4, sku="A"), at("Shoes Returned", 2, sku="A")]
    other = [at("Shoes Bought", 4, sku="A"), at("Shoes Returned", 2, sku="B")]
    assert [is_member(parse(same_sku), ProfileData(events=e), now) for e in (returned, other)] == [True, False]


@pytest.mark.parametrize("query", examples("cql.md", "cql-trait"))
def test_every_computed_trait_example_is_a_valid_definition(query):
    definitions.check_definition(query, kind="computed_trait", audience_type="USERS")


@pytest.mark.parametrize("condition", examples("fql.md", "fql"))
def test_every_fql_example_parses(condition):
    fql.parse(condition)
