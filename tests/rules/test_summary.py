"""The patient-view summary: what it says about LVEF monitoring between HER2 antibody doses."""
from __future__ import annotations

from cds_hooks.rules import summary
from tests.facts.test_cardiac import SNOMED, administration, condition, lvef
from tests.rules.test_cardiac import RENDERER, context_for


def test_summary_says_lvef_overdue_on_the_dosing_day_of_a_3_weekly_cycle():
    context = context_for(condition("bc", SNOMED, "427685000"), lvef("a", "2026-05-31", 60),
                          administration("h1", "trastuzumab", "2026-10-11"), administration("h2", "trastuzumab", "2026-11-01"),
                          hook="patient-view")
    (finding,) = summary.her2_therapy_summary(context)
    card = RENDERER.render(finding)
    assert card.summary.endswith("LVEF 60% on 2026-05-31, overdue since 2026-08-23")
    # The therapy line agrees with it: the cover of the last dose has ended, the course has not.
    assert "**Current HER2-directed therapy:** trastuzumab since 2026-11-01" in card.detail
