"""Storing messages: validation, messageId de-duplication, space filters, then identity resolution
and the profile rows (`store.ingest.profile_writer`) and the space's summary for the Space Schema tools
(`store.ingest.schema_summary`), all in one transaction per batch.

Messages come two ways. The Tracking API checks each request (`acknowledge`) and keeps it in the
durable log (`store.ingest.log`); the processor stores the log's requests later (`process_log`), in
order per space, deleting them in the transaction that stores their messages. The file importer, the
CLI and the tests store what they send at once (`accept`), after whatever the space's log still holds,
so a space's messages are stored in the order they arrived whichever way they came.

A batch is stored completely or not at all. Space filters drop matching messages before identity
resolution and count what they drop. messageIds are de-duplicated per space for as long as events
are kept; a duplicate is never counted as dropped.

A message whose `context.personas.space_id` is the space's own was emitted by one of its own
audiences or computed traits (a forwarder pointed back at the space): it is not stored, since
realtime computations over it would emit more, for ever. It is counted (`looped`) and logged.
"""

from __future__ import annotations

import logging
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

import orjson
from sqlalchemy import Connection, bindparam, select
from sqlmodel import Session

from backend import fql
from backend.clock import from_ms
from backend.tracking.identity import extract
from backend.tracking.messages import (
    MAX_MESSAGE_BYTES,
    Message,
    MessageError,
    check_structure,
    may_hold_nul,
    message_size,
    normalise,
    parse_time,
    to_ms,
)
from store.catalog import definitions, filters
from store.db import bulk, locks
from store.db.models import Event, IngestLog
from store.db.store import Store
from store.ingest import log, schema_summary
from store.ingest.profile_writer import BatchWriter

logger = logging.getLogger("segment_audiences.ingest")


@dataclass
class IngestResult:
    """What became of a batch: stored, skipped as duplicates, or dropped by a space filter; and how
    many traits it named that are computed keys (an audience's or computed trait's), not written;
    and how many messages the space's own computations had emitted, not stored."""

    stored: int = 0
    duplicates: int = 0
    dropped: int = 0
    computed_keys_dropped: int = 0
    looped: int = 0


@dataclass(frozen=True)
class Rejection:
    index: int
    message: str


def check(raws: list, received_at: datetime, *, sent_at: object = None, context: object = None,
          shapes_checked: bool = False, nul_possible: bool = True) -> tuple[list[Message], list[Rejection]]:
    """The valid messages of a request, normalised, and the others with reasons (by index).
    `shapes_checked` says every message and the batch's context already passed the checks of nesting,
    NUL characters and size, which depend on nothing else (a logged request none of whose messages
    was rejected), so they are not walked again; `nul_possible=False`, that the request's JSON holds
    no NUL character (`may_hold_nul`), so its strings are not searched for one."""
    messages, rejected = [], []
    try:
        batch_sent_at = parse_time(sent_at, "sentAt")
        if not shapes_checked:
            check_structure(context, nul_possible=nul_possible)
    except MessageError as error:
        return [], [Rejection(index, f"the batch's {error}") for index in range(len(raws))]
    for index, raw in enumerate(raws):
        try:
            if not shapes_checked:
                _check_shape(raw, nul_possible)
            messages.append(normalise(raw, received_at, batch_sent_at=batch_sent_at, batch_context=context))
        except MessageError as error:
            rejected.append(Rejection(index, str(error)))
    return messages, rejected


def _check_shape(raw: object, nul_possible: bool) -> None:
    check_structure(raw, nul_possible=nul_possible)
    if message_size(raw) > MAX_MESSAGE_BYTES:
        raise MessageError(f"message is larger than {MAX_MESSAGE_BYTES // 1024} KB")


def request_items(kind: str, body: dict) -> tuple[list, object, object]:
    """A Tracking API request's messages, and its batch's `sentAt` and `context`."""
    if kind != "batch":
        return [{**body, "type": kind}], None, None
    items = body.get("batch")
    if not isinstance(items, list):
        raise MessageError("a batch body needs a 'batch' list of messages")
    return items, body.get("sentAt"), body.get("context")


