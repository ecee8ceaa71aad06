"""Rules 28-29: T-DM1 platelet holds at < 50,000 (warning) and < 25,000/mm³ (critical)."""
from __future__ import annotations

import pytest

from cds_hooks.rules.haematologic import tdm1_thrombocytopenia

from .test_hepatic import PRIOR_TDM1, TDM1_DRAFT, context, lab


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
