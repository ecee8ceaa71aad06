"""Every fixture case in fixtures/cases, over real HTTP: once with full prefetch, once fetched from a FHIR server."""
from __future__ import annotations

import pytest

from cds_hooks.cases import CASE_KINDS, check_response, load_cases
from cds_hooks.rules import REGISTRY

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


@pytest.mark.parametrize("rule", REGISTRY, ids=[rule.id for rule in REGISTRY])
def test_every_rule_has_a_firing_a_near_miss_and_a_missing_data_case(rule):
    kinds = {case.kind for case in CASES if case.rule == rule.id}
    assert kinds >= set(CASE_KINDS), f"{rule.id} lacks cases of kind {set(CASE_KINDS) - kinds}"


def test_cases_name_registered_rules_and_their_cards():
    rules = {rule.id: rule for rule in REGISTRY}
    for case in CASES:
        if case.rule is None:
            continue
        assert case.rule in rules, f"{case.name} names unknown rule {case.rule}"
        named = {e["card"] for e in case.expect.cards} | set(case.expect.absent)
        assert named & set(rules[case.rule].cards), f"{case.name} expects none of {case.rule}'s cards"
