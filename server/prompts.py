"""MCP prompts: the seed walk-throughs and the jobs agents ask for most, each a recipe of tool calls.

A recipe's steps are data (`Step`): the tool, its arguments with the prompt's arguments put in
(`{spaceId}`), and references to what an earlier step returned (`$2.audience.id`, shown to the agent
as `<audience.id from step 2>`). The prompt's text is rendered from them, one JSON line of arguments
per step, so the tests run exactly what an agent reads. Arguments are checked before anything is
rendered (the space, audience and destination exist, the destination is of the recipe's kind, a CQL
condition parses), and a prompt that is unknown or given a bad argument answers `-32602` with a
message saying what to change. Completion (`completion/complete`) offers the ids the store has for
a recipe's space, audience and destination arguments.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from mcp import MCPError
from mcp.server.mcpserver.prompts.base import AssistantMessage, UserMessage
from mcp.types import INVALID_PARAMS, Completion, CompletionArgument, CompletionContext, PromptReference

from store.catalog import audiences, computed_traits, definitions, destination_instances, spaces
from store.db.errors import DomainError, NotFound
from store.db.models import Audience, ComputedTrait, Destination, Space
from store.db.pagination import PageRequest
from store.db.store import Store
from tools.registry import PREFIX, domain_error

MAX_COMPLETIONS = 100
REFERENCE = re.compile(r"\$(\d+)\.([\w.]+)")


@dataclass(frozen=True)
class Argument:
    name: str
    description: str
    required: bool = True
    default: str | None = None


@dataclass(frozen=True)
class Step:
    title: str
    tool: str
    arguments: dict[str, Any]
    note: str = ""


@dataclass(frozen=True)
class Recipe:
    name: str
    title: str
    description: str
    arguments: tuple[Argument, ...]
    steps: tuple[Step, ...]
    intro: str = ""
    outro: str = ""
    destination_slug: str | None = None  # the kind of destination `destinationId` must be
    audience_type: str = "USERS"  # how a `query` argument is checked
    query_kind: str = "audience"


SPACE = Argument("spaceId", "The space (spa_…); segment_audiences_list_spaces lists them.")
NAME = Argument("name", "The name to give it; its key is the name's snake_case.")

RECIPES: tuple[Recipe, ...] = (
    Recipe(
        name="send-audience-to-pendula",
        title="Send an audience to Pendula",
        description="Build an audience and trigger a Pendula flow for each member, current ones included "
        "(the Pendula walk-through).",
        arguments=(SPACE, NAME,
                   Argument("query", "The CQL condition, e.g. event('Order Completed').within(30 days).count() >= 1."),
                   Argument("destinationId", "The space's Pendula destination (dst_…); create one first with "
                            "segment_audiences_create_destination, metadataId pendula, settings {flowTriggerUrl, apiToken}.")),
        destination_slug="pendula",
        intro="A Pendula connection sends nothing by itself: each member reaches the flow through an activation "
        "(Audience Entered). Historical data is included, so current members are sent too.",
        steps=(
            Step("Check the condition and see who it holds now", "create_audience_preview",
                 {"spaceId": "{spaceId}", "audienceType": "USERS", "definition": {"query": "{query}"}},
                 "Read `warnings`: a trait or event the space has never seen is named there."),
            Step("Read the preview's size and first members", "get_audience_preview",
                 {"spaceId": "{spaceId}", "id": "$1.audiencePreview.id"}, "Call again while status is RUNNING."),
            Step("Create the audience", "create_audience",
                 {"spaceId": "{spaceId}", "audienceType": "USERS", "name": "{name}", "definition": {"query": "{query}"},
                  "options": {"includeHistoricalData": True}}),
            Step("Connect the Pendula destination", "add_destination_to_audience",
                 {"spaceId": "{spaceId}", "audienceId": "$3.audience.id",
                  "destination": {"id": "{destinationId}", "type": "destination"}}),
            Step("Trigger the flow for each member who enters", "add_activation_to_audience",
                 {"spaceId": "{spaceId}", "audienceId": "$3.audience.id", "connectionId": "$4.connection.id",
                  "activationName": "Trigger {name}", "activationType": "Audience Entered", "performResync": True,
                  "personalization": {"profile": {"properties": ["email"]}},
                  "destinationMapping": {"actionId": "pendula-trigger-flow"}},
                 "performResync true sends the current members now."),
            Step("See the audience and its size", "get_audience", {"spaceId": "{spaceId}", "id": "$3.audience.id"}),
        ),
        outro="For a one-off campaign, disable the audience (update_audience_for_space, enabled false) or remove "
        "the destination when it ends, or new members keep triggering the flow.",
    ),
    Recipe(
        name="computed-trait-to-moengage",
        title="Send a computed trait to MoEngage",
        description="Compute a trait from events and send its value to MoEngage as a custom attribute "
        "(the MoEngage walk-through).",
        arguments=(SPACE, NAME,
                   Argument("query", "The CQL value, e.g. event('Order Completed').within(30 days).count()."),
                   Argument("destinationId", "The space's MoEngage destination (dst_…); create one first with "
                            "segment_audiences_create_destination, metadataId moengage, settings {apiId, apiKey}.")),
        destination_slug="moengage",
        query_kind="computed_trait",
        intro="MoEngage sends from the connection itself: Identify sets the value as a custom attribute, Track sends "
        "Trait Computed events; with history on, current values go out at once.",
        steps=(
            Step("Create the computed trait", "create_computed_trait",
                 {"spaceId": "{spaceId}", "name": "{name}", "definition": {"query": "{query}", "type": "USERS"},
                  "options": {"includeHistoricalData": True}}),
            Step("Connect MoEngage, sending the value as an Identify trait", "add_destination_to_audience",
                 {"spaceId": "{spaceId}", "audienceId": "$1.computedTrait.id",
                  "destination": {"id": "{destinationId}", "type": "destination"},
                  "connectionSettings": {"sendIdentify": True, "sendTrack": False}},
                 "`sending` says what goes out now."),
            Step("See the trait and its status", "get_computed_trait", {"spaceId": "{spaceId}", "id": "$1.computedTrait.id"}),
        ),
        outro="In MoEngage, segment on the User Property named after the trait's key.",
    ),
    Recipe(
        name="account-audience",
        title="Build an account audience",
        description="An ACCOUNTS audience over Group calls and the accounts' users, e.g. accounts where no user "
        "viewed their dashboard in the last 30 days (the accounts walk-through).",
        arguments=(SPACE, NAME,
                   Argument("query", "The CQL condition over accounts; ANY (…) or ALL (…) quantify over their users.",
                            required=False,
                            default="ALL NOT (event('Dashboard Viewed').within(30 days).count() >= 1)")),
        audience_type="ACCOUNTS",
        intro="Account audiences are computed in batch (by schedule or forced run); a destination can receive a Group "
        "call per account (sendGroup) and/or an Identify call per user.",
        steps=(
            Step("Check the condition", "create_audience_preview",
                 {"spaceId": "{spaceId}", "audienceType": "ACCOUNTS", "definition": {"query": "{query}"}}),
            Step("Read the preview", "get_audience_preview", {"spaceId": "{spaceId}", "id": "$1.audiencePreview.id"},
                 "Call again while status is RUNNING."),
            Step("Create the audience", "create_audience",
                 {"spaceId": "{spaceId}", "audienceType": "ACCOUNTS", "name": "{name}", "definition": {"query": "{query}"}}),
            Step("Recompute it every day", "add_audience_schedule_to_audience",
                 {"spaceId": "{spaceId}", "id": "$3.audience.id", "strategy": "PERIODIC", "config": {"interval": "1d"}}),
            Step("Compute it now", "force_execute_audience_run", {"spaceId": "{spaceId}", "audienceId": "$3.audience.id"}),
        ),
    ),
    Recipe(
        name="find-why-an-audience-is-empty",
        title="Find why an audience is empty",
        description="Check an audience's definition against what the space has received: event names, traits, "
        "a fresh preview and a run.",
        arguments=(SPACE, Argument("audienceId", "The audience (aud_…) that has fewer members than expected.")),
        steps=(
            Step("Read the definition, status and size", "get_audience", {"spaceId": "{spaceId}", "id": "{audienceId}"},
                 "A disabled audience has no members; options.includeHistoricalData false ignores older events."),
            Step("List the events the space received", "list_events", {"spaceId": "{spaceId}", "sortBy": "name"},
                 "Compare each event('…') of the definition with these names, exactly (case and spaces)."),
            Step("List the traits profiles have", "list_traits", {"spaceId": "{spaceId}", "includeSampleValues": True},
                 "Compare each trait('…') with these keys, and its compared value with the samples."),
            Step("Preview the same definition now", "create_audience_preview",
                 {"spaceId": "{spaceId}", "audienceType": "$1.audience.audienceType",
                  "definition": {"query": "$1.audience.definition.query"}},
                 "`warnings` names what the space has never seen."),
            Step("Read the preview", "get_audience_preview", {"spaceId": "{spaceId}", "id": "$4.audiencePreview.id"},
                 "Members here but not in the audience: it has not run since; run it."),
            Step("Recompute the audience now", "force_execute_audience_run",
                 {"spaceId": "{spaceId}", "audienceId": "{audienceId}"}),
        ),
        outro="Still empty: members need an identifier in options.filterByExternalIds (user_id or email by default), "
        "and windows (within, between) count from each event's timestamp.",
    ),
    Recipe(
        name="export-audience-members",
        title="Export an audience's members",
        description="Download who was in an audience (or a computed trait's values) at an hour, as CSV, and read it.",
        arguments=(SPACE, Argument("audienceId", "The audience (aud_…) or computed trait (tra_…)."),
                   Argument("hour", "The hour, ISO-8601, within the last 30 days, e.g. 2026-11-22T09:00:00Z.")),
        steps=(
            Step("Write the CSV", "create_download", {"collectionId": "{audienceId}", "hour": "{hour}"},
                 "The result links the file as a resource_link (segment-audiences://spaces/…/downloads/…)."),
        ),
        outro="Read the linked resource with resources/read; it is kept for an hour.",
    ),
)

BY_NAME = {recipe.name: recipe for recipe in RECIPES}


def listing() -> list[dict[str, Any]]:
    """The prompts as prompts/list shows them."""
    return [{"name": recipe.name, "title": recipe.title, "description": recipe.description,
             "arguments": [{"name": a.name, "description": a.description + (f" Default: {a.default}" if a.default else ""),
                            "required": a.required} for a in recipe.arguments]} for recipe in RECIPES]


def render(store: Store, name: str, given: dict[str, str] | None) -> tuple[str, list]:
    """The description and messages of prompt `name` with `given` arguments, or `-32602`."""
    recipe = BY_NAME.get(name)
    if recipe is None:
        raise _invalid(f"Unknown prompt '{name}'; prompts/list lists them: {', '.join(BY_NAME)}.")
    values = _checked(store, recipe, dict(given or {}))
    lines = [recipe.description, "", recipe.intro, ""] if recipe.intro else [recipe.description, ""]
    lines.append("Call these tools in order; <x from step N> is that field of step N's result.")
    for number, step in enumerate(recipe.steps, 1):
        lines += ["", f"Step {number}. {step.title} ({PREFIX}{step.tool}):",
                  json.dumps(_filled(step.arguments, values), ensure_ascii=False)]
        if step.note:
            lines.append(step.note)
    if recipe.outro:
        lines += ["", recipe.outro]
    return recipe.description, [UserMessage("\n".join(lines)),
                                AssistantMessage(f"I will run these {len(recipe.steps)} steps in order and stop "
                                                 "at the first error, which says what to change.")]


def complete(store: Store, ref: object, argument: CompletionArgument, context: CompletionContext | None) -> Completion:
    """Ids for a prompt's spaceId, audienceId and destinationId arguments that start with what was typed."""
    if not isinstance(ref, PromptReference) or ref.name not in BY_NAME:
        return Completion(values=[])
    recipe = BY_NAME[ref.name]
    space_id = (context.arguments or {}).get("spaceId") if context else None
    if argument.name == "spaceId":
        candidates = [space.id for space in _all(lambda request: spaces.list_spaces(store, request))]
    elif argument.name in ("audienceId", "destinationId") and space_id:
        candidates = _space_ids(store, recipe, argument.name, space_id)
    else:
        candidates = []
    matching = [value for value in candidates if value.startswith(argument.value)]
    return Completion(values=matching[:MAX_COMPLETIONS], total=len(matching), has_more=len(matching) > MAX_COMPLETIONS)


