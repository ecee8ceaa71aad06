"""Pregnancy facts: hCG results read only by coded answers or their own reference range; reproductive potential never guessed."""
from __future__ import annotations

from datetime import date

import pytest

from cds_hooks.facts import Facts
from cds_hooks.facts.pregnancy import (
    her2_start,
    hcg_results,
    lapsed_positive_test,
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


RX = "http://www.nlm.nih.gov/research/umls/rxnorm"
TRASTUZUMAB = {"coding": [{"system": RX, "code": "224905"}], "text": "trastuzumab"}
TDM1 = {"coding": [{"system": RX, "code": "1371041"}], "text": "ado-trastuzumab emtansine"}


def dose(aid, medication, day):
    return {"resourceType": "MedicationAdministration", "id": aid, "status": "completed", "subject": {"reference": "Patient/p"},
            "medicationCodeableConcept": medication, "effectiveDateTime": day}


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


def test_positive_test_is_evidence_for_as_long_as_the_pregnancy_could_last_whatever_the_lookback():
    eleven_days = urine("pos", "2026-11-11", POSITIVE)
    assert pregnancy_evidence(facts_with(eleven_days)).positive_test.reference == "Observation/pos"
    # Ten calendar months after the test, counted to today whatever the dose day.
    assert pregnancy_evidence(facts_with(urine("pos", "2026-01-22", POSITIVE))) is not None
    assert pregnancy_evidence(facts_with(urine("pos", "2026-01-22", POSITIVE)), on=date(2026, 12, 14)) is not None
    assert pregnancy_evidence(facts_with(urine("pos", "2026-01-21", POSITIVE))) is None


def test_a_pregnancy_ended_on_or_after_a_positive_test_answers_it():
    positive = urine("pos", "2026-11-18", POSITIVE)
    miscarriage = pregnancy(status="resolved", onsetDateTime="2026-11-18", abatementDateTime="2026-11-20")
    assert pregnancy_evidence(facts_with(positive, miscarriage)) is None
    same_day = pregnancy(status="resolved", onsetDateTime="2026-11-01", abatementDateTime="2026-11-18")
    assert pregnancy_evidence(facts_with(positive, same_day)) is None
    # A resolved pregnancy that began after the test ended after it too.
    assert pregnancy_evidence(facts_with(positive, pregnancy(status="resolved", onsetDateTime="2026-11-19"))) is None
    refuted = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "refuted"}]}
    assert pregnancy_evidence(facts_with(positive, pregnancy(onsetDateTime="2026-11-20", verificationStatus=refuted))) is None


def test_an_end_of_pregnancy_not_known_to_follow_the_positive_test_does_not_answer_it():
    positive = urine("pos", "2026-11-18", POSITIVE)
    earlier = pregnancy(status="resolved", onsetDateTime="2026-01-10", abatementDateTime="2026-10-02")
    undated = pregnancy(status="resolved", onsetDateTime="2026-10-01", abatementString="miscarriage")
    for ended in (earlier, undated):
        evidence = pregnancy_evidence(facts_with(positive, ended))
        assert evidence.positive_test.reference == "Observation/pos" and evidence.conditions == ()


def test_a_positive_test_older_than_a_pregnancy_lasts_is_lapsed_until_answered():
    old = urine("pos", "2025-12-18", POSITIVE)
    assert lapsed_positive_test(facts_with(old)).reference == "Observation/pos"
    assert lapsed_positive_test(facts_with(old, urine("neg", "2026-03-01", NEGATIVE))) is None
    delivered = pregnancy(status="resolved", onsetDateTime="2025-12-18", abatementDateTime="2026-08-20")
    assert lapsed_positive_test(facts_with(old, delivered)) is None
    # Within ten months it is evidence of a current pregnancy, not lapsed.
    assert lapsed_positive_test(facts_with(urine("pos", "2026-11-11", POSITIVE))) is None


