"""Cardiac facts: the LVEF baseline is taken before HER2 therapy, and the doxorubicin total is never guessed."""
from __future__ import annotations

from datetime import date, timedelta

import pytest

from cds_hooks.facts import Facts
from cds_hooks.facts.cardiac import (
    cumulative_doxorubicin,
    cumulative_doxorubicin_mg_per_m2,
    heart_failure_conditions,
    her2_antibody_dose_interval,
    lvef_series,
    next_lvef_due,
)
from cds_hooks.record import build_record
from cds_hooks.settings import Settings

RX = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
TODAY = date(2026, 11, 22)
DRUGS = {"trastuzumab": "224905", "pertuzumab": "1298944", "tdm1": "1371041", "tdxd": "2267576", "doxorubicin": "3639",
         "epirubicin": "3995", "paclitaxel": "56946"}
LVEF_METHODS = {"echo": "18043-0", "muga": "8812-0", "any": "10230-1"}


def lvef(oid: str, day: str, value: float | None, method: str = "echo", unit: str | None = "%", low: float | None = None) -> dict:
    """An LVEF Observation; unit=None records the value with no unit at all."""
    resource = {"resourceType": "Observation", "id": oid, "status": "final", "subject": {"reference": "Patient/p"},
                "code": {"coding": [{"system": LOINC, "code": LVEF_METHODS[method]}]}, "effectiveDateTime": day}
    if value is not None:
        resource["valueQuantity"] = {"value": value} if unit is None else {"value": value, "unit": unit, "code": unit}
    if low is not None:
        resource["referenceRange"] = [{"low": {"value": low, "unit": "%"}}]
    return resource


def statement(sid: str, drug: str, start: str, end: str | None = None, status: str = "active") -> dict:
    period = {"start": start, **({"end": end} if end else {})}
    return {"resourceType": "MedicationStatement", "id": sid, "status": status, "subject": {"reference": "Patient/p"},
            "medicationCodeableConcept": {"coding": [{"system": RX, "code": DRUGS[drug]}], "text": drug}, "effectivePeriod": period}


def administration(aid: str, drug: str, day: str, dose: float | None = None, unit: str = "mg") -> dict:
    resource = {"resourceType": "MedicationAdministration", "id": aid, "status": "completed", "subject": {"reference": "Patient/p"},
                "medicationCodeableConcept": {"coding": [{"system": RX, "code": DRUGS[drug]}], "text": drug}, "effectiveDateTime": day}
    if dose is not None:
        resource["dosage"] = {"dose": {"value": dose, "unit": unit, "code": unit}}
    return resource


def bsa(day: str, value: float) -> dict:
    return {"resourceType": "Observation", "id": f"bsa-{day}", "status": "final", "subject": {"reference": "Patient/p"},
            "code": {"coding": [{"system": LOINC, "code": "8277-6"}]}, "effectiveDateTime": day,
            "valueQuantity": {"value": value, "unit": "m2", "code": "m2"}}


def condition(cid: str, system: str, code: str, status: str | None = "active", verification: str | None = None) -> dict:
    resource = {"resourceType": "Condition", "id": cid, "subject": {"reference": "Patient/p"},
                "code": {"coding": [{"system": system, "code": code}], "text": cid}}
    if status:
        resource["clinicalStatus"] = {"coding": [{"code": status}]}
    if verification:
        resource["verificationStatus"] = {"coding": [{"code": verification}]}
    return resource


def request(rid: str, drug: str, every: int, unit: str, status: str = "completed") -> dict:
    """A recorded order of the drug repeating every `every` `unit`s (UCUM: d, wk)."""
    return {"resourceType": "MedicationRequest", "id": rid, "status": status, "intent": "order", "subject": {"reference": "Patient/p"},
            "medicationCodeableConcept": {"coding": [{"system": RX, "code": DRUGS[drug]}], "text": drug}, "authoredOn": "2026-03-01",
            "dosageInstruction": [{"timing": {"repeat": {"frequency": 1, "period": every, "periodUnit": unit}}}]}


