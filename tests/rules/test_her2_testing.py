"""Rules 9-11: HER2 positivity before HER2-directed therapy, reflex ISH for IHC 2+, HER2 subtype for T-DXd."""
from __future__ import annotations

from datetime import date

from cds_hooks.facts import Facts
from cds_hooks.record import build_record
from cds_hooks.rules import her2_testing
from cds_hooks.rules.base import RuleContext
from cds_hooks.settings import Settings

RX = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
DRUGS = {
    "trastuzumab": {"coding": [{"system": RX, "code": "224905"}], "text": "trastuzumab"},
    "tdxd": {"coding": [{"system": RX, "code": "2267576"}], "text": "fam-trastuzumab deruxtecan-nxki"},
    "lapatinib": {"coding": [{"system": RX, "code": "672149"}], "text": "lapatinib"},
    "paclitaxel": {"coding": [{"system": RX, "code": "56946"}], "text": "paclitaxel"},
}
IHC = {"0": "LA6111-4", "1+": "LA11841-6", "2+": "LA11842-4", "3+": "LA11843-2"}


def ihc(score):
    return {"resourceType": "Observation", "id": "ihc", "status": "final", "code": {"coding": [{"system": LOINC, "code": "85319-2"}]},
            "effectiveDateTime": "2026-03-02", "valueCodeableConcept": {"coding": [{"system": LOINC, "code": IHC[score]}]}}


def her2_low_diagnosis():
    return {"resourceType": "Condition", "id": "low", "subject": {"reference": "Patient/p"},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "1381317004"}]}}


def draft(drug):
    return {"resourceType": "MedicationRequest", "id": f"d-{drug}", "status": "draft", "intent": "order",
            "subject": {"reference": "Patient/p"}, "authoredOn": "2026-11-22", "medicationCodeableConcept": DRUGS[drug]}


def run(rule, *resources, drugs=(), hook="order-select") -> list:
    record = build_record({"all": list(resources)}, [draft(d) for d in drugs])
    today = date(2026, 11, 22)
    return list(rule(RuleContext(hook, "p", record, Facts(record, today, Settings()), record.draft_orders, Settings(), today)))


def test_rule_9_is_not_for_tdxd_or_tki_and_leaves_ihc_2plus_to_rule_10():
    assert run(her2_testing.positivity_not_confirmed, ihc("0"), drugs=["tdxd", "lapatinib"]) == []
    assert run(her2_testing.positivity_not_confirmed, ihc("2+"), drugs=["trastuzumab"]) == []
    (finding,) = run(her2_testing.positivity_not_confirmed, ihc("0"), drugs=["trastuzumab"])
    assert (finding.values["status"], finding.values["basis"]) == ("negative", "IHC 0 on 2026-03-02")


def test_rule_10_on_orders_only_with_a_her2_directed_drug_and_always_on_patient_view():
    assert run(her2_testing.equivocal_needs_ish, ihc("2+"), drugs=["paclitaxel"]) == []
    (finding,) = run(her2_testing.equivocal_needs_ish, ihc("2+"), drugs=["lapatinib"])
    assert finding.values["drugs"] == "lapatinib"
    (finding,) = run(her2_testing.equivocal_needs_ish, ihc("2+"), hook="patient-view")
    create = finding.suggestions[0].actions[0]
    assert create.resource["code"]["coding"][0]["code"] == "85318-4"
    assert create.resource["reasonReference"] == [{"reference": "Observation/ihc"}]
    assert run(her2_testing.equivocal_needs_ish, ihc("3+"), hook="patient-view") == []


def test_rule_11_accepts_positive_and_low_and_flags_zero_or_unknown():
    assert run(her2_testing.tdxd_her2_subtype, ihc("2+"), drugs=["tdxd"]) == []
    assert run(her2_testing.tdxd_her2_subtype, her2_low_diagnosis(), drugs=["tdxd"]) == []
    (zero,) = run(her2_testing.tdxd_her2_subtype, ihc("0"), drugs=["tdxd"])
    (unknown,) = run(her2_testing.tdxd_her2_subtype, drugs=["tdxd"])
    assert (zero.values["ihc_zero"], unknown.values["ihc_zero"]) == (True, False)
