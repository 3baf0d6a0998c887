"""Destination adapters: Segment-spec events in, the destination's own HTTP requests out.

An adapter is pure: given the destination's settings (and, for action destinations, the activation's
`destinationMapping`) and the events of one group of outbox rows, it returns the requests to make.
Rows are grouped only where the destination takes batches (Webhooks "Send Batch", the Tracking API's
`/v1/batch`); every other adapter gets one row at a time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from backend.clock import to_ms
from backend.delivery import warehouse_sink
from backend.delivery.warehouse_sink import SqlWrite

JSON = "application/json"
DEFAULT_WEBHOOK_BATCH = 100
MAX_WEBHOOK_BATCH = 1000
TRACKING_API_BATCH = 100


@dataclass(frozen=True)
class Target:
    """Where a group of rows goes: a destination instance and, for action destinations, the action.
    `lane` names what shares concurrency and rate limits (the instance, or an activation with its
    own URL); `secrets` are the setting values never to show in an error."""

    slug: str
    destination_id: str
    settings: dict[str, Any]
    action_id: str | None = None
    action_settings: dict[str, Any] = field(default_factory=dict)
    requests_per_second: float | None = None
    max_in_flight: int = 16
    lane: str = ""
    secrets: tuple[str, ...] = ()
    table: str = ""  # the warehouse destination's table: the activation's name


@dataclass(frozen=True)
class HttpCall:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes


def group_size(target: Target) -> int:
    """How many outbox rows may share one request."""
    if target.action_id == "webhooks-send-batch":
        return min(MAX_WEBHOOK_BATCH, max(1, int(target.action_settings.get("batchSize") or DEFAULT_WEBHOOK_BATCH)))
    return TRACKING_API_BATCH if target.slug in ("segment-tracking-api", "warehouse") else 1


def calls(target: Target, events: list[dict[str, Any]]) -> list[HttpCall | SqlWrite]:
    """The requests that deliver `events` (in order) to `target`; none for no events."""
    build = _BUILDERS.get(target.slug)
    if build is None:
        raise ValueError(f"no adapter for destination type '{target.slug}'")
    return build(target, events) if events else []


def secret_forms(target: Target) -> list[str]:
    """Every text a secret of the target can appear as in an error: as set, trimmed, escaped as
    Python and httpx print header values, and inside the Basic credentials built from it."""
    forms = []
    credentials = [f"{target.settings.get('apiId', '')}:{secret}" for secret in target.secrets] + \
                  [f"{secret}:" for secret in target.secrets]
    for secret in (*target.secrets, *(base64.b64encode(c.encode()).decode() for c in credentials)):
        for form in (secret, secret.strip(), repr(secret)[1:-1], repr(secret.encode())[2:-1],
                     secret.encode("unicode_escape").decode()):
            if len(form) >= 4:
                forms.append(form)
    return sorted(set(forms), key=len, reverse=True)


def _webhooks(target: Target, events: list[dict[str, Any]]) -> list[HttpCall]:
    """Webhooks (Actions): the mapped `data` (or the whole event) to `url`; "Send Batch" sends a JSON
    array. With a shared secret, `X-Signature` is the hex HMAC-SHA1 of the JSON of the request's data
    as Segment signs it: the body of a single request, and the first element of a batch."""
    settings = target.action_settings
    method = str(settings.get("method") or "POST").upper()
    headers = {"Content-Type": JSON, **{str(k): str(v) for k, v in (settings.get("headers") or {}).items()}}
    template = settings.get("data")
    bodies = [_present(resolve(template, event)) if template else event for event in events]
    batches = [bodies] if target.action_id == "webhooks-send-batch" else [[body] for body in bodies]
    secret = target.settings.get("sharedSecret")
    result = []
    for batch in batches:
        body = orjson.dumps(batch if target.action_id == "webhooks-send-batch" else batch[0])
        signed = {"X-Signature": hmac.new(secret.encode(), orjson.dumps(batch[0]), hashlib.sha1).hexdigest()} \
            if secret else {}
        result.append(HttpCall(method, settings["url"], {**headers, **signed}, body))
    return result


def _pendula(target: Target, events: list[dict[str, Any]]) -> list[HttpCall]:
    """Pendula's Webhooks preset: the whole event, POSTed to the flow's trigger URL with the API token
    (as Pendula shows it in its "HTTP header" format) in `Authorization`; no batching."""
    headers = {"Content-Type": JSON, "Authorization": target.settings["apiToken"]}
    return [HttpCall("POST", target.settings["flowTriggerUrl"], headers, orjson.dumps(flattened(event)))
            for event in events]


def _moengage(target: Target, events: list[dict[str, Any]]) -> list[HttpCall]:
    """MoEngage Data API: Identify → `POST /v1/customer/{app id}` with the traits as attributes, Track →
    `POST /v1/event/{app id}` with one action; Basic auth with the app id and the Data API key."""
    app_id = target.settings["apiId"]
    base = moengage_base_url(target.settings)
    token = base64.b64encode(f"{app_id}:{target.settings['apiKey']}".encode()).decode()
    headers = {"Content-Type": JSON, "Authorization": f"Basic {token}", "MOE-APPKEY": app_id}
    result = []
    for event in events:
        customer_id = event.get("userId") or event.get("anonymousId")
        if event["type"] == "identify":
            body = {"type": "customer", "customer_id": customer_id, "attributes": event.get("traits", {})}
            url = f"{base}/v1/customer/{app_id}"
        else:
            millis = str(to_ms(datetime.fromisoformat(event["timestamp"])))
            action = {"action": event["event"], "attributes": flattened(event).get("properties", {}),
                      "current_time": millis, "user_time": millis}
            body = {"type": "event", "customer_id": customer_id, "actions": [action]}
            url = f"{base}/v1/event/{app_id}"
        result.append(HttpCall("POST", url, headers, orjson.dumps(body)))
    return result


def flattened(event: dict[str, Any]) -> dict[str, Any]:
    """The event with a LINKED audience's `properties.data_graph_entity_context` merged into its
    properties as Segment's generated directive does for destinations other than warehouses:
    nested keys joined by `__`, arrays kept whole (`accounts__ACCOUNT_ID`, `accounts__orders: […]`)."""
    properties = event.get("properties")
    if not isinstance(properties, dict) or "data_graph_entity_context" not in properties:
        return event
    rest = {key: value for key, value in properties.items() if key != "data_graph_entity_context"}
    return {**event, "properties": {**rest, **_flatten(properties["data_graph_entity_context"], "")}}


def _flatten(value: Any, prefix: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        return {prefix: value}
    found: dict[str, Any] = {}
    for key, inner in value.items():
        found.update(_flatten(inner, f"{prefix}__{key}" if prefix else key))
    return found


def moengage_base_url(settings: dict[str, Any]) -> str:
    """`endpoint` when given (a stand-in or proxy), else the data center's Data API host."""
    if settings.get("endpoint"):
        return str(settings["endpoint"]).rstrip("/")
    region = str(settings.get("region") or "DC-01")
    return f"https://api-{region.removeprefix('DC-')}.moengage.com"


