"""Pregnancy facts: hCG results read only by coded answers or their own reference range; reproductive potential never guessed."""
from __future__ import annotations

from datetime import date

import pytest

from cds_hooks.facts import Facts
from cds_hooks.facts.pregnancy import (
    hcg_results,
    pregnancy_evidence,
    recent_pregnancy_test,
    reproductive_potential,
)
from cds_hooks.record import build_record
from cds_hooks.settings import Settings

LOINC = "http://loinc.org"
TODAY = date(2026, 11, 22)
POSITIVE = {"coding": [{"system": LOINC, "code": "LA6576-8", "display": "Positive"}]}
NEGATIVE = {"coding": [{"system": LOINC, "code": "LA6577-6", "display": "Negative"}]}


def urine(oid, when, value=None, **extra):
    return {"resourceType": "Observation", "id": oid, "status": "final", "subject": {"reference": "Patient/p"},
            "code": {"coding": [{"system": LOINC, "code": "2106-3", "display": "hCG [Presence] in Urine"}]},
            "effectiveDateTime": when, **({"valueCodeableConcept": value} if value else {}), **extra}


def serum(oid, when, amount, high=None):
    ranges = {"referenceRange": [{"high": {"value": high, "unit": "mIU/mL"}}]} if high is not None else {}
    return {"resourceType": "Observation", "id": oid, "status": "final", "subject": {"reference": "Patient/p"},
            "code": {"coding": [{"system": LOINC, "code": "21198-7"}]}, "effectiveDateTime": when,
            "valueQuantity": {"value": amount, "unit": "mIU/mL", "system": "http://unitsofmeasure.org", "code": "m[IU]/mL"}, **ranges}


def pregnancy(cid="c1", status="active", **extra):
    return {"resourceType": "Condition", "id": cid, "subject": {"reference": "Patient/p"}, "onsetDateTime": "2026-10-01",
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": status}]},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "77386006", "display": "Pregnancy"}]}, **extra}


def patient(**fields):
    return {"resourceType": "Patient", "id": "p", **fields}


def facts_with(*resources, as_of=TODAY, lookback=7):
    return Facts(build_record({"all": list(resources)}, []), as_of, Settings(pregnancy_test_lookback_days=lookback))


def test_qualitative_results_are_read_from_coded_answers_only():
    results = facts_with(urine("pos", "2026-11-20", POSITIVE), urine("neg", "2026-11-19", NEGATIVE),
                         urine("text", "2026-11-18", valueString="negative")).get(hcg_results)
    assert [(r.reference, r.reading) for r in results] == [
        ("Observation/pos", "positive"), ("Observation/neg", "negative"), ("Observation/text", "uninterpretable")]
    assert results[0].test == "hCG [Presence] in Urine (LOINC 2106-3)"
    assert "not coded" in results[2].problem and results[2].value == "negative"


def test_quantitative_result_is_read_against_its_own_reference_range():
    above, below, no_range = facts_with(serum("a", "2026-11-20", 25, high=5), serum("b", "2026-11-19", 2, high=5),
                                        serum("c", "2026-11-18", 3)).get(hcg_results)
    assert (above.reading, above.value) == ("positive", "25 mIU/mL (reference range up to 5)")
    assert below.reading == "negative"
    assert no_range.reading == "uninterpretable" and "no reference range" in no_range.problem


def test_active_pregnancy_condition_is_evidence_but_an_ended_or_refuted_one_is_not():
    evidence = pregnancy_evidence(facts_with(pregnancy()))
    assert evidence is not None and evidence.references == ("Condition/c1",)
    assert evidence.conditions[0].since == date(2026, 10, 1)
    assert pregnancy_evidence(facts_with(pregnancy(status="resolved"))) is None
    assert pregnancy_evidence(facts_with(pregnancy(abatementDateTime="2026-11-01"))) is None
    refuted = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "refuted"}]}
    assert pregnancy_evidence(facts_with(pregnancy(verificationStatus=refuted))) is None


@pytest.mark.parametrize("ended", [
    {"abatementDateTime": "2026-11-01"},
    {"abatementAge": {"value": 34, "unit": "a", "system": "http://unitsofmeasure.org", "code": "a"}},
    {"abatementPeriod": {"start": "2026-10-30", "end": "2026-11-01"}},
    {"abatementRange": {"low": {"value": 33, "unit": "a"}, "high": {"value": 34, "unit": "a"}}},
    {"abatementString": "delivered"},
])
def test_a_pregnancy_ended_by_any_type_of_abatement_is_not_current(ended):
    assert pregnancy_evidence(facts_with(pregnancy(**ended))) is None


