"""Storing messages: validation, messageId de-duplication, space filters, then identity resolution
and the profile rows (`store.ingest.profile_writer`) and the space's summary for the Space Schema tools
(`store.ingest.schema_summary`), all in one transaction per batch.

A batch is stored completely or not at all. Space filters drop matching messages before identity
resolution and count what they drop; they are evaluated before the write transaction begins, with
the filters enabled at that moment, so no space waits on another's filter evaluation. messageIds are
de-duplicated per space for as long as events are kept; a duplicate is never counted as dropped.

A message whose `context.personas.space_id` is the space's own was emitted by one of its own
audiences or computed traits (a forwarder pointed back at the space): it is not stored, since
realtime computations over it would emit more, for ever. It is counted (`looped`) and logged.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import Connection, bindparam, select

from backend import fql
from backend.tracking.identity import extract
from backend.tracking.messages import (
    MAX_MESSAGE_BYTES,
    Message,
    MessageError,
    check_structure,
    message_size,
    normalise,
    parse_time,
    to_ms,
)
from store.catalog import definitions, filters
from store.db import bulk, locks
from store.db.models import Event
from store.db.store import Store
from store.ingest import schema_summary
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


def accept(
    store: Store, space_id: str, raws: list, source_id: str, *, sent_at: object = None, context: object = None
) -> tuple[IngestResult, list[Rejection]]:
    """Validate raw Segment-spec messages and store the valid ones; the others come back with reasons.
    The Tracking API and the file importer both come through here."""
    received_at = store.now()
    messages, rejected = [], []
    try:
        batch_sent_at = parse_time(sent_at, "sentAt")
        check_structure(context)
    except MessageError as error:
        return IngestResult(), [Rejection(index, f"the batch's {error}") for index in range(len(raws))]
    for index, raw in enumerate(raws):
        try:
            check_structure(raw)
            if message_size(raw) > MAX_MESSAGE_BYTES:
                raise MessageError(f"message is larger than {MAX_MESSAGE_BYTES // 1024} KB")
            messages.append(normalise(raw, received_at, batch_sent_at=batch_sent_at, batch_context=context))
        except MessageError as error:
            rejected.append(Rejection(index, str(error)))
    return ingest(store, space_id, messages, source_id), rejected


def ingest(store: Store, space_id: str, messages: list[Message], source_id: str) -> IngestResult:
    """Store a batch of validated messages for a space in one transaction. Batches into one space
    take turns (on PostgreSQL by a lock every process shares): resolving identities reads the
    identity graph and then changes it, so two batches must never interleave."""
    result = IngestResult()
    messages = _without_own_emissions(space_id, messages, result)
    verdicts = _filter_verdicts(store, space_id, messages)
    with store.write() as session:
        locks.exclusive(session, [f"ingest into {space_id}"])
        connection = session.connection()
        unseen = _deduplicate(connection, space_id, messages, result)
        fresh = _apply_filters(connection, unseen, verdicts, result, to_ms(store.now()))
        if fresh:
            computed_keys = definitions.live_keys(connection, space_id)
            writer = BatchWriter(connection, space_id, source_id, to_ms(store.now()), computed_keys=computed_keys)
            extracted = [(message, extract(message)) for message in fresh]
            writer.preload([identifiers for _, identifiers in extracted])
            for message, identifiers in extracted:
                writer.add(message, identifiers)
            writer.flush()
            schema_summary.record(connection, space_id, _summary(fresh, computed_keys))
            result.computed_keys_dropped = writer.computed_keys_dropped
        result.stored = len(fresh)
        if result.computed_keys_dropped:
            logger.warning("%s: %d trait values not written: they name audiences or computed traits, whose "
                           "values only their runs write", space_id, result.computed_keys_dropped)
        return result


def _summary(messages: list[Message], computed_keys: set[str]) -> schema_summary.Summary:
    summary = schema_summary.Summary(computed_keys)
    for message in messages:
        summary.add(schema_summary.Received(message.type, message.event, message.properties, message.context,
                                            message.traits, message.received_at_ms))
    return summary


def _without_own_emissions(space_id: str, messages: list[Message], result: IngestResult) -> list[Message]:
    kept = [message for message in messages if _personas_space(message) != space_id]
    result.looped = len(messages) - len(kept)
    if result.looped:
        logger.warning("%s: %d message(s) not stored: the space's own audiences or computed traits emitted them "
                       "(context.personas.space_id), so a destination sends them back into it", space_id, result.looped)
    return kept


def _personas_space(message: Message) -> object:
    personas = message.context.get("personas")
    return personas.get("space_id") if isinstance(personas, dict) else None


def _filter_verdicts(store: Store, space_id: str, messages: list[Message]) -> dict[int, str]:
    """The dropping filter each message matches (by its position in `messages`), if any."""
    with store.read() as session:
        active = [(filter_id, _parse_condition(condition))
                  for filter_id, condition in filters.dropping_filters(session.connection(), space_id)]
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
    result.dropped = sum(drops.values())
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
