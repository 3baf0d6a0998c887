"""A computed trait's full run on DuckDB diffs in the engine, against the values it keeps there
(`store.analytic.values`), and writes back exactly what a run on the operational store writes:
the same values, value history, outbox rows and run counts, through new events, realtime passes,
merges, windows ageing out, values rewritten behind its back and a copy left unsettled."""

import json
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from backend.clock import FrozenClock
from store.analytic.engines import DuckDB
from store.analytic.store import AnalyticStore
from store.analytic.tables import COMPUTED_VALUE
from store.analytic.values import ValueCopies
from store.catalog import computed_traits, destination_instances, destinations, spaces
from store.compute import recompute, runs
from store.db.store import Store
from tests.conftest import NOW
from tests.databases import database_url
from tests.ingest_helpers import rows, send

LAST_BRAND = {"Last Brand": "event('Bought').within(5 days).last(property('brand'))"}
QUERIES = {"Week Spend": "event('Bought').within(7 days).sum(property('price'))", **LAST_BRAND}


def bought(at, price, brand, user=None, anonymous=None):
    ids = {"userId": user} if user else {"anonymousId": anonymous}
    return {"type": "track", "event": "Bought", "properties": {"price": price, "brand": brand},
            "timestamp": at.isoformat().replace("+00:00", "Z"), **ids}


class Twin:
    """One side of the comparison: a store, with or without DuckDB, and its space's computed traits."""

    def __init__(self, tmp_path, name: str, duckdb: bool, queries: dict[str, str]):
        self.clock = FrozenClock(NOW)
        self.store = Store(database_url(tmp_path, name), clock=self.clock)
        if duckdb:
            self.store.analytics = AnalyticStore(self.store, DuckDB(str(tmp_path / f"{name}.duckdb")))
            self.store.analytics.catch_up()
        self.space_id = spaces.create_space(self.store, "Shop").space.id
        self.traits = [computed_traits.create_computed_trait(self.store, self.space_id, name=name, definition_type="USERS",
                                                             query=query) for name, query in queries.items()]
        moengage = destination_instances.add_destination(self.store, self.space_id, slug="moengage", name="MoEngage",
                                                         settings={"apiId": "APP", "apiKey": "KEY"})
        for trait in self.traits:
            destinations.connect(self.store, self.space_id, trait.id, moengage.id, "destination", None, None)

    def send(self, *messages):
        send(self.store, self.space_id, *messages)

    def run_all(self) -> list[tuple]:
        return [(run.status, run.entered, run.exited, run.size)
                for run in (runs.run(self.store, trait.id, reason="forced") for trait in self.traits)]

    def written(self) -> dict:
        """What the runs wrote, with profiles named by their least identifier (the outbox also names
        profiles merged away since)."""
        names = dict(rows(self.store, "select profile_id, min(value) from identifier group by profile_id"))
        return {
            "values": sorted((names[p], key, plain(value)) for p, key, value in rows(
                self.store, "select profile_id, key, value from trait where trait_class = 'computed_trait'")),
            "history": sorted((names.get(p, "merged away"), key, plain(value), since, until or 0) for p, key, value, since, until in rows(
                self.store, "select v.profile_id, t.key, v.value, v.from_ms, v.until_ms from computed_value v "
                            "join computed_trait t on t.id = v.computation_id")),
            "outbox": sorted((names.get(p, "merged away"), key, transition, plain(value))
                             for p, key, transition, value in rows(
                self.store, "select profile_id, t.key, transition, o.value from outbox o "
                            "join computed_trait t on t.id = o.computation_id")),
        }

    def close(self):
        if self.store.analytics is not None:
            self.store.analytics.close()
        self.store.close()


def plain(value: str | None) -> str:
    """A JSON value as text that spells a number one way (engines spell sums `15` or `15.0`)."""
    decoded = None if value is None else json.loads(value)
    if isinstance(decoded, float) and decoded.is_integer():
        decoded = int(decoded)
    return json.dumps(decoded)


@pytest.fixture
def make_twins(tmp_path):
    """Twins computing `queries`: one on the operational store alone, one keeping values in DuckDB."""
    made = []

    def make(queries: dict[str, str]) -> tuple[Twin, Twin]:
        made.extend([Twin(tmp_path, "operational", duckdb=False, queries=queries),
                     Twin(tmp_path, "kept", duckdb=True, queries=queries)])
        return made[0], made[1]

    yield make
    for twin in made:
        twin.close()


def both(twins, step):
    return [step(twin) for twin in twins]


