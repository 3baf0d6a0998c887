"""A write transaction held open, its writes done but not committed, while a test acts beside it."""

import threading
from contextlib import contextmanager


@contextmanager
def held_before_commit(monkeypatch, store, work):
    """Run `work` in a thread; its write transactions on `store`, once their writes are done, wait
    to commit until the block ends (the first one must be reached within a minute)."""
    written, release = threading.Event(), threading.Event()
    commit = store.write

    @contextmanager
    def write_then_wait():
        with commit() as session:
            yield session
            written.set()
            release.wait(timeout=60)

    monkeypatch.setattr(store, "write", write_then_wait)
    thread = threading.Thread(target=work)
    thread.start()
    try:
        assert written.wait(timeout=60)
        yield
    finally:
        release.set()
        thread.join()
