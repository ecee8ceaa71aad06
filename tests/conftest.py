"""Shared test harness: the real app on a free port, served over real HTTP."""
from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
import requests
from werkzeug.serving import make_server

from cds_hooks.app import create_app
from cds_hooks.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"


@dataclass
class LiveServer:
    base_url: str
    app: object
    session: requests.Session

    def post(self, path: str, json_body=None, **kwargs) -> requests.Response:
        return self.session.post(self.base_url + path, json=json_body, timeout=10, **kwargs)

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.session.get(self.base_url + path, timeout=10, **kwargs)


@contextmanager
def serve(app) -> Iterator[str]:
    """Serve a WSGI app over real HTTP on a free loopback port."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(database_path=tmp_path / "cds-hooks.sqlite3", prefetch_budget_seconds=1.0)


@pytest.fixture
def live_server(settings: Settings) -> Iterator[LiveServer]:
    app = create_app(settings)
    with requests.Session() as session:
        with serve(app) as base_url:
            yield LiveServer(base_url, app, session)
    app.extensions["cds_hooks.engine"].close()
