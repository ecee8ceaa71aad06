"""Pregnancy rules 35-37: which drafts they look at, when a HER2 agent is a start, and what each card carries."""
from __future__ import annotations

from datetime import date

from cds_hooks.facts import Facts
from cds_hooks.record import build_record
from cds_hooks.render import CardRenderer
from cds_hooks.rules.base import RuleContext
from cds_hooks.rules.pregnancy import (
    contraception_after_therapy,
    contraception_counselling,
    her2_agent_in_pregnancy,
    status_before_her2_start,
)
from cds_hooks.settings import Settings

RX = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
TODAY = date(2026, 11, 22)
RENDERER = CardRenderer.load()
TRASTUZUMAB = {"coding": [{"system": RX, "code": "224905"}], "text": "trastuzumab"}
TDM1 = {"coding": [{"system": RX, "code": "1371041"}], "text": "ado-trastuzumab emtansine"}
TDXD = {"coding": [{"system": "http://www.whocc.no/atc", "code": "L01FD04"}], "text": "Enhertu"}
LAPATINIB = {"coding": [{"system": RX, "code": "480167"}], "text": "lapatinib"}
WOMAN = {"resourceType": "Patient", "id": "p", "gender": "female", "birthDate": "1990-05-14"}
PREGNANCY = {"resourceType": "Condition", "id": "preg", "subject": {"reference": "Patient/p"},
             "code": {"coding": [{"system": "http://snomed.info/sct", "code": "77386006"}]}}


def draft(did, medication, start="2026-11-23"):
    return {"resourceType": "MedicationRequest", "id": did, "status": "draft", "intent": "order", "subject": {"reference": "Patient/p"},
            "medicationCodeableConcept": medication, "authoredOn": "2026-11-22",
            "dosageInstruction": [{"timing": {"repeat": {"boundsPeriod": {"start": start}}}}]}


def statement(sid, medication, start, end=None):
    period = {"start": start, **({"end": end} if end else {})}
    return {"resourceType": "MedicationStatement", "id": sid, "status": "completed" if end else "active",
            "subject": {"reference": "Patient/p"}, "medicationCodeableConcept": medication, "effectivePeriod": period}


def hcg(oid, when, answer):
    return {"resourceType": "Observation", "id": oid, "status": "final", "subject": {"reference": "Patient/p"},
            "code": {"coding": [{"system": LOINC, "code": "2106-3"}]}, "effectiveDateTime": when,
            "valueCodeableConcept": {"coding": [{"system": LOINC, "code": answer}]}}


def context(*resources, drafts=(), hook="order-sign"):
    record = build_record({"all": list(resources)}, list(drafts))
    settings = Settings()
    return RuleContext(hook=hook, patient_id="p", record=record, facts=Facts(record, TODAY, settings),
                       focus_orders=record.draft_orders, settings=settings, as_of=TODAY)


def test_pregnancy_merges_every_her2_draft_into_one_card_and_ignores_other_drugs():
    (finding,) = her2_agent_in_pregnancy(context(WOMAN, PREGNANCY, drafts=[draft("h", TRASTUZUMAB), draft("k", TDM1), draft("l", LAPATINIB)]))
    assert [d["name"] for d in finding.values["drafts"]] == ["trastuzumab", "ado-trastuzumab emtansine"]
    assert [s.actions[0].resource_id for s in finding.suggestions] == ["MedicationRequest/h", "MedicationRequest/k"]
    assert finding.evidence == ("Condition/preg", "MedicationRequest/h", "MedicationRequest/k")


def test_patient_view_needs_her2_therapy_that_is_still_ongoing():
    finished = statement("old", TRASTUZUMAB, "2025-01-01", "2025-12-31")
    assert list(her2_agent_in_pregnancy(context(WOMAN, PREGNANCY, finished, hook="patient-view"))) == []
    (finding,) = her2_agent_in_pregnancy(context(WOMAN, PREGNANCY, statement("on", TRASTUZUMAB, "2026-06-01"), hook="patient-view"))
    assert finding.values["ongoing"][0]["since"] == date(2026, 6, 1)


def test_status_check_is_silent_when_pregnancy_is_already_known():
    assert list(status_before_her2_start(context(WOMAN, PREGNANCY, drafts=[draft("h", TRASTUZUMAB)]))) == []


