"""The error the FQL front end raises: a message anchored to a line and column of the `if` text."""

from __future__ import annotations

from backend.syntax import QueryError


class FQLError(QueryError):
    """An `if` expression that cannot be accepted."""
