"""The proof of `entity()`: on random Data Graphs (relationships joined by an identifier, a trait,
a column or a junction table, up to three levels), random entity rows and random LINKED definitions,
the compiled SQL and the reference evaluator agree on every profile, on every engine."""

from datetime import date

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from backend.cql import CQLError, validate
from backend.cql.compiler import Scope, audience_members, matched_entity_rows
from backend.cql.evaluate import ProfileData, is_member, matched_paths
from backend.cql.matched import entity_details, nest, paths
from backend.cql.linked_checks import check_linked
from backend.cql.parser import parse
from store.analytic import tables as analytic
from store.compute.computations import TABLES
from tests.cql_data import ENGINES, CqlDatabase, SPACE
from tests.linked_data import CUSTOMERS, EMAILS, SLOTS, LinkedRows, Shape, parse_shape, resolved, write
from tests.test_cql_differential import EVENTS, NOW, TRAITS, _valid, audience

NUMBERS = [None, 0, 1, 2.5, 10, -1]
TEXTS = [None, "", "a", "ab", "b", "n1"]
DAYS = [None, date(2026, 11, 1), date(2026, 11, 21)]


@st.composite
def shapes(draw) -> Shape:
    parents, joins = [], []
    for slot in range(draw(st.integers(1, SLOTS))):
        candidates = [None] + [index for index in range(slot) if _depth(parents, index) < 3]
        parent = draw(st.sampled_from(candidates))
        parents.append(parent)
        joins.append(draw(st.sampled_from(["external_id", "trait"] if parent is None else ["join_on", "junction"])))
    if all(parent is not None for parent in parents):
        parents[0], joins[0] = None, "external_id"
    return Shape(tuple(parents), tuple(joins))


def _depth(parents, slot) -> int:
    return 1 if parents[slot] is None else 1 + _depth(parents, parents[slot])


@st.composite
def linked_rows(draw, shape: Shape, profile_ids: list[str]) -> LinkedRows:
    entities, junctions = {}, {}
    for slot, parent in enumerate(shape.parents):
        if parent is None:
            keys = (EMAILS if shape.joins[slot] == "external_id" else CUSTOMERS) + ["zz"]
        else:
            keys = [row["ID"] for row in entities[parent]] + ["none"]
        entities[slot] = [dict(ID=f"{slot}-{index}", PARENT=draw(st.sampled_from(keys)), NUM=draw(st.sampled_from(NUMBERS)),
                               TXT=draw(st.sampled_from(TEXTS)), FLAG=draw(st.sampled_from([None, True, False])),
                               DAY=draw(st.sampled_from(DAYS)))
                          for index in range(draw(st.integers(0, 5)))]
        if parent is not None and shape.joins[slot] == "junction":
            pairs = draw(st.lists(st.tuples(st.sampled_from(keys), st.sampled_from(
                [row["ID"] for row in entities[slot]] + ["none"])), max_size=6))
            junctions[slot] = [dict(ID=f"j{slot}-{index}", L=left, R=right) for index, (left, right) in enumerate(pairs)]
    emails = draw(st.lists(st.sampled_from(EMAILS + [None]), min_size=len(profile_ids), max_size=len(profile_ids)))
    unique = {}
    for profile_id, email in zip(profile_ids, emails):
        if email is not None and email not in unique.values():
            unique[profile_id] = email
    return LinkedRows(entities, junctions, unique)


def entity_condition(draw, shape: Shape, slot: int, depth: int) -> str:
    leaves = [draw(st.sampled_from(["=", "!=", ">", ">=", "<", "<="])) for _ in range(1)]
    options = [f"property('NUM') {leaves[0]} {draw(st.sampled_from(['0', '1', '2.5', '-1']))}",
               f"property('txt') = '{draw(st.sampled_from(['a', '', 'n1']))}'",
               f"property('TXT').{draw(st.sampled_from(['contains', 'starts_with', 'ends_with']))}('a')",
               f"property('FLAG') = {draw(st.sampled_from(['true', 'false']))}",
               "property('TXT').exists()", "property('NUM').absent()",
               f"property('DAY').{draw(st.sampled_from(['before_date', 'after_date']))}('2026-11-10')",
               f"property('NUM') {leaves[0]} trait('spend')", "property('TXT') = trait('plan')"]
    if shape.parents[slot] is not None:
        options.append(f"property(parent: 'NUM') {leaves[0]} property('NUM')")
    if depth > 0:
        options.extend(entity_count(draw, shape, child, depth - 1) for child in shape.children(slot))
    chosen = draw(st.lists(st.sampled_from(options), min_size=1, max_size=2))
    joined = f" {draw(st.sampled_from(['AND', 'OR']))} ".join(chosen)
    return f"NOT ({joined})" if draw(st.booleans()) and len(chosen) == 1 else joined


