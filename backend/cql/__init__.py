"""The CQL front end: parse, check and describe a definition in one call."""

from __future__ import annotations

import functools

from backend.cql.analysis import Analysis, analyze
from backend.cql.checks import check
from backend.cql.errors import CQLError, Position
from backend.cql.parser import parse

MAX_PRIMARY_EXPRESSIONS = 50

__all__ = ["Analysis", "CQLError", "Position", "parse", "validate"]


@functools.lru_cache(maxsize=4096)
def validate(query: str, *, kind: str, audience_type: str) -> Analysis:
    """Parse and check `query` as a `kind` ("audience" | "computed_trait") definition and describe it
    (remembered: the background loop asks again for every computation, every second).

    A primary expression is one extractor chain start: `event()`, `entity()`, `trait()`, `property()`
    or `context()`; literals do not count. At most 50 are allowed per definition.
    """
    root = parse(query)
    check(root, kind=kind, audience_type=audience_type)
    analysis = analyze(root, kind=kind, audience_type=audience_type)
    if analysis.primary_expressions > MAX_PRIMARY_EXPRESSIONS:
        raise CQLError(
            f"the definition has {analysis.primary_expressions} primary expressions; "
            f"at most {MAX_PRIMARY_EXPRESSIONS} are allowed",
            Position(1, 1),
        )
    return analysis
