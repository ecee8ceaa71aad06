"""Shared test harness: the real app on a free port, served over real HTTP, CDS client keys that sign tokens, and
a check over the whole run that the service never logs a fixture patient's name or a token used in the tests.
"""
from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import hypothesis
import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from werkzeug.serving import make_server

from cds_hooks.app import create_app
from cds_hooks.logs import JsonFormatter
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
    # Authentication is on by default; tests of other layers call without tokens, and say so here. The FHIR test
    # servers listen on loopback, which only development mode lets prefetch call without listing each one.
    return Settings(
        database_path=tmp_path / "cds-hooks.sqlite3", prefetch_budget_seconds=1.0, auth_required=False, development_mode=True
    )


@pytest.fixture
def live_server(settings: Settings) -> Iterator[LiveServer]:
    app = create_app(settings)
    with requests.Session() as session:
        with serve(app) as base_url:
            yield LiveServer(base_url, app, session)
    app.extensions["cds_hooks.engine"].close()


@pytest.fixture
def document(live_server: LiveServer) -> dict[str, Any]:
    """The OpenAPI document the live server publishes."""
    response = live_server.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    return response.json()


@pytest.fixture
def serve_app() -> Iterator[Callable[[Settings], str]]:
    """Serve further app instances (another worker, another configuration); returns each one's base URL."""
    started: list[Any] = []

    def start(settings: Settings) -> str:
        app = create_app(settings)
        server = serve(app)
        started.append((app, server))
        return server.__enter__()

    yield start
    for app, server in started:
        server.__exit__(None, None, None)
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
        return secret_token(jwt.encode(payload, self.private_key, algorithm=self.alg, headers=header))


@pytest.fixture(scope="session")
def ec_key() -> SigningKey:
    return SigningKey.generate("ES384")


@pytest.fixture(scope="session")
def rsa_key() -> SigningKey:
    return SigningKey.generate("RS384")


# --- the service's log output, checked for patient data and tokens over the whole run ---------------------------

# Where the service's lines come from in this process: its modules and the test server (werkzeug). Under gunicorn
# it runs in a subprocess, whose output the test hands over with SERVICE_LOG.add_output.
SERVICE_LOGGERS = ("cds_hooks", "werkzeug")
# Every token a test hands the service (client JWTs, fhirAuthorization access tokens).
SECRET_TOKENS: set[str] = set()


def secret_token(token: str) -> str:
    """Register a token the service must never log, and return it."""
    SECRET_TOKENS.add(token)
    return token


@cache
def fixture_patient_names() -> frozenset[str]:
    """Every given and family name of the Patient resources in fixtures/patients."""
    names: set[str] = set()
    for path in (FIXTURES / "patients").glob("*.json"):
        for entry in json.loads(path.read_text("utf-8")).get("entry", []):
            if entry.get("resource", {}).get("resourceType") == "Patient":
                for name in entry["resource"].get("name", []):
                    names.update([*name.get("given", []), *([name["family"]] if name.get("family") else [])])
    return frozenset(names)


def leaks_in(lines: Iterable[str]) -> list[str]:
    """What each line gives away: a fixture patient's name (as a whole word: given names are short) or a token."""
    names = sorted(fixture_patient_names(), key=len, reverse=True)
    tokens = sorted(SECRET_TOKENS, key=len, reverse=True)
    secrets = re.compile("|".join([r"\b(?:" + "|".join(map(re.escape, names)) + r")\b", *map(re.escape, tokens)]))
    return [
        (f"token {match[:12]}..." if match in SECRET_TOKENS else f"patient name {match!r}") + f" in {line}"
        for line in lines
        for match in secrets.findall(line)
    ]


class ServiceLogCapture(logging.Handler):
    """Every line the service logs during the run, at every level, formatted as in production (JSON with extras)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def add_output(self, text: str) -> None:
        """Log output of a service run in a subprocess (`cds-hooks serve` under gunicorn)."""
        with self.lock:
            self.lines.extend(text.splitlines())

    def withdraw(self, marker: str) -> list[str]:
        """Take out the lines carrying `marker`: a self-test's planted leak, which must not fail the run."""
        with self.lock:
            planted = [line for line in self.lines if marker in line]
            self.lines = [line for line in self.lines if marker not in line]
        return planted


SERVICE_LOG = ServiceLogCapture()


def pytest_configure(config: pytest.Config) -> None:
    for name in SERVICE_LOGGERS:
        logging.getLogger(name).addHandler(SERVICE_LOG)
    # DEBUG: nothing an operator could turn on may carry patient data either.
    logging.getLogger("cds_hooks").setLevel(logging.DEBUG)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    leaks = leaks_in(SERVICE_LOG.lines)
    if not leaks:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write("\n")
        reporter.section("patient data or tokens in the service's logs", sep="=", red=True)
        for leak in leaks[:20]:
            reporter.write_line(leak[:500])
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


# --- property-based tests (Hypothesis, and schemathesis on top of it) -------------------------------------------

# CI runs the same examples on every run: derandomized, no example database, no per-example deadline (a shared
# machine's pauses are not bugs). HYPOTHESIS_PROFILE=explore searches afresh with ten times as many, to hunt bugs.
hypothesis.settings.register_profile(
    "ci", max_examples=150, derandomize=True, database=None, deadline=None, print_blob=True,
    suppress_health_check=[hypothesis.HealthCheck.too_slow, hypothesis.HealthCheck.data_too_large],
)
hypothesis.settings.register_profile("explore", parent=hypothesis.settings.get_profile("ci"), max_examples=1500,
                                     derandomize=False)
hypothesis.settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
