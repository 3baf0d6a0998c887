"""LINKED audiences' matched entities: previews that show the rows that qualified each profile, entity
targets whose rows are the members, and activations that carry the entity context and send Entity
Added / Removed / Values Changed per row, on the DuckDB warehouse and the operational database's."""

import sqlite3

import httpx
import orjson
import pytest
import respx

from backend.delivery import adapters
from backend.delivery.adapters import Target
from server.cli import main
from store.catalog import destination_instances
from store.compute import previews
from store.warehouse.location import warehouse_of
from tests.delivery_helpers import bodies, deliver, webhook
from tests.ingest_helpers import rows
from tests.test_linked_audiences import BIG_SPENDERS, GRAPH, call, linked  # noqa: F401 (fixtures)

pytestmark = pytest.mark.anyio
HOOK = "https://hooks.example.com/linked"


async def big_spenders(call, space_id) -> dict:
    """The space's Data Graph set, and a LINKED audience two levels deep on it."""
    await call.ok("update_data_graph", spaceId=space_id, config=GRAPH)
    return (await call.ok("create_audience", spaceId=space_id, audienceType="LINKED", name="Big spenders",
                          definition={"query": BIG_SPENDERS}))["audience"]


async def preview(call, store, space_id, **definition):
    started = await call.ok("create_audience_preview", spaceId=space_id, audienceType="LINKED", definition=definition)
    previews.run_pending(store)
    return (await call.ok("get_audience_preview", spaceId=space_id, id=started["audiencePreview"]["id"]))["audiencePreview"]


async def test_a_preview_shows_the_entity_rows_that_qualified_each_profile(call, linked):
    store, space_id, _, _ = linked
    await call.ok("update_data_graph", spaceId=space_id, config=GRAPH)

    shown = await preview(call, store, space_id, query=BIG_SPENDERS)

    assert shown["status"] == "COMPLETED", shown
    by_profile = {result["externalIds"][0]["id"]: result["entities"] for result in shown["results"]}
    ada = next(entities for user, entities in by_profile.items() if user == "ada")
    assert ada == {"accounts": [{
        "id": "a1", "idProperty": "ACCOUNT_ID", "relationshipSlug": "accounts", "properties": {"ACCOUNT_ID": "a1"},
        "entities": {"orders": [{
            "id": "o1", "idProperty": "ORDER_ID", "relationshipSlug": "orders",
            "properties": {"ORDER_ID": "o1", "TOTAL": 120.5},
            "entities": {"order-products": [{"id": "s1", "idProperty": "SKU", "relationshipSlug": "order-products",
                                             "properties": {"SKU": "s1"}}]}}]}}]}


async def test_an_entity_target_makes_its_rows_the_members(call, linked):
    store, space_id, _, _ = linked
    await call.ok("update_data_graph", spaceId=space_id, config=GRAPH)
    definition = {"query": BIG_SPENDERS, "targetEntity": "accounts"}

    shown = await preview(call, store, space_id, **definition)
    created = await call.ok("create_audience", spaceId=space_id, audienceType="LINKED", name="Big accounts",
                            definition=definition)
    run = await call.ok("force_execute_audience_run", spaceId=space_id, audienceId=created["audience"]["id"])
    read = await call.ok("get_audience", spaceId=space_id, id=created["audience"]["id"])

    assert shown["size"] == {"type": "ENTITIES", "count": 2, "uniqueCount": 2}
    assert [(row["id"], row["idProperty"], row["relationshipSlug"], list(row["entities"]), len(row["profiles"]),
             row["profilesTruncated"]) for row in shown["results"]] == [
        ("a1", "ACCOUNT_ID", "accounts", ["orders"], 1, False), ("a2", "ACCOUNT_ID", "accounts", ["orders"], 1, False)]
    assert (run["run"]["entitySize"], run["run"]["size"]) == (2, 2)
    assert set(run["run"]["stepsMs"]) == {"extract", "diff", "enqueue"}
    assert read["audience"]["size"] == {"type": "ENTITIES", "count": 2, "uniqueCount": 2}


async def test_a_target_that_the_definition_does_not_read_under_the_profile_is_refused(call, linked):
    _, space_id, _, _ = linked
    await call.ok("update_data_graph", spaceId=space_id, config=GRAPH)

    error = await call.error("create_audience", spaceId=space_id, audienceType="LINKED", name="Orders",
                             definition={"query": BIG_SPENDERS, "targetEntity": "orders"})

    assert error["type"] == "input-validation" and error["field"] == "definition.targetEntity"
    assert "'profile', 'accounts'" in error["message"]