def test_status_check_counts_the_window_back_from_a_planned_start_ahead():
    negative_today = hcg("t", "2026-11-22", "LA6577-6")
    assert list(status_before_her2_start(context(WOMAN, negative_today, drafts=[draft("h", TRASTUZUMAB)]))) == []
    (finding,) = status_before_her2_start(context(WOMAN, negative_today, drafts=[draft("h", TRASTUZUMAB, start="2026-12-14")]))
    assert finding.values["orders"][0]["window_from"] == date(2026, 12, 7)
    assert finding.values["latest"]["day"] == date(2026, 11, 22)
    assert [s.key for s in finding.suggestions] == ["order-urine-hcg", "order-serum-hcg"]
    request = finding.suggestions[0].actions[0].resource
    assert (request["resourceType"], request["status"], request["intent"], request["subject"]) == (
        "ServiceRequest", "draft", "order", {"reference": "Patient/p"})
    assert request["code"]["coding"][0] == {"system": LOINC, "code": "2106-3",
                                            "display": "Choriogonadotropin (pregnancy test) [Presence] in Urine"}


# --- a draft whose planned start is already past starts therapy today: what holds before that dose ------------


def test_status_check_counts_the_window_back_from_today_when_the_planned_start_is_past():
    # First trastuzumab planned 2026-09-01 and still a draft on 2026-11-22: a negative test of 2026-08-28 was taken
    # before the planned start, but almost three months before the first dose.
    before_planned = hcg("t", "2026-08-28", "LA6577-6")
    (finding,) = status_before_her2_start(context(WOMAN, before_planned, drafts=[draft("h", TRASTUZUMAB, start="2026-09-01")]))
    (order,) = finding.values["orders"]
    assert (order["reason"], order["when"], order["window_from"]) == (
        "no-test", {"start": date(2026, 9, 1), "day": TODAY}, date(2026, 11, 15))
    detail = RENDERER.render(finding).detail
    assert "planned from 2026-09-01, so given from 2026-11-22 at the earliest" in detail
    assert "no pregnancy test is recorded between 2026-11-15 and 2026-11-22" in detail
    # Near miss: a negative test within the week before today.
    recent = hcg("t", "2026-11-20", "LA6577-6")
    assert list(status_before_her2_start(context(WOMAN, recent, drafts=[draft("h", TRASTUZUMAB, start="2026-09-01")]))) == []


def test_a_draft_planned_to_continue_a_course_starts_it_again_after_a_break_until_today():
    # Planned 2026-09-01, 12 days after the last dose (2026-08-20), but given today after 94 days without trastuzumab:
    # a new start, which needs a pregnancy test and contraception counselling.
    last = administration("a1", TRASTUZUMAB, "2026-08-20")
    september = [draft("h", TRASTUZUMAB, start="2026-09-01")]
    (finding,) = status_before_her2_start(context(WOMAN, last, drafts=september))
    assert finding.values["orders"][0]["start_reason"]["after_break"]
    (counselling,) = contraception_counselling(context(WOMAN, last, drafts=september))
    assert counselling.values["orders"][0]["start_reason"]["last_dose"] == date(2026, 8, 20)
    # Near miss: a dose given since the planned start (2026-11-02) continues the course.
    since = administration("a2", TRASTUZUMAB, "2026-11-02")
    assert list(status_before_her2_start(context(WOMAN, last, since, drafts=september))) == []
    assert list(contraception_counselling(context(WOMAN, last, since, drafts=september))) == []


def test_a_positive_test_is_judged_current_as_of_today_not_a_past_planned_start():
    # Positive on 2026-01-10, nothing since: current within 10 months of the 2026-09-01 planned start, but not today,
    # when the dose is given; the record then cannot tell whether the patient is pregnant, which the status card says.
    records = (WOMAN, hcg("t", "2026-01-10", "LA6576-8"))
    september = [draft("h", TRASTUZUMAB, start="2026-09-01")]
    assert list(her2_agent_in_pregnancy(context(*records, drafts=september))) == []
    (finding,) = status_before_her2_start(context(*records, drafts=september))
    assert finding.values["orders"][0]["reason"] == "positive-without-outcome"
    # Near miss: a positive test of 2026-02-01 is within 10 months of today.
    (finding,) = her2_agent_in_pregnancy(context(WOMAN, hcg("t", "2026-02-01", "LA6576-8"), drafts=september))
    assert finding.values["drafts"] == [{"name": "trastuzumab", "when": {"start": date(2026, 9, 1), "day": TODAY}}]


