"""Agent references as MCP resources: the CQL and FQL references (in this project's words, with
examples the test suite checks) and the destination catalog, so an agent can read how to write a
definition or a filter, and what each destination takes, before it calls a tool."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from mcp.server.mcpserver import MCPServer

from store.delivery import destination_catalog

REFERENCES = Path(__file__).with_name("references")
CQL_URI = "segment-audiences://reference/cql"
FQL_URI = "segment-audiences://reference/fql"
CATALOG_URI = "segment-audiences://catalog/destinations"


def register_resources(server: MCPServer) -> None:
    def markdown(name: str):
        return lambda: (REFERENCES / name).read_text(encoding="utf-8")

    server.resource(CQL_URI, name="cql-reference", title="CQL reference", mime_type="text/markdown",
                    description="How to write audience and computed trait definitions: grammar, every function "
                    "with an example, semantics and limits.")(markdown("cql.md"))
    server.resource(FQL_URI, name="fql-reference", title="FQL reference", mime_type="text/markdown",
                    description="How to write space filter conditions: operators, functions, glob rules, "
                    "examples and limits.")(markdown("fql.md"))
    server.resource(CATALOG_URI, name="destination-catalog", title="Destination catalog", mime_type="application/json",
                    description="Every destination type: settings (which are secret), connection settings, "
                    "actions and their fields, which calls it accepts, and its rate limits.")(catalog_resource)


def catalog_resource() -> dict:
    return {"destinations": [asdict(entry) for entry in destination_catalog.CATALOG]}
