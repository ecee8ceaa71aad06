"""Cardiac rules 12-21: thresholds at their edges, merging, and what the cards are given."""
from __future__ import annotations

from datetime import date

import pytest

from cds_hooks.dates import add_months
from cds_hooks.facts import Facts
from cds_hooks.facts.cardiac import LvefResult
from cds_hooks.record import build_record
from cds_hooks.render import CardRenderer
from cds_hooks.rules import cardiac
from cds_hooks.rules.base import RuleContext
from cds_hooks.settings import Settings
from tests.facts.test_cardiac import (
    ICD10CM,
    SNOMED,
    TODAY,
    administration,
    bsa,
    condition,
    days_ago,
    draft,
    held_order,
    lvef,
    request,
    statement,
    undated,
)

RENDERER = CardRenderer.load()


def context_for(*resources: dict, drafts: tuple[dict, ...] = (), hook: str = "order-sign", settings: Settings | None = None) -> RuleContext:
    settings = settings or Settings()
    record = build_record({"all": list(resources)}, list(drafts))
    focus = record.draft_orders if hook != "patient-view" else ()
    return RuleContext(hook, "p", record, Facts(record, TODAY, settings), focus, settings, TODAY)


def cards(rule_function, context: RuleContext) -> dict:
    findings = list(rule_function(context))
    for finding in findings:
        RENDERER.render(finding)  # every finding must render with its card file
    return {finding.card: finding for finding in findings}


def metastatic() -> dict:
    return condition("mets", SNOMED, "128462008")


def early() -> dict:
    return condition("bc", SNOMED, "427685000")


def result(value: float, low: float | None = None) -> LvefResult:
    return LvefResult(value=value, day=date(2026, 11, 2), method="echocardiography", reference="Observation/x", low=low)


# --- rule 12 ---------------------------------------------------------------------------------------------


def test_baseline_card_for_a_new_agent_even_after_other_her2_therapy():
    context = context_for(lvef("old", "2026-07-01", 60), statement("h", "trastuzumab", "2025-03-01", "2026-06-30", status="completed"),
                          drafts=(draft("d", "tdm1", "2026-11-23", 3.6),))
    found = cards(cardiac.baseline_lvef_before_first_dose, context)
    assert found["cardiac-baseline-lvef-missing"].values["orders"][0]["agents"] == "ado-trastuzumab emtansine (T-DM1)"


def test_no_baseline_card_for_a_continuing_agent():
    context = context_for(statement("h", "trastuzumab", "2026-03-02"), drafts=(draft("d", "trastuzumab", "2026-11-23"),))
    assert cards(cardiac.baseline_lvef_before_first_dose, context) == {}


def signed(rid: str, drug: str, start: str) -> dict:
    """A signed (active) order of the drug from `start`: an order, not a record of a dose given."""
    order = draft(rid, drug, start)
    return {**order, "status": "active"}


def test_a_signed_order_with_no_dose_given_and_no_lvef_on_record_is_no_started_course():
    # Signed from 2026-11-01, no administration, no LVEF ever: whenever its first dose is, no LVEF comes before it.
    maintenance = (draft("d", "trastuzumab", "2026-11-23", 6),)
    finding = cards(cardiac.baseline_lvef_before_first_dose, context_for(signed("s", "trastuzumab", "2026-11-01"), drafts=maintenance))
    detail = RENDERER.render(finding["cardiac-baseline-lvef-missing"]).detail
    assert "Also on record: trastuzumab (MedicationRequest active, since 2026-11-01, no end date), a signed order" in detail
    assert cards(cardiac.lvef_monitoring_due, context_for(signed("s", "trastuzumab", "2026-11-01"), drafts=maintenance)) == {}
    # Near misses: a dose recorded as given starts the course (rule 13's card instead), and an LVEF on record before
    # the signed order is a baseline.
    given = context_for(signed("s", "trastuzumab", "2026-11-01"), administration("a", "trastuzumab", "2026-11-01"), drafts=maintenance)
    assert cards(cardiac.baseline_lvef_before_first_dose, given) == {}
    assert "cardiac-lvef-due" in cards(cardiac.lvef_monitoring_due, given)
    measured = context_for(signed("s", "trastuzumab", "2026-11-01"), lvef("e", "2026-10-20", 60), drafts=maintenance)
    assert cards(cardiac.baseline_lvef_before_first_dose, measured) == {}


def test_a_course_signed_to_start_after_today_has_not_begun():
    # Signed from 2026-12-01, maintenance drafted from 2026-12-22, last LVEF 2026-06-20: no dose given yet.
    maintenance = (draft("d", "trastuzumab", "2026-12-22", 6),)
    context = context_for(signed("s", "trastuzumab", "2026-12-01"), lvef("e", "2026-06-20", 60), drafts=maintenance)
    detail = RENDERER.render(cards(cardiac.baseline_lvef_before_first_dose, context)["cardiac-baseline-lvef-missing"]).detail
    assert "(MedicationRequest active, since 2026-12-01, no end date), not begun yet." in detail
    assert cards(cardiac.lvef_monitoring_due, context) == {}
    # Near miss: signed from today, the course begins today; a statement from today likewise.
    for begun in (signed("s", "trastuzumab", "2026-11-22"), statement("s", "trastuzumab", "2026-11-22")):
        context = context_for(begun, lvef("e", "2026-06-20", 60), drafts=maintenance)
        assert cards(cardiac.baseline_lvef_before_first_dose, context) == {}


def test_baseline_window_is_counted_from_the_planned_start():
    recent = context_for(lvef("a", "2026-09-02", 60), drafts=(draft("d", "trastuzumab", "2026-12-01"),))
    stale = context_for(lvef("a", "2026-09-01", 60), drafts=(draft("d", "trastuzumab", "2026-12-01"),))
    assert cards(cardiac.baseline_lvef_before_first_dose, recent) == {}
    assert "cardiac-baseline-lvef-missing" in cards(cardiac.baseline_lvef_before_first_dose, stale)


def test_baseline_window_is_counted_from_today_when_the_planned_start_is_past():
    # Planned for 2026-09-01 and still a draft on 2026-11-22: the first dose is today at the earliest.
    september = (draft("d", "trastuzumab", "2026-09-01"),)
    (found,) = cards(cardiac.baseline_lvef_before_first_dose, context_for(lvef("a", "2026-07-01", 60), drafts=september)).values()
    assert found.values["orders"][0]["start"] == date(2026, 9, 1)
    # Near miss: an LVEF within the 90 days before today.
    assert cards(cardiac.baseline_lvef_before_first_dose, context_for(lvef("a", "2026-08-24", 60), drafts=september)) == {}


def test_baseline_card_names_each_agent_once_and_only_its_first_drafted_dose():
    # THP signed with its maintenance: pertuzumab and trastuzumab loads on 2026-12-01, maintenance from 2026-12-22.
    drafts = (draft("p-load", "pertuzumab", "2026-12-01", 840, "mg"), draft("h-load", "trastuzumab", "2026-12-01"),
              draft("p-next", "pertuzumab", "2026-12-22", 420, "mg"), draft("h-next", "trastuzumab", "2026-12-22", 6))
    rendered = RENDERER.render(cards(cardiac.baseline_lvef_before_first_dose, context_for(drafts=drafts))["cardiac-baseline-lvef-missing"])
    assert rendered.summary == "Measure a baseline LVEF (echo or MUGA) before the first dose of pertuzumab and trastuzumab"
    assert "planned from 2026-12-01: first dose of pertuzumab" in rendered.detail
    assert "planned from 2026-12-01: first dose of trastuzumab" in rendered.detail
    assert "2026-12-22" not in rendered.detail
    # Near miss: a maintenance draft with a new agent of its own is still that agent's first dose.
    with_new_agent = drafts[:3] + (draft("tdm1", "tdm1", "2026-12-22", 3.6),)
    rendered = RENDERER.render(cards(cardiac.baseline_lvef_before_first_dose, context_for(drafts=with_new_agent))["cardiac-baseline-lvef-missing"])
    assert rendered.summary.endswith("first dose of ado-trastuzumab emtansine (T-DM1) and pertuzumab and trastuzumab")
    assert "planned from 2026-12-22: first dose of ado-trastuzumab emtansine" in rendered.detail


