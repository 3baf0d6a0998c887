"""The Profile API: `GET /v1/spaces/{space}/collections/{users|accounts}/profiles/{type}:{value}/…`
for traits, external_ids, events, metadata and links, shaped like Segment's.

Authentication is HTTP Basic with the space's access token as user name and an empty password.
Errors are `{"error": {"code", "message"}}` with Segment's codes. Cursors (`next`) are opaque.
Every authenticated answer says how far processing of the Tracking API's messages has got
(`X-Ingest-Backlog`, `X-Ingest-Lag-Ms`): the Tracking API answers before it stores.
"""

from __future__ import annotations

import base64
import binascii
import json

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from backend.clock import iso_ms, to_ms
from backend.tracking.messages import MessageError, parse_time
from server.basic_auth import basic_user
from store.db.models import Event, Identifier, Profile
from store.db.store import Store
from store.ingest import log
from store.profiles import profiles

PREFIX = "/v1/spaces/{space_id}/collections/{collection}/profiles/{reference}"
LIMITS = {"traits": (10, 200), "external_ids": (10, 100), "events": (10, 100), "links": (20, 20)}


class _RequestError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        self.status, self.code, self.message, self.headers = status, code, message, headers


def routes(store: Store) -> list[Route]:
    views = {"traits": _traits, "external_ids": _external_ids, "events": _events, "metadata": _metadata, "links": _links}
    return [Route(f"{PREFIX}/{name}", _endpoint(store, name, view), methods=["GET"]) for name, view in views.items()]


def _endpoint(store: Store, name: str, view):
    async def handle(request: Request) -> JSONResponse:
        try:
            body, headers = await anyio.to_thread.run_sync(_serve, store, name, view, request)
            return JSONResponse(body, headers=headers)
        except _RequestError as error:
            return JSONResponse({"error": {"code": error.code, "message": error.message}}, status_code=error.status,
                                headers=error.headers)

    return handle


def _serve(store: Store, name: str, view, request: Request) -> tuple[dict, dict[str, str]]:
    params = request.path_params
    if not profiles.access_token_valid(store, params["space_id"], basic_user(request)):
        raise _RequestError(401, "authentication_error", "Send the space's access token as the Basic auth user name.")
    headers = _processing(store, params["space_id"])
    collection = params["collection"]
    if collection not in ("users", "accounts"):
        raise _RequestError(404, "not_found", "Collection must be users or accounts.", headers)
    profile = profiles.find_profile(store, params["space_id"], collection, params["reference"])
    if profile is None:
        raise _RequestError(404, "not_found", "Profile was not found.", headers)
    return view(store, profile, request, name), headers


def _processing(store: Store, space_id: str) -> dict[str, str]:
    """How far the processor has got with what the Tracking API acknowledged, read before the answer:
    `X-Ingest-Backlog` messages not yet stored, the oldest waiting `X-Ingest-Lag-Ms`. A client that
    needs its writes waits until the backlog is 0 (or its lag below the time since it sent)."""
    backlog = log.backlog(store, space_id)
    lag_ms = 0 if backlog.oldest_received_ms is None else max(0, to_ms(store.now()) - backlog.oldest_received_ms)
    return {"X-Ingest-Backlog": str(backlog.messages), "X-Ingest-Lag-Ms": str(lag_ms)}


def _traits(store: Store, profile: Profile, request: Request, name: str) -> dict:
    classes = profiles.TRAIT_CLASSES
    wanted = request.query_params.get("class")
    if wanted is not None:
        if wanted not in ("audience", "computed_trait"):
            raise _RequestError(400, "validation_error", "class must be audience or computed_trait.")
        classes = (wanted,)
    limit = _limit(request, name)
    page = profiles.traits(
        store, profile.id, classes=classes, include=_list(request, "include"), limit=limit, after=_cursor(request)
    )
    if _verbose(request):
        traits = {
            row.key: {"value": row.value, "source_id": row.source_id, "updated_at": iso_ms(row.updated_at_ms)}
            for row in page.rows
        }
    else:
        traits = {row.key: row.value for row in page.rows}
    return {"traits": traits, "cursor": _cursor_out(request, page.next, limit)}


def _external_ids(store: Store, profile: Profile, request: Request, name: str) -> dict:
    limit = _limit(request, name)
    offset = _cursor_number(_cursor(request) or "0")
    page = profiles.external_ids(store, profile.id, include=_list(request, "include"), limit=limit, offset=offset)
    return {"data": [_identifier(row) for row in page.rows], "cursor": _cursor_out(request, page.next, limit)}


