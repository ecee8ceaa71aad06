"""The patient-view summary: what it says about LVEF monitoring between HER2 antibody doses, and about LVEF records it
cannot use."""
from __future__ import annotations

from cds_hooks.rules import summary
from tests.facts.test_cardiac import SNOMED, administration, condition, days_ago, held_order, lvef, statement
from tests.rules.test_cardiac import RENDERER, context_for


def test_summary_says_lvef_overdue_on_the_dosing_day_of_a_3_weekly_cycle():
    context = context_for(condition("bc", SNOMED, "427685000"), lvef("a", "2026-05-31", 60),
                          administration("h1", "trastuzumab", "2026-10-11"), administration("h2", "trastuzumab", "2026-11-01"),
                          hook="patient-view")
    (finding,) = summary.her2_therapy_summary(context)
    card = RENDERER.render(finding)
    assert card.summary.endswith("LVEF 60% on 2026-05-31, overdue since 2026-08-23")
    # The therapy line agrees with it: the cover of the last dose has ended, the course has not.
    assert "**Current HER2-directed therapy:** trastuzumab since 2026-11-01." in card.detail


def test_summary_names_the_interval_that_applies_while_held_and_after_adjuvant_therapy():
    held = context_for(condition("bc", SNOMED, "427685000"), lvef("a", days_ago(35), 45), held_order("h", "2026-03-02"),
                       hook="patient-view")
    (finding,) = summary.her2_therapy_summary(held)
    detail = RENDERER.render(finding).detail
    assert f"**The next LVEF was due {days_ago(7)}** (every 4 weeks while trastuzumab is held)." in detail
    assert "**Current HER2-directed therapy:** trastuzumab since 2026-03-02, on hold." in detail
    course = statement("t", "trastuzumab", "2024-11-04", days_ago(365), status="completed")
    after = context_for(condition("bc", SNOMED, "427685000"), lvef("a", days_ago(100), 60), course, hook="patient-view")
    (finding,) = summary.her2_therapy_summary(after)
    assert f"Next LVEF due {days_ago(-82)} (every 6 months for at least 2 years after adjuvant trastuzumab ends)." in RENDERER.render(finding).detail


def test_summary_says_the_lvef_at_completion_of_adjuvant_trastuzumab_is_missing():
    course = statement("t", "trastuzumab", "2025-08-11", days_ago(100), status="completed")
    context = context_for(condition("bc", SNOMED, "427685000"), lvef("a", days_ago(180), 60), course, hook="patient-view")
    card = RENDERER.render(next(iter(summary.her2_therapy_summary(context))))
    assert card.summary.endswith(f"LVEF 60% on {days_ago(180)}, overdue since {days_ago(100)}")
    assert (f"**The next LVEF was due {days_ago(100)}**, at completion of adjuvant trastuzumab (its last dose): none was "
            "recorded\nthen. After it, every 6 months for at least 2 years.") in card.detail


def test_summary_names_an_lvef_record_newer_than_the_one_it_shows_that_cannot_be_used():
    def summary_card(unusable_day: str):
        context = context_for(condition("bc", SNOMED, "427685000"), lvef("a", "2026-11-02", 62),
                              lvef("b", unusable_day, 0.42, unit=None), administration("h1", "trastuzumab", "2026-11-02"),
                              hook="patient-view")
        (finding,) = summary.her2_therapy_summary(context)
        return RENDERER.render(finding)

    card = summary_card("2026-11-21")
    assert card.summary.endswith("LVEF 62% on 2026-11-02, next due 2027-01-25; a newer LVEF record could not be used")
    assert ("**LVEF:** 62% on 2026-11-02 (echocardiography).\n\n- A newer LVEF record dated 2026-11-21 could not be used: "
            "recorded as 0.42 with no unit") in card.detail
    older = summary_card("2026-10-01")
    assert "could not be used" not in older.summary + older.detail


def test_summary_without_a_usable_lvef_names_every_lvef_record_it_could_not_use():
    context = context_for(condition("bc", SNOMED, "427685000"), lvef("b", "2026-11-21", 0.42, unit=None), hook="patient-view")
    card = RENDERER.render(next(iter(summary.her2_therapy_summary(context))))
    assert card.summary.endswith("no LVEF on file")
    assert "**LVEF:** no LVEF on file.\n\n- An LVEF record dated 2026-11-21 could not be used: recorded as 0.42" in card.detail


