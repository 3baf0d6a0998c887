"""A busy space cannot starve a quiet one: the bounded version of `bench/tenancy.py` (which measures
the ratios), with the background loops running as `serve` runs them."""

from bench.tenancy import busy_and_quiet, busy_traffic, phase
from server.worker import Worker
from store.db.store import Store
from tests.databases import database_url


def test_a_quiet_spaces_sign_ups_all_become_members_while_a_busy_space_recomputes_hundreds_of_audiences(tmp_path):
    store = Store(database_url(tmp_path))
    busy, quiet, signed_up = busy_and_quiet(store, audiences_of_busy=250)
    worker = Worker(store).start()
    try:
        with busy_traffic(store, busy, rate=25):
            loaded = phase(store, quiet, signed_up, seconds=4, label="loaded")
    finally:
        worker.stop()
        store.close()

    assert loaded["sign_ups"] == 20 and loaded["never_members"] == 0, loaded
