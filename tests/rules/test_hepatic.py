"""Liver rules 22-27: labs before T-DM1, untested starts, MBC/EBC tables and Hy's law."""
from __future__ import annotations

from datetime import date

import pytest

from cds_hooks.facts import Facts
from cds_hooks.record import build_record
from cds_hooks.render import CardRenderer
from cds_hooks.rules.base import RuleContext
from cds_hooks.rules.hepatic import (
    DISCONTINUE,
    HOLD_SAME_DOSE,
    tdm1_labs_before_dose,
    tdm1_liver_toxicity,
    tdm1_start_not_studied,
)
from cds_hooks.settings import Settings

LOINC = "http://loinc.org"
SCT = "http://snomed.info/sct"
RX = "http://www.nlm.nih.gov/research/umls/rxnorm"
AS_OF = date(2026, 11, 22)
RENDERER = CardRenderer.load()
CODES = {"ast": "1920-8", "alt": "1742-6", "bilirubin": "1975-2", "platelets": "777-3", "lvef": "10230-1",
         "neutrophils": "751-8", "weight": "29463-7"}


def lab(test, value, unit="U/L", high=None, day="2026-11-28"):
    resource = {"resourceType": "Observation", "id": f"{test}-{value}", "status": "final", "subject": {"reference": "Patient/p"},
                "code": {"coding": [{"system": LOINC, "code": CODES[test]}]}, "effectiveDateTime": day,
                "valueQuantity": {"value": value, "unit": unit, "code": unit}}
    if high is not None:
        resource["referenceRange"] = [{"high": {"value": high, "unit": unit, "code": unit}}]
    return resource


def normal(**values):
    v = {"ast": 30, "alt": 30, "bilirubin": 0.8, "platelets": 200, **values}
    return [lab("ast", v["ast"], high=40), lab("alt", v["alt"], high=40), lab("bilirubin", v["bilirubin"], "mg/dL", 1.2),
            lab("platelets", v["platelets"], "10*3/uL")]


def condition(cid, code):
    return {"resourceType": "Condition", "id": cid, "subject": {"reference": "Patient/p"},
            "clinicalStatus": {"coding": [{"code": "active"}]}, "code": {"coding": [{"system": SCT, "code": code}]}}


METASTATIC = [condition("bc", "427685000"), condition("mets", "128462008")]
EARLY = [condition("bc", "427685000")]
PRIOR_TDM1 = {"resourceType": "MedicationAdministration", "id": "given", "status": "completed", "subject": {"reference": "Patient/p"},
              "medicationCodeableConcept": {"coding": [{"system": RX, "code": "1371041"}]}, "effectiveDateTime": "2026-11-10"}
TDM1_DRAFT = {"resourceType": "MedicationRequest", "id": "draft-tdm1", "status": "draft", "intent": "order", "subject": {"reference": "Patient/p"},
              "medicationCodeableConcept": {"coding": [{"system": RX, "code": "1371041"}], "text": "Kadcyla"},
              "dosageInstruction": [{"timing": {"repeat": {"boundsPeriod": {"start": "2026-12-01"}}}}]}


def context(*resources, drafts=(TDM1_DRAFT,), hook="order-sign"):
    record = build_record({"all": list(resources)}, list(drafts))
    settings = Settings()
    return RuleContext(hook, "p", record, Facts(record, AS_OF, settings), record.draft_orders, settings, AS_OF)


def chart_opened(*resources):
    """patient-view on AS_OF: no drafts."""
    return context(*resources, drafts=(), hook="patient-view")


def test_labs_card_orders_only_the_missing_tests():
    (finding,) = tdm1_labs_before_dose(context(lab("ast", 30, high=40), lab("platelets", 200, "10*3/uL")))
    (suggestion,) = finding.suggestions
    codes = [action.resource["code"]["coding"][0]["code"] for action in suggestion.actions]
    assert codes == ["1742-6", "1975-2"]
    assert all(a.resource["status"] == "draft" and a.resource["intent"] == "order" and a.resource["subject"] == {"reference": "Patient/p"}
               for a in suggestion.actions)
    assert finding.values["doses"][0]["missing"] == ["ALT", "total bilirubin"]


