"""`--toolsets` limits the tools a server offers to the groups a task needs; `--read-only` still
applies within them."""

import subprocess
import sys

import pytest
from mcp import Client

from server.app import build_server
from tools import TOOLS, TOOLSETS, UnknownToolset, toolsets_from

pytestmark = pytest.mark.anyio


async def names_offered(store, **options) -> set[str]:
    async with Client(build_server(store, **options), mode="legacy") as client:
        return {tool.name for tool in (await client.list_tools()).tools}


def short(names: set[str]) -> set[str]:
    return {name.removeprefix("segment_audiences_") for name in names}


async def test_the_default_is_every_tool(store):
    assert await names_offered(store) == {spec.name for spec in TOOLS}
    assert toolsets_from("all") is None and toolsets_from("") is None and toolsets_from(None) is None


async def test_chosen_toolsets_offer_only_their_tools(store):
    offered = short(await names_offered(store, toolsets=toolsets_from("audiences, compute")))
    assert offered == short({spec.name for spec in [*TOOLSETS["audiences"], *TOOLSETS["compute"]]})
    assert "create_audience" in offered and "force_execute_audience_run" in offered
    assert "create_destination" not in offered and "list_spaces" not in offered


async def test_read_only_applies_within_the_chosen_toolsets(store):
    offered = short(await names_offered(store, toolsets={"destinations"}, read_only=True))
    assert offered == {"list_destinations", "get_destination", "list_supported_destinations_from_audience",
                       "list_destinations_from_audience"}


def test_every_tool_is_in_exactly_one_toolset():
    names = [spec.name for group in TOOLSETS.values() for spec in group]
    assert len(names) == len(set(names)) == 71
    assert set(TOOLSETS) == {"spaces", "audiences", "schedules", "computed-traits", "destinations", "activations",
                             "filters", "subscriptions", "compute", "downloads", "profiles", "schema", "data-graph", "insights",
                             "splits", "priority-lists", "alerts"}


def test_an_unknown_toolset_is_refused_with_the_valid_names(tmp_path):
    with pytest.raises(UnknownToolset, match="audience.*choose from all, spaces, audiences"):
        toolsets_from("audience")
    done = subprocess.run([sys.executable, "-m", "server", "serve", "--db", str(tmp_path / "t.db"),
                           "--toolsets", "audience"], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and "unknown toolset(s) audience" in done.stderr
