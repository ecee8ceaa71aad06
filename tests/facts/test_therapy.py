"""Exposure periods: concurrent vs sequential is decided by dates, not by status alone."""
from __future__ import annotations

from datetime import date

from cds_hooks.facts import therapy
from cds_hooks.facts.therapy import (
    DOSE_COVERAGE,
    dosed_until,
    exposures_started_before,
    last_dose_of,
    dose_period,
    planned_period,
    running_over,
    started_before,
)
from cds_hooks.record import build_record

RX = "http://www.nlm.nih.gov/research/umls/rxnorm"
DOXORUBICIN = {"coding": [{"system": RX, "code": "3639"}]}


RECORD_DAY = date(2026, 11, 22)


def record_with(*resources, drafts=()):
    return build_record({"meds": list(resources)}, list(drafts))


def exposures(record, record_day=RECORD_DAY):
    """The record's exposures as it stands on RECORD_DAY (the tests' today)."""
    return therapy.exposures(record, record_day)


def statement(status, **effective):
    return {"resourceType": "MedicationStatement", "id": f"s-{status}", "status": status, "subject": {"reference": "Patient/p"},
            "medicationCodeableConcept": DOXORUBICIN, **effective}


def administration(aid, when, status="completed"):
    return {"resourceType": "MedicationAdministration", "id": aid, "status": status, "subject": {"reference": "Patient/p"},
            "medicationCodeableConcept": DOXORUBICIN, "effectiveDateTime": when}


def test_active_statement_without_end_is_ongoing():
    (exposure,) = exposures(record_with(statement("active", effectivePeriod={"start": "2026-11-02"})))
    assert exposure.ongoing and exposure.start == date(2026, 11, 2)
    assert exposure.overlaps(date(2030, 1, 1))


def test_completed_course_ends_on_its_end_date():
    (exposure,) = exposures(record_with(statement("completed", effectivePeriod={"start": "2026-08-24", "end": "2026-10-26"})))
    assert exposure.end == date(2026, 10, 26)
    assert not exposure.overlaps(date(2026, 10, 27))
    assert exposure.overlaps(date(2026, 10, 26))


def test_a_dose_covers_its_cycle_but_not_the_next():
    (exposure,) = exposures(record_with(administration("a1", "2026-10-26T10:30:00Z")))
    assert exposure.end == date(2026, 10, 26) + DOSE_COVERAGE
    assert exposure.overlaps(date(2026, 11, 5))          # 10 days later: same cycle
    assert not exposure.overlaps(date(2026, 11, 16))     # 21 days later: the usual sequential switch


def test_in_progress_administration_is_one_dose_not_forever():
    (exposure,) = exposures(record_with(administration("a1", "2026-10-26", status="in-progress")))
    assert exposure.end == date(2026, 10, 26) + DOSE_COVERAGE


def test_partial_dates_take_their_widest_meaning():
    (exposure,) = exposures(record_with(statement("completed", effectivePeriod={"start": "2026-03", "end": "2026-05"})))
    assert (exposure.start, exposure.end) == (date(2026, 3, 1), date(2026, 5, 31))


def test_records_in_error_or_not_taken_are_not_exposures():
    assert exposures(record_with(statement("entered-in-error"), administration("x", "2026-10-01", status="not-done"))) == ()


def test_an_unsigned_draft_in_the_record_is_not_an_exposure():
    draft = {"resourceType": "MedicationRequest", "id": "left-unsigned", "status": "draft", "intent": "order",
             "subject": {"reference": "Patient/p"}, "medicationCodeableConcept": DOXORUBICIN, "authoredOn": "2026-03-01"}
    active = {**draft, "id": "signed", "status": "active"}
    assert [e.source for e in exposures(record_with(draft, active))] == ["MedicationRequest/signed"]


def test_planned_period_of_a_draft_prefers_dosage_bounds_then_authored_date_then_today():
    draft = {"resourceType": "MedicationRequest", "id": "d", "status": "draft", "intent": "order", "subject": {"reference": "Patient/p"},
             "medicationCodeableConcept": DOXORUBICIN, "authoredOn": "2026-11-20",
             "dosageInstruction": [{"timing": {"repeat": {"boundsPeriod": {"start": "2026-12-01", "end": "2027-02-01"}}}}]}
    bare = {**draft, "id": "bare", "dosageInstruction": []}
    undated = {key: value for key, value in bare.items() if key != "authoredOn"}
    orders = record_with(drafts=[draft, bare, {**undated, "id": "undated"}]).draft_orders
    today = date(2026, 11, 22)
    assert [planned_period(order, today) for order in orders] == [
        (date(2026, 12, 1), date(2027, 2, 1)),
        (date(2026, 11, 20), None),
        (today, None),
    ]


