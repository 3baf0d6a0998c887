"""Customer insights: download an audience's members or a computed trait's values at a past hour."""

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from store.compute import downloads
from store.db.store import Store
from tools.registry import write


class Download(BaseModel):
    urls: list[str]


class DownloadOutput(BaseModel):
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
    HTTP)."""
    return DownloadOutput(download=Download(urls=downloads.create_download(
        store, collectionId, hour, format, externalIdType, hashed)))


TOOLS = [write("create_download", "Create download", create_download)]
