"""Audiences and computed traits seen as computations: what to compute, over which profiles and events,
and in which order (a definition that reads another's key comes after it).

Choices where Segment's documents are silent:
- Eligibility: a USERS audience considers only profiles with an external id of a type in
  `filterByExternalIds`; a computed trait, profiles with a non-anonymous id unless
  `includeAnonymousUsers` is set; accounts are always eligible.
- Event horizon: with `includeHistoricalData`, an audience reads every stored event (its windows
  still apply), or, when `backfillEventDataDays` is given, events received after its creation and
  those whose timestamp is at most that many days before it; without history, only events received
  after its creation. Computed traits read all history.
- LINKED audiences compute like USERS audiences over profiles, and their `entity()` conditions read
  the space's Data Graph, resolved against the warehouse when a run starts (`graph`).
- A computation `as_of_ms` a past moment (a backtest) also reads only events timestamped at or before
  it; traits, identities and the Data Graph are read as they are now (their history is not kept).
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from graphlib import CycleError, TopologicalSorter
from typing import Any

from sqlalchemy import ColumnElement, CursorResult, Row, Select, and_, bindparam, exists, or_, select as core_select
from sqlmodel import Session, col

from backend import cql
from backend.cql.compiler import Scope, Tables, audience_members, matched_entity_rows, trait_values
from backend.cql.daily import Days, counts_by_day
from backend.cql.matched import MatchedStream
from backend.clock import to_ms
from backend.datagraph.linked import LinkedGraph
from store.analytic import tables as analytic_tables
from store.analytic.store import AnalyticStore, FullResult
from store.catalog import data_graphs
from store.catalog.audiences import DEFAULT_EXTERNAL_IDS
from store.db.budget import UNLIMITED, Budget
from store.db.models import Audience, AudiencePreview, ComputedTrait, Event, Identifier, Profile, ProfileLink, Trait
from store.db.store import Store

TABLES = Tables(Profile.__table__, Event.__table__, Trait.__table__, ProfileLink.__table__, identifier=Identifier.__table__)
DAY_MS = 86_400_000
PROFILE_IDS = bindparam("profile_ids", expanding=True)
RESTRICTED_STATEMENTS = 4_096  # kept built: more than a space's computations (`definitions.MAX_COMPUTATIONS`)
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


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
    graph: LinkedGraph | None = field(default=None, compare=False)  # what entity() reads, set for a run
    target_entity: str = "profile"  # LINKED: the relationship whose rows are members, or the profile
    as_of_ms: int | None = None  # a backtest's moment: no event timestamped after it is read

    def __hash__(self) -> int:  # equal computations have equal ids, queries and creation times
        return hash((self.id, self.query, self.created_at_ms))

    @property
    def accounts(self) -> bool:
        return self.profile_type == "ACCOUNTS"

    @property
    def reads_entities(self) -> bool:
        return bool(self.analysis.entity_relationships)

    def rows_for(self, session: Session, now, profile_ids: Collection[str]) -> CursorResult:
        """The statement's rows for some profiles, on the operational store: the incremental path."""
        return session.execute(self.restricted(now), {"profile_ids": list(profile_ids)})

    def restricted(self, now) -> Select:
        """The statement restricted to the profiles bound as `profile_ids` when it runs. A definition
        that does not read the clock has one for good, built once: a realtime pass of a space with many
        computations runs them all for every batch, and building each costs more than running it."""
        if self.analysis.reads_clock or self.graph is not None:
            return self.statement(now, PROFILE_IDS)
        return _clock_free_restricted(self)

    def statement(self, now, profile_ids: Collection[str] | None = None, *, analytic: Tables | None = None) -> Select:
        """The compiled SELECT of members (audience) or `(profile, value)` rows (computed trait), over
        the operational store's tables, or over `analytic`, the analytic store's."""
        build = audience_members if self.kind == "audience" else trait_values
        return build(cql.parse(self.query), tables=self._tables(analytic), scope=self._scope(profile_ids, analytic),
                     now=now)

    def counts_by_day(self, days: Days, *, analytic: Tables | None = None) -> Select | None:
        """An audience's change of size on each of `days` in one statement (`backend.cql.daily`),
        reading events until the last day's end; None when its definition is not counted that way."""
        at_end = replace(self, as_of_ms=days.end_ms)
        return counts_by_day(cql.parse(self.query), tables=self._tables(analytic), scope=at_end._scope(None, analytic),
                             days=days)

    def _scope(self, profile_ids: Collection[str] | None, analytic: Tables | None) -> Scope:
        return Scope(self.space_id, self.accounts, profile_ids, self._eligibility(analytic is not None),
                     self._event_horizon())

    def _tables(self, analytic: Tables | None) -> Tables:
        return (TABLES if analytic is None else analytic)._replace(graph=self.graph)

    def matched_streams(self, now, columns: dict[str, Collection[str]], profile_ids: Collection[str] | None = None,
                        *, analytic: Tables | None = None) -> list[MatchedStream]:
        """The statements of the rows each of its entity() conditions keeps (`backend.cql.matched`),
        for every profile or some, reading `columns` besides its own."""
        scope = Scope(self.space_id, False, profile_ids)
        tables = (TABLES if analytic is None else analytic)._replace(graph=self.graph)
        return matched_entity_rows(cql.parse(self.query), tables=tables, scope=scope, now=now, columns=columns)

    def on_analytic_store(self, analytics: AnalyticStore, now, budget: Budget = UNLIMITED,
                          attached=None) -> FullResult | None:
        """Every profile's rows computed on the analytic store, within `budget` (None while its first
        copy is under way); `attached` attaches what else the statement reads (the warehouse)."""
        tables = analytics.tables_for(self.analysis.property_paths)
        return analytics.compute(self.statement(now, analytic=tables), self.space_id, self.analysis.referenced_traits,
                                 budget=budget, attached=attached)

    def changes_on_analytic_store(self, analytics: AnalyticStore, now, budget: Budget = UNLIMITED) -> FullResult | None:
        """`on_analytic_store`, for a computed trait whose values the analytic store keeps: only the
        profiles whose value changed (`AnalyticStore.compute_changes`)."""
        tables = analytics.tables_for(self.analysis.property_paths)
        return analytics.compute_changes(self.statement(now, analytic=tables), self.space_id, self.id, self.key,
                                         self.analysis.referenced_traits, budget=budget)

    def _eligibility(self, analytic: bool) -> tuple[ColumnElement, ...]:
        """Profiles with an external id of an eligible type: a correlated EXISTS on the operational
        store (an index lookup per profile, right for a few profiles), an IN over the identifiers on
        the analytic store (which cannot correlate)."""
        if self.accounts:
            return ()
        if self.kind == "audience":
            types = self.options.get("filterByExternalIds") or DEFAULT_EXTERNAL_IDS
        elif self.options.get("includeAnonymousUsers"):
            return ()
        else:
            types = DEFAULT_EXTERNAL_IDS
        if analytic:
            identifier = analytic_tables.IDENTIFIER
            eligible = core_select(identifier.c.profile_id).where(identifier.c.type.in_(types))
            return (analytic_tables.PROFILE.c.id.in_(eligible),)
        profile = TABLES.profile
        return (exists().where(Identifier.profile_id == profile.c.id, col(Identifier.type).in_(types)),)

    def _event_horizon(self):
        history = self._history_horizon()
        if self.as_of_ms is None:
            return history
        as_of = self.as_of_ms
        if history is None:
            return lambda event: event.c.timestamp_ms <= as_of
        return lambda event: and_(history(event), event.c.timestamp_ms <= as_of)

    def _history_horizon(self):
        if self.kind != "audience":
            return None
        created, options = self.created_at_ms, self.options
        if not options.get("includeHistoricalData"):
            return lambda event: event.c.received_at_ms >= created
        if not options.get("backfillEventDataDays"):
            return None
        backfill = created - int(options["backfillEventDataDays"]) * DAY_MS
        return lambda event: or_(event.c.received_at_ms >= created, event.c.timestamp_ms >= backfill)