def _metastatic_summary(*courses: dict):
    mets = condition("mets", SNOMED, "128462008")
    mets["onsetDateTime"] = "2026-10-01"
    context = context_for(condition("bc", SNOMED, "427685000"), mets, lvef("a", "2026-10-20", 60), *courses, hook="patient-view")
    return RENDERER.render(next(iter(summary.her2_therapy_summary(context))))


def test_summary_says_a_first_line_signed_to_start_later_is_planned_not_begun():
    card = _metastatic_summary(statement("d", "tdxd", "2026-11-29"))
    assert card.summary == "HER2+ metastatic breast cancer, metastatic line 1 planned from 2026-11-29; LVEF 60% on 2026-10-20"
    assert "- line 1 from 2026-11-29 (planned, not started): tdxd" in card.detail


def test_summary_counts_a_course_that_starts_today_as_the_current_line():
    card = _metastatic_summary(statement("d", "tdxd", "2026-11-22"))
    assert card.summary.startswith("HER2+ metastatic breast cancer, metastatic line 1 (estimate); LVEF 60% on 2026-10-20")
    assert "- line 1 from 2026-11-22: tdxd" in card.detail
    assert "planned" not in card.summary + card.detail


def test_summary_names_the_current_line_and_the_next_one_planned():
    card = _metastatic_summary(statement("h", "trastuzumab", "2026-10-05", "2026-11-16"), statement("d", "tdxd", "2026-12-01"))
    assert card.summary.startswith("HER2+ metastatic breast cancer, metastatic line 1 (estimate), next line 2 planned from "
                                   "2026-12-01; LVEF 60% on 2026-10-20")
    assert "- line 1 from 2026-10-05: trastuzumab\n- line 2 from 2026-12-01 (planned, not started): tdxd" in card.detail


def current_therapy_line(*medications: dict) -> str:
    """The summary's current-therapy line for an early breast cancer patient with these medication records."""
    context = context_for(condition("bc", SNOMED, "427685000"), lvef("a", "2026-10-20", 60), *medications,
                          hook="patient-view")
    detail = RENDERER.render(next(iter(summary.her2_therapy_summary(context)))).detail
    return next(line for line in detail.splitlines() if line.startswith("**Current HER2-directed therapy:**"))


def test_summary_says_a_her2_drug_other_than_trastuzumab_is_on_hold_when_its_record_is():
    def course(status: str) -> dict:
        return statement("k", "tdm1", "2026-09-01", status=status)

    assert current_therapy_line(course("on-hold")) == "**Current HER2-directed therapy:** tdm1 since 2026-09-01, on hold."
    # Near miss: the same course running.
    assert current_therapy_line(course("active")) == "**Current HER2-directed therapy:** tdm1 since 2026-09-01."


def test_summary_does_not_list_a_course_stopped_before_its_planned_end_as_current():
    def course(status: str) -> dict:
        return statement("h", "trastuzumab", "2026-06-01", "2027-03-01", status=status)

    assert current_therapy_line(course("stopped")) == "**Current HER2-directed therapy:** none recorded as ongoing."
    # Near miss: the same course active.
    assert current_therapy_line(course("active")) == "**Current HER2-directed therapy:** trastuzumab since 2026-06-01."


def test_summary_names_a_drug_given_in_several_recorded_doses_once():
    # Two T-DXd doses both within the drug's dosing cover: one course, since the earlier dose, not two.
    two_doses = (administration("d1", "tdxd", days_ago(28)), administration("d2", "tdxd", days_ago(7)))
    assert current_therapy_line(*two_doses) == f"**Current HER2-directed therapy:** tdxd since {days_ago(28)}."
    # Near miss: two different drugs stay two entries.
    assert current_therapy_line(two_doses[1], administration("p", "pertuzumab", days_ago(7))) == (
        f"**Current HER2-directed therapy:** tdxd since {days_ago(7)}; pertuzumab since {days_ago(7)}."
    )
