"""Lean schemas for tools/list: what hosts put in a model's context before it does anything.

Pydantic's JSON schemas repeat what the names already say: a `title` on every property, `default:
null` on every optional one, and `anyOf [X, null]` for each optional field. Optional arguments may be
left out, and results leave out what they do not have (see `registry.public`), so a null never has
to be written: those are dropped, and every type, enum, bound, description and `$defs` entry stays.
"""

from __future__ import annotations

from typing import Any


def compact(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` rewritten in place without titles, null defaults and null branches; returns it."""
    rewritten = _compact(schema)
    schema.clear()
    schema.update(rewritten)
    return schema


def _compact(value: Any) -> Any:
    if isinstance(value, list):
        return [_compact(item) for item in value]
    if not isinstance(value, dict):
        return value
    node = {key: item for key, item in value.items()
            if not (key == "title" and isinstance(item, str)) and not (key == "default" and item is None)}
    if "properties" in node:
        node["properties"] = {name: _compact(item) for name, item in node["properties"].items()}
    if "$defs" in node:
        node["$defs"] = {name: _compact(item) for name, item in node["$defs"].items()}
    for key, item in node.items():
        if key not in ("properties", "$defs"):
            node[key] = _compact(item)
    branches = node.get("anyOf")
    if isinstance(branches, list):
        kept = [branch for branch in branches if branch != {"type": "null"}]
        if len(kept) == 1 and len(kept) < len(branches):
            node.pop("anyOf")
            node = {**kept[0], **node}
        elif len(kept) < len(branches):
            node["anyOf"] = kept
    return node