def test_status_check_flags_an_unreadable_test_even_when_therapy_continues():
    unread = {**hcg("t", "2026-11-20", "LA6576-8"), "valueCodeableConcept": {"text": "see report"}}
    (finding,) = status_before_her2_start(context(WOMAN, unread, statement("on", TRASTUZUMAB, "2026-06-01"), drafts=[draft("h", TRASTUZUMAB)]))
    assert "not coded" in finding.values["orders"][0]["test"]["problem"]


def test_a_draft_the_ehr_also_returns_as_a_record_is_not_prior_exposure():
    same_draft = draft("h", TRASTUZUMAB)
    (finding,) = status_before_her2_start(context(WOMAN, same_draft, drafts=[same_draft]))
    assert finding.values["orders"][0]["name"] == "trastuzumab"


def test_counselling_names_the_kadcyla_breastfeeding_advice_and_no_male_advice_for_a_woman():
    negative = hcg("t", "2026-11-20", "LA6577-6")
    (finding,) = contraception_counselling(context(WOMAN, negative, drafts=[draft("k", TDM1), draft("e", TDXD)]))
    assert finding.values["female_advice"] and finding.values["tdm1"]
    assert not finding.values["male_advice"]


def test_counselling_for_a_man_only_with_tdxd():
    man = {**WOMAN, "gender": "male"}
    assert list(contraception_counselling(context(man, drafts=[draft("h", TRASTUZUMAB)]))) == []
    (finding,) = contraception_counselling(context(man, drafts=[draft("e", TDXD)]))
    assert finding.values["male_advice"] and not finding.values["female_advice"]


def administration(aid, medication, day):
    return {"resourceType": "MedicationAdministration", "id": aid, "status": "completed", "subject": {"reference": "Patient/p"},
            "medicationCodeableConcept": medication, "effectiveDateTime": day}


THREE_WEEKLY_TRASTUZUMAB = (administration("a1", TRASTUZUMAB, "2026-10-12"), administration("a2", TRASTUZUMAB, "2026-11-02"))


def test_counselling_when_switching_to_tdm1_names_the_breastfeeding_advice():
    (finding,) = contraception_counselling(context(WOMAN, *THREE_WEEKLY_TRASTUZUMAB, drafts=[draft("k", TDM1)]))
    assert finding.values["tdm1"] and finding.values["female_advice"]
    assert finding.values["orders"][0]["start_reason"]["new_agents"] == "ado-trastuzumab emtansine (T-DM1)"


def test_counselling_for_a_man_switching_to_tdxd():
    man = {**WOMAN, "gender": "male"}
    (finding,) = contraception_counselling(context(man, *THREE_WEEKLY_TRASTUZUMAB, drafts=[draft("e", TDXD)]))
    assert finding.values["male_advice"] and not finding.values["female_advice"]


def test_counselling_again_when_her2_therapy_resumes_after_a_break():
    earlier = statement("old", TDM1, "2025-01-01", "2025-06-30")
    (finding,) = contraception_counselling(context(WOMAN, earlier, drafts=[draft("k", TDM1)]))
    start = finding.values["orders"][0]["start_reason"]
    assert (start["new_agents"], start["after_break"], start["last_dose"]) == (None, True, date(2025, 6, 30))


def test_counselling_not_repeated_at_the_next_cycle_of_the_course():
    assert list(contraception_counselling(context(WOMAN, *THREE_WEEKLY_TRASTUZUMAB, drafts=[draft("h", TRASTUZUMAB)]))) == []


def test_status_check_at_the_first_dose_of_another_her2_agent():
    (finding,) = status_before_her2_start(context(WOMAN, *THREE_WEEKLY_TRASTUZUMAB, drafts=[draft("k", TDM1)]))
    (order,) = finding.values["orders"]
    assert (order["reason"], order["start_reason"]["new_agents"], order["start_reason"]["first_her2"]) == (
        "no-test", "ado-trastuzumab emtansine (T-DM1)", False)


def test_status_check_when_her2_therapy_resumes_after_a_break_but_not_at_a_delayed_cycle():
    ended = statement("old", TRASTUZUMAB, "2024-11-01", "2025-10-31")
    (finding,) = status_before_her2_start(context(WOMAN, ended, drafts=[draft("e", TDXD)]))
    assert finding.values["orders"][0]["start_reason"]["last_dose"] == date(2025, 10, 31)
    (finding,) = status_before_her2_start(context(WOMAN, ended, drafts=[draft("h", TRASTUZUMAB)]))
    assert finding.values["orders"][0]["start_reason"]["after_break"]
    delayed = draft("h", TRASTUZUMAB, start="2026-11-30")
    assert list(status_before_her2_start(context(WOMAN, *THREE_WEEKLY_TRASTUZUMAB, drafts=[delayed]))) == []


