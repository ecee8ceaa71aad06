"""Ordered doses in mg/kg, weights read as of the dose day, and the dose history of HER2 agents."""
from __future__ import annotations

from datetime import date

from cds_hooks.facts import Facts
from cds_hooks.facts.dosing import (
    dose_mg_per_kg,
    last_dose_day,
    order_route,
    ordered_dose,
    previous_levels,
    recorded_doses,
    undated_records,
)
from cds_hooks.record import build_record
from cds_hooks.settings import Settings

RX = "http://www.nlm.nih.gov/research/umls/rxnorm"
TDM1 = {"coding": [{"system": RX, "code": "1371041"}]}


def weight(day, kg=68.0):
    return {"resourceType": "Observation", "id": f"w-{day}", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]}, "effectiveDateTime": day,
            "valueQuantity": {"value": kg, "unit": "kg", "code": "kg"}}


def draft(value=None, unit=None, authored="2026-11-22", **dosage):
    if value is not None:
        dosage["doseAndRate"] = [{"doseQuantity": {"value": value, "unit": unit}}]
    return {"resourceType": "MedicationRequest", "id": "d1", "status": "draft", "intent": "order", "subject": {"reference": "Patient/p"},
            "authoredOn": authored, "medicationCodeableConcept": TDM1, "dosageInstruction": [dosage]}


def administration(aid, day, value, unit, status="completed"):
    return {"resourceType": "MedicationAdministration", "id": aid, "status": status, "subject": {"reference": "Patient/p"},
            "medicationCodeableConcept": TDM1, "effectiveDateTime": day, "dosage": {"dose": {"value": value, "unit": unit}}}


def facts_with(*resources, drafts=(), as_of=date(2026, 11, 22)) -> Facts:
    return Facts(build_record({"all": list(resources)}, list(drafts)), as_of, Settings())


def test_ordered_dose_units_route_and_interval():
    order = facts_with(drafts=[draft(3.6, "mg/kg", route={"text": "Intravenous route"},
                                     timing={"repeat": {"frequency": 1, "period": 3, "periodUnit": "wk"}})]).record.draft_orders[0]
    dose = ordered_dose(order)
    assert (dose.value, dose.unit, dose.route, dose.interval_days) == (3.6, "mg/kg", "intravenous", 21)
    assert ordered_dose(facts_with(drafts=[draft(0.5, "g")]).record.draft_orders[0]).describe() == "500 mg"
    assert ordered_dose(facts_with(drafts=[draft(90, "mg/(m2)")]).record.draft_orders[0]).unit == "mg/m2"
    assert ordered_dose(facts_with(drafts=[draft(2, "vials")]).record.draft_orders[0]) is None
    assert ordered_dose(facts_with(drafts=[draft()]).record.draft_orders[0]) is None


def test_route_reads_words_not_substrings():
    order = facts_with(drafts=[draft(600, "mg", route={"coding": [{"display": "Subcutaneous use"}]})]).record.draft_orders[0]
    assert order_route(order) == ("subcutaneous", "Subcutaneous use")
    other = facts_with(drafts=[draft(600, "mg", route={"text": "intravesical"})]).record.draft_orders[0]
    assert order_route(other)[0] is None


def test_stu3_dose_on_the_dosage_is_read():
    stu3 = draft(authored="2026-11-22", doseQuantity={"value": 245, "unit": "mg"})
    facts = facts_with(weight("2026-11-10"), drafts=[stu3])
    assert dose_mg_per_kg(facts, facts.record.draft_orders[0]).mg_per_kg == 3.6


def test_mg_needs_a_weight_within_the_lookback_of_the_dose_day():
    facts = facts_with(weight("2026-11-10"), drafts=[draft(300, "mg")])
    dose = dose_mg_per_kg(facts, facts.record.draft_orders[0])
    assert (dose.mg_per_kg, dose.weight.value) == (4.41, 68.0)
    # Written in November and not given by June: the November weight is no longer current.
    later = facts_with(weight("2026-11-10"), drafts=[draft(300, "mg")], as_of=date(2027, 6, 1))
    assert dose_mg_per_kg(later, later.record.draft_orders[0]) is None
    stale = facts_with(weight("2026-09-01"), drafts=[draft(300, "mg")])
    assert dose_mg_per_kg(stale, stale.record.draft_orders[0]) is None