def entity_count(draw, shape: Shape, slot: int, depth: int) -> str:
    stream = f"entity('r{slot}')"
    if draw(st.booleans()):
        stream += f".where({entity_condition(draw, shape, slot, depth)})"
        bound = draw(st.sampled_from([">= 1", ">= 2", "= 1", "<= 1"]))
    else:
        bound = draw(st.sampled_from([">= 1", ">= 2", "= 0", "<= 1"]))
    return f"{stream}.count() {bound}"


@st.composite
def definitions(draw, shape: Shape) -> str:
    parts = [entity_count(draw, shape, draw(st.sampled_from(shape.children(None))), 2)
             for _ in range(draw(st.integers(1, 2)))]
    if draw(st.booleans()):
        other = draw(audience(depth=0))
        assume(_valid(other, "audience"))
        parts.append(other)
    joined = f" {draw(st.sampled_from(['AND', 'OR']))} ".join(parts)
    return f"NOT ({joined})" if draw(st.integers(0, 4)) == 0 else joined


@pytest.fixture(scope="module", params=ENGINES)
def database(request):
    return CqlDatabase(request.param)


SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                             HealthCheck.function_scoped_fixture])
USERS = st.builds(ProfileData, events=st.lists(EVENTS, max_size=4),
                  traits=st.tuples(TRAITS, st.sampled_from(CUSTOMERS + [5, None])).map(
                      lambda t: {**t[0], **({"customer": t[1]} if t[1] is not None else {})}))


def drawn(database, data):
    """A random graph, profiles stored in `database` with their entity rows, and a definition."""
    shape = data.draw(shapes())
    profiles = data.draw(st.lists(USERS, min_size=1, max_size=4))
    ids = database.store(profiles)
    rows = data.draw(linked_rows(shape, ids))
    write(database, rows, ids)
    return shape, profiles, ids, rows, data.draw(definitions(shape)), resolved(parse_shape(shape))


@SETTINGS
@given(data=st.data())
def test_linked_audience_members_agree(database, data):
    shape, profiles, ids, rows, query, graph = drawn(database, data)
    try:
        validate(query, kind="audience", audience_type="LINKED")
        check_linked(parse(query), graph)
    except CQLError as error:
        pytest.fail(f"{query}: {error}")
    expected = {profile_id for profile_id, profile in zip(ids, profiles)
                if is_member(parse(query), ProfileData(profile.events, profile.traits,
                                                       entities=rows.linked(shape, profile_id, profile.traits)), NOW)}
    assert database.members(query, NOW, tables=_tables(database, graph)) == expected, (query, shape)


@SETTINGS
@given(data=st.data())
def test_matched_entities_agree(database, data):
    shape, profiles, ids, rows, query, graph = drawn(database, data)
    streams = matched_entity_rows(parse(query), tables=_tables(database, graph), scope=Scope(SPACE), now=NOW,
                                  columns={"r0": ["TXT"]})
    expected = {profile_id: matched_paths(parse(query), ProfileData(
        profile.events, profile.traits, entities=rows.linked(shape, profile_id, profile.traits)), NOW)
        for profile_id, profile in zip(ids, profiles)}
    found = nest([(stream, database.rows(stream.statement)) for stream in streams])
    assert {profile_id: paths(found.get(profile_id, {})) for profile_id in ids} == expected, (query, shape)


