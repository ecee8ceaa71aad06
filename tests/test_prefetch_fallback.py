"""Prefetch fallback through the running service: a real FHIR endpoint that pages, is down, is slow or fails, and
FHIR servers the service must not call or send the token to. Every failure is a 412 within the time budget."""
from __future__ import annotations

import ipaddress
import logging
import ssl
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cds_hooks.cases import Case, card_id, load_case
from cds_hooks.prefetch import FHIR_SERVER_NOT_ALLOWED
from cds_hooks.services import PREFETCH
from cds_hooks.settings import Settings

from .conftest import FIXTURES, LiveServer, secret_token
from .fhir_server import FhirTestServer, unreachable_base_url

BUDGET = 0.5
# A failure must be answered by the end of the budget, with this much room for the rest of the call.
WITHIN_BUDGET = BUDGET + 0.5
RESPONSE_CAP = 100_000
CASE = load_case(FIXTURES / "cases" / "anthracycline-trastuzumab-draft-while-doxorubicin-active.json")
TOKEN = secret_token("secret-access-token-3f9a")


# A test whose answer must come back whole runs with a budget no loaded machine misses (11 fetches in 0.5 s timed
# out while the suite shared two cores with other work); failures keep the short budget they must be answered in.
WHOLE_ANSWER = pytest.mark.prefetch_budget(10.0)


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    marker = request.node.get_closest_marker("prefetch_budget")
    budget = marker.args[0] if marker else BUDGET
    return settings.replace(prefetch_budget_seconds=budget, prefetch_max_response_bytes=RESPONSE_CAP)


def request_to(fhir_base: str) -> dict:
    request = CASE.request_for("none", fhir_base)
    request["fhirAuthorization"] = {"access_token": TOKEN, "token_type": "Bearer", "expires_in": 300,
                                    "scope": "patient/*.read", "subject": "her2-cds"}
    return request


def post_to(base_url: str, request: dict) -> requests.Response:
    return requests.post(f"{base_url}/cds-services/{CASE.service_id}", json=request, timeout=10)


def timed_post(base_url: str, request: dict) -> tuple[requests.Response, float]:
    started = time.monotonic()
    response = post_to(base_url, request)
    return response, time.monotonic() - started


def reasons(response: requests.Response) -> set[str]:
    assert response.status_code == 412, response.text
    body = response.json()
    assert body["error"] == "prefetch-unavailable"
    return {detail["reason"] for detail in body["details"]}


@WHOLE_ANSWER
def test_missing_prefetch_is_fetched_page_by_page_with_the_token(live_server: LiveServer, caplog):
    caplog.set_level(logging.DEBUG)
    with FhirTestServer(resources=CASE.store.resources, page_size=1) as fhir:
        response, _ = timed_post(live_server.base_url, request_to(fhir.base_url))
        recorded = list(fhir.requests)
    assert response.status_code == 200
    assert "anthracycline-with-trastuzumab" in [card_id(c) for c in response.json()["cards"]]
    assert any("_page=" in r.path for r in recorded), "paging links were not followed"
    assert all(r.headers["Authorization"] == f"Bearer {TOKEN}" for r in recorded)
    assert TOKEN not in caplog.text and "Fixture-Doxorubicin" not in caplog.text


@WHOLE_ANSWER
@pytest.mark.parametrize("with_token", [True, False], ids=["ehr-token", "no-token"])
def test_netrc_credentials_never_replace_the_ehr_token_nor_stand_in_for_it(live_server: LiveServer, tmp_path, monkeypatch, with_token):
    # requests reads ~/.netrc (or $NETRC) for a call given no auth of its own, and its credentials replace an
    # Authorization header: the FHIR server must get the EHR's token, and no credentials when the EHR gave none.
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1\nlogin operator\npassword operator-secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    with FhirTestServer(resources=CASE.store.resources) as fhir, requests.Session() as client:
        client.trust_env = False  # the test's own call to the service carries no netrc credentials either
        request = request_to(fhir.base_url)
        if not with_token:
            del request["fhirAuthorization"]
        response = client.post(f"{live_server.base_url}/cds-services/{CASE.service_id}", json=request, timeout=10)
        recorded = list(fhir.requests)
    assert response.status_code == 200, response.text
    assert recorded
    expected = f"Bearer {TOKEN}" if with_token else None
    assert [r.headers.get("Authorization") for r in recorded] == [expected] * len(recorded)