def test_baseline_suggestion_is_a_draft_lvef_service_request():
    context = context_for(drafts=(draft("d", "doxorubicin", "2026-12-01", 60, "mg/m2"),))
    (suggestion,) = cards(cardiac.baseline_lvef_before_first_dose, context)["cardiac-baseline-lvef-missing"].suggestions
    resource = suggestion.actions[0].resource
    assert resource["resourceType"] == "ServiceRequest" and resource["status"] == "draft" and resource["intent"] == "order"
    assert resource["code"]["coding"][0]["code"] == "10230-1" and resource["subject"] == {"reference": "Patient/p"}


def test_a_unitless_fraction_is_no_baseline_and_the_card_says_why():
    fraction = context_for(lvef("echo", "2026-11-20", 0.55, unit=None), drafts=(draft("d", "trastuzumab", "2026-12-01"),))
    finding = cards(cardiac.baseline_lvef_before_first_dose, fraction)["cardiac-baseline-lvef-missing"]
    assert "Observation/echo" in finding.evidence
    detail = RENDERER.render(finding).detail
    assert "No usable LVEF result on record." in detail
    assert "An LVEF record dated 2026-11-20 could not be used: recorded as 0.55 with no unit, not read as 0.55%" in detail


def test_a_unitless_lvef_that_is_plainly_a_percentage_is_a_baseline():
    context = context_for(lvef("echo", "2026-11-20", 55, unit=None), drafts=(draft("d", "trastuzumab", "2026-12-01"),))
    assert cards(cardiac.baseline_lvef_before_first_dose, context) == {}


# --- rule 13 ---------------------------------------------------------------------------------------------


def test_lvef_due_not_shown_for_a_first_dose_that_rule_12_covers():
    context = context_for(statement("h", "trastuzumab", "2026-03-02"), drafts=(draft("d", "pertuzumab", "2026-11-23", 840, "mg"),))
    assert "cardiac-baseline-lvef-missing" in cards(cardiac.baseline_lvef_before_first_dose, context)
    assert cards(cardiac.lvef_monitoring_due, context) == {}


def test_lvef_due_at_a_continuing_dose_is_judged_on_today_when_the_planned_start_is_past():
    # Last LVEF 2026-06-20, due 84 days later (2026-09-12): after the planned start 2026-09-01, before today.
    on_therapy = statement("h", "trastuzumab", "2026-03-02")
    september = (draft("d", "trastuzumab", "2026-09-01", 6),)
    found = cards(cardiac.lvef_monitoring_due, context_for(on_therapy, lvef("a", "2026-06-20", 60), drafts=september))
    assert found["cardiac-lvef-due"].values["due"] == date(2026, 9, 12)
    assert found["cardiac-lvef-due"].values["orders"] == [{"order": "trastuzumab", "start": date(2026, 9, 1)}]
    # Near miss: the last LVEF is due 2026-11-24, after today.
    assert cards(cardiac.lvef_monitoring_due, context_for(on_therapy, lvef("a", "2026-09-01", 60), drafts=september)) == {}


def test_lvef_due_on_patient_view_only_while_on_therapy():
    on = context_for(lvef("a", "2026-05-25", 60), statement("h", "trastuzumab", "2026-03-02"), hook="patient-view")
    off = context_for(lvef("a", "2026-05-25", 60), statement("h", "trastuzumab", "2025-03-01", "2026-06-01", status="completed"),
                      hook="patient-view")
    assert cards(cardiac.lvef_monitoring_due, on)["cardiac-lvef-due"].values["due"] == date(2026, 8, 17)
    assert cards(cardiac.lvef_monitoring_due, off) == {}


def test_lvef_due_on_patient_view_on_the_dosing_day_of_a_3_weekly_cycle():
    context = context_for(lvef("a", "2026-05-31", 60), administration("h1", "trastuzumab", "2026-10-11"),
                          administration("h2", "trastuzumab", "2026-11-01"), hook="patient-view")
    found = cards(cardiac.lvef_monitoring_due, context)["cardiac-lvef-due"]
    assert found.values["due"] == date(2026, 8, 23) and found.values["drugs"] == "trastuzumab"



def test_lvef_due_on_patient_view_every_4_weeks_while_trastuzumab_is_held():
    def held(last_lvef_days_ago: int) -> RuleContext:
        return context_for(lvef("a", days_ago(last_lvef_days_ago), 45), held_order("h", "2026-03-02"),
                           administration("h1", "trastuzumab", days_ago(42)), hook="patient-view")

    finding = cards(cardiac.lvef_monitoring_due, held(35))["cardiac-lvef-due"]
    assert (finding.values["schedule"], finding.values["interval_days"]) == ("held", 28)
    assert finding.evidence == ("MedicationRequest/h", "Observation/a")
    card = RENDERER.render(finding)
    assert card.summary.startswith("LVEF due while trastuzumab is held (every 4 weeks): last 45%")
    assert 'MedicationRequest on-hold, since 2026-03-02, no end date; reason recorded: "LVEF fell from 62% to 45%"' in card.detail
    assert "While trastuzumab is held, LVEF is repeated every 4 weeks (28 days)." in card.detail
    assert cards(cardiac.lvef_monitoring_due, held(20)) == {}


def test_an_old_order_left_on_hold_under_a_later_active_order_gives_only_the_on_therapy_interval():
    context = context_for(lvef("a", days_ago(35), 60), held_order("old", "2026-03-02"), statement("new", "trastuzumab", "2026-07-01"),
                          hook="patient-view")
    assert cards(cardiac.lvef_monitoring_due, context) == {}


def test_a_her2_antibody_drafted_to_resume_held_trastuzumab_needs_an_lvef_within_4_weeks_of_its_start():
    def resuming(start: str, *extra: dict) -> RuleContext:
        return context_for(lvef("a", "2026-11-02", 45), administration("h1", "trastuzumab", "2026-10-12"), *extra,
                           drafts=(draft("d", "trastuzumab", start),))

    finding = cards(cardiac.lvef_monitoring_due, resuming("2026-11-30", held_order("h", "2026-03-02", drug_text="Herzuma")))["cardiac-lvef-due"]
    assert (finding.values["schedule"], finding.values["due"]) == ("held", date(2026, 11, 30))
    assert finding.evidence == ("MedicationRequest/d", "MedicationRequest/h", "Observation/a")
    card = RENDERER.render(finding)
    # The held drug is named as the record names it, not as the drafted order does.
    assert card.summary.startswith("LVEF due while Herzuma is held (every 4 weeks)")
    assert "trastuzumab planned from 2026-11-30: it would resume HER2 therapy while trastuzumab is held" in card.detail
    assert cards(cardiac.lvef_monitoring_due, resuming("2026-11-29", held_order("h", "2026-03-02"))) == {}
    # Not held: the on-therapy interval.
    assert cards(cardiac.lvef_monitoring_due, resuming("2026-11-30")) == {}


def test_lvef_due_on_patient_view_every_6_months_for_2_years_after_adjuvant_trastuzumab():
    def after(ended_days_ago: int, last_lvef_days_ago: int, *extra: dict) -> RuleContext:
        course = statement("h", "trastuzumab", "2024-01-08", days_ago(ended_days_ago), status="completed")
        return context_for(early(), course, lvef("a", days_ago(last_lvef_days_ago), 60), *extra, hook="patient-view")

    finding = cards(cardiac.lvef_monitoring_due, after(365, 213))["cardiac-lvef-due"]
    assert (finding.values["schedule"], finding.values["interval_days"]) == ("after-adjuvant", 182)
    card = RENDERER.render(finding)
    assert card.summary.startswith("LVEF due after adjuvant trastuzumab (every 6 months for 2 years): last 60%")
    assert f"ended: last dose {days_ago(365)}." in card.detail
    assert "LVEF every 6 months (182 days) for at least 2 years" in card.detail
    assert f"until at least {add_months(date.fromisoformat(days_ago(365)), 24)}." in card.detail
    assert cards(cardiac.lvef_monitoring_due, after(913, 300)) == {}  # 2.5 years after the end
    assert cards(cardiac.lvef_monitoring_due, after(365, 300, metastatic())) == {}
    assert cards(cardiac.lvef_monitoring_due, after(365, 152)) == {}  # LVEF 5 months old


