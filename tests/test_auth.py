"""CDS client authentication (cds_hooks/auth.py) over real HTTP: which tokens open the API, and which get 401."""
from __future__ import annotations

import json
import logging
import math
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization

from cds_hooks.app import create_app
from cds_hooks.auth import AuthConfigurationError, ReplayCache, check_serving_configuration
from cds_hooks.logs import JsonFormatter
from cds_hooks.settings import Settings, SettingsError, TrustedIssuer

from .conftest import SERVICE_LOG, LiveServer, SigningKey
from .test_api import patient_view_request
from .test_cli import free_port, wait_until_healthy

DATA = Path(__file__).parent / "data"
BIN = Path(sys.executable).parent
ISS = "https://ehr.example.org/cds-client"
SERVICE = "/cds-services/her2-patient-view"
GENERIC_401 = {"error": "unauthorized", "message": "authentication failed"}

# The CDS Hooks Sandbox signs with this key. It is public test material, committed by the Sandbox itself at
# https://github.com/cds-hooks/sandbox/blob/3b7e25546771c6e7fc5e360aa7db6eb64af0b8b6/keys/ecprivkey.pem; its
# public half is tests/data/sandbox-jwks.json, a copy of build/.well-known/jwks.json of the same commit, which
# the Sandbox serves at SANDBOX_JKU. Because anyone can sign with it, a deployment with real patient data must
# never trust the Sandbox issuer (see the README).
SANDBOX_PRIVATE_KEY = b"""-----BEGIN PRIVATE KEY-----
MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDDI5xiX1DMwqcEVSI9k
oGKMNX+WwS2fqhYVU6q0XJdtj/5XrdYIFhh3Gwuj09yWvzihZANiAAR3D8kZHycH
Yjpe943FQ6XaqTr31k8szadgjlJNJ2ISX1q8CSubcKR9gxuuuOvyVoFKbeYsT6fX
Ng2Vr9qITdxvedmwvnVFsLvKzDerxokvEab6HHv1E8xikhMOOnuSDPI=
-----END PRIVATE KEY-----
"""
SANDBOX_ISS = "https://sandbox.cds-hooks.org"
SANDBOX_JKU = "https://sandbox.cds-hooks.org/.well-known/jwks.json"
SANDBOX_KID = "44823f3d-0b01-4a6c-a80e-b9d3e8a7226f"


class JwksServer:
    """A CDS client's JWK Set URL (its jku) on a free loopback port; counts fetches, and its keys can change."""

    def __init__(self, keys: list[dict[str, Any]]) -> None:
        self.keys = keys
        self.fetches = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.fetches += 1
                body = json.dumps({"keys": outer.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}/.well-known/jwks.json"

    def __enter__(self) -> "JwksServer":
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def es256_key() -> SigningKey:
    return SigningKey.generate("ES256")


@pytest.fixture
def jwks(ec_key: SigningKey, rsa_key: SigningKey, es256_key: SigningKey) -> Iterator[JwksServer]:
    # The ES256 key is published so that its tokens are refused for their alg, not for an unknown kid.
    with JwksServer([ec_key.public_jwk(), rsa_key.public_jwk(), es256_key.public_jwk()]) as server:
        yield server


@pytest.fixture
def settings(settings: Settings, jwks: JwksServer) -> Settings:
    """The shared settings with authentication on, trusting one client whose keys are at a local jku."""
    return settings.replace(
        auth_required=True,
        trusted_issuers=(TrustedIssuer(iss=ISS, jku=jwks.url),),
        # Each unknown kid may refetch; the rate limit has its own test.
        auth_jwks_min_refresh_seconds=0,
    )


@pytest.fixture
def auth_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO)
    return caplog


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def call_service(base_url: str, headers: dict[str, str] | None) -> requests.Response:
    return requests.post(base_url + SERVICE, json=patient_view_request(), headers=headers or {}, timeout=10)


def feedback_body() -> dict[str, Any]:
    return {"feedback": [{"card": str(uuid.uuid4()), "outcome": "overridden", "outcomeTimestamp": "2026-11-22T13:46:27Z"}]}


