"""What audiences and computed traits share: checked CQL definitions, trait keys, and references.

Both kinds live in one trait namespace per space (membership is the boolean trait `<key>`), so a key
is reserved across both, forever. `trait('<key>')` references are recorded per definition; they give
the consumers of an audience, refuse a definition that would make a cycle, and refuse removing a
definition others still read. A definition may read a trait nobody has yet, or an event the space
never received (it is accepted, with a warning naming the closest known keys or stored event names),
since profiles and events may come later. A name an existing audience or computed trait already has
is accepted too, as in Segment, with a warning naming that one and the key the new one got.

A space holds at most `max_computations()` live audiences and computed traits together: 1,000 by
default, SEGMENT_AUDIENCES_MAX_COMPUTATIONS to change it. Segment has such a limit too (its Unify and
Engage product limits: 100 audiences and 50 computed traits per space on the Plus plans, more on
request, https://www.twilio.com/docs/segment/unify/product-limits); this engine allows more by
default, since its realtime passes are bounded per space, but not without end.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable

from sqlalchemy import Connection, func
from sqlmodel import Session, col, delete, select

from backend import cql
from store.db import locks
from store.db.errors import Conflict, InputValidation
from store.db.models import (
    CUSTOM,
    Audience,
    ComputedTrait,
    ComputeState,
    DefinitionChange,
    DefinitionReference,
    SchemaEvent,
    Trait,
    TraitKey,
)
from store.db.naming import first_free, snake_case
from store.db.store import Store

MAX_COMPUTATIONS = 1_000


def check_definition(query: str, *, kind: str, audience_type: str) -> cql.Analysis:
    try:
        return cql.validate(query, kind=kind, audience_type=audience_type)
    except cql.CQLError as error:
        expected = f" Expected one of: {', '.join(error.expected)}." if error.expected else ""
        raise InputValidation(
            f"Invalid definition at {error.position}: {error.message}.{expected}", field="definition.query"
        ) from error


def check_name(name: str) -> str:
    if not name.strip():
        raise InputValidation("name must not be empty.", field="name")
    return name


def reserve_key(session: Session, space_id: str, name: str, owner_id: str, fallback: str) -> str:
    """Take the first free key for `name` in the space (under the space's key lock on PostgreSQL, so two
    processes creating at once never pick the same one). The computation takes the key over: custom
    values profiles already had under it are removed, so `trait('<key>')` and the Profile API read
    only what its runs write (Identify and Group calls cannot set it afterwards either)."""
    locks.exclusive(session, [f"trait keys of {space_id}"])
    _refuse_over_limit(session, space_id)

    def taken(key: str) -> bool:
        return session.get(TraitKey, (space_id, key)) is not None

    key = first_free(snake_case(name, fallback), taken)
    session.add(TraitKey(space_id=space_id, key=key, owner_id=owner_id))
    session.exec(delete(Trait).where(Trait.space_id == space_id, Trait.key == key, Trait.trait_class == CUSTOM))
    return key


def max_computations() -> int:
    return int(os.environ.get("SEGMENT_AUDIENCES_MAX_COMPUTATIONS", MAX_COMPUTATIONS))


def _refuse_over_limit(session: Session, space_id: str) -> None:
    limit = max_computations()
    live = sum(session.execute(select(func.count()).select_from(model).where(
        model.space_id == space_id, col(model.deleted_at).is_(None))).scalar_one() for model in (Audience, ComputedTrait))
    if live >= limit:
        raise Conflict(f"Space '{space_id}' already has {live} audiences and computed traits, the most a space may "
                       f"have ({limit}); delete one it no longer needs first, or raise the limit with "
                       "SEGMENT_AUDIENCES_MAX_COMPUTATIONS.", field="name")


def record_references(session: Session, space_id: str, owner_id: str, own_key: str, keys: tuple[str, ...]) -> None:
    """Replace `owner_id`'s references with `keys`, refusing any that lead back to `own_key`."""
    _refuse_cycle(session, space_id, own_key, keys)
    forget_references(session, owner_id)
    for key in keys:
        session.add(DefinitionReference(owner_id=owner_id, key=key, space_id=space_id))


def record_change(session: Session, space_id: str, computation_id: str, query: str, now_ms: int) -> None:
    """Keep a computation's definition from now on (its first, or a changed one) for its size history."""
    session.add(DefinitionChange(space_id=space_id, computation_id=computation_id, changed_at_ms=now_ms, query=query))


def request_run(session: Session, computation_id: str, space_id: str, now_ms: int) -> None:
    """Make a computation due now: its definition, options or enabled flag changed."""
    state = session.get(ComputeState, computation_id) or ComputeState(computation_id=computation_id, space_id=space_id)
    state.next_run_at_ms = now_ms
    session.add(state)


def forget_references(session: Session, owner_id: str) -> None:
    session.exec(delete(DefinitionReference).where(DefinitionReference.owner_id == owner_id))


