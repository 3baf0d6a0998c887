"""A space's Data Graph: Segment's config language (HCL, read with python-hcl2) or the same structure
as JSON (HCL's JSON form: a labelled block is an object keyed by its label), turned into a checked
`DataGraph` (`reference/data-graph.md` §1).

The rules checked here need no warehouse: slugs are lower case (`^[a-z][a-z0-9_-]*$`; digits are
this project's extension), entity slugs and relationship slugs are each unique across the graph (CQL
and `targetEntity` name a node by its relationship slug alone), every `related_entity` and every
slug in a join names a declared entity, a top-level relationship joins by exactly one of
`external_id` or `trait` and a nested one by exactly one of `join_on` or `junction_table`, there is
one `profile` block, and the graph is at most 6 levels deep counting the profile. An unknown block or
attribute is refused rather than ignored. Every error names the block and the attribute.
`profile_folder` and `type` are accepted and kept, and mean nothing here: the profile tables are the
project's own.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

SLUG = re.compile(r"^[a-z][a-z0-9_-]*$")
MAX_DEPTH = 6  # levels, the profile counted
ENTITY_ATTRIBUTES = {"name", "description", "table_ref", "primary_key", "enrichment_enabled"}
PROFILE_ATTRIBUTES = {"profile_folder", "type"}
RELATIONSHIP_ATTRIBUTES = {"name", "description", "related_entity", "join_on"}
RELATIONSHIP_BLOCKS = {"external_id", "trait", "junction_table", "relationship"}
PROFILE_JOIN_KEYS = {"external_id": ("type", "join_key"), "trait": ("name", "join_key")}
JUNCTION_ATTRIBUTES = ("table_ref", "primary_key", "left_join_on", "right_join_on")


class DataGraphError(ValueError):
    """A config that is not a valid Data Graph; `path` names the block and attribute
    (`relationship.carts.join_on`)."""

    def __init__(self, message: str, path: str):
        super().__init__(message)
        self.path = path


@dataclass(frozen=True)
class Entity:
    slug: str
    name: str
    table_ref: str
    primary_key: str
    description: str | None = None
    enrichment_enabled: bool = False


@dataclass(frozen=True)
class ProfileJoin:
    """Profile → entity: the entity column `join_key` holds the profile's identifier of `type`
    (`by == "external_id"`) or the value of its trait `name` (`by == "trait"`)."""

    by: str
    key: str
    join_key: str


@dataclass(frozen=True)
class ColumnJoin:
    """Entity → entity, one to many: `parent.<parent_column> = child.<child_column>`."""

    parent_column: str
    child_column: str


@dataclass(frozen=True)
class JunctionJoin:
    """Entity → entity, many to many, through a junction table: `parent.<parent_column> =
    junction.<left_column>` and `junction.<right_column> = child.<child_column>`."""

    table_ref: str
    primary_key: str
    parent_column: str
    left_column: str
    right_column: str
    child_column: str


Join = ProfileJoin | ColumnJoin | JunctionJoin


@dataclass(frozen=True)
class Relationship:
    slug: str
    name: str
    related_entity: str
    join: Join
    children: tuple["Relationship", ...] = ()
    description: str | None = None


@dataclass(frozen=True)
class DataGraph:
    entities: dict[str, Entity]
    relationships: tuple[Relationship, ...]
    version: str | None = None
    profile_folder: str | None = None
    profile_type: str | None = None
    _by_slug: dict[str, tuple[Relationship, tuple[str, ...]]] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self):
        for node, path in _walk(self.relationships, ()):
            self._by_slug[node.slug] = (node, path)

    def relationship(self, slug: str) -> Relationship | None:
        found = self._by_slug.get(slug)
        return None if found is None else found[0]

    def parents(self, slug: str) -> tuple[str, ...]:
        """The relationship slugs from the profile down to (not including) `slug`."""
        return self._by_slug[slug][1]

    def nodes(self) -> Iterator[tuple[Relationship, tuple[str, ...]]]:
        """Every relationship with its parents' slugs, depth first."""
        return iter(self._by_slug.values())

    def entity_of(self, slug: str) -> Entity:
        return self.entities[self.relationship(slug).related_entity]


def _walk(nodes, parents):
    for node in nodes:
        yield node, parents
        yield from _walk(node.children, (*parents, node.slug))


