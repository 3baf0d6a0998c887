"""Customer insights: download an audience's members or a computed trait's values at a past hour.
The result links the file two ways: its HTTP (or file) URL, and an MCP resource an agent can read."""

from typing import Annotated, Literal

from mcp.types import ResourceLink
from pydantic import BaseModel, Field

from store.compute import downloads
from store.db.store import Store
from tools.registry import Linked, write

DOWNLOAD_URI = "segment-audiences://spaces/{spaceId}/downloads/{id}"


class Download(BaseModel):
    urls: list[str]


class DownloadOutput(Linked):
    download: Download


def create_download(
    store: Store,
    collectionId: Annotated[str, Field(min_length=1, max_length=255,
                                       description="Audience (aud_…) or computed trait (tra_…) id.")],
    hour: Annotated[str, Field(description="ISO-8601 hour, e.g. 2025-05-07T23:00:00Z; "
                                           "the last 30 days are kept.")],
    format: Annotated[Literal["unformatted", "formatted", "single_column"], Field(
        description="Extra. unformatted: key, [value,] external_ids JSON; formatted: a column per id; "
                    "single_column: one id type, a row per value.")] = "unformatted",
    externalIdType: Annotated[str, Field(min_length=1, max_length=100,
                                         description="Extra. For single_column.")] = "email",
    hashed: Annotated[bool, Field(description="Extra. single_column values as "
                                              "uppercase SHA-256 hex.")] = True,
) -> DownloadOutput:
    """Export, as CSV, the members of an audience or the values of a computed trait at the end of an
    hour. Returns {download: {urls}}: this server's links, valid for an hour (file URLs without
    HTTP), and a resource_link to read the same CSV with resources/read."""
    written = downloads.create_download(store, collectionId, hour, format, externalIdType, hashed)
    return DownloadOutput(download=Download(urls=written.urls)).with_links([download_link(written)])


def download_uri(space_id: str, token: str) -> str:
    return DOWNLOAD_URI.format(spaceId=space_id, id=token)


def download_link(written: downloads.Written) -> ResourceLink:
    """The MCP resource of a download, as a tool result or resources/list shows it."""
    return ResourceLink(type="resource_link", uri=download_uri(written.space_id, written.token), name=written.name,
                        title=f"{written.name} ({written.rows} rows)", mime_type="text/csv", size=written.size,
                        description="CSV download; readable until it expires, an hour after it was made.")


TOOLS = [write("create_download", "Create download", create_download)]