def test_labs_card_reports_an_unconvertible_platelet_unit_without_ordering_anything():
    resources = normal()[:3] + [lab("platelets", 200, "g/L")]
    (finding,) = tdm1_labs_before_dose(context(*resources))
    assert finding.suggestions == ()
    assert finding.values["doses"][0]["unconvertible"]["unit"] == "g/L"


def test_no_labs_card_when_everything_is_there_or_no_tdm1_is_drafted():
    assert list(tdm1_labs_before_dose(context(*normal()))) == []
    assert list(tdm1_labs_before_dose(context(drafts=()))) == []


def test_untested_start_is_not_judged_when_tdm1_was_given_before():
    assert list(tdm1_start_not_studied(context(PRIOR_TDM1, *normal(ast=200)))) == []
    (finding,) = tdm1_start_not_studied(context(*normal(ast=200)))
    assert [item["name"] for item in finding.values["starts"][0]["outside"]] == ["AST"]


def test_untested_start_uses_lvef_within_the_baseline_lookback_only():
    old = lab("lvef", 45, "%", day="2026-08-01")                 # 122 days before the dose
    assert list(tdm1_start_not_studied(context(old, *normal()))) == []
    (finding,) = tdm1_start_not_studied(context(lab("lvef", 45, "%", day="2026-11-01"), *normal()))
    assert finding.values["starts"][0]["outside"][0]["name"] == "LVEF"


def lvef_as_recorded(value, unit, day="2026-11-01"):
    """An LVEF whose valueQuantity is exactly as given: unit None records no unit at all."""
    resource = lab("lvef", value, "%", day=day)
    resource["valueQuantity"] = {"value": value} if unit is None else {"value": value, "unit": unit, "code": unit}
    return resource


@pytest.mark.parametrize("value, unit", [(0.45, None), (1, None), (0.45, "1"), (45, "mL"), (-5, "%"), (145, "%")])
def test_untested_start_does_not_read_an_lvef_that_is_not_plainly_a_percentage(value, unit):
    assert list(tdm1_start_not_studied(context(lvef_as_recorded(value, unit), *normal()))) == []


@pytest.mark.parametrize("value", [45, 1.5])
def test_untested_start_reads_a_unitless_lvef_above_1_as_a_percentage(value):
    (finding,) = tdm1_start_not_studied(context(lvef_as_recorded(value, None), *normal()))
    assert [(item["name"], item["value"]) for item in finding.values["starts"][0]["outside"]] == [("LVEF", value)]


def test_untested_start_passes_over_an_unreadable_lvef_to_the_latest_readable_one_and_names_it():
    unreadable = {**lvef_as_recorded(0.55, None, day="2026-11-20"), "id": "lvef-fraction"}
    (finding,) = tdm1_start_not_studied(context(unreadable, lab("lvef", 45, "%", day="2026-11-01"), *normal()))
    assert finding.values["starts"][0]["outside"][0]["reference"] == "Observation/lvef-45"
    detail = RENDERER.render(finding).detail
    assert ("- LVEF **45%** on 2026-11-01; not studied: \\< 50%.\n- A newer LVEF record dated 2026-11-20 could not be used: "
            "recorded as 0.55 with no unit, not read as 0.55% \\(it may be a fraction\\). Check it before relying on the "
            "result above.") in detail


def test_untested_start_does_not_name_an_unreadable_lvef_older_than_the_one_it_reads():
    unreadable = {**lvef_as_recorded(0.55, None, day="2026-10-20"), "id": "lvef-fraction"}
    (finding,) = tdm1_start_not_studied(context(unreadable, lab("lvef", 45, "%", day="2026-11-01"), *normal()))
    assert "could not be used" not in RENDERER.render(finding).detail


