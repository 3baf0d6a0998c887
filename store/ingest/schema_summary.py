"""What a space has received, summarised as ingest stores it, so that the Space Schema tools answer
from a few small tables instead of reading every event: the kinds of message (`schema_event`), the
properties and context fields of each event and the traits Identify and Group calls set
(`schema_field`, nested names joined with dots, a literal dot written `\\.`), and how often each
field had each value (`schema_sample`).

Counts are of messages received (events later removed stay counted), and last seen is the time of
receipt. A field keeps the counts of its first SAMPLE_CAP distinct values (a few more when one batch
brings many at once). So a field with fewer values, like a plan, a country or a category (what a
definition compares), has exact counts, most frequent first. A field with more values (ids, times,
addresses) keeps a sample of its early ones. Arrays, objects and texts longer than SAMPLE_CHARS are
not sampled. A trait named by an audience or computed trait is not recorded as set by a call, since
only that computation's runs write it. Events stored before the summary existed are summarised once,
when a process first starts on the upgraded database (`catch_up`).
"""

from __future__ import annotations

import functools
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import orjson
from sqlalchemy import Connection, bindparam, case, func, literal_column, select

from store.catalog import definitions
from store.db import bulk, locks
from store.db.models import Event, SchemaEvent, SchemaField, SchemaMeta, SchemaSample
from store.db.store import Store

logger = logging.getLogger("segment_audiences.ingest")

SAMPLE_CAP = 1000
READ_KEPT_FROM = SAMPLE_CAP // 4  # values a batch brings to a field at the cap from which it reads the kept ones
SAMPLE_CHARS = 200
MAX_DEPTH = 5
MAX_LEAVES = 500
_CHUNK = 5000
PENDING_KEY = "schema_summary_pending"  # "<last id summarised>:<newest id before the summary>"
EVENT_TYPES = {"track": "TRACK", "page": "PAGE", "screen": "SCREEN", "identify": "IDENTIFY", "group": "GROUP",
               "alias": "ALIAS"}
CALL_NAMES = {"identify": "Identify", "group": "Group", "alias": "Alias"}
TRAIT_COLLECTIONS = {"identify": "users", "group": "accounts"}


@dataclass(frozen=True)
class Received:
    """The parts of a stored message the summary reads."""

    type: str
    event: str | None
    properties: dict
    context: dict
    traits: dict | None
    received_at_ms: int


@dataclass
class _Tally:
    count: int = 0
    last_seen_ms: int = 0
    data_type: str | None = None
    values: Counter = field(default_factory=Counter)

    def see(self, at_ms: int, data_type: str | None = None, sample: str | None = None) -> None:
        self.count += 1
        if at_ms > self.last_seen_ms:
            self.last_seen_ms = at_ms
        if data_type is not None and data_type != self.data_type:
            self.data_type = data_type if self.data_type is None else "MIXED"
        if sample is not None:
            self.values[sample] += 1


class Summary:
    """One batch's messages, tallied by event and by field. A field's values are gathered as messages
    are added and tallied once, when `fields` is first read: a batch's leaves are most of its work,
    and tallying a field's values together costs a fraction of tallying them one at a time."""

    def __init__(self, computed_keys: set[str]):
        self.computed_keys = computed_keys
        self.events: defaultdict[tuple[str, str], _Tally] = defaultdict(_Tally)
        self._values: defaultdict[tuple[str, str, str], list] = defaultdict(list)
        self._last_seen: dict[tuple[str, str, str], int] = {}

    def add(self, message: Received) -> None:
        name = message.event or CALL_NAMES.get(message.type, message.type)
        at = message.received_at_ms
        self.events[(EVENT_TYPES[message.type], name)].see(at)
        if message.type in ("track", "page", "screen"):
            self._gather("PROPERTY", name, leaves(message.properties), at)
            self._gather("CONTEXT", name, leaves(message.context), at)
        if message.type in TRAIT_COLLECTIONS and message.traits:
            found = [leaf for leaf in leaves(message.traits) if leaf[0] not in self.computed_keys]
            self._gather(TRAIT_COLLECTIONS[message.type], "", found, at)

    def _gather(self, kind: str, event: str, found: list[tuple[str, str, object]], at_ms: int) -> None:
        values, last_seen = self._values, self._last_seen
        for _, path, value in found:
            key = (kind, event, path)
            values[key].append(value)
            if last_seen.get(key, 0) < at_ms:
                last_seen[key] = at_ms

    @functools.cached_property
    def fields(self) -> dict[tuple[str, str, str], _Tally]:
        """Each field's tally: how many values, last seen, its type (MIXED for several) and the
        counts of its sampled values; read once the batch's messages are all added."""
        return {key: _tally(values, self._last_seen[key]) for key, values in self._values.items()}


