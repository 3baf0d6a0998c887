"""Lean schemas for tools/list: what hosts put in a model's context before it does anything.

Pydantic's JSON schemas repeat what the names already say: a `title` on every property, `default:
null` on every optional one, and `anyOf [X, null]` for each optional field. Optional arguments may be
left out, and results leave out what they do not have (see `registry.public`), so a null never has
to be written: `compact` drops those. It also leaves string lengths (an id's 1 to 255 characters) to
the server, whose error names the field, and writes a definition used once where it is used. Every
type, enum, numeric bound, default and description of an input schema stays.

Output schemas are outlined (`outline`): the result's own fields and those of the resource it
carries (an audience's id, name, status, size…), with objects nested deeper published as plain
objects and no descriptions. They describe the same results, more loosely, at a fifth of the size;
the shapes in full are the Segment Public API's.
"""

from __future__ import annotations

from collections import Counter
from typing import Any


def compact(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` rewritten in place without titles, null defaults, null branches and string lengths,
    with the definitions used once inlined; returns it."""
    rewritten = _inline_single_use(_compact(schema))
    schema.clear()
    schema.update(rewritten)
    return schema


def _inline_single_use(schema: dict[str, Any]) -> dict[str, Any]:
    defs = schema.get("$defs", {})
    uses = Counter(_references(schema))
    single = {name for name in defs if uses[name] == 1}

    def inline(node: Any) -> Any:
        if isinstance(node, list):
            return [inline(item) for item in node]
        if not isinstance(node, dict):
            return node
        if node.get("$ref", "").removeprefix("#/$defs/") in single:
            node = resolve_ref(node, defs)
        return {key: inline(value) for key, value in node.items() if key != "$defs"}

    rewritten = inline(schema)
    kept = {name: inline(definition) for name, definition in defs.items() if name not in single}
    return {**rewritten, "$defs": kept} if kept else rewritten


def _references(node: Any) -> list[str]:
    if isinstance(node, list):
        return [name for item in node for name in _references(item)]
    if not isinstance(node, dict):
        return []
    own = [node["$ref"].removeprefix("#/$defs/")] if isinstance(node.get("$ref"), str) else []
    return own + [name for value in node.values() for name in _references(value)]


def _compact(value: Any) -> Any:
    if isinstance(value, list):
        return [_compact(item) for item in value]
    if not isinstance(value, dict):
        return value
    node = {key: item for key, item in value.items()
            if not (key == "title" and isinstance(item, str)) and not (key == "default" and item is None)
            and not (key in ("minLength", "maxLength") and value.get("type") == "string")}
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


def outline(schema: dict[str, Any], levels: int = 2) -> dict[str, Any]:
    """`schema` rewritten in place with its `$defs` inlined down to `levels` levels of objects (deeper
    objects become `{"type": "object"}`), without descriptions; returns it."""
    rewritten = _outline(_compact(schema), schema.get("$defs", {}), 0, levels)
    schema.clear()
    schema.update(rewritten)
    return schema


def _outline(node: Any, defs: dict[str, Any], depth: int, levels: int) -> Any:
    if isinstance(node, list):
        return [_outline(item, defs, depth, levels) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return _outline(_compact(resolve_ref(node, defs)), defs, depth, levels)
    node = {key: value for key, value in node.items() if key not in ("description", "$defs")}
    if node.get("type") == "object" and "properties" in node:
        if depth >= levels:
            return {"type": "object"}
        node["properties"] = {name: _outline(item, defs, depth + 1, levels) for name, item in node["properties"].items()}
        return node
    return {key: _outline(value, defs, depth, levels) if key in ("items", "anyOf", "additionalProperties") else value
            for key, value in node.items()}


def resolve_ref(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """`schema` with a `#/$defs/…` reference replaced by the definition (its own keys kept beside)."""
    reference = schema.get("$ref", "")
    if reference.startswith("#/$defs/"):
        return {**defs.get(reference.removeprefix("#/$defs/"), {}), **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema
