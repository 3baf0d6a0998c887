"""Keys and slugs derived from names.

A key is the snake_case of the name (Segment: "the snake_cased version of the audience name"):
accents folded to ASCII, every run of other characters made one underscore, camelCase split, and
lower-cased. A name with nothing Latin in it falls back to the resource word (`audience`). A key
already taken in the space, now or ever, gets the first free numeric suffix: `vip`, `vip_2`, ...
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable


def snake_case(name: str, fallback: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    split = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", ascii_name)
    key = re.sub(r"[^a-z0-9]+", "_", split.lower()).strip("_")
    return key or fallback


def slug(name: str, fallback: str) -> str:
    return snake_case(name, fallback).replace("_", "-")


def first_free(base: str, taken: Callable[[str], bool], separator: str = "_") -> str:
    candidate, suffix = base, 2
    while taken(candidate):
        candidate, suffix = f"{base}{separator}{suffix}", suffix + 1
    return candidate