def json_log_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every captured record as the service writes it (JSON with all extra fields)."""
    return [JsonFormatter().format(record) for record in caplog.records]


def claims_for(aud: str) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": ISS, "aud": aud, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4())}


def forged(header: dict[str, Any], aud: str, sign: Callable[[bytes], bytes] = lambda signing_input: b"") -> str:
    """A token put together by hand, as an attacker would: any header, valid claims, any signature."""
    encode = jwt.utils.base64url_encode
    signing_input = encode(json.dumps(header).encode()) + b"." + encode(json.dumps(claims_for(aud)).encode())
    return (signing_input + b"." + encode(sign(signing_input))).decode()


def hmac_signed(secret: bytes, kid: str, aud: str) -> str:
    """The key-confusion attack: HS256 with public key material, which a careless verifier would use as the secret."""
    hs256 = jwt.algorithms.HMACAlgorithm(jwt.algorithms.HMACAlgorithm.SHA256)
    return forged({"alg": "HS256", "typ": "JWT", "kid": kid}, aud, lambda signing_input: hs256.sign(signing_input, secret))


# --- accepted ---------------------------------------------------------------------------------------------------

def test_valid_tokens_open_discovery_a_service_call_and_feedback(live_server: LiveServer, ec_key: SigningKey,
                                                                 jwks: JwksServer, auth_log):
    base = live_server.base_url
    discovery = live_server.get("/cds-services", headers=bearer(ec_key.token(ISS, base + "/cds-services", jku=jwks.url)))
    assert discovery.status_code == 200 and len(discovery.json()["services"]) == 3

    response = call_service(base, bearer(ec_key.token(ISS, base + SERVICE, jku=jwks.url)))
    assert response.status_code == 200, response.text

    stored = live_server.post(SERVICE + "/feedback", feedback_body(),
                              headers=bearer(ec_key.token(ISS, base + SERVICE + "/feedback")))
    assert stored.status_code == 200, stored.text

    # The JWK Set was fetched once and kept; the access log names the verified client for the audit trail.
    assert jwks.fetches == 1
    access = [r for r in auth_log.records if r.name == "cds_hooks.access"]
    assert [getattr(r, "client", None) for r in access] == [ISS, ISS, ISS]


def test_rs384_tokens_and_an_aud_array_are_accepted(live_server: LiveServer, rsa_key: SigningKey):
    token = rsa_key.token(ISS, ["https://other.example.org/cds-services", live_server.base_url + SERVICE])
    assert call_service(live_server.base_url, bearer(token)).status_code == 200


def test_es256_is_accepted_once_added_to_the_allowed_algorithms(settings: Settings, es256_key: SigningKey, serve_app):
    base = serve_app(settings.replace(auth_algorithms="ES384,RS384,ES256"))
    assert call_service(base, bearer(es256_key.token(ISS, base + SERVICE))).status_code == 200


def test_tokens_minted_as_the_sandbox_does_verify_with_its_published_key_set(settings: Settings, serve_app):
    sandbox = TrustedIssuer(iss=SANDBOX_ISS, jku=SANDBOX_JKU, jwks_file=DATA / "sandbox-jwks.json")
    base = serve_app(settings.replace(trusted_issuers=(sandbox,)))
    key = SigningKey(SANDBOX_KID, "ES384", serialization.load_pem_private_key(SANDBOX_PRIVATE_KEY, password=None))
    calls = [("GET", "/cds-services", None), ("POST", SERVICE, patient_view_request()),
             ("POST", SERVICE + "/feedback", feedback_body())]
    for method, path, body in calls:
        # jwt-generator.js rounds iat to the nearest second; ceil makes it up to a whole second ahead here.
        now = time.time()
        token = key.token(SANDBOX_ISS, base + path, jku=SANDBOX_JKU, iat=math.ceil(now), exp=round(now + 300))
        response = requests.request(method, base + path, json=body, headers=bearer(token), timeout=10)
        assert response.status_code == 200, (path, response.text)


# --- refused ----------------------------------------------------------------------------------------------------

def _other_key_with_trusted_kid(keys: dict[str, SigningKey], aud: str) -> str:
    impostor = SigningKey.generate("ES384", kid=keys["ec"].kid)
    return "Bearer " + impostor.token(ISS, aud)


REFUSALS: dict[str, tuple[Callable[[dict[str, SigningKey], str], str | None], str]] = {
    # name: (the Authorization header from (keys, the URL called), a fragment of the logged reason)
    "no header": (lambda keys, aud: None, "no Authorization header"),
    "not a JWT": (lambda keys, aud: "Bearer not.a.jwt", "malformed token"),
    "not a Bearer token": (lambda keys, aud: "Basic dXNlcjpwYXNz", "not a Bearer token"),
    "alg none": (
        lambda keys, aud: "Bearer " + forged({"alg": "none", "typ": "JWT", "kid": keys["ec"].kid}, aud),
        "alg 'none' is not allowed",
    ),
    "HS256 keyed with the public key PEM": (
        lambda keys, aud: "Bearer " + hmac_signed(
            keys["ec"].private_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
            keys["ec"].kid, aud),
        "alg 'HS256' is not allowed",
    ),
    "HS256 keyed with the public JWK text": (
        lambda keys, aud: "Bearer " + hmac_signed(json.dumps(keys["ec"].public_jwk()).encode(), keys["ec"].kid, aud),
        "alg 'HS256' is not allowed",
    ),
    "ES256 not allowed": (lambda keys, aud: "Bearer " + keys["es256"].token(ISS, aud), "alg 'ES256' is not allowed"),
    "missing kid": (lambda keys, aud: "Bearer " + keys["ec"].token(ISS, aud, headers={"kid": None}), "kid is missing"),
    "wrong typ": (lambda keys, aud: "Bearer " + keys["ec"].token(ISS, aud, headers={"typ": "at+jwt"}), "typ 'at+jwt' is not JWT"),
    "untrusted iss": (lambda keys, aud: "Bearer " + keys["ec"].token("https://evil.example.org", aud), "is not a trusted issuer"),
    "jku other than the configured one": (
        lambda keys, aud: "Bearer " + keys["ec"].token(ISS, aud, jku="https://evil.example.org/jwks.json"),
        "is not the one configured",
    ),
    "signed by another key under the trusted kid": (_other_key_with_trusted_kid, "InvalidSignatureError"),
    "RS384 header on the EC key's kid": (
        lambda keys, aud: "Bearer " + jwt.encode(claims_for(aud), keys["rsa"].private_key, algorithm="RS384",
                                                      headers={"kid": keys["ec"].kid}),
        "alg RS384 is not the alg 'ES384'",
    ),
    "another service's aud": (
        lambda keys, aud: "Bearer " + keys["ec"].token(ISS, aud.replace("her2-patient-view", "her2-order-sign")),
        "InvalidAudienceError",
    ),
    "expired": (
        lambda keys, aud: "Bearer " + keys["ec"].token(ISS, aud, iat=int(time.time()) - 400, exp=int(time.time()) - 60),
        "ExpiredSignatureError",
    ),
    "iat a minute ahead": (
        lambda keys, aud: "Bearer " + keys["ec"].token(ISS, aud, iat=int(time.time()) + 60, exp=int(time.time()) + 360),
        "ImmatureSignatureError",
    ),
    "exp as text": (
        lambda keys, aud: "Bearer " + keys["ec"].token(ISS, aud, exp=str(int(time.time()) + 300)),
        "exp and iat must be numbers",
    ),
    "lifetime of two days": (
        lambda keys, aud: "Bearer " + keys["ec"].token(ISS, aud, exp=int(time.time()) + 2 * 86400),
        "lifetime exceeds",
    ),
    "missing jti": (lambda keys, aud: "Bearer " + keys["ec"].token(ISS, aud, omit=("jti",)), 'missing the "jti" claim'),
    "missing exp": (lambda keys, aud: "Bearer " + keys["ec"].token(ISS, aud, omit=("exp",)), 'missing the "exp" claim'),
    "missing iat": (lambda keys, aud: "Bearer " + keys["ec"].token(ISS, aud, omit=("iat",)), 'missing the "iat" claim'),
    "missing aud": (lambda keys, aud: "Bearer " + keys["ec"].token(ISS, aud, omit=("aud",)), 'missing the "aud" claim'),
}


@pytest.mark.parametrize("case", REFUSALS, ids=list(REFUSALS))
def test_refused_with_a_generic_401_and_the_reason_logged_without_the_token(
        case: str, live_server: LiveServer, ec_key: SigningKey, rsa_key: SigningKey, es256_key: SigningKey, auth_log):
    make, reason = REFUSALS[case]
    keys = {"ec": ec_key, "rsa": rsa_key, "es256": es256_key}
    authorization = make(keys, live_server.base_url + SERVICE)
    response = call_service(live_server.base_url, {"Authorization": authorization} if authorization else None)

    assert response.status_code == 401
    assert response.json() == GENERIC_401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    failures = [r for r in auth_log.records if r.name == "cds_hooks.auth" and r.getMessage() == "authentication failed"]
    assert len(failures) == 1 and reason in failures[0].reason, failures[0].reason if failures else auth_log.text
    if authorization:
        credentials = authorization.split(" ", 1)[1]
        assert all(credentials not in line for line in json_log_lines(auth_log))
        if credentials.count(".") == 2 and credentials.rsplit(".", 1)[1]:
            assert all(credentials.rsplit(".", 1)[1] not in line for line in json_log_lines(auth_log))


def test_unknown_service_ids_are_refused_before_they_are_looked_up(live_server: LiveServer):
    response = live_server.post("/cds-services/no-such-service", patient_view_request())
    assert response.status_code == 401 and response.json() == GENERIC_401


def test_healthz_and_cors_preflight_need_no_token_and_a_401_carries_cors(live_server: LiveServer):
    assert live_server.get("/healthz").status_code == 200
    preflight = live_server.session.options(
        live_server.base_url + SERVICE, timeout=10,
        headers={"Origin": "https://sandbox.cds-hooks.org", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"},
    )
    assert preflight.status_code == 200
    assert "authorization" in preflight.headers["Access-Control-Allow-Headers"].lower()
    refused = call_service(live_server.base_url, {"Origin": "https://sandbox.cds-hooks.org"})
    # Without CORS headers on the 401 a browser client could not even tell that it was refused.
    assert refused.status_code == 401 and refused.headers["Access-Control-Allow-Origin"] == "*"


# --- keys from a jku --------------------------------------------------------------------------------------------

def test_an_unknown_kid_refetches_the_jku_once_then_a_rotated_key_is_accepted(live_server: LiveServer,
                                                                                ec_key: SigningKey, jwks: JwksServer):
    base = live_server.base_url
    assert call_service(base, bearer(ec_key.token(ISS, base + SERVICE))).status_code == 200
    assert jwks.fetches == 1

    rotated = SigningKey.generate("ES384")
    assert call_service(base, bearer(rotated.token(ISS, base + SERVICE))).status_code == 401
    assert jwks.fetches == 2, "an unknown kid refetches the JWK Set exactly once"

    jwks.keys = [*jwks.keys, rotated.public_jwk()]
    assert call_service(base, bearer(rotated.token(ISS, base + SERVICE))).status_code == 200
    assert jwks.fetches == 3


def test_forged_kids_cannot_make_the_service_hammer_the_jku(settings: Settings, ec_key: SigningKey, jwks: JwksServer,
                                                           serve_app):
    base = serve_app(settings.replace(auth_jwks_min_refresh_seconds=60))
    assert call_service(base, bearer(ec_key.token(ISS, base + SERVICE))).status_code == 200
    for _ in range(5):
        forged_kid = SigningKey.generate("ES384")
        assert call_service(base, bearer(forged_kid.token(ISS, base + SERVICE))).status_code == 401
    assert jwks.fetches == 1


def test_a_key_removed_from_the_jku_stops_working_once_the_cache_expires(settings: Settings, ec_key: SigningKey,
                                                                        jwks: JwksServer, serve_app):
    base = serve_app(settings.replace(auth_jwks_cache_seconds=0.2))
    assert call_service(base, bearer(ec_key.token(ISS, base + SERVICE))).status_code == 200
    jwks.keys = [key for key in jwks.keys if key["kid"] != ec_key.kid]
    time.sleep(0.3)
    assert call_service(base, bearer(ec_key.token(ISS, base + SERVICE))).status_code == 401
    assert jwks.fetches == 2


def test_a_key_without_alg_still_only_verifies_tokens_of_its_own_type(settings: Settings, ec_key: SigningKey,
                                                                      rsa_key: SigningKey, serve_app):
    # Without the JWK's own alg to compare, PyJWT's binding of the key to the header's alg must refuse RS384 on EC.
    bare = {name: value for name, value in ec_key.public_jwk().items() if name != "alg"}
    base = serve_app(settings.replace(trusted_issuers=(TrustedIssuer(iss=ISS, keys=(bare,)),)))
    assert call_service(base, bearer(ec_key.token(ISS, base + SERVICE))).status_code == 200
    mismatched = jwt.encode(claims_for(base + SERVICE), rsa_key.private_key, algorithm="RS384", headers={"kid": ec_key.kid})
    assert call_service(base, bearer(mismatched)).status_code == 401


# --- aud, tenant, replay ----------------------------------------------------------------------------------------

def test_behind_a_proxy_aud_is_the_public_url_not_the_internal_one(settings: Settings, ec_key: SigningKey, serve_app):
    public = "https://cds.example.org/her2"
    base = serve_app(settings.replace(public_base_url=public + "/"))
    assert call_service(base, bearer(ec_key.token(ISS, public + SERVICE))).status_code == 200
    assert call_service(base, bearer(ec_key.token(ISS, base + SERVICE))).status_code == 401


def test_tenant_must_match_when_configured(settings: Settings, ec_key: SigningKey, jwks: JwksServer, serve_app):
    issuer = TrustedIssuer(iss=ISS, jku=jwks.url, tenant="hospital-a")
    base = serve_app(settings.replace(trusted_issuers=(issuer,)))
    aud = base + SERVICE
    assert call_service(base, bearer(ec_key.token(ISS, aud, tenant="hospital-a"))).status_code == 200
    assert call_service(base, bearer(ec_key.token(ISS, aud, tenant="hospital-b"))).status_code == 401
    assert call_service(base, bearer(ec_key.token(ISS, aud))).status_code == 401


def test_a_replayed_token_is_refused(live_server: LiveServer, ec_key: SigningKey, auth_log):
    token = ec_key.token(ISS, live_server.base_url + SERVICE)
    assert call_service(live_server.base_url, bearer(token)).status_code == 200
    assert call_service(live_server.base_url, bearer(token)).status_code == 401
    assert any("replay" in getattr(r, "reason", "") for r in auth_log.records)


def test_a_token_used_on_one_worker_is_refused_by_another_sharing_the_database(settings: Settings, ec_key: SigningKey,
                                                                              serve_app):
    # Two app instances on one SQLite file stand for two gunicorn workers; both answer at one public URL.
    shared = settings.replace(public_base_url="https://cds.example.org")
    first, second = serve_app(shared), serve_app(shared)
    token = ec_key.token(ISS, "https://cds.example.org" + SERVICE)
    assert call_service(first, bearer(token)).status_code == 200
    assert call_service(second, bearer(token)).status_code == 401
    assert call_service(first, bearer(token)).status_code == 401


def test_the_replay_cache_forgets_expired_tokens(tmp_path: Path):
    cache = ReplayCache(tmp_path / "cds-hooks.sqlite3", leeway_seconds=0)
    assert cache.first_use(ISS, "old", time.time() - 1)
    assert cache.first_use(ISS, "new", time.time() + 300)
    assert not cache.first_use(ISS, "new", time.time() + 300)
    assert cache.first_use("https://other.example.org", "new", time.time() + 300), "jti is unique per issuer"
    with sqlite3.connect(tmp_path / "cds-hooks.sqlite3") as connection:
        assert set(connection.execute("SELECT iss, jti FROM auth_jti")) == {(ISS, "new"), ("https://other.example.org", "new")}


def test_gunicorn_workers_share_the_replay_cache(tmp_path: Path, ec_key: SigningKey):
    jwks_file = tmp_path / "client-jwks.json"
    jwks_file.write_text(json.dumps({"keys": [ec_key.public_jwk()]}))
    port = free_port()
    process = subprocess.Popen(
        [str(BIN / "cds-hooks"), "serve", "--port", str(port), "--workers", "2", "--threads", "1"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "CDS_HOOKS_AUTH_ISSUER": ISS, "CDS_HOOKS_AUTH_JWKS_FILE": str(jwks_file),
             "CDS_HOOKS_DATABASE_PATH": str(tmp_path / "cds-hooks.sqlite3")},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base, process)
        token = ec_key.token(ISS, base + SERVICE)
        assert call_service(base, bearer(token)).status_code == 200
        # Fresh connections, so the replays are spread over both workers.
        assert [call_service(base, bearer(token)).status_code for _ in range(6)] == [401] * 6
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=15)
    SERVICE_LOG.add_output(stderr)


# --- configuration ----------------------------------------------------------------------------------------------

def test_authentication_is_required_by_default():
    assert Settings().auth_required is True
    assert Settings.from_environment({}).auth_required is True


def test_issuers_from_the_settings_file_and_one_from_the_environment(tmp_path: Path):
    config = tmp_path / "cds-hooks.toml"
    config.write_text(f'''
public_base_url = "https://cds.example.org"
auth_algorithms = ["ES384"]

[[trusted_issuers]]
iss = "{SANDBOX_ISS}"
jku = "{SANDBOX_JKU}"

[[trusted_issuers]]
iss = "https://ehr.example.org"
tenant = "hospital-a"
keys = [{{ kty = "EC", crv = "P-384", kid = "k1", x = "x", y = "y" }}]
''')
    settings = Settings.from_environment({
        "CDS_HOOKS_CONFIG": str(config), "CDS_HOOKS_AUTH_ISSUER": ISS,
        "CDS_HOOKS_AUTH_JKU": "https://ehr.example.org/jwks.json", "CDS_HOOKS_AUTH_TENANT": "t1",
    })
    assert [(i.iss, i.jku, i.tenant) for i in settings.trusted_issuers] == [
        (SANDBOX_ISS, SANDBOX_JKU, ""), ("https://ehr.example.org", "", "hospital-a"),
        (ISS, "https://ehr.example.org/jwks.json", "t1"),
    ]
    assert settings.trusted_issuers[1].keys[0]["kid"] == "k1"
    assert settings.auth_algorithms == ("ES384",)


@pytest.mark.parametrize("environment, message", [
    ({"CDS_HOOKS_AUTH_ALGORITHMS": "ES384,HS256"}, "HS256 is not allowed"),
    ({"CDS_HOOKS_AUTH_ALGORITHMS": "none"}, "none is not allowed"),
    ({"CDS_HOOKS_AUTH_REQUIRED": "ture"}, "is not true or false"),
    ({"CDS_HOOKS_AUTH_ISSUER": ISS, "CDS_HOOKS_AUTH_JKU": "http://ehr.example.org/jwks.json"}, "jku must be an https URL"),
    ({"CDS_HOOKS_AUTH_ISSUER": ISS}, "give jku, jwks_file or keys"),
    ({"CDS_HOOKS_AUTH_JKU": "https://ehr.example.org/jwks.json"}, "needs iss"),
    ({"CDS_HOOKS_TRUSTED_ISSUERS": ISS}, "[[trusted_issuers]]"),
    ({"CDS_HOOKS_PUBLIC_BASE_URL": "cds.example.org"}, "public_base_url must be an http(s) URL"),
])
def test_unsafe_or_malformed_auth_settings_are_refused(environment: dict[str, str], message: str):
    with pytest.raises(SettingsError, match=re.escape(message)):
        Settings.from_environment(environment)


def test_a_jwks_file_without_usable_keys_stops_the_app(settings: Settings, tmp_path: Path):
    empty = tmp_path / "empty-jwks.json"
    empty.write_text('{"keys": [{"kty": "oct", "kid": "shared", "k": "c2VjcmV0"}]}')
    with pytest.raises(AuthConfigurationError, match="no usable public signing key"):
        create_app(settings.replace(trusted_issuers=(TrustedIssuer(iss=ISS, jwks_file=empty),)))


def serve_command(tmp_path: Path, *arguments: str, **environment: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CDS_HOOKS_")}
    return subprocess.run([str(BIN / "cds-hooks"), "serve", "--port", str(free_port()), *arguments], cwd=tmp_path,
                          env={**clean, **environment}, capture_output=True, text=True, timeout=60)


def test_serve_refuses_auth_on_without_a_trusted_issuer(tmp_path: Path):
    result = serve_command(tmp_path)
    assert result.returncode == 2
    assert "no trusted issuer is configured" in result.stderr and "CDS_HOOKS_AUTH_REQUIRED=false" in result.stderr


def test_serve_refuses_auth_off_on_a_non_loopback_host_unless_told_twice(tmp_path: Path):
    result = serve_command(tmp_path, "--host", "0.0.0.0", CDS_HOOKS_AUTH_REQUIRED="false")
    assert result.returncode == 2 and "--allow-unauthenticated-non-loopback" in result.stderr
    # Told twice (setting and flag), it is allowed; checked without binding every interface from a test.
    check_serving_configuration(Settings(auth_required=False), "0.0.0.0", allow_unauthenticated_non_loopback=True)
    check_serving_configuration(Settings(auth_required=False), "127.0.0.1", allow_unauthenticated_non_loopback=False)
    check_serving_configuration(Settings(auth_required=False), "::1", allow_unauthenticated_non_loopback=False)


def test_serve_refuses_a_non_loopback_host_without_public_base_url(tmp_path: Path):
    result = serve_command(tmp_path, "--host", "0.0.0.0", CDS_HOOKS_AUTH_ISSUER=SANDBOX_ISS,
                           CDS_HOOKS_AUTH_JKU=SANDBOX_JKU)
    assert result.returncode == 2 and "public_base_url is not set" in result.stderr


def test_serve_refuses_an_unreadable_jwks_file(tmp_path: Path):
    result = serve_command(tmp_path, CDS_HOOKS_AUTH_ISSUER=ISS, CDS_HOOKS_AUTH_JWKS_FILE=str(tmp_path / "missing.json"))
    assert result.returncode == 2 and "cannot read jwks_file" in result.stderr