def draft(did: str, drug: str, start: str, dose: float = 8, unit: str = "mg/kg") -> dict:
    return {"resourceType": "MedicationRequest", "id": did, "status": "draft", "intent": "order", "subject": {"reference": "Patient/p"},
            "medicationCodeableConcept": {"coding": [{"system": RX, "code": DRUGS[drug]}], "text": drug},
            "dosageInstruction": [{"timing": {"repeat": {"boundsPeriod": {"start": start}}},
                                   "doseAndRate": [{"doseQuantity": {"value": dose, "unit": unit, "code": unit}}]}]}


def facts_for(*resources: dict, drafts: tuple[dict, ...] = (), as_of: date = TODAY, settings: Settings | None = None) -> Facts:
    return Facts(build_record({"all": list(resources)}, list(drafts)), as_of, settings or Settings())


# --- LVEF series -----------------------------------------------------------------------------------------


def test_baseline_is_the_last_lvef_before_the_first_her2_dose():
    series = lvef_series(facts_for(
        lvef("old", "2025-06-01", 66), lvef("pre", "2026-02-20", 62), lvef("on", "2026-05-25", 58), lvef("latest", "2026-11-02", 44),
        statement("h", "trastuzumab", "2026-03-02"), statement("t", "paclitaxel", "2026-01-05"),
    ))
    assert [r.value for r in series.results] == [44, 58, 62, 66]
    assert series.anchor == date(2026, 3, 2) and series.anchor_is_first_dose
    assert series.baseline.reference == "Observation/pre"
    assert series.latest.reference == "Observation/latest"
    assert series.drop_points == 18
    assert series.last_measured == date(2026, 11, 2)


def test_baseline_prefers_the_latest_results_method():
    series = lvef_series(facts_for(
        lvef("echo", "2026-01-10", 64, "echo"), lvef("muga", "2026-02-20", 55, "muga"), lvef("latest", "2026-11-02", 50, "echo"),
        statement("h", "trastuzumab", "2026-03-02"),
    ))
    assert series.baseline.reference == "Observation/echo"
    assert series.drop_points == 14


def test_baseline_falls_back_to_another_method():
    series = lvef_series(facts_for(lvef("muga", "2026-02-20", 60, "muga"), lvef("latest", "2026-11-02", 50, "echo"),
                                   statement("h", "trastuzumab", "2026-03-02")))
    assert series.baseline.method == "muga" and series.latest.method == "echocardiography"


def test_before_any_her2_dose_the_baseline_is_the_latest_before_the_planned_start():
    series = lvef_series(facts_for(lvef("a", "2026-09-01", 61), lvef("b", "2026-11-10", 59),
                                   drafts=(draft("d", "trastuzumab", "2026-12-01"),)))
    assert series.anchor == date(2026, 12, 1) and not series.anchor_is_first_dose
    assert series.baseline == series.latest and series.baseline_is_latest
    assert series.drop_points == 0


def test_before_any_her2_dose_a_result_after_a_planned_start_already_past_is_still_pretreatment():
    series = lvef_series(facts_for(lvef("b", "2026-11-10", 59), drafts=(draft("d", "trastuzumab", "2026-11-01"),)))
    assert series.anchor == date(2026, 11, 1) and not series.anchor_is_first_dose
    assert series.baseline_is_latest and series.drop_points == 0


def test_no_baseline_when_every_lvef_follows_the_first_dose():
    series = lvef_series(facts_for(lvef("on", "2026-11-02", 43), statement("h", "trastuzumab", "2026-03-02")))
    assert series.baseline is None and series.drop_points is None


def test_results_without_value_date_or_percent_unit_are_unusable_and_future_ones_ignored():
    undated = {**lvef("undated", "2026-01-01", 60), "effectiveDateTime": None}
    series = lvef_series(facts_for(lvef("absent", "2026-11-01", None), lvef("fraction", "2026-10-01", 0.55, unit="1"), undated,
                                   lvef("future", "2026-12-30", 50), lvef("ok", "2026-09-01", 62)))
    assert [r.reference for r in series.results] == ["Observation/ok"]
    assert {u.reference: (u.day, u.why) for u in series.unusable} == {
        "Observation/absent": (date(2026, 11, 1), "it has no numeric value"),
        "Observation/fraction": (date(2026, 10, 1), 'recorded as 0.55 with the unit "1", not %'),
        "Observation/undated": (None, "it has no date"),
    }