def test_lvef_due_on_patient_view_at_completion_of_adjuvant_trastuzumab_when_none_was_recorded():
    def after(*extra: dict, course: dict | None = None) -> RuleContext:  # the last dose 100 days ago
        course = course or statement("h", "trastuzumab", "2025-08-11", days_ago(100), status="completed")
        return context_for(early(), course, *extra, hook="patient-view")

    finding = cards(cardiac.lvef_monitoring_due, after(lvef("a", days_ago(180), 60)))["cardiac-lvef-due"]
    assert (finding.values["due"], finding.values["completion_lvef_missing"]) == (date.fromisoformat(days_ago(100)), True)
    card = RENDERER.render(finding)
    assert card.summary.startswith(f"LVEF due at completion of adjuvant trastuzumab (none recorded): last 60% on {days_ago(180)}")
    assert (f"- No LVEF was recorded at completion of adjuvant trastuzumab: the last LVEF, 60% on {days_ago(180)}\n"
            f"  (echocardiography), was 80 days before the last dose on {days_ago(100)}.\n"
            "  The label asks for one at completion, then every 6 months for at least 2 years: it was due by the last "
            f"dose ({days_ago(100)}).") in card.detail
    assert 'The label gives no window for "at completion": an LVEF dated 28 days or less before the last dose' in card.detail
    assert "Last LVEF:" not in card.detail
    # No LVEF at all: the one at completion is missing too.
    detail = RENDERER.render(cards(cardiac.lvef_monitoring_due, after())["cardiac-lvef-due"]).detail
    assert "- No LVEF was recorded at completion of adjuvant trastuzumab: no LVEF result is on record." in detail
    # A completed order that dates no dose: its last dose was on or after it was authored.
    order = {**request("h", "trastuzumab", 3, "wk"), "authoredOn": days_ago(100)}
    detail = RENDERER.render(cards(cardiac.lvef_monitoring_due, after(lvef("a", days_ago(180), 60), course=order))["cardiac-lvef-due"]).detail
    assert f"was at least 80 days before the last dose (not dated, on or after {days_ago(100)})." in detail
    # An LVEF 2 weeks before the last dose is the one at completion, and the next is not due for 6 months after it.
    assert cards(cardiac.lvef_monitoring_due, after(lvef("a", days_ago(114), 60))) == {}


# --- LVEF tables (rules 14-18) ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, low, drop, action, criterion",
    [
        (50, 50, 16, "hold", "us-drop"),
        (52, 50, 15, "continue", ""),
        (49, 50, 10, "hold", "us-lln"),
        (49, 50, 9, "continue", ""),
        (52, 53, 10, "hold", "us-lln"),      # the result's own LLN, not 50%
        (49, None, 10, "hold", "us-lln"),    # no reference range: 50% assumed
        (49, None, None, "needs-baseline", "us-below-lln-no-baseline"),
        # At a normal LVEF only a fall of 16 points holds, and it cannot be ruled out without the pretreatment value.
        (55, 50, None, "needs-baseline", "us-normal-no-baseline"),
        (72, None, None, "needs-baseline", "us-normal-no-baseline"),
    ],
)
def test_trastuzumab_us_table(value, low, drop, action, criterion):
    verdict = cardiac._trastuzumab_verdict(result(value, low), drop, "US")
    assert (verdict.action, verdict.criterion) == (action, criterion)
    if criterion and low is None:
        assert verdict.lln == 50 and verdict.lln_assumed


@pytest.mark.parametrize(
    "value, drop, action",
    [(49, 10, "hold"), (50, 20, "continue"), (49, 9, "continue"), (45, None, "needs-baseline"), (55, None, "continue")],
)
def test_trastuzumab_eu_table(value, drop, action):
    assert cardiac._trastuzumab_verdict(result(value), drop, "EU").action == action


@pytest.mark.parametrize(
    "value, drop, table, action",
    [
        (44, 0, "mbc", "hold"), (45, 9, "mbc", "continue"), (49, 10, "mbc", "hold"), (50, 30, "mbc", "continue"),
        (44, 9, "ebc", "continue"), (49, 10, "ebc", "hold"), (47, None, "ebc", "needs-baseline"),
        (50, None, "mbc", "continue"), (50, None, "ebc", "continue"),
    ],
)
def test_pertuzumab_table(value, drop, table, action):
    assert cardiac._pertuzumab_verdict(value, drop, table).action == action


@pytest.mark.parametrize(
    "value, drop, table, action",
    [
        (39.9, 0, "mbc", "hold"), (40, 10, "mbc", "hold"), (45, 9, "mbc", "repeat"), (45.5, 20, "mbc", "continue"),
        (42, None, "mbc", "needs-baseline"), (45.5, None, "mbc", "continue"),
        (44.9, 0, "ebc", "hold"), (50, None, "ebc", "continue"), (49.9, 10, "ebc", "hold"), (49, 9, "ebc", "continue"), (50, 25, "ebc", "continue"),
    ],
)
def test_tdm1_tables(value, drop, table, action):
    assert cardiac._tdm1_verdict(value, drop, table).action == action


@pytest.mark.parametrize(
    "value, drop, action",
    [(39, None, "hold"), (50, 21, "hold"), (50, 20, "continue"), (45, 10, "hold"), (45, 9, "repeat"), (40, 20, "hold"),
     (43, None, "needs-baseline"), (46, None, "needs-baseline"), (70, None, "needs-baseline")],
)
def test_tdxd_table(value, drop, action):
    assert cardiac._tdxd_verdict(value, drop).action == action


def test_tdxd_without_baseline_names_the_criterion_it_cannot_check():
    assert cardiac._tdxd_verdict(45, None).criterion == "band-no-baseline"
    assert cardiac._tdxd_verdict(46, None).criterion == "above-45-no-baseline"


def on_trastuzumab_with_drop(*extra: dict) -> tuple[dict, ...]:
    return (metastatic(), lvef("pre", "2026-02-20", 62, low=53), lvef("now", "2026-11-02", 44, low=53),
            statement("h", "trastuzumab", "2026-03-02"), *extra)


def test_trastuzumab_and_pertuzumab_drafts_share_one_hold_card_that_removes_both():
    drafts = (draft("t", "trastuzumab", "2026-11-23"), draft("p", "pertuzumab", "2026-11-23", 420, "mg"))
    context = context_for(*on_trastuzumab_with_drop(), drafts=drafts)
    finding = cards(cardiac.trastuzumab_pertuzumab_lvef_hold, context)["cardiac-lvef-hold-trastuzumab-pertuzumab"]
    assert [v["criterion"] for v in finding.values["verdicts"]] == ["us-drop", "mbc-below-45"]
    assert {a.resource_id for s in finding.suggestions for a in s.actions} == {"MedicationRequest/t", "MedicationRequest/p"}


@pytest.mark.parametrize(("drugs", "withhold"), [
    (("trastuzumab", "pertuzumab"), "Withhold trastuzumab and pertuzumab: LVEF 44% on 2026-11-02"),
    (("trastuzumab",), "Withhold trastuzumab: LVEF 44% on 2026-11-02"),
    (("pertuzumab",), "Withhold pertuzumab: LVEF 44% on 2026-11-02"),
])
def test_the_hold_summary_names_the_antibodies_drafted_before_the_record_s_names(drugs, withhold):
    doses = {"trastuzumab": (6, "mg/kg"), "pertuzumab": (420, "mg")}
    drafts = tuple(draft(drug[0], drug, "2026-11-23", *doses[drug]) for drug in drugs)
    finding = cards(cardiac.trastuzumab_pertuzumab_lvef_hold, context_for(*on_trastuzumab_with_drop(), drafts=drafts))
    assert RENDERER.render(finding["cardiac-lvef-hold-trastuzumab-pertuzumab"]).summary.startswith(withhold)


def test_eu_jurisdiction_uses_the_smpc_threshold():
    resources = (metastatic(), lvef("pre", "2026-02-20", 60), lvef("now", "2026-11-02", 49), statement("h", "trastuzumab", "2026-03-02"))
    drafts = (draft("t", "trastuzumab", "2026-11-23"),)
    eu = cards(cardiac.trastuzumab_pertuzumab_lvef_hold, context_for(*resources, drafts=drafts, settings=Settings(jurisdiction="EU")))
    assert eu["cardiac-lvef-hold-trastuzumab-pertuzumab"].values["verdicts"][0]["criterion"] == "eu-drop"
    assert "Suspend trastuzumab" in RENDERER.render(eu["cardiac-lvef-hold-trastuzumab-pertuzumab"]).detail


def test_tdm1_is_not_read_with_the_trastuzumab_table():
    context = context_for(*on_trastuzumab_with_drop(), drafts=(draft("k", "tdm1", "2026-11-23", 3.6),))
    assert cards(cardiac.trastuzumab_pertuzumab_lvef_hold, context) == {}
    assert "cardiac-lvef-hold-tdm1" in cards(cardiac.tdm1_lvef, context)


