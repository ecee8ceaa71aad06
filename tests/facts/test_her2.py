"""HER2 status under ASCO/CAP 2018: IHC, ISH groups, diagnosis codes, and what never counts (serum HER2)."""
from __future__ import annotations

from datetime import date

import pytest

from cds_hooks.facts import Facts
from cds_hooks.facts.her2 import her2_low, her2_status
from cds_hooks.record import build_record
from cds_hooks.settings import Settings

LOINC = "http://loinc.org"
SCT = "http://snomed.info/sct"
IHC = {"0": "LA6111-4", "1+": "LA11841-6", "2+": "LA11842-4", "3+": "LA11843-2"}


def facts_with(*resources) -> Facts:
    return Facts(build_record({"all": list(resources)}, []), date(2026, 11, 22), Settings())


def observation(oid, code, day, **value):
    return {"resourceType": "Observation", "id": oid, "status": "final", "code": {"coding": [{"system": LOINC, "code": code}]},
            "effectiveDateTime": day, **value}


def coded(code):
    return {"valueCodeableConcept": {"coding": [{"system": LOINC, "code": code}]}}


def ihc(score, day="2026-03-02", oid=None):
    return observation(oid or f"ihc-{day}", "85319-2", day, **coded(IHC[score]))


def ish(ratio, copies, day="2026-03-02"):
    return (observation(f"ratio-{day}", "49683-6", day, valueQuantity={"value": ratio}),
            observation(f"copies-{day}", "74860-8", day, valueQuantity={"value": copies}))


def condition(code, cid="c1"):
    return {"resourceType": "Condition", "id": cid, "subject": {"reference": "Patient/p"}, "code": {"coding": [{"system": SCT, "code": code}]}, "onsetDateTime": "2025-01-10"}


@pytest.mark.parametrize("score, status", [("3+", "positive"), ("2+", "equivocal"), ("1+", "negative"), ("0", "negative")])
def test_ihc_score_alone(score, status):
    result = her2_status(facts_with(ihc(score)))
    assert (result.status, result.ihc_score, result.decided_by, result.date) == (status, score, "Observation/ihc-2026-03-02", date(2026, 3, 2))


def test_ihc_2plus_with_ish_group_5_is_negative_and_group_1_positive():
    negative = her2_status(facts_with(ihc("2+"), *ish(1.4, 2.8)))
    assert (negative.status, negative.ish, negative.decided_by) == ("negative", "not_amplified", "Observation/ratio-2026-03-02")
    positive = her2_status(facts_with(ihc("2+"), *ish(2.6, 5.1)))
    assert (positive.status, positive.ish, positive.ish_result.ish_group) == ("positive", "amplified", 1)


@pytest.mark.parametrize("ratio, copies, group", [(2.2, 3.5, 2), (1.5, 6.5, 3), (1.5, 4.5, 4)])
def test_ish_groups_2_to_4_need_ihc_review(ratio, copies, group):
    result = her2_status(facts_with(ihc("1+"), *ish(ratio, copies)))
    assert (result.status, result.needs_ihc_review, result.ish, result.ish_result.ish_group) == ("equivocal", True, None, group)


def test_ihc_3plus_is_positive_even_with_an_ish_group_needing_review():
    assert her2_status(facts_with(ihc("3+"), *ish(2.2, 3.5))).status == "positive"


def test_ish_ratio_as_a_ratio_value():
    ratio = observation("ratio", "49683-6", "2026-03-02", valueRatio={"numerator": {"value": 5.2}, "denominator": {"value": 2}})
    copies = observation("copies", "74860-8", "2026-03-02", valueQuantity={"value": 5.2})
    assert her2_status(facts_with(ratio, copies)).status == "positive"


def test_ish_presence_result_and_ratio_without_copies():
    assert her2_status(facts_with(observation("fish", "85318-4", "2026-03-02", **coded("LA6576-8")))).ish == "amplified"
    partial = her2_status(facts_with(ihc("2+"), ish(2.3, 0, "2026-03-09")[0]))
    assert (partial.status, partial.ish_result.call, partial.ish_result.copies) == ("equivocal", None, None)


def test_any_positive_result_makes_the_tumour_positive():
    result = her2_status(facts_with(ihc("3+", "2024-01-05"), ihc("1+", "2026-03-02")))
    assert (result.status, result.decided_by, result.ihc_score) == ("positive", "Observation/ihc-2024-01-05", "1+")


def test_an_ish_older_than_the_ihc_does_not_complete_it():
    result = her2_status(facts_with(*ish(1.4, 2.8, "2025-01-01"), ihc("2+", "2026-03-02")))
    assert (result.status, result.ish_result) == ("equivocal", None)


def test_diagnosis_counts_only_without_a_test_result():
    diagnosis_only = her2_status(facts_with(condition("427685000")))
    assert (diagnosis_only.status, diagnosis_only.decided_by) == ("positive", "Condition/c1")
    assert her2_status(facts_with(condition("427685000"), ihc("1+"))).status == "negative"
    assert her2_status(facts_with(condition("431396003"))).status == "negative"


