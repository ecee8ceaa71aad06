"""The SQLite file that an instance's gunicorn workers share, opened by several processes at the same moment."""
from __future__ import annotations

import multiprocessing
from pathlib import Path

from cds_hooks.auth import ReplayCache
from cds_hooks.database import ThreadConnections
from cds_hooks.feedback import FeedbackStore

PROCESSES = 8
# Before the fix, 8 processes failed in 12 rounds of 30: twenty rounds all passing by luck is a chance of ~4 in 100,000.
ROUNDS = 20
SECONDS_PER_ROUND = 30


def open_the_stores(path: Path, start: multiprocessing.synchronize.Barrier, errors: multiprocessing.Queue) -> None:
    """What a worker does on start-up: open the feedback store and the replay cache on the instance's file."""
    start.wait()
    try:
        FeedbackStore(path)
        ReplayCache(path, leeway_seconds=60)
    except Exception as error:  # reported to the test, which names it
        errors.put(repr(error))
    else:
        errors.put(None)


def test_workers_starting_together_on_a_fresh_file_all_open_it(tmp_path: Path):
    # A benchmark's `cds-hooks serve --workers 2` on a fresh file stopped: a worker got "database is locked" and
    # exited, and gunicorn with it. Two processes with nothing else to do collide in about one round of five.
    context = multiprocessing.get_context("fork")
    for round_number in range(ROUNDS):
        path = tmp_path / f"round-{round_number}" / "cds-hooks.sqlite3"
        start, errors = context.Barrier(PROCESSES), context.Queue()
        workers = [context.Process(target=open_the_stores, args=(path, start, errors)) for _ in range(PROCESSES)]
        for worker in workers:
            worker.start()
        try:
            reported = [errors.get(timeout=SECONDS_PER_ROUND) for _ in workers]
        finally:
            for worker in workers:
                worker.join(timeout=SECONDS_PER_ROUND)
                if worker.is_alive():
                    worker.kill()
        assert reported == [None] * PROCESSES, f"round {round_number}: {reported}"
        assert ThreadConnections(path, "").get().execute("PRAGMA journal_mode").fetchone() == ("wal",)