def test_tdm1_repeat_card_only_for_patients_already_on_her2_therapy():
    on_therapy = context_for(metastatic(), lvef("pre", "2026-06-20", 50), lvef("now", "2026-11-02", 43),
                             statement("k", "tdm1", "2026-07-01"), drafts=(draft("k", "tdm1", "2026-11-23", 3.6),))
    first_dose = context_for(metastatic(), lvef("now", "2026-11-02", 43), drafts=(draft("k", "tdm1", "2026-11-23", 3.6),))
    assert "cardiac-lvef-repeat-tdm1" in cards(cardiac.tdm1_lvef, on_therapy)
    assert cards(cardiac.tdm1_lvef, first_dose) == {}


def on_tdm1_with_latest(value: float, unit: str | None) -> RuleContext:
    return context_for(metastatic(), lvef("pre", "2026-02-20", 60), lvef("now", "2026-11-02", value, unit=unit),
                       statement("h", "trastuzumab", "2026-03-02", "2026-06-30", status="completed"),
                       statement("k", "tdm1", "2026-07-10"), drafts=(draft("k", "tdm1", "2026-11-23", 3.6),))


@pytest.mark.parametrize("value, unit", [(0.55, None), (0.38, None), (1, None), (0.38, "1"), (0.38, "{fraction}"), (-5, "%"),
                                         (155, "%"), (155, None)])
def test_an_lvef_not_plainly_a_percentage_gives_no_table_card(value, unit):
    context = on_tdm1_with_latest(value, unit)
    assert cards(cardiac.tdm1_lvef, context) == {}
    assert cards(cardiac.lvef_drop_not_assessable, context) == {}
    series = context.facts.get(cardiac.lvef_series)
    assert [u.reference for u in series.unusable] == ["Observation/now"] and series.latest.reference == "Observation/pre"


@pytest.mark.parametrize("value, unit", [(38, None), (1.5, None), (38, "%")])
def test_a_unitless_lvef_above_1_is_read_as_a_percentage_by_the_tables(value, unit):
    finding = cards(cardiac.tdm1_lvef, on_tdm1_with_latest(value, unit))["cardiac-lvef-hold-tdm1"]
    assert finding.values["latest"]["value"] == value


def test_a_unitless_55_on_tdm1_is_read_and_continues():
    context = on_tdm1_with_latest(55, None)
    assert cards(cardiac.tdm1_lvef, context) == {}
    assert context.facts.get(cardiac.lvef_series).latest.value == 55


def test_unknown_setting_applies_both_tdm1_tables():
    context = context_for(lvef("pre", "2026-06-20", 58), lvef("now", "2026-11-02", 47), statement("k", "tdm1", "2026-07-01"),
                          drafts=(draft("k", "tdm1", "2026-11-23", 3.6),))
    finding = cards(cardiac.tdm1_lvef, context)["cardiac-lvef-hold-tdm1"]
    assert finding.values["setting"] == "unknown"
    assert [v["table"] for v in finding.values["verdicts"]] == ["ebc"]


def test_baseline_unknown_card_names_each_family_that_needs_it():
    context = context_for(metastatic(), lvef("now", "2026-11-02", 43), statement("h", "trastuzumab", "2026-03-02"),
                          drafts=(draft("t", "trastuzumab", "2026-11-23"), draft("x", "tdm1", "2026-11-23", 3.6)))
    finding = cards(cardiac.lvef_drop_not_assessable, context)["cardiac-lvef-baseline-unknown"]
    assert [f["family"] for f in finding.values["families"]] == ["trastuzumab-pertuzumab", "tdm1"]


def test_baseline_unknown_card_when_the_record_does_not_date_the_her2_therapy_given():
    # On trastuzumab by a statement with no dates, LVEF 65% then 45%: a fall of 20 points if the 65% was pretreatment.
    def on_trastuzumab(course: dict) -> RuleContext:
        return context_for(metastatic(), lvef("old", "2026-02-20", 65, low=50), lvef("now", "2026-11-02", 45, low=50), course,
                           drafts=(draft("t", "trastuzumab", "2026-11-23", 6),))

    context = on_trastuzumab(undated(statement("h", "trastuzumab", "2026-03-02")))
    finding = cards(cardiac.lvef_drop_not_assessable, context)["cardiac-lvef-baseline-unknown"]
    assert finding.values["families"][0]["verdicts"][0]["criterion"] == "us-below-lln-no-baseline"
    assert ("no LVEF on record before the first HER2 antibody dose (the record does not date it, so no LVEF can be shown "
            "to come before it).") in " ".join(RENDERER.render(finding).detail.split())
    assert cards(cardiac.trastuzumab_pertuzumab_lvef_hold, context) == {}
    # Near miss: the course dated from 2026-03-02 makes the 65% the pretreatment value, and the fall a hold.
    dated = on_trastuzumab(statement("h", "trastuzumab", "2026-03-02"))
    assert cards(cardiac.lvef_drop_not_assessable, dated) == {}
    assert cards(cardiac.trastuzumab_pertuzumab_lvef_hold, dated)["cardiac-lvef-hold-trastuzumab-pertuzumab"].values["drop"] == 20


def test_a_hold_card_does_not_call_the_latest_lvef_pretreatment_when_the_her2_therapy_given_is_undated():
    context = context_for(metastatic(), lvef("now", "2026-11-02", 38), undated(statement("k", "tdm1", "2026-07-10")),
                          drafts=(draft("k", "tdm1", "2026-11-23", 3.6),))
    detail = RENDERER.render(cards(cardiac.tdm1_lvef, context)["cardiac-lvef-hold-tdm1"]).detail
    assert "This is the pretreatment value" not in detail
    assert ("- No pretreatment LVEF on record: the record does not date the first HER2 antibody dose, so no LVEF can be "
            "shown to come before it.") in detail


def test_baseline_unknown_card_at_a_normal_lvef_on_trastuzumab():
    context = context_for(metastatic(), lvef("now", "2026-11-02", 55, low=50), statement("h", "trastuzumab", "2026-03-02"),
                          drafts=(draft("t", "trastuzumab", "2026-11-23", 6),))
    finding = cards(cardiac.lvef_drop_not_assessable, context)["cardiac-lvef-baseline-unknown"]
    assert finding.values["families"][0]["verdicts"][0]["criterion"] == "us-normal-no-baseline"
    card = RENDERER.render(finding)
    assert "LVEF 55%" in card.summary and "fallen 16 points or more" in card.detail


def test_baseline_unknown_card_at_a_normal_lvef_on_tdxd():
    context = context_for(metastatic(), lvef("now", "2026-11-02", 46), statement("x", "tdxd", "2026-06-01"),
                          drafts=(draft("x", "tdxd", "2026-11-23", 5.4),))
    card = RENDERER.render(cards(cardiac.lvef_drop_not_assessable, context)["cardiac-lvef-baseline-unknown"])
    assert "more than 20 points" in card.detail


def test_no_baseline_unknown_card_for_a_first_dose_drafted_before_the_latest_echo():
    context = context_for(metastatic(), lvef("now", "2026-11-10", 60, low=50), drafts=(draft("t", "trastuzumab", "2026-11-01"),))
    assert cards(cardiac.lvef_drop_not_assessable, context) == {}


def test_no_baseline_unknown_card_where_a_normal_lvef_decides_whatever_the_fall():
    tdm1 = context_for(metastatic(), lvef("now", "2026-11-02", 46), statement("k", "tdm1", "2026-07-01"),
                       drafts=(draft("k", "tdm1", "2026-11-23", 3.6),))
    pertuzumab = context_for(metastatic(), lvef("now", "2026-11-02", 55), statement("p", "pertuzumab", "2026-03-02"),
                             drafts=(draft("p", "pertuzumab", "2026-11-23", 420, "mg"),))
    trastuzumab_eu = context_for(metastatic(), lvef("now", "2026-11-02", 55), statement("h", "trastuzumab", "2026-03-02"),
                                 drafts=(draft("t", "trastuzumab", "2026-11-23", 6),), settings=Settings(jurisdiction="EU"))
    for context in (tdm1, pertuzumab, trastuzumab_eu):
        assert cards(cardiac.lvef_drop_not_assessable, context) == {}


# --- a newer LVEF record that cannot be used (rules 13-19, 23, summary) -----------------------------------

NEWER_UNUSABLE = ("A newer LVEF record dated 2026-11-16 could not be used: recorded as 0.35 with no unit, not read as 0.35% "
                  "\\(it may be a fraction\\). Check it before relying on the result above.")
