"""LINKED audiences on the real server: profiles sent by Segment's Python library, entity tables loaded
by the CLI while `serve` runs (into the DuckDB warehouse the server reads, or the operational
database's), a Data Graph, an audience previewed with its matched entities, a graph change that
would break it refused, its activations set over MCP (a webhook to a real local receiver, a warehouse
destination writing a SQLite file), and forced runs that follow a reload: the entity context, Entity
Added, Removed and Values Changed arrive where they should."""

import json
import sqlite3
import subprocess
import sys

import pytest
from mcp import Client
from segment.analytics.client import Client as Analytics

from tests.delivery_helpers import webhook
from tests.receiver import Receiver
from tests.servers import processed, server_with_space
from tests.test_compute_end_to_end import call, eventually
from tests.test_delivery_end_to_end import create_destination
from tests.test_linked_audiences import BIG_SPENDERS, GRAPH, TABLES

pytestmark = pytest.mark.anyio


def load(server, analytics: str, path) -> None:
    subprocess.run([sys.executable, "-m", "server", "warehouse", "load", "--analytics", analytics, "--table", path.stem,
                    str(path)], env=server.env, check=True, capture_output=True, timeout=180)


@pytest.mark.parametrize("engine", ["duckdb", "none"])
async def test_a_linked_audience_follows_tables_loaded_while_the_server_runs(tmp_path, engine):
    analytics = f"duckdb:{tmp_path / 'analytic.duckdb'}" if engine == "duckdb" else "none"
    server = server_with_space(tmp_path, "Shop", "--analytics", analytics)
    receiver = Receiver()
    sink = tmp_path / "sink.db"
    try:
        errors = []
        library = Analytics(server.write_key, host=server.base, on_error=lambda error, batch: errors.append(error))
        for user, email, least in (("ada", "ada@example.com", 100), ("bob", "bob@example.com", 10),
                                   ("cy", "cy@example.com", 0)):
            library.identify(user, {"email": email, "min_total": least})
        library.flush()
        assert not errors
        processed(server)
        for name, content in TABLES.items():
            (tmp_path / name).write_text(content)
            load(server, analytics, tmp_path / name)
        async with Client(f"{server.base}/mcp") as client:
            await call(client, "update_data_graph", spaceId=server.space_id, config=GRAPH)
            paths = await call(client, "list_entity_paths", spaceId=server.space_id)
            assert [p["entitySlug"] for p in paths["entityPaths"]] == ["account", "order", "product"]
            audience = (await call(client, "create_audience", spaceId=server.space_id, audienceType="LINKED",
                                   name="Big spenders", definition={"query": BIG_SPENDERS}))["audience"]

            async def size():
                read = await call(client, "get_audience", spaceId=server.space_id, id=audience["id"])
                return (read["audience"].get("size") or {}).get("count")

            await eventually(lambda: size(), seconds=90)  # its first run: activations below resync its members
            started = (await call(client, "create_audience_preview", spaceId=server.space_id, audienceType="LINKED",
                                  definition={"query": BIG_SPENDERS}))["audiencePreview"]

            async def previewed():
                got = (await call(client, "get_audience_preview", spaceId=server.space_id, id=started["id"]))
                return got["audiencePreview"]["status"] == "COMPLETED" and got["audiencePreview"]

            shown = await eventually(previewed, seconds=90)
            refused = await client.call_tool("segment_audiences_update_data_graph", {
                "spaceId": server.space_id, "config": GRAPH[:GRAPH.index('        relationship "order-products"')]
                + "      }\n    }\n  }\n}\n"})
            hook = await create_destination(client, server, "webhooks-actions")
            warehouse = await create_destination(client, server, "warehouse", url=f"sqlite:///{sink}")
            personalization = {"entities": [{"relationshipSlug": "orders", "properties": ["TOTAL"]}]}
            for destination, kinds in ((hook, ("Audience Entered", "Entity Added", "Entity Removed",
                                               "Entity Values Changed")), (warehouse, ("Entity Added",))):
                connection = (await call(client, "add_destination_to_audience", spaceId=server.space_id,
                                         audienceId=audience["id"],
                                         destination={"id": destination, "type": "destination"}))["connection"]
                for kind in kinds:
                    mapping = {"destinationMapping": webhook(f"{receiver.url}/hook")} if destination == hook else {}
                    await call(client, "add_activation_to_audience", spaceId=server.space_id,
                               audienceId=audience["id"], connectionId=connection["id"], activationType=kind,
                               activationName=kind.lower().replace(" ", "_"), performResync=True,
                               personalization=personalization, **mapping)

            async def forced(size):
                run = (await call(client, "force_execute_audience_run", spaceId=server.space_id,
                                  audienceId=audience["id"]))["run"]
                return run["status"] == "COMPLETED" and run["size"] == size and run

            first = await eventually(lambda: forced(2), seconds=90)
            entered = await eventually(lambda: sent(receiver, "Audience Entered", "Entity Added") == 4 and receiver,
                                       seconds=60)
            (tmp_path / "orders.csv").write_text("ORDER_ID,ACCOUNT_ID,TOTAL,STATUS\no1,a1,130,shipped\n"
                                                 "o2,a1,15,open\no3,a2,5,shipped\n")
            load(server, analytics, tmp_path / "orders.csv")  # bob's order is now under his min_total
            second = await eventually(lambda: forced(1), seconds=90)
            await eventually(lambda: sent(receiver, "Entity Removed", "Entity Values Changed") == 2, seconds=60)
        matched = {r["externalIds"][0]["id"]: r["entities"] for r in shown["results"]}
        assert sorted(matched) == ["ada", "bob"]
        assert matched["ada"]["accounts"][0]["entities"]["orders"][0]["id"] == "o1"
        assert refused.is_error and "conflict" in refused.content[0].text and "Big spenders" in refused.content[0].text
        assert (first["size"], second["exited"]) == (2, 1)
        assert first["engine"] == ("duckdb" if engine == "duckdb" else second["engine"])
        ada = next(r.body for r in entered.received if r.body["event"] == "Audience Entered" and r.body["userId"] == "ada")
        assert ada["properties"]["data_graph_entity_context"]["accounts"][0]["orders"][0]["TOTAL"] == 120.5
        changed = next(r.body for r in receiver.received if r.body["event"] == "Entity Values Changed")
        assert (changed["userId"], changed["properties"]["data_graph_entity_context"]["accounts"]["orders"][0]["TOTAL"]) \
            == ("ada", 130)
        removed = next(r.body for r in receiver.received if r.body["event"] == "Entity Removed")
        assert removed["userId"] == "bob"
        rows = await eventually(lambda: _sink_rows(sink), seconds=60)
        assert [(event, user) for event, user, _ in rows] == [("Entity Added", "ada"), ("Entity Added", "bob")]
        assert json.loads(rows[0][2])["accounts"]["ACCOUNT_ID"] == "a1"
    finally:
        server.stop()
        receiver.close()


def sent(receiver: Receiver, *events: str) -> int:
    return sum(r.body.get("event") in events for r in receiver.received)


def _sink_rows(sink) -> list | None:
    if not sink.exists():
        return None
    with sqlite3.connect(sink) as connection:
        found = connection.execute("select name from sqlite_master where name = 'entity_added'").fetchall()
        rows = connection.execute("select event_name, user_id, entity_context from entity_added order by user_id"
                                  ).fetchall() if found else []
    return rows if len(rows) == 2 else None