def test_a_draft_whose_course_began_weeks_ago_is_dosed_at_today_s_weight():
    # Written and bounded to start in late August, still a draft: the dose is today at the earliest.
    course = draft(250, "mg", authored="2026-08-30", timing={"repeat": {"boundsPeriod": {"start": "2026-09-01"}}})
    facts = facts_with(weight("2026-08-30", 70.0), weight("2026-11-21", 55.0), drafts=[course])
    dose = dose_mg_per_kg(facts, facts.record.draft_orders[0])
    assert (dose.mg_per_kg, dose.weight.day) == (4.55, date(2026, 11, 21))
    # Near miss: the newer weight is the heavier one, so the dose is within 3.6 mg/kg.
    facts = facts_with(weight("2026-08-30", 55.0), weight("2026-11-21", 70.0), drafts=[course])
    assert dose_mg_per_kg(facts, facts.record.draft_orders[0]).mg_per_kg == 3.57


def test_a_dose_planned_ahead_needs_a_weight_within_the_lookback_of_its_day():
    ahead = draft(245, "mg", timing={"repeat": {"boundsPeriod": {"start": "2026-12-01"}}})
    facts = facts_with(weight("2026-11-10"), drafts=[ahead])
    assert dose_mg_per_kg(facts, facts.record.draft_orders[0]).weight.day == date(2026, 11, 10)
    facts = facts_with(weight("2026-10-30"), drafts=[ahead])
    assert dose_mg_per_kg(facts, facts.record.draft_orders[0]) is None


def test_mg_per_kg_order_needs_no_weight_to_be_read():
    facts = facts_with(drafts=[draft(3.6, "mg/kg")])
    dose = dose_mg_per_kg(facts, facts.record.draft_orders[0])
    assert (dose.mg_per_kg, dose.weight, dose.converted_from_mg) == (3.6, None, False)


def test_a_dose_converted_from_mg_says_so():
    facts = facts_with(weight("2026-08-25"), weight("2026-11-10"), administration("a1", "2026-09-01", 204, "mg"),
                       administration("a2", "2026-09-22", 3.0, "mg/kg"), drafts=[draft(245, "mg")])
    assert dose_mg_per_kg(facts, facts.record.draft_orders[0]).converted_from_mg
    levels = previous_levels(facts, "ado_trastuzumab_emtansine", date(2026, 11, 23))
    assert [(d.mg_per_kg, d.converted_from_mg) for d in levels] == [(3.0, True), (3.0, False)]


def test_a_prescribed_dose_is_dated_by_its_writing_else_by_the_start_of_its_dosage_period():
    # A signed reduced order that records no authoredOn is dated, as its exposure is, by its dosage bounds.
    bounded = {"resourceType": "MedicationRequest", "id": "r1", "status": "active", "intent": "order",
               "subject": {"reference": "Patient/p"}, "medicationCodeableConcept": TDM1,
               "dosageInstruction": [{"timing": {"repeat": {"boundsPeriod": {"start": "2026-09-01"}}},
                                      "doseAndRate": [{"doseQuantity": {"value": 3.0, "unit": "mg/kg"}}]}]}
    levels = previous_levels(facts_with(bounded), "ado_trastuzumab_emtansine", date(2026, 11, 23))
    assert [(d.reference, d.day, d.mg_per_kg) for d in levels] == [("MedicationRequest/r1", date(2026, 9, 1), 3.0)]
    written = {**bounded, "authoredOn": "2026-08-30"}
    assert previous_levels(facts_with(written), "ado_trastuzumab_emtansine", date(2026, 11, 23))[0].day == date(2026, 8, 30)
    # Near miss: a period starting on the day asked about is no earlier level.
    assert previous_levels(facts_with(bounded), "ado_trastuzumab_emtansine", date(2026, 9, 1)) == ()


