"""LINKED audiences on the real server: profiles sent by Segment's Python library, entity tables loaded
by the CLI while `serve` runs (into the DuckDB warehouse the server reads, or the operational
database's), a Data Graph and an audience set over MCP, and a forced run that follows a reload."""

import subprocess
import sys

import pytest
from mcp import Client
from segment.analytics.client import Client as Analytics

from tests.servers import server_with_space
from tests.test_compute_end_to_end import call, eventually
from tests.test_linked_audiences import BIG_SPENDERS, GRAPH, TABLES

pytestmark = pytest.mark.anyio


def load(server, analytics: str, path) -> None:
    subprocess.run([sys.executable, "-m", "server", "warehouse", "load", "--analytics", analytics, "--table", path.stem,
                    str(path)], env=server.env, check=True, capture_output=True, timeout=180)


@pytest.mark.parametrize("engine", ["duckdb", "none"])
async def test_a_linked_audience_follows_tables_loaded_while_the_server_runs(tmp_path, engine):
    analytics = f"duckdb:{tmp_path / 'analytic.duckdb'}" if engine == "duckdb" else "none"
    server = server_with_space(tmp_path, "Shop", "--analytics", analytics)
    try:
        errors = []
        library = Analytics(server.write_key, host=server.base, on_error=lambda error, batch: errors.append(error))
        for user, email, least in (("ada", "ada@example.com", 100), ("bob", "bob@example.com", 10),
                                   ("cy", "cy@example.com", 0)):
            library.identify(user, {"email": email, "min_total": least})
        library.flush()
        assert not errors
        for name, content in TABLES.items():
            (tmp_path / name).write_text(content)
            load(server, analytics, tmp_path / name)
        async with Client(f"{server.base}/mcp") as client:
            await call(client, "update_data_graph", spaceId=server.space_id, config=GRAPH)
            paths = await call(client, "list_entity_paths", spaceId=server.space_id)
            assert [p["entitySlug"] for p in paths["entityPaths"]] == ["account", "order", "product"]
            audience = (await call(client, "create_audience", spaceId=server.space_id, audienceType="LINKED",
                                   name="Big spenders", definition={"query": BIG_SPENDERS}))["audience"]

            async def forced(size):
                run = (await call(client, "force_execute_audience_run", spaceId=server.space_id,
                                  audienceId=audience["id"]))["run"]
                return run["status"] == "COMPLETED" and run["size"] == size and run

            first = await eventually(lambda: forced(2), seconds=90)
            (tmp_path / "orders.csv").write_text("ORDER_ID,ACCOUNT_ID,TOTAL,STATUS\no1,a1,120.5,shipped\n"
                                                 "o2,a1,15,open\no3,a2,5,shipped\n")
            load(server, analytics, tmp_path / "orders.csv")  # bob's order is now under his min_total
            second = await eventually(lambda: forced(1), seconds=90)
        assert (first["entered"], second["exited"]) == (2, 1)
        assert first["engine"] == ("duckdb" if engine == "duckdb" else second["engine"])
    finally:
        server.stop()
