"""FQL, Segment's filter query language: parse an `if` once, then test events against it."""

from backend.fql.ast import Node
from backend.fql.errors import FQLError
from backend.fql.evaluate import matches
from backend.fql.parser import parse

__all__ = ["FQLError", "Node", "matches", "parse"]
