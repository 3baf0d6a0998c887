"""How a tool is declared and registered: name, hints, store binding, results and errors.

A tool is a plain function `fn(store, **arguments) -> OutputModel` that tests can call directly.
`register` binds it to a store, hides `store` from the input schema, and turns its return value into
the Public API `data` object as structured content, or a `DomainError` into the error envelope.
Every tool sets all four annotation hints; nothing here reaches outside this server (openWorld false).
"""

import functools
import inspect
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, ResourceLink, TextContent, ToolAnnotations
from pydantic import BaseModel, PrivateAttr, ValidationError
from pydantic.fields import FieldInfo

from store.db.errors import DomainError, NotFound
from store.db.store import Store
from tools.compact import compact, outline
from tools.strict import forbid_unknown

logger = logging.getLogger("segment_audiences.tools")
PREFIX = "segment_audiences_"
LISTING_HINTS = {
    "space": "Call segment_audiences_list_spaces to see valid space ids.",
    "audience": "Call segment_audiences_list_audiences to see valid audience ids.",
    "computed trait": "Call segment_audiences_list_computed_traits to see valid computed trait ids.",
    "schedule": "Call segment_audiences_list_audience_schedules_from_space_and_audience to see valid schedule ids.",
    "connection": "Call segment_audiences_list_destinations_from_audience to see this audience's connection ids (ii_…).",
    "activation": "Call segment_audiences_list_activations_from_audience to see valid activation ids.",
    "profile": "Name a profile as type:value of one of its identifiers (user_id:u1, email:a@b.c, anonymous_id:…, "
    "group_id:… with collection accounts) or by its id (use_…, acc_…).",
    "event": "Call segment_audiences_list_events to see the events the space has received.",
    "property": "Call segment_audiences_list_properties_from_event to see the event's properties and context fields.",
    "trait": "Call segment_audiences_list_traits to see the space's traits (collection users or accounts).",
    "destination": "Call segment_audiences_list_destinations to see the space's destination ids (dst_…), "
    "or create one with segment_audiences_create_destination.",
}


@dataclass(frozen=True)
class ToolSpec:
    name: str
    title: str
    fn: Callable[..., BaseModel]
    read_only: bool
    destructive: bool = False
    idempotent: bool = False

    @property
    def annotations(self) -> ToolAnnotations:
        return ToolAnnotations(
            read_only_hint=self.read_only,
            destructive_hint=self.destructive,
            idempotent_hint=self.read_only or self.idempotent,
            open_world_hint=False,
        )


def read(name: str, title: str, fn: Callable[..., BaseModel]) -> ToolSpec:
    return ToolSpec(PREFIX + name, title, fn, read_only=True)


def write(name: str, title: str, fn: Callable[..., BaseModel], *, idempotent: bool = False) -> ToolSpec:
    return ToolSpec(PREFIX + name, title, fn, read_only=False, idempotent=idempotent)


def remove(name: str, title: str, fn: Callable[..., BaseModel]) -> ToolSpec:
    return ToolSpec(PREFIX + name, title, fn, read_only=False, destructive=True, idempotent=True)


def register(server: MCPServer, store: Store, specs: list[ToolSpec]) -> None:
    for spec in specs:
        server.add_tool(
            bind(spec.fn, store, refusals=None if spec.read_only else spec.name),
            name=spec.name,
            title=spec.title,
            description=one_line(inspect.getdoc(spec.fn) or ""),
            annotations=spec.annotations,
            structured_output=True,
        )
        tool = server._tool_manager.get_tool(spec.name)
        forbid_unknown(compact(tool.parameters))
        outline(tool.fn_metadata.output_schema)


def one_line(docstring: str) -> str:
    """A docstring's wrapped lines joined (hosts wrap descriptions themselves); paragraphs stay."""
    return re.sub(r"(?<!\n)\n(?!\n)", " ", docstring)


def bind(fn: Callable[..., BaseModel], store: Store, refusals: str | None = None) -> Callable[..., CallToolResult]:
    """`fn` with `store` supplied, returning a `CallToolResult` validated against `fn`'s output model.
    A write tool (named by `refusals`) logs what it refused: the error's type and message, which
    never carry a secret."""
    signature = inspect.signature(fn, eval_str=True)
    output_model = signature.return_annotation
    parameter_names = _parameter_names(signature)

    @functools.wraps(fn)
    def tool(**arguments: Any) -> CallToolResult:
        try:
            return success(fn(store, **{parameter_names.get(name, name): value for name, value in arguments.items()}))
        except DomainError as error:
            if refusals:
                logger.warning("refused %s (%s): %s", refusals, error.type, error.message)
            return failure([domain_error(error)])

    tool.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=list(signature.parameters.values())[1:],
        return_annotation=Annotated[CallToolResult, output_model],
    )
    del tool.__wrapped__  # type: ignore[attr-defined]
    return tool


