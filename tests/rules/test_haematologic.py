"""Rules 28-30: T-DM1 platelet holds at < 50,000 (warning) and < 25,000/mm³ (critical); T-DXd grade 3-4
neutropenia and thrombocytopenia, and a blood count asked for when there is none."""
from __future__ import annotations

from datetime import date

import pytest

from cds_hooks.rules.haematologic import tdm1_thrombocytopenia, tdxd_cytopenia

from .test_hepatic import PRIOR_TDM1, RENDERER, RX, TDM1_DRAFT, context, lab

TDXD_DRAFT = {**TDM1_DRAFT, "id": "draft-tdxd", "medicationCodeableConcept": {"coding": [{"system": RX, "code": "2267576"}], "text": "Enhertu"}}


@pytest.mark.parametrize("value, unit, card", [
    (49_999, "/uL", "haematologic-tdm1-platelets-hold"),
    (25, "10*9/L", "haematologic-tdm1-platelets-hold"),
    (24_999, "/mm3", "haematologic-tdm1-platelets-severe"),
])
def test_platelet_bands(value, unit, card):
    (finding,) = tdm1_thrombocytopenia(context(PRIOR_TDM1, lab("platelets", value, unit)))
    assert finding.card == card
    assert finding.suggestions[0].actions[0].resource_id == "MedicationRequest/draft-tdm1"


@pytest.mark.parametrize("resources", [[lab("platelets", 50, "10*3/uL")], [lab("platelets", 20, "g/L")], []])
def test_no_card_at_50000_or_when_the_count_is_unknown(resources):
    assert list(tdm1_thrombocytopenia(context(*resources))) == []


def test_count_outside_the_pre_dose_window_is_not_used():
    assert list(tdm1_thrombocytopenia(context(lab("platelets", 20, "10*3/uL", day="2026-11-01")))) == []


