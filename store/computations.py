"""Audiences and computed traits seen as computations: what to compute, over which profiles and events,
and in which order (a definition that reads another's key comes after it).

Choices where Segment's documents are silent:
- Eligibility: a USERS audience considers only profiles with an external id of a type in
  `filterByExternalIds`; a computed trait, profiles with a non-anonymous id unless
  `includeAnonymousUsers` is set; accounts are always eligible.
- Event horizon: with `includeHistoricalData`, an audience reads events received after its creation
  and those whose timestamp is at most `backfillEventDataDays` before it; without, only the former.
  Computed traits read all history.
- LINKED audiences compute like USERS audiences over profiles; `entity()` fails their run with the
  reason, since this engine has no warehouse data graph.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, exists, or_
from sqlalchemy.dialects import sqlite
from sqlmodel import Session, col, select

from backend import cql
from backend.cql.compiler import Scope, Tables, audience_members, trait_values
from backend.clock import to_ms
from store.audiences import DEFAULT_EXTERNAL_IDS
from store.models import Audience, ComputedTrait, Event, Identifier, Profile, ProfileLink, Trait

TABLES = Tables(Profile.__table__, Event.__table__, Trait.__table__, ProfileLink.__table__)
DAY_MS = 86_400_000


@dataclass(frozen=True)
class Computation:
    id: str
    space_id: str
    kind: str  # "audience" | "computed_trait"
    key: str
    query: str
    profile_type: str  # "USERS" | "ACCOUNTS" | "LINKED"
    options: dict[str, Any]
    created_at_ms: int
    analysis: cql.Analysis

    @property
    def accounts(self) -> bool:
        return self.profile_type == "ACCOUNTS"

    def statement(self, now, profile_ids: Collection[str] | None = None) -> Select:
        """The compiled SELECT of members (audience) or `(profile, value)` rows (computed trait)."""
        root = cql.parse(self.query)
        scope = Scope(self.space_id, self.accounts, profile_ids, self._eligibility(), self._event_horizon())
        build = audience_members if self.kind == "audience" else trait_values
        return build(root, tables=TABLES, scope=scope, now=now)

    def _eligibility(self) -> tuple[ColumnElement, ...]:
        if self.accounts:
            return ()
        if self.kind == "audience":
            types = self.options.get("filterByExternalIds") or DEFAULT_EXTERNAL_IDS
        elif self.options.get("includeAnonymousUsers"):
            return ()
        else:
            types = DEFAULT_EXTERNAL_IDS
        profile = TABLES.profile
        return (exists().where(Identifier.profile_id == profile.c.id, col(Identifier.type).in_(types)),)

    def _event_horizon(self):
        if self.kind != "audience":
            return None
        created, options = self.created_at_ms, self.options
        if not options.get("includeHistoricalData"):
            return lambda event: event.c.received_at_ms >= created
        backfill = created - int(options.get("backfillEventDataDays") or 0) * DAY_MS
        return lambda event: or_(event.c.received_at_ms >= created, event.c.timestamp_ms >= backfill)


def for_audience(row: Audience) -> Computation:
    return Computation(row.id, row.space_id, "audience", row.key, row.query, row.audience_type, row.options,
                       to_ms(row.created_at), _analysis(row.query, "audience", row.audience_type))


def for_trait(row: ComputedTrait) -> Computation:
    return Computation(row.id, row.space_id, "computed_trait", row.key, row.query, row.definition_type,
                       row.options or {}, to_ms(row.created_at),
                       _analysis(row.query, "computed_trait", row.definition_type))


def _analysis(query: str, kind: str, profile_type: str) -> cql.Analysis:
    return cql.validate(query, kind=kind, audience_type=profile_type)


def enabled(session: Session, space_id: str | None = None) -> list[Computation]:
    """Every enabled, live audience and computed trait (of one space, or all)."""
    audiences = select(Audience).where(Audience.enabled, col(Audience.deleted_at).is_(None))
    traits = select(ComputedTrait).where(ComputedTrait.enabled, col(ComputedTrait.deleted_at).is_(None))
    if space_id is not None:
        audiences = audiences.where(Audience.space_id == space_id)
        traits = traits.where(ComputedTrait.space_id == space_id)
    return ([for_audience(row) for row in session.exec(audiences)]
            + [for_trait(row) for row in session.exec(traits)])


def find(session: Session, computation_id: str) -> Computation | None:
    if computation_id.startswith("aud_"):
        row = session.get(Audience, computation_id)
        return None if row is None or row.deleted_at is not None else for_audience(row)
    row = session.get(ComputedTrait, computation_id)
    return None if row is None or row.deleted_at is not None else for_trait(row)


@dataclass(frozen=True)
class Explanation:
    sql: str
    cadence: str
    cadence_reason: str
    referenced_keys: tuple[str, ...]
    event_names: tuple[str, ...]
    largest_window_hours: float | None


def explain(computation: Computation, now) -> Explanation:
    """What a computation runs and why: its SQL (values inlined, for reading), cadence and references."""
    statement = computation.statement(now)
    sql = str(statement.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))
    analysis = computation.analysis
    return Explanation(sql, analysis.cadence, analysis.cadence_reason, analysis.referenced_traits,
                       analysis.event_names, analysis.largest_window_hours)


def dependency_order(computations: Iterable[Computation]) -> list[Computation]:
    """Computations ordered so that each comes after those whose keys it reads (`trait('<key>')`).
    Definitions are checked for cycles when saved; should one slip through, its members keep their
    given order."""
    pending = sorted(computations, key=lambda c: (c.space_id, c.created_at_ms, c.id))
    by_key = {(c.space_id, c.key): c for c in pending}
    ordered: list[Computation] = []
    placed: set[str] = set()
    visiting: set[str] = set()

    def place(computation: Computation) -> None:
        if computation.id in placed or computation.id in visiting:
            return
        visiting.add(computation.id)
        for key in computation.analysis.referenced_traits:
            dependency = by_key.get((computation.space_id, key))
            if dependency is not None:
                place(dependency)
        visiting.discard(computation.id)
        placed.add(computation.id)
        ordered.append(computation)

    for computation in pending:
        place(computation)
    return ordered
