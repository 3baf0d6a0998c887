"""A claim checks each candidate's order (no earlier row of its target and profile still pending) by
one index lookup, even with statistics taken when the outbox was nearly empty, as they are in the
first minute after a fresh start. As a join, PostgreSQL then compared every candidate with every
pending row of the target: seconds per claim at a few thousand rows. And a claim takes its target's rows in the order they fell due
straight from an index, so it reads the rows it takes, not every pending row of its target."""

from sqlalchemy import insert, text

from backend.clock import to_ms
from store.db.models import OutboxMessage
from store.delivery import outbox
from tests.conftest import NOW
from tests.plans import sorts, table_reads

TARGET = "act_busy"


def pending_rows(count: int, profiles: int = 1000) -> list[dict]:
    return [dict(space_id="spa_x", computation_id="aud_x", target_kind="activation", target_id=TARGET,
                 profile_id=f"use_{n % profiles}", transition="entered", run_id="run_x", message_id=f"m{n}",
                 created_at_ms=to_ms(NOW), state="pending", attempts=0, next_attempt_at_ms=to_ms(NOW))
            for n in range(count)]


def test_the_order_check_is_one_lookup_per_candidate_with_statistics_from_an_empty_outbox(store):
    with store.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("ALTER TABLE outbox SET (autovacuum_enabled = false)"))
        connection.execute(insert(OutboxMessage.__table__), pending_rows(1))
        connection.execute(text("ANALYZE outbox"))
        connection.execute(insert(OutboxMessage.__table__), pending_rows(3000)[1:])
    with store.engine.connect() as connection:
        reads = table_reads(connection, outbox.claimable_ids(to_ms(NOW), 128, TARGET))
    checks = [detail for alias, detail in reads if alias == "outbox_1"]
    assert checks and all("profile_id" in detail for detail in checks), reads


def test_a_claim_from_a_resyncs_backlog_reads_its_targets_rows_in_order_and_sorts_nothing(store):
    with store.engine.begin() as connection:
        connection.execute(insert(OutboxMessage.__table__), pending_rows(3000, profiles=3000))
        connection.execute(text("ANALYZE outbox"))
    with store.engine.connect() as connection:
        statement = outbox.claimable_ids(to_ms(NOW), 128, TARGET)
        candidates = [detail for alias, detail in table_reads(connection, statement) if alias == "outbox"]
        assert candidates and all("ix_outbox_claim" in detail for detail in candidates), candidates
        assert not sorts(connection, statement), "the rows come in the order they fell due, so a claim stops at 128"
