"""Domain errors: what went wrong, in the Public API's error vocabulary, with the field at fault."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error a store service raises on purpose; `type` is the Public API error type."""

    type = "error"

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class InputValidation(DomainError):
    type = "input-validation"


class NotFound(DomainError):
    """An id that does not exist (or no longer exists) in the scope it was looked up in."""

    type = "not-found"

    def __init__(self, resource: str, identifier: str, *, field: str | None = None, scope: str = "", by: str = "id"):
        where = f" {scope}" if scope else ""
        super().__init__(f"{resource.capitalize()} with {by} '{identifier}' not found{where}.", field=field)
        self.resource = resource


class Conflict(DomainError):
    type = "conflict"


def cause(error: BaseException) -> str:
    """What a driver said went wrong, in its own words (first line only)."""
    original = getattr(error, "orig", None) or error
    return (str(original).strip().splitlines() or [type(original).__name__])[0]
