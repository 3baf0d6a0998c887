"""The processor: stores the requests the Tracking API acknowledged into the log, a space at a time,
in large transactions (`store.ingest.ingest.process_log`).

Each turn takes the space that has waited longest and stores up to `TURN_MESSAGES` of its messages;
spaces take turns, so one busy space never holds up the rest. On PostgreSQL several processors (in
several processes) work side by side: a space whose requests one of them is storing is skipped by
the others, so a space's requests are still stored one transaction at a time, in order.
"""

from __future__ import annotations

from store.db.store import Store
from store.ingest import ingest, log

TURN_MESSAGES = 5_000


def process_waiting(store: Store, turn_messages: int = TURN_MESSAGES) -> int:
    """One turn for every space with requests waiting; how many spaces had requests stored."""
    return sum(ingest.process_log(store, space_id, turn_messages) is not None for space_id in log.spaces_waiting(store))


def process_all(store: Store) -> None:
    """Turns until the log is empty (or holds only spaces another processor is storing)."""
    while process_waiting(store):
        pass