def _events(store: Store, profile: Profile, request: Request, name: str) -> dict:
    limit = _limit(request, name)
    sort = request.query_params.get("sort", "desc")
    if sort not in ("asc", "desc"):
        raise _RequestError(400, "validation_error", "sort must be asc or desc.")
    after = None
    if (cursor := _cursor(request)) is not None:
        at, _, row_id = cursor.partition("::")
        after = (_cursor_number(at, signed=True), _cursor_number(row_id))
    page = profiles.events(
        store,
        profile.id,
        start_ms=_time(request, "start"),
        end_ms=_time(request, "end"),
        include=_list(request, "include"),
        exclude=_list(request, "exclude"),
        limit=limit,
        descending=sort == "desc",
        after=after,
    )
    return {"data": [_event(row, profile) for row in page.rows], "cursor": _cursor_out(request, page.next, limit)}


def _metadata(store: Store, profile: Profile, request: Request, name: str) -> dict:
    facts = profiles.metadata(store, profile)
    return {
        "metadata": {
            "created_at": iso_ms(facts.created_at_ms),
            "updated_at": iso_ms(facts.updated_at_ms),
            "expires_at": None,
            "first_message_id": facts.first_message_id,
            "first_source_id": facts.first_source_id,
            "last_message_id": facts.last_message_id,
            "last_source_id": facts.last_source_id,
        }
    }


def _links(store: Store, profile: Profile, request: Request, name: str) -> dict:
    limit = _limit(request, name)
    data = [
        {"to_collection": other.collection, "external_ids": [_identifier(row, brief=True) for row in identifiers]}
        for other, identifiers in profiles.linked(store, profile, limit)
    ]
    return {"data": data, "cursor": {"url": request.url.path, "has_more": False, "next": ""}}


def _identifier(row: Identifier, brief: bool = False) -> dict:
    item = {
        "id": row.value,
        "type": row.type,
        "source_id": row.source_id,
        "collection": row.collection,
        "created_at": iso_ms(row.created_at_ms),
        "encoding": "none",
    }
    if not brief:
        item["first_message_id"] = row.first_message_id
    return item


def _event(row: Event, profile: Profile) -> dict:
    item = {
        "external_ids": json.loads(row.external_ids),
        "context": json.loads(row.context),
        "type": row.type,
        "message_id": row.message_id,
        "source_id": row.source_id,
        "timestamp": iso_ms(row.timestamp_ms),
        "properties": json.loads(row.properties),
        "event": row.event,
        "related": {profile.collection: profile.id},
    }
    if row.traits is not None:
        item["traits"] = json.loads(row.traits)
    return item


def _limit(request: Request, name: str) -> int:
    default, most = LIMITS[name]
    raw = request.query_params.get("limit")
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= most:
        raise _RequestError(400, "validation_error", f"limit must be a whole number from 1 to {most}.")
    return int(raw)


def _list(request: Request, name: str) -> list[str] | None:
    raw = request.query_params.get(name)
    return [item.strip() for item in raw.split(",") if item.strip()] if raw else None


def _verbose(request: Request) -> bool:
    return request.query_params.get("verbose", "").lower() == "true"


def _time(request: Request, name: str) -> int | None:
    try:
        moment = parse_time(request.query_params.get(name), name)
    except MessageError as error:
        raise _RequestError(400, "validation_error", f"{error}.") from None
    return None if moment is None else to_ms(moment)


def _cursor(request: Request) -> str | None:
    raw = request.query_params.get("next")
    if not raw:
        return None
    try:
        return base64.urlsafe_b64decode(raw.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _RequestError(400, "validation_error", "next is not a cursor this API returned.") from None


def _cursor_number(text: str, signed: bool = False) -> int:
    """A whole number inside a cursor, within what the database stores (64-bit)."""
    digits = text[1:] if signed and text.startswith("-") else text
    if not (digits.isascii() and digits.isdigit() and len(digits) <= 18):
        raise _RequestError(400, "validation_error", "next is not a cursor this API returned.")
    return int(text)


def _cursor_out(request: Request, following: str | None, limit: int) -> dict:
    token = base64.urlsafe_b64encode(following.encode()).decode() if following else ""
    return {"url": request.url.path, "has_more": following is not None, "next": token, "limit": limit}