def parse_hcl(text: str) -> DataGraph:
    """A Data Graph from Segment's config language."""
    import hcl2
    from lark.exceptions import LarkError, UnexpectedInput

    options = hcl2.SerializationOptions(with_comments=False, explicit_blocks=False, strip_string_quotes=True)
    try:
        document = hcl2.loads(text, serialization_options=options)
    except UnexpectedInput as error:
        raise DataGraphError(f"the config is not valid HCL at line {error.line}, column {error.column}: "
                             f"{_first_line(error)}", "config") from None
    except (LarkError, ValueError) as error:
        raise DataGraphError(f"the config is not valid HCL: {_first_line(error)}", "config") from None
    return from_document(document)


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def from_document(document: Any) -> DataGraph:
    """A Data Graph from HCL's JSON form: `{"data_graph": {"entity": {"<slug>": {...}}, "profile":
    {"relationship": {"<slug>": {...}}}}}` (a block may also be a list of such objects, as
    python-hcl2 writes them)."""
    if not isinstance(document, dict) or set(document) != {"data_graph"}:
        raise DataGraphError("the config must be one data_graph { … } block", "data_graph")
    [body] = _single(document["data_graph"], "data_graph")
    _only(body, {"version", "entity", "profile"}, "data_graph")
    entities = {}
    for slug, attributes in _labelled(body.get("entity"), "entity"):
        entities[slug] = _entity(slug, attributes)
    relationships: tuple[Relationship, ...] = ()
    folder = kind = None
    if "profile" in body:
        [profile] = _single(body["profile"], "profile")
        _only(profile, PROFILE_ATTRIBUTES | {"relationship"}, "profile")
        folder, kind = _optional_text(profile, "profile_folder", "profile"), _optional_text(profile, "type", "profile")
        relationships = tuple(_relationship(slug, attributes, entities, None, 2)
                              for slug, attributes in _labelled(profile.get("relationship"), "relationship"))
    graph = DataGraph(entities, relationships, _optional_text(body, "version", "data_graph"), folder, kind)
    _unique_relationships(graph)
    return graph


def _single(value: Any, name: str) -> list[dict]:
    blocks = value if isinstance(value, list) else [value]
    if len(blocks) != 1 or not isinstance(blocks[0], dict):
        raise DataGraphError(f"there must be exactly one {name} {{ … }} block", name)
    return blocks


def _labelled(value: Any, kind: str) -> Iterator[tuple[str, dict]]:
    """The (label, body) pairs of a labelled block kind, in order; labels are unique."""
    if value is None:
        return
    blocks = value if isinstance(value, list) else [value]
    seen = set()
    for block in blocks:
        if not isinstance(block, dict):
            raise DataGraphError(f'a {kind} block needs a label: {kind} "<slug>" {{ … }}', kind)
        for slug, body in block.items():
            if not isinstance(slug, str) or not SLUG.match(slug):
                raise DataGraphError(f'{kind} "{slug}": a slug is lower-case letters, digits, "-" or "_", starting '
                                     "with a letter", f"{kind}.{slug}")
            if slug in seen:
                raise DataGraphError(f'{kind} "{slug}" is declared twice; slugs are unique', f"{kind}.{slug}")
            seen.add(slug)
            [attributes] = _single(body, f'{kind} "{slug}"')
            yield slug, attributes


def _only(body: dict, allowed: set[str], path: str) -> None:
    for name in body:
        if name not in allowed:
            raise DataGraphError(f"{_label(path)} has no attribute or block '{name}'; it takes "
                                 f"{', '.join(sorted(allowed))}", f"{path}.{name}")


def _label(path: str) -> str:
    """The block a path is in, as the config spells it: `relationship "carts"`."""
    parts = path.split(".")
    return f'{parts[0]} "{parts[1]}"' if len(parts) > 1 else parts[0]


def _text(body: dict, name: str, path: str) -> str:
    value = body.get(name)
    if value is None:
        raise DataGraphError(f"{_label(path)} needs {name}", f"{path}.{name}")
    if not isinstance(value, str) or not value.strip():
        raise DataGraphError(f"{_label(path)}: {name} must be a non-empty string", f"{path}.{name}")
    return value.strip()


def _optional_text(body: dict, name: str, path: str) -> str | None:
    return None if body.get(name) is None else _text(body, name, path)


def _entity(slug: str, body: dict) -> Entity:
    path = f"entity.{slug}"
    _only(body, ENTITY_ATTRIBUTES, path)
    enrichment = body.get("enrichment_enabled", False)
    if not isinstance(enrichment, bool):
        raise DataGraphError(f"{_label(path)}: enrichment_enabled is true or false", f"{path}.enrichment_enabled")
    return Entity(slug, _text(body, "name", path), _text(body, "table_ref", path), _text(body, "primary_key", path),
                  _optional_text(body, "description", path), enrichment)


def _relationship(slug: str, body: dict, entities: dict[str, Entity], parent: str | None, depth: int) -> Relationship:
    path = f"relationship.{slug}"
    if depth > MAX_DEPTH:
        raise DataGraphError(f'{_label(path)} is at level {depth}; a Data Graph has at most {MAX_DEPTH} levels, '
                             "the profile counted", path)
    _only(body, RELATIONSHIP_ATTRIBUTES | RELATIONSHIP_BLOCKS, path)
    related = _text(body, "related_entity", path)
    if related not in entities:
        raise DataGraphError(f"{_label(path)}: related_entity '{related}' is not a declared entity; declared: "
                             f"{', '.join(sorted(entities)) or 'none'}", f"{path}.related_entity")
    join = _profile_join(body, path) if parent is None else _entity_join(body, path, parent, related)
    children = tuple(_relationship(child, attributes, entities, related, depth + 1)
                     for child, attributes in _labelled(body.get("relationship"), "relationship"))
    return Relationship(slug, _text(body, "name", path), related, join, children,
                        _optional_text(body, "description", path))


