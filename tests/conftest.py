"""Shared test harness: the real app on a free port, served over real HTTP, and CDS client keys that sign tokens."""
from __future__ import annotations

import json
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec, rsa
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
    # Authentication is on by default; tests of other layers call without tokens, and say so here.
    return Settings(database_path=tmp_path / "cds-hooks.sqlite3", prefetch_budget_seconds=1.0, auth_required=False)


@pytest.fixture
def live_server(settings: Settings) -> Iterator[LiveServer]:
    app = create_app(settings)
    with requests.Session() as session:
        with serve(app) as base_url:
            yield LiveServer(base_url, app, session)
    app.extensions["cds_hooks.engine"].close()


_CURVES = {"ES256": ec.SECP256R1, "ES384": ec.SECP384R1, "ES512": ec.SECP521R1}


@dataclass(frozen=True)
class SigningKey:
    """A CDS client's key pair: signs tokens the way a client does and publishes its public JWK."""

    kid: str
    alg: str
    private_key: Any

    @classmethod
    def generate(cls, alg: str, kid: str | None = None) -> "SigningKey":
        if alg in _CURVES:
            private_key: Any = ec.generate_private_key(_CURVES[alg]())
        else:
            private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls(kid or str(uuid.uuid4()), alg, private_key)

    def public_jwk(self) -> dict[str, Any]:
        public = json.loads(jwt.get_algorithm_by_name(self.alg).to_jwk(self.private_key.public_key()))
        return {**public, "kid": self.kid, "use": "sig", "alg": self.alg}

    def token(self, iss: str, aud: str | list[str], *, jku: str | None = None, headers: dict[str, Any] | None = None,
              omit: tuple[str, ...] = (), **claims: Any) -> str:
        """A CDS Hooks client JWT; `omit` drops claims, `headers` adds, overrides or (with None) drops header fields."""
        now = int(time.time())
        payload = {"iss": iss, "aud": aud, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4()), **claims}
        for name in omit:
            payload.pop(name)
        header = {"typ": "JWT", "kid": self.kid, **({"jku": jku} if jku else {}), **(headers or {})}
        header = {name: value for name, value in header.items() if value is not None}
        return jwt.encode(payload, self.private_key, algorithm=self.alg, headers=header)


@pytest.fixture(scope="session")
def ec_key() -> SigningKey:
    return SigningKey.generate("ES384")


@pytest.fixture(scope="session")
def rsa_key() -> SigningKey:
    return SigningKey.generate("RS384")
