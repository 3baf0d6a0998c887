"""The MCP tools, one module per resource group; `TOOLS` lists every tool this server offers."""

from mcp.server.mcpserver import MCPServer

from store.store import Store
from tools import (
    activations,
    audiences,
    compute,
    computed_traits,
    destination_instances,
    destinations,
    downloads,
    filters,
    schedules,
    spaces,
    subscriptions,
)
from tools.registry import ToolSpec, register

TOOLS: list[ToolSpec] = [
    *spaces.TOOLS,
    *audiences.TOOLS,
    *compute.TOOLS,
    *schedules.TOOLS,
    *computed_traits.TOOLS,
    *destination_instances.TOOLS,
    *destinations.TOOLS,
    *activations.TOOLS,
    *subscriptions.TOOLS,
    *filters.TOOLS,
    *downloads.TOOLS,
]


def register_tools(server: MCPServer, store: Store, *, read_only: bool = False) -> None:
    """Register every tool, or with `read_only` only those whose readOnlyHint is true."""
    register(server, store, [spec for spec in TOOLS if spec.read_only or not read_only])
