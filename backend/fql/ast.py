"""The FQL syntax tree: immutable nodes the evaluator walks."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Literal:
    """A string, number, boolean, null or list of literals."""

    value: object


@dataclass(frozen=True)
class Path:
    """A field of the event, from its root: `("context", "library", "version")`."""

    segments: tuple[str, ...]


@dataclass(frozen=True)
class ListOf:
    """A list written with field paths among its items (`[event, type]`): each read from the event."""

    items: tuple[Literal | Path, ...]


@dataclass(frozen=True)
class Call:
    name: str
    arguments: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    operand: Node


@dataclass(frozen=True)
class Binary:
    """`and`, `or`, `=`, `!=`, `<`, `<=`, `>`, `>=` or `in` between two operands."""

    operator: str
    left: Node
    right: Node


@dataclass(frozen=True)
class MatchAll:
    """The literal `all`: every event matches."""


Node = Literal | Path | ListOf | Call | Not | Binary | MatchAll
