"""The analytic store's copy of the operational store: events in order and exactly once (also after a
catch-up cut off mid-batch), profiles' rows re-copied when they change, merged profiles' events
resolved to the profile they merged into, computed values copied when a full run reads them, and full
runs that see every event acknowledged before they start. On DuckDB and on ClickHouse (chdb)."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from store.analytic import replication, tables
from store.analytic.engines import ClickHouse, Chdb, DuckDB
from store.analytic.replication import Replicator
from store.analytic.store import AnalyticStore
from store.catalog import audiences, spaces
from store.compute import computations, runs
from store.db.store import Store
from tests.conftest import NOW
from tests.ingest_helpers import profile_of, rows, send

ENGINES = ["duckdb", "clickhouse"]


def make_engine(name: str, tmp_path):
    return DuckDB(str(tmp_path / "analytic.duckdb")) if name == "duckdb" else ClickHouse(Chdb())


@pytest.fixture(params=ENGINES)
def analytic(request, store, tmp_path):
    engine = make_engine(request.param, tmp_path)
    store.analytics = AnalyticStore(store, engine)
    yield store.analytics
    store.analytics = None
    engine.close()


def track(store, space_id, user: str, event: str, minutes_ago: int = 10, **properties):
    send(store, space_id, {"type": "track", "userId": user, "event": event, "properties": properties,
                           "timestamp": (NOW - timedelta(minutes=minutes_ago)).isoformat()})


def copied_events(engine) -> list[tuple]:
    event = tables.EVENT
    return engine.run(select(event.c.id, event.c.profile_id, event.c.event).order_by(event.c.id))


def operational_events(store) -> list[tuple]:
    return rows(store, "select id, profile_id, event from event order by id")


def test_events_are_copied_in_order_exactly_once(store, space_id, analytic):
    for n in range(5):
        track(store, space_id, f"u{n}", "Bought", price=n)
    analytic.catch_up()
    analytic.catch_up()
    assert copied_events(analytic.engine) == operational_events(store)
    track(store, space_id, "u9", "Viewed")
    analytic.catch_up()
    assert copied_events(analytic.engine) == operational_events(store)


class Cut(Exception):
    """The process stopping in the middle of a catch-up."""


def test_a_catch_up_cut_off_mid_batch_copies_the_rest_once_when_repeated(store, space_id, analytic, monkeypatch):
    for n in range(7):
        track(store, space_id, f"u{n}", "Bought", plan=n)
    send(store, space_id, *[{"type": "identify", "userId": f"u{n}", "traits": {"plan": f"p{n}"}} for n in range(7)])
    monkeypatch.setattr(replication, "EVENT_BATCH", 3)
    monkeypatch.setattr(replication, "CHANGE_BATCH", 4)
    engine, insert = analytic.engine, analytic.engine.insert
    inserted = []

    def cut_after_two(table, columns, batch):
        if len(inserted) == 2:
            raise Cut()
        inserted.append(table.name)
        insert(table, columns, batch)

    monkeypatch.setattr(engine, "insert", cut_after_two)
    with pytest.raises(Cut):
        analytic.catch_up()
    monkeypatch.setattr(engine, "insert", insert)
    analytic.catch_up()
    assert copied_events(engine) == operational_events(store)
    trait = tables.TRAIT
    copied_traits = sorted(engine.run(select(trait.c.profile_id, trait.c.key, trait.c.value)))
    assert copied_traits == sorted(rows(store, "select profile_id, key, value from trait"))


def test_changed_profiles_are_copied_again(store, space_id, analytic):
    send(store, space_id, {"type": "identify", "userId": "u1", "traits": {"plan": "free"}})
    analytic.catch_up()
    send(store, space_id, {"type": "identify", "userId": "u1", "traits": {"plan": "pro", "seats": 3}})
    analytic.catch_up()
    trait = tables.TRAIT
    copied = dict(analytic.engine.run(select(trait.c.key, trait.c.value).where(
        trait.c.profile_id == profile_of(store, "user_id", "u1"))))
    assert copied == {"plan": '"pro"', "seats": "3"}


def buyers_and_their_readers(store, space_id):
    """An audience, and one reading its key (as `trait('<key>')`)."""
    buyers = audiences.create_audience(store, space_id, name="Buyers", audience_type="USERS",
                                       query="event('Bought').count() >= 1", options={"includeHistoricalData": True})
    readers = audiences.create_audience(store, space_id, name="Buyers on a plan", audience_type="USERS",
                                        query=f"trait('{buyers.key}') = true AND trait('plan').exists()", options=None)
    return buyers, readers


def copied_values(analytic, key: str) -> list[tuple]:
    trait = tables.TRAIT
    return sorted(analytic.engine.run(select(trait.c.profile_id, trait.c.value).where(trait.c.key == key)))


def test_computed_values_are_not_copied_by_the_replicator(store, space_id, analytic):
    buyers, _ = buyers_and_their_readers(store, space_id)
    send(store, space_id, *[{"type": "identify", "userId": f"u{n}", "traits": {"plan": "pro"}} for n in range(3)])
    track(store, space_id, "u0", "Bought")
    assert runs.run(store, buyers.id, reason="forced").size == 1
    analytic.catch_up()
    assert copied_values(analytic, buyers.key) == []
    assert copied_values(analytic, "plan") == sorted(rows(store, "select profile_id, value from trait where key = 'plan'"))
    assert rows(store, "select table_name, count(*) from analytic_change where profile_id = :p group by table_name "
                       "order by table_name", p=profile_of(store, "user_id", "u0")) == [
        ("computed_trait:buyers", 1), ("identifier", 1), ("profile", 1), ("trait", 1)]


def test_a_full_run_reads_the_computed_values_it_references_as_they_are_when_it_runs(store, space_id, analytic):
    buyers, readers = buyers_and_their_readers(store, space_id)
    send(store, space_id, *[{"type": "identify", "userId": f"u{n}", "traits": {"plan": "pro"}} for n in range(3)])
    track(store, space_id, "u0", "Bought")
    analytic.catch_up()
    runs.run(store, buyers.id, reason="forced")
    computation = computations.for_audience(readers)
    assert [row[0] for row in computation.on_analytic_store(analytic, NOW).rows] == [profile_of(store, "user_id", "u0")]
    track(store, space_id, "u1", "Bought")
    runs.run(store, buyers.id, reason="forced")
    full = computation.on_analytic_store(analytic, NOW)
    assert sorted(row[0] for row in full.rows) == sorted(profile_of(store, "user_id", u) for u in ("u0", "u1"))
    assert copied_values(analytic, buyers.key) == sorted(rows(store, "select profile_id, value from trait "
                                                                     "where key = :k", k=buyers.key))
    run = runs.run(store, readers.id, reason="forced")
    assert (run.engine, run.size) == (analytic.name, 2)


def test_a_merged_profiles_events_count_for_the_profile_it_merged_into(store, space_id, analytic):
    send(store, space_id, {"type": "identify", "userId": "u1", "traits": {"email": "u1@example.com"}})
    send(store, space_id, {"type": "track", "event": "Viewed", "userId": "u1"})
    send(store, space_id, {"type": "track", "event": "Viewed", "anonymousId": "a1"})
    analytic.catch_up()
    send(store, space_id, {"type": "track", "event": "Viewed", "anonymousId": "a1", "userId": "u1"})
    analytic.catch_up()
    merged = rows(store, "select id, merged_into from profile where merged_into is not null")
    assert len(merged) == 1
    assert merged[0][0] in {row[1] for row in copied_events(analytic.engine)}, "copied under the merged profile"
    query = "event('Viewed').count() >= 3"
    audience = audiences.create_audience(store, space_id, name="Viewers", audience_type="USERS", query=query,
                                         options={"includeHistoricalData": True})
    computation = computations.for_audience(audience)
    assert {row[0] for row in analytic.engine.run(computation.statement(NOW, analytic=tables.TABLES))} == {merged[0][1]}
    run = runs.run(store, audience.id, reason="forced")
    assert (run.engine, run.size) == (analytic.name, 1)


def test_a_full_run_sees_events_acknowledged_before_it_started_and_records_the_lag(store, space_id, analytic):
    audience = audiences.create_audience(store, space_id, name="Buyers", audience_type="USERS",
                                         query="event('Bought').count() >= 1", options={"includeHistoricalData": True})
    analytic.catch_up()
    send(store, space_id, *[{"type": "identify", "userId": f"u{n}", "traits": {"email": f"u{n}@x.io"}} for n in range(3)])
    for n in range(3):
        track(store, space_id, f"u{n}", "Bought")
    store.clock.set(NOW + timedelta(seconds=7))
    run = runs.run(store, audience.id, reason="forced")
    assert (run.status, run.engine, run.size, run.replication_lag_ms) == ("COMPLETED", analytic.name, 3, 7000)
    assert runs.run(store, audience.id, reason="forced").replication_lag_ms == 0


def test_profiles_changed_after_the_copy_are_recomputed_in_the_run(store, space_id, analytic):
    audience = audiences.create_audience(store, space_id, name="Buyers", audience_type="USERS",
                                         query="event('Bought').count() >= 1", options={"includeHistoricalData": True})
    send(store, space_id, {"type": "identify", "userId": "late", "traits": {"email": "late@x.io"}})
    analytic.catch_up()
    computation = computations.for_audience(audience)
    full = computation.on_analytic_store(analytic, NOW)
    track(store, space_id, "late", "Bought")
    with store.write() as session:
        run = runs.apply(session, computation, NOW, "forced", full=full)
    assert full.rows == [] and run.size == 1


def test_a_copy_fallen_behind_the_pruned_log_starts_over_from_whole_tables(store, space_id, analytic, monkeypatch):
    send(store, space_id, {"type": "identify", "userId": "u1", "traits": {"plan": "free"}})
    analytic.catch_up()
    send(store, space_id, {"type": "identify", "userId": "u1", "traits": {"plan": "pro"}})
    send(store, space_id, {"type": "identify", "userId": "u2", "traits": {"plan": "team"}})
    monkeypatch.setattr(replication, "CHANGE_LOG_KEEP", 0)
    assert replication.prune_changes(store) > 0
    analytic.catch_up()
    trait = tables.TRAIT
    assert sorted(analytic.engine.run(select(trait.c.value).where(trait.c.key == "plan"))) == [('"pro"',), ('"team"',)]


def test_an_analytic_store_copied_from_another_database_starts_over(store, space_id, tmp_path):
    other = Store(str(tmp_path / "other.db"))
    try:
        send(other, spaces.create_space(other, "Other").space.id, {"type": "track", "userId": "x", "event": "Elsewhere"})
        engine = DuckDB(str(tmp_path / "shared.duckdb"))
        Replicator(other, engine).catch_up()
        engine.close()
    finally:
        other.close()
    track(store, space_id, "u1", "Here")
    engine = DuckDB(str(tmp_path / "shared.duckdb"))
    Replicator(store, engine).catch_up()
    assert [row[2] for row in copied_events(engine)] == ["Here"]
    assert engine.run(select(func.count()).select_from(tables.PROFILE)) == [(1,)]
    engine.close()



def test_an_analytic_store_in_an_older_layout_is_made_again(store, space_id, tmp_path):
    send(store, space_id, {"type": "identify", "userId": "u1", "traits": {"plan": "pro"}})
    engine = DuckDB(str(tmp_path / "old.duckdb"))
    Replicator(store, engine).catch_up()
    engine.execute("ALTER TABLE trait DROP COLUMN trait_class")
    engine.execute(f"DELETE FROM replication_state WHERE name = 'layout:{tables.LAYOUT}'")
    engine.close()
    engine = DuckDB(str(tmp_path / "old.duckdb"))
    Replicator(store, engine).catch_up()
    trait = tables.TRAIT
    assert engine.run(select(trait.c.key, trait.c.trait_class)) == [("plan", "custom")]
    engine.close()


def typed_numbers(engine, path: tuple[str, ...]) -> list[tuple]:
    prefix = tables.typed_prefix(path)
    return [tuple(row) for row in engine.run(text(f"SELECT {prefix}_kind, {prefix}_number FROM event "
                                                  "WHERE event = 'Bought' ORDER BY id"))]


def test_the_properties_a_full_run_reads_get_typed_columns_kept_filled(store, space_id, analytic):
    send(store, space_id, {"type": "identify", "userId": "u1", "traits": {"email": "u1@x.io"}})
    track(store, space_id, "u1", "Bought", price=120)
    analytic.catch_up()
    big_spenders = audiences.create_audience(store, space_id, name="Big spenders", audience_type="USERS",
                                             query="event('Bought').where(property('price') >= 100).count() >= 2",
                                             options={"includeHistoricalData": True})
    assert runs.run(store, big_spenders.id, reason="forced").size == 0
    assert typed_numbers(analytic.engine, ("price",)) == [("integer", 120.0)]
    track(store, space_id, "u1", "Bought", price="150.5")
    track(store, space_id, "u1", "Viewed")
    run = runs.run(store, big_spenders.id, reason="forced")
    assert (run.engine, run.size) == (analytic.name, 1)
    assert typed_numbers(analytic.engine, ("price",))[:1] == [("integer", 120.0)]
    assert typed_numbers(analytic.engine, ("price",))[1][0] == "text"
    engine, sql = computations.explain(store, computations.for_audience(big_spenders))
    assert engine == analytic.name and f"{tables.typed_prefix(('price',))}_number" in sql


def test_typed_columns_stay_filled_by_a_process_that_opens_the_store_again(store, space_id, tmp_path):
    engine = DuckDB(str(tmp_path / "typed.duckdb"))
    Replicator(store, engine).typed_properties([("price",)])
    engine.close()
    track(store, space_id, "u1", "Bought", price=5)
    engine = DuckDB(str(tmp_path / "typed.duckdb"))
    replicator = Replicator(store, engine)
    replicator.catch_up()
    assert replicator.typed_properties([("price",)], add=False) == ((("price",), tables.typed_prefix(("price",))),)
    assert typed_numbers(engine, ("price",)) == [("integer", 5.0)]
    engine.close()