@pytest.mark.parametrize("value, unit, why", [
    (0.55, None, "recorded as 0.55 with no unit, not read as 0.55% (it may be a fraction)"),
    (1, None, "recorded as 1 with no unit, not read as 1% (it may be a fraction)"),
    (0, None, "recorded as 0 with no unit, not read as 0% (it may be a fraction)"),
    (155, None, "recorded as 155 with no unit, outside 0-100"),
    (-5, None, "recorded as -5 with no unit, outside 0-100"),
    (155, "%", "recorded as 155%, outside 0-100%"),
    (-5, "%", "recorded as -5%, outside 0-100%"),
    (0.55, "1", 'recorded as 0.55 with the unit "1", not %'),
    (0.55, "{fraction}", 'recorded as 0.55 with the unit "{fraction}", not %'),
], ids=["unitless-fraction", "unitless-1", "unitless-0", "unitless-above-100", "unitless-negative", "percent-above-100",
        "percent-negative", "ucum-1", "fraction-annotation"])
def test_a_value_that_is_not_plainly_a_percentage_is_unusable_and_says_why(value, unit, why):
    series = lvef_series(facts_for(lvef("odd", "2026-11-01", value, unit=unit), lvef("ok", "2026-09-01", 62)))
    assert [r.reference for r in series.results] == ["Observation/ok"]
    assert [(u.reference, u.why) for u in series.unusable] == [("Observation/odd", why)]


@pytest.mark.parametrize("value, unit", [(55, None), (1.5, None), (100, None), (55, "%"), (0, "%"), (100, "%"), (55, "percent")])
def test_a_percentage_with_the_unit_or_plainly_one_without_it_is_read_as_recorded(value, unit):
    series = lvef_series(facts_for(lvef("a", "2026-11-01", value, unit=unit)))
    assert series.unusable == () and series.latest.value == value


def test_a_unit_given_only_as_text_is_read_as_the_unit():
    resource = lvef("a", "2026-11-01", 55)
    resource["valueQuantity"] = {"value": 55, "unit": "%"}
    assert lvef_series(facts_for(resource)).latest.value == 55


def test_lvef_low_comes_from_the_reference_range():
    series = lvef_series(facts_for(lvef("a", "2026-11-02", 48, low=53)))
    assert series.latest.low == 53


# --- next LVEF due -----------------------------------------------------------------------------------------


def test_next_lvef_due_is_last_plus_interval_while_on_therapy():
    facts = facts_for(lvef("a", "2026-05-25", 60), statement("h", "trastuzumab", "2026-03-02"))
    assert next_lvef_due(facts) == date(2026, 8, 17)


def test_next_lvef_due_without_any_lvef_is_the_start_of_therapy():
    assert next_lvef_due(facts_for(statement("h", "trastuzumab", "2026-03-02"))) == date(2026, 3, 2)


def test_no_lvef_due_when_not_on_her2_antibody_therapy():
    facts = facts_for(lvef("a", "2026-02-20", 60), statement("h", "trastuzumab", "2025-03-01", "2026-02-27", status="completed"),
                      statement("t", "paclitaxel", "2026-03-01"))
    assert next_lvef_due(facts) is None


def test_interval_comes_from_settings():
    facts = facts_for(lvef("a", "2026-10-01", 60), statement("h", "trastuzumab", "2026-03-02"),
                      settings=Settings(lvef_monitoring_interval_days=28))
    assert next_lvef_due(facts) == date(2026, 10, 29)


def days_ago(days: int) -> str:
    return (TODAY - timedelta(days=days)).isoformat()


