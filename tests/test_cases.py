"""Every fixture case in fixtures/cases, over real HTTP: once with full prefetch, once fetched from a FHIR server."""
from __future__ import annotations

import pytest

from cds_hooks.cases import check_response, load_cases

from .conftest import FIXTURES, LiveServer
from .fhir_server import FhirTestServer

CASES = load_cases([FIXTURES / "cases"])


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_case_with_full_prefetch(live_server: LiveServer, case):
    response = live_server.post(f"/cds-services/{case.service_id}", case.request_for("full"))
    assert check_response(case, response.status_code, response.json()) == []


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_case_fetched_from_fhir_server(live_server: LiveServer, case):
    with FhirTestServer(resources=case.store.resources, page_size=5) as fhir:
        response = live_server.post(f"/cds-services/{case.service_id}", case.request_for("none", fhir.base_url))
        assert fhir.requests, "the service should have fetched the missing prefetch"
    assert check_response(case, response.status_code, response.json()) == []


def test_cases_cover_fire_and_near_miss_for_anthracycline_rule():
    card = "anthracycline-with-trastuzumab"
    fire = [c for c in CASES if any(e["card"] == card for e in c.expect.cards)]
    near_miss = [c for c in CASES if card in c.expect.absent]
    assert len(fire) >= 3 and len(near_miss) >= 2