def test_status_check_on_continuing_therapy_when_the_last_test_is_a_positive_too_old_to_be_current():
    old_positive = hcg("t", "2025-12-18", "LA6576-8")
    records = (WOMAN, old_positive, statement("on", TRASTUZUMAB, "2026-06-01"))
    assert list(her2_agent_in_pregnancy(context(*records, drafts=[draft("h", TRASTUZUMAB)]))) == []
    (finding,) = status_before_her2_start(context(*records, drafts=[draft("h", TRASTUZUMAB)]))
    assert finding.values["orders"][0]["reason"] == "positive-without-outcome"
    assert finding.values["lapsed"]["day"] == date(2025, 12, 18)
    assert "Observation/t" in finding.evidence


def test_pregnancy_card_for_continuing_therapy_eleven_days_after_a_positive_test():
    records = (WOMAN, hcg("t", "2026-11-11", "LA6576-8"), statement("on", TRASTUZUMAB, "2026-06-01"))
    (ordered,) = her2_agent_in_pregnancy(context(*records, drafts=[draft("h", TRASTUZUMAB)], hook="order-select"))
    (charted,) = her2_agent_in_pregnancy(context(*records, hook="patient-view"))
    assert ordered.values["positive_test"]["day"] == charted.values["positive_test"]["day"] == date(2026, 11, 11)


def test_pregnancy_card_on_the_dosing_day_of_a_three_weekly_trastuzumab_cycle():
    # TODAY is day 21 after the 2026-11-01 dose: past its 20-day cover, the next dose due today.
    (finding,) = her2_agent_in_pregnancy(context(WOMAN, PREGNANCY, administration("a", TRASTUZUMAB, "2026-11-01"), hook="patient-view"))
    assert finding.values["ongoing"] == [{"name": "trastuzumab", "record": "MedicationAdministration/a", "kind": "MedicationAdministration",
                                          "status": "completed", "since": date(2026, 11, 1), "to_start": False, "last_dose": date(2026, 11, 1)}]
    assert finding.evidence == ("Condition/preg", "MedicationAdministration/a")


def test_pregnancy_card_for_a_stopped_order_whose_bounds_still_run():
    stopped = {**draft("r", TDM1, start="2026-09-01"), "status": "stopped"}
    stopped["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"]["end"] = "2026-12-31"
    (finding,) = her2_agent_in_pregnancy(context(WOMAN, PREGNANCY, stopped, hook="patient-view"))
    assert finding.values["drugs"] == "ado-trastuzumab emtansine"


def test_pregnancy_card_for_an_intended_statement_covering_today():
    intended = {**statement("plan", TDXD, "2026-11-15"), "status": "intended"}
    (finding,) = her2_agent_in_pregnancy(context(WOMAN, PREGNANCY, intended, hook="patient-view"))
    assert finding.values["ongoing"][0]["status"] == "intended"


def test_no_pregnancy_card_once_the_next_dose_is_long_late_or_without_her2_therapy():
    # Next dose due 2026-11-02 (21 days after the last); 14 days' grace ended 2026-11-16.
    ended = (administration("a1", TRASTUZUMAB, "2026-09-21"), administration("a2", TRASTUZUMAB, "2026-10-12"))
    assert list(her2_agent_in_pregnancy(context(WOMAN, PREGNANCY, *ended, hook="patient-view"))) == []
    assert list(her2_agent_in_pregnancy(context(WOMAN, PREGNANCY, statement("l", LAPATINIB, "2026-06-01"), hook="patient-view"))) == []


def test_after_the_last_dose_contraception_runs_seven_calendar_months():
    # Next dose due 2026-11-07 (21 days after the last); 14 days' grace ended 2026-11-21: therapy has stopped.
    (finding,) = contraception_after_therapy(context(WOMAN, administration("a1", TRASTUZUMAB, "2026-09-26"),
                                                     administration("a2", TRASTUZUMAB, "2026-10-17"), hook="patient-view"))
    (window,) = finding.values["windows"]
    assert (window["advice"], window["last_dose"], window["until"]) == ("contraception", date(2026, 10, 17), date(2027, 5, 17))
    assert finding.evidence == ("MedicationAdministration/a2",)


