"""How audiences' current members overlap: every pair's intersection, the union, and one audience's
share in each of the others.

One grouped statement answers it for up to MOST_AUDIENCES audiences: each member gets a bit per
audience it is in (a profile has at most one open stay per audience), and the members are counted
per combination of bits. Every intersection and the union are sums over those combinations (at most
2^10 of them), so the cost is one pass over the audiences' members, whatever the number of pairs.

Where the analytic store keeps copies of values (DuckDB), that pass reads the copies of the
audiences' `<key>` values there (`AnalyticStore.read_values`), brought up to date from the change log
first: an engine made for grouping millions of rows. The first question about an audience copies its
values whole; later ones copy only what changed since. Elsewhere, and for members of a split's group
(which the `<key>` values do not carry), the pass is over the open membership rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, case, func, or_, select

from store.analytic import tables as analytic
from store.catalog.audiences import require_audience
from store.db.errors import InputValidation
from store.db.models import Membership
from store.db.store import Store

FEWEST_AUDIENCES, MOST_AUDIENCES = 2, 10


@dataclass(frozen=True)
class Pair:
    first: str
    second: str
    intersection: int


@dataclass(frozen=True)
class Overlap:
    sizes: dict[str, int]  # audience id -> members, in the order asked
    names: dict[str, str]
    pairs: list[Pair]
    union: int


def overlap(store: Store, space_id: str, audience_ids: list[str], split_groups: dict[str, str] | None = None) -> Overlap:
    """The overlap of the audiences' current members; for an audience named in `split_groups`, only
    its members in that group of its split."""
    split_groups = split_groups or {}
    strays = sorted(set(split_groups) - set(audience_ids))
    if strays:
        raise InputValidation(f"splitGroups names {', '.join(strays)}, not among audienceIds.", field="splitGroups")
    if len(set(audience_ids)) != len(audience_ids):
        raise InputValidation("audienceIds names an audience twice; name each once.", field="audienceIds")
    if not FEWEST_AUDIENCES <= len(audience_ids) <= MOST_AUDIENCES:
        raise InputValidation(f"Give {FEWEST_AUDIENCES} to {MOST_AUDIENCES} audience ids "
                              f"(got {len(audience_ids)}).", field="audienceIds")
    with store.read() as session:
        found = [require_audience(session, space_id, audience_id) for audience_id in audience_ids]
        names = {audience.id: audience.name for audience in found}
        keys = {audience.id: audience.key for audience in found}
    rows = None
    if store.analytics is not None and not split_groups:
        rows = store.analytics.read_values(space_id, keys,
                                           lambda generations: _combinations_of_copies(audience_ids, generations))
    if rows is None:
        with store.read() as session:
            rows = session.execute(_combinations_of_stays(audience_ids, split_groups)).all()
    counts = {int(mask): int(count) for mask, count in rows}

    def members(*indexes: int) -> int:
        wanted = sum(1 << index for index in indexes)
        return sum(count for mask, count in counts.items() if mask & wanted == wanted)

    sizes = {audience_id: members(index) for index, audience_id in enumerate(audience_ids)}
    pairs = [Pair(audience_ids[i], audience_ids[j], members(i, j))
             for i in range(len(audience_ids)) for j in range(i + 1, len(audience_ids))]
    return Overlap(sizes, names, pairs, sum(counts.values()))


def _combinations(audience_ids: list[str], computation, profile, *conditions):
    """How many profiles each combination of the audiences has, as (bit mask, count) rows: a profile
    has a bit per audience (`computation`) it has a row of, among the rows `conditions` keep."""
    bit = case({audience_id: 1 << index for index, audience_id in enumerate(audience_ids)}, value=computation)
    masks = select(func.sum(bit).label("mask")).where(*conditions).group_by(profile).subquery()
    return select(masks.c.mask, func.count()).group_by(masks.c.mask)


def _combinations_of_stays(audience_ids: list[str], split_groups: dict[str, str]):
    """Over the open membership rows (a profile has at most one per audience)."""
    return _combinations(audience_ids, Membership.computation_id, Membership.profile_id,
                         or_(*(_stays_of(audience_id, split_groups.get(audience_id)) for audience_id in audience_ids)),
                         Membership.exited_at_ms.is_(None))


def _combinations_of_copies(audience_ids: list[str], generations: dict[str, int]):
    """Over the analytic store's copies of the audiences' `<key>` values (one row per profile each)."""
    values = analytic.COMPUTED_VALUE
    return _combinations(audience_ids, values.c.computation_id, values.c.profile_id,
                         or_(*(and_(values.c.computation_id == audience_id, values.c.generation == generation)
                               for audience_id, generation in generations.items())),
                         values.c.value == "true")


def _stays_of(audience_id: str, split_group: str | None):
    mine = Membership.computation_id == audience_id
    return mine if split_group is None else and_(mine, Membership.split_group == split_group)
