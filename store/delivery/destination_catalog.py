"""The destinations an audience can be sent to, as data: settings, connection settings and actions.

Action destinations (Webhooks, Pendula) send through activations, each configured with
`destinationMapping` (`actionId` + `settings`); their connection alone sends nothing. Classic
destinations (MoEngage, the Tracking API forwarder) have no actions: the connection itself sends
Identify and/or Track as its `connectionSettings` say, and any activation on it sends its own events
as well. Only action destinations can activate LINKED audiences. `secret` settings are never shown
back. `requests_per_second` and `max_in_flight` bound what the delivery worker sends to one instance.
`accepts` names the Segment calls a destination takes (Segment's catalog: MoEngage and Pendula take
Identify and Track); those that take Group offer the `sendGroup` connection setting for ACCOUNTS
audiences and computed traits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from store.db.errors import InputValidation


@dataclass(frozen=True)
class SettingField:
    name: str
    label: str
    type: str  # "string" | "boolean" | "object" | "integer"
    required: bool = False
    secret: bool = False
    description: str = ""
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Action:
    id: str
    name: str
    description: str
    fields: tuple[SettingField, ...]


@dataclass(frozen=True)
class CatalogEntry:
    slug: str
    name: str
    description: str
    settings: tuple[SettingField, ...]
    connection_settings: tuple[SettingField, ...] = ()
    actions: tuple[Action, ...] = ()
    default_id_sync: tuple[tuple[str, str], ...] = (("user_id", "last"), ("email", "last"))
    requests_per_second: float | None = None
    max_in_flight: int = 16
    accepts: tuple[str, ...] = ("identify", "track")


_SEND_IDENTIFY = SettingField("sendIdentify", "Send Identify", "boolean",
                              description="Send membership as Identify traits (default true).")
_SEND_TRACK = SettingField("sendTrack", "Send Track", "boolean",
                           description="Send Audience Entered/Exited Track events (default false).")
_SEND_GROUP = SettingField("sendGroup", "Send Group", "boolean",
                           description="ACCOUNTS audiences and computed traits only: one Group call per account "
                           "(default false).")
_WEBHOOK_FIELDS = (
    SettingField("url", "URL", "string", required=True, description="Where the request is sent."),
    SettingField("method", "Method", "string", description="POST (default), PUT or PATCH.",
                 choices=("POST", "PUT", "PATCH")),
    SettingField("headers", "Headers", "object", description="Extra request headers."),
    SettingField("data", "Data", "object", description="The body; defaults to the whole event."),
)

CATALOG: tuple[CatalogEntry, ...] = (
    CatalogEntry(
        slug="webhooks-actions",
        name="Webhooks (Actions)",
        description="Send each audience event to any HTTP endpoint as JSON.",
        settings=(SettingField("sharedSecret", "Shared secret", "string", secret=True,
                               description="Signs each request (X-Signature) when set."),),
        actions=(
            Action("webhooks-send", "Send", "One HTTP request per event.", _WEBHOOK_FIELDS),
            Action(
                "webhooks-send-batch",
                "Send Batch",
                "Events grouped into one request with a JSON array body.",
                (*_WEBHOOK_FIELDS, SettingField("batchSize", "Batch size", "integer", description="1 to 1000.")),
            ),
        ),
        connection_settings=(_SEND_GROUP,),
        default_id_sync=(("user_id", "all"), ("email", "all")),
        accepts=("identify", "track", "group"),
    ),
    CatalogEntry(
        slug="pendula",
        name="Pendula",
        description="Trigger a Pendula flow for each audience member (the Webhooks preset Pendula documents).",
        settings=(
            SettingField("flowTriggerUrl", "Flow trigger URL", "string", required=True,
                         description="The trigger URL of the Pendula flow destination."),
            SettingField("apiToken", "API token", "string", required=True, secret=True,
                         description="Sent as the Authorization header."),
        ),
        actions=(Action("pendula-trigger-flow", "Trigger flow", "Send the whole event to the flow trigger URL.", ()),),
        requests_per_second=20,
        max_in_flight=8,
    ),
    CatalogEntry(
        slug="moengage",
        name="MoEngage",
        description="Identify calls become MoEngage custom attributes; Track calls become user events.",
        settings=(
            SettingField("apiId", "Workspace (APP) id", "string", required=True),
            SettingField("apiKey", "Data API key", "string", required=True, secret=True),
            SettingField("region", "Data center", "string", description="DC-01 (default) to DC-06.",
                         choices=("DC-01", "DC-02", "DC-03", "DC-04", "DC-05", "DC-06")),
            SettingField("endpoint", "Endpoint", "string",
                         description="Overrides the data center's Data API base URL (a proxy or a local stand-in)."),
        ),
        connection_settings=(_SEND_IDENTIFY, _SEND_TRACK),
        requests_per_second=400,
    ),
    CatalogEntry(
        slug="segment-tracking-api",
        name="Segment Tracking API",
        description="Forward audience events to any Segment-compatible Tracking API, such as another space.",
        settings=(
            SettingField("endpoint", "Endpoint", "string", required=True, description="Base URL, e.g. http://127.0.0.1:8088"),
            SettingField("writeKey", "Write key", "string", required=True, secret=True),
        ),
        connection_settings=(_SEND_IDENTIFY, _SEND_TRACK, _SEND_GROUP),
        accepts=("identify", "track", "group"),
    ),
    CatalogEntry(
        slug="warehouse",
        name="Warehouse",
        description="Write each activation's events as rows of a table named by its activationName (the columns "
                    "of Segment's warehouse presets), in a DuckDB, SQLite or PostgreSQL database.",
        settings=(
            SettingField("url", "Database URL", "string", secret=True,
                         description="SQLAlchemy URL: duckdb:///file.duckdb, sqlite:///file.db or "
                                     "postgresql+psycopg://user:password@host/db. Omitted: the warehouse the "
                                     "space's entity tables are in (not on ClickHouse)."),
            SettingField("schema", "Schema", "string", description="The tables' schema (default: the database's)."),
        ),
        actions=(Action("warehouse-send-custom-event", "Send custom event",
                        "One row per Track event in the activation's table, created on first write.", ()),),
        max_in_flight=1,
    ),
)

BY_SLUG = {entry.slug: entry for entry in CATALOG}


def supports(entry: CatalogEntry, audience_type: str) -> bool:
    return bool(entry.actions) or audience_type != "LINKED"


_TYPES = {"string": str, "boolean": bool, "object": dict, "integer": int}


def check_fields(values: dict[str, Any], fields: tuple[SettingField, ...], where: str, require: bool = False) -> dict[str, Any]:
    """Settings checked against their catalog fields: known names, types, choices, and (with
    `require`) every required field present."""
    known = {f.name: f for f in fields}
    for name, value in values.items():
        spec = known.get(name)
        if spec is None:
            allowed = ", ".join(known) or "none"
            raise InputValidation(f"Unknown setting '{name}'; this destination takes: {allowed}.", field=f"{where}.{name}")
        expected = _TYPES[spec.type]
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise InputValidation(f"{name} must be a {spec.type}.", field=f"{where}.{name}")
        if spec.choices and value not in spec.choices:
            raise InputValidation(f"{name} must be one of {', '.join(spec.choices)}, not '{value}'.",
                                  field=f"{where}.{name}")
    if require:
        missing = [f.name for f in fields if f.required and f.name not in values]
        if missing:
            raise InputValidation(f"Missing required setting(s): {', '.join(missing)}.", field=f"{where}.{missing[0]}")
    return dict(values)