def test_dose_period_runs_from_the_dose_day_and_never_ends_before_it():
    def draft(did, bounds):
        return {"resourceType": "MedicationRequest", "id": did, "status": "draft", "intent": "order", "subject": {"reference": "Patient/p"},
                "medicationCodeableConcept": DOXORUBICIN, "dosageInstruction": [{"timing": {"repeat": {"boundsPeriod": bounds}}}]}

    today = date(2026, 11, 22)
    ahead, running, over, open_ended = record_with(drafts=[
        draft("ahead", {"start": "2026-12-01", "end": "2027-02-01"}), draft("running", {"start": "2026-09-01", "end": "2027-02-01"}),
        draft("over", {"start": "2026-09-01", "end": "2026-10-15"}), draft("open", {"start": "2026-09-01"})]).draft_orders
    assert dose_period(ahead, today) == (date(2026, 12, 1), date(2027, 2, 1))
    assert dose_period(running, today) == (today, date(2027, 2, 1))
    # A planned course already over is still a dose given today, not an empty window.
    assert dose_period(over, today) == (today, today)
    assert dose_period(open_ended, today) == (today, None)


def test_last_dose_is_the_newest_recorded_dose_or_course_end():
    found = exposures(record_with(administration("a1", "2026-09-01"), administration("a2", "2026-10-05"),
                                  statement("completed", effectivePeriod={"start": "2026-01-05", "end": "2026-06-30"})))
    last = last_dose_of(found)
    assert (last.day, last.at_least, last.sources) == (date(2026, 10, 5), date(2026, 10, 5), ("MedicationAdministration/a2",))


def test_last_dose_names_the_drugs_that_gave_it():
    # Neoadjuvant trastuzumab, then adjuvant T-DM1 (KATHERINE).
    trastuzumab = {**statement("completed", effectivePeriod={"start": "2025-01-06", "end": "2025-05-12"}), "id": "h",
                   "medicationCodeableConcept": {"coding": [{"system": RX, "code": "224905"}]}}
    kadcyla = {**statement("completed", effectivePeriod={"start": "2025-06-30", "end": "2026-03-20"}), "id": "k",
               "medicationCodeableConcept": {"coding": [{"system": RX, "code": "1371041"}]}}
    assert last_dose_of(exposures(record_with(trastuzumab, kadcyla))).ingredients == {"ado_trastuzumab_emtansine"}
    assert last_dose_of(exposures(record_with(trastuzumab))).ingredients == {"trastuzumab"}


def test_a_later_course_without_an_end_leaves_the_last_dose_open_from_its_start():
    stopped = {"resourceType": "MedicationRequest", "id": "r", "status": "stopped", "intent": "order", "subject": {"reference": "Patient/p"},
               "medicationCodeableConcept": DOXORUBICIN, "authoredOn": "2026-10-20"}
    last = last_dose_of(exposures(record_with(administration("a1", "2026-09-01"), stopped)))
    assert (last.day, last.at_least, last.sources) == (None, date(2026, 10, 20), ("MedicationRequest/r",))


def test_therapy_is_dosed_until_its_last_dose_not_the_end_of_that_dose_cycle():
    today = date(2026, 11, 22)
    given = exposures(record_with(administration("a1", "2026-10-21"), administration("a2", "2026-11-11")))
    assert dosed_until(given, today) == date(2026, 11, 11)
    # A later order stopped without an end date gave its dose on or after its start.
    stopped = {"resourceType": "MedicationRequest", "id": "r", "status": "stopped", "intent": "order", "subject": {"reference": "Patient/p"},
               "medicationCodeableConcept": DOXORUBICIN, "authoredOn": "2026-11-16"}
    assert dosed_until(exposures(record_with(administration("a1", "2026-10-21"), stopped)), today) == date(2026, 11, 16)
    # A planned end still ahead counts only up to today.
    planned = statement("active", effectivePeriod={"start": "2026-01-05", "end": "2027-01-04"})
    assert dosed_until(exposures(record_with(planned)), today) == today
    assert dosed_until((), today) is None


