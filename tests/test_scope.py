"""The scope check (cds_hooks/scope.py): an order call whose drafts name no drug the checks read is answered with
no cards before its prefetch is read or fetched; any call that may concern a check goes through them all."""
from __future__ import annotations

import copy
from typing import Any

import pytest
import requests

from cds_hooks.cases import card_id, load_cases
from cds_hooks.engine import ENGINE_CARDS, Engine
from cds_hooks.protocol.request import ORDER_HOOKS, parse_hook_request
from cds_hooks.scope import concerns_checks
from cds_hooks.services import PREFETCH, SERVICES_BY_ID
from cds_hooks.settings import Settings
from cds_hooks.terminology import RXNORM

from .conftest import FIXTURES, LiveServer
from .fhir_server import FhirTestServer

ORDER_CASES = [case for case in load_cases(sorted((FIXTURES / "cases").glob("*.json")))
               if SERVICES_BY_ID[case.service_id].hook in ORDER_HOOKS]
ATORVASTATIN = {"coding": [{"system": RXNORM, "code": "83367", "display": "atorvastatin"}], "text": "atorvastatin 40 mg"}
TRASTUZUMAB = {"coding": [{"system": RXNORM, "code": "224905"}], "text": "trastuzumab"}
TDM1_MEDICATION = {"resourceType": "Medication", "id": "kadcyla", "code": {"coding": [{"system": RXNORM, "code": "1371041"}]}}
STATIN_MEDICATION = {"resourceType": "Medication", "id": "statin", "code": ATORVASTATIN}


@pytest.fixture
def engine(settings: Settings):
    engine = Engine(settings)
    yield engine
    engine.close()


def draft(draft_id: str, medication: dict[str, Any] | None = None, **elements: Any) -> dict[str, Any]:
    order = {"resourceType": "MedicationRequest", "id": draft_id, "status": "draft", "intent": "order",
             "subject": {"reference": "Patient/p1"}, **elements}
    if medication is not None:
        order["medicationCodeableConcept"] = medication
    return order


def order_request(hook: str, drafts: list[dict[str, Any]], selections: list[str] | None = None) -> dict[str, Any]:
    context = {"userId": "Practitioner/1", "patientId": "p1",
               "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": d} for d in drafts]}}
    if hook == "order-select":
        context["selections"] = selections if selections is not None else [f"MedicationRequest/{drafts[0]['id']}"]
    return {"hook": hook, "hookInstance": "d1f5b1c4-0c5e-4a4c-9d3a-3c1e7e3b4a11", "context": context}


def concerns(request: dict[str, Any]) -> bool:
    return concerns_checks(parse_hook_request(request, request["hook"]))


@pytest.mark.parametrize(("hook", "drafts", "selections", "expected"), [
    ("order-select", [draft("s", ATORVASTATIN)], None, False),
    ("order-select", [draft("t", TRASTUZUMAB)], None, True),
    # order-select concerns the selected drafts only; order-sign every draft.
    ("order-select", [draft("s", ATORVASTATIN), draft("t", TRASTUZUMAB)], ["MedicationRequest/s"], False),
    ("order-sign", [draft("s", ATORVASTATIN), draft("t", TRASTUZUMAB)], None, True),
    # A drug of medications.yaml no order rule starts from alone is still read: the scope is every known drug.
    ("order-select", [draft("c", {"coding": [{"system": RXNORM, "code": "194000"}], "text": "capecitabine"})], None, True),
    # A code and a text that name different drugs, one of them checked (rule 1).
    ("order-select", [draft("m", {"coding": [{"system": RXNORM, "code": "83367"}], "text": "trastuzumab"})], None, True),
    # Not identified, but may be a checked drug, or names no drug at all (dosing.agent-not-identified).
    ("order-select", [draft("u", {"text": "trastuzumab-xyzz 420 mg"})], None, True),
    ("order-select", [draft("n")], None, True),
    ("order-select", [draft("o", {"text": "ondansetron 8 mg"})], None, False),
    # A Medication of the draft bundle decides; one the bundle lacks may come with the prefetch, so it is read.
    ("order-select", [draft("r", medicationReference={"reference": "Medication/kadcyla"}), TDM1_MEDICATION], None, True),
    ("order-select", [draft("r", medicationReference={"reference": "Medication/statin"}), STATIN_MEDICATION], None, False),
    ("order-select", [draft("r", medicationReference={"reference": "Medication/elsewhere", "display": "atorvastatin"})], None, True),
    ("order-select", [draft("r", medicationReference={"reference": "#med"},
                            contained=[{**STATIN_MEDICATION, "id": "med"}])], None, False),
    # Only medication orders are checked.
    ("order-sign", [{"resourceType": "ServiceRequest", "id": "echo", "status": "draft", "intent": "order",
                     "subject": {"reference": "Patient/p1"}}], None, False),
], ids=["statin", "trastuzumab", "unselected-trastuzumab", "order-sign-reads-every-draft", "capecitabine",
        "code-and-text-disagree", "unidentified-mention", "names-no-drug", "ondansetron", "bundle-medication-tdm1",
        "bundle-medication-statin", "medication-not-in-bundle", "contained-statin", "service-request"])
def test_what_an_order_call_concerns(hook, drafts, selections, expected):
    assert concerns(order_request(hook, drafts, selections)) is expected


def test_patient_view_always_concerns_the_checks():
    request = {"hook": "patient-view", "hookInstance": "d1f5b1c4-0c5e-4a4c-9d3a-3c1e7e3b4a11",
               "context": {"userId": "Practitioner/1", "patientId": "p1"}}
    assert concerns(request)