async def test_entity_personalization_names_the_valid_relationships_and_columns(call, linked):
    store, space_id, _, _ = linked
    audience = await big_spenders(call, space_id)
    connection = await _webhook_connection(call, store, space_id, audience["id"])

    slug = await call.error("add_activation_to_audience", spaceId=space_id, audienceId=audience["id"],
                            connectionId=connection, activationType="Audience Entered", activationName="In",
                            performResync=False, destinationMapping=webhook(HOOK),
                            personalization={"entities": [{"relationshipSlug": "order", "properties": ["TOTAL"]}]})
    column = await call.error("add_activation_to_audience", spaceId=space_id, audienceId=audience["id"],
                              connectionId=connection, activationType="Audience Entered", activationName="In",
                              performResync=False, destinationMapping=webhook(HOOK),
                              personalization={"entities": [{"relationshipSlug": "orders", "properties": ["SUM"]}]})

    assert slug["field"] == "personalization.entities[0].relationshipSlug"
    assert "there: accounts, order-products, orders" in slug["message"]
    assert column["field"] == "personalization.entities[0].properties"
    assert "its columns: ACCOUNT_ID, ORDER_ID, STATUS, TOTAL" in column["message"]


async def _webhook_connection(call, store, space_id, audience_id) -> str:
    destination = destination_instances.add_destination(store, space_id, "webhooks-actions", "Hook", {})
    connected = await call.ok("add_destination_to_audience", spaceId=space_id, audienceId=audience_id,
                              destination={"id": destination.id, "type": "destination"})
    return connected["connection"]["id"]


async def test_activations_carry_the_entity_context_and_send_entity_changes_per_row(call, linked, tmp_path):
    store, space_id, url, option = linked
    audience = await big_spenders(call, space_id)
    connection = await _webhook_connection(call, store, space_id, audience["id"])
    personalization = {"entities": [{"relationshipSlug": "orders", "properties": ["total", "STATUS"]}]}
    for kind in ("Audience Entered", "Entity Added", "Entity Removed", "Entity Values Changed"):
        await call.ok("add_activation_to_audience", spaceId=space_id, audienceId=audience["id"], connectionId=connection,
                      activationType=kind, activationName=kind, performResync=False, destinationMapping=webhook(HOOK),
                      personalization=personalization)

    async def run_and_send() -> list:
        await call.ok("force_execute_audience_run", spaceId=space_id, audienceId=audience["id"])
        with respx.mock:
            hook = respx.post(HOOK).mock(return_value=httpx.Response(200))
            await deliver(store)
            return sorted(((body["event"], body["userId"], body["properties"]) for body in bodies(hook)),
                          key=lambda sent: (sent[0], sent[1]))

    first = await run_and_send()
    (tmp_path / "orders.csv").write_text("ORDER_ID,ACCOUNT_ID,TOTAL,STATUS\no1,a1,130,shipped\no2,a1,15,open\n"
                                         "o3,a2,5,shipped\n")
    assert main(["--db", url, "warehouse", "load", "--analytics", option, "--table", "orders",
                 str(tmp_path / "orders.csv")]) == 0
    second = await run_and_send()

    ada_entered = first[0]
    assert [(event, user) for event, user, _ in first] == [
        ("Audience Entered", "ada"), ("Audience Entered", "bob"), ("Entity Added", "ada"), ("Entity Added", "bob")]
    assert ada_entered[2]["data_graph_entity_context"] == {"accounts": [{
        "ACCOUNT_ID": "a1", "__entity": "Account",
        "orders": [{"ORDER_ID": "o1", "TOTAL": 120.5, "STATUS": "shipped", "__entity": "Order",
                    "order-products": [{"SKU": "s1", "__entity": "Product"}]}]}]}
    assert first[2][2]["data_graph_entity_context"]["__entity"] == "Account"
    assert first[2][2]["data_graph_entity_context"]["accounts"]["ACCOUNT_ID"] == "a1"
    assert [(event, user) for event, user, _ in second] == [("Entity Removed", "bob"), ("Entity Values Changed", "ada")]
    changed = second[1][2]["data_graph_entity_context"]["accounts"]["orders"][0]
    assert (changed["ORDER_ID"], changed["TOTAL"]) == ("o1", 130)