def test_therapy_recorded_as_continuing_is_dosed_until_today_unless_doses_are_dated_since_it_started():
    today = date(2026, 11, 22)
    continuing = statement("active", effectivePeriod={"start": "2026-07-06"})
    assert dosed_until(exposures(record_with(administration("a1", "2026-06-15"), continuing)), today) == today
    # Doses given under it date how far it got.
    assert dosed_until(exposures(record_with(continuing, administration("a2", "2026-10-26"))), today) == date(2026, 10, 26)


def test_exposures_started_before_a_day_include_undated_ones():
    undated = statement("active")
    later = administration("a1", "2026-11-30")
    earlier = administration("a0", "2026-10-26")
    found = exposures(record_with(undated, later, earlier))
    assert [e.source for e in exposures_started_before(found, "doxorubicin", date(2026, 11, 23))] == [
        "MedicationStatement/s-active", "MedicationAdministration/a0"]
    assert started_before(found, "doxorubicin", date(2026, 11, 23))
    assert exposures_started_before(found, "trastuzumab", date(2026, 11, 23)) == ()


def test_running_over_is_an_order_or_statement_over_the_days_or_a_dose_in_the_cycle_before_them():
    doxorubicin = frozenset({"doxorubicin"})
    dose = administration("a1", "2026-11-02")
    assert running_over(exposures(record_with(dose)), doxorubicin, date(2026, 11, 22))  # day 20 of its cycle
    assert not running_over(exposures(record_with(dose)), doxorubicin, date(2026, 11, 23))
    active = statement("active", effectivePeriod={"start": "2026-03-02"})
    assert running_over(exposures(record_with(active)), doxorubicin, date(2027, 1, 4))
    assert not running_over(exposures(record_with(active)), frozenset({"trastuzumab"}), date(2027, 1, 4))
    ended = statement("active", effectivePeriod={"start": "2026-03-02", "end": "2026-10-26"})
    assert not running_over(exposures(record_with(ended)), doxorubicin, date(2026, 11, 23))
    # Held or stopped therapy does not run, whatever its dates say.
    for status in ("on-hold", "stopped"):
        assert not running_over(exposures(record_with(statement(status, effectivePeriod={"start": "2026-11-16"}))), doxorubicin, date(2026, 11, 23))


def test_the_reason_a_record_gives_for_its_status_is_kept_in_its_own_words():
    held = statement("on-hold", effectivePeriod={"start": "2026-03-02"}, statusReason=[{"text": "LVEF fell to 44%"}])
    coded = {"resourceType": "MedicationRequest", "id": "r", "status": "stopped", "intent": "order", "subject": {"reference": "Patient/p"},
             "medicationCodeableConcept": DOXORUBICIN, "authoredOn": "2026-03-02",
             "statusReason": {"coding": [{"system": "http://snomed.info/sct", "code": "407563006", "display": "Treatment not tolerated"}]}}
    found = {e.source: e.status_reason for e in exposures(record_with(held, coded, administration("a1", "2026-10-26")))}
    assert found == {"MedicationStatement/s-on-hold": "LVEF fell to 44%", "MedicationRequest/r": "Treatment not tolerated",
                     "MedicationAdministration/a1": None}


def test_a_course_stopped_or_completed_before_its_planned_end_ended_by_the_day_of_the_record():
    planned = {"effectivePeriod": {"start": "2026-09-01", "end": "2027-03-01"}}
    for status in ("stopped", "completed"):
        (exposure,) = exposures(record_with(statement(status, **planned)))
        assert (exposure.end, exposure.last_dose) == (RECORD_DAY, RECORD_DAY), status
        assert not exposure.overlaps(date(2026, 11, 29), date(2026, 11, 29))
    # Near misses: an active course runs to its planned end; an end already past is kept as recorded.
    (active,) = exposures(record_with(statement("active", **planned)))
    assert active.end == date(2027, 3, 1)
    (ended,) = exposures(record_with(statement("stopped", effectivePeriod={"start": "2026-09-01", "end": "2026-10-15"})))
    assert ended.end == date(2026, 10, 15)
    # Read for a later day (a dose day), the record still says it stopped by the day of the record.
    (later,) = exposures(record_with(statement("stopped", **planned)), record_day=RECORD_DAY)
    assert later.end == RECORD_DAY

