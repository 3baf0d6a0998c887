"""Matched entities: the entity rows that qualified a LINKED audience's member, nested by relationship.

A member's matched rows are, for every `entity()` condition of its definition that is not under a
`NOT`, the rows that condition's `where`s keep, and under each of them the rows its nested
conditions keep for that row (a nested row shows only under a parent row that was kept). Rows kept
by two conditions on one relationship show once, with the columns of both. This is the "entity rows
that made each profile match" of Segment's condition groups (`reference/data-graph.md` §2.4), taken
condition by condition: a negated condition keeps no row worth showing, since its rows disqualify.

`backend.cql.compiler.matched_entity_rows` compiles each condition's rows to a statement
(`MatchedStream`); `nest` puts the rows of all of them together per profile; the reference evaluator
answers the same question (`backend.cql.evaluate.matched_paths`), and `paths` is what the two are
compared by.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import Select


@dataclass(frozen=True)
class MatchedStream:
    """One entity() condition: `path` is the relationship slugs from the profile down to its own;
    `statement` selects k0 (the profile), k1… (the primary keys of the enclosing conditions' rows),
    pk (its row's primary key) and v0… (the `columns` shown, as the warehouse spells them). `number`
    tells it from the definition's other conditions, `enclosing` is the number of the condition whose
    `where` holds it (None at the top)."""

    path: tuple[str, ...]
    primary_key: str
    columns: tuple[str, ...]
    statement: Select = field(compare=False)
    number: int = 0
    enclosing: int | None = None


@dataclass(slots=True)
class MatchedRow:
    """A matched entity row: its relationship, primary key (column and value), the columns shown, and
    the matched rows under it by relationship slug."""

    relationship: str
    id_property: str
    key: Any
    properties: dict[str, Any] = field(default_factory=dict)
    children: dict[str, dict[Any, MatchedRow]] = field(default_factory=dict)


Matches = dict[str, dict[Any, MatchedRow]]  # relationship slug -> primary key -> row


def nest(results: Sequence[tuple[MatchedStream, Iterable[Sequence]]],
         profiles: Collection[str] | None = None) -> dict[str, Matches]:
    """Per profile (of `profiles`, if given), its matched rows under the profile, from each stream's
    rows."""
    found: dict[str, Matches] = defaultdict(dict)
    kept: dict[tuple, MatchedRow] = {}  # (condition number, profile, primary keys…) -> row
    for stream, rows in sorted(results, key=lambda result: len(result[0].path)):
        depth, slug = len(stream.path), stream.path[-1]
        if stream.enclosing is None:
            _nest_top(found, kept, stream, rows, profiles)
            continue
        for row in rows:
            keys, key, values = tuple(row[:depth]), row[depth], row[depth + 1:]
            if profiles is not None and keys[0] not in profiles:
                continue
            parent = kept.get((stream.enclosing, *keys))
            if parent is None:  # the enclosing condition did not keep its parent row
                continue
            siblings = parent.children.setdefault(slug, {})
            match = siblings.setdefault(key, MatchedRow(slug, stream.primary_key, key))
            kept[(stream.number, *keys, key)] = match
            match.properties.update(zip(stream.columns, map(json_value, values)))
    return dict(found)


def _nest_top(found: dict[str, Matches], kept: dict[tuple, MatchedRow], stream: MatchedStream,
              rows: Iterable[Sequence], profiles: Collection[str] | None) -> None:
    """`nest` for a condition at the top: its rows go under their profiles (the common case, and most
    of the rows, so it is kept short)."""
    slug, number, columns, primary_key = stream.path[0], stream.number, stream.columns, stream.primary_key
    for profile_id, key, *values in rows:
        if profiles is not None and profile_id not in profiles:
            continue
        siblings = found[profile_id].setdefault(slug, {})
        match = siblings.get(key)
        if match is None:
            match = siblings[key] = MatchedRow(slug, primary_key, key, {}, {})
        kept[(number, profile_id, key)] = match
        match.properties.update(zip(columns, map(json_value, values)))


def paths(matches: Matches) -> set[tuple[tuple[str, str], ...]]:
    """Every matched row as its path of (relationship, primary key as text) from the profile."""
    found = set()

    def walk(rows: Matches, above: tuple) -> None:
        for slug, by_key in rows.items():
            for key, row in by_key.items():
                path = (*above, (slug, str(key)))
                found.add(path)
                walk(row.children, path)

    walk(matches, ())
    return found


def entity_details(matches: Matches, per_level: int | None = None) -> dict[str, list[dict[str, Any]]]:
    """The rows as the Public API's `EntityDetails`, by relationship slug, nested level by level, at
    most `per_level` rows per relationship and parent (in primary-key order)."""
    return {slug: [_details(row, per_level) for row in _ordered(by_key)[:per_level]]
            for slug, by_key in matches.items()}


def _details(row: MatchedRow, per_level: int | None) -> dict[str, Any]:
    details = {"id": str(row.key), "idProperty": row.id_property, "relationshipSlug": row.relationship,
               "properties": row.properties}
    if row.children:
        details["entities"] = entity_details(row.children, per_level)
    return details


def documents(matches: Matches, entity_names: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    """The rows as JSON documents, kept between runs and carried to delivery: `EntityDetails` with the
    entity's name (`entity`), by relationship slug, nested."""
    return {slug: [document(row, entity_names) for row in _ordered(by_key)] for slug, by_key in matches.items()}


def document(row: MatchedRow, entity_names: dict[str, str]) -> dict[str, Any]:
    return {"id": str(row.key), "idProperty": row.id_property, "relationshipSlug": row.relationship,
            "entity": entity_names.get(row.relationship, row.relationship), "properties": row.properties,
            "entities": documents(row.children, entity_names) if row.children else {}}


def context(documents_: dict[str, list[dict[str, Any]]], columns: dict[str, Collection[str]]) -> dict[str, list]:
    """Documents as `data_graph_entity_context` holds them: per relationship slug an array of row
    objects, each with its primary key, the `columns` personalized for its relationship, its child
    relationships' arrays and `__entity`, its entity's name."""
    return {slug: [context_row(row, columns) for row in rows] for slug, rows in documents_.items()}


def context_row(row: dict[str, Any], columns: dict[str, Collection[str]]) -> dict[str, Any]:
    """One document's object in `data_graph_entity_context`."""
    wanted = {name.lower() for name in columns.get(row["relationshipSlug"], ())} | {row["idProperty"].lower()}
    shown = {name: value for name, value in row["properties"].items() if name.lower() in wanted}
    return {**shown, **context(row.get("entities") or {}, columns), "__entity": row["entity"]}


def values_changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether a row's document changed between runs: a column both show has another value, or a
    child relationship both show has other rows or a changed row (a column or relationship shown by
    one only, after personalization changed, is no change)."""
    if any(old["properties"][name] != value for name, value in new["properties"].items() if name in old["properties"]):
        return True
    for slug, rows in (new.get("entities") or {}).items():
        before = {row["id"]: row for row in (old.get("entities") or {}).get(slug, ())}
        if slug not in (old.get("entities") or {}):
            continue
        if set(before) != {row["id"] for row in rows}:
            return True
        if any(values_changed(before[row["id"]], row) for row in rows):
            return True
    return False


def _ordered(by_key: dict[Any, MatchedRow]) -> list[MatchedRow]:
    """The rows in primary-key order (one column's keys are of one type; NULL-free, as joined rows)."""
    if len(by_key) < 2:
        return list(by_key.values())
    try:
        return [by_key[key] for key in sorted(by_key)]
    except TypeError:
        return [by_key[key] for key in sorted(by_key, key=lambda key: (str(type(key)), str(key)))]


_PLAIN = (str, int, float, bool)


def json_value(value: Any) -> Any:
    """A warehouse value as JSON holds it: dates as `yyyy-mm-dd`, timestamps as ISO-8601 in UTC,
    decimals as numbers."""
    if value is None or type(value) in _PLAIN:
        return value
    if isinstance(value, datetime):
        moment = value if value.tzinfo is None else value.astimezone(timezone.utc).replace(tzinfo=None)
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        return value.isoformat()
    return float(value) if isinstance(value, Decimal) else value