async def test_a_resync_is_sent_by_the_next_run_with_the_rows_it_reads(call, linked):
    store, space_id, _, _ = linked
    audience = await big_spenders(call, space_id)
    connection = await _webhook_connection(call, store, space_id, audience["id"])
    await call.ok("force_execute_audience_run", spaceId=space_id, audienceId=audience["id"])

    pending = []
    for kind in ("Audience Entered", "Entity Added"):
        added = await call.ok("add_activation_to_audience", spaceId=space_id, audienceId=audience["id"],
                              connectionId=connection, activationType=kind, activationName=kind, performResync=True,
                              destinationMapping=webhook(HOOK), personalization={})
        pending.append(added["activation"]["performResync"])
    sent = []
    for _ in range(2):  # the first run sends the resync; the second has nothing new to send
        await call.ok("force_execute_audience_run", spaceId=space_id, audienceId=audience["id"])
        with respx.mock:
            hook = respx.post(HOOK).mock(return_value=httpx.Response(200))
            await deliver(store)
        sent.append(sorted((body["event"], body["userId"], body["properties"]["data_graph_entity_context"])
                           for body in bodies(hook)))

    assert pending == [True, True]
    assert [(event, user) for event, user, _ in sent[0]] == [
        ("Audience Entered", "ada"), ("Audience Entered", "bob"), ("Entity Added", "ada"), ("Entity Added", "bob")]
    ada_orders = [{"ORDER_ID": "o1", "__entity": "Order", "order-products": [{"SKU": "s1", "__entity": "Product"}]}]
    assert sent[0][0][2] == {"accounts": [{"ACCOUNT_ID": "a1", "orders": ada_orders, "__entity": "Account"}]}
    assert sent[0][2][2] == {"__entity": "Account", "accounts": {"ACCOUNT_ID": "a1", "orders": ada_orders}}
    assert sent[1] == []


async def test_a_warehouse_destination_writes_each_event_as_a_row_of_the_activation_table(call, linked, tmp_path):
    store, space_id, _, _ = linked
    audience = await big_spenders(call, space_id)
    target = f"sqlite:///{tmp_path / 'sink.db'}"
    destination = destination_instances.add_destination(store, space_id, "warehouse", "Sink", {"url": target})
    connection = (await call.ok("add_destination_to_audience", spaceId=space_id, audienceId=audience["id"],
                                destination={"id": destination.id, "type": "destination"}))["connection"]["id"]
    activation = (await call.ok("add_activation_to_audience", spaceId=space_id, audienceId=audience["id"],
                                connectionId=connection, activationType="Entity Added", activationName="big_accounts",
                                displayName="Big accounts", performResync=False, personalization={
                                    "entities": [{"relationshipSlug": "accounts", "properties": ["TIER"]}]}))["activation"]
    run = await call.ok("force_execute_audience_run", spaceId=space_id, audienceId=audience["id"])

    await deliver(store)
    await deliver(store)

    with sqlite3.connect(tmp_path / "sink.db") as sink:
        rows = sink.execute("select event_name, user_id, audience_key, entity_context, personas_computation_key, "
                            "personas_computation_id, personas_computation_run_id, personas_activation_id, "
                            "message_id, received_at from big_accounts order by user_id").fetchall()
    assert [row[:3] for row in rows] == [("Entity Added", "ada", "big_spenders"), ("Entity Added", "bob", "big_spenders")]
    assert orjson.loads(rows[0][3]) == {"__entity": "Account", "accounts": {
        "ACCOUNT_ID": "a1", "TIER": "gold",
        "orders": [{"ORDER_ID": "o1", "__entity": "Order", "order-products": [{"SKU": "s1", "__entity": "Product"}]}]}}
    assert rows[0][4:8] == ("big_spenders", audience["id"], run["run"]["id"], activation["id"])
    assert all(row[8] and row[9] for row in rows)


async def test_a_warehouse_destination_without_a_url_writes_beside_the_entity_tables(call, linked):
    store, space_id, _, _ = linked
    audience = await big_spenders(call, space_id)
    destination = destination_instances.add_destination(store, space_id, "warehouse", "Own warehouse", {})
    connection = (await call.ok("add_destination_to_audience", spaceId=space_id, audienceId=audience["id"],
                                destination={"id": destination.id, "type": "destination"}))["connection"]["id"]
    await call.ok("add_activation_to_audience", spaceId=space_id, audienceId=audience["id"], connectionId=connection,
                  activationType="Audience Entered", activationName="big_spenders_entered", performResync=False,
                  personalization={"entities": [{"relationshipSlug": "accounts", "properties": ["TIER"]}]})
    await call.ok("force_execute_audience_run", spaceId=space_id, audienceId=audience["id"])

    await deliver(store)
    await deliver(store)

    written = warehouse_of(store).describe("big_spenders_entered")
    assert written is not None and written.rows == 2
    assert {"message_id", "event_name", "user_id", "entity_context"} <= {column.name for column in written.columns}
    assert rows(store, "select state, count(*) from outbox group by state") == [("delivered", 2)]