def three_weekly_doses(last_dose_days_ago: int, *extra: dict) -> Facts:
    """Trastuzumab recorded only as administrations, 3 weeks apart; the last LVEF 175 days ago."""
    return facts_for(lvef("a", days_ago(175), 60), administration("h1", "trastuzumab", days_ago(last_dose_days_ago + 21)),
                     administration("h2", "trastuzumab", days_ago(last_dose_days_ago)), *extra)


@pytest.mark.parametrize("last_dose_days_ago", [21, 28])
def test_lvef_stays_due_on_the_next_3_weekly_dosing_day_and_a_week_later(last_dose_days_ago):
    assert next_lvef_due(three_weekly_doses(last_dose_days_ago)) == date.fromisoformat(days_ago(175)) + timedelta(days=84)


def test_lvef_monitoring_ends_when_the_next_3_weekly_dose_is_more_than_two_weeks_late():
    assert next_lvef_due(three_weekly_doses(35)) is not None
    assert next_lvef_due(three_weekly_doses(36)) is None
    assert next_lvef_due(three_weekly_doses(70)) is None


def test_a_weekly_schedule_on_record_ends_monitoring_three_weeks_after_the_last_dose():
    weekly = request("plan", "trastuzumab", 1, "wk")
    assert next_lvef_due(three_weekly_doses(21, weekly)) is not None
    assert next_lvef_due(three_weekly_doses(22, weekly)) is None


def test_dose_interval_is_the_longest_schedule_on_record_else_three_weeks():
    trastuzumab = frozenset({"trastuzumab"})
    assert her2_antibody_dose_interval(facts_for(), trastuzumab) == timedelta(days=21)
    assert her2_antibody_dose_interval(facts_for(request("w", "trastuzumab", 7, "d")), trastuzumab) == timedelta(days=7)
    weekly_then_3_weekly = facts_for(request("w", "trastuzumab", 1, "wk"), request("q3w", "trastuzumab", 3, "wk"))
    assert her2_antibody_dose_interval(weekly_then_3_weekly, trastuzumab) == timedelta(days=21)
    # Another drug's schedule and an order entered in error say nothing about this one.
    others = facts_for(request("w", "trastuzumab", 1, "wk"), request("q3w", "trastuzumab", 3, "wk", status="entered-in-error"),
                       request("p", "paclitaxel", 4, "wk"))
    assert her2_antibody_dose_interval(others, trastuzumab) == timedelta(days=7)


# --- heart failure -----------------------------------------------------------------------------------------


def test_heart_failure_conditions_are_active_hf_or_lvsd_including_icd_prefixes():
    facts = facts_for(condition("chf", SNOMED, "42343007"), condition("icd", ICD10CM, "I50.22", status=None),
                      condition("lvsd", SNOMED, "134401001"), condition("old", SNOMED, "42343007", status="resolved"))
    assert sorted(c.id for c in heart_failure_conditions(facts)) == ["chf", "icd", "lvsd"]


def test_a_refuted_heart_failure_is_not_heart_failure():
    facts = facts_for(condition("ruled-out", SNOMED, "42343007", verification="refuted"),
                      condition("suspected", SNOMED, "134401001", verification="provisional"))
    assert [c.id for c in heart_failure_conditions(facts)] == ["suspected"]


# --- cumulative doxorubicin --------------------------------------------------------------------------------


def test_mg_doses_are_divided_by_the_bsa_of_the_time_they_were_given():
    facts = facts_for(bsa("2024-04-15", 1.7), *(administration(f"a{i}", "doxorubicin", day, 102)
                                                for i, day in enumerate(["2024-03-11", "2024-04-01", "2024-04-22"])))
    history = cumulative_doxorubicin(facts)
    assert history.mg_per_m2 == 180.0 and history.doses == 3 and history.missing == ()
    assert history.bsa.day == date(2024, 4, 15)
    assert cumulative_doxorubicin_mg_per_m2(facts) == 180.0