def consumers_of(session: Session, space_id: str, key: str) -> list[str]:
    """Owner ids whose definitions reference `key`."""
    statement = select(DefinitionReference.owner_id).where(
        DefinitionReference.space_id == space_id, DefinitionReference.key == key
    )
    return list(session.exec(statement).all())


def _refuse_cycle(session: Session, space_id: str, own_key: str, keys: tuple[str, ...]) -> None:
    for start in keys:
        if _reaches(session, space_id, start, own_key):
            raise InputValidation(
                f"The definition would create a cycle: trait('{start}') depends on '{own_key}' itself. "
                "Remove that reference.",
                field="definition.query",
            )


def _reaches(session: Session, space_id: str, start: str, target: str) -> bool:
    pending, seen = [start], set()
    while pending:
        key = pending.pop()
        if key == target:
            return True
        if key in seen:
            continue
        seen.add(key)
        owner = session.get(TraitKey, (space_id, key))
        if owner is not None:
            statement = select(DefinitionReference.key).where(DefinitionReference.owner_id == owner.owner_id)
            pending.extend(session.exec(statement).all())
    return False


def definition_warnings(store: Store, space_id: str, query: str, *, kind: str, audience_type: str) -> list[str]:
    """What looks wrong in a definition without being an error: `trait('<key>')` for a key no
    audience or computed trait of the space owns and no profile has, and `event('<name>')` for an
    event the space has never received."""
    analysis = cql.validate(query, kind=kind, audience_type=audience_type)
    with store.read() as session:
        traits = unknown_traits(session, space_id, analysis.referenced_traits)
        events = unknown_events(session, space_id, analysis.event_names)
    return [*(f"trait('{key}') is no audience or computed trait key of this space and no profile has that trait, "
              f"so it has no value for anyone yet{suggestion(close)}" for key, close in traits.items()),
            *(f"event('{name}') names no event this space has received, so it matches nothing yet"
              f"{suggestion(close)} segment_audiences_list_events lists the events it has." for name, close in events.items())]


def name_warnings(store: Store, space_id: str, created_id: str, name: str, key: str) -> list[str]:
    """For a definition just created: the live audiences and computed traits that already had its
    name (an agent's retry, say), and the key it got instead of theirs."""
    with store.read() as session:
        same = [(row.id, row.key) for model in (Audience, ComputedTrait) for row in session.exec(
            select(model).where(model.space_id == space_id, model.name == name, model.id != created_id,
                                col(model.deleted_at).is_(None)).order_by(model.id))]
    return [f"'{name}' is also the name of {other_id} (key '{other_key}'); this one was created too, with key "
            f"'{key}'. If it was a retry, delete the one you do not want." for other_id, other_key in same]


def live_keys(connection: Connection, space_id: str) -> set[str]:
    """The keys of the space's audiences and computed traits that are not removed."""
    return {key for model in (Audience, ComputedTrait) for (key,) in connection.execute(
        select(model.key).where(model.space_id == space_id, col(model.deleted_at).is_(None)))}


def unknown_traits(session: Session, space_id: str, keys: Iterable[str]) -> dict[str, list[str]]:
    """Each of `keys` that no live audience or computed trait owns and no profile has, with up to
    three close known keys."""
    live = live_keys(session.connection(), space_id)
    unknown = [key for key in dict.fromkeys(keys) if key not in live and session.exec(
        select(Trait.key).where(Trait.space_id == space_id, Trait.key == key).limit(1)).first() is None]
    if not unknown:
        return {}
    known = sorted(live | set(session.exec(select(Trait.key).where(Trait.space_id == space_id).distinct())))
    return {key: difflib.get_close_matches(key, known, n=3, cutoff=0.6) for key in unknown}


def unknown_events(session: Session, space_id: str, names: Iterable[str]) -> dict[str, list[str]]:
    """Each of `names` the space has never received as an event, with up to three close stored names."""
    stored = set(session.exec(select(SchemaEvent.name).where(SchemaEvent.space_id == space_id)))
    return {name: difflib.get_close_matches(name, sorted(stored), n=3, cutoff=0.6)
            for name in dict.fromkeys(names) if name not in stored}


def suggestion(close: list[str]) -> str:
    """The end of a warning sentence: the closest known keys, if any."""
    return f"; did you mean {' or '.join(repr(key) for key in close)}?" if close else "."


def refuse_removal_if_read(session: Session, space_id: str, key: str, what: str) -> None:
    """A definition others read cannot be removed: their `trait('<key>')` would freeze on its last values."""
    readers = consumers_of(session, space_id, key)
    if readers:
        raise Conflict(
            f"{what} is read by {', '.join(sorted(readers))} through trait('{key}'); remove those or edit their "
            "definitions first (segment_audiences_list_audience_consumers_from_space_and_audience lists audiences).",
            field="id",
        )
