"""FQL's `match()` glob, as Segment evaluates it (segmentio/glob: Go's `path.Match` rules, except that
`*` and `?` also match `/`), in time linear in the text whatever the pattern.

Syntax: `*` any run of characters, `?` any one character, `[…]` one character from a class of
characters and ranges (`[a-z0-9]`, negated by a leading `^` only), `\\x` a literal x inside or outside
a class; anything else matches itself, and the whole text must match. A malformed pattern (a trailing
`\\`, an unclosed or empty class, a range missing an end) matches nothing, as does one longer than
MAX_PATTERN characters, a limit of this implementation that bounds every evaluation.

The pattern compiles to a bit-parallel automaton (shift-and): bit i of the state says the text read
so far matches the pattern's first i single-character items, and a `*` lets its state absorb any
character. Each text character costs a few operations on integers of `len(pattern)` bits, so no
pattern can make matching backtrack.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from functools import lru_cache

MAX_PATTERN = 4096
MAX_CODE_POINT = 0x110000
STAR, ANY = "*", "?"  # parsed items; a literal character is a ("literal", char) pair


@dataclass(frozen=True)
class Glob:
    """A compiled pattern: per-character transition masks, the states a `*` keeps, the accepting bit."""

    literals: dict[str, int]  # character -> bits of the literal items it satisfies
    any_mask: int  # bits of `?` items
    boundaries: tuple[int, ...]  # code points where class membership changes
    class_masks: tuple[int, ...]  # bits of class items satisfied in each interval (one more than boundaries)
    stars: int  # states with a `*` self-loop
    accept: int  # the state reached after the last item

    def mask(self, char: str) -> int:
        return (self.literals.get(char, 0) | self.any_mask
                | self.class_masks[bisect.bisect_right(self.boundaries, ord(char))])

    def matches(self, text: str) -> bool:
        state, stars, masks = 1, self.stars, {}
        for char in text:
            mask = masks.get(char)
            if mask is None:
                mask = masks[char] = self.mask(char)
            state = ((state << 1) & mask) | (state & stars)
            if not state:
                return False
        return bool(state & self.accept)


def glob_match(pattern: str, text: str) -> bool:
    """Whether the whole of `text` matches `pattern`; a malformed or overlong pattern matches nothing."""
    compiled = compile_glob(pattern)
    return compiled is not None and compiled.matches(text)


@lru_cache(maxsize=512)
def compile_glob(pattern: str) -> Glob | None:
    if len(pattern) > MAX_PATTERN:
        return None
    items = _parse(pattern)
    if items is None:
        return None
    literals: dict[str, int] = {}
    any_mask = stars = 0
    classes: list[tuple[int, bool, list[tuple[int, int]]]] = []
    state = 0
    for item in items:
        if item == STAR:
            stars |= 1 << state
            continue
        state += 1
        bit = 1 << state
        if item == ANY:
            any_mask |= bit
        elif item[0] == "literal":
            literals[item[1]] = literals.get(item[1], 0) | bit
        else:
            _, negated, ranges = item
            classes.append((bit, negated, ranges))
    boundaries, class_masks = _class_intervals(classes)
    return Glob(literals, any_mask, boundaries, class_masks, stars, 1 << state)


def _parse(pattern: str) -> list | None:
    """The pattern as items: STAR, ANY, ("literal", char) or ("class", negated, [(lo, hi), …])."""
    items: list = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char in (STAR, ANY):
            items.append(char)
            index += 1
        elif char == "\\":
            if index + 1 >= len(pattern):
                return None
            items.append(("literal", pattern[index + 1]))
            index += 2
        elif char == "[":
            parsed = _parse_class(pattern, index + 1)
            if parsed is None:
                return None
            item, index = parsed
            items.append(item)
        else:
            items.append(("literal", char))
            index += 1
    return items


def _parse_class(pattern: str, index: int) -> tuple[tuple, int] | None:
    """A class starting after its `[`: Go's rules, where a `]` closes it only after one range, and
    `-`, `]` or the end where a character is due make it malformed."""
    negated = pattern.startswith("^", index)
    index += negated
    ranges: list[tuple[int, int]] = []
    while True:
        if index < len(pattern) and pattern[index] == "]" and ranges:
            return ("class", negated, ranges), index + 1
        low = _class_char(pattern, index)
        if low is None:
            return None
        lo, index = low
        hi = lo
        if pattern[index] == "-":
            high = _class_char(pattern, index + 1)
            if high is None:
                return None
            hi, index = high
        ranges.append((lo, hi))


def _class_char(pattern: str, index: int) -> tuple[int, int] | None:
    """A possibly escaped character of a class, as a code point, and where the class goes on; None
    when none is there or the class would end without its `]`."""
    if index >= len(pattern) or pattern[index] in "-]":
        return None
    if pattern[index] == "\\":
        index += 1
        if index >= len(pattern):
            return None
    if index + 1 >= len(pattern):
        return None
    return ord(pattern[index]), index + 1


def _class_intervals(classes: list[tuple[int, bool, list[tuple[int, int]]]]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Code points where some class starts or stops containing characters, and the bits of the class
    items satisfied on each interval between them (a sweep over the ranges' ends)."""
    events: dict[int, list[tuple[int, int]]] = {}
    for number, (_, _, ranges) in enumerate(classes):
        for lo, hi in ranges:
            if lo <= hi:
                events.setdefault(lo, []).append((number, 1))
                events.setdefault(hi + 1, []).append((number, -1))
    counts = [0] * len(classes)
    mask = sum(bit for bit, negated, _ in classes if negated)
    boundaries, masks = [], [mask]
    for point in sorted(events):
        for number, change in events[point]:
            before = counts[number] > 0
            counts[number] += change
            if (counts[number] > 0) != before:
                mask ^= classes[number][0]
        if point < MAX_CODE_POINT:
            boundaries.append(point)
            masks.append(mask)
    return tuple(boundaries), tuple(masks)