def test_mg_per_m2_doses_are_summed_as_recorded_and_grams_converted():
    facts = facts_for(bsa("2026-10-20", 2.0), administration("a", "doxorubicin", "2026-10-01", 60, "mg/m2"),
                      administration("b", "doxorubicin", "2026-10-22", 0.12, "g"))
    assert cumulative_doxorubicin_mg_per_m2(facts) == 120.0


@pytest.mark.parametrize("dose", [
    {"value": 60, "unit": "MG/M2"},
    {"value": 60, "code": "mg/(m2)"},
    {"value": 60, "code": "{dose}", "unit": "mg/m2"},  # a code that is not the unit; the printed unit is
], ids=["printed-in-capitals", "ucum-parenthesised", "unit-after-an-unknown-code"])
def test_a_recorded_dose_unit_is_read_as_the_dosing_facts_read_it(dose):
    written = administration("b", "doxorubicin", "2026-10-22")
    written["dosage"] = {"dose": dose}
    facts = facts_for(administration("a", "doxorubicin", "2026-10-01", 60, "mg/m2"), written)
    assert cumulative_doxorubicin_mg_per_m2(facts) == 120.0


@pytest.mark.parametrize(
    "resources, missing",
    [
        ((administration("a", "doxorubicin", "2026-10-01", 102),), "body surface area"),
        ((administration("a", "doxorubicin", "2026-10-01"),), "the dose of MedicationAdministration/a"),
        ((administration("a", "doxorubicin", "2026-10-01", 10, "mL"),), "the dose of MedicationAdministration/a"),
        ((statement("ac", "doxorubicin", "2025-01-01", "2025-03-01", status="completed"),), "MedicationStatement/ac"),
    ],
)
def test_insufficient_records_give_no_total_and_say_what_is_missing(resources, missing):
    facts = facts_for(*resources)
    history = cumulative_doxorubicin(facts)
    assert history.mg_per_m2 is None and cumulative_doxorubicin_mg_per_m2(facts) is None
    assert any(missing in item for item in history.missing)


def test_a_statement_covering_recorded_administrations_is_not_missing():
    facts = facts_for(statement("ac", "doxorubicin", "2026-08-01", "2026-09-30", status="completed"),
                      administration("a", "doxorubicin", "2026-08-01", 60, "mg/m2"))
    assert cumulative_doxorubicin_mg_per_m2(facts) == 60.0


def test_an_administration_without_a_date_counts_as_a_dose_in_the_total():
    undated = {key: value for key, value in administration("b", "doxorubicin", "", 60, "mg/m2").items() if key != "effectiveDateTime"}
    history = cumulative_doxorubicin(facts_for(administration("a", "doxorubicin", "2026-08-01", 60, "mg/m2"), undated))
    assert (history.mg_per_m2, history.doses, history.first_day, history.last_day) == (120.0, 2, date(2026, 8, 1), date(2026, 8, 1))


def test_other_anthracyclines_are_reported_unconverted():
    facts = facts_for(administration("e1", "epirubicin", "2025-01-01", 100, "mg/m2"),
                      administration("e2", "epirubicin", "2025-01-22", 100, "mg/m2"))
    history = cumulative_doxorubicin(facts)
    assert history.mg_per_m2 == 0.0
    (other,) = history.other_anthracyclines
    assert (other.ingredient, other.display, other.doses, other.total_mg_per_m2, other.total_mg) == ("epirubicin", "epirubicin", 2, 200.0, 0.0)


def test_a_draft_or_intended_record_is_not_a_first_dose():
    planned = statement("h", "trastuzumab", "2026-03-02", status="intended")
    request = {"resourceType": "MedicationRequest", "id": "r", "status": "draft", "intent": "order", "subject": {"reference": "Patient/p"},
               "medicationCodeableConcept": {"coding": [{"system": RX, "code": DRUGS["trastuzumab"]}]}, "authoredOn": "2026-02-01"}
    facts = facts_for(lvef("a", "2026-11-02", 60), planned, request)
    series = lvef_series(facts)
    assert series.anchor is None and series.baseline is None
    assert next_lvef_due(facts) is None
