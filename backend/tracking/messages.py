"""Validates one Segment-spec message and puts it in the shape the store keeps.

Rules from the Segment Spec: `userId` or `anonymousId` is required; `track` needs `event`, `group`
needs `groupId`, `alias` needs `previousId`; `properties`, `traits` and `context` must be objects;
`messageId` (at most 100 characters) is assigned when absent; Page and Screen calls become the events
`Page Viewed` / `Screen Viewed` with `name` (and a page's `category`) added to the properties.

The event time corrects client clock skew: `timestamp = receivedAt - (sentAt - originalTimestamp)`,
where the client's own time is `originalTimestamp`, or `timestamp` when that is what it sent (as the
server libraries do). Without `sentAt` the client's time is taken as is; with no client time at all,
the time of receipt. An event time outside the years 1900 to 2200, after that correction, is refused,
as is a message nested deeper than MAX_DEPTH levels (objects and lists) or holding a NUL character.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

import orjson

from backend.clock import to_ms

TYPES = ("identify", "track", "page", "screen", "group", "alias")
MAX_MESSAGE_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
MAX_MESSAGE_ID = 100
MAX_GROUP_ID = 500
MAX_FIELDS = 300
MAX_DEPTH = 64
EARLIEST = datetime(1900, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(2201, 1, 1, tzinfo=timezone.utc)


class MessageError(ValueError):
    """Why a message cannot be accepted, in words a developer can act on."""


@dataclass(frozen=True)
class Message:
    type: str
    message_id: str
    user_id: str | None
    anonymous_id: str | None
    event: str | None
    properties: dict
    traits: dict | None
    context: dict
    group_id: str | None
    previous_id: str | None
    timestamp_ms: int
    received_at_ms: int
    raw: dict

    def document(self) -> dict:
        """The message as filters see it: the client's fields plus the normalised type and event."""
        return {**self.raw, "type": self.type, "event": self.event, "messageId": self.message_id,
                "properties": self.properties, "context": self.context}


def normalise(
    raw: object, received_at: datetime, *, batch_sent_at: datetime | None = None, batch_context: object = None
) -> Message:
    """A valid Message from a decoded JSON message, or MessageError saying what is wrong with it.
    `batch_sent_at` (already parsed) and `batch_context` come from the envelope of a batch."""
    if not isinstance(raw, dict):
        raise MessageError("a message must be a JSON object")
    kind = raw.get("type")
    if kind not in TYPES:
        raise MessageError(f"unknown message type {kind!r}; expected one of {', '.join(TYPES)}")
    user_id = _identifier(raw, "userId")
    anonymous_id = _identifier(raw, "anonymousId")
    if user_id is None and anonymous_id is None:
        raise MessageError("userId or anonymousId is required")
    context = _object(raw, "context")
    if isinstance(batch_context, dict):
        context = {**batch_context, **context}
    _check_external_ids(context.get("externalIds"))
    properties = _object(raw, "properties")
    traits = _object(raw, "traits") if kind in ("identify", "group") else None
    for name, fields in (("properties", properties), ("traits", traits)):
        if fields is not None and len(fields) >= MAX_FIELDS:
            raise MessageError(f"{name} has {len(fields)} fields; the limit is {MAX_FIELDS - 1}")
    event, group_id, previous_id = None, None, None
    if kind == "track":
        event = raw.get("event")
        if not isinstance(event, str) or not event.strip():
            raise MessageError("a track call needs a non-empty event name in 'event'")
    elif kind in ("page", "screen"):
        event = "Page Viewed" if kind == "page" else "Screen Viewed"
        for field in ("name", "category") if kind == "page" else ("name",):
            if isinstance(raw.get(field), str):
                properties = {**properties, field: raw[field]}
    elif kind == "group":
        group_id = _identifier(raw, "groupId")
        if group_id is None:
            raise MessageError("a group call needs a non-empty 'groupId'")
        if len(group_id) > MAX_GROUP_ID:
            raise MessageError(f"groupId is longer than {MAX_GROUP_ID} characters")
    elif kind == "alias":
        previous_id = _identifier(raw, "previousId")
        if previous_id is None or user_id is None:
            raise MessageError("an alias call needs both 'previousId' and 'userId'")
    message_id = raw.get("messageId")
    if message_id is None or message_id == "":
        message_id = f"api-{uuid.uuid4()}"
    elif not isinstance(message_id, str) or len(message_id) > MAX_MESSAGE_ID:
        raise MessageError(f"messageId must be a string of at most {MAX_MESSAGE_ID} characters")
    return Message(
        type=kind,
        message_id=message_id,
        user_id=user_id,
        anonymous_id=anonymous_id,
        event=event,
        properties=properties,
        traits=traits,
        context=context,
        group_id=group_id,
        previous_id=previous_id,
        timestamp_ms=_event_time(raw, received_at, batch_sent_at),
        received_at_ms=to_ms(received_at),
        raw=raw,
    )