def _space_ids(store: Store, recipe: Recipe, name: str, space_id: str) -> list[str]:
    try:
        if name == "destinationId":
            found: list[Destination] = _all(lambda r: destination_instances.list_destinations(store, space_id, r))
            return [d.id for d in found if recipe.destination_slug in (None, d.slug)]
        owners: list[Audience | ComputedTrait] = _all(lambda r: audiences.list_audiences(store, space_id, None, r))
        if recipe.name == "export-audience-members":
            owners += _all(lambda r: computed_traits.list_computed_traits(store, space_id, r))
        return [owner.id for owner in owners]
    except NotFound:
        return []


def _all(list_page) -> list:
    return list_page(PageRequest(count=MAX_COMPLETIONS + 1)).items


def _checked(store: Store, recipe: Recipe, given: dict[str, str]) -> dict[str, str]:
    known = {argument.name for argument in recipe.arguments}
    unknown = sorted(set(given) - known)
    if unknown:
        raise _invalid(f"Prompt '{recipe.name}' takes {', '.join(sorted(known))}; not {', '.join(unknown)}.")
    values = {}
    for argument in recipe.arguments:
        value = (given.get(argument.name) or "").strip() or argument.default
        if value is None:
            raise _invalid(f"Prompt '{recipe.name}' needs {argument.name}: {argument.description}")
        values[argument.name] = value
    try:
        space: Space = spaces.get_space(store, values["spaceId"])
        if "audienceId" in values:
            _require_owner(store, recipe, space.id, values["audienceId"])
        if "destinationId" in values:
            destination = destination_instances.get_destination(store, space.id, values["destinationId"])
            if recipe.destination_slug and destination.slug != recipe.destination_slug:
                raise _invalid(f"destinationId '{destination.id}' is a {destination.slug} destination; this prompt "
                               f"needs a {recipe.destination_slug} one (segment_audiences_list_destinations).")
        if "query" in values:
            definitions.check_definition(values["query"], kind=recipe.query_kind, audience_type=recipe.audience_type)
    except DomainError as error:
        raise _invalid(domain_error(error)["message"]) from None
    return values


def _require_owner(store: Store, recipe: Recipe, space_id: str, owner_id: str) -> None:
    if owner_id.startswith("tra_") and recipe.name == "export-audience-members":
        computed_traits.get_computed_trait(store, space_id, owner_id)
    else:
        audiences.get_audience(store, space_id, owner_id)


def _filled(value: Any, values: dict[str, str]) -> Any:
    """A step's arguments with the prompt's values put in and earlier results named."""
    if isinstance(value, dict):
        return {key: _filled(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [_filled(item, values) for item in value]
    if isinstance(value, str):
        text = REFERENCE.sub(lambda match: f"<{match.group(2)} from step {match.group(1)}>", value)
        return re.sub(r"\{(\w+)\}", lambda match: values.get(match.group(1), match.group(0)), text)
    return value


def _invalid(message: str) -> MCPError:
    return MCPError(code=INVALID_PARAMS, message=message)
