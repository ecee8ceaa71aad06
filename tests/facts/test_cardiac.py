"""Cardiac facts: the LVEF baseline is taken before HER2 therapy, and the doxorubicin total is never guessed."""
from __future__ import annotations

from datetime import date, timedelta

import pytest

from cds_hooks.dates import add_months
from cds_hooks.facts import Facts, disease
from cds_hooks.facts.cardiac import (
    AnthracyclineCourse,
    cumulative_doxorubicin,
    cumulative_doxorubicin_mg_per_m2,
    heart_failure_conditions,
    her2_antibody_dose_interval,
    lvef_schedule,
    lvef_series,
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


def next_due(facts: Facts) -> date | None:
    """The day the next LVEF is due by the schedule that applies; None when none does."""
    schedule = facts.get(lvef_schedule)
    return schedule.due if schedule else None


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


def undated(resource: dict) -> dict:
    """The medication record with its dates removed."""
    return {key: value for key, value in resource.items() if key not in ("effectivePeriod", "effectiveDateTime", "authoredOn")}


def test_her2_therapy_given_on_days_the_record_does_not_date_leaves_no_result_shown_to_be_pretreatment():
    # On trastuzumab by a statement with no dates: the 65% may be from before it or during it.
    lvefs = (lvef("old", "2026-02-20", 65), lvef("now", "2026-11-02", 45))
    drafts = (draft("d", "trastuzumab", "2026-11-23", 6),)
    series = lvef_series(facts_for(*lvefs, undated(statement("h", "trastuzumab", "2026-03-02")), drafts=drafts))
    assert (series.anchor, series.anchor_is_first_dose, series.baseline, series.drop_points) == (None, True, None, None)
    # Near miss: the same course dated from 2026-03-02.
    series = lvef_series(facts_for(*lvefs, statement("h", "trastuzumab", "2026-03-02"), drafts=drafts))
    assert series.baseline.reference == "Observation/old" and series.drop_points == 20


def test_no_baseline_when_every_lvef_follows_the_first_dose():
    series = lvef_series(facts_for(lvef("on", "2026-11-02", 43), statement("h", "trastuzumab", "2026-03-02")))
    assert series.baseline is None and series.drop_points is None


def test_results_without_value_date_or_percent_unit_or_dated_after_today_are_unusable():
    undated = {**lvef("undated", "2026-01-01", 60), "effectiveDateTime": None}
    series = lvef_series(facts_for(lvef("absent", "2026-11-01", None), lvef("fraction", "2026-10-01", 0.55, unit="1"), undated,
                                   lvef("future", "2026-12-30", 50), lvef("ok", "2026-09-01", 62)))
    assert [r.reference for r in series.results] == ["Observation/ok"]
    assert {u.reference: (u.day, u.why) for u in series.unusable} == {
        "Observation/absent": (date(2026, 11, 1), "it has no numeric value"),
        "Observation/fraction": (date(2026, 10, 1), 'recorded as 0.55 with the unit "1", not %'),
        "Observation/undated": (None, "it has no date"),
        "Observation/future": (date(2026, 12, 30), "it is dated after today"),
    }


def test_unusable_records_after_a_result_are_those_dated_later_or_undated():
    undated = {**lvef("undated", "2026-01-01", 60), "effectiveDateTime": None}
    series = lvef_series(facts_for(lvef("later", "2026-11-10", 0.4, unit=None), lvef("same-day", "2026-11-02", 0.5, unit=None),
                                   lvef("older", "2026-07-01", 0.6, unit=None), undated, lvef("used", "2026-11-02", 45)))
    after = series.unusable_after(series.latest.day)
    # Newest first, undated last; a record of the result's own day is not counted newer.
    assert [u.reference for u in after] == ["Observation/later", "Observation/undated"]
    assert series.unusable_after(None) == series.unusable
    assert series.unusable_after(date(2026, 11, 10)) == (series.unusable[-1],)


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
    (0.55, "%", "recorded as 0.55%, which no heart pumps (it may be a fraction written with %)"),
    (1, "%", "recorded as 1%, which no heart pumps (it may be a fraction written with %)"),
    (0, "%", "recorded as 0%, which no heart pumps (it may be a fraction written with %)"),
], ids=["unitless-fraction", "unitless-1", "unitless-0", "unitless-above-100", "unitless-negative", "percent-above-100",
        "percent-negative", "ucum-1", "fraction-annotation", "percent-fraction", "percent-1", "percent-0"])