def test_a_first_dose_at_a_discontinuation_level_names_a_newer_unreadable_lvef_beside_the_lvef_it_shows():
    unreadable = {**lvef_as_recorded(0.55, None, day="2026-11-20"), "id": "lvef-fraction"}
    (finding,) = tdm1_liver_toxicity(context(unreadable, lab("lvef", 45, "%", day="2026-11-01"), *METASTATIC, *normal(ast=900)))
    assert finding.card == "hepatic-tdm1-liver-discontinue"
    assert "A newer LVEF record dated 2026-11-20 could not be used" in RENDERER.render(finding).detail


def test_metastatic_grade_2_transaminase_is_a_warning_without_a_hold():
    (finding,) = tdm1_liver_toxicity(context(PRIOR_TDM1, *METASTATIC, *normal(ast=150)))
    assert finding.card == "hepatic-tdm1-liver-toxicity"
    assert finding.values["worst"]["action"] == "same-dose"
    assert finding.suggestions == ()


def test_unknown_setting_applies_the_stricter_table():
    (finding,) = tdm1_liver_toxicity(context(PRIOR_TDM1, *normal(ast=150)))      # 3.75x: MBC same dose, EBC hold
    assert finding.values["setting"] == "unknown"
    assert finding.values["worst"]["strictness"] == HOLD_SAME_DOSE
    assert finding.values["worst"]["note"] == "ebc-verify"
    assert [s.values["why"] for s in finding.suggestions] == ["hold"]


def test_early_bilirubin_above_2x_discontinues_at_warning_level_but_grade_4_is_critical():
    (finding,) = tdm1_liver_toxicity(context(PRIOR_TDM1, *EARLY, *normal(bilirubin=3.0)))      # 2.5x
    assert finding.card == "hepatic-tdm1-liver-toxicity"
    assert finding.values["worst"]["strictness"] == DISCONTINUE
    assert [s.values["why"] for s in finding.suggestions] == ["discontinue"]
    (finding,) = tdm1_liver_toxicity(context(PRIOR_TDM1, *EARLY, *normal(alt=1000)))          # 25x: beyond the EBC excerpt
    assert finding.card == "hepatic-tdm1-liver-discontinue"
    assert finding.values["worst"]["note"] == "beyond-ebc-excerpt"


def test_hys_law_is_critical_with_a_delete_suggestion():
    (finding,) = tdm1_liver_toxicity(context(PRIOR_TDM1, *METASTATIC, *normal(ast=130, bilirubin=2.5)))
    assert finding.card == "hepatic-tdm1-liver-discontinue"
    assert finding.values["hys_law"]["transaminase"]["name"] == "AST"
    (suggestion,) = finding.suggestions
    assert suggestion.actions[0].type == "delete" and suggestion.actions[0].resource_id == "MedicationRequest/draft-tdm1"


def test_first_dose_with_grade_4_liver_tests_is_critical_and_says_do_not_start():
    start = context(*METASTATIC, *normal(ast=900))                                     # 22.5x, no T-DM1 before
    (finding,) = tdm1_liver_toxicity(start)
    assert finding.card == "hepatic-tdm1-liver-discontinue"
    assert [item["name"] for item in finding.values["doses"][0]["results"]] == ["AST"]
    (suggestion,) = finding.suggestions
    assert suggestion.values["why"] == "do not start"
    assert suggestion.actions[0].type == "delete" and suggestion.actions[0].resource_id == "MedicationRequest/draft-tdm1"
    card = RENDERER.render(finding)
    assert card.summary == "Grade 4 liver tests (AST 22.5× ULN) before a first T-DM1 dose: do not start"
    assert card.suggestions[0].label == "Remove the Kadcyla order (do not start T-DM1)"
    # The critical card speaks for this start; "weigh the risk" beside it would contradict it.
    assert list(tdm1_start_not_studied(start)) == []