def _tally(values: list, last_seen_ms: int) -> _Tally:
    kinds = set(map(type, values))
    if kinds <= DATA_TYPES.keys():  # values decoded from JSON: typed by their Python types
        types = {DATA_TYPES[kind] for kind in kinds}
    else:
        types = set(map(data_type, values))
    if kinds == {str}:  # most fields: counted at C speed, then the texts too long to sample left out
        samples = Counter(values)
        for text in [text for text in samples if len(text) > SAMPLE_CHARS]:
            del samples[text]
    else:
        samples = Counter(map(sample_text, values))
        samples.pop(None, None)
    return _Tally(len(values), last_seen_ms, types.pop() if len(types) == 1 else "MIXED", samples)


def leaves(document: object) -> list[tuple[str, str, object]]:
    """(top-level key, dotted path, value) of each non-null leaf of a JSON object, objects followed
    MAX_DEPTH levels down and at most MAX_LEAVES leaves."""
    found: list[tuple[str, str, object]] = []

    def walk(node: dict, top: str | None, prefix: str, depth: int) -> None:
        for key, value in node.items():
            if len(found) >= MAX_LEAVES:
                return
            key = str(key)
            path = prefix + (key.replace(".", "\\.") if "." in key else key)
            first = key if top is None else top
            if isinstance(value, dict) and value and depth < MAX_DEPTH:
                walk(value, first, path + ".", depth + 1)
            elif value is not None:
                found.append((first, path, value))

    if isinstance(document, dict):
        walk(document, None, "", 1)
    return found


DATA_TYPES = {str: "STRING", bool: "BOOLEAN", int: "NUMBER", float: "NUMBER", list: "ARRAY", dict: "OBJECT"}


def data_type(value: object) -> str:
    if type(value) in DATA_TYPES:  # every value decoded from JSON
        return DATA_TYPES[type(value)]
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, (int, float)):
        return "NUMBER"
    if isinstance(value, list):
        return "ARRAY"
    if isinstance(value, dict):
        return "OBJECT"
    return "STRING"


def sample_text(value: object) -> str | None:
    """A value as the Space Schema API shows samples (text), or None when it is not sampled."""
    if type(value) is str:  # most leaves: checked first
        return value if len(value) <= SAMPLE_CHARS else None
    if isinstance(value, (list, dict)):
        return None
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int):
        text = str(value)  # exact at any size (JSON numbers beyond 64 bits are stored exactly too)
    else:
        text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text if len(text) <= SAMPLE_CHARS else None


def record(connection: Connection, space_id: str, summary: Summary) -> None:
    """Add one batch's tallies to the space's summary, in the batch's transaction."""
    if not summary.events:
        return
    _add_events(connection, [{"space_id": space_id, "type": kind, "name": name, "count": tally.count,
                              "last_seen_ms": tally.last_seen_ms} for (kind, name), tally in summary.events.items()])
    if not summary.fields:
        return
    _add_fields(connection, [{"space_id": space_id, "kind": kind, "event": event, "name": name,
                              "data_type": tally.data_type, "count": tally.count, "last_seen_ms": tally.last_seen_ms,
                              "distinct_values": 0} for (kind, event, name), tally in summary.fields.items()])
    _add_samples(connection, space_id, summary.fields)


def catch_up(store: Store) -> None:
    """Summarise the events stored before the summary existed (migration 0008 notes the newest one's
    id as `PENDING_KEY`), oldest first, one chunk per write transaction so ingest is never held up for
    long; every process calls this on start, and one does the work."""
    logged = False
    while True:
        with store.write() as session:
            locks.exclusive(session, ["summarise stored events"])
            pending = session.get(SchemaMeta, PENDING_KEY)
            if pending is None:
                return
            after, _, upto = pending.value.partition(":")
            connection = session.connection()
            if not logged:
                logger.info("summarising the events stored up to #%s for the Space Schema tools", upto)
                logged = True
            last = _summarise_chunk(connection, int(after), int(upto))
            if last is None:
                session.delete(pending)
            else:
                pending.value = f"{last}:{upto}"
                session.add(pending)


def _summarise_chunk(connection: Connection, after: int, upto: int) -> int | None:
    """Summarise up to _CHUNK stored events with ids in (after, upto]; the last id read, or None when
    there were none."""
    columns = (Event.id, Event.space_id, Event.type, Event.event, Event.properties, Event.context, Event.traits,
               Event.received_at_ms)
    rows = connection.execute(select(*columns).where(Event.id > after, Event.id <= upto).order_by(Event.id)
                              .limit(_CHUNK)).all()
    batches: dict[str, Summary] = {}
    for _, space_id, kind, event, properties, context, traits, received_at_ms in rows:
        if space_id not in batches:
            batches[space_id] = Summary(definitions.live_keys(connection, space_id))
        batches[space_id].add(Received(kind, event, _document(properties), _document(context),
                                       None if traits is None else _document(traits), received_at_ms))
    for space_id, summary in batches.items():
        record(connection, space_id, summary)
    return rows[-1][0] if rows else None


