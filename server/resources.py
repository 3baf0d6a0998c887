"""MCP resources: the CQL, FQL and Data Graph references (in this project's words, with examples the test
suite checks) and the destination catalog, so an agent can read how to write a definition or a
filter, and what each destination takes, before it calls a tool; and each download while it lives,
so an agent can read the CSV it asked for without opening an HTTP link."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError
from mcp.types import Resource

from store.compute import downloads
from store.db.store import Store
from store.delivery import destination_catalog
from tools.downloads import DOWNLOAD_URI, download_link

REFERENCES = Path(__file__).with_name("references")
CQL_URI = "segment-audiences://reference/cql"
FQL_URI = "segment-audiences://reference/fql"
DATA_GRAPH_URI = "segment-audiences://reference/data-graph"
CATALOG_URI = "segment-audiences://catalog/destinations"
TEXT_LIMIT = 1024 * 1024  # a larger CSV is read as a blob


def register_resources(server: MCPServer, store: Store) -> None:
    def markdown(name: str):
        return lambda: (REFERENCES / name).read_text(encoding="utf-8")

    server.resource(CQL_URI, name="cql-reference", title="CQL reference", mime_type="text/markdown",
                    description="How to write audience and computed trait definitions: grammar, every function "
                    "with an example, semantics and limits.")(markdown("cql.md"))
    server.resource(FQL_URI, name="fql-reference", title="FQL reference", mime_type="text/markdown",
                    description="How to write space filter conditions: operators, functions, glob rules, "
                    "examples and limits.")(markdown("fql.md"))
    server.resource(DATA_GRAPH_URI, name="data-graph-reference", title="Data Graph reference", mime_type="text/markdown",
                    description="LINKED audiences: loading entity tables, the Data Graph config with an example, "
                    "and entity() in CQL.")(markdown("data-graph.md"))
    server.resource(CATALOG_URI, name="destination-catalog", title="Destination catalog", mime_type="application/json",
                    description="Every destination type: settings (which are secret), connection settings, "
                    "actions and their fields, which calls it accepts, and its rate limits.")(catalog_resource)

    @server.resource(DOWNLOAD_URI, name="download", title="CSV download", mime_type="text/csv",
                     description="A file segment_audiences_create_download wrote, while it lives (an hour): "
                     "text, or a blob when larger than 1 MiB.")
    def read_download(spaceId: str, id: str) -> str | bytes:
        path = downloads.find_file(store, id, spaceId)
        if path is None:
            raise ResourceNotFoundError("This download is unknown or has expired; call "
                                        "segment_audiences_create_download again.")
        content = path.read_bytes()
        return content.decode("utf-8") if len(content) <= TEXT_LIMIT else content


def download_resources(store: Store) -> list[Resource]:
    """The downloads that can be read now, as resources/list shows them."""
    return [Resource(**download_link(written).model_dump(exclude={"type"})) for written in downloads.live_downloads(store)]


def catalog_resource() -> dict:
    return {"destinations": [asdict(entry) for entry in destination_catalog.CATALOG]}
