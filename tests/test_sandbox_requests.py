"""Request shapes real clients send (CDS Hooks Sandbox Rx View / Rx Sign, DSTU2 and STU3 drafts) get the right card."""
from __future__ import annotations

import copy
import json
import re

import pytest

from cds_hooks.cases import card_id

from .conftest import FIXTURES, LiveServer
from .fhir_server import FhirTestServer

DATA = FIXTURES.parent / "tests" / "data"
PATIENT_ON_DOXORUBICIN = json.loads((FIXTURES / "patients" / "sandbox-her2pos-metastatic-on-doxorubicin.json").read_text())
TRASTUZUMAB = {"text": "trastuzumab", "coding": [{"display": "trastuzumab", "system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "224905"}]}


def sandbox_request(name: str, fhir_base: str) -> dict:
    """A captured Sandbox request pointed at our FHIR server; the Sandbox leaves out keys it failed to fetch."""
    request = json.loads((DATA / f"sandbox-{name}.json").read_text())
    request["fhirServer"] = fhir_base
    request.pop("prefetch")
    return request


@pytest.fixture
def fhir():
    with FhirTestServer(resources=[e["resource"] for e in PATIENT_ON_DOXORUBICIN["entry"]]) as server:
        yield server


def critical_anthracycline_card(response):
    assert response.status_code == 200, response.text
    cards = [c for c in response.json()["cards"] if card_id(c) == "anthracycline-with-trastuzumab"]
    assert len(cards) == 1
    assert cards[0]["indicator"] == "critical"
    return cards[0]


def test_rx_sign_trastuzumab_gets_the_critical_card_with_a_delete(live_server: LiveServer, fhir):
    response = live_server.post("/cds-services/her2-order-sign", sandbox_request("order-sign", fhir.base_url))
    card = critical_anthracycline_card(response)
    assert "27%" in card["summary"] or "27%" in card["detail"]
    (suggestion,) = card["suggestions"]
    assert suggestion["actions"] == [
        {"type": "delete", "description": "Delete the unsigned order for trastuzumab", "resourceId": "MedicationRequest/request-123"}
    ]
    assert card["selectionBehavior"] == "at-most-one"
    assert card["overrideReasons"] and all(r["display"] for r in card["overrideReasons"])


def test_rx_view_shape_with_single_object_category_and_reason(live_server: LiveServer, fhir):
    request = sandbox_request("order-select-lapatinib", fhir.base_url)
    order = request["context"]["draftOrders"]["entry"][0]["resource"]
    order["medicationCodeableConcept"] = TRASTUZUMAB
    order["reasonCode"] = {"coding": [{"system": "http://snomed.info/sct", "code": "427685000"}], "text": "HER2-positive carcinoma of breast"}
    assert isinstance(order["category"], dict) and "type" not in request["context"]["draftOrders"]
    critical_anthracycline_card(live_server.post("/cds-services/her2-order-select", request))


def test_rx_view_lapatinib_is_not_a_trastuzumab_product(live_server: LiveServer, fhir):
    response = live_server.post("/cds-services/her2-order-select", sandbox_request("order-select-lapatinib", fhir.base_url))
    assert response.status_code == 200
    assert all(card_id(c) != "anthracycline-with-trastuzumab" for c in response.json()["cards"])


def test_dstu2_medication_order_is_read(live_server: LiveServer, fhir):
    request = sandbox_request("order-select-lapatinib", fhir.base_url)
    request["context"]["selections"] = ["MedicationOrder/order-123"]
    request["context"]["draftOrders"]["entry"] = [{"resource": {
        "resourceType": "MedicationOrder", "id": "order-123", "status": "draft", "dateWritten": "2026-11-22",
        "patient": {"reference": "Patient/sbx-her2-1"}, "medicationCodeableConcept": TRASTUZUMAB,
        "reasonCodeableConcept": {"text": "breast cancer"},
        "dosageInstruction": [{"doseQuantity": {"value": 8, "unit": "mg/kg", "system": "http://unitsofmeasure.org", "code": "mg/kg"},
                               # DSTU2 names the unit `periodUnits` (STU3 and R4: periodUnit).
                               "timing": {"repeat": {"frequency": 1, "period": 3, "periodUnits": "wk"}}}],
    }}]
    card = critical_anthracycline_card(live_server.post("/cds-services/her2-order-select", request))
    assert card["suggestions"][0]["actions"][0]["resourceId"] == "MedicationOrder/order-123"


def test_stu3_dosage_shape_is_read(live_server: LiveServer, fhir):
    request = sandbox_request("order-sign", fhir.base_url)
    order = request["context"]["draftOrders"]["entry"][0]["resource"]
    order["dosageInstruction"] = [{"doseQuantity": {"value": 8, "unit": "mg/kg"}, "timing": {"repeat": {"period": 3, "periodUnit": "wk"}}}]
    critical_anthracycline_card(live_server.post("/cds-services/her2-order-sign", request))


def test_patient_view_sandbox_request(live_server: LiveServer, fhir):
    response = live_server.post("/cds-services/her2-patient-view", sandbox_request("patient-view", fhir.base_url))
    assert response.status_code == 200
    assert "cards" in response.json()


def test_response_has_no_null_or_empty_values(live_server: LiveServer, fhir):
    from .test_api import empty_values

    response = live_server.post("/cds-services/her2-order-sign", sandbox_request("order-sign", fhir.base_url))
    body = response.json()
    assert body["cards"] and empty_values(body) == []
    for card in body["cards"]:
        assert len(card["summary"]) < 140
        assert card["uuid"] and all(s["uuid"] for s in card.get("suggestions", []))


def test_card_detail_escapes_markup_from_the_record(live_server: LiveServer):
    hostile = copy.deepcopy(PATIENT_ON_DOXORUBICIN)
    for entry in hostile["entry"]:
        if entry["resource"]["resourceType"] == "MedicationStatement":
            entry["resource"]["medicationCodeableConcept"]["text"] = "doxorubicin <img src=x onerror=alert(1)>"
    with FhirTestServer(resources=[e["resource"] for e in hostile["entry"]]) as server:
        card = critical_anthracycline_card(live_server.post("/cds-services/her2-order-sign", sandbox_request("order-sign", server.base_url)))
    assert re.search(r"(?<!\\)<img", card["detail"]) is None
    assert "\\<img" in card["detail"]


def test_signing_records_the_interaction_as_a_system_action(live_server: LiveServer, fhir):
    body = live_server.post("/cds-services/her2-order-sign", sandbox_request("order-sign", fhir.base_url)).json()
    (action,) = body["systemActions"]
    assert action["type"] == "create" and action["description"]
    issue = action["resource"]
    assert issue["resourceType"] == "DetectedIssue" and issue["severity"] == "high"
    assert issue["code"]["coding"][0]["code"] == "DRG"
    assert issue["patient"] == {"reference": "Patient/sbx-her2-1"}
    assert {i["reference"] for i in issue["implicated"]} == {"MedicationRequest/request-123", "MedicationStatement/sbx-her2-1-dox"}


def test_selecting_an_order_records_nothing(live_server: LiveServer, fhir):
    request = sandbox_request("order-select-lapatinib", fhir.base_url)
    request["context"]["draftOrders"]["entry"][0]["resource"]["medicationCodeableConcept"] = TRASTUZUMAB
    body = live_server.post("/cds-services/her2-order-select", request).json()
    assert body["cards"] and "systemActions" not in body
