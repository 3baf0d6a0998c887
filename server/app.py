"""Assembles the MCP server: the tools bound to a store, and errors in the Public API envelope."""

import logging
from collections.abc import Collection
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import ValidationError

from server import progress
from server.resources import register_resources
from store.db.store import Store
from tools import register_tools
from tools.registry import argument_errors, failure
from tools.strict import nul_characters, refused_arguments

logger = logging.getLogger("segment_audiences")

INSTRUCTIONS = """\
segment-audiences computes Segment Engage audiences and computed traits from the events it ingests.
Start with segment_audiences_list_spaces to find a spaceId (spa_…). Create audiences with CQL, e.g.
event('Order Completed').within(30 days).count() >= 3, or computed traits, then create a destination
instance (segment_audiences_create_destination), connect it to the audience or computed trait
(segment_audiences_add_destination_to_audience) and add an activation. Errors come back as
{"errors": [{"type", "message", "field"}]} and say what to change. Resources: the CQL reference
(segment-audiences://reference/cql), the FQL reference (segment-audiences://reference/fql) and the
destination catalog (segment-audiences://catalog/destinations)."""


class AudienceServer(MCPServer):
    """An `MCPServer` whose every failed call answers with the `{"errors": [...]}` envelope, and
    which refuses argument names its tools do not know (see `tools.strict`) and reports progress
    while a waiting tool runs (see `server.progress`)."""

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Context | None = None) -> Any:
        tool = self._tool_manager.get_tool(name)
        refused = [*refused_arguments(tool.parameters, arguments or {}), *nul_characters(arguments or {})] if tool else []
        if refused:
            return failure(refused)
        try:
            return await progress.reporting(name, arguments, context,
                                            lambda: super(AudienceServer, self).call_tool(name, arguments, context))
        except ToolError as error:
            cause = error.__cause__
            if isinstance(cause, ValidationError):
                return failure(argument_errors(cause))
            if tool is None:
                return failure([{"type": "not-found", "message": f"Unknown tool '{name}'; call tools/list.", "field": "name"}])
            logger.exception("tool %s failed", name)
            return failure([_internal(name)])


def _internal(name: str) -> dict[str, Any]:
    return {
        "type": "internal",
        "message": f"{name} failed unexpectedly; nothing was changed. Retry, and report it if it persists.",
    }


def build_server(store: Store, *, read_only: bool = False, toolsets: Collection[str] | None = None) -> AudienceServer:
    server = AudienceServer("segment-audiences", version="0.1.0", instructions=INSTRUCTIONS)
    register_tools(server, store, read_only=read_only, toolsets=toolsets)
    register_resources(server)
    return server