SUMMARY_MARK = "; a newer LVEF record could not be used"


def newer_unusable() -> dict:
    return lvef("newer", "2026-11-16", 0.35, unit=None)


def older_unusable() -> dict:
    return lvef("older", "2026-01-10", 0.35, unit=None)


def on_tdm1(*lvefs: dict) -> RuleContext:
    """Metastatic, on T-DM1 since 2026-07-10 after trastuzumab (baseline 60%), with a T-DM1 dose drafted."""
    return context_for(metastatic(), lvef("pre", "2026-02-20", 60), *lvefs,
                       statement("h", "trastuzumab", "2026-03-02", "2026-06-30", status="completed"),
                       statement("k", "tdm1", "2026-07-10"), drafts=(draft("k", "tdm1", "2026-11-23", 3.6),))


def test_a_newer_lvef_record_that_cannot_be_used_is_named_when_a_her2_antibody_is_drafted():
    # Last week's echo recorded as 0.35 (it may be 35%, a hold); the tables can only read July's 55%.
    context = on_tdm1(lvef("july", "2026-07-13", 55), newer_unusable())
    finding = cards(cardiac.newest_lvef_unusable, context)["cardiac-lvef-newest-unusable"]
    assert finding.evidence == ("MedicationRequest/k", "Observation/newer", "Observation/july")
    card = RENDERER.render(finding)
    assert card.indicator == "warning"
    assert card.summary == "A newer LVEF record could not be used; last usable LVEF 55% on 2026-07-13; tdm1 ordered"
    assert "- Latest usable LVEF: 55% on 2026-07-13 (echocardiography).\n- " + NEWER_UNUSABLE in card.detail
    # LVEF is due by the July result: that card names the newer record too.
    due = RENDERER.render(cards(cardiac.lvef_monitoring_due, context)["cardiac-lvef-due"])
    assert due.summary.endswith("last 55% on 2026-07-13" + SUMMARY_MARK) and NEWER_UNUSABLE in due.detail


def test_an_unusable_lvef_record_not_newer_than_the_latest_usable_one_is_not_named():
    older = on_tdm1(lvef("older", "2026-07-13", 0.35, unit=None), lvef("now", "2026-11-16", 55))
    # Two records of one day (a fraction and a percentage, as some echo systems send both): the day's result is read.
    same_day = on_tdm1(lvef("fraction", "2026-11-16", 0.55, unit=None), lvef("now", "2026-11-16", 55))
    for context in (older, same_day):
        assert cards(cardiac.newest_lvef_unusable, context) == {}
    due = RENDERER.render(cards(cardiac.lvef_monitoring_due, on_tdm1(older_unusable(), lvef("july", "2026-07-13", 55)))["cardiac-lvef-due"])
    assert "could not be used" not in due.summary + due.detail


def test_an_undated_lvef_record_may_be_newer_and_is_named():
    undated = {**lvef("undated", "2026-01-01", 35), "effectiveDateTime": None}
    card = RENDERER.render(cards(cardiac.newest_lvef_unusable, on_tdm1(lvef("now", "2026-11-16", 55), undated))["cardiac-lvef-newest-unusable"])
    assert card.summary.startswith("An undated LVEF record could not be used")
    assert ("An LVEF record with no date (it may be newer) could not be used: it has no date. "
            "Check it before relying on the result above.") in card.detail


def test_no_newer_lvef_warning_without_a_drafted_her2_antibody_or_any_usable_lvef():
    paclitaxel = context_for(lvef("july", "2026-07-13", 55), newer_unusable(), statement("k", "tdm1", "2026-07-10"),
                             drafts=(draft("t", "paclitaxel", "2026-11-23", 80, "mg/m2"),))
    assert cards(cardiac.newest_lvef_unusable, paclitaxel) == {}
    # With no usable LVEF nothing older stands in for it; the LVEF-due card lists the record.
    only_unusable = context_for(newer_unusable(), statement("k", "tdm1", "2026-07-10"), drafts=(draft("k", "tdm1", "2026-11-23", 3.6),))
    assert cards(cardiac.newest_lvef_unusable, only_unusable) == {}
    due = RENDERER.render(cards(cardiac.lvef_monitoring_due, only_unusable)["cardiac-lvef-due"])
    assert "An LVEF record dated 2026-11-16 could not be used: recorded as 0.35 with no unit" in due.detail
    assert "could not be used" not in due.summary


def test_newer_lvef_warning_on_patient_view_only_while_lvef_monitoring_applies():
    # The LVEF 3 weeks old is not due; yesterday's record cannot be used.
    def chart(*therapy: dict) -> RuleContext:
        return context_for(lvef("now", "2026-11-02", 62), lvef("newer", "2026-11-21", 0.42, unit=None), *therapy, hook="patient-view")

    on = chart(administration("h1", "trastuzumab", "2026-10-12"), administration("h2", "trastuzumab", "2026-11-02"))
    assert cards(cardiac.lvef_monitoring_due, on) == {}
    finding = cards(cardiac.newest_lvef_unusable, on)["cardiac-lvef-newest-unusable"]
    assert finding.evidence == ("Observation/newer", "Observation/now")
    assert RENDERER.render(finding).summary == "A newer LVEF record could not be used; last usable LVEF 62% on 2026-11-02; HER2 therapy: trastuzumab"
    long_after = chart(statement("h", "trastuzumab", "2022-01-03", "2023-01-02", status="completed"))
    assert cards(cardiac.newest_lvef_unusable, long_after) == {}


LVEF_CARDS = {
    "tdm1-hold": (cardiac.tdm1_lvef, "cardiac-lvef-hold-tdm1", True,
                  (metastatic(), lvef("pre", "2026-02-20", 62), lvef("now", "2026-11-02", 38), statement("k", "tdm1", "2026-07-10")),
                  draft("k", "tdm1", "2026-11-23", 3.6)),
    "tdm1-repeat": (cardiac.tdm1_lvef, "cardiac-lvef-repeat-tdm1", True,
                    (metastatic(), lvef("pre", "2026-06-20", 50), lvef("now", "2026-11-02", 43), statement("k", "tdm1", "2026-07-01")),
                    draft("k", "tdm1", "2026-11-23", 3.6)),
    "tdxd-hold": (cardiac.tdxd_lvef, "cardiac-lvef-hold-tdxd", True,
                  (metastatic(), lvef("now", "2026-11-02", 39), statement("x", "tdxd", "2026-06-01")), draft("x", "tdxd", "2026-11-23", 5.4)),
    "tdxd-repeat": (cardiac.tdxd_lvef, "cardiac-lvef-repeat-tdxd", True,
                    (metastatic(), lvef("pre", "2026-05-20", 50), lvef("now", "2026-11-02", 45), statement("x", "tdxd", "2026-06-01")),
                    draft("x", "tdxd", "2026-11-23", 5.4)),
    "trastuzumab-hold": (cardiac.trastuzumab_pertuzumab_lvef_hold, "cardiac-lvef-hold-trastuzumab-pertuzumab", True,
                         on_trastuzumab_with_drop(), draft("t", "trastuzumab", "2026-11-23")),
    "baseline-unknown": (cardiac.lvef_drop_not_assessable, "cardiac-lvef-baseline-unknown", True,
                         (metastatic(), lvef("now", "2026-11-02", 55, low=50), statement("h", "trastuzumab", "2026-03-02")),
                         draft("t", "trastuzumab", "2026-11-23", 6)),
    "lvef-due": (cardiac.lvef_monitoring_due, "cardiac-lvef-due", True,
                 (lvef("now", "2026-07-13", 55), statement("k", "tdm1", "2026-07-10")), draft("k", "tdm1", "2026-11-23", 3.6)),
    "heart-failure": (cardiac.heart_failure_with_her2_therapy, "cardiac-heart-failure-her2-therapy", False,
                      (condition("hf", ICD10CM, "I50.9"), lvef("now", "2026-11-02", 45)), draft("k", "tdm1", "2026-11-23", 3.6)),
}


@pytest.mark.parametrize("name", LVEF_CARDS)
def test_a_card_showing_the_latest_lvef_names_a_newer_record_that_cannot_be_used(name):
    rule_function, card_id, summary_shows_lvef, resources, order = LVEF_CARDS[name]
    newer = RENDERER.render(cards(rule_function, context_for(*resources, newer_unusable(), drafts=(order,)))[card_id])
    assert NEWER_UNUSABLE in newer.detail
    assert (SUMMARY_MARK in newer.summary) is summary_shows_lvef
    older = RENDERER.render(cards(rule_function, context_for(*resources, older_unusable(), drafts=(order,)))[card_id])
    assert "could not be used" not in older.summary + older.detail


