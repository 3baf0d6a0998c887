"""Time budgets: a statement that outlasts its budget is stopped by its engine, and a preview or a
forced run over budget ends failed with a reason naming the budget."""

import time

import pytest
from sqlalchemy import text

from store.analytic.engines import DuckDB
from store.catalog import audiences
from store.compute import previews, runs
from store.db.budget import Budget, OverBudget
from tests.ingest_helpers import send

ENDLESS = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
           "SELECT count(*) FROM (SELECT x FROM c LIMIT 100000000000) AS counted")


def test_a_statement_outlasting_its_budget_is_stopped_by_the_operational_engine(store):
    started = time.monotonic()
    with pytest.raises(OverBudget) as stopped, store.read() as session:
        with Budget("preview", 0.2).on(session.connection()):
            session.execute(text(ENDLESS)).scalar_one()

    assert time.monotonic() - started < 60, "the statement ran on instead of being stopped"
    assert "time budget of 0.2 s" in stopped.value.message
    with store.read() as session:  # the connection is usable afterwards
        assert session.execute(text("SELECT 1")).scalar_one() == 1


def test_a_statement_outlasting_its_budget_is_stopped_by_duckdb(tmp_path):
    engine = DuckDB(str(tmp_path / "analytic.duckdb"))
    started = time.monotonic()
    with pytest.raises(OverBudget):
        with Budget("preview", 0.2).around(engine.interrupt):
            engine.run(text("SELECT sum(hash(range)) FROM range(1000000000000)"))

    assert time.monotonic() - started < 60
    assert engine.run(text("SELECT 42")) == [(42,)]
    engine.close()


def test_a_statement_begun_after_the_budget_was_spent_is_stopped_too(tmp_path):
    engine = DuckDB(str(tmp_path / "analytic.duckdb"))
    with pytest.raises(OverBudget):
        with Budget("preview", 0.05).around(engine.interrupt):
            time.sleep(0.3)  # as on a loaded machine: the first stop finds nothing running
            engine.run(text("SELECT sum(hash(range)) FROM range(1000000000000)"))
    engine.close()


def test_a_preview_over_its_budget_ends_failed_naming_the_budget(store, space_id, monkeypatch):
    send(store, space_id, {"type": "track", "userId": "ann", "event": "Signed Up"})
    preview = previews.create_preview(store, space_id, audience_type="USERS", query="event('Signed Up').count() >= 1",
                                      target_entity=None, options=None)
    monkeypatch.setenv("SEGMENT_AUDIENCES_PREVIEW_SECONDS", "0")

    previews.run_pending(store)

    finished = previews.get_preview(store, space_id, preview.id)
    assert finished.status == "FAILED"
    assert "time budget of 0 s" in finished.failure_reason
    assert "SEGMENT_AUDIENCES_PREVIEW_SECONDS" in finished.failure_reason


def test_a_forced_run_over_its_budget_is_recorded_failed_and_leaves_members_as_they_were(store, space_id, monkeypatch):
    send(store, space_id, {"type": "track", "userId": "ann", "event": "Signed Up"})
    audience = audiences.create_audience(store, space_id, name="Signed Up", audience_type="USERS",
                                         query="event('Signed Up').count() >= 1", options=None)
    assert runs.run(store, audience.id, reason="initial").entered == 1
    monkeypatch.setenv("SEGMENT_AUDIENCES_FORCED_RUN_SECONDS", "0")

    forced = runs.force_audience_run(store, space_id, audience.id)

    assert forced.status == "FAILED" and "time budget of 0 s" in forced.error
    assert runs.states(store, [audience.id])[audience.id].size == 1