@functools.lru_cache(maxsize=RESTRICTED_STATEMENTS)
def _clock_free_restricted(computation: Computation) -> Select:
    return computation.statement(EPOCH, PROFILE_IDS)  # it reads no clock: any time compiles alike


def for_audience(row: Audience | Row) -> Computation:
    return Computation(row.id, row.space_id, "audience", row.key, row.query, row.audience_type, row.options,
                       to_ms(row.created_at), cql.validate(row.query, kind="audience", audience_type=row.audience_type),
                       target_entity=row.target_entity or "profile")


def for_preview(row: AudiencePreview) -> Computation:
    """A preview computes like an audience created when the preview was, with no key of its own."""
    query = row.definition["query"]
    return Computation(row.id, row.space_id, "audience", "", query, row.audience_type, row.options,
                       to_ms(row.created_at), cql.validate(query, kind="audience", audience_type=row.audience_type),
                       target_entity=row.definition.get("targetEntity") or "profile")


def for_trait(row: ComputedTrait | Row) -> Computation:
    return Computation(row.id, row.space_id, "computed_trait", row.key, row.query, row.definition_type,
                       row.options or {}, to_ms(row.created_at),
                       cql.validate(row.query, kind="computed_trait", audience_type=row.definition_type))


def enabled(session: Session, space_id: str | None = None) -> list[Computation]:
    """Every enabled, live audience and computed trait (of one space, or all)."""
    audiences = core_select(*Audience.__table__.c).where(Audience.enabled, col(Audience.deleted_at).is_(None))
    traits = core_select(*ComputedTrait.__table__.c).where(ComputedTrait.enabled,
                                                           col(ComputedTrait.deleted_at).is_(None))
    if space_id is not None:
        audiences = audiences.where(Audience.space_id == space_id)
        traits = traits.where(ComputedTrait.space_id == space_id)
    return ([for_audience(row) for row in session.execute(audiences)]  # rows, not instances: a pass reads them
            + [for_trait(row) for row in session.execute(traits)])  # in its write transaction