def test_first_dose_with_the_hys_law_pattern_is_critical_and_shows_the_other_untested_values():
    lvef = lab("lvef", 45, "%", day="2026-11-01")
    start = context(lvef, *METASTATIC, *normal(ast=130, alt=110, bilirubin=3.0, platelets=90))   # AST 3.25x, bilirubin 2.5x
    (finding,) = tdm1_liver_toxicity(start)
    assert finding.card == "hepatic-tdm1-liver-discontinue"
    (dose,) = finding.values["doses"]
    assert dose["results"] == [] and dose["hys_law"]["transaminase"]["name"] == "AST"
    assert [item["name"] for item in dose["not_studied"]] == ["ALT", "platelets", "LVEF"]     # AST and bilirubin: Hy's law
    assert "Observation/lvef-45" in finding.evidence
    assert "LVEF **45%** on 2026-11-01; not studied" in RENDERER.render(finding).detail
    assert list(tdm1_start_not_studied(start)) == []


@pytest.mark.parametrize("conditions, labs", [
    (METASTATIC, normal(ast=800, bilirubin=2.4)),  # AST 20x (grade 3), bilirubin 2x: neither grade 4 nor Hy's law
    (EARLY, normal(bilirubin=6.0)),                # 5x: the EBC table discontinues on treatment, but it is not grade 4
])
def test_first_dose_below_grade_4_and_hys_law_gets_only_the_untested_start_warning(conditions, labs):
    start = context(*conditions, *labs)
    assert list(tdm1_liver_toxicity(start)) == []
    (finding,) = tdm1_start_not_studied(start)
    assert finding.card == "hepatic-tdm1-not-studied"


PAST_START_DRAFT = {**TDM1_DRAFT, "dosageInstruction": [{"timing": {"repeat": {"boundsPeriod": {"start": "2026-09-01"}}}}]}


def test_a_draft_started_in_the_past_reads_labs_before_today():
    labs = [{**resource, "effectiveDateTime": "2026-11-21"} for resource in normal()]
    assert list(tdm1_labs_before_dose(context(*labs, drafts=(PAST_START_DRAFT,)))) == []


def test_a_draft_started_in_the_past_does_not_count_labs_from_before_that_start():
    labs = [{**resource, "effectiveDateTime": "2026-08-30"} for resource in normal()]
    (finding,) = tdm1_labs_before_dose(context(*labs, drafts=(PAST_START_DRAFT,)))
    assert finding.values["doses"][0]["dose_day"] == AS_OF
    assert finding.values["doses"][0]["missing"] == ["AST", "ALT", "total bilirubin", "platelet count"]


def test_liver_toxicity_of_a_draft_started_in_the_past_reads_todays_results():
    labs = [{**resource, "effectiveDateTime": "2026-11-21"} for resource in normal(ast=900)]
    (finding,) = tdm1_liver_toxicity(context(PRIOR_TDM1, *labs, drafts=(PAST_START_DRAFT,)))
    assert finding.card == "hepatic-tdm1-liver-discontinue"


def bilirubin_in_umol(value):
    """A bilirubin whose value carries the UCUM code and whose range only the printed unit, as laboratories send it."""
    resource = lab("bilirubin", value, "umol/L")
    resource["valueQuantity"]["unit"] = "µmol/L"
    resource["referenceRange"] = [{"high": {"value": 21, "unit": "µmol/L"}}]
    return resource


def test_grade_4_bilirubin_is_graded_when_its_range_spells_the_same_unit_differently():
    ast, alt, _, platelets = normal()
    (finding,) = tdm1_liver_toxicity(context(PRIOR_TDM1, *METASTATIC, ast, alt, bilirubin_in_umol(250), platelets))
    assert finding.card == "hepatic-tdm1-liver-discontinue"
    assert finding.values["worst"]["multiple"] == pytest.approx(11.9)
    assert list(tdm1_labs_before_dose(context(PRIOR_TDM1, *METASTATIC, ast, alt, bilirubin_in_umol(250), platelets))) == []


def test_normal_bilirubin_in_umol_per_l_gives_no_liver_card():
    ast, alt, _, platelets = normal()
    assert list(tdm1_liver_toxicity(context(PRIOR_TDM1, *METASTATIC, ast, alt, bilirubin_in_umol(15), platelets))) == []