def test_runs_diffing_in_the_engine_write_what_runs_on_the_operational_store_write(make_twins, monkeypatch):
    operational, kept = twins = make_twins(QUERIES)
    for twin in twins:  # anonymous profiles first: a merge keeps the older profile
        twin.clock.set(NOW - timedelta(hours=6))
        twin.send(*(bought(NOW - timedelta(hours=n + 6), 5, "anon", anonymous=f"a{n}") for n in range(5)))
        twin.clock.set(NOW)
    both(twins, lambda t: t.send(*(bought(NOW - timedelta(days=n % 9), 10 * n, f"b{n % 4}", user=f"u{n}")
                                   for n in range(40))))
    first = both(twins, Twin.run_all)
    assert first[0] == first[1] and first[0][0][1] > 20
    assert_same(operational.written(), kept.written())

    assert both(twins, Twin.run_all) == [[("COMPLETED", 0, 0, size) for *_, size in first[0]]] * 2

    both(twins, lambda t: t.send(*(bought(NOW, 7, "late", user=f"u{n}") for n in range(0, 40, 3))))
    both(twins, lambda t: recompute.process_dirty(t.store))  # realtime passes change values between full runs
    both(twins, lambda t: t.send(bought(NOW, 1, "new", user="u99"),
                                 {"type": "identify", "userId": "u1", "anonymousId": "a1"},
                                 {"type": "identify", "userId": "u2", "anonymousId": "a2"}))
    middle = both(twins, Twin.run_all)
    assert middle[0] == middle[1]
    assert_same(operational.written(), kept.written())

    for twin in twins:
        twin.clock.set(NOW + timedelta(days=3))  # windows drop events: values change and clear
    aged = both(twins, Twin.run_all)
    assert aged[0] == aged[1] and any(exited for _, _, exited, _ in aged[0])
    assert_same(operational.written(), kept.written())

    for twin in twins:  # values rewritten behind the runs' back: as the same number spelled otherwise, and wrong
        rewrite(twin, "u9", lambda value: json.dumps(float(json.loads(value))))
        rewrite(twin, "u11", lambda _: "999")
    monkeypatch.setattr(ValueCopies, "settle", settling_fails)
    both(twins, lambda t: t.send(bought(NOW + timedelta(days=3), 3, "x", user="u4")))
    unsettled = both(twins, Twin.run_all)
    assert unsettled[0] == unsettled[1]
    monkeypatch.undo()
    both(twins, lambda t: t.send(bought(NOW + timedelta(days=3), 2, "y", user="u5")))
    after = both(twins, Twin.run_all)
    assert after[0] == after[1]
    assert_same(operational.written(), kept.written())
    assert [run.engine for run in (runs.run(kept.store, trait.id, reason="forced") for trait in kept.traits)] == [
        "duckdb", "duckdb"]


def test_a_value_changed_while_a_run_computes_is_kept_as_the_run_wrote_it(make_twins, monkeypatch):
    operational, kept = twins = make_twins(LAST_BRAND)
    late = bought(NOW - timedelta(days=4, hours=12), 3, "late", user="u77")  # leaves Last Brand's window in a day
    both(twins, lambda t: t.send(bought(NOW, 10, "b", user="u1")))
    both(twins, Twin.run_all)
    computing = AnalyticStore.compute_changes

    def then_an_event_arrives(analytics, statement, space_id, computation_id, key, *args, **kwargs):
        result = computing(analytics, statement, space_id, computation_id, key, *args, **kwargs)
        if not rows(kept.store, "select 1 from identifier where value = 'u77'"):
            kept.send(late)
        return result

    monkeypatch.setattr(AnalyticStore, "compute_changes", then_an_event_arrives)
    operational.send(late)  # as the event arrives for the other twin: during its run of Last Brand
    during = both(twins, Twin.run_all)
    assert during[0] == during[1] == [("COMPLETED", 1, 0, 2)]
    for twin in twins:
        twin.clock.set(NOW + timedelta(days=1))
    aged = both(twins, Twin.run_all)
    assert aged[0] == aged[1] == [("COMPLETED", 0, 1, 1)]
    assert_same(operational.written(), kept.written())


def rewrite(twin: Twin, user: str, new_value) -> None:
    """Set a user's Week Spend to `new_value(stored value)` as no run would."""
    where = "key = 'week_spend' and profile_id in (select profile_id from identifier where value = :user)"
    with twin.store.write() as session:
        [stored] = session.execute(text(f"select value from trait where {where}"), {"user": user}).scalars()
        session.execute(text(f"update trait set value = :value where {where}"),
                        {"value": new_value(stored), "user": user})


def settling_fails(*_):
    raise OSError("disk full")


def assert_same(a: dict, b: dict) -> None:
    """`a == b`, printing the rows only one of them has."""
    for name in a:
        x, y = a[name], b[name]
        if x != y:
            print(name, "only operational:", [r for r in x if r not in y])
            print(name, "only kept:", [r for r in y if r not in x])
    assert a == b


def test_a_deleted_computed_trait_s_copy_is_dropped_at_the_next_run(make_twins):
    _, kept = make_twins(QUERIES)
    kept.send(bought(NOW, 10, "b", user="u1"))
    kept.run_all()
    week_spend, last_brand = kept.traits
    computed_traits.remove_computed_trait(kept.store, kept.space_id, week_spend.id)

    runs.run(kept.store, last_brand.id, reason="forced")

    values = kept.store.analytics.engine.run(select(COMPUTED_VALUE.c.computation_id).distinct())
    assert values == [(last_brand.id,)]
