"""What audiences and computed traits share: checked CQL definitions, trait keys, and references.

Both kinds live in one trait namespace per space (membership is the boolean trait `<key>`), so a key
is reserved across both, forever. `trait('<key>')` references are recorded per definition; they give
the consumers of an audience and refuse a definition that would make a cycle.
"""

from __future__ import annotations

from sqlmodel import Session, delete, select

from backend import cql
from store.errors import InputValidation
from store.models import ComputeState, DefinitionReference, TraitKey
from store.naming import first_free, snake_case


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
    def taken(key: str) -> bool:
        return session.get(TraitKey, (space_id, key)) is not None

    key = first_free(snake_case(name, fallback), taken)
    session.add(TraitKey(space_id=space_id, key=key, owner_id=owner_id))
    return key


def record_references(session: Session, space_id: str, owner_id: str, own_key: str, keys: tuple[str, ...]) -> None:
    """Replace `owner_id`'s references with `keys`, refusing any that lead back to `own_key`."""
    _refuse_cycle(session, space_id, own_key, keys)
    forget_references(session, owner_id)
    for key in keys:
        session.add(DefinitionReference(owner_id=owner_id, key=key, space_id=space_id))


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