def test_a_newer_unusable_record_is_named_in_the_record_s_own_words_escaped():
    context = on_tdm1(lvef("july", "2026-07-13", 55), lvef("newer", "2026-11-16", 0.35, unit="<b>EF</b>"))
    card = RENDERER.render(cards(cardiac.newest_lvef_unusable, context)["cardiac-lvef-newest-unusable"])
    assert 'recorded as 0.35 with the unit "\\<b\\>EF\\</b\\>", not %' in card.detail


# --- rule 19 ---------------------------------------------------------------------------------------------


def test_heart_failure_card_for_any_her2_antibody_but_not_for_other_drugs():
    hf = condition("hf", ICD10CM, "I50.9")
    assert "cardiac-heart-failure-her2-therapy" in cards(
        cardiac.heart_failure_with_her2_therapy, context_for(hf, drafts=(draft("x", "tdm1", "2026-11-23", 3.6),)))
    taxane_only = context_for(hf, drafts=(draft("x", "paclitaxel", "2026-11-23", 80, "mg/m2"),))
    assert cards(cardiac.heart_failure_with_her2_therapy, taxane_only) == {}


# SNOMED CT descendants are matched only when listed: these come from VSAC Heart Failure 2.16.840.1.113883.3.526.3.376.
@pytest.mark.parametrize("code", ["698594003", "703272007", "417996009"])
def test_heart_failure_card_for_a_snomed_heart_failure_below_congestive_heart_failure(code):
    context = context_for(condition("hf", SNOMED, code), drafts=(draft("x", "tdxd", "2026-11-23", 5.4),))
    assert "cardiac-heart-failure-her2-therapy" in cards(cardiac.heart_failure_with_her2_therapy, context)


def test_no_heart_failure_card_for_a_listed_snomed_heart_failure_resolved_or_refuted_nor_for_other_cardiac_disorders():
    order = draft("x", "tdxd", "2026-11-23", 5.4)
    assert "cardiac-heart-failure-her2-therapy" in cards(
        cardiac.heart_failure_with_her2_therapy, context_for(condition("hfref", SNOMED, "703272007"), drafts=(order,)))
    not_current = (condition("resolved", SNOMED, "703272007", status="resolved"),
                   condition("refuted", SNOMED, "698594003", verification="refuted"))
    # In the VSAC set but not heart failure itself: acute cor pulmonale from a pulmonary embolus, low cardiac output
    # syndrome, a pleural effusion due to heart failure.
    not_heart_failure = (condition("cor-pulmonale", SNOMED, "15964701000119109"), condition("low-output", SNOMED, "44088000"),
                         condition("effusion", SNOMED, "90727007"))
    for resource in not_current + not_heart_failure:
        assert cards(cardiac.heart_failure_with_her2_therapy, context_for(resource, drafts=(order,))) == {}, resource["id"]


# --- rule 20 ---------------------------------------------------------------------------------------------


def test_anthracycline_127_days_after_the_last_trastuzumab_dose_gets_the_washout_card():
    context = context_for(administration("h", "trastuzumab", "2026-07-18", 6, "mg/kg"),
                          drafts=(draft("d", "doxorubicin", "2026-11-22", 60, "mg/m2"),))
    found = cards(cardiac.anthracycline_with_trastuzumab, context)
    assert list(found) == ["anthracycline-after-trastuzumab"]
    (order,) = found["anthracycline-after-trastuzumab"].values["orders"]
    assert (order["last_dose"], order["until"], order["trastuzumab"]) == (date(2026, 7, 18), date(2027, 2, 18), "trastuzumab")
    card = RENDERER.render(found["anthracycline-after-trastuzumab"])
    assert card.indicator == "warning" and "7 months" in card.detail and "verify" in card.detail


def test_washout_ends_seven_calendar_months_after_the_last_dose():
    given = administration("h", "trastuzumab", "2026-04-22", 6, "mg/kg")
    on_the_last_day = context_for(given, drafts=(draft("d", "doxorubicin", "2026-11-22", 60, "mg/m2"),))
    the_day_after = context_for(given, drafts=(draft("d", "doxorubicin", "2026-11-23", 60, "mg/m2"),))
    assert "anthracycline-after-trastuzumab" in cards(cardiac.anthracycline_with_trastuzumab, on_the_last_day)
    assert cards(cardiac.anthracycline_with_trastuzumab, the_day_after) == {}


def test_washout_without_a_recorded_last_dose_counts_from_the_latest_day_the_record_shows():
    context = context_for(statement("h", "trastuzumab", "2026-05-04", status="completed"),
                          drafts=(draft("d", "doxorubicin", "2026-11-22", 60, "mg/m2"),))
    finding = cards(cardiac.anthracycline_with_trastuzumab, context)["anthracycline-after-trastuzumab"]
    (order,) = finding.values["orders"]
    assert (order["last_dose"], order["at_least"], order["until"]) == (None, date(2026, 5, 4), date(2026, 12, 4))
    assert "does not say when the last dose" in RENDERER.render(finding).detail


def test_concurrent_trastuzumab_gives_only_the_critical_card():
    context = context_for(administration("old", "trastuzumab", "2026-06-01", 6, "mg/kg"), statement("h", "trastuzumab", "2026-09-01"),
                          drafts=(draft("d", "doxorubicin", "2026-11-22", 60, "mg/m2"),))
    assert list(cards(cardiac.anthracycline_with_trastuzumab, context)) == ["anthracycline-with-trastuzumab"]


def test_trastuzumab_stopped_before_its_planned_end_is_the_washout_not_concurrent_use():
    # Stopped today, planned to run to March: the plan's end is not when it ended, so an anthracycline now is within
    # the washout (warning), not given with trastuzumab (critical).
    def found(status: str) -> list[str]:
        course = statement("h", "trastuzumab", "2026-06-01", "2027-03-01", status=status)
        return list(cards(cardiac.anthracycline_with_trastuzumab,
                          context_for(course, drafts=(draft("d", "doxorubicin", "2026-11-29", 60, "mg/m2"),))))

    assert found("stopped") == ["anthracycline-after-trastuzumab"]
    # Near miss: the same course still active is concurrent use.
    assert found("active") == ["anthracycline-with-trastuzumab"]


def test_no_washout_card_for_trastuzumab_after_an_anthracycline_or_for_an_anthracycline_after_tdm1():
    trastuzumab_after_ac = context_for(administration("a", "doxorubicin", "2026-10-05", 60, "mg/m2"),
                                       drafts=(draft("h", "trastuzumab", "2026-11-22"),))
    after_tdm1 = context_for(administration("k", "tdm1", "2026-09-01", 3.6, "mg/kg"),
                             drafts=(draft("d", "doxorubicin", "2026-11-22", 60, "mg/m2"),))
    assert cards(cardiac.anthracycline_with_trastuzumab, trastuzumab_after_ac) == {}
    assert cards(cardiac.anthracycline_with_trastuzumab, after_tdm1) == {}


def test_trastuzumab_given_and_finished_since_a_past_planned_start_is_the_washout_not_concurrent_use():
    # Doxorubicin planned for 2026-09-01, still a draft today: a trastuzumab dose on 2026-09-15 (covering to
    # 2026-10-05) came before it, so the dose today is 7 months' washout, not concurrent use.
    given = administration("h", "trastuzumab", "2026-09-15", 6, "mg/kg")
    context = context_for(given, drafts=(draft("d", "doxorubicin", "2026-09-01", 60, "mg/m2"),))
    found = cards(cardiac.anthracycline_with_trastuzumab, context)
    assert list(found) == ["anthracycline-after-trastuzumab"]
    (order,) = found["anthracycline-after-trastuzumab"].values["orders"]
    assert (order["day"], order["last_dose"], order["until"]) == (TODAY, date(2026, 9, 15), date(2027, 4, 15))
    assert "given on 2026-11-22 at the earliest" in RENDERER.render(found["anthracycline-after-trastuzumab"]).detail
    # Near miss: trastuzumab given 2026-11-09 still covers today, which is concurrent use.
    recent = administration("h", "trastuzumab", "2026-11-09", 6, "mg/kg")
    context = context_for(recent, drafts=(draft("d", "doxorubicin", "2026-09-01", 60, "mg/m2"),))
    finding = cards(cardiac.anthracycline_with_trastuzumab, context)["anthracycline-with-trastuzumab"]
    assert "doxorubicin (planned from 2026-09-01, so given from 2026-11-22 at the earliest) overlaps" in RENDERER.render(finding).detail