def test_her2_start_is_the_first_her2_agent_or_the_first_dose_of_the_ordered_one():
    first = her2_start(facts_with(), frozenset({"trastuzumab"}), date(2026, 11, 23))
    assert (first.new_agents, first.previous, first.after_break) == (frozenset({"trastuzumab"}), None, False)
    on_trastuzumab = facts_with(dose("a1", TRASTUZUMAB, "2026-10-12"), dose("a2", TRASTUZUMAB, "2026-11-02"))
    switch = her2_start(on_trastuzumab, frozenset({"ado_trastuzumab_emtansine"}), date(2026, 11, 23))
    assert (switch.new_agents, switch.after_break) == (frozenset({"ado_trastuzumab_emtansine"}), False)
    assert switch.previous.day == date(2026, 11, 2)
    phesgo = her2_start(on_trastuzumab, frozenset({"pertuzumab", "trastuzumab"}), date(2026, 11, 23))
    assert phesgo.new_agents == frozenset({"pertuzumab"})


def test_her2_start_after_a_break_but_not_at_a_delayed_cycle():
    last_dose = facts_with(dose("a", TRASTUZUMAB, "2026-11-02"))  # its cycle covers the patient to 2026-11-22
    assert her2_start(last_dose, frozenset({"trastuzumab"}), date(2026, 11, 30)) is None
    assert her2_start(last_dose, frozenset({"trastuzumab"}), date(2026, 12, 20)) is None  # 27 days without therapy
    resumed = her2_start(last_dose, frozenset({"trastuzumab"}), date(2026, 12, 21))  # 28 days
    assert (resumed.new_agents, resumed.after_break, resumed.previous.day) == (frozenset(), True, date(2026, 11, 2))
    ongoing = facts_with({"resourceType": "MedicationStatement", "id": "s", "status": "active", "subject": {"reference": "Patient/p"},
                          "medicationCodeableConcept": TDM1, "effectivePeriod": {"start": "2026-01-05"}})
    assert her2_start(ongoing, frozenset({"ado_trastuzumab_emtansine"}), date(2026, 11, 23)) is None


def test_positive_test_counts_for_a_start_planned_weeks_ahead():
    facts = facts_with(urine("pos", "2026-11-20", POSITIVE))
    assert pregnancy_evidence(facts, on=date(2026, 12, 14)) is not None


def test_recorded_pregnancy_contradicted_by_a_newer_negative_test_keeps_both():
    evidence = pregnancy_evidence(facts_with(pregnancy(), urine("neg", "2026-11-20", NEGATIVE)))
    assert evidence.conditions and evidence.positive_test is None and evidence.latest_test.reading == "negative"


def test_recent_test_window_ends_at_the_dose_day():
    facts = facts_with(urine("t", "2026-11-20", NEGATIVE))
    assert recent_pregnancy_test(facts).reference == "Observation/t"
    assert recent_pregnancy_test(facts, on=date(2026, 11, 27)).reference == "Observation/t"
    assert recent_pregnancy_test(facts, on=date(2026, 11, 28)) is None  # 8 days before the dose day
    assert recent_pregnancy_test(facts_with(urine("t", "2026-11-14", NEGATIVE))) is None


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


def serum_in(oid, amount, unit, high, high_unit):
    return {**serum(oid, "2026-11-20", amount), "valueQuantity": {"value": amount, "unit": unit},
            "referenceRange": [{"high": {"value": high, "unit": high_unit}}]}


def test_a_quantitative_result_and_its_range_in_different_hcg_units_are_compared_in_one_unit():
    # 1.2 IU/mL = 1,200 mIU/mL; 0.002 IU/mL = 2 mIU/mL; 1,200 IU/L = 1,200 mIU/mL.
    high, low, per_litre = facts_with(serum_in("a", 1.2, "IU/mL", 5, "mIU/mL"), serum_in("b", 0.002, "[IU]/mL", 5, "m[IU]/mL"),
                                      serum_in("c", 1200, "IU/L", 5, "mIU/mL")).get(hcg_results)
    assert (high.reading, high.value) == ("positive", "1.2 IU/mL (reference range up to 0.005)")
    assert low.reading == "negative"
    assert per_litre.reading == "positive"


def test_a_quantitative_result_with_a_range_in_a_unit_that_is_not_an_hcg_unit_is_not_read():
    (result,) = facts_with(serum_in("a", 2, "mIU/mL", 5, "ng/mL")).get(hcg_results)
    assert result.reading == "uninterpretable" and "another unit" in result.problem
