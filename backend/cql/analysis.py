"""Facts about a definition that the domain needs before any compute: references, cadence, windows.

Cadence follows `reference/engine-semantics.md` §2.4. An audience is BATCH when it is an ACCOUNTS or
LINKED audience or uses a funnel (an event nested in another event's `where`), a parent reference,
`between`, or `ANY`/`ALL`; otherwise REALTIME (profiles leaving a `within` window are handled by
window sweeps). A computed trait is BATCH when it uses a sliding window (`within`/`between`) and has
no session window (`expires_after`); otherwise REALTIME.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from backend.cql import ast

PRIMARY_EXTRACTORS = (ast.Stream, ast.TraitRef, ast.PropertyRef, ast.ContextRef)
RELATIVE_COMPARATORS = ("within_last", "within_next", "before_last", "after_next")


@dataclass(frozen=True)
class Analysis:
    cadence: str  # "REALTIME" | "BATCH"
    cadence_reason: str
    referenced_traits: tuple[str, ...]  # top-level trait keys, e.g. audience keys used via trait('<key>')
    event_names: tuple[str, ...]
    property_paths: tuple[tuple[str, ...], ...]  # every event property read, e.g. ('price',) for property('price')
    largest_window_hours: float | None
    primary_expressions: int
    reads_clock: bool  # windows or relative-date comparators: members can change with time alone
    entity_relationships: tuple[str, ...] = ()  # relationship slugs entity() reads (LINKED)


def analyze(root: ast.Node, *, kind: str, audience_type: str) -> Analysis:
    nodes = list(walk(root))
    windows = [_window_hours(node) for node in nodes if isinstance(node, (ast.Within, ast.Between))]
    cadence, reason = _cadence(nodes, kind, audience_type)
    return Analysis(
        cadence=cadence,
        cadence_reason=reason,
        referenced_traits=tuple(sorted({n.path[0] for n in nodes if isinstance(n, ast.TraitRef)})),
        event_names=tuple(sorted({n.name for n in nodes if isinstance(n, ast.Stream) and n.source == "event"})),
        property_paths=tuple(sorted({n.path for n in walk(root, entities=False) if isinstance(n, ast.PropertyRef)})),
        largest_window_hours=max(windows) if windows else None,
        primary_expressions=sum(isinstance(n, PRIMARY_EXTRACTORS) for n in nodes),
        reads_clock=any(isinstance(n, (ast.Within, ast.Between, ast.ExpiresAfter))
                        or (isinstance(n, ast.Comparison) and n.comparator in RELATIVE_COMPARATORS) for n in nodes),
        entity_relationships=tuple(sorted({n.name for n in nodes if isinstance(n, ast.Stream) and n.source == "entity"})),
    )


def walk(node: object, *, entities: bool = True) -> Iterator[object]:
    """Every node below and including `node`, depth first (without `entities`, not what an entity()
    stream's filters hold: those read warehouse columns, not event properties)."""
    yield node
    if not entities and isinstance(node, ast.Stream) and node.source == "entity":
        return
    for child in children(node):
        yield from walk(child, entities=entities)


def children(node: object) -> tuple:
    """The nodes directly below `node`."""
    if isinstance(node, (ast.And, ast.Or)):
        return node.operands
    if isinstance(node, (ast.Not, ast.Quantified)):
        return (node.operand,)
    if isinstance(node, ast.Comparison):
        return (node.subject, *node.arguments)
    if isinstance(node, ast.Reduction):
        return (node.stream,) if node.argument is None else (node.stream, node.argument)
    if isinstance(node, ast.Stream):
        return node.filters
    if isinstance(node, ast.Where):
        return (node.condition,)
    return ()


def _window_hours(node: ast.Within | ast.Between) -> float:
    return node.end.hours if isinstance(node, ast.Between) else node.duration.hours


def _cadence(nodes: list, kind: str, audience_type: str) -> tuple[str, str]:
    if kind == "computed_trait":
        if any(isinstance(n, ast.ExpiresAfter) for n in nodes):
            return "REALTIME", "session window (expires_after) computed traits are real-time"
        if any(isinstance(n, (ast.Within, ast.Between)) for n in nodes):
            return "BATCH", "computed traits with a sliding window (within/between) are computed in batch"
        return "REALTIME", "no batch-only feature is used"
    if audience_type in ("ACCOUNTS", "LINKED"):
        return "BATCH", f"{audience_type} audiences are computed in batch"
    nested = any(
        isinstance(n, ast.Where) and any(isinstance(inner, ast.Stream) for inner in walk(n.condition)) for n in nodes
    )
    if nested:
        return "BATCH", "funnels (an event inside another event's where) are computed in batch"
    if any(isinstance(n, ast.PropertyRef) and n.parent for n in nodes):
        return "BATCH", "parent property references are computed in batch"
    if any(isinstance(n, ast.Between) for n in nodes):
        return "BATCH", "between(...) windows are computed in batch"
    if any(isinstance(n, ast.Quantified) for n in nodes):
        return "BATCH", "ANY/ALL account quantifiers are computed in batch"
    return "REALTIME", "no batch-only feature is used"
