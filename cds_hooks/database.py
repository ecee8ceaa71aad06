"""The service's SQLite file, shared by every gunicorn worker of an instance: WAL mode, a busy timeout, a connection per thread."""
from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

# How long a writer waits for another process's lock before it fails.
BUSY_TIMEOUT_SECONDS = 10.0
_WAL_RETRY_SECONDS = 0.005


class ThreadConnections:
    """One autocommit connection per thread to one SQLite file; sqlite3 connections must not cross threads.

    Creating it puts the file in WAL mode and creates `schema`, safely while other processes do the same: gunicorn
    starts its workers together, each on the same file.
    """

    def __init__(self, path: Path, schema: str, sync_every_commit: bool = True) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._sync_every_commit = sync_every_commit
        self._local = threading.local()
        connection = self.get()
        # WAL lets the workers read while one writes. The mode is kept in the file, so this is done once.
        _switch_to_wal(connection)
        # Each CREATE ... IF NOT EXISTS is a write of its own, which waits on the busy timeout like any other.
        connection.executescript(schema)

    def get(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            # The timeout is SQLite's busy timeout: writers queue instead of failing.
            connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
            if not self._sync_every_commit:
                # WAL without an fsync per commit: a crash of the service loses nothing and the file stays consistent,
                # but a power failure may lose the last commits.
                connection.execute("PRAGMA synchronous=NORMAL")
            self._local.connection = connection
        return connection


def _switch_to_wal(connection: sqlite3.Connection) -> None:
    """Put the file in WAL mode, waiting while another process does.

    The switch takes an exclusive lock. When two processes ask for it together, SQLite answers one of them "database is
    locked" at once, without waiting on the busy timeout (waiting could deadlock), so the wait is here. Without it,
    a worker that lost the race on a fresh file exited, and gunicorn stopped the whole service.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    while True:
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if error.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
        time.sleep(_WAL_RETRY_SECONDS)
