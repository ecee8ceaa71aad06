"""Rule 34: T-DM1 with grade 3-4 peripheral neuropathy (hold) or an unrecorded grade (ask), drafted or, on
patient-view, ongoing."""
from __future__ import annotations

import pytest

from cds_hooks.render import CardRenderer
from cds_hooks.rules.neurologic import tdm1_peripheral_neuropathy

from .test_hepatic import PRIOR_TDM1, RX, TDM1_DRAFT, chart_opened, context


def neuropathy(nid, grade_text=None):
    resource = {"resourceType": "Condition", "id": nid, "subject": {"reference": "Patient/p"},
                "clinicalStatus": {"coding": [{"code": "active"}]},
                "code": {"coding": [{"system": "http://snomed.info/sct", "code": "302226006"}]}}
    if grade_text:
        resource["stage"] = [{"summary": {"text": grade_text}}]
    return resource


@pytest.mark.parametrize("grade_text, hold", [("Grade 3", True), ("Grade 4", True), (None, False)])
def test_fires_for_grade_3_4_or_no_grade(grade_text, hold):
    (finding,) = tdm1_peripheral_neuropathy(context(neuropathy("n", grade_text)))
    assert finding.values["hold"] is hold
    assert bool(finding.suggestions) is hold


def test_grade_2_does_not_fire_but_an_extra_ungraded_record_asks_for_the_grade():
    assert list(tdm1_peripheral_neuropathy(context(neuropathy("n", "Grade 2")))) == []
    (finding,) = tdm1_peripheral_neuropathy(context(neuropathy("n", "Grade 2"), neuropathy("m")))
    assert finding.values["hold"] is False and finding.values["grade"] == 2


def test_only_tdm1_is_concerned():
    trastuzumab = {**TDM1_DRAFT, "medicationCodeableConcept": {"coding": [{"system": RX, "code": "224905"}]}}
    assert list(tdm1_peripheral_neuropathy(context(neuropathy("n", "Grade 3"), drafts=(trastuzumab,)))) == []


def test_ongoing_tdm1_with_grade_3_neuropathy_is_held_on_patient_view_without_a_draft_to_remove():
    (finding,) = tdm1_peripheral_neuropathy(chart_opened(PRIOR_TDM1, neuropathy("n", "CTCAE grade 3")))
    assert finding.values["hold"] is True and finding.suggestions == ()
    assert finding.evidence == ("Condition/n", "MedicationAdministration/given")
    card = CardRenderer.load().render(finding)
    assert card.summary.startswith("Hold T-DM1: grade 3 peripheral neuropathy recorded")
    assert "an order for" not in card.detail and "dose given on 2026-11-10 (MedicationAdministration/given)" in card.detail


def test_no_card_on_patient_view_when_the_tdm1_course_ended_or_another_drug_is_ongoing():
    long_ago = {**PRIOR_TDM1, "effectiveDateTime": "2026-08-01"}
    trastuzumab = {**PRIOR_TDM1, "id": "h", "medicationCodeableConcept": {"coding": [{"system": RX, "code": "224905"}]}}
    for therapy in (long_ago, trastuzumab):
        assert list(tdm1_peripheral_neuropathy(chart_opened(therapy, neuropathy("n", "Grade 3")))) == []


SIGNED_TDM1 = {**TDM1_DRAFT, "id": "signed", "status": "active"}  # Kadcyla from 2026-12-01, after AS_OF


@pytest.mark.parametrize("grade_text, begun_or_drafted, to_start", [
    ("Grade 3", "Hold T-DM1: grade 3 peripheral neuropathy recorded; resume when ≤ grade 2",
     "Hold T-DM1 until ≤ grade 2: grade 3 peripheral neuropathy recorded; Kadcyla to start 2026-12-01"),
    (None, "T-DM1 with peripheral neuropathy of unrecorded grade: grade it before the next dose",
     "T-DM1 with peripheral neuropathy of unrecorded grade: grade it before the first dose; Kadcyla to start 2026-12-01"),
], ids=["grade-3", "ungraded"])
def test_the_summary_says_when_a_signed_tdm1_course_has_not_started(grade_text, begun_or_drafted, to_start):
    condition = neuropathy("n", grade_text)

    def card(rule_context):
        (finding,) = tdm1_peripheral_neuropathy(rule_context)
        return CardRenderer.load().render(finding)

    course_ahead = card(chart_opened(SIGNED_TDM1, condition))
    assert course_ahead.summary == to_start
    assert "for a patient with Kadcyla due to start 2026-12-01." in course_ahead.detail
    assert card(chart_opened(PRIOR_TDM1, condition)).summary == begun_or_drafted
    assert card(context(condition)).summary == begun_or_drafted
    if grade_text is None:
        # The detail's ask follows the summary's: the first dose of a course not begun, the next of one under way.
        assert "record it before the first dose" in course_ahead.detail
        assert "record it before the next dose" in card(chart_opened(PRIOR_TDM1, condition)).detail
        assert "record it before this dose" in card(context(condition)).detail