def rule_cards(engine: Engine, service_id: str, request: dict[str, Any]) -> list[str]:
    """The cards any rule gives when the checks run on the request, whatever the scope says (not the engine's own:
    a record left out as unreadable is named only when a check may need it)."""
    service = SERVICES_BY_ID[service_id]
    cards = engine.check(service, parse_hook_request(request, service.hook)).body["cards"]
    return [card_id(card) for card in cards if card_id(card) not in ENGINE_CARDS]


@pytest.mark.parametrize("case", [c for c in ORDER_CASES if not concerns(c.request_for("full"))], ids=lambda c: c.name)
def test_no_fixture_case_left_out_by_the_scope_has_a_card_from_the_checks(engine: Engine, case):
    assert rule_cards(engine, case.service_id, case.request_for("full")) == []


def with_every_drug_replaced(request: dict[str, Any], concept: dict[str, Any]) -> dict[str, Any]:
    request = copy.deepcopy(request)
    for entry in request["context"]["draftOrders"]["entry"]:
        resource = entry["resource"]
        if resource.get("resourceType") in ("MedicationRequest", "MedicationOrder"):
            resource.pop("medicationReference", None)
            resource["medicationCodeableConcept"] = concept
    return request


@pytest.mark.parametrize("case", ORDER_CASES, ids=lambda c: c.name)
def test_no_order_check_fires_on_drafts_of_a_drug_it_does_not_read(engine: Engine, case):
    # What scope.py stands on: every order rule acts on a draft of a drug it reads. Each fixture patient, with its
    # drafts turned into a statin, gets no card from any rule when the checks run anyway.
    request = with_every_drug_replaced(case.request_for("full"), ATORVASTATIN)
    assert not concerns(request)
    assert rule_cards(engine, case.service_id, request) == []


def test_a_statin_order_is_answered_without_asking_the_fhir_server(live_server: LiveServer):
    request = order_request("order-select", [draft("s", ATORVASTATIN)])
    with FhirTestServer(resources=[]) as fhir:
        request["fhirServer"] = fhir.base_url
        response = requests.post(f"{live_server.base_url}/cds-services/her2-order-select", json=request, timeout=10)
        assert response.status_code == 200, response.text
        assert response.json() == {"cards": []}
        assert list(fhir.requests) == []


def test_a_statin_order_with_neither_prefetch_nor_fhir_server_is_answered_not_refused(live_server: LiveServer):
    statin = live_server.post("/cds-services/her2-order-sign", json_body=order_request("order-sign", [draft("s", ATORVASTATIN)]))
    assert statin.status_code == 200, statin.text
    assert statin.json() == {"cards": []}
    # The same call for trastuzumab needs the record, which it cannot have.
    trastuzumab = live_server.post("/cds-services/her2-order-sign", json_body=order_request("order-sign", [draft("t", TRASTUZUMAB)]))
    assert trastuzumab.status_code == 412, trastuzumab.text


def test_an_unreadable_draft_of_a_drug_no_check_reads_does_not_stop_the_checks_of_the_drafts_beside_it(live_server: LiveServer):
    # It used to make the whole call a 400: the trastuzumab draft's checks did not run.
    dosage = [{"timing": {"repeat": {"boundsPeriod": {"start": 20261123}}}}]
    request = order_request("order-sign", [draft("s", ATORVASTATIN, dosageInstruction=dosage), draft("t", TRASTUZUMAB)])
    request["prefetch"] = dict.fromkeys(PREFETCH)
    response = live_server.post("/cds-services/her2-order-sign", json_body=request)
    assert response.status_code == 200, response.text
    alone = order_request("order-sign", [draft("t", TRASTUZUMAB)])
    alone["prefetch"] = dict.fromkeys(PREFETCH)
    assert response.json()["cards"] != [] and card_summaries(response) == card_summaries(live_server.post("/cds-services/her2-order-sign", json_body=alone))
    # The near miss: the unreadable draft is the trastuzumab one, beside a statin that reads well.
    request = order_request("order-sign", [draft("s", ATORVASTATIN), draft("t", TRASTUZUMAB, dosageInstruction=dosage)])
    request["prefetch"] = dict.fromkeys(PREFETCH)
    response = live_server.post("/cds-services/her2-order-sign", json_body=request)
    assert response.status_code == 400 and "written as a number" in response.text


def card_summaries(response) -> list[str]:
    return [card["summary"] for card in response.json()["cards"]]


def test_an_unreadable_draft_is_refused_only_when_a_check_reads_it(live_server: LiveServer):
    # A bounds start written as a JSON number: a day in 1970 to fhir_core, so never read (record._read_draft).
    dosage = [{"timing": {"repeat": {"boundsPeriod": {"start": 20261123}}}}]
    statin = order_request("order-sign", [draft("s", ATORVASTATIN, dosageInstruction=dosage)])
    assert live_server.post("/cds-services/her2-order-sign", json_body=statin).status_code == 200
    trastuzumab = order_request("order-sign", [draft("t", TRASTUZUMAB, dosageInstruction=dosage)])
    trastuzumab["prefetch"] = dict.fromkeys(PREFETCH)  # every key answered, with nothing
    response = live_server.post("/cds-services/her2-order-sign", json_body=trastuzumab)
    assert response.status_code == 400, response.text
    assert "written as a number" in response.text