def test_a_value_that_is_not_plainly_a_percentage_is_unusable_and_says_why(value, unit, why):
    series = lvef_series(facts_for(lvef("odd", "2026-11-01", value, unit=unit), lvef("ok", "2026-09-01", 62)))
    assert [r.reference for r in series.results] == ["Observation/ok"]
    assert [(u.reference, u.why) for u in series.unusable] == [("Observation/odd", why)]


@pytest.mark.parametrize("value, unit", [(55, None), (1.5, None), (100, None), (55, "%"), (1.5, "%"), (100, "%"), (55, "percent")])
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
    assert next_due(facts) == date(2026, 8, 17)


def test_next_lvef_due_without_any_lvef_is_the_start_of_therapy():
    assert next_due(facts_for(statement("h", "trastuzumab", "2026-03-02"))) == date(2026, 3, 2)


def test_no_lvef_due_when_not_on_her2_antibody_therapy():
    facts = facts_for(lvef("a", "2026-02-20", 60), statement("h", "trastuzumab", "2025-03-01", "2026-02-27", status="completed"),
                      statement("t", "paclitaxel", "2026-03-01"))
    assert next_due(facts) is None


def test_interval_comes_from_settings():
    facts = facts_for(lvef("a", "2026-10-01", 60), statement("h", "trastuzumab", "2026-03-02"),
                      settings=Settings(lvef_monitoring_interval_days=28))
    assert next_due(facts) == date(2026, 10, 29)


def days_ago(days: int) -> str:
    return (TODAY - timedelta(days=days)).isoformat()


def three_weekly_doses(last_dose_days_ago: int, *extra: dict) -> Facts:
    """Trastuzumab recorded only as administrations, 3 weeks apart; the last LVEF 175 days ago."""
    return facts_for(lvef("a", days_ago(175), 60), administration("h1", "trastuzumab", days_ago(last_dose_days_ago + 21)),
                     administration("h2", "trastuzumab", days_ago(last_dose_days_ago)), *extra)


@pytest.mark.parametrize("last_dose_days_ago", [21, 28])
def test_lvef_stays_due_on_the_next_3_weekly_dosing_day_and_a_week_later(last_dose_days_ago):
    assert next_due(three_weekly_doses(last_dose_days_ago)) == date.fromisoformat(days_ago(175)) + timedelta(days=84)


def test_lvef_monitoring_ends_when_the_next_3_weekly_dose_is_more_than_two_weeks_late():
    assert next_due(three_weekly_doses(35)) is not None
    assert next_due(three_weekly_doses(36)) is None
    assert next_due(three_weekly_doses(70)) is None


def test_a_weekly_schedule_on_record_ends_monitoring_three_weeks_after_the_last_dose():
    weekly = request("plan", "trastuzumab", 1, "wk")
    assert next_due(three_weekly_doses(21, weekly)) is not None
    assert next_due(three_weekly_doses(22, weekly)) is None


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



# --- LVEF schedule while trastuzumab is held, and after adjuvant therapy (rule 13) --------------------------


def held_order(rid: str, start: str, drug: str = "trastuzumab", reason: str | None = "LVEF fell from 62% to 45%",
               drug_text: str | None = None) -> dict:
    """An order of the drug put on hold, authored on `start`, with no end."""
    resource = {"resourceType": "MedicationRequest", "id": rid, "status": "on-hold", "intent": "order", "subject": {"reference": "Patient/p"},
                "medicationCodeableConcept": {"coding": [{"system": RX, "code": DRUGS[drug]}], "text": drug_text or drug},
                "authoredOn": start}
    if reason:
        resource["statusReason"] = {"text": reason}
    return resource


def test_while_trastuzumab_is_held_lvef_is_due_4_weeks_after_the_last():
    for last_lvef_days_ago in (35, 20):
        facts = facts_for(lvef("a", days_ago(last_lvef_days_ago), 45), held_order("h", "2026-03-02"),
                          administration("h1", "trastuzumab", days_ago(42)))
        schedule = lvef_schedule(facts)
        assert (schedule.reason, schedule.interval_days) == ("held", 28)
        assert schedule.due == date.fromisoformat(days_ago(last_lvef_days_ago)) + timedelta(days=28)
        assert [e.source for e in schedule.exposures] == ["MedicationRequest/h"]
    assert next_due(facts) > TODAY  # 20 days old: not yet due