def _tracking_api(target: Target, events: list[dict[str, Any]]) -> list[HttpCall]:
    """Any Segment-compatible Tracking API: one `POST /v1/batch`, Basic auth with the write key."""
    token = base64.b64encode(f"{target.settings['writeKey']}:".encode()).decode()
    headers = {"Content-Type": JSON, "Authorization": f"Basic {token}"}
    url = f"{str(target.settings['endpoint']).rstrip('/')}/v1/batch"
    return [HttpCall("POST", url, headers, orjson.dumps({"batch": events}))]


MISSING = object()  # what a mapped path that leads nowhere resolves to: its key is left out
DIRECTIVES = ("@path",)
_INDEX = re.compile(r"\[(\d+)\]")


def resolve(template: Any, event: dict[str, Any]) -> Any:
    """A Webhooks `data` mapping applied to an event, as Segment's mapping kit does for `@path`:
    `{"@path": "$.properties.products[0].sku"}` takes that field (dots for keys, `[n]` for list
    items); a key whose path leads nowhere is left out (in a list it becomes null); objects and lists
    are resolved member by member; anything else is a literal."""
    if isinstance(template, dict):
        if set(template) == {"@path"}:
            return _path(event, str(template["@path"]))
        resolved = {key: resolve(value, event) for key, value in template.items()}
        return {key: value for key, value in resolved.items() if value is not MISSING}
    if isinstance(template, list):
        return [_present(resolve(item, event)) for item in template]
    return template


def _present(value: Any) -> Any:
    return None if value is MISSING else value


def unsupported_directives(template: Any) -> list[str]:
    """The mapping-kit directives (`@if`, `@template`, …) used in `template` that are not supported
    here, so an activation that uses them is refused when saved instead of sending them literally."""
    if isinstance(template, list):
        return [name for item in template for name in unsupported_directives(item)]
    if not isinstance(template, dict):
        return []
    if set(template) == {"@path"}:
        return []
    found = [key for key in template if key.startswith("@") and key not in DIRECTIVES]
    if "@path" in template:
        found.append("@path (with other keys)")
    return found + [name for value in template.values() for name in unsupported_directives(value)]


def _path(event: dict[str, Any], path: str) -> Any:
    value: Any = event
    for part in [p for p in path.removeprefix("$").split(".") if p]:
        key, _, _ = part.partition("[")
        steps: list[Any] = ([key] if key else []) + [int(index) for index in _INDEX.findall(part)]
        for step in steps:
            if isinstance(step, int) and isinstance(value, list) and step < len(value):
                value = value[step]
            elif isinstance(step, str) and isinstance(value, dict) and step in value:
                value = value[step]
            else:
                return MISSING
    return value


def _warehouse(target: Target, events: list[dict[str, Any]]) -> list[SqlWrite]:
    """The warehouse destination: the Track events as rows of the activation's table, in one write."""
    rows = warehouse_sink.rows_of([event for event in events if event.get("type") == "track"])
    return [SqlWrite(target.settings["url"], target.settings.get("schema"), target.table, rows)] if rows else []


_BUILDERS = {
    "webhooks-actions": _webhooks,
    "pendula": _pendula,
    "moengage": _moengage,
    "segment-tracking-api": _tracking_api,
    "warehouse": _warehouse,
}