@pytest.mark.parametrize("onset", [
    {"onsetPeriod": {"start": "2026-10-01"}},
    {"onsetAge": {"value": 33, "unit": "a"}},
    {"onsetRange": {"low": {"value": 33, "unit": "a"}}},
    {"onsetString": "early October"},
])
def test_a_pregnancy_with_any_type_of_onset_is_current(onset):
    condition = {key: value for key, value in pregnancy(**onset).items() if key != "onsetDateTime"}
    evidence = pregnancy_evidence(facts_with(condition))
    assert evidence is not None and evidence.references == ("Condition/c1",)


def test_recent_positive_test_is_evidence_until_a_newer_negative_supersedes_it():
    positive = urine("pos", "2026-11-18", POSITIVE)
    assert pregnancy_evidence(facts_with(positive)).positive_test.reference == "Observation/pos"
    assert pregnancy_evidence(facts_with(positive, serum("neg", "2026-11-20", 1, high=5))) is None
    # A newer result that cannot be read does not cancel a positive one.
    assert pregnancy_evidence(facts_with(positive, serum("unread", "2026-11-20", 1))) is not None


def test_positive_test_older_than_the_lookback_is_not_evidence():
    assert pregnancy_evidence(facts_with(urine("pos", "2026-11-10", POSITIVE))) is None
    assert pregnancy_evidence(facts_with(urine("pos", "2026-11-10", POSITIVE)), on=date(2026, 11, 12)) is not None


def test_positive_test_counts_for_a_start_planned_weeks_ahead():
    facts = facts_with(urine("pos", "2026-11-20", POSITIVE))
    assert pregnancy_evidence(facts, on=date(2026, 12, 14)) is not None


def test_recorded_pregnancy_contradicted_by_a_newer_negative_test_keeps_both():
    evidence = pregnancy_evidence(facts_with(pregnancy(), urine("neg", "2026-11-20", NEGATIVE)))
    assert evidence.conditions and evidence.positive_test is None and evidence.latest_test.reading == "negative"


def test_recent_test_window_ends_at_the_planned_start_or_today_whichever_is_later():
    facts = facts_with(urine("t", "2026-11-20", NEGATIVE))
    assert recent_pregnancy_test(facts).reference == "Observation/t"
    assert recent_pregnancy_test(facts, on=date(2026, 11, 27)).reference == "Observation/t"
    assert recent_pregnancy_test(facts, on=date(2026, 11, 28)) is None  # 8 days before the start
    # A start already past (an order authored earlier): a test taken since still precedes the first dose.
    assert recent_pregnancy_test(facts, on=date(2026, 11, 15)).reference == "Observation/t"
    assert recent_pregnancy_test(facts_with(urine("t", "2026-11-04", NEGATIVE)), on=date(2026, 11, 12)) is None


def test_recent_test_is_the_newest_in_the_window_whatever_its_reading():
    facts = facts_with(urine("old", "2026-11-17", NEGATIVE), serum("new", "2026-11-20", 3))
    assert recent_pregnancy_test(facts).reference == "Observation/new"


@pytest.mark.parametrize(
    "fields, status",
    [
        ({"gender": "female", "birthDate": "1990-05-14"}, "yes"),
        ({"gender": "female", "birthDate": "1971-11-22"}, "yes"),  # 55 today: still in range
        ({"gender": "female", "birthDate": "1970-11-22"}, "no"),  # 56 today
        ({"gender": "female", "birthDate": "2014-11-23"}, "no"),  # 11
        ({"gender": "male", "birthDate": "1990-05-14"}, "no"),
        ({"gender": "female"}, "unknown"),
        ({"birthDate": "1990-05-14"}, "unknown"),
        ({"gender": "other", "birthDate": "1990-05-14"}, "unknown"),
        ({"gender": "unknown", "birthDate": "1950-01-01"}, "no"),
        ({"gender": "female", "birthDate": "1970"}, "unknown"),  # 55 or 56: cannot tell
        ({"gender": "female", "birthDate": "1971"}, "yes"),  # 54 or 55
    ],
)
def test_reproductive_potential(fields, status):
    assert reproductive_potential(facts_with(patient(**fields))).status == status


def test_reproductive_potential_without_a_patient_is_unknown_and_says_why():
    potential = reproductive_potential(facts_with())
    assert (potential.status, potential.description) == ("unknown", "no gender recorded, no birth date recorded")
    assert reproductive_potential(facts_with(patient(gender="female", birthDate="1990-05-14"))).description == "female, 36 years"