def test_matched_entities_nest_under_the_rows_their_condition_kept(database):
    shape = Shape((None, 0), ("external_id", "join_on"))
    ids = database.store([ProfileData(traits={"spend": 2})])
    rows = LinkedRows({0: [dict(ID="0-0", PARENT=EMAILS[0], NUM=1, TXT="a", FLAG=True, DAY=date(2026, 11, 1)),
                           dict(ID="0-1", PARENT=EMAILS[0], NUM=5, TXT="b", FLAG=True, DAY=None)],
                       1: [dict(ID="1-0", PARENT="0-0", NUM=3, TXT="x", FLAG=None, DAY=None),
                           dict(ID="1-1", PARENT="0-0", NUM=0, TXT="y", FLAG=None, DAY=None),
                           dict(ID="1-2", PARENT="0-1", NUM=9, TXT="z", FLAG=None, DAY=None)]},
                      {}, {ids[0]: EMAILS[0]})
    write(database, rows, ids)
    query = ("entity('r0').where(property('NUM') < trait('spend') AND "
             "entity('r1').where(property('NUM') > 1).count() >= 1).count() >= 1")
    streams = matched_entity_rows(parse(query), tables=_tables(database, resolved(parse_shape(shape))),
                                  scope=Scope(SPACE), now=NOW, columns={"r0": ["DAY"], "r1": ["TXT"]})

    found = nest([(stream, database.rows(stream.statement)) for stream in streams])

    assert entity_details(found[ids[0]]) == {"r0": [
        {"id": "0-0", "idProperty": "ID", "relationshipSlug": "r0", "properties": {"ID": "0-0", "NUM": 1.0,
                                                                                     "DAY": "2026-11-01"},
         "entities": {"r1": [{"id": "1-0", "idProperty": "ID", "relationshipSlug": "r1",
                              "properties": {"ID": "1-0", "NUM": 3.0, "TXT": "x"}}]}}]}


def _tables(database, graph):
    base = TABLES if database.analytic is None else analytic.tables()
    return base._replace(graph=graph)


def test_an_entity_condition_in_a_users_audience_is_refused():
    with pytest.raises(CQLError, match="only valid in LINKED audiences"):
        validate("entity('r0').count() >= 1", kind="audience", audience_type="USERS")


def test_a_string_against_a_number_column_names_both_types():
    graph = resolved(parse_shape(Shape((None,), ("external_id",))))
    with pytest.raises(CQLError, match=r"column 'NUM' is a number, and 'ten' is a string"):
        check_linked(parse("entity('r0').where(property('NUM') = 'ten').count() >= 1"), graph)


def test_an_unknown_relationship_names_the_ones_there():
    graph = resolved(parse_shape(Shape((None, 0), ("trait", "join_on"))))
    with pytest.raises(CQLError, match=r"no relationship 'r1' directly under the profile; there: 'r0'"):
        check_linked(parse("entity('r1').count() >= 1"), graph)


def test_an_unknown_column_names_the_columns():
    graph = resolved(parse_shape(Shape((None,), ("external_id",))))
    with pytest.raises(CQLError, match=r"has no column 'TOTAL'; its columns: DAY, FLAG, ID, NUM, PARENT, TXT"):
        check_linked(parse("entity('r0').where(property('TOTAL') > 1).count() >= 1"), graph)


def test_a_scope_restricted_to_some_profiles_keeps_their_entities(database):
    shape = Shape((None, 0), ("external_id", "join_on"))
    profiles = [ProfileData(), ProfileData()]
    ids = database.store(profiles)
    rows = LinkedRows({0: [dict(ID="0-0", PARENT=EMAILS[0], NUM=1, TXT="a", FLAG=True, DAY=None)],
                       1: [dict(ID="1-0", PARENT="0-0", NUM=3, TXT="b", FLAG=None, DAY=None)]}, {},
                      {ids[0]: EMAILS[0], ids[1]: EMAILS[1]})
    write(database, rows, ids)
    query = "entity('r0').where(entity('r1').where(property('NUM') > property(parent: 'NUM')).count() >= 1).count() >= 1"
    statement = audience_members(parse(query), tables=_tables(database, resolved(parse_shape(shape))),
                                 scope=Scope(SPACE, profile_ids=[ids[0], ids[1]]), now=NOW)
    assert {row[0] for row in database.rows(statement)} == {ids[0]}


def test_an_entity_reached_twice_through_a_junction_counts_once(database):
    shape = Shape((None, 0), ("external_id", "junction"))
    ids = database.store([ProfileData()])
    rows = LinkedRows({0: [dict(ID="0-0", PARENT=EMAILS[0], NUM=1, TXT="a", FLAG=True, DAY=None)],
                       1: [dict(ID="1-0", PARENT=None, NUM=3, TXT="b", FLAG=None, DAY=None)]},
                      {1: [dict(ID="j-0", L="0-0", R="1-0"), dict(ID="j-1", L="0-0", R="1-0")]}, {ids[0]: EMAILS[0]})
    write(database, rows, ids)
    query = "entity('r0').where(entity('r1').count() = 1).count() >= 1"
    assert database.members(query, NOW, tables=_tables(database, resolved(parse_shape(shape)))) == {ids[0]}
