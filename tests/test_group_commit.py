"""Group commit: writes queued while another commits are committed together, each gets its own
result, and a failed transaction keeps none of its writes."""

import threading
import time
from contextlib import contextmanager

from store.db.group_commit import GroupCommit


class Transactions:
    """A stand-in for a database's write transactions: records which writes each one committed."""

    def __init__(self, fail_when=None):
        self.committed: list[list[str]] = []
        self.fail_when = fail_when

    @contextmanager
    def __call__(self):
        written: list[str] = []
        yield written
        if self.fail_when is not None and self.fail_when in written:
            raise RuntimeError("the disk is full")
        self.committed.append(written)


def wait_until(check, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def submit_behind_a_slow_commit(group: GroupCommit, names: list[str]) -> dict:
    """`names[0]` commits first and holds its transaction until the others have queued behind it."""
    entered, release, outcomes = threading.Event(), threading.Event(), {}

    def slow(session):
        entered.set()
        release.wait(10)
        session.append(names[0])
        return names[0].upper()

    def submit(name, write):
        try:
            outcomes[name] = group.submit(write)
        except RuntimeError as error:
            outcomes[name] = error

    threads = [threading.Thread(target=submit, args=(names[0], slow))]
    threads[0].start()
    assert entered.wait(10)
    for name in names[1:]:
        threads.append(threading.Thread(target=submit, args=(name, lambda session, n=name: session.append(n) or n.upper())))
        threads[-1].start()
    wait_until(lambda: group.waiting == len(names) - 1)
    release.set()
    for thread in threads:
        thread.join(10)
    return outcomes


def test_writes_queued_while_another_commits_share_the_next_commit_and_each_gets_its_own_result():
    transactions = Transactions()
    group = GroupCommit(transactions)

    outcomes = submit_behind_a_slow_commit(group, ["a", "b", "c", "d"])

    assert outcomes == {"a": "A", "b": "B", "c": "C", "d": "D"}
    assert transactions.committed[0] == ["a"]
    assert sorted(transactions.committed[1]) == ["b", "c", "d"] and len(transactions.committed) == 2


def test_a_failed_commit_fails_every_write_in_it_and_keeps_none():
    transactions = Transactions(fail_when="c")
    group = GroupCommit(transactions)

    outcomes = submit_behind_a_slow_commit(group, ["a", "b", "c"])

    assert outcomes["a"] == "A"
    assert isinstance(outcomes["b"], RuntimeError) and isinstance(outcomes["c"], RuntimeError)
    assert transactions.committed == [["a"]]
    assert group.submit(lambda session: session.append("e") or "E") == "E"


def test_a_write_alone_commits_at_once():
    transactions = Transactions()

    assert GroupCommit(transactions).submit(lambda session: session.append("x") or 1) == 1
    assert transactions.committed == [["x"]]
