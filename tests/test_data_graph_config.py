"""The Data Graph config language on its own (`backend.datagraph.config`): Segment's HCL and its JSON
form read alike, and every mistake named by its block and attribute."""

import pytest

from backend.datagraph.config import ColumnJoin, DataGraphError, JunctionJoin, ProfileJoin, from_document, parse_hcl
from server.resources import REFERENCES

EXAMPLE = (REFERENCES / "data-graph.md").read_text().split("```hcl\n")[1].split("```")[0]


def entity(slug, table="t", key="ID"):
    return {slug: {"name": slug.title(), "table_ref": table, "primary_key": key}}


def graph(relationships, entities=None):
    return {"data_graph": {"entity": entities or {**entity("a"), **entity("b"), **entity("c")},
                           "profile": {"relationship": relationships}}}


def top(slug="ra", **body):
    return {slug: {"name": "R", "related_entity": "a", "external_id": {"type": "email", "join_key": "E"}, **body}}


def test_the_reference_example_reads_as_a_graph_of_joins():
    parsed = parse_hcl(EXAMPLE)
    accounts = parsed.relationship("accounts")
    assert isinstance(accounts.join, ProfileJoin) and (accounts.join.by, accounts.join.key) == ("external_id", "email")
    assert parsed.relationship("orders").join == ColumnJoin("ACCOUNT_ID", "ACCOUNT_ID")
    assert parsed.relationship("order-products").join == JunctionJoin("order_lines", "LINE_ID", "ORDER_ID", "ORDER_ID",
                                                                      "SKU", "SKU")
    assert parsed.parents("order-products") == ("accounts", "orders")
    assert parsed.profile_type is None and set(parsed.entities) == {"account", "order", "product"}


def test_the_json_form_reads_as_the_hcl_does():
    document = graph({**top(relationship={"rb": {"name": "B", "related_entity": "b", "join_on": "b.X = a.ID"}})})
    parsed = from_document(document)
    assert parsed.relationship("rb").join == ColumnJoin("ID", "X")  # either side may come first
    assert parsed.parents("rb") == ("ra",)


def nested(depth):
    body = {}
    for level in reversed(range(depth)):
        body = {f"r{level}": {"name": "R", "related_entity": "a", "join_on": "a.ID = a.P",
                              **({"relationship": body} if body else {})}}
    return body


@pytest.mark.parametrize(("document", "path", "words"), [
    (graph(top(related_entity="nope")), "relationship.ra.related_entity", "not a declared entity"),
    (graph(top(trait={"name": "n", "join_key": "K"})), "relationship.ra", "exactly one of external_id"),
    (graph(top(relationship={"rb": {"name": "B", "related_entity": "b"}})), "relationship.rb", "exactly one of join_on"),
    (graph(top(relationship={"rb": {"name": "B", "related_entity": "b", "join_on": "c.ID = b.P"}})),
     "relationship.rb.join_on", "must join 'a'"),
    (graph(top(colour="red")), "relationship.ra.colour", "has no attribute or block 'colour'"),
    (graph(top("Bad Slug")), "relationship.Bad Slug", "lower-case"),
    (graph({**top(), **top("rb", relationship={"ra": {"name": "B", "related_entity": "b", "join_on": "a.ID = b.P"}})}),
     "relationship.ra", "declared twice"),
    (graph({"r": {"name": "R", "related_entity": "a", "external_id": {"type": "email", "join_key": "E"},
                  "relationship": nested(5)}}), "relationship.r4", "at most 6 levels"),
    ({"data_graph": {"entity": {"a": {"name": "A", "table_ref": "t"}}}}, "entity.a.primary_key", "needs primary_key"),
    ({"graph": {}}, "data_graph", "one data_graph"),
])
def test_a_mistake_names_its_block_and_attribute(document, path, words):
    with pytest.raises(DataGraphError, match=words) as raised:
        from_document(document)
    assert raised.value.path == path


def test_five_levels_below_the_profile_are_allowed():
    document = graph({"r": {"name": "R", "related_entity": "a", "external_id": {"type": "email", "join_key": "E"},
                            "relationship": nested(4)}})
    assert from_document(document).parents("r3") == ("r", "r0", "r1", "r2")


def test_hcl_that_does_not_parse_names_the_line_and_column():
    with pytest.raises(DataGraphError, match="line 3, column") as raised:
        parse_hcl('data_graph {\n  entity "a" {\n    name = \n  }\n}')
    assert raised.value.path == "config"