def acknowledge(store: Store, space_id: str, kind: str, body: bytes, document: dict,
                source_id: str) -> tuple[int, list[Rejection]]:
    """Check a Tracking API request and keep it in the log if any of its messages is valid
    (committed on return); how many were, and the others with reasons. Raises MessageError for a
    body that is no request at all."""
    items, sent_at, context = request_items(kind, document)
    received_at = from_ms(to_ms(store.now()))  # what the processor normalises with again, to the millisecond
    messages, rejected = check(items, received_at, sent_at=sent_at, context=context,
                               nul_possible=may_hold_nul(body))
    if messages:
        log.append(store, space_id, source_id, kind, body, len(messages), to_ms(received_at))
    return len(messages), rejected


def accept(
    store: Store, space_id: str, raws: list, source_id: str, *, sent_at: object = None, context: object = None
) -> tuple[IngestResult, list[Rejection]]:
    """Validate raw Segment-spec messages and store the valid ones now; the others come back with
    reasons. The file importer, the CLI and the tests come through here."""
    messages, rejected = check(raws, store.now(), sent_at=sent_at, context=context)
    return ingest(store, space_id, messages, source_id), rejected


def ingest(store: Store, space_id: str, messages: list[Message], source_id: str) -> IngestResult:
    """Store a batch of validated messages for a space in one transaction, after the requests the
    space's log still holds. Batches into one space take turns (on PostgreSQL by a lock every process
    shares): resolving identities reads the identity graph and then changes it, so two batches must
    never interleave. The batch's filters are evaluated before the write transaction begins, so no
    space waits on another's filter evaluation (the log's requests, rarely left here, are evaluated
    inside it)."""
    result = IngestResult()
    with store.read() as session:
        batch = _prepared(session.connection(), space_id, source_id, messages)
    with store.write() as session:
        locks.exclusive(session, [ingest_lock(space_id)])
        waiting = _pending(session, store, space_id, sys.maxsize)
        if waiting is not None:
            _store_pending(session, store, space_id, waiting, result)
        _store(session.connection(), store, space_id, batch, result)
    log.forget(store, space_id)
    _report(space_id, result)
    return result


def ingest_lock(space_id: str) -> str:
    return f"ingest into {space_id}"


def process_log(store: Store, space_id: str, most_messages: int) -> IngestResult | None:
    """Store the space's oldest requests in the log (about `most_messages` messages) in one
    transaction that marks them consumed; None when there were none, or another process took them
    (PostgreSQL). They are read, and their filters evaluated, before the write transaction begins."""
    with store.read() as session:
        waiting = _pending(session, store, space_id, most_messages)
    result = None
    if waiting is not None:
        with store.write() as session:
            if locks.try_exclusive(session, ingest_lock(space_id)) and log.unconsumed(
                    session, store, space_id, waiting.requests):
                result = IngestResult()
                _store_pending(session, store, space_id, waiting, result)
    log.forget(store, space_id)
    if result is not None:
        _report(space_id, result)
    return result


@dataclass
class _Batch:
    """Validated messages of one source ready to store: those the space's own computations did not
    emit (`looped` counts the others), and the dropping filter each matches, by position."""

    source_id: str
    messages: list[Message]
    verdicts: dict[int, str]
    looped: int


@dataclass
class _Pending:
    """Requests from the log, in order, as batches (consecutive requests of one source together)."""

    requests: list[IngestLog]
    batches: list[_Batch]


def _prepared(connection: Connection, space_id: str, source_id: str, messages: list[Message]) -> _Batch:
    kept = [message for message in messages if _personas_space(message) != space_id]
    return _Batch(source_id, kept, _filter_verdicts(connection, space_id, kept), len(messages) - len(kept))


def _pending(session: Session, store: Store, space_id: str, most_messages: int) -> _Pending | None:
    """The space's oldest requests not yet consumed (about `most_messages` messages), prepared."""
    requests = log.oldest(session, store, space_id, most_messages)
    if not requests:
        return None
    runs: list[tuple[str, list[Message]]] = []
    for request in requests:
        if runs and runs[-1][0] == request.source_id:
            runs[-1][1].extend(_messages_of(request))
        else:
            runs.append((request.source_id, _messages_of(request)))
    connection = session.connection()
    return _Pending(requests, [_prepared(connection, space_id, source_id, messages) for source_id, messages in runs])


def _store_pending(session: Session, store: Store, space_id: str, pending: _Pending, result: IngestResult) -> None:
    for batch in pending.batches:
        _store(session.connection(), store, space_id, batch, result)
    log.consumed(session, store, space_id, pending.requests)