def _document(value: object) -> dict:
    return value if isinstance(value, dict) else orjson.loads(value)


def _add_events(connection: Connection, rows: list[dict]) -> None:
    _add_tallies(connection, "summarise events", SchemaEvent.__table__, ("space_id", "type", "name"), rows)


def _add_fields(connection: Connection, rows: list[dict]) -> None:
    _add_tallies(connection, "summarise fields", SchemaField.__table__, ("space_id", "kind", "event", "name"), rows,
                 lambda table, new: {"data_type": case((table.c.data_type == new.data_type, table.c.data_type),
                                                       else_=literal_column("'MIXED'"))})


def _add_tallies(connection: Connection, name: str, table, keys: tuple[str, ...], rows: list[dict],
                 also=lambda table, new: {}) -> None:
    """Insert `rows`, or add their counts to the stored ones and keep the later last seen (and what
    `also` sets)."""
    def build():
        statement = bulk.dialect_insert(connection, table).values({column: bindparam(column) for column in rows[0]})
        new = statement.excluded
        return statement.on_conflict_do_update(
            index_elements=[table.c[key] for key in keys],
            set_={"count": table.c["count"] + new["count"], "last_seen_ms": _later(table.c.last_seen_ms, new.last_seen_ms),
                  **also(table, new)})

    bulk.execute_dicts(connection, name, build, rows)


def _add_samples(connection: Connection, space_id: str, fields: dict[tuple[str, str, str], _Tally]) -> None:
    """Count the batch's values: a field under the cap takes new ones, a field at it only counts the
    values it keeps."""
    table, samples = SchemaField.__table__, SchemaSample.__table__
    stored = bulk.select_in(
        connection, "summarised fields",
        lambda placeholders: select(table.c.id, table.c.kind, table.c.event, table.c.name, table.c.distinct_values).where(
            table.c.space_id == bindparam("space"), table.c.name.in_(placeholders)),
        sorted({name for _, _, name in fields}), {"space": space_id})
    growing, full = [], []
    for field_id, kind, event, name, distinct in stored:
        tally = fields.get((kind, event, name))
        if tally is None:
            continue
        if distinct < SAMPLE_CAP:
            growing.extend({"field_id": field_id, "value": value, "count": n} for value, n in tally.values.items())
        else:
            full.extend({"field_id": field_id, "value": value, "n": n}
                        for value, n in _counted(connection, field_id, tally.values))

    def add():
        statement = bulk.dialect_insert(connection, samples).values(
            {name: bindparam(name) for name in ("field_id", "value", "count")})
        return statement.on_conflict_do_update(index_elements=[samples.c.field_id, samples.c.value],
                                               set_={"count": samples.c["count"] + statement.excluded["count"]})

    bulk.execute_dicts(connection, "add samples", add, growing)
    bulk.execute_dicts(connection, "count kept samples", lambda: samples.update().where(
        samples.c.field_id == bindparam("field_id"), samples.c.value == bindparam("value")).values(
        count=samples.c["count"] + bindparam("n")), full)
    bulk.execute_dicts(connection, "count distinct samples", lambda: table.update().where(
        table.c.id == bindparam("field_id")).values(distinct_values=select(func.count()).where(
            samples.c.field_id == bindparam("field_id")).scalar_subquery()),
        [{"field_id": field_id} for field_id in sorted({row["field_id"] for row in growing})])


def _counted(connection: Connection, field_id: int, values: Counter) -> list[tuple[str, int]]:
    """A batch's counts of the values a field at the cap keeps, found the cheaper way. A batch with
    few values for the field counts each where it is stored (an update that finds none changes
    nothing). One with many (a field of ids or addresses brings one a message, and keeps none of them)
    reads the values the field keeps, about SAMPLE_CAP, and counts only those: reading a kept value
    costs a fraction of an update finding nothing, so this is cheaper from READ_KEPT_FROM values on."""
    if len(values) < READ_KEPT_FROM:
        return list(values.items())
    samples = SchemaSample.__table__
    kept = bulk.select_all(connection, "kept samples", lambda: select(samples.c.value).where(
        samples.c.field_id == bindparam("field")), {"field": field_id})
    return [(value, values[value]) for (value,) in kept if value in values]


def _later(stored, new):
    return case((new > stored, new), else_=stored)
