"""Evaluates a parsed FQL expression against one event, with FQL's strict typing.

Rules (Segment's docs and its reference matcher): an event matches only when the whole expression is
exactly `true`; a bare field is true only when it holds `true`; `=` needs the same type and value
(lists and objects compare by their JSON text, so order matters, and `"1" != 1`); `<`-style
comparisons are false unless both sides are numbers; `in` compares strictly against each element of
a list; `contains` and `match` are false unless both sides are strings; missing fields are `null`.
`!` turns `true` into `false` and `false` or `null` into `true`; on any other type it yields `null`.

Every evaluation is bounded: `match()` costs time linear in its text (times one more for every 1,024
characters of pattern), and all the `match()` calls of one evaluation may spend MATCH_BUDGET of that
cost; an evaluation that would spend more stops and does not match (a filter then keeps the event),
so no expression and no message can make one evaluation take long.
"""

from __future__ import annotations

import json
import math
from contextvars import ContextVar

from backend.fql.ast import Binary, Call, ListOf, Literal, MatchAll, Node, Not, Path
from backend.fql.glob import glob_match


MATCH_BUDGET = 256 * 1024
_budget: ContextVar[list[int]] = ContextVar("match_budget")


class BudgetSpent(Exception):
    """The evaluation's `match()` calls would read more text than MATCH_BUDGET allows."""


def matches(node: Node, event: dict) -> bool:
    """True when the expression evaluates to exactly `true` for the event (within the budget)."""
    if isinstance(node, MatchAll):
        return True
    token = _budget.set([MATCH_BUDGET])
    try:
        return evaluate(node, event) is True
    except BudgetSpent:
        return False
    finally:
        _budget.reset(token)


def evaluate(node: Node, event: dict) -> object:
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Path):
        return lookup(event, node.segments)
    if isinstance(node, ListOf):
        return [evaluate(item, event) for item in node.items]
    if isinstance(node, Not):
        value = evaluate(node.operand, event)
        if value is True:
            return False
        return True if value is False or value is None else None
    if isinstance(node, Binary):
        return _binary(node, event)
    if isinstance(node, Call):
        return FUNCTIONS[node.name](*(evaluate(argument, event) for argument in node.arguments))
    assert isinstance(node, MatchAll), node
    return True


def lookup(value: object, segments: tuple[str, ...]) -> object:
    """The value at a dotted path; list elements are reached by their index; anything missing is null."""
    for segment in segments:
        if isinstance(value, dict):
            value = value.get(segment, None)
        elif isinstance(value, list) and segment.isascii() and segment.isdigit() and int(segment) < len(value):
            value = value[int(segment)]
        else:
            return None
    return value


def type_name(value: object) -> str:
    """FQL's names for JSON types: string, number, bool, null, list, object."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "object"


def strictly_equal(left: object, right: object) -> bool:
    kind = type_name(left)
    if kind != type_name(right):
        return False
    if kind in ("list", "object"):
        return json.dumps(left, separators=(",", ":")) == json.dumps(right, separators=(",", ":"))
    return left == right


def _binary(node: Binary, event: dict) -> object:
    operator = node.operator
    if operator == "and":
        return all(evaluate(operand, event) is True for operand in _chain(node, "and"))
    if operator == "or":
        return any(evaluate(operand, event) is True for operand in _chain(node, "or"))
    left, right = evaluate(node.left, event), evaluate(node.right, event)
    if operator == "=":
        return strictly_equal(left, right)
    if operator == "!=":
        return not strictly_equal(left, right)
    if operator == "in":
        return isinstance(right, list) and any(strictly_equal(left, item) for item in right)
    if type_name(left) != "number" or type_name(right) != "number":
        return False
    return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[operator]


def _chain(node: Binary, operator: str) -> list[Node]:
    """The operands of a run of one junction (`a or b or c` parses as ((a or b) or c)), in order,
    gathered without recursion so a long run cannot exhaust the stack."""
    operands: list[Node] = []
    while isinstance(node, Binary) and node.operator == operator:
        operands.append(node.right)
        node = node.left
    operands.append(node)
    return operands[::-1]


def _contains(text: object, part: object) -> bool:
    return isinstance(text, str) and isinstance(part, str) and part in text


def _length(value: object) -> float:
    if value is None:
        return 0
    if isinstance(value, list):
        return len(value)
    if isinstance(value, str):
        return len(value.encode())
    return math.nan


def _string_only(transform):
    return lambda value: transform(value) if isinstance(value, str) else None


def _words(text: str) -> list[str]:
    return text.split()


def _match(text: object, pattern: object) -> bool:
    if not isinstance(text, str) or not isinstance(pattern, str):
        return False
    left = _budget.get(None)
    if left is not None:
        left[0] -= len(text) * (1 + len(pattern) // 1024)
        if left[0] < 0:
            raise BudgetSpent
    return glob_match(pattern, text)


def _to_bool(value: object) -> bool:
    """`true`/`false` strings (any case) and booleans as themselves; non-zero numbers are true."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.strip().lower() == "true"
    if isinstance(value, (int, float)):
        return value != 0
    return False


def _to_string(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return json.dumps(value, separators=(",", ":"))


def _to_number(value: object) -> float | int | None:
    """Numbers as themselves, booleans as 1/0, numeric strings parsed; anything else is null."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return int(number) if number.is_integer() and "." not in value else number
    return None


FUNCTIONS = {
    "contains": _contains,
    "length": _length,
    "lowercase": _string_only(str.lower),
    "uppercase": _string_only(str.upper),
    "snakecase": _string_only(lambda s: "_".join(_words(s.lower()))),
    "kebabcase": _string_only(lambda s: "-".join(_words(s.lower()))),
    "titlecase": _string_only(lambda s: " ".join(w[:1].upper() + w[1:].lower() for w in _words(s))),
    "typeof": type_name,
    "match": _match,
    "bool": _to_bool,
    "string": _to_string,
    "number": _to_number,
}
