"""How audiences' current members overlap: every pair's intersection, the union, and one audience's
share in each of the others.

One grouped statement answers it for up to MOST_AUDIENCES audiences: each member gets a bit per
audience it is in (a profile has at most one open stay per audience), and the members are counted
per combination of bits. Every intersection and the union are sums over those combinations (at most
2^10 of them), so the cost is one pass over the audiences' open membership, whatever the number of
pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, case, func, or_, select

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
        names = {audience_id: require_audience(session, space_id, audience_id).name for audience_id in audience_ids}
        bit = case({audience_id: 1 << index for index, audience_id in enumerate(audience_ids)},
                   value=Membership.computation_id)
        masks = (select(func.sum(bit).label("mask"))
                 .where(or_(*(_stays_of(audience_id, split_groups.get(audience_id)) for audience_id in audience_ids)),
                        Membership.exited_at_ms.is_(None))
                 .group_by(Membership.profile_id).subquery())
        counts = dict(session.execute(select(masks.c.mask, func.count()).group_by(masks.c.mask)).all())
    counts = {int(mask): int(count) for mask, count in counts.items()}

    def members(*indexes: int) -> int:
        wanted = sum(1 << index for index in indexes)
        return sum(count for mask, count in counts.items() if mask & wanted == wanted)

    sizes = {audience_id: members(index) for index, audience_id in enumerate(audience_ids)}
    pairs = [Pair(audience_ids[i], audience_ids[j], members(i, j))
             for i in range(len(audience_ids)) for j in range(i + 1, len(audience_ids))]
    return Overlap(sizes, names, pairs, sum(counts.values()))


def _stays_of(audience_id: str, split_group: str | None):
    mine = Membership.computation_id == audience_id
    return mine if split_group is None else and_(mine, Membership.split_group == split_group)
