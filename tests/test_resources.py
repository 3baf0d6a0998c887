"""The agent references as MCP resources: listed, readable, pointed to by the tools, and every CQL and
FQL example in them accepted by the parsers exactly as an agent would copy it."""

import json
import re

import pytest

from backend import fql
from server.resources import CATALOG_URI, CQL_URI, FQL_URI, REFERENCES
from store.catalog import definitions
from store.delivery import destination_catalog

pytestmark = pytest.mark.anyio


def examples(name: str, language: str) -> list[str]:
    text = (REFERENCES / name).read_text()
    blocks = re.findall(rf"```{language}\n(.*?)```", text, re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


async def test_the_references_and_the_catalog_are_listed_and_read(client):
    listed = {str(resource.uri): resource for resource in (await client.list_resources()).resources}
    assert set(listed) == {CQL_URI, FQL_URI, CATALOG_URI}
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


@pytest.mark.parametrize("query", examples("cql.md", "cql-audience"))
def test_every_audience_example_is_a_valid_definition(query):
    definitions.check_definition(query, kind="audience", audience_type="USERS")


@pytest.mark.parametrize("query", examples("cql.md", "cql-trait"))
def test_every_computed_trait_example_is_a_valid_definition(query):
    definitions.check_definition(query, kind="computed_trait", audience_type="USERS")


@pytest.mark.parametrize("condition", examples("fql.md", "fql"))
def test_every_fql_example_parses(condition):
    fql.parse(condition)