def _messages_of(request: IngestLog) -> list[Message]:
    """A logged request's valid messages, normalised as when it was acknowledged. When all its messages
    were accepted (the log counts those), their shapes are not checked again."""
    items, sent_at, context = request_items(request.kind, orjson.loads(request.body))
    messages, _ = check(items, from_ms(request.received_at_ms), sent_at=sent_at, context=context,
                        shapes_checked=len(items) == request.messages)
    return messages


def _store(connection: Connection, store: Store, space_id: str, batch: _Batch, result: IngestResult) -> None:
    """Store a prepared batch inside the caller's transaction, which holds the space's ingest lock;
    adds what became of its messages to `result`."""
    result.looped += batch.looped
    if not batch.messages:
        return
    unseen = _deduplicate(connection, space_id, batch.messages, result)
    fresh = _apply_filters(connection, unseen, batch.verdicts, result, to_ms(store.now()))
    if fresh:
        computed_keys = definitions.live_keys(connection, space_id)
        writer = BatchWriter(connection, space_id, batch.source_id, to_ms(store.now()), computed_keys=computed_keys)
        extracted = [(message, extract(message)) for message in fresh]
        writer.preload([identifiers for _, identifiers in extracted])
        for message, identifiers in extracted:
            writer.add(message, identifiers)
        writer.flush()
        schema_summary.record(connection, space_id, _summary(fresh, computed_keys))
        result.computed_keys_dropped += writer.computed_keys_dropped
    result.stored += len(fresh)


def _report(space_id: str, result: IngestResult) -> None:
    if result.dropped:
        logger.info("space %s: %d event(s) dropped by space filters", space_id, result.dropped)
    if result.looped:
        logger.warning("%s: %d message(s) not stored: the space's own audiences or computed traits emitted them "
                       "(context.personas.space_id), so a destination sends them back into it", space_id, result.looped)
    if result.computed_keys_dropped:
        logger.warning("%s: %d trait values not written: they name audiences or computed traits, whose "
                       "values only their runs write", space_id, result.computed_keys_dropped)


def _summary(messages: list[Message], computed_keys: set[str]) -> schema_summary.Summary:
    summary = schema_summary.Summary(computed_keys)
    for message in messages:
        summary.add(schema_summary.Received(message.type, message.event, message.properties, message.context,
                                            message.traits, message.received_at_ms))
    return summary


def _personas_space(message: Message) -> object:
    personas = message.context.get("personas")
    return personas.get("space_id") if isinstance(personas, dict) else None


def _filter_verdicts(connection: Connection, space_id: str, messages: list[Message]) -> dict[int, str]:
    """The dropping filter each message matches (by its position in `messages`), if any."""
    active = [(filter_id, _parse_condition(condition))
              for filter_id, condition in filters.dropping_filters(connection, space_id)]
    if not active:
        return {}
    verdicts = {}
    for index, message in enumerate(messages):
        document = message.document()
        hit = next((filter_id for filter_id, condition in active if fql.matches(condition, document)), None)
        if hit is not None:
            verdicts[index] = hit
    return verdicts


def _apply_filters(connection: Connection, messages: list[tuple[int, Message]], verdicts: dict[int, str],
                   result: IngestResult, now_ms: int) -> list[Message]:
    """The messages no filter drops; each drop is counted on its filter."""
    drops = Counter(verdicts[index] for index, _ in messages if index in verdicts)
    for filter_id, count in drops.items():
        filters.count_drops(connection, filter_id, count, now_ms)
    result.dropped += sum(drops.values())
    return [message for index, message in messages if index not in verdicts]


@lru_cache(maxsize=256)
def _parse_condition(condition: str) -> fql.Node:
    return fql.parse(condition)


def _deduplicate(connection: Connection, space_id: str, messages: list[Message],
                 result: IngestResult) -> list[tuple[int, Message]]:
    """The messages (with their positions) whose messageId is new to the space and to the batch."""
    seen = {row[0] for row in bulk.select_in(
        connection,
        "stored message ids",
        lambda placeholders: select(Event.message_id).where(Event.space_id == bindparam("space"), Event.message_id.in_(placeholders)),
        {message.message_id for message in messages},
        {"space": space_id},
    )}
    fresh = []
    for index, message in enumerate(messages):
        if message.message_id in seen:
            result.duplicates += 1
        else:
            seen.add(message.message_id)
            fresh.append((index, message))
    return fresh
