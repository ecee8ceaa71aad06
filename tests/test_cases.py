"""Every fixture case in fixtures/cases, over real HTTP: once with full prefetch, once fetched from a FHIR server; and
the whole folder through `cds-hooks test`, as a hospital runs its own cases."""
from __future__ import annotations

import json
import shutil
from datetime import date, timedelta
import xml.etree.ElementTree as ElementTree

import pytest

from cds_hooks.cases import CASE_KINDS, CaseError, check_response, load_case, load_cases
from cds_hooks.engine import Engine
from cds_hooks.memory_fhir import searchset
from cds_hooks.protocol.request import parse_hook_request
from cds_hooks.rules import REGISTRY
from cds_hooks.scope import concerns_checks
from cds_hooks.services import OBSERVATION_KEYS
from cds_hooks.settings import Settings

from .conftest import FIXTURES, SERVICE_LOG, LiveServer
from .fhir_server import FhirTestServer
from .test_case_runner import PATIENT
from .test_cli import REQUEST, run_cli

CASES = load_cases([FIXTURES / "cases"])


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_case_with_full_prefetch(live_server: LiveServer, case):
    response = live_server.post(f"/cds-services/{case.service_id}", case.request_for("full"))
    assert check_response(case, response.status_code, response.json()) == []


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_case_fetched_from_fhir_server(live_server: LiveServer, case):
    with FhirTestServer(resources=case.store.resources, page_size=5) as fhir:
        request = case.request_for("none", fhir.base_url)
        response = live_server.post(f"/cds-services/{case.service_id}", request)
        if concerns_checks(parse_hook_request(request, request["hook"])):
            assert fhir.requests, "the service should have fetched the missing prefetch"
        else:
            assert not fhir.requests, "an order no check reads needs no record (scope.py)"
    assert check_response(case, response.status_code, response.json()) == []


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> Engine:
    return Engine(Settings(database_path=tmp_path_factory.mktemp("db") / "service.sqlite3", auth_required=False))


PREFETCHED_CASES = [case for case in CASES if case.store is not None and "prefetch" not in case.request]


@pytest.mark.parametrize("case", PREFETCHED_CASES, ids=[case.name for case in PREFETCHED_CASES])
def test_case_from_a_server_that_ignores_the_code_parameter(engine: Engine, case):
    # Each value set is read from the key that asked for its codes (record.build_record); a server that ignores
    # `code` puts every Observation under each of those keys, and the cards must be the same.
    request = case.request_for("full")
    observations = [r for r in case.store.resources if r.get("resourceType") == "Observation"]
    for key in OBSERVATION_KEYS:
        request["prefetch"][key] = searchset([dict(r) for r in observations], [])
    assert check_response(case, 200, engine.evaluate(case.service_id, request).body) == []


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


def test_the_fixture_suite_passes_through_cds_hooks_test(tmp_path):
    result = run_cli("test", str(FIXTURES / "cases"), "--junit", str(tmp_path / "junit" / "cases.xml"), cwd=tmp_path)
    SERVICE_LOG.add_output(result.stderr)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.splitlines()[-1] == f"{len(CASES)} passed, 0 failed"
    suite = ElementTree.parse(tmp_path / "junit" / "cases.xml").getroot()
    assert (suite.get("tests"), suite.get("failures")) == (str(len(CASES)), "0")
    assert {case.get("name") for case in suite.iter("testcase")} == {case.name for case in CASES}




def test_a_case_written_for_an_earlier_day_moves_its_dates_forward(tmp_path):
    written_on = date.today() - timedelta(days=100)
    patient = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Patient", "id": "p", "birthDate": "1987-05-02"}},
        {"resource": {"resourceType": "MedicationAdministration", "id": "a", "status": "completed",
                      "subject": {"reference": "Patient/p"}, "effectivePeriod": {"start": "2026-10-26T09:30:00+01:00"},
                      "note": [{"text": "2026-10-26 in a note is text"}], "medicationCodeableConcept": {"text": "2026"}}},
    ]}
    draft = {"resourceType": "MedicationRequest", "id": "d", "status": "draft", "intent": "order", "subject": {"reference": "Patient/p"},
             "authoredOn": "2026-11-22", "medicationCodeableConcept": {"text": "trastuzumab"}}
    (tmp_path / "patient.json").write_text(json.dumps(patient))
    (tmp_path / "case.json").write_text(json.dumps({
        "hook": "order-select", "patient": "patient.json", "written_on": written_on.isoformat(), "draftOrders": [draft],
        "expect": {"absent": ["x"]},
    }))
    case = load_case(tmp_path / "case.json")
    stored = {resource["id"]: resource for resource in case.store.resources}
    assert stored["p"]["birthDate"] == "1987-08-10"
    assert stored["a"]["effectivePeriod"]["start"] == "2027-02-03T09:30:00+01:00"
    assert stored["a"]["note"][0]["text"] == "2026-10-26 in a note is text"
    assert stored["a"]["medicationCodeableConcept"]["text"] == "2026"
    assert case.request["context"]["draftOrders"]["entry"][0]["resource"]["authoredOn"] == "2027-03-02"


