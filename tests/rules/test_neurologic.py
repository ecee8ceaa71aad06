"""Rule 34: T-DM1 with grade 3-4 peripheral neuropathy (hold) or an unrecorded grade (ask)."""
from __future__ import annotations

import pytest

from cds_hooks.rules.neurologic import tdm1_peripheral_neuropathy

from .test_hepatic import RX, TDM1_DRAFT, context


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
