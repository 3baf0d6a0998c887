"""Assembles the MCP server: the tools bound to a store, and errors in the Public API envelope."""

import logging
from collections.abc import Collection
from typing import Any

import pydantic_core
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import GetPromptResult, Prompt
from pydantic import ValidationError

from server import log_relay, progress, prompts
from server.resources import download_resources, register_resources
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
destination catalog (segment-audiences://catalog/destinations). Before writing event('…') or trait('…'),
segment_audiences_list_events and segment_audiences_list_traits show what the space has; prompts
give the tool calls of common jobs (prompts/list)."""


class AudienceServer(MCPServer):
    """An `MCPServer` whose every failed call answers with the `{"errors": [...]}` envelope, and
    which refuses argument names its tools do not know (see `tools.strict`), reports progress
    while a waiting tool runs (see `server.progress`), lists the store's live downloads among its
    resources, and offers the recipes of `server.prompts` as prompts, with completion."""

    def __init__(self, store: Store, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.store = store

        @self.completion()
        async def complete(ref, argument, context):
            return prompts.complete(self.store, ref, argument, context)

        log_relay.install(self._lowlevel_server)

    async def list_resources(self) -> list[Any]:
        return [*await super().list_resources(), *download_resources(self.store)]

    async def list_prompts(self) -> list[Prompt]:
        return [Prompt.model_validate(entry) for entry in prompts.listing()]

    async def get_prompt(self, name: str, arguments: dict[str, Any] | None = None,
                         context: Context | None = None) -> GetPromptResult:
        description, messages = prompts.render(self.store, name, arguments)
        return GetPromptResult(description=description, messages=pydantic_core.to_jsonable_python(messages))

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
    server = AudienceServer(store, "segment-audiences", version="0.1.0", instructions=INSTRUCTIONS)
    register_tools(server, store, read_only=read_only, toolsets=toolsets)
    register_resources(server, store)
    return server