def test_a_trastuzumab_draft_whose_planned_start_is_past_is_given_after_an_anthracycline_finished_since():
    # AC given 2026-09-10 (covering to 2026-09-30) after trastuzumab was planned for 2026-09-01: today it is sequential.
    given = administration("a", "doxorubicin", "2026-09-10", 60, "mg/m2")
    assert cards(cardiac.anthracycline_with_trastuzumab, context_for(given, drafts=(draft("h", "trastuzumab", "2026-09-01"),))) == {}
    recent = administration("a", "doxorubicin", "2026-11-09", 60, "mg/m2")
    found = cards(cardiac.anthracycline_with_trastuzumab, context_for(recent, drafts=(draft("h", "trastuzumab", "2026-09-01"),)))
    assert list(found) == ["anthracycline-with-trastuzumab"]


def ended(order: dict, end: str) -> dict:
    """The draft with a planned end."""
    order["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"]["end"] = end
    return order


def test_a_draft_whose_planned_course_is_over_is_concurrent_with_what_runs_today():
    # Trastuzumab planned 2026-09-01 to 2026-10-15, still a draft on 2026-11-22: given today, with doxorubicin
    # recorded as running since 2026-11-02.
    running = statement("a", "doxorubicin", "2026-11-02")
    september = (ended(draft("h", "trastuzumab", "2026-09-01"), "2026-10-15"),)
    finding = cards(cardiac.anthracycline_with_trastuzumab, context_for(running, drafts=september))["anthracycline-with-trastuzumab"]
    assert "trastuzumab (planned from 2026-09-01, so given from 2026-11-22 at the earliest) overlaps" in RENDERER.render(finding).detail
    # Near miss: doxorubicin recorded as stopped before today (2026-10-30) with its last dose then.
    stopped = statement("a", "doxorubicin", "2026-10-09", "2026-10-30", status="completed")
    assert cards(cardiac.anthracycline_with_trastuzumab, context_for(stopped, drafts=september)) == {}


def test_the_washout_of_a_draft_whose_planned_start_is_past_is_counted_to_today():
    # Planned 2026-09-01 (within 7 months of the 2026-04-01 dose) but given today, after the washout ended 2026-11-01.
    given = administration("h", "trastuzumab", "2026-04-01", 6, "mg/kg")
    assert cards(cardiac.anthracycline_with_trastuzumab, context_for(given, drafts=(draft("d", "doxorubicin", "2026-09-01", 60, "mg/m2"),))) == {}
    within = administration("h", "trastuzumab", "2026-05-01", 6, "mg/kg")
    found = cards(cardiac.anthracycline_with_trastuzumab, context_for(within, drafts=(draft("d", "doxorubicin", "2026-09-01", 60, "mg/m2"),)))
    assert found["anthracycline-after-trastuzumab"].values["orders"][0]["until"] == date(2026, 12, 1)


def test_ac_then_th_drafted_together_in_sequence_is_not_concurrent_use():
    # AC planned 2026-11-23 to 2027-01-10, trastuzumab from 2027-01-31: the sequence rule 20 recommends (no card, as
    # when the AC order is already signed).
    ac = ended(draft("a", "doxorubicin", "2026-11-23", 60, "mg/m2"), "2027-01-10")
    assert cards(cardiac.anthracycline_with_trastuzumab, context_for(drafts=(ac, draft("t", "trastuzumab", "2027-01-31")))) == {}
    # Near misses: trastuzumab drafted to start on the AC course's last day; AC drafted with no planned end; AC planned
    # for September and October, still a draft, so given today, 8 days before trastuzumab (within its 21-day cycle).
    stale_ac = ended(draft("a", "doxorubicin", "2026-09-01", 60, "mg/m2"), "2026-10-15")
    for drafts in ((ac, draft("t", "trastuzumab", "2027-01-10")),
                   (draft("a", "doxorubicin", "2026-11-23", 60, "mg/m2"), draft("t", "trastuzumab", "2027-01-31")),
                   (stale_ac, draft("t", "trastuzumab", "2026-11-30"))):
        found = cards(cardiac.anthracycline_with_trastuzumab, context_for(drafts=drafts))
        assert list(found) == ["anthracycline-with-trastuzumab"]
        assert {a.resource_id for s in found["anthracycline-with-trastuzumab"].suggestions for a in s.actions} == {
            "MedicationRequest/a", "MedicationRequest/t"}



def test_th_then_ac_drafted_together_is_the_washout_from_the_planned_last_trastuzumab_dose():
    # Trastuzumab planned 2026-11-23 to 2027-01-10, doxorubicin from 2027-02-01: not concurrent (no critical card),
    # but within 7 months of the drafted course's planned last dose, as for a trastuzumab course already signed.
    th = ended(draft("t", "trastuzumab", "2026-11-23"), "2027-01-10")
    found = cards(cardiac.anthracycline_with_trastuzumab, context_for(drafts=(th, draft("a", "doxorubicin", "2027-02-01", 60, "mg/m2"))))
    assert list(found) == ["anthracycline-after-trastuzumab"]
    finding = found["anthracycline-after-trastuzumab"]
    (order,) = finding.values["orders"]
    assert (order["day"], order["last_dose"], order["until"], order["planned"]) == (date(2027, 2, 1), date(2027, 1, 10), date(2027, 8, 10), True)
    assert set(finding.evidence) == {"MedicationRequest/a", "MedicationRequest/t"}
    assert ("trastuzumab, ordered in this order session, is planned to give its last dose on 2027-01-10; ~7 months after it "
            "is 2027-08-10.") in " ".join(RENDERER.render(finding).detail.split())
    # Near misses: doxorubicin drafted 7 months and a day after that last dose (no card); drafted to start before it
    # (overlapping drafts stay the critical card).
    after = draft("a", "doxorubicin", "2027-08-11", 60, "mg/m2")
    assert cards(cardiac.anthracycline_with_trastuzumab, context_for(drafts=(th, after))) == {}
    overlapping = draft("a", "doxorubicin", "2027-01-05", 60, "mg/m2")
    assert list(cards(cardiac.anthracycline_with_trastuzumab, context_for(drafts=(th, overlapping)))) == ["anthracycline-with-trastuzumab"]


def test_a_trastuzumab_draft_planned_as_one_dose_covers_its_cycle_then_starts_the_washout():
    # Planned 2026-09-01 to 2026-10-15, still a draft: one dose today (2026-11-22), covering to 2026-12-12.
    th = ended(draft("t", "trastuzumab", "2026-09-01"), "2026-10-15")
    later = cards(cardiac.anthracycline_with_trastuzumab, context_for(drafts=(th, draft("a", "doxorubicin", "2026-12-13", 60, "mg/m2"))))
    assert later["anthracycline-after-trastuzumab"].values["orders"][0]["last_dose"] == TODAY
    within = cards(cardiac.anthracycline_with_trastuzumab, context_for(drafts=(th, draft("a", "doxorubicin", "2026-12-12", 60, "mg/m2"))))
    assert list(within) == ["anthracycline-with-trastuzumab"]


def test_the_washout_runs_from_the_later_of_the_recorded_and_the_planned_last_trastuzumab_dose():
    given = administration("h", "trastuzumab", "2026-07-18", 6, "mg/kg")
    th = ended(draft("t", "trastuzumab", "2026-11-23"), "2027-01-10")
    found = cards(cardiac.anthracycline_with_trastuzumab, context_for(given, drafts=(th, draft("a", "doxorubicin", "2027-08-01", 60, "mg/m2"))))
    (order,) = found["anthracycline-after-trastuzumab"].values["orders"]
    assert (order["last_dose"], order["planned"]) == (date(2027, 1, 10), True)
    # Near miss: a pertuzumab course drafted to end first is not trastuzumab (no washout), and does not overlap.
    pertuzumab = ended(draft("t", "pertuzumab", "2026-11-23", 420, "mg"), "2027-01-10")
    assert cards(cardiac.anthracycline_with_trastuzumab, context_for(drafts=(pertuzumab, draft("a", "doxorubicin", "2027-02-01", 60, "mg/m2")))) == {}

# --- rule 21 ---------------------------------------------------------------------------------------------


def dox_doses(count: int, dose: float = 60, unit: str = "mg/m2") -> list[dict]:
    return [administration(f"a{i}", "doxorubicin", f"2024-0{i + 1}-01", dose, unit) for i in range(count)]