@WHOLE_ANSWER
@pytest.mark.parametrize("no_proxy", ["", "127.0.0.1"], ids=["through-the-proxy", "no-proxy-bypasses-it"])
def test_the_environments_proxy_settings_apply_to_fhir_calls(live_server: LiveServer, monkeypatch, no_proxy):
    # The service reads the environment once per FHIR server rather than on every call (requests' trust_env is
    # off); HTTP_PROXY and NO_PROXY must still mean what they mean to requests. The "proxy" is a second FHIR test
    # server: it answers the absolute URLs a client sends a proxy from the same resources.
    for name in ("HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    with FhirTestServer(resources=CASE.store.resources) as fhir, FhirTestServer(resources=CASE.store.resources) as proxy, \
            requests.Session() as client:
        monkeypatch.setenv("HTTP_PROXY", proxy.base_url.removesuffix("/fhir"))
        monkeypatch.setenv("NO_PROXY", no_proxy)
        client.trust_env = False  # the test's own call goes straight to the service
        response = client.post(f"{live_server.base_url}/cds-services/{CASE.service_id}", json=request_to(fhir.base_url), timeout=10)
        direct, proxied, fhir_base = list(fhir.requests), list(proxy.requests), fhir.base_url
    assert response.status_code == 200, response.text
    if no_proxy:
        assert direct and not proxied
    else:
        assert proxied and not direct
        assert all(r.path.startswith(fhir_base + "/") for r in proxied)
        assert all(r.headers["Authorization"] == f"Bearer {TOKEN}" for r in proxied)


def test_fhir_server_down_is_412_quickly(live_server: LiveServer):
    response, elapsed = timed_post(live_server.base_url, request_to(unreachable_base_url()))
    assert reasons(response) == {"connection refused"}
    assert elapsed < WITHIN_BUDGET
    assert TOKEN not in response.text


def test_fhir_server_slower_than_the_budget_is_412_within_the_budget(live_server: LiveServer):
    with FhirTestServer(resources=CASE.store.resources, delay_seconds=3) as fhir:
        response, elapsed = timed_post(live_server.base_url, request_to(fhir.base_url))
    assert reasons(response) == {f"timed out after the {BUDGET} s prefetch budget"}
    assert BUDGET - 0.05 < elapsed < WITHIN_BUDGET


@pytest.mark.parametrize(
    "fault, reason",
    [
        ({"status": 500}, "FHIR server answered 500"),
        ({"non_json": True}, "response is not JSON"),
        ({"huge_bytes": 20 * RESPONSE_CAP}, f"response is larger than {RESPONSE_CAP} bytes"),
        ({"looping_next": True}, "a next link repeats a page already fetched"),
    ],
    ids=["500", "not JSON", "huge bundle", "looping next links"],
)
def test_fhir_server_fault_is_412_naming_it_within_the_budget(live_server: LiveServer, fault, reason):
    with FhirTestServer(resources=CASE.store.resources, **fault) as fhir:
        response, elapsed = timed_post(live_server.base_url, request_to(fhir.base_url))
    assert reason in reasons(response)
    assert elapsed < WITHIN_BUDGET


@WHOLE_ANSWER
def test_partial_prefetch_only_fetches_what_is_missing(live_server: LiveServer):
    request = CASE.request_for("full")
    missing = request["prefetch"].pop("lvef")
    with FhirTestServer(resources=CASE.store.resources) as fhir:
        request["fhirServer"] = fhir.base_url
        response, _ = timed_post(live_server.base_url, request)
        paths = [r.path for r in fhir.requests]
    assert response.status_code == 200 and missing is not None
    assert len(paths) == 1 and paths[0].startswith("/fhir/Observation?")


# --- what json.loads does not read in a fetched answer ------------------------------------------------------------

TRASTUZUMAB = load_case(FIXTURES / "cases" / "sequencing-trastuzumab-19th-cycle-at-week-54.json")
TDM1 = load_case(FIXTURES / "cases" / "haematologic-tdm1-platelets-50000.json")
# A platelet count the labs query finds, its value this marker, which the FHIR test server replaces in its answers.
MARKER = b"987654.25"


def with_platelet_count(case: Case) -> list[dict]:
    lab = {
        "resourceType": "Observation", "id": "lab-replaced", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "777-3"}]},
        "subject": {"reference": f"Patient/{case.store.patient_id()}"},
        "effectiveDateTime": "2020-01-01", "valueQuantity": {"value": float(MARKER), "unit": "10*3/uL"},
    }
    return [*case.store.resources, lab]


