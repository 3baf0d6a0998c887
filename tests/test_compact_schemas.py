"""Lean published schemas: what `compact` leaves out and what it must keep."""

from tools.compact import compact


def test_a_definition_used_once_is_written_where_it_is_used_and_a_shared_one_stays():
    schema = {
        "type": "object",
        "properties": {
            "config": {"$ref": "#/$defs/Config", "description": "How to run."},
            "from": {"$ref": "#/$defs/Page"},
            "to": {"$ref": "#/$defs/Page"},
        },
        "$defs": {
            "Config": {"type": "object", "properties": {"every": {"type": "integer", "minimum": 1}}},
            "Page": {"type": "object", "properties": {"cursor": {"type": "string"}}},
        },
    }
    compact(schema)
    assert schema["properties"]["config"] == {
        "type": "object", "properties": {"every": {"type": "integer", "minimum": 1}}, "description": "How to run."}
    assert schema["properties"]["from"] == {"$ref": "#/$defs/Page"}
    assert set(schema["$defs"]) == {"Page"}


def test_titles_null_branches_and_string_lengths_go_but_numeric_bounds_and_defaults_stay():
    schema = {"type": "object", "title": "Args", "properties": {
        "name": {"anyOf": [{"type": "string", "minLength": 1, "maxLength": 255}, {"type": "null"}],
                 "default": None, "title": "Name", "description": "The key is its snake_case."},
        "count": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 200, "title": "Count"},
    }}
    compact(schema)
    assert schema == {"type": "object", "properties": {
        "name": {"type": "string", "description": "The key is its snake_case."},
        "count": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 200},
    }}