def find(session: Session, computation_id: str) -> Computation | None:
    if computation_id.startswith("aud_"):
        row = session.get(Audience, computation_id)
        return None if row is None or row.deleted_at is not None else for_audience(row)
    row = session.get(ComputedTrait, computation_id)
    return None if row is None or row.deleted_at is not None else for_trait(row)


def with_data_graph(store: Store, computation: Computation) -> Computation:
    """The computation with its space's Data Graph resolved against the warehouse now, when it reads
    entities (`store.compute.linked`)."""
    if not computation.reads_entities:
        return computation
    return replace(computation, graph=data_graphs.linked_graph(store, computation.space_id))


def explain(store: Store, computation: Computation) -> tuple[str, str]:
    """The engine a full run of the computation reads (the analytic store's, else the operational
    database's) and the SQL it sends it now, values inlined for reading (its analysis says cadence
    and references)."""
    computation = with_data_graph(store, computation)
    analytics = store.analytics
    if analytics is not None:
        tables = analytics.tables_for(computation.analysis.property_paths, add=False)
        return analytics.name, analytics.sql(computation.statement(store.now(), analytic=tables))
    statement = computation.statement(store.now())
    return store.engine.dialect.name, str(statement.compile(dialect=store.engine.dialect,
                                                             compile_kwargs={"literal_binds": True}))


def dependency_order(computations: Iterable[Computation]) -> list[Computation]:
    """Computations ordered so that each comes after those whose keys it reads (`trait('<key>')`),
    otherwise oldest first. Definitions are checked for cycles when saved; should one slip through,
    the oldest-first order is kept."""
    pending = sorted(computations, key=lambda c: (c.space_id, c.created_at_ms, c.id))
    by_key = {(c.space_id, c.key): c.id for c in pending}
    graph = {c.id: [by_key[(c.space_id, key)] for key in c.analysis.referenced_traits if (c.space_id, key) in by_key]
             for c in pending}
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError:
        return pending
    by_id = {c.id: c for c in pending}
    return [by_id[computation_id] for computation_id in order]