def _profile_join(body: dict, path: str) -> ProfileJoin:
    present = [name for name in PROFILE_JOIN_KEYS if name in body]
    for name in ("join_on", "junction_table"):
        if name in body:
            raise DataGraphError(f"{_label(path)} joins the profile, so it takes external_id {{ … }} or trait "
                                 f"{{ … }}, not {name}", f"{path}.{name}")
    if len(present) != 1:
        raise DataGraphError(f"{_label(path)} joins the profile by exactly one of external_id {{ type, join_key }} "
                             "or trait { name, join_key }", path)
    by = present[0]
    [block] = _single(body[by], f"{path}.{by}")
    key_name, join_name = PROFILE_JOIN_KEYS[by]
    _only(block, {key_name, join_name}, f"{path}.{by}")
    return ProfileJoin(by, _text(block, key_name, f"{path}.{by}"), _text(block, join_name, f"{path}.{by}"))


def _entity_join(body: dict, path: str, parent: str, child: str) -> ColumnJoin | JunctionJoin:
    for name in PROFILE_JOIN_KEYS:
        if name in body:
            raise DataGraphError(f"{_label(path)} joins entity '{parent}', so it takes join_on or junction_table "
                                 f"{{ … }}, not {name}", f"{path}.{name}")
    if ("join_on" in body) == ("junction_table" in body):
        raise DataGraphError(f"{_label(path)} joins its parent by exactly one of join_on = "
                             f'"{parent}.<COLUMN> = {child}.<COLUMN>" or junction_table {{ … }}', path)
    if "join_on" in body:
        condition = _text(body, "join_on", path)
        sides = _sides(condition, f"{path}.join_on", 2)
        return ColumnJoin(*_ordered_pair(sides, parent, child, f"{path}.join_on", condition))
    [junction] = _single(body["junction_table"], f"{path}.junction_table")
    where = f"{path}.junction_table"
    _only(junction, set(JUNCTION_ATTRIBUTES), where)
    left = _sides(_text(junction, "left_join_on", where), f"{where}.left_join_on", 1)
    right = _sides(_text(junction, "right_join_on", where), f"{where}.right_join_on", 1)
    parent_column, left_column = _entity_and_bare(left, parent, f"{where}.left_join_on")
    child_column, right_column = _entity_and_bare(right, child, f"{where}.right_join_on")
    return JunctionJoin(_text(junction, "table_ref", where), _text(junction, "primary_key", where),
                        parent_column, left_column, right_column, child_column)


def _sides(condition: str, path: str, qualified: int) -> list[tuple[str | None, str]]:
    """The two sides of `A = B`, each as (entity slug or None, column); `qualified` of them name an entity."""
    parts = [part.strip() for part in condition.split("=")]
    example = ('"<parent>.<COLUMN> = <child>.<COLUMN>"' if qualified == 2 else
               '"<entity>.<COLUMN> = <JUNCTION_COLUMN>"')
    if len(parts) != 2 or not all(parts):
        raise DataGraphError(f"{_label(path)}: {path.rsplit('.', 1)[1]} is one equality, such as "
                             f"{example}", path)
    sides = []
    for part in parts:
        slug, dot, column = part.rpartition(".")
        sides.append((slug, column) if dot else (None, part))
    if sum(slug is not None for slug, _ in sides) != qualified:
        raise DataGraphError(f"{_label(path)}: {path.rsplit('.', 1)[1]} reads {example}", path)
    return sides


def _ordered_pair(sides, parent: str, child: str, path: str, condition: str) -> tuple[str, str]:
    (first, first_column), (second, second_column) = sides
    if (first, second) == (parent, child):
        return first_column, second_column
    if (first, second) == (child, parent):
        return second_column, first_column
    raise DataGraphError(f"{_label(path)}: join_on \"{condition}\" must "
                         f"join '{parent}' (the parent's entity) and '{child}' (this relationship's)", path)


def _entity_and_bare(sides, entity: str, path: str) -> tuple[str, str]:
    (first, first_column), (second, second_column) = sides
    slug, column, bare = (first, first_column, second_column) if first is not None else (second, second_column,
                                                                                         first_column)
    if slug != entity:
        raise DataGraphError(f"{_label(path)}: {path.rsplit('.', 1)[1]} must name entity '{entity}' on one side, not '{slug}'", path)
    return column, bare


def _unique_relationships(graph: DataGraph) -> None:
    seen = set()
    for node, _ in _walk(graph.relationships, ()):
        if node.slug in seen:
            raise DataGraphError(f'relationship "{node.slug}" is declared twice; relationship slugs are unique '
                                 "across the graph, since entity('<slug>') names one", f"relationship.{node.slug}")
        seen.add(node.slug)