def test_cumulative_doxorubicin_tiers_and_trastuzumab_ceiling():
    context = context_for(*dox_doses(5), statement("h", "trastuzumab", "2024-08-01", "2025-08-01", status="completed"),
                          drafts=(draft("d", "doxorubicin", "2026-12-01", 60, "mg/m2"),))
    values = cards(cardiac.cumulative_doxorubicin_dose, context)["cardiac-cumulative-doxorubicin"].values
    assert (values["given"], values["planned"], values["projected"], values["tier"], values["ceiling"]) == (300.0, 60.0, 360.0, 300, 400)
    assert values["cardiotoxic"] == "trastuzumab"


@pytest.mark.parametrize(("agent", "named"), [("tdm1", "ado-trastuzumab emtansine (T-DM1)"), ("pertuzumab", "pertuzumab")])
def test_any_her2_antibody_is_other_cardiotoxic_therapy_for_the_ceiling(agent, named):
    context = context_for(*dox_doses(5), statement("h", agent, "2024-08-01", "2025-08-01", status="completed"),
                          drafts=(draft("d", "doxorubicin", "2026-12-01", 60, "mg/m2"),))
    values = cards(cardiac.cumulative_doxorubicin_dose, context)["cardiac-cumulative-doxorubicin"].values
    assert (values["ceiling"], values["cardiotoxic"]) == (400, named)


def test_without_a_her2_antibody_the_ceiling_is_550():
    context = context_for(*dox_doses(5), drafts=(draft("d", "doxorubicin", "2026-12-01", 60, "mg/m2"),))
    values = cards(cardiac.cumulative_doxorubicin_dose, context)["cardiac-cumulative-doxorubicin"].values
    assert (values["tier"], values["ceiling"], values["cardiotoxic"]) == (300, 550, "")


def test_drafted_mg_dose_is_converted_with_the_bsa():
    context = context_for(bsa("2024-03-20", 2.0), bsa("2026-11-20", 2.0), *dox_doses(4, 120, "mg"),
                          drafts=(draft("d", "doxorubicin", "2026-12-01", 120, "mg"),))
    values = cards(cardiac.cumulative_doxorubicin_dose, context)["cardiac-cumulative-doxorubicin"].values
    assert (values["given"], values["planned"], values["projected"]) == (240.0, 60.0, 300.0)


def test_a_drafted_mg_dose_is_converted_with_the_bsa_of_its_dose_day_not_of_the_doses_given_before():
    # 480 mg given in 2024 at 2.0 m2 (240 mg/m2); 96 mg drafted now for 1.6 m2 is 60 mg/m2, reaching the 300 tier
    # (48 mg/m2 and no tier with the old BSA).
    given = (bsa("2024-03-20", 2.0), *dox_doses(4, 120, "mg"))
    context = context_for(*given, bsa("2026-11-20", 1.6), drafts=(draft("d", "doxorubicin", "2026-12-01", 96, "mg"),))
    finding = cards(cardiac.cumulative_doxorubicin_dose, context)["cardiac-cumulative-doxorubicin"]
    assert (finding.values["given"], finding.values["planned"], finding.values["projected"], finding.values["tier"]) == (240.0, 60.0, 300.0, 300)
    assert "This order: doxorubicin, 96 mg for a body surface area of 1.6 m2 (measured, 2026-11-20) = 60 mg/m2." in RENDERER.render(finding).detail
    # Near miss: at 2.0 m2 today too, 96 mg is 48 mg/m2 and the total stays below the first tier.
    assert cards(cardiac.cumulative_doxorubicin_dose, context_for(*given, bsa("2026-11-20", 2.0), drafts=(draft("d", "doxorubicin", "2026-12-01", 96, "mg"),))) == {}


def test_a_drafted_mg_dose_without_a_bsa_near_its_dose_day_is_named_not_converted_with_an_old_one():
    given = (bsa("2024-03-20", 2.0), *dox_doses(4, 120, "mg"))
    finding = cards(cardiac.cumulative_doxorubicin_dose, context_for(*given, drafts=(draft("d", "doxorubicin", "2026-12-01", 120, "mg"),)))["cardiac-cumulative-doxorubicin"]
    assert [item["reason"] for item in finding.values["not_counted"]] == ["no-bsa"] and finding.values["projected"] is None
    assert "no body surface area from the 30 days before its dose day" in RENDERER.render(finding).detail
    # A BSA within 30 days before a dose planned ahead (2026-12-01) converts it.
    near = context_for(*given, bsa("2026-11-02", 2.0), drafts=(draft("d", "doxorubicin", "2026-12-01", 120, "mg"),))
    assert cards(cardiac.cumulative_doxorubicin_dose, near)["cardiac-cumulative-doxorubicin"].values["projected"] == 300.0


def test_prior_epirubicin_is_shown_even_below_the_doxorubicin_tiers():
    context = context_for(administration("e", "epirubicin", "2024-01-01", 100, "mg/m2"),
                          drafts=(draft("d", "doxorubicin", "2026-12-01", 60, "mg/m2"),))
    values = cards(cardiac.cumulative_doxorubicin_dose, context)["cardiac-cumulative-doxorubicin"].values
    assert values["others"][0]["display"] == "epirubicin" and values["tier"] is None


def test_prior_epirubicin_recorded_only_as_a_course_is_shown_too():
    fec = statement("fec", "epirubicin", "2024-01-01", "2024-03-01", status="completed")
    finding = cards(cardiac.cumulative_doxorubicin_dose, context_for(fec, drafts=(draft("d", "doxorubicin", "2026-12-01", 60, "mg/m2"),)))
    detail = " ".join(RENDERER.render(finding["cardiac-cumulative-doxorubicin"]).detail.split())
    assert ("- Also given: epirubicin, a course recorded without administrations (MedicationStatement/fec): its doses are "
            "**not known**. Count them when judging the total.") in detail
    # Near miss: the course before was paclitaxel.
    taxane = statement("t", "paclitaxel", "2024-01-01", "2024-03-01", status="completed")
    assert cards(cardiac.cumulative_doxorubicin_dose, context_for(taxane, drafts=(draft("d", "doxorubicin", "2026-12-01", 60, "mg/m2"),))) == {}


def test_first_doxorubicin_dose_gets_no_cumulative_card():
    context = context_for(drafts=(draft("d", "doxorubicin", "2026-12-01", 60, "mg/m2"),))
    assert cards(cardiac.cumulative_doxorubicin_dose, context) == {}


def test_first_doxorubicin_dose_in_mg_without_a_bsa_gets_no_cumulative_card():
    context = context_for(drafts=(draft("d", "doxorubicin", "2026-12-01", 120, "mg"),))
    assert cards(cardiac.cumulative_doxorubicin_dose, context) == {}


@pytest.mark.parametrize(
    "dose, unit, reason, wording",
    [(120, "mg", "no-bsa", "no body surface area"), (1.5, "mg/kg", "mg-per-kg", "mg/kg"), (2, "vials", "unit-unknown", "2 vials")],
)
def test_a_drafted_dose_that_cannot_be_converted_is_named_not_left_out_silently(dose, unit, reason, wording):
    context = context_for(*dox_doses(4), drafts=(draft("d", "doxorubicin", "2026-12-01", dose, unit),))
    finding = cards(cardiac.cumulative_doxorubicin_dose, context)["cardiac-cumulative-doxorubicin"]
    values = finding.values
    assert (values["given"], values["planned"], values["projected"], values["tier"]) == (240.0, None, None, None)
    assert [item["reason"] for item in values["not_counted"]] == [reason]
    card = RENDERER.render(finding)
    assert "240 mg/m2 given" in card.summary and "with this dose" not in card.summary
    assert wording in card.detail


def test_history_at_a_tier_is_shown_when_the_drafted_dose_cannot_be_added():
    context = context_for(*dox_doses(5), drafts=(draft("d", "doxorubicin", "2026-12-01", 120, "mg"),))
    values = cards(cardiac.cumulative_doxorubicin_dose, context)["cardiac-cumulative-doxorubicin"].values
    assert (values["given"], values["projected"], values["tier"]) == (300.0, None, 300)


def test_lvef_due_on_patient_view_with_no_lvef_at_all():
    context = context_for(statement("h", "trastuzumab", "2026-03-02"), hook="patient-view")
    values = cards(cardiac.lvef_monitoring_due, context)["cardiac-lvef-due"].values
    assert values["latest"] is None and values["due"] == date(2026, 3, 2) and values["drugs"] == "trastuzumab"