def test_pendula_receives_the_entity_context_flattened_as_segment_flattens_it():
    event = {"type": "track", "event": "Entity Added", "properties": {"audience_key": "carts", "first_name": "Ada",
             "data_graph_entity_context": {"__entity": "cart", "carts": {
                 "CART_ID": "c_981", "STATUS": "abandoned",
                 "cart-products": [{"SKU": "sku_1", "TITLE": "Trail shoe", "__entity": "product"}]}}}}
    target = Target("pendula", "dst_1", {"flowTriggerUrl": "https://pendula.example/flow", "apiToken": "t"})

    [sent] = adapters.calls(target, [event])

    assert orjson.loads(sent.body)["properties"] == {
        "audience_key": "carts", "first_name": "Ada", "__entity": "cart", "carts__CART_ID": "c_981",
        "carts__STATUS": "abandoned",
        "carts__cart-products": [{"SKU": "sku_1", "TITLE": "Trail shoe", "__entity": "product"}]}


async def test_an_activation_added_later_sends_only_the_rows_that_change_after_it(call, linked, tmp_path):
    store, space_id, url, option = linked
    audience = await big_spenders(call, space_id)
    connection = await _webhook_connection(call, store, space_id, audience["id"])
    await call.ok("force_execute_audience_run", spaceId=space_id, audienceId=audience["id"])  # keeps no rows
    for kind in ("Entity Added", "Entity Removed"):
        await call.ok("add_activation_to_audience", spaceId=space_id, audienceId=audience["id"], connectionId=connection,
                      activationType=kind, activationName=kind, performResync=False, destinationMapping=webhook(HOOK),
                      personalization={})

    sent = []
    for orders in (None, "ORDER_ID,ACCOUNT_ID,TOTAL,STATUS\no1,a1,120.5,shipped\no3,a2,5,shipped\n"):
        if orders:
            (tmp_path / "orders.csv").write_text(orders)
            assert main(["--db", url, "warehouse", "load", "--analytics", option, "--table", "orders",
                         str(tmp_path / "orders.csv")]) == 0
        await call.ok("force_execute_audience_run", spaceId=space_id, audienceId=audience["id"])
        with respx.mock:
            hook = respx.post(HOOK).mock(return_value=httpx.Response(200))
            await deliver(store)
        sent.append([(body["event"], body["userId"]) for body in bodies(hook)])

    assert sent == [[], [("Entity Removed", "bob")]]  # the first run with the activations is their baseline


async def test_an_event_over_32_kb_is_not_sent_and_is_dead_lettered_saying_so(call, linked, tmp_path):
    store, space_id, url, option = linked
    (tmp_path / "accounts.csv").write_text(f"ACCOUNT_ID,OWNER_EMAIL,TIER\na1,ada@example.com,{'g' * 40_000}\n"
                                           "a2,bob@example.com,silver\n")
    assert main(["--db", url, "warehouse", "load", "--analytics", option, "--table", "accounts",
                 str(tmp_path / "accounts.csv")]) == 0
    audience = await big_spenders(call, space_id)
    connection = await _webhook_connection(call, store, space_id, audience["id"])
    await call.ok("add_activation_to_audience", spaceId=space_id, audienceId=audience["id"], connectionId=connection,
                  activationType="Entity Added", activationName="Added", performResync=False,
                  destinationMapping=webhook(HOOK),
                  personalization={"entities": [{"relationshipSlug": "accounts", "properties": ["TIER"]}]})
    await call.ok("force_execute_audience_run", spaceId=space_id, audienceId=audience["id"])

    with respx.mock:
        hook = respx.post(HOOK).mock(return_value=httpx.Response(200))
        await deliver(store)
    outcomes = dict(rows(store, "select profile_id, state from outbox"))
    [error] = [error for (error,) in rows(store, "select last_error from outbox where state = 'dead'")]

    assert [body["userId"] for body in bodies(hook)] == ["bob"]
    assert sorted(outcomes.values()) == ["dead", "delivered"]
    assert "over the 32 KB" in error and "not sent" in error
