"""A computed trait's values kept in the analytic store, so that a full run there returns only the
profiles whose value changed instead of moving every value through Python to find them.

The copy (`COMPUTED_VALUE`) is one generation of rows, named by the computation's mark with the
change-log position it is up to date with. A full run first brings it up to date: whole when there
is none (or the log has been pruned past its position), else for the profiles whose value of the key
changed since (the log names the key: migration 0012). It then writes its answer as a new generation
and compares the two in the engine; the profiles that differ are candidates, which the run diffs
against the operational store as a realtime pass would. Once the run has committed, its generation,
corrected for the profiles the run recomputed on the operational store, becomes the copy (`settle`).

An audience's copy is of its `<key>` values (true while a member, false after leaving), which its
runs write beside its membership: the insights that read many audiences' members at once (overlap)
read the copies (`current`), brought up to date from the change log, rather than group millions of
membership rows on the operational store. Audience runs do not write generations of their own.

Only an engine this process alone writes keeps copies (DuckDB, whose file one process owns): runs of
one computation are serialised in the process (`turn`), so no other run writes a generation of it
meanwhile. A ClickHouse server is shared by processes, so runs on it still diff in Python.
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from dataclasses import dataclass, field

from sqlalchemy import bindparam, case, delete, func, insert, literal, or_, select, text

from store.analytic import tables as analytic
from store.analytic.engines import AnalyticEngine
from store.analytic.replication import Marks
from store.db.bulk import select_all, select_in
from store.db.models import COMPUTED_TRAIT, AnalyticChange, Audience, ComputedTrait, Trait
from store.db.store import Store

VALUES = analytic.COMPUTED_VALUE
STATE = analytic.REPLICATION_STATE


@dataclass(frozen=True)
class Answer:
    """A full run's answer kept as `generation`: the `changes` (profile, new value or None) against
    the copy, how many profiles the statement computed, and how many have a value."""

    computation_id: str
    generation: int
    changes: list[tuple[str, str | None]]
    profiles: int
    size: int


@dataclass
class Settlement:
    """What a run that took `answer` wrote for the profiles it recomputed on the operational store,
    and the log position its transaction saw; `ValueCopies.settle` makes the copy of it."""

    answer: Answer
    recomputed: dict[str, str | None] = field(default_factory=dict)
    change_seq: int = 0


class ValueCopies:
    """The computed traits' copies in `engine`, kept from the operational `store`."""

    def __init__(self, store: Store, engine: AnalyticEngine):
        self.store, self.engine = store, engine
        self._turns: dict[str, threading.Lock] = {}
        self._turns_lock = threading.Lock()

    def turn(self, computation_id: str) -> threading.Lock:
        """Held by a run of the computation from its answer until its copy is settled."""
        with self._turns_lock:
            return self._turns.setdefault(computation_id, threading.Lock())

    def answer(self, statement, space_id: str, computation_id: str, key: str, marks: Marks) -> Answer:
        """Bring the copy up to `marks`, run `statement` (profile id, value) into a new generation, and
        return what differs from the copy."""
        self._forget_deleted()
        current = self._up_to_date(space_id, computation_id, key, marks)
        generation = current + 1
        kept = select(literal(computation_id), literal(generation), *list(statement.subquery().c)[:2])
        self.engine.run(insert(VALUES).from_select(["computation_id", "generation", "profile_id", "value"], kept))
        new = func.max(case((VALUES.c.generation == generation, VALUES.c.value)))
        old = func.max(case((VALUES.c.generation == current, VALUES.c.value)))
        changes = self.engine.run(
            select(VALUES.c.profile_id, new).where(VALUES.c.computation_id == computation_id,
                                                   VALUES.c.generation.in_([current, generation]))
            .group_by(VALUES.c.profile_id).having(or_(new.is_(None) != old.is_(None), new != old)))
        [(profiles, size)] = self.engine.run(select(func.count(), func.count(VALUES.c.value)).where(
            VALUES.c.computation_id == computation_id, VALUES.c.generation == generation))
        return Answer(computation_id, generation, [tuple(row) for row in changes], int(profiles), int(size))

    def current(self, space_id: str, keys: dict[str, str], marks: Marks) -> dict[str, int]:
        """The generation of each computation's copy (computation id -> its key), brought up to `marks`;
        the caller holds their turns."""
        self._forget_deleted()
        return {computation_id: self._up_to_date(space_id, computation_id, key, marks)
                for computation_id, key in keys.items()}

    def settle(self, settlement: Settlement) -> None:
        """Once its run has committed, make the answer's generation the copy, holding what the run wrote
        for the profiles it recomputed."""
        answer = settlement.answer
        self._replace(answer.computation_id, answer.generation, sorted(settlement.recomputed),
                      list(settlement.recomputed.items()), settlement.change_seq)

    def _up_to_date(self, space_id: str, computation_id: str, key: str, marks: Marks) -> int:
        """The copy's generation, brought up to `marks` (made whole when there is none)."""
        generation, position = self._marked(computation_id)
        self.engine.execute(self.engine.sql(delete(VALUES).where(  # a run's answer whose run never committed
            VALUES.c.computation_id == computation_id, VALUES.c.generation != generation)))
        if position is None or position < marks.pruned_seq:
            self._replace(computation_id, generation, None, self._stored(space_id, key, None), marks.change_seq)
        elif position < marks.change_seq:
            changed = self._changed(key, position, marks.change_seq)
            self._replace(computation_id, generation, changed, self._stored(space_id, key, changed), marks.change_seq)
        return generation

    def _replace(self, computation_id: str, generation: int, profile_ids: Collection[str] | None,
                 rows: list[tuple], change_seq: int) -> None:
        """In one transaction: the generation's rows of `profile_ids` (or all) replaced by `rows`
        (profile id, value), every other generation dropped, and the generation marked as the copy,
        up to date with log position `change_seq`."""
        with self.engine.transaction():
            self._forget(computation_id, generation, profile_ids)
            self.engine.insert(VALUES, ["computation_id", "generation", "profile_id", "value"],
                               [(computation_id, generation, *row) for row in rows])
            self._mark(computation_id, generation, change_seq)

    def _forget_deleted(self) -> None:
        """Drop the copies of computed traits and audiences deleted since they were last brought up to date."""
        kept = [row[0] for row in self.engine.run(select(VALUES.c.computation_id).distinct())]
        if not kept:
            return
        with self.store.read() as session:
            deleted = [computation_id for model in (ComputedTrait, Audience) for computation_id in session.execute(
                select(model.id).where(model.id.in_(kept), model.deleted_at.is_not(None))).scalars()]
        if deleted:
            self.engine.execute(self.engine.sql(delete(VALUES).where(VALUES.c.computation_id.in_(deleted))))
            self.engine.execute(self.engine.sql(delete(STATE).where(STATE.c.name.in_(
                [name for computation_id in deleted for name in _names(computation_id)]))))

    def _changed(self, key: str, after: int, through: int) -> list[str]:
        change = AnalyticChange.__table__
        with self.store.read() as session:
            return sorted(set(session.execute(select(change.c.profile_id).where(
                change.c.seq > after, change.c.seq <= through, change.c.table_name == f"computed_trait:{key}"))
                .scalars()))

    def _stored(self, space_id: str, key: str, profile_ids: Collection[str] | None) -> list[tuple]:
        """The operational store's values of the key (of `profile_ids`, or all)."""
        trait = Trait.__table__
        fixed = {"space": space_id, "key": key}

        def of_key():
            return select(trait.c.profile_id, trait.c.value).where(
                trait.c.space_id == bindparam("space"), trait.c.key == bindparam("key"), text(COMPUTED_TRAIT))

        with self.store.read() as session:
            if profile_ids is None:
                return select_all(session.connection(), "all values of a computed trait", of_key, fixed)
            return select_in(session.connection(), "values of a computed trait",
                             lambda placeholders: of_key().where(trait.c.profile_id.in_(placeholders)),
                             profile_ids, fixed)

    def _forget(self, computation_id: str, generation: int, profile_ids: Collection[str] | None) -> None:
        """Remove the generation's rows (of `profile_ids`, or all) and every other generation's."""
        mine = VALUES.c.computation_id == computation_id
        if profile_ids is None:
            self.engine.execute(self.engine.sql(delete(VALUES).where(mine)))
            return
        self.engine.execute(self.engine.sql(delete(VALUES).where(mine, VALUES.c.generation != generation)))
        if profile_ids:
            self.engine.execute(f"TRUNCATE TABLE {analytic.CHANGED_PROFILE.name}")
            self.engine.insert(analytic.CHANGED_PROFILE, ["profile_id"], [(p,) for p in profile_ids])
            self.engine.execute(self.engine.sql(delete(VALUES).where(mine, VALUES.c.profile_id.in_(
                select(analytic.CHANGED_PROFILE.c.profile_id)))))

    def _marked(self, computation_id: str) -> tuple[int, int | None]:
        """The copy's generation (0 when there is none) and the log position it is up to date with."""
        found = dict(self.engine.run(select(STATE.c.name, STATE.c.value).where(
            STATE.c.name.in_(_names(computation_id)))))
        generation, position = (found.get(name) for name in _names(computation_id))
        if generation is None or position is None:
            return 0, None
        return int(generation), int(position)

    def _mark(self, computation_id: str, generation: int, change_seq: int) -> None:
        names = _names(computation_id)
        self.engine.execute(self.engine.sql(delete(STATE).where(STATE.c.name.in_(names))))
        self.engine.insert(STATE, ["name", "value"], list(zip(names, (generation, change_seq))))


def _names(computation_id: str) -> tuple[str, str]:
    return f"values_generation:{computation_id}", f"values_position:{computation_id}"
