"""Reading and writing many rows through the driver: what full runs read back is what was stored."""

import pytest
from sqlalchemy import bindparam, select

from store.db import bulk
from store.db.models import Trait
from tests.databases import on_postgres


def stored_traits(store, space_id, rows):
    with store.write() as session:
        bulk.insert_dicts(session.connection(), Trait.__table__, [
            dict(profile_id=profile_id, key=key, space_id=space_id, value=value, trait_class="custom",
                 source_id="test", updated_at_ms=1) for profile_id, key, value in rows])


def test_select_all_reads_every_row_of_a_statement_binding_its_named_parameters(store, space_id):
    stored_traits(store, space_id, [("use_1", "plan", '"pro"'), ("use_2", "plan", '"free"'), ("use_2", "age", "41")])
    trait = Trait.__table__

    def of_key():
        return select(trait.c.profile_id, trait.c.value).where(trait.c.key == bindparam("key"),
                                                               trait.c.space_id == bindparam("space"))

    with store.read() as session:
        found = bulk.select_all(session.connection(), "test of key", of_key, {"key": "plan", "space": space_id})
        ages = bulk.select_all(session.connection(), "test of key", of_key, {"key": "age", "space": space_id})
    assert sorted(found) == [("use_1", '"pro"'), ("use_2", '"free"')]
    assert ages == [("use_2", "41")]


@pytest.mark.skipif(on_postgres(), reason="a SQLite setting")
def test_sqlite_connections_read_the_file_through_memory_mapping(store):
    with store.read() as session:
        mapped = session.connection().exec_driver_sql("PRAGMA mmap_size").scalar_one()
    assert mapped > 1 << 30


def test_many_distinct_rows_are_upserted_at_once_and_a_newer_stored_row_is_kept(store, space_id):
    many = bulk.STAGED_ROWS + 5
    stored_traits(store, space_id, [("use_00000", "score", "1"), ("use_00001", "score", "1")])
    with store.write() as session:
        session.connection().exec_driver_sql("UPDATE trait SET updated_at_ms = 9 WHERE profile_id = 'use_00001'")
        bulk.upsert_newer_distinct(
            session.connection(), Trait.__table__, ("profile_id", "value"),
            [(f"use_{n:05d}", str(n + 100)) for n in range(many)], ("profile_id", "key"), "updated_at_ms",
            dict(key="score", space_id=space_id, trait_class="custom", source_id="test", updated_at_ms=5))
    trait = Trait.__table__
    with store.read() as session:
        scores = dict(session.execute(select(trait.c.profile_id, trait.c.value).where(trait.c.key == "score")).all())
    assert len(scores) == many
    assert (scores["use_00000"], scores["use_00001"], scores[f"use_{many - 1:05d}"]) == ("100", "1", str(many + 99))


def test_many_rows_are_inserted_at_once_with_their_fixed_values_and_read_back_as_they_were_given(store, space_id):
    many = bulk.STAGED_ROWS + 3
    values = ['"text, with\\ttab and \\"quotes\\""', "null", "123456789012345678901234567890", '{"a": [1, true]}']
    with store.write() as session:
        bulk.insert_rows(session.connection(), Trait.__table__, ("profile_id", "value", "updated_at_ms"),
                         [(f"use_{n:05d}", values[n % 4], 2 ** 40 + n) for n in range(many)],
                         dict(key="note", space_id=space_id, trait_class="custom", source_id="test"))
    trait = Trait.__table__
    with store.read() as session:
        stored = session.execute(select(trait.c.profile_id, trait.c.value, trait.c.updated_at_ms, trait.c.space_id,
                                        trait.c.source_id).where(trait.c.key == "note").order_by(trait.c.profile_id)).all()
    assert len(stored) == many
    assert [(value, stamp) for _, value, stamp, _, _ in stored[:4]] == [(value, 2 ** 40 + n) for n, value in enumerate(values)]
    assert {(space, source) for *_, space, source in stored} == {(space_id, "test")}
