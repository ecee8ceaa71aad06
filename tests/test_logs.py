"""The service's logs carry no patient data and no tokens. tests/conftest.py captures every line the service logs
during the whole run and fails the run if one names a fixture patient or a test token; this proves the capture works."""
from __future__ import annotations

import logging
import uuid

from cds_hooks.cases import load_case

from .conftest import FIXTURES, SERVICE_LOG, LiveServer, fixture_patient_names, leaks_in, secret_token
from .fhir_server import FhirTestServer

CASE = load_case(FIXTURES / "cases" / "anthracycline-trastuzumab-draft-while-doxorubicin-active.json")
TOKEN = secret_token("log-check-access-token-7c41")


def test_the_capture_sees_what_the_service_logs_for_a_call(live_server: LiveServer):
    request = CASE.request_for("none")
    with FhirTestServer(resources=CASE.store.resources, page_size=2) as fhir:
        request["fhirServer"] = fhir.base_url
        request["fhirAuthorization"] = {"access_token": TOKEN, "token_type": "Bearer"}
        response = live_server.post(f"/cds-services/{CASE.service_id}", request)
    assert response.status_code == 200
    request_id = response.headers["X-Request-Id"]
    # The access log line (INFO) and the prefetch lines (DEBUG) of this very call.
    assert any(request_id in line and '"logger": "cds_hooks.access"' in line for line in SERVICE_LOG.lines)
    assert any('"message": "prefetch key fetched"' in line for line in SERVICE_LOG.lines)
    # The patient was named in the FHIR data the service read, so a careless log line would have had it.
    assert "Fixture-Doxorubicin" in fixture_patient_names() and "Fixture-Doxorubicin" in str(CASE.store.resources)


def test_a_patient_name_or_token_in_a_service_log_line_would_fail_the_run():
    marker = f"planted-{uuid.uuid4()}"
    logging.getLogger("cds_hooks.prefetch").debug(
        "planted leak", extra={"marker": marker, "patient": "Nora Fixture-Doxorubicin", "header": f"Bearer {TOKEN}"}
    )
    planted = SERVICE_LOG.withdraw(marker)
    assert len(planted) == 1, "a DEBUG line from a cds_hooks logger did not reach the capture"
    found = leaks_in(planted)
    assert [leak.split(" in ")[0] for leak in found] == [
        "patient name 'Nora'", "patient name 'Fixture-Doxorubicin'", "token log-check-ac..."
    ]


def test_names_match_as_whole_words():
    assert leaks_in(['{"message": "Anaphylaxis risk", "card": "Adaptive"}']) == []
    assert leaks_in(['{"message": "seen Ana today"}'])
