"""Prefetch fallback through the running service: a real FHIR endpoint that pages, is down, is slow or fails."""
from __future__ import annotations

import logging
import time

import pytest

from cds_hooks.cases import load_case
from cds_hooks.settings import Settings

from .conftest import FIXTURES, LiveServer
from .fhir_server import FhirTestServer, unreachable_base_url

BUDGET = 0.5
CASE = load_case(FIXTURES / "cases" / "anthracycline-trastuzumab-draft-while-doxorubicin-active.json")
TOKEN = "secret-access-token-3f9a"


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(database_path=tmp_path / "db.sqlite3", prefetch_budget_seconds=BUDGET, auth_required=False)


def request_to(fhir_base: str) -> dict:
    request = CASE.request_for("none", fhir_base)
    request["fhirAuthorization"] = {"access_token": TOKEN, "token_type": "Bearer", "expires_in": 300,
                                    "scope": "patient/*.read", "subject": "her2-cds"}
    return request


def timed_post(live_server: LiveServer, request: dict):
    started = time.monotonic()
    response = live_server.post(f"/cds-services/{CASE.service_id}", request)
    return response, time.monotonic() - started


def test_missing_prefetch_is_fetched_page_by_page_with_the_token(live_server: LiveServer, caplog):
    caplog.set_level(logging.DEBUG)
    with FhirTestServer(resources=CASE.store.resources, page_size=1) as fhir:
        response, _ = timed_post(live_server, request_to(fhir.base_url))
        recorded = list(fhir.requests)
    assert response.status_code == 200
    assert "anthracycline-with-trastuzumab" in [c["source"]["topic"]["code"] for c in response.json()["cards"]]
    assert any("_page=" in r.path for r in recorded), "paging links were not followed"
    assert all(r.headers["Authorization"] == f"Bearer {TOKEN}" for r in recorded)
    assert TOKEN not in caplog.text and "Fixture-Doxorubicin" not in caplog.text


def test_fhir_server_down_is_412_quickly(live_server: LiveServer):
    response, elapsed = timed_post(live_server, request_to(unreachable_base_url()))
    assert response.status_code == 412
    body = response.json()
    assert body["error"] == "prefetch-unavailable"
    assert {d["reason"] for d in body["details"]} == {"connection refused"}
    assert elapsed < BUDGET + 0.5
    assert TOKEN not in response.text


def test_fhir_server_slower_than_the_budget_is_412_within_the_budget(live_server: LiveServer):
    with FhirTestServer(resources=CASE.store.resources, delay_seconds=3) as fhir:
        response, elapsed = timed_post(live_server, request_to(fhir.base_url))
    assert response.status_code == 412
    assert "timed out" in response.json()["details"][0]["reason"]
    assert BUDGET - 0.05 < elapsed < BUDGET + 0.5


def test_fhir_server_error_is_412_naming_the_status(live_server: LiveServer):
    with FhirTestServer(resources=CASE.store.resources, status=500) as fhir:
        response, _ = timed_post(live_server, request_to(fhir.base_url))
    assert response.status_code == 412
    assert "FHIR server answered 500" in {d["reason"] for d in response.json()["details"]}


def test_partial_prefetch_only_fetches_what_is_missing(live_server: LiveServer):
    request = CASE.request_for("full")
    missing = request["prefetch"].pop("lvef")
    with FhirTestServer(resources=CASE.store.resources) as fhir:
        request["fhirServer"] = fhir.base_url
        response, _ = timed_post(live_server, request)
        paths = [r.path for r in fhir.requests]
    assert response.status_code == 200 and missing is not None
    assert len(paths) == 1 and paths[0].startswith("/fhir/Observation?")