def test_only_tdm1_orders_are_checked():
    other = {**TDM1_DRAFT, "id": "d2", "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "224905"}]}}
    assert list(tdm1_thrombocytopenia(context(lab("platelets", 20, "10*3/uL"), drafts=(other,)))) == []


# Rules 28-29: T-DM1 is held until platelets recover to >= 75,000/mm³, so a count of 50,000-75,000 after a low one since
# the last dose (PRIOR_TDM1, 2026-11-10) does not end the hold.
def low_then(low, *later):
    """A platelet count (10*3/uL) on 2026-11-15, then (value, day) counts after it."""
    counts = [{**lab("platelets", low, "10*3/uL", day="2026-11-15"), "id": "low"}]
    return counts + [{**lab("platelets", value, "10*3/uL", day=day), "id": f"p-{day}"} for value, day in later]


@pytest.mark.parametrize("low, card", [(40, "haematologic-tdm1-platelets-hold"), (20, "haematologic-tdm1-platelets-severe")])
def test_a_count_not_yet_recovered_to_75000_after_a_low_one_since_the_last_dose_holds(low, card):
    (finding,) = tdm1_thrombocytopenia(context(PRIOR_TDM1, *low_then(low, (74.9, "2026-11-28"))))
    assert finding.card == card
    assert finding.values["lowest"]["per_mm3"] == low * 1000
    assert finding.values["latest_after_lowest"]["per_mm3"] == pytest.approx(74_900)
    assert finding.evidence == ("MedicationRequest/draft-tdm1", "Observation/low", "Observation/p-2026-11-28")
    summary = RENDERER.render(finding).summary
    assert f"{low},000/mm³ on 2026-11-15" in summary and "74,900 on 2026-11-28" in summary


@pytest.mark.parametrize("counts", [
    low_then(40, (75, "2026-11-20"), (60, "2026-11-28")),    # recovered to 75,000, then grade 2 only
    low_then(40, (75, "2026-11-28")),                          # recovered
    low_then(50, (60, "2026-11-28")),                          # never below 50,000
    [{**lab("platelets", 40, "10*3/uL", day="2026-11-09"), "id": "low"}, lab("platelets", 60, "10*3/uL")],  # before the last dose
])
def test_no_hold_when_the_low_count_recovered_or_came_before_the_last_dose(counts):
    assert list(tdm1_thrombocytopenia(context(PRIOR_TDM1, *counts))) == []


def test_with_no_dated_tdm1_dose_a_low_count_is_looked_for_only_in_the_lab_window():
    in_window = [{**lab("platelets", 40, "10*3/uL", day="2026-11-25"), "id": "low"}, lab("platelets", 60, "10*3/uL")]
    (finding,) = tdm1_thrombocytopenia(context(*in_window))
    assert finding.values["lowest"]["day"] == date(2026, 11, 25)
    assert list(tdm1_thrombocytopenia(context(*low_then(40, (60, "2026-11-28"))))) == []


@pytest.mark.parametrize("anc, platelets, card, grade", [
    (0.99, 200, "haematologic-tdxd-cytopenia-grade-3", 3),
    (0.5, 200, "haematologic-tdxd-cytopenia-grade-3", 3),
    (0.49, 200, "haematologic-tdxd-cytopenia-grade-4", 4),
    (2.0, 49, "haematologic-tdxd-cytopenia-grade-3", 3),
    (2.0, 24, "haematologic-tdxd-cytopenia-grade-4", 4),
    (0.8, 20, "haematologic-tdxd-cytopenia-grade-4", 4),
])
def test_tdxd_grades_by_the_enhertu_thresholds(anc, platelets, card, grade):
    (finding,) = tdxd_cytopenia(context(lab("neutrophils", anc, "10*9/L"), lab("platelets", platelets, "10*3/uL"), drafts=(TDXD_DRAFT,)))
    assert finding.card == card and finding.values["worst"]["grade"] == grade
    assert finding.suggestions[0].actions[0].resource_id == "MedicationRequest/draft-tdxd"


def test_tdxd_counts_at_the_grade_3_limits_give_no_card():
    assert list(tdxd_cytopenia(context(lab("neutrophils", 1.0, "10*9/L"), lab("platelets", 50, "10*3/uL"), drafts=(TDXD_DRAFT,)))) == []


def test_tdxd_without_a_neutrophil_count_asks_for_one():
    (finding,) = tdxd_cytopenia(context(lab("platelets", 200, "10*3/uL"), drafts=(TDXD_DRAFT,)))
    assert finding.card == "haematologic-tdxd-blood-count-needed"
    (action,) = finding.suggestions[0].actions
    assert action.resource["code"]["coding"][0]["code"] == "751-8" and action.resource["resourceType"] == "ServiceRequest"


def test_a_graded_count_is_reported_even_when_the_other_is_missing():
    (finding,) = tdxd_cytopenia(context(lab("neutrophils", 0.7, "10*9/L"), drafts=(TDXD_DRAFT,)))
    assert finding.card == "haematologic-tdxd-cytopenia-grade-3"
    assert finding.values["doses"][0]["missing"] == ["platelet count"]


def test_tdm1_orders_are_not_read_against_the_enhertu_table():
    assert list(tdxd_cytopenia(context(lab("neutrophils", 0.3, "10*9/L")))) == []


# A draft whose planned start (a course's first day) is already past is dosed today at the earliest: its labs are
# those before today, not before that day.
PAST_START = {"dosageInstruction": [{"timing": {"repeat": {"boundsPeriod": {"start": "2026-09-01"}}}}]}


def test_a_draft_started_in_the_past_reads_todays_platelet_count():
    resources = [lab("platelets", 200, "10*3/uL", day="2026-08-30"), {**lab("platelets", 20, "10*3/uL", day="2026-11-21")}]
    (finding,) = tdm1_thrombocytopenia(context(PRIOR_TDM1, *resources, drafts=({**TDM1_DRAFT, **PAST_START},)))
    assert finding.card == "haematologic-tdm1-platelets-severe"
    assert finding.values["doses"][0]["dose_day"] == date(2026, 11, 22)


def test_a_draft_started_in_the_past_does_not_read_counts_from_before_that_start():
    old_low = lab("platelets", 20, "10*3/uL", day="2026-08-30")
    assert list(tdm1_thrombocytopenia(context(PRIOR_TDM1, old_low, drafts=({**TDM1_DRAFT, **PAST_START},)))) == []


def test_tdxd_draft_started_in_the_past_reads_todays_counts():
    counts = [lab("neutrophils", 3.0, "10*9/L", day="2026-08-30"), lab("platelets", 200, "10*3/uL", day="2026-08-30"),
              lab("neutrophils", 0.3, "10*9/L", day="2026-11-21"), lab("platelets", 15, "10*3/uL", day="2026-11-21")]
    (finding,) = tdxd_cytopenia(context(*counts, drafts=({**TDXD_DRAFT, **PAST_START},)))
    assert finding.card == "haematologic-tdxd-cytopenia-grade-4"


def test_tdxd_draft_started_in_the_past_with_only_counts_from_before_that_start_asks_for_new_ones():
    old_low = [lab("neutrophils", 0.3, "10*9/L", day="2026-08-30"), lab("platelets", 15, "10*3/uL", day="2026-08-30")]
    (finding,) = tdxd_cytopenia(context(*old_low, drafts=({**TDXD_DRAFT, **PAST_START},)))
    assert finding.card == "haematologic-tdxd-blood-count-needed"


# Rule 30: grade 3-4 platelets hold T-DXd until grade 1 or less (>= 75,000/mm³); a grade 2 count since the last dose
# (2026-11-10) is not yet that recovery. The ANC resumes at grade 2, so only platelets are followed this way.
PRIOR_TDXD = {**PRIOR_TDM1, "id": "given-tdxd", "medicationCodeableConcept": {"coding": [{"system": RX, "code": "2267576"}]}}
ANC_NORMAL = lab("neutrophils", 3.0, "10*9/L")


@pytest.mark.parametrize("low, card, then", [
    (40, "haematologic-tdxd-cytopenia-grade-3", "then the same dose"),
    (20, "haematologic-tdxd-cytopenia-grade-4", "then one dose level lower"),
])
def test_tdxd_platelets_not_yet_recovered_to_grade_1_after_a_grade_3_or_4_count_since_the_last_dose_hold(low, card, then):
    (finding,) = tdxd_cytopenia(context(PRIOR_TDXD, ANC_NORMAL, *low_then(low, (60, "2026-11-28")), drafts=(TDXD_DRAFT,)))
    assert finding.card == card
    assert (finding.values["worst"]["per_mm3"], finding.values["worst"]["not_recovered_by"]["per_mm3"]) == (low * 1000, 60_000)
    assert {"Observation/low", "Observation/p-2026-11-28"} <= set(finding.evidence)
    card_text = RENDERER.render(finding)
    assert card_text.summary == (f"Interrupt T-DXd: grade {finding.values['worst']['grade']} platelets {low},000/mm³ on "
                                 f"2026-11-15, 60,000 on 2026-11-28 (not recovered); {then}")
    assert ("**grade {}**, since the last dose; the latest, 60,000/mm³ on 2026-11-28, has not yet recovered to grade 1 or "
            "less (≥ 75,000/mm³).".format(finding.values["worst"]["grade"])) in " ".join(card_text.detail.split())


@pytest.mark.parametrize("counts", [
    low_then(40, (75, "2026-11-20"), (60, "2026-11-28")),    # recovered to 75,000 in between, then grade 2 only
    low_then(40, (75, "2026-11-28")),                          # recovered
    low_then(60, (60, "2026-11-28")),                          # grade 2 throughout
])
def test_tdxd_no_hold_when_platelets_recovered_or_never_reached_grade_3_since_the_last_dose(counts):
    assert list(tdxd_cytopenia(context(PRIOR_TDXD, ANC_NORMAL, *counts, drafts=(TDXD_DRAFT,)))) == []


def test_tdxd_a_grade_3_platelet_count_before_the_last_dose_does_not_hold_the_next():
    before_dose = [{**lab("platelets", 40, "10*3/uL", day="2026-11-05"), "id": "low"}, lab("platelets", 60, "10*3/uL")]
    assert list(tdxd_cytopenia(context(PRIOR_TDXD, ANC_NORMAL, *before_dose, drafts=(TDXD_DRAFT,)))) == []
