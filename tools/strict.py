"""Strict tool arguments: a name that is not in the tool's input schema, at any depth, is refused
with the closest valid name, instead of being silently dropped (`Enabled` for `enabled` would
otherwise leave an audience enabled while the call succeeds). A boolean is `true` or `false` only:
pydantic would read `"yes"`, `"off"` or `1` as one.

Objects whose schema allows any key (destination settings, mappings) are not checked here; their
keys are checked against the catalog by the tools themselves. A NUL character in any argument string
or name is refused too (`nul_characters`), as the Tracking API refuses it in messages.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator
from typing import Any

from tools.compact import resolve_ref


def forbid_unknown(schema: dict[str, Any]) -> dict[str, Any]:
    """The input schema with `additionalProperties: false` on the arguments object itself (nested
    input models say so already)."""
    schema.setdefault("additionalProperties", False)
    return schema


def refused_arguments(schema: dict[str, Any], arguments: dict[str, Any]) -> list[dict[str, str]]:
    """One `input-validation` error per argument name the schema does not know, naming the field by
    its path (`options.IncludeHistoricalData`) and the closest valid name, and per boolean argument
    that is not a JSON boolean."""
    return list(_refused(schema, arguments, schema.get("$defs", {}), ""))


def nul_characters(arguments: Any, path: str = "") -> list[dict[str, str]]:
    """One `input-validation` error per argument string or name holding a NUL character (U+0000),
    which no database here stores faithfully (PostgreSQL refuses it in text and jsonb)."""
    errors = []
    if isinstance(arguments, str) and "\x00" in arguments:
        errors.append({"type": "input-validation", "message": f"{path}: holds a NUL character (U+0000); remove it",
                       "field": path})
    elif isinstance(arguments, dict):
        for key, value in arguments.items():
            field = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                errors.append({"type": "input-validation", "message": f"{field!r}: a name holds a NUL character "
                               "(U+0000); remove it", "field": field})
            errors.extend(nul_characters(value, field))
    elif isinstance(arguments, list):
        for index, item in enumerate(arguments):
            errors.extend(nul_characters(item, f"{path}[{index}]"))
    return errors


def _refused(schema: dict[str, Any], value: Any, defs: dict[str, Any], path: str) -> Iterator[dict[str, str]]:
    schema = resolve_ref(schema, defs)
    if value is not None and not isinstance(value, bool) and _boolean(schema, defs):
        yield {"type": "input-validation", "message": f"{path}: must be true or false, not {json.dumps(value)}",
               "field": path}
        return
    if "anyOf" in schema:
        branches = [resolve_ref(branch, defs) for branch in schema["anyOf"]]
        fitting = [branch for branch in branches if _fits(branch, value)]
        if len(fitting) == 1:
            yield from _refused(fitting[0], value, defs, path)
        return
    if isinstance(value, dict) and "properties" in schema and schema.get("additionalProperties") is not True:
        names = schema["properties"]
        for key, item in value.items():
            field = f"{path}.{key}" if path else key
            if key in names:
                yield from _refused(names[key], item, defs, field)
            else:
                yield {"type": "input-validation", "message": f"{field}: unknown argument{_hint(key, names)}",
                       "field": field}
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            yield from _refused(schema["items"], item, defs, f"{path}[{index}]")


def _boolean(schema: dict[str, Any], defs: dict[str, Any]) -> bool:
    """Whether the schema takes a boolean and nothing else (but null)."""
    kinds = {resolve_ref(branch, defs).get("type") for branch in schema.get("anyOf", [schema])}
    return "boolean" in kinds and kinds <= {"boolean", "null"}


def _fits(schema: dict[str, Any], value: Any) -> bool:
    """Whether `value` has the JSON type of a union's branch (objects, arrays and the rest)."""
    kind = schema.get("type")
    if isinstance(value, dict):
        return kind == "object"
    if isinstance(value, list):
        return kind == "array"
    return kind not in ("object", "array")


def _hint(key: str, names: dict[str, Any]) -> str:
    same_but_case = [name for name in names if name.lower() == key.lower()]
    close = same_but_case or difflib.get_close_matches(key, list(names), n=1, cutoff=0.6)
    if close:
        return f"; did you mean '{close[0]}'?"
    return f"; valid names: {', '.join(names)}"