def labs_answer(fhir: FhirTestServer, case: Case) -> bytes:
    query = PREFETCH["labs"].replace("{{context.patientId}}", case.store.patient_id())
    return requests.get(f"{fhir.base_url}/{query}", timeout=5).content


def summaries(response: requests.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [card["summary"] for card in response.json()["cards"]]


@WHOLE_ANSWER
def test_a_fetched_integer_json_loads_will_not_convert_in_a_key_no_check_reads_does_not_stop_the_call(live_server: LiveServer):
    # Trastuzumab's checks do not read the labs (services.py): the call is answered as without that Observation.
    digits = b"9" * 5000
    with FhirTestServer(resources=TRASTUZUMAB.store.resources) as fhir:
        expected = live_server.post(f"/cds-services/{TRASTUZUMAB.service_id}", TRASTUZUMAB.request_for("none", fhir.base_url))
    with FhirTestServer(resources=with_platelet_count(TRASTUZUMAB), replace_in_body=(MARKER, digits)) as fhir:
        assert digits in labs_answer(fhir, TRASTUZUMAB)
        response = live_server.post(f"/cds-services/{TRASTUZUMAB.service_id}", TRASTUZUMAB.request_for("none", fhir.base_url))
    assert summaries(response) == summaries(expected) != []


@WHOLE_ANSWER
def test_a_fetched_integer_json_loads_will_not_convert_in_a_key_a_check_reads_is_412_naming_the_key(live_server: LiveServer):
    # T-DM1's checks read the platelets as a rule runs: the 412 is not taken for a rule that failed.
    with FhirTestServer(resources=with_platelet_count(TDM1), replace_in_body=(MARKER, b"9" * 5000)) as fhir:
        response = live_server.post(f"/cds-services/{TDM1.service_id}", TDM1.request_for("none", fhir.base_url))
    assert response.status_code == 412
    assert response.json() == {"error": "prefetch-unavailable", "message": "required prefetch data is unavailable: labs",
                               "details": [{"key": "labs", "reason": "response is not JSON"}]}


@WHOLE_ANSWER
def test_a_fetched_answer_that_is_not_utf8_is_412_even_in_a_key_no_check_reads(live_server: LiveServer):
    with FhirTestServer(resources=with_platelet_count(TRASTUZUMAB), replace_in_body=(MARKER, b'"\xff"')) as fhir:
        assert b'"\xff"' in labs_answer(fhir, TRASTUZUMAB)
        response = live_server.post(f"/cds-services/{TRASTUZUMAB.service_id}", TRASTUZUMAB.request_for("none", fhir.base_url))
    assert reasons(response) == {"response is not JSON"}
    assert [detail["key"] for detail in response.json()["details"]] == ["labs"]


# --- where the token may go -------------------------------------------------------------------------------------


# Every key must get its 307 (twelve fetches): a whole answer.
@WHOLE_ANSWER
def test_a_redirect_is_not_followed_so_another_server_never_gets_the_token(live_server: LiveServer):
    with FhirTestServer(resources=CASE.store.resources) as elsewhere:
        with FhirTestServer(redirect_to=elsewhere.base_url) as fhir:
            response, elapsed = timed_post(live_server.base_url, request_to(fhir.base_url))
            assert fhir.requests and all(r.headers["Authorization"] == f"Bearer {TOKEN}" for r in fhir.requests)
        assert elsewhere.requests == []
    assert reasons(response) == {"FHIR server answered 307 (redirects are not followed)"}
    assert elapsed < WITHIN_BUDGET


def test_a_next_link_to_another_server_is_not_followed(live_server: LiveServer):
    with FhirTestServer(resources=CASE.store.resources) as elsewhere:
        with FhirTestServer(resources=CASE.store.resources, page_size=1, link_base=elsewhere.base_url) as fhir:
            response, _ = timed_post(live_server.base_url, request_to(fhir.base_url))
        assert elsewhere.requests == []
    assert "a next link points outside fhirServer" in reasons(response)


def test_a_next_link_naming_the_same_server_by_another_host_name_is_not_followed(live_server: LiveServer):
    # localhost and 127.0.0.1 reach the same socket, but the token was given for the fhirServer as named.
    with FhirTestServer(resources=CASE.store.resources, page_size=1) as fhir:
        fhir.link_base = fhir.base_url.replace("127.0.0.1", "localhost")
        response, _ = timed_post(live_server.base_url, request_to(fhir.base_url))
        assert not any("_page=" in r.path for r in fhir.requests)
    assert "a next link points outside fhirServer" in reasons(response)


# --- which FHIR servers may be called ---------------------------------------------------------------------------


def test_a_fhir_server_that_is_not_allowed_is_412_and_never_called(settings: Settings, serve_app, caplog):
    base_url = serve_app(settings.replace(development_mode=False))
    with FhirTestServer(resources=CASE.store.resources) as fhir:
        response = post_to(base_url, request_to(fhir.base_url))
        assert fhir.requests == []
    assert reasons(response) == {FHIR_SERVER_NOT_ALLOWED}
    assert TOKEN not in caplog.text


@WHOLE_ANSWER
def test_a_listed_fhir_server_is_called_without_development_mode(settings: Settings, serve_app):
    with FhirTestServer(resources=CASE.store.resources) as fhir:
        base_url = serve_app(settings.replace(development_mode=False, allowed_fhir_servers=(fhir.base_url,)))
        response = post_to(base_url, request_to(fhir.base_url))
        assert fhir.requests
    assert response.status_code == 200
    assert "anthracycline-with-trastuzumab" in [card_id(c) for c in response.json()["cards"]]


@WHOLE_ANSWER
def test_complete_prefetch_is_answered_whatever_the_fhir_server(settings: Settings, serve_app):
    base_url = serve_app(settings.replace(development_mode=False))
    response = post_to(base_url, CASE.request_for("full", "https://ehr.example.org/fhir"))
    assert response.status_code == 200
    assert "anthracycline-with-trastuzumab" in [card_id(c) for c in response.json()["cards"]]


# --- how many resources one call may bring ----------------------------------------------------------------------


def test_a_request_with_more_resources_than_allowed_is_413(settings: Settings, serve_app):
    response = post_to(serve_app(settings.replace(max_resources_per_request=5)), CASE.request_for("full"))
    assert response.status_code == 413
    assert response.json()["error"] == "too-many-resources"
    assert "at most 5 are read per call" in response.json()["message"]


def test_fetched_data_beyond_the_resource_count_is_412(settings: Settings, serve_app):
    base_url = serve_app(settings.replace(max_resources_per_request=3))
    with FhirTestServer(resources=CASE.store.resources, page_size=1) as fhir:
        response, elapsed = timed_post(base_url, request_to(fhir.base_url))
    assert "this call's FHIR data is more than 3 resources" in reasons(response)
    assert elapsed < WITHIN_BUDGET


# --- HTTPS: requests' certificate checks, CA bundle from the environment --------------------------------------------

@pytest.fixture(scope="module")
def loopback_certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fhir test server")])
    now = datetime.now(timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    return folder / "cert.pem", folder / "key.pem"


@WHOLE_ANSWER
@pytest.mark.parametrize("trusted", [True, False], ids=["ca-bundle-from-the-environment", "untrusted-certificate"])
def test_an_https_fhir_server_is_called_only_when_its_certificate_is_trusted(live_server: LiveServer, monkeypatch,
                                                                            loopback_certificate, trusted):
    # The service sends its GETs through requests' connection pools and TLS set-up; REQUESTS_CA_BUNDLE must still
    # mean what it means to requests, and a certificate nobody trusts must never get the token.
    certificate, key = loopback_certificate
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    if trusted:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificate))
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(certificate, key)
    with FhirTestServer(resources=CASE.store.resources, tls=tls) as fhir:
        assert fhir.base_url.startswith("https://127.0.0.1:")
        response = post_to(live_server.base_url, request_to(fhir.base_url))
        served = list(fhir.requests)
    if trusted:
        assert response.status_code == 200, response.text
        assert [card_id(card) for card in response.json()["cards"]][0] == "anthracycline-with-trastuzumab"
        assert served and all(r.headers["Authorization"] == f"Bearer {TOKEN}" for r in served)
    else:
        assert reasons(response) == {"connection to the FHIR server failed"}
        assert not served