def test_a_held_statement_counts_as_a_hold_and_without_any_lvef_is_due_from_its_start():
    schedule = lvef_schedule(facts_for(statement("h", "trastuzumab", "2026-03-02", status="on-hold")))
    assert (schedule.reason, schedule.due) == ("held", date(2026, 3, 2))


def test_an_old_order_left_on_hold_under_a_later_active_order_is_no_hold():
    facts = facts_for(lvef("a", days_ago(35), 60), held_order("old", "2026-03-02"), statement("new", "trastuzumab", "2026-07-01"))
    schedule = lvef_schedule(facts)
    assert (schedule.reason, schedule.interval_days) == ("on-therapy", 84)
    assert next_due(facts) > TODAY


def test_a_hold_that_ended_or_only_held_another_drug_is_no_trastuzumab_hold():
    ended = {**held_order("h", "2026-03-02"), "dispenseRequest": {"validityPeriod": {"start": "2026-03-02", "end": "2026-10-01"}}}
    assert lvef_schedule(facts_for(lvef("a", days_ago(35), 60), ended, statement("t", "trastuzumab", "2026-03-02"))).reason == "on-therapy"
    pertuzumab = held_order("p", "2026-03-02", drug="pertuzumab")
    assert lvef_schedule(facts_for(lvef("a", days_ago(35), 60), pertuzumab, statement("t", "trastuzumab", "2026-03-02"))).reason == "on-therapy"


def adjuvant_course(ended_days_ago: int, *extra: dict) -> Facts:
    """Early breast cancer; a trastuzumab course recorded as completed `ended_days_ago`, nothing since."""
    course = statement("h", "trastuzumab", (TODAY - timedelta(days=ended_days_ago + 365)).isoformat(), days_ago(ended_days_ago),
                       status="completed")
    return facts_for(condition("bc", SNOMED, "427685000"), course, *extra)


def test_after_adjuvant_therapy_lvef_is_due_6_months_after_the_last():
    facts = adjuvant_course(365, lvef("a", days_ago(213), 60))
    schedule = lvef_schedule(facts)
    assert (schedule.reason, schedule.interval_days) == ("after-adjuvant", 182)
    assert schedule.due == date.fromisoformat(days_ago(213)) + timedelta(days=182) < TODAY
    assert schedule.last_dose.day == date.fromisoformat(days_ago(365))
    assert schedule.monitoring_until == add_months(date.fromisoformat(days_ago(365)), 24)
    assert [e.source for e in schedule.exposures] == ["MedicationStatement/h"]
    assert next_due(adjuvant_course(365, lvef("a", days_ago(152), 60))) > TODAY  # 5 months old


def test_after_adjuvant_therapy_the_interval_runs_from_an_lvef_at_completion_up_to_4_weeks_before_the_last_dose():
    for lvef_days_before_last_dose in (28, 14, 0, -30):  # -30: a month after it
        lvef_day = date.fromisoformat(days_ago(100 + lvef_days_before_last_dose))
        schedule = lvef_schedule(adjuvant_course(100, lvef("a", lvef_day.isoformat(), 60)))
        assert (schedule.completion_lvef_missing, schedule.due) == (False, lvef_day + timedelta(days=182))


def test_after_adjuvant_therapy_without_an_lvef_at_completion_it_is_due_on_the_last_dose_day():
    last_dose = date.fromisoformat(days_ago(100))
    for lvef_days_before_last_dose in (29, 80):
        schedule = lvef_schedule(adjuvant_course(100, lvef("a", days_ago(100 + lvef_days_before_last_dose), 60)))
        assert (schedule.reason, schedule.completion_lvef_missing, schedule.due) == ("after-adjuvant", True, last_dose)
    # With no LVEF on record at all, the one at completion is missing too.
    assert (lvef_schedule(adjuvant_course(100)).completion_lvef_missing, next_due(adjuvant_course(100))) == (True, last_dose)