def test_a_case_can_be_a_whole_request_read_from_a_file(tmp_path):
    shutil.copy(REQUEST, tmp_path / REQUEST.name)
    (tmp_path / "case.json").write_text(json.dumps({"request": REQUEST.name, "expect": {"absent": ["x"]}}))
    case = load_case(tmp_path / "case.json")
    assert case.service_id == "her2-order-sign" and case.store is None
    assert case.request_for("full") == json.loads(REQUEST.read_text())


BROKEN_CASES = {
    "not JSON": ("{not json", "Expecting property name"),
    "not an object": ([], "a case is an object with an 'expect' object"),
    "bad written_on": ({"hook": "patient-view", "patient": "p.json", "written_on": "22/11/2026", "expect": {"empty": True}},
                       "written_on is a date such as 2026-11-22"),
    "no expectation": ({"hook": "patient-view", "patient": "p.json", "expect": {}}, "it would always pass"),
    "unknown expectation": ({"hook": "patient-view", "patient": "p.json", "expect": {"cards": [], "present": ["x"]}},
                            "expect knows only cards, absent and empty, not present"),
    "unknown indicator": ({"hook": "patient-view", "patient": "p.json", "expect": {"cards": [{"card": "x", "indicator": "urgent"}]}},
                          "expect.cards is a list"),
    "absent not a list": ({"hook": "patient-view", "patient": "p.json", "expect": {"absent": "x"}}, "expect.absent is a list"),
    "empty and cards": ({"hook": "patient-view", "patient": "p.json", "expect": {"empty": True, "cards": [{"card": "x"}]}},
                        "contradicts"),
    "patient not a path": ({"hook": "patient-view", "patient": {"resourceType": "Bundle"}, "expect": {"empty": True}},
                           "'patient' must be a string"),
    "missing patient": ({"hook": "patient-view", "patient": "nowhere.json", "expect": {"empty": True}}, "cannot read"),
    "patient not a Bundle": ({"hook": "patient-view", "patient": "not-a-bundle.json", "expect": {"empty": True}},
                             "is not a FHIR Bundle"),
    "drafts without ids": ({"hook": "order-sign", "patient": "p.json", "draftOrders": [{"resourceType": "MedicationRequest"}],
                            "expect": {"empty": True}}, "draftOrders is a list of FHIR resources"),
    "selections not references": ({"hook": "order-select", "patient": "p.json", "draftOrders": [], "selections": [1],
                                   "expect": {"empty": True}}, "selections is a list of references"),
    "request not an object": ({"request": ["hook"], "expect": {"empty": True}}, "'request' is a CDS Hooks request object"),
    "request the service refuses": ({"request": {"hook": "patient-view", "context": {"userId": "Practitioner/1", "patientId": "1"}},
                                     "expect": {"empty": True}}, "hookInstance is required"),
    "unknown hook": ({"hook": "encounter-start", "patient": "p.json", "expect": {"empty": True}}, "no service for hook"),
    "unknown kind": ({"hook": "patient-view", "patient": "p.json", "kind": "maybe", "expect": {"empty": True}}, "kind must be"),
}


@pytest.mark.parametrize("name", BROKEN_CASES)
def test_a_case_that_cannot_pass_is_refused_naming_its_file(tmp_path, name):
    content, message = BROKEN_CASES[name]
    shutil.copy(PATIENT, tmp_path / "p.json")
    (tmp_path / "not-a-bundle.json").write_text('{"resourceType": "Patient"}')
    (tmp_path / "case.json").write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(CaseError) as refused:
        load_case(tmp_path / "case.json")
    assert str(refused.value).startswith(f"{tmp_path / 'case.json'}: ") and message in str(refused.value)
