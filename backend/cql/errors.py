"""The error every stage of the CQL front end raises: a message anchored to a line and column."""

from __future__ import annotations

from backend.syntax import Position, QueryError

__all__ = ["CQLError", "Position"]


class CQLError(QueryError):
    """A CQL definition that cannot be accepted."""