def test_after_adjuvant_therapy_with_an_undated_last_dose_the_completion_window_runs_from_the_earliest_it_can_be():
    def completed_order(*extra: dict) -> Facts:
        # A completed order records no dose date: its last dose was on or after it was authored, 100 days ago.
        order = {**request("h", "trastuzumab", 3, "wk"), "authoredOn": days_ago(100)}
        return facts_for(condition("bc", SNOMED, "427685000"), order, *extra)

    schedule = lvef_schedule(completed_order(lvef("a", days_ago(114), 60)))
    assert (schedule.last_dose.day, schedule.last_dose.at_least) == (None, date.fromisoformat(days_ago(100)))
    assert (schedule.completion_lvef_missing, schedule.due) == (False, date.fromisoformat(days_ago(114)) + timedelta(days=182))
    schedule = lvef_schedule(completed_order(lvef("a", days_ago(129), 60)))
    assert (schedule.completion_lvef_missing, schedule.due) == (True, date.fromisoformat(days_ago(100)))


def test_after_adjuvant_monitoring_lasts_2_calendar_years_from_the_last_dose():
    last_within = (TODAY - add_months(TODAY, -24)).days
    assert lvef_schedule(adjuvant_course(last_within, lvef("a", days_ago(300), 60))) is not None
    assert lvef_schedule(adjuvant_course(last_within + 1, lvef("a", days_ago(300), 60))) is None
    assert lvef_schedule(adjuvant_course(913, lvef("a", days_ago(300), 60))) is None  # 2.5 years


def test_no_after_adjuvant_schedule_in_metastatic_or_unrecorded_disease_or_after_other_her2_drugs():
    metastatic = adjuvant_course(365, lvef("a", days_ago(300), 60), condition("mets", SNOMED, "128462008"))
    assert lvef_schedule(metastatic) is None
    no_cancer_recorded = facts_for(statement("h", "trastuzumab", "2025-01-01", days_ago(365), status="completed"), lvef("a", days_ago(300), 60))
    assert lvef_schedule(no_cancer_recorded) is None
    tdm1 = facts_for(condition("bc", SNOMED, "427685000"), statement("k", "tdm1", "2025-01-01", days_ago(365), status="completed"),
                     lvef("a", days_ago(300), 60))
    assert lvef_schedule(tdm1) is None


def test_back_on_her2_antibody_therapy_the_on_therapy_interval_applies_not_the_after_adjuvant_one():
    schedule = lvef_schedule(adjuvant_course(365, lvef("a", days_ago(100), 60), statement("k", "tdm1", days_ago(60))))
    assert (schedule.reason, schedule.interval_days) == ("on-therapy", 84)


class RecordingFacts(Facts):
    """Facts that remember which facts were asked for."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.asked: set = set()

    def get(self, fact, *args):
        self.asked.add(fact)
        return super().get(fact, *args)


def test_without_her2_antibody_history_the_schedule_reads_neither_lvef_nor_disease_setting():
    resources = [condition("bc", SNOMED, "427685000"), lvef("a", days_ago(300), 60), statement("t", "paclitaxel", "2026-03-01", "2026-06-01")]
    facts = RecordingFacts(build_record({"all": resources}, []), TODAY, Settings())
    assert facts.get(lvef_schedule) is None
    assert lvef_series not in facts.asked and disease.setting not in facts.asked


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


def test_another_anthracycline_recorded_only_as_a_course_is_named_not_passed_over():
    course = statement("fec", "epirubicin", "2024-01-01", "2024-03-01", status="completed")
    history = cumulative_doxorubicin(facts_for(course))
    assert history.other_courses == (AnthracyclineCourse("epirubicin", "MedicationStatement/fec"),)
    assert history.other_anthracyclines == () and history.missing == ()
    # Near miss: its doses are recorded as administrations, which are summed as recorded instead.
    history = cumulative_doxorubicin(facts_for(course, administration("e1", "epirubicin", "2024-01-01", 100, "mg/m2")))
    assert history.other_courses == () and history.other_anthracyclines[0].total_mg_per_m2 == 100.0


def test_a_draft_or_intended_record_is_not_a_first_dose():
    planned = statement("h", "trastuzumab", "2026-03-02", status="intended")
    request = {"resourceType": "MedicationRequest", "id": "r", "status": "draft", "intent": "order", "subject": {"reference": "Patient/p"},
               "medicationCodeableConcept": {"coding": [{"system": RX, "code": DRUGS["trastuzumab"]}]}, "authoredOn": "2026-02-01"}
    facts = facts_for(lvef("a", "2026-11-02", 60), planned, request)
    series = lvef_series(facts)
    assert series.anchor is None and series.baseline is None
    assert next_due(facts) is None