def test_serum_her2_never_counts():
    serum = observation("serum", "51981-9", "2026-03-02", **coded("LA6576-8"))
    assert her2_status(facts_with(serum)).status == "unknown"


def test_interpretation_and_snomed_answers():
    interpretation = observation("interp", "48676-1", "2026-03-02",
                                 valueCodeableConcept={"coding": [{"system": SCT, "code": "260385009"}]})
    assert her2_status(facts_with(interpretation)).status == "negative"


@pytest.mark.parametrize("resources, expected", [
    ((ihc("1+"),), True),
    ((ihc("2+"), *ish(1.4, 2.8)), True),
    ((ihc("0"),), False),
    ((ihc("3+"),), False),
    ((ihc("2+"),), None),
    ((), None),
    ((condition("1381317004"),), True),
])
def test_her2_low(resources, expected):
    assert her2_low(facts_with(*resources)) is expected


def refuted(resource):
    return {**resource, "verificationStatus": {"coding": [{"code": "refuted"}]}}


def test_a_refuted_her2_diagnosis_is_no_her2_status():
    assert her2_status(facts_with(refuted(condition("427685000")))).status == "unknown"
    both = her2_status(facts_with(refuted(condition("427685000")), condition("431396003", cid="c2")))
    assert (both.status, both.decided_by) == ("negative", "Condition/c2")


def test_a_confirmed_her2_diagnosis_still_counts():
    confirmed = {**condition("427685000"), "verificationStatus": {"coding": [{"code": "confirmed"}]}}
    assert her2_status(facts_with(confirmed)).status == "positive"


def test_a_refuted_her2_low_diagnosis_is_not_her2_low():
    assert her2_low(facts_with(refuted(condition("1381317004")))) is None
    assert her2_low(facts_with(refuted(condition("1381317004")), condition("1381317004", cid="c2"))) is True


def ish_ratio_value(numerator, denominator, copies):
    ratio = observation("ratio", "49683-6", "2026-03-02",
                        valueRatio={"numerator": {"value": numerator}, "denominator": {"value": denominator}})
    return ratio, observation("copies", "74860-8", "2026-03-02", valueQuantity={"value": copies})


def test_an_ish_ratio_value_just_below_2_is_not_rounded_up_to_group_1():
    result = her2_status(facts_with(*ish_ratio_value(499, 250, 4.5)))
    assert (result.status, result.ish_result.ish_group, result.ish_result.ratio) == ("equivocal", 4, 1.996)


def test_an_ish_ratio_value_of_exactly_2_is_group_1():
    assert her2_status(facts_with(*ish_ratio_value(500, 250, 4.5))).ish_result.ish_group == 1


@pytest.mark.parametrize("value, recorded", [
    ({"valueString": "3+"}, "3+"),
    ({"valueQuantity": {"value": 3}}, "3"),
    ({"valueCodeableConcept": {"text": "Score 3+"}}, "Score 3+"),
    (coded("LA11884-6"), "indeterminate"),
    (coded("LA9999-9"), "LA9999-9"),
])
def test_an_ihc_value_that_is_no_her2_answer_code_is_on_file_but_not_a_call(value, recorded):
    result = her2_status(facts_with(observation("ihc", "85319-2", "2026-03-02", **value)))
    assert (result.status, result.ihc_score, result.result_on_file) == ("unknown", None, True)
    assert result.basis == f'IHC on 2026-03-02 recorded as "{recorded}", not as a HER2 answer code the service can read'


def test_no_her2_result_or_a_coded_one_is_not_an_unreadable_result_on_file():
    assert her2_status(facts_with()).result_on_file is False
    assert her2_status(facts_with(ihc("3+"))).result_on_file is False
    # A text IHC beside a HER2-positive diagnosis: the diagnosis decides, as with no test.
    text = observation("ihc", "85319-2", "2026-03-02", valueString="3+")
    assert her2_status(facts_with(text, condition("427685000"))).status == "positive"


def test_a_later_partial_ish_does_not_undo_a_complete_ish_of_the_ihc():
    later_ratio_only = ish(2.5, 0, "2026-03-10")[0]
    later_text = observation("fish-text", "85318-4", "2026-03-11", valueString="see report")
    for later in (later_ratio_only, later_text):
        result = her2_status(facts_with(ihc("2+"), *ish(1.4, 2.8, "2026-03-05"), later))
        assert (result.status, result.ish, result.decided_by) == ("negative", "not_amplified", "Observation/ratio-2026-03-05")
    # Near miss: the partial ISH alone leaves the IHC 2+ equivocal.
    alone = her2_status(facts_with(ihc("2+"), later_ratio_only))
    assert (alone.status, alone.ish_result.reference) == ("equivocal", "Observation/ratio-2026-03-10")


def test_an_ihc_score_code_on_an_ish_is_named_as_a_score_not_by_the_services_key():
    result = her2_status(facts_with(observation("ish", "85318-4", "2026-03-09", **coded("LA11843-2"))))
    assert result.basis == 'ISH on 2026-03-09 recorded as "IHC 3+", not as a HER2 answer code the service can read'