def check_structure(raw: object, *, nul_possible: bool = True) -> None:
    """Refuse a message nested deeper than MAX_DEPTH levels, or holding a NUL character (U+0000) in a
    key or a string at any depth: no database here stores one faithfully (PostgreSQL's text and jsonb
    refuse it), so it is refused at the edge. Walked without recursion; strings are checked where they
    are found, only objects and arrays wait their turn (every message is checked when it is acknowledged,
    and again when it is stored if its request had messages refused). `nul_possible=False` (the JSON
    it was decoded from cannot hold one, see `may_hold_nul`) checks the nesting alone."""
    if nul_possible and isinstance(raw, str):
        _refuse_nul(raw, "a string")
    pending = [(raw, 1)] if isinstance(raw, (dict, list)) else []
    while pending:
        value, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise MessageError(f"message is nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            if nul_possible:
                for key in value:
                    _refuse_nul(key, "a key")
            children = value.values()
        else:
            children = value
        for child in children:
            if isinstance(child, str):
                if nul_possible:
                    _refuse_nul(child, "a string")
            elif isinstance(child, (dict, list)):
                pending.append((child, depth + 1))


def may_hold_nul(text: bytes) -> bool:
    """Whether JSON `text` can decode to a key or string holding a NUL character. JSON writes one only
    as the escape `\\u0000` (a raw control character in a string is not JSON), so a text without that
    escape holds none, and what it decodes to need not be searched for one."""
    return b"\\u0000" in text


def _refuse_nul(text: str, what: str) -> None:
    if "\x00" in text:
        raise MessageError(f"{what} holds a NUL character (U+0000), which cannot be stored")


def message_size(raw: object) -> int:
    """Bytes of the message as compact JSON (its depth already checked)."""
    try:
        return len(orjson.dumps(raw, option=orjson.OPT_NON_STR_KEYS))
    except (TypeError, orjson.JSONEncodeError):
        return len(json.dumps(raw, separators=(",", ":"), ensure_ascii=False, default=str).encode())


def parse_time(value: object, field: str) -> datetime | None:
    """An ISO-8601 time with a zone (a missing zone means UTC); None when absent."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise MessageError(f"{field} must be an ISO-8601 string")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise MessageError(f"{field} is not an ISO-8601 time: {value[:40]!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _event_time(raw: dict, received_at: datetime, batch_sent_at: datetime | None) -> int:
    original = parse_time(raw.get("originalTimestamp"), "originalTimestamp") or parse_time(raw.get("timestamp"), "timestamp")
    sent_at = parse_time(raw.get("sentAt"), "sentAt") or batch_sent_at
    if original is None:
        return to_ms(received_at)
    try:
        moment = original if sent_at is None else received_at - (sent_at - original)
    except OverflowError:
        moment = None
    if moment is None or not EARLIEST <= moment < LATEST:
        raise MessageError("the event time (after correcting the client's clock by sentAt) is outside the "
                           "years 1900 to 2200; check timestamp, originalTimestamp and sentAt")
    return to_ms(moment)


def _identifier(raw: dict, field: str) -> str | None:
    value = raw.get(field)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise MessageError(f"{field} must be a string")
    return str(value)


def _object(raw: dict, field: str) -> dict:
    value = raw.get(field)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MessageError(f"{field} must be a JSON object, not {type(value).__name__}")
    return value


def _check_external_ids(value: object) -> None:
    """`context.externalIds`: a list of {id, type, collection, encoding}, types in lowercase."""
    if value is None:
        return
    if not isinstance(value, list):
        raise MessageError("context.externalIds must be a list of {id, type, collection, encoding}")
    for index, entry in enumerate(value):
        where = f"context.externalIds[{index}]"
        if not isinstance(entry, dict) or not all(key in entry for key in ("id", "type", "collection", "encoding")):
            raise MessageError(f"{where} needs all of id, type, collection and encoding")
        if entry["collection"] not in ("users", "accounts"):
            raise MessageError(f"{where}.collection must be 'users' or 'accounts'")
        if not isinstance(entry["type"], str) or not entry["type"] or entry["type"] != entry["type"].lower():
            raise MessageError(f"{where}.type must be a non-empty lowercase string")
