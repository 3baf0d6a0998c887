"""The typed syntax tree of a CQL definition.

Boolean nodes (`Comparison`, `And`, `Or`, `Not`, `Quantified`) are what audiences evaluate to; scalar
nodes (`Literal`, `TraitRef`, `PropertyRef`, `ContextRef`, `Reduction`) are what computed traits
produce and what comparisons compare. `Stream` is the vector an `event()` or `entity()` chain builds
before a reducer turns it into a scalar.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from backend.cql.errors import Position


@dataclass(frozen=True)
class Duration:
    amount: int
    unit: str  # "seconds" | "hours" | "days"
    position: Position

    @property
    def hours(self) -> float:
        return self.amount * {"seconds": 1 / 3600, "hours": 1, "days": 24}[self.unit]


@dataclass(frozen=True)
class Literal:
    value: object
    kind: str  # "int" | "float" | "string" | "boolean" | "date" | "timestamp"
    position: Position


@dataclass(frozen=True)
class TraitRef:
    path: tuple[str, ...]
    position: Position


@dataclass(frozen=True)
class PropertyRef:
    path: tuple[str, ...]
    parent: bool
    position: Position


@dataclass(frozen=True)
class ContextRef:
    path: tuple[str, ...]
    position: Position


@dataclass(frozen=True)
class Where:
    condition: "BoolNode"
    position: Position


@dataclass(frozen=True)
class Sources:
    exclude: tuple[str, ...]
    position: Position


@dataclass(frozen=True)
class Within:
    duration: Duration
    parent: bool
    position: Position


@dataclass(frozen=True)
class Between:
    start: Duration
    end: Duration
    position: Position


@dataclass(frozen=True)
class ExpiresAfter:
    duration: Duration
    position: Position


StreamFilter = Union[Where, Sources, Within, Between, ExpiresAfter]


@dataclass(frozen=True)
class Stream:
    source: str  # "event" | "entity"
    name: str
    filters: tuple[StreamFilter, ...]
    position: Position


@dataclass(frozen=True)
class Reduction:
    """A reducer applied to a stream; `unique_count` is `unique(p).count()`."""

    stream: Stream
    reducer: str
    argument: PropertyRef | ContextRef | None
    as_type: str | None
    min_frequency: int | None
    position: Position


Scalar = Union[Literal, TraitRef, PropertyRef, ContextRef, Reduction]


@dataclass(frozen=True)
class Comparison:
    subject: Scalar
    comparator: str
    arguments: tuple[Union[Scalar, Duration], ...]
    position: Position


@dataclass(frozen=True)
class And:
    operands: tuple["BoolNode", ...]
    position: Position


@dataclass(frozen=True)
class Or:
    operands: tuple["BoolNode", ...]
    position: Position


@dataclass(frozen=True)
class Not:
    operand: "BoolNode"
    position: Position


@dataclass(frozen=True)
class Quantified:
    """`ANY expr` / `ALL expr`: a user-level condition lifted to an account."""

    quantifier: str  # "ANY" | "ALL"
    operand: "BoolNode"
    position: Position


BoolNode = Union[Comparison, And, Or, Not, Quantified]
Node = Union[BoolNode, Scalar, Stream]

BOOLEAN_NODES = (Comparison, And, Or, Not, Quantified)

