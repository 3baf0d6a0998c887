"""Customer insights: download an audience's members or a computed trait's values at a past hour."""

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from store import downloads
from store.store import Store
from tools.registry import write


class Download(BaseModel):
    urls: list[str]


class DownloadOutput(BaseModel):
    download: Download


def create_download(
    store: Store,
    collectionId: Annotated[str, Field(min_length=1, max_length=255,
                                       description="An audience id (aud_…) or a computed trait id (tra_…).")],
    hour: Annotated[str, Field(description="The ISO-8601 hour to export, e.g. 2025-05-07T23:00:00Z; minutes are "
                                           "dropped. The last 30 days are kept.")],
    format: Annotated[Literal["unformatted", "formatted", "single_column"], Field(
        description="Extra. unformatted (default): key, [value,] external_ids as JSON; formatted: plus one "
                    "column per id (email, email_1, …); single_column: one id type, one row per value.")] = "unformatted",
    externalIdType: Annotated[str, Field(min_length=1, max_length=100,
                                         description="Extra. The id type of single_column (default email).")] = "email",
    hashed: Annotated[bool, Field(description="Extra. single_column values as uppercase SHA-256 hex "
                                              "(default true) or raw.")] = True,
) -> DownloadOutput:
    """Export the members of an audience, or the values of a computed trait, as they stood at the end
    of an hour, as CSV. Returns {download: {urls}}: links served by this server that expire after an
    hour (file URLs when the server runs without HTTP)."""
    return DownloadOutput(download=Download(urls=downloads.create_download(
        store, collectionId, hour, format, externalIdType, hashed)))


TOOLS = [write("create_download", "Create download", create_download)]