def statement(sid, status, **effective):
    return {"resourceType": "MedicationStatement", "id": sid, "status": status, "subject": {"reference": "Patient/p"},
            "medicationCodeableConcept": TDM1, **effective}


def test_last_dose_day_is_a_dose_given_else_the_recorded_end_of_the_therapy():
    ended = statement("s1", "completed", effectivePeriod={"start": "2026-03-02", "end": "2026-10-20"})
    given = administration("a1", "2026-09-01", 3.6, "mg/kg")
    last = last_dose_day(facts_with(ended, given), "ado_trastuzumab_emtansine", date(2026, 11, 23))
    assert (last.day, last.given, last.source) == (date(2026, 9, 1), True, "MedicationAdministration/a1")
    last = last_dose_day(facts_with(ended), "ado_trastuzumab_emtansine", date(2026, 11, 23))
    assert (last.day, last.given, last.source) == (date(2026, 10, 20), False, "MedicationStatement/s1")
    # An end on or after the day asked about, or a therapy with no end, dates nothing before it.
    assert last_dose_day(facts_with(ended), "ado_trastuzumab_emtansine", date(2026, 10, 20)) is None
    stopped = statement("s2", "stopped", effectivePeriod={"start": "2026-03-02"})
    assert last_dose_day(facts_with(stopped), "ado_trastuzumab_emtansine", date(2026, 11, 23)) is None


def test_a_therapy_started_after_a_recorded_end_leaves_the_last_dose_undated():
    ended = statement("s1", "completed", effectivePeriod={"start": "2026-03-02", "end": "2026-07-20"})
    # The next order, active with no administrations sent: it continued the therapy, so July 20 is not the last dose.
    continued = {"resourceType": "MedicationRequest", "id": "r2", "status": "active", "intent": "order",
                 "subject": {"reference": "Patient/p"}, "medicationCodeableConcept": TDM1, "authoredOn": "2026-08-03"}
    assert last_dose_day(facts_with(ended, continued), "ado_trastuzumab_emtansine", date(2026, 11, 23)) is None
    # Started after the day asked about: it says nothing of the doses before that day.
    assert last_dose_day(facts_with(ended, continued), "ado_trastuzumab_emtansine", date(2026, 8, 1)).day == date(2026, 7, 20)


def test_history_converts_mg_with_the_weight_of_that_day_and_skips_errors():
    facts = facts_with(weight("2026-08-05", 70.0), weight("2026-11-10", 60.0),
                       administration("a1", "2026-08-11", 252, "mg"), administration("a2", "2026-09-01", 3.0, "mg/kg"),
                       administration("a3", "2026-09-22", 2.4, "mg/kg", status="entered-in-error"))
    assert [d.reference for d in facts.get(recorded_doses)] == ["MedicationAdministration/a1", "MedicationAdministration/a2"]
    levels = previous_levels(facts, "ado_trastuzumab_emtansine", date(2026, 11, 23))
    assert [d.mg_per_kg for d in levels] == [3.6, 3.0]
    assert last_dose_day(facts, "ado_trastuzumab_emtansine", date(2026, 11, 23)).day == date(2026, 9, 1)
    assert previous_levels(facts, "ado_trastuzumab_emtansine", date(2026, 9, 1))[-1].day == date(2026, 8, 11)


def test_undated_records_show_the_drug_but_date_nothing():
    undated = statement("s1", "unknown")
    stopped = statement("s2", "stopped")
    held = statement("s3", "on-hold")  # held with no dates: an exposure with no end, not an undated record
    dated = statement("s4", "completed", effectivePeriod={"start": "2026-03-02"})
    in_error = statement("s5", "entered-in-error")
    given_undated = {key: value for key, value in administration("a1", None, 3.6, "mg/kg").items() if key != "effectiveDateTime"}
    facts = facts_with(undated, stopped, held, dated, in_error, given_undated)
    found = [m.reference for m in facts.get(undated_records, "ado_trastuzumab_emtansine")]
    assert found == ["MedicationStatement/s1", "MedicationStatement/s2", "MedicationAdministration/a1"]
    assert facts.get(undated_records, "trastuzumab") == ()
