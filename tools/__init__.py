"""The MCP tools, one module per resource group. `TOOLSETS` names the groups a server can be limited
to (as github-mcp-server's `--toolsets` does), so an agent's host loads only what a task needs;
`TOOLS` lists every tool this server offers."""

from collections.abc import Collection

from mcp.server.mcpserver import MCPServer

from store.db.store import Store
from tools import (
    activations,
    alerts,
    audiences,
    compute,
    computed_traits,
    data_graph,
    destination_instances,
    destinations,
    downloads,
    filters,
    insights,
    priority_lists,
    profiles,
    schedules,
    space_schema,
    spaces,
    splits,
    subscriptions,
)
from tools.registry import ToolSpec, register

TOOLSETS: dict[str, list[ToolSpec]] = {
    "spaces": spaces.TOOLS,
    "audiences": audiences.TOOLS,
    "compute": compute.TOOLS,
    "schedules": schedules.TOOLS,
    "computed-traits": computed_traits.TOOLS,
    "destinations": [*destination_instances.TOOLS, *destinations.TOOLS],
    "activations": activations.TOOLS,
    "subscriptions": subscriptions.TOOLS,
    "filters": filters.TOOLS,
    "downloads": downloads.TOOLS,
    "profiles": profiles.TOOLS,
    "schema": space_schema.TOOLS,
    "data-graph": data_graph.TOOLS,
    "insights": insights.TOOLS,
    "splits": splits.TOOLS,
    "priority-lists": priority_lists.TOOLS,
    "alerts": alerts.TOOLS,
}
TOOLS: list[ToolSpec] = [spec for group in TOOLSETS.values() for spec in group]


class UnknownToolset(ValueError):
    """A toolset name that is not one of `TOOLSETS`."""


def toolsets_from(text: str | None) -> set[str] | None:
    """Toolset names from a comma-separated list (`all`, empty or None: every group)."""
    names = {name.strip().lower() for name in (text or "").split(",") if name.strip()}
    if not names or "all" in names:
        return None
    unknown = sorted(names - TOOLSETS.keys())
    if unknown:
        raise UnknownToolset(f"unknown toolset(s) {', '.join(unknown)}; choose from all, {', '.join(TOOLSETS)}")
    return names


def register_tools(server: MCPServer, store: Store, *, read_only: bool = False,
                   toolsets: Collection[str] | None = None) -> None:
    """Register the tools of `toolsets` (default all), and with `read_only` only those whose
    readOnlyHint is true."""
    chosen = [spec for name, group in TOOLSETS.items() if toolsets is None or name in toolsets for spec in group]
    register(server, store, [spec for spec in chosen if spec.read_only or not read_only])
