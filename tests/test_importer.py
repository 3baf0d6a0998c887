"""The file importer: the Tracking API's message shapes from JSON lines, through the same path."""

import json

import pytest

from server.importer import import_file
from store.db.errors import NotFound
from tests.ingest_helpers import profile_of, rows


def test_lines_are_stored_and_bad_ones_reported_by_number(store, space_id, tmp_path):
    source = tmp_path / "events.jsonl"
    source.write_text("\n".join([
        json.dumps({"type": "identify", "userId": "u1", "traits": {"plan": "pro"}}),
        "{broken",
        "",
        json.dumps({"type": "track", "event": "E"}),
        json.dumps({"type": "page", "anonymousId": "a1", "name": "Home", "messageId": "p-1"}),
        json.dumps({"type": "page", "anonymousId": "a1", "name": "Home", "messageId": "p-1"}),
    ]) + "\n")
    report = import_file(store, space_id, str(source), batch_size=2)
    assert (report.stored, report.duplicates) == (2, 1)
    assert [line for line, _ in report.rejected] == [2, 4]
    assert "userId or anonymousId is required" in report.rejected[1][1]
    assert profile_of(store, "user_id", "u1") is not None
    assert rows(store, "select distinct source_id from event") == [("file-import",)]


def test_an_unknown_space_is_refused_before_reading(store, tmp_path):
    with pytest.raises(NotFound):
        import_file(store, "spa_missing", str(tmp_path / "absent.jsonl"))
