"""The errors of CQL: `CQLError`, which every stage of the front end raises, anchored to a line and
column; `CompileError`, a definition the compiler cannot turn into SQL for the tables it is given."""

from __future__ import annotations

from backend.syntax import Position, QueryError

__all__ = ["CQLError", "CompileError", "Position"]


class CQLError(QueryError):
    """A CQL definition that cannot be accepted."""


class CompileError(ValueError):
    """A definition this engine cannot compute."""
