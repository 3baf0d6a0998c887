"""No loops: a forwarder cannot point a space back at itself, and what a space's own computations
emitted is not stored in it again should it arrive anyway."""

import pytest

from store.catalog import destination_instances, spaces
from store.db.errors import InputValidation
from tests.ingest_helpers import rows, send


def entered(space_id, user="ann"):
    return {"type": "track", "userId": user, "event": "Audience Entered",
            "properties": {"audience_key": "buyers", "buyers": True},
            "context": {"personas": {"computation_class": "audience", "computation_id": "aud_1",
                                     "computation_key": "buyers", "namespace": f"spa:{space_id}",
                                     "space_id": space_id}}}


def test_a_forwarder_with_its_own_spaces_write_key_is_refused_when_created_or_updated(store):
    own = spaces.create_space(store, "Own")
    other = spaces.create_space(store, "Other")
    with pytest.raises(InputValidation) as refused:
        destination_instances.add_destination(store, own.space.id, "segment-tracking-api", "Back into itself",
                                              {"endpoint": "http://127.0.0.1:8088", "writeKey": own.write_key})
    assert refused.value.field == "settings.writeKey" and "back into it" in refused.value.message

    forwarder = destination_instances.add_destination(store, own.space.id, "segment-tracking-api", "To the other",
                                                      {"endpoint": "http://127.0.0.1:8088", "writeKey": other.write_key})
    with pytest.raises(InputValidation):
        destination_instances.update_destination(store, own.space.id, forwarder.id, settings={"writeKey": own.write_key})
    assert destination_instances.get_destination(store, own.space.id, forwarder.id).settings["writeKey"] == other.write_key


def test_a_message_a_spaces_own_computation_emitted_is_not_stored_in_it_and_is_counted(store, space_id):
    other = spaces.create_space(store, "Other").space.id

    looped = send(store, space_id, entered(space_id), {"type": "track", "userId": "ann", "event": "Signed Up"})
    forwarded = send(store, space_id, entered(other, user="bob"))

    assert (looped.stored, looped.looped) == (1, 1)
    assert (forwarded.stored, forwarded.looped) == (1, 0)
    assert rows(store, "select event from event order by id") == [("Signed Up",), ("Audience Entered",)]
