"""A definition's top-level blocks: the texts its outermost AND or OR joins, each a definition of its
own, so what each filter holds alone can be measured (an audience breakdown)."""

from __future__ import annotations

from backend.cql.lexer import tokenize
from backend.syntax import Token

OPERATORS = ("OR", "AND")  # OR binds loosest: a top-level OR splits first


def top_level_blocks(query: str) -> tuple[str | None, list[str]]:
    """The operator joining the definition's top level (`AND` or `OR`) and each block's text, or
    (None, [query]) when it is a single block. Outer parentheses around the whole are looked through."""
    tokens = [token for token in tokenize(query) if token.kind.name != "END"]
    spans = _spans(query, tokens)
    while len(tokens) > 2 and tokens[0].text == "(" and _closing(tokens, 0) == len(tokens) - 1:
        tokens, spans = tokens[1:-1], spans[1:-1]
    for operator in OPERATORS:
        blocks, current, depth = [], [], 0
        for token, span in zip(tokens, spans):
            depth += (token.text == "(") - (token.text == ")")
            if depth == 0 and token.kind.name == "IDENT" and token.text.upper() == operator:
                blocks.append(current)
                current = []
            else:
                current.append(span)
        blocks.append(current)
        if len(blocks) > 1 and all(blocks):
            return operator, [query[block[0][0]:block[-1][1]] for block in blocks]
    return None, [query.strip()]


def _closing(tokens: list[Token], opening: int) -> int:
    depth = 0
    for index in range(opening, len(tokens)):
        depth += (tokens[index].text == "(") - (tokens[index].text == ")")
        if depth == 0:
            return index
    return -1


def _spans(query: str, tokens: list[Token]) -> list[tuple[int, int]]:
    """Where each token's text is in the query (tokens come in order, whitespace between them)."""
    spans, cursor = [], 0
    for token in tokens:
        start = query.index(token.text, cursor)
        cursor = start + len(token.text)
        spans.append((start, cursor))
    return spans