def _parameter_names(signature: inspect.Signature) -> dict[str, str]:
    """Argument name → Python parameter name, for parameters whose argument name is a Python keyword
    (`if_` declared with `Field(alias="if")`)."""
    names = {}
    for parameter in signature.parameters.values():
        for metadata in getattr(parameter.annotation, "__metadata__", ()):
            if isinstance(metadata, FieldInfo) and metadata.alias:
                names[metadata.alias] = parameter.name
    return names


class Linked(BaseModel):
    """An output model that also points at MCP resources: `links` follow the JSON text in the
    result's content as `resource_link` blocks, and are not part of the structured content."""

    _links: list[ResourceLink] = PrivateAttr(default_factory=list)

    def with_links(self, links: list[ResourceLink]) -> "Linked":
        self._links = links
        return self


def success(result: BaseModel) -> CallToolResult:
    data = public(result)
    links = result._links if isinstance(result, Linked) else []
    return CallToolResult(content=[TextContent(type="text", text=json.dumps(data, indent=2)), *links],
                          structured_content=data)


def failure(errors: list[dict[str, Any]]) -> CallToolResult:
    """An `isError` result whose text is the JSON envelope `{"errors": [...]}`. It carries no
    structured content: that must match the tool's output schema, and clients such as the MCP
    Inspector check it even on errors."""
    return CallToolResult(content=[TextContent(type="text", text=json.dumps({"errors": errors}, indent=2))],
                          is_error=True)


def domain_error(error: DomainError) -> dict[str, Any]:
    message = error.message
    if isinstance(error, NotFound) and error.resource in LISTING_HINTS:
        message = f"{message} {LISTING_HINTS[error.resource]}"
    return {"type": error.type, "message": message, **({"field": error.field} if error.field else {})}


def public(model: BaseModel) -> dict[str, Any]:
    """The JSON form of an output model, leaving out optional fields that are unset (None)."""
    return _public(model)


def _public(value: Any) -> Any:
    if isinstance(value, BaseModel):
        fields = type(value).model_fields
        return {
            fields[name].alias or name: _public(item)
            for name, item in ((name, getattr(value, name)) for name in fields)
            if item is not None or fields[name].is_required()
        }
    if isinstance(value, list):
        return [_public(item) for item in value]
    if isinstance(value, dict):
        return {key: _public(item) for key, item in value.items()}
    return value


def argument_errors(error: ValidationError) -> list[dict[str, Any]]:
    """Pydantic's complaints about a tool's arguments, one `input-validation` error per field, in
    the argument names the tool's schema shows (see `closest_branch` for a union's)."""
    errors = []
    for item in closest_branch(error.errors(include_url=False, include_input=False)):
        field = ".".join(str(part) for part in item["loc"])
        message = "is required" if item["type"] == "missing" else item["msg"]
        errors.append({"type": "input-validation", "message": f"{field}: {message}", "field": field})
    return errors


def closest_branch(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An argument that fits no member of a union gets pydantic's complaints against every member,
    each located under the member's class name (`config.PeriodicConfig.interval`). Keep only the
    member the argument was closest to (fewest fields it does not know, then fewest errors) and
    drop the class name, so one bad value gives one error naming its field (`config.interval`)."""
    branches: dict[tuple, dict[str, list[dict[str, Any]]]] = {}
    kept = []
    for item in items:
        position = next((i for i, part in enumerate(item["loc"]) if _is_union_member(part)), None)
        if position is None:
            kept.append(item)
            continue
        located = {**item, "loc": item["loc"][:position] + item["loc"][position + 1:]}
        branches.setdefault(item["loc"][:position], {}).setdefault(item["loc"][position], []).append(located)
    for members in branches.values():
        kept.extend(min(members.values(), key=lambda found: (
            sum(entry["type"] == "extra_forbidden" for entry in found), len(found))))
    return kept


def _is_union_member(part: object) -> bool:
    """Pydantic names a union member in an error's location by its class (`PeriodicConfig`) or its
    type (`literal['a']`, `list[int]`); argument names here start lower-case and have no brackets."""
    return isinstance(part, str) and bool(re.fullmatch(r"[A-Z]\w*|[\w-]+\[.*\]", part))
