"""The analytic store is only a copy: one left ahead of an operational store restored from a backup is
made again before a run reads it, and a damaged or locked file never stops a process or changes an
answer."""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import make_url

from backend.clock import FrozenClock
from store.analytic.store import open_analytic_store
from store.catalog import audiences, spaces
from store.compute import runs
from store.db.store import Store
from tests.conftest import NOW
from tests.databases import database_url, on_postgres
from tests.ingest_helpers import rows, send


def signed_up(*users):
    return [{"type": "track", "userId": user, "event": "Signed Up"} for user in users]


def members(store, audience_id):
    found = rows(store, "select i.value from membership m join identifier i on i.profile_id = m.profile_id "
                        "where m.computation_id = :a and m.exited_at_ms is null and i.type = 'user_id'", a=audience_id)
    return {user for (user,) in found}


def opened(url, replica, lock_wait_seconds=5.0):
    store = Store(url, clock=FrozenClock(NOW))
    store.analytics = open_analytic_store(store, f"duckdb:{replica}", lock_wait_seconds)
    return store


def held(replica, seconds: float | None = None):
    """Another process holding the DuckDB file: for `seconds` after it says it holds it, or until its
    standard input closes."""
    release = "sys.stdin.read()" if seconds is None else f"time.sleep({seconds})"
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; connection = duckdb.connect(sys.argv[1]); "
                               f"print('held', flush=True); {release}; connection.close()", str(replica)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


@pytest.mark.skipif(on_postgres(), reason="the backup restored is a SQLite file")
def test_a_restored_backup_beside_a_newer_replica_is_copied_again_and_no_real_member_exits(tmp_path, caplog):
    database, backup, replica = tmp_path / "live.db", tmp_path / "backup.db", tmp_path / "live.duckdb"
    store = opened(f"sqlite:///{database}", replica)
    space_id = spaces.create_space(store, "Restored").space.id
    send(store, space_id, *signed_up(*(f"member{n}" for n in range(200))))
    audience = audiences.create_audience(store, space_id, name="Signed Up", audience_type="USERS",
                                         query="event('Signed Up').count() >= 1", options=None)
    store.analytics.catch_up()
    assert runs.run(store, audience.id, reason="initial").entered == 200
    live, copy = sqlite3.connect(database), sqlite3.connect(backup)
    live.backup(copy)
    live.close()
    copy.close()
    send(store, space_id, *signed_up(*(f"ghost{n}" for n in range(300))))
    store.analytics.catch_up()  # the replica now holds events the backup does not
    store.analytics.close()
    store.close()
    os.replace(backup, database)

    store = opened(f"sqlite:///{database}", replica)
    send(store, space_id, *signed_up(*(f"late{n}" for n in range(5))))  # under the ids the ghosts had
    store.analytics.catch_up()
    forced = runs.run(store, audience.id, reason="forced")

    assert forced.engine == "duckdb" and (forced.entered, forced.exited) == (5, 0)
    assert members(store, audience.id) == {f"member{n}" for n in range(200)} | {f"late{n}" for n in range(5)}
    assert any("restored from a backup" in record.getMessage() for record in caplog.records)
    store.analytics.close()
    store.close()


def truncated(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def empty(path: Path) -> None:
    path.write_bytes(b"")


def garbage(path: Path) -> None:
    path.write_bytes(os.urandom(64 * 1024))


@pytest.mark.parametrize("damage", [truncated, empty, garbage])
def test_a_damaged_replica_is_moved_aside_and_made_again_and_runs_answer_right(tmp_path, damage, caplog):
    url, replica = database_url(tmp_path), tmp_path / "analytic.duckdb"
    store = opened(url, replica)
    space_id = spaces.create_space(store, "Damaged").space.id
    send(store, space_id, *signed_up(*(f"user{n}" for n in range(50))))
    audience = audiences.create_audience(store, space_id, name="Signed Up", audience_type="USERS",
                                         query="event('Signed Up').count() >= 1", options=None)
    store.analytics.catch_up()
    runs.run(store, audience.id, reason="initial")
    store.analytics.close()
    store.close()
    damage(replica)

    store = opened(url, replica)
    assert store.analytics is not None, "a damaged copy must not leave the process without its analytic store"
    send(store, space_id, *signed_up("late"))
    store.analytics.catch_up()
    forced = runs.run(store, audience.id, reason="forced")

    assert forced.engine == "duckdb" and (forced.entered, forced.exited) == (1, 0)
    assert members(store, audience.id) == {f"user{n}" for n in range(50)} | {"late"}
    assert [path.name for path in tmp_path.glob("analytic.duckdb.damaged-*") if not path.name.endswith(".wal")]
    assert any("cannot be opened" in record.getMessage() for record in caplog.records)
    store.analytics.close()
    store.close()


def test_a_replica_another_process_holds_leaves_full_runs_on_the_operational_store(tmp_path, caplog):
    url, replica = database_url(tmp_path), tmp_path / "analytic.duckdb"
    holder = held(replica)
    try:
        store = opened(url, replica, lock_wait_seconds=0.5)
        space_id = spaces.create_space(store, "Locked").space.id
        send(store, space_id, *signed_up("ann", "bob"))
        audience = audiences.create_audience(store, space_id, name="Signed Up", audience_type="USERS",
                                             query="event('Signed Up').count() >= 1", options=None)
        run = runs.run(store, audience.id, reason="initial")
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)

    assert store.analytics is None
    assert run.engine == make_url(url).get_backend_name() and members(store, audience.id) == {"ann", "bob"}
    [warning] = [record.getMessage() for record in caplog.records if "in use by another process" in record.getMessage()]
    assert "Conflicting lock" in warning
    assert not list(tmp_path.glob("analytic.duckdb.damaged-*")), "a file in use is not damaged"
    store.close()


def test_a_replica_released_within_the_wait_is_opened_by_the_next_process(tmp_path):
    url, replica = database_url(tmp_path), tmp_path / "analytic.duckdb"
    holder = held(replica, seconds=1)  # a server still exiting as its successor starts
    try:
        store = opened(url, replica, lock_wait_seconds=60)
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    space_id = spaces.create_space(store, "Restarted").space.id
    send(store, space_id, *signed_up("ann", "bob"))
    audience = audiences.create_audience(store, space_id, name="Signed Up", audience_type="USERS",
                                         query="event('Signed Up').count() >= 1", options=None)
    store.analytics.catch_up()
    run = runs.run(store, audience.id, reason="initial")

    assert run.engine == "duckdb" and members(store, audience.id) == {"ann", "bob"}
    store.analytics.close()
    store.close()
