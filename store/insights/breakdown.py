"""An audience's current members broken down: how one trait's values (or one identifier type's) are
distributed among them, and, for a definition whose top level joins blocks with AND or OR, how many
profiles each block alone would hold, which is what each filter contributes.

Values are counted in one grouped statement over the members. Numbers with more distinct values
than MOST_VALUES are put in BINS bins of equal width between the smallest and the largest; any other
values come as the most frequent MOST_VALUES. Each block is computed as a definition of its own,
where a full run computes it (`runs.full_result`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import orjson
from sqlalchemy import distinct, func, select

from backend.cql.blocks import top_level_blocks
from store.catalog.audiences import require_audience
from store.catalog.definitions import check_definition
from store.compute import computations, runs
from store.db.errors import InputValidation
from store.db.models import Identifier, Membership, Trait
from store.db.store import Store

MOST_VALUES = 20
BINS = 10


@dataclass(frozen=True)
class Bin:
    low: float
    high: float
    count: int


@dataclass(frozen=True)
class Block:
    query: str
    size: int


@dataclass(frozen=True)
class Breakdown:
    members: int
    with_value: int  # members with the trait, or with an identifier of the type
    values: list[tuple[Any, int]]  # the most frequent, most first (empty when binned)
    bins: list[Bin]
    operator: str | None  # what joins the blocks: AND, OR, or None for a single block
    blocks: list[Block]


def breakdown(store: Store, space_id: str, audience_id: str, *, trait_key: str | None = None,
              identifier_type: str | None = None) -> Breakdown:
    if (trait_key is None) == (identifier_type is None):
        raise InputValidation("Give one of traitKey (a trait's values) or identifierType (an identifier type's "
                              "values), not both or neither.", field="traitKey")
    with store.read() as session:
        audience = require_audience(session, space_id, audience_id)
        members = select(Membership.profile_id).where(Membership.computation_id == audience_id,
                                                      Membership.exited_at_ms.is_(None))
        size = session.execute(select(func.count()).select_from(members.subquery())).scalar_one()
        if trait_key is not None:
            grouped = (select(Trait.value, func.count()).where(Trait.profile_id.in_(members), Trait.key == trait_key)
                       .group_by(Trait.value))
            having = None  # one value per profile and trait: who has one is the sum of the counts
        else:
            mine = (Identifier.profile_id.in_(members), Identifier.type == identifier_type,
                    Identifier.space_id == space_id)
            grouped = select(Identifier.value, func.count(distinct(Identifier.profile_id))).where(*mine).group_by(
                Identifier.value)
            having = select(func.count(distinct(Identifier.profile_id))).where(*mine)
        counted = [(orjson.loads(value) if trait_key is not None else value, count)
                   for value, count in session.execute(grouped)]
        with_value = sum(count for _, count in counted) if having is None else session.execute(having).scalar_one()
        computation = computations.find(session, audience_id)
    values, bins = _distribution(counted)
    operator, texts = top_level_blocks(audience.query)
    blocks = [Block(text, _size(store, computation, text)) for text in texts] if operator else []
    return Breakdown(size, with_value, values, bins, operator, blocks)


def _distribution(counted: list[tuple[Any, int]]) -> tuple[list[tuple[Any, int]], list[Bin]]:
    numbers = [(value, count) for value, count in counted
               if isinstance(value, (int, float)) and not isinstance(value, bool)]
    if len(numbers) == len(counted) and len(numbers) > MOST_VALUES:
        low, high = min(value for value, _ in numbers), max(value for value, _ in numbers)
        width = (high - low) / BINS
        tallies = [0] * BINS
        for value, count in numbers:
            tallies[min(int((value - low) / width), BINS - 1)] += count
        return [], [Bin(low + index * width, low + (index + 1) * width, tally) for index, tally in enumerate(tallies)]
    ranked = sorted(counted, key=lambda pair: (-pair[1], str(pair[0])))
    return ranked[:MOST_VALUES], []


def _size(store: Store, computation: computations.Computation, query: str) -> int:
    """How many profiles the block `query` alone holds, computed as a full run would."""
    analysis = check_definition(query, kind="audience", audience_type=computation.profile_type)
    block = computations.with_data_graph(store, replace(computation, query=query, analysis=analysis))
    now = store.now()
    full = runs.full_result(store, block, now)
    if full is not None:
        return len(full.rows)
    with store.read() as session:
        return session.execute(select(func.count()).select_from(block.statement(now).subquery())).scalar_one()