def test_no_contraception_card_on_the_dosing_day_of_a_three_weekly_cycle_nor_while_the_next_dose_is_not_long_late():
    # TODAY is day 21 after the 2026-11-01 dose: past its 20-day cover, the next dose due today.
    dosing_day = (administration("a1", TRASTUZUMAB, "2026-10-11"), administration("a2", TRASTUZUMAB, "2026-11-01"))
    assert list(contraception_after_therapy(context(WOMAN, *dosing_day, hook="patient-view"))) == []
    # Next dose due 2026-11-08, 14 days late today: still the course.
    assert list(contraception_after_therapy(context(WOMAN, administration("a", TRASTUZUMAB, "2026-10-18"), hook="patient-view"))) == []


def test_no_card_while_a_cycle_still_covers_today_or_once_the_window_has_closed():
    assert list(contraception_after_therapy(context(WOMAN, administration("a", TRASTUZUMAB, "2026-11-10"), hook="patient-view"))) == []
    next_course = statement("next", TRASTUZUMAB, "2026-12-01")
    assert list(contraception_after_therapy(context(WOMAN, administration("a", TRASTUZUMAB, "2026-10-01"), next_course,
                                                    hook="patient-view"))) == []
    assert list(contraception_after_therapy(context(WOMAN, administration("a", TRASTUZUMAB, "2026-04-21"), hook="patient-view"))) == []


def test_a_stopped_order_without_an_end_counts_from_its_start():
    stopped = {**draft("r", TDM1, start="2026-09-01"), "status": "stopped"}
    (finding,) = contraception_after_therapy(context(WOMAN, stopped, hook="patient-view"))
    advice = {w["advice"]: w for w in finding.values["windows"]}
    assert set(advice) == {"contraception", "breastfeeding"}
    assert advice["breastfeeding"]["last_dose"] is None and advice["breastfeeding"]["until"] == date(2027, 4, 1)


def test_a_man_after_tdxd_gets_four_months_and_no_female_advice():
    man = {**WOMAN, "gender": "male"}
    (finding,) = contraception_after_therapy(context(man, administration("a", TDXD, "2026-10-15"), hook="patient-view"))
    (window,) = finding.values["windows"]
    assert (window["advice"], window["until"]) == ("male-contraception", date(2027, 2, 15))


def test_no_stopping_card_during_pregnancy():
    # Therapy has stopped (the next dose is more than 14 days late): only the pregnancy keeps the card away.
    stopped = administration("a", TRASTUZUMAB, "2026-10-12")
    assert list(contraception_after_therapy(context(WOMAN, stopped, hook="patient-view")))
    assert list(contraception_after_therapy(context(WOMAN, PREGNANCY, stopped, hook="patient-view"))) == []


def signed_course(status="active", start="2026-12-01"):
    return {**draft("course", TRASTUZUMAB, start=start), "status": status}


def test_pregnancy_card_on_patient_view_for_a_signed_course_still_to_start():
    (finding,) = her2_agent_in_pregnancy(context(WOMAN, PREGNANCY, signed_course(), hook="patient-view"))
    assert finding.values["ongoing"][0]["to_start"] is True
    detail = RENDERER.render(finding).detail
    assert "or with a signed course about to start" in detail
    assert "trastuzumab: MedicationRequest active, to start on 2026-12-01." in detail
    # The contraception-after card waits for that course.
    assert list(contraception_after_therapy(context(WOMAN, administration("a", TRASTUZUMAB, "2026-09-01"), signed_course(),
                                                    hook="patient-view"))) == []


def test_no_pregnancy_card_on_patient_view_for_a_course_stopped_before_its_start():
    assert list(her2_agent_in_pregnancy(context(WOMAN, PREGNANCY, signed_course("stopped"), hook="patient-view"))) == []


def test_a_serum_hcg_in_iu_per_ml_above_a_range_in_miu_per_ml_is_a_pregnancy():
    def serum(value, unit):
        return {"resourceType": "Observation", "id": "s", "status": "final", "subject": {"reference": "Patient/p"},
                "code": {"coding": [{"system": LOINC, "code": "21198-7"}]}, "effectiveDateTime": "2026-11-20",
                "valueQuantity": {"value": value, "unit": unit}, "referenceRange": [{"high": {"value": 5, "unit": "mIU/mL"}}]}

    (finding,) = her2_agent_in_pregnancy(context(WOMAN, serum(1.2, "IU/mL"), drafts=[draft("h", TRASTUZUMAB)]))
    assert finding.card == "pregnancy-her2-agent-in-pregnancy"
    assert list(her2_agent_in_pregnancy(context(WOMAN, serum(0.002, "IU/mL"), drafts=[draft("h", TRASTUZUMAB)]))) == []
