"""The destination instance tools (additions to the 39) and the CLI's destinations commands."""

import subprocess
import sys

import pytest

from server.cli import main
from store.catalog import destination_instances
from store.db.models import Destination
from tests.servers import server_env

pytestmark = pytest.mark.anyio
PENDULA = {"flowTriggerUrl": "https://flows.example/trigger", "apiToken": "Bearer t0k3n"}


async def create(call, space_id, metadata_id="pendula", settings=PENDULA, **extra):
    created = await call.ok("create_destination", spaceId=space_id, metadataId=metadata_id, name="Win-back",
                            settings=settings, **extra)
    return created["destination"]


async def test_a_destination_is_created_read_listed_updated_and_removed(call, store, space_id):
    destination = await create(call, space_id)
    assert destination["id"].startswith("dst_") and destination["enabled"] is True
    assert destination["metadata"] == {"id": "pendula", "slug": "pendula", "name": "Pendula"}
    assert destination["settings"] == {"flowTriggerUrl": "https://flows.example/trigger", "apiToken": "********"}
    assert destination["sourceId"] == space_id
    got = await call.ok("get_destination", spaceId=space_id, destinationId=destination["id"])
    assert got["destination"] == destination
    listed = await call.ok("list_destinations", spaceId=space_id)
    assert [item["id"] for item in listed["destinations"]] == [destination["id"]]
    assert listed["pagination"]["totalEntries"] == 1

    updated = await call.ok("update_destination", spaceId=space_id, destinationId=destination["id"], name="Renewals",
                            enabled=False, settings={"flowTriggerUrl": "https://flows.example/v2", "apiToken": "********"})
    assert updated["destination"]["name"] == "Renewals" and updated["destination"]["enabled"] is False
    with store.read() as session:
        stored = session.get(Destination, destination["id"]).settings
    assert stored == {"flowTriggerUrl": "https://flows.example/v2", "apiToken": "Bearer t0k3n"}, \
        "the masked secret sent back leaves the stored token unchanged"
    await call.ok("update_destination", spaceId=space_id, destinationId=destination["id"],
                  settings={"apiToken": "Bearer rotated"})
    with store.read() as session:
        assert session.get(Destination, destination["id"]).settings["apiToken"] == "Bearer rotated"

    assert await call.ok("remove_destination", spaceId=space_id, destinationId=destination["id"]) == {"status": "SUCCESS"}
    error = await call.error("get_destination", spaceId=space_id, destinationId=destination["id"])
    assert error["type"] == "not-found" and "segment_audiences_list_destinations" in error["message"]


async def test_settings_are_checked_against_the_catalog_entry(call, space_id):
    error = await call.error("create_destination", spaceId=space_id, metadataId="pendula", name="P",
                             settings={**PENDULA, "flowUrl": "x"})
    assert error["field"] == "settings.flowUrl" and "flowTriggerUrl, apiToken" in error["message"]
    error = await call.error("create_destination", spaceId=space_id, metadataId="pendula", name="P",
                             settings={"flowTriggerUrl": "x", "apiToken": 12345})
    assert error["field"] == "settings.apiToken" and "string" in error["message"]
    error = await call.error("create_destination", spaceId=space_id, metadataId="pendula", name="P",
                             settings={"flowTriggerUrl": "x"})
    assert error["field"] == "settings.apiToken" and "Missing" in error["message"]
    error = await call.error("create_destination", spaceId=space_id, metadataId="braze", name="B", settings={})
    assert error["field"] == "metadataId" and "pendula" in error["message"]
    destination = await create(call, space_id)
    error = await call.error("update_destination", spaceId=space_id, destinationId=destination["id"],
                             settings={"region": "DC-01"})
    assert error["field"] == "settings.region"


async def test_a_connected_destination_cannot_be_removed_until_its_connections_are(call, space_id):
    destination = await create(call, space_id)
    audience = (await call.ok("create_audience", spaceId=space_id, audienceType="USERS", name="Renewed",
                              definition={"query": "event('Renewed').count() >= 1"}))["audience"]
    connection = (await call.ok("add_destination_to_audience", spaceId=space_id, audienceId=audience["id"],
                                destination={"id": destination["id"], "type": "destination"}))["connection"]
    error = await call.error("remove_destination", spaceId=space_id, destinationId=destination["id"])
    assert error["type"] == "conflict" and connection["id"] in error["message"] and audience["id"] in error["message"]
    await call.ok("remove_destination_from_audience", spaceId=space_id, audienceId=audience["id"],
                  destinationId=connection["id"])
    await call.ok("remove_destination", spaceId=space_id, destinationId=destination["id"])


async def test_connections_of_removed_audiences_do_not_hold_a_destination(call, space_id):
    destination = await create(call, space_id)
    audience = (await call.ok("create_audience", spaceId=space_id, audienceType="USERS", name="Once",
                              definition={"query": "event('Renewed').count() >= 1"}))["audience"]
    await call.ok("add_destination_to_audience", spaceId=space_id, audienceId=audience["id"],
                  destination={"id": destination["id"], "type": "destination"})
    await call.ok("remove_audience_from_space", spaceId=space_id, id=audience["id"])
    assert await call.ok("remove_destination", spaceId=space_id, destinationId=destination["id"]) == {"status": "SUCCESS"}


def test_cli_types_each_setting_by_its_catalog_field(store, space_id, capsys):
    assert main(["--db", store.url, "destinations", "add", "--space", space_id, "--type", "pendula", "--name", "P",
                 "--setting", "flowTriggerUrl=https://flows.example/a=b", "--setting", "apiToken=12345"]) == 0
    destination_id = capsys.readouterr().out.strip()
    stored = destination_instances.get_destination(store, space_id, destination_id).settings
    assert stored == {"flowTriggerUrl": "https://flows.example/a=b", "apiToken": "12345"}

    assert main(["--db", store.url, "destinations", "update", destination_id, "--space", space_id,
                 "--setting", 'apiToken="Bearer  two spaces"', "--enabled", "off"]) == 0
    updated = destination_instances.get_destination(store, space_id, destination_id)
    assert updated.settings["apiToken"] == "Bearer  two spaces" and updated.enabled is False

    assert main(["--db", store.url, "destinations", "update", destination_id, "--space", space_id,
                 "--settings-json", '{"apiToken": "007", "flowTriggerUrl": "https://flows.example/c"}']) == 0
    assert destination_instances.get_destination(store, space_id, destination_id).settings == {
        "flowTriggerUrl": "https://flows.example/c", "apiToken": "007"}

    assert main(["--db", store.url, "destinations", "list", "--space", space_id]) == 0
    assert f"{destination_id}\tpendula\tP\tdisabled" in capsys.readouterr().out
    assert main(["--db", store.url, "destinations", "remove", destination_id, "--space", space_id]) == 0


def test_cli_refuses_a_value_of_the_wrong_type_with_the_field_named(tmp_path):
    env = server_env(tmp_path)
    space = subprocess.run([sys.executable, "-m", "server", "spaces", "create", "S"], env=env, capture_output=True,
                           text=True, check=True).stdout.split()[1]
    result = subprocess.run([sys.executable, "-m", "server", "destinations", "add", "--space", space,
                             "--type", "moengage", "--name", "M", "--setting", "apiId=A", "--setting", "apiKey=K",
                             "--setting", "region=DC-09"], env=env, capture_output=True, text=True)
    assert result.returncode == 2 and "region must be one of DC-01" in result.stderr
    assert "Traceback" not in result.stderr
