"""The service's SQLite file, shared by every gunicorn worker of an instance: WAL mode, a busy timeout, a connection per thread."""
from __future__ import annotations

import sqlite3
import threading
from pathlib import Path


class ThreadConnections:
    """One autocommit connection per thread to one SQLite file; sqlite3 connections must not cross threads."""

    def __init__(self, path: Path, sync_every_commit: bool = True) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._sync_every_commit = sync_every_commit
        self._local = threading.local()

    def get(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            # WAL lets the workers read while one writes; the busy timeout makes writers queue instead of failing.
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA busy_timeout=10000")
            if not self._sync_every_commit:
                # WAL without an fsync per commit: a crash of the service loses nothing and the file stays consistent,
                # but a power failure may lose the last commits.
                connection.execute("PRAGMA synchronous=NORMAL")
            self._local.connection = connection
        return connection
