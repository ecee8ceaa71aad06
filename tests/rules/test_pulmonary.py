"""Rules 31-33: ILD/pneumonitis with T-DXd or T-DM1, one rule and card per drug, past episodes included; the T-DXd dose
after a resolved grade 1 episode; trastuzumab after ILD, ARDS, anaphylaxis or angioedema; on patient-view, the stop
cards for ongoing therapy."""
from __future__ import annotations

from datetime import date

import pytest

from cds_hooks.render import CardRenderer
from cds_hooks.rules.pulmonary import tdm1_ild, tdxd_ild, tdxd_resumption_after_grade_1_ild, trastuzumab_discontinuation

from .test_hepatic import RX, SCT, TDM1_DRAFT, chart_opened, context

ILD = {"resourceType": "Condition", "id": "ild", "subject": {"reference": "Patient/p"},
       "clinicalStatus": {"coding": [{"code": "active"}]},
       "code": {"coding": [{"system": SCT, "code": "233703007"}]},
       "stage": [{"summary": {"text": "Grade 1"}}]}
RENDERER = CardRenderer.load()
PRIOR_TRASTUZUMAB = {"resourceType": "MedicationAdministration", "id": "h1", "status": "completed", "subject": {"reference": "Patient/p"},
                     "medicationCodeableConcept": {"coding": [{"system": RX, "code": "224905"}]}, "effectiveDateTime": "2026-06-01"}


def draft(did, concept):
    return {**TDM1_DRAFT, "id": did, "medicationCodeableConcept": concept}


def reaction(code, onset=None, status="resolved", verification="confirmed", system=SCT):
    condition = {"resourceType": "Condition", "id": f"r-{code}", "subject": {"reference": "Patient/p"},
                 "clinicalStatus": {"coding": [{"code": status}]}, "verificationStatus": {"coding": [{"code": verification}]},
                 "code": {"coding": [{"system": system, "code": code}], "text": f"reaction {code}"}}
    return {**condition, "onsetDateTime": onset} if onset else condition


TDXD = draft("tdxd", {"coding": [{"system": RX, "code": "2267576"}], "text": "Enhertu"})
PHESGO = draft("phesgo", {"text": "Phesgo"})
HERCEPTIN = draft("herceptin", {"coding": [{"system": RX, "code": "224905"}], "text": "Herceptin"})
PERTUZUMAB = draft("pertuzumab", {"coding": [{"system": RX, "code": "1298944"}]})
HERZUMA = draft("herzuma", {"coding": [{"system": RX, "code": "2107053"}], "text": "Herzuma"})


def episode(eid, grade="Grade 1", status="resolved", verification="confirmed", code="233703007", **dates):
    """An ILD (233703007) or pneumonitis (205237003) Condition; `dates` are onset/abatement elements."""
    condition = {"resourceType": "Condition", "id": eid, "subject": {"reference": "Patient/p"},
                 "clinicalStatus": {"coding": [{"code": status}]}, "verificationStatus": {"coding": [{"code": verification}]},
                 "code": {"coding": [{"system": SCT, "code": code}], "text": f"Pneumonitis {eid}"}, **dates}
    return {**condition, "stage": [{"summary": {"text": grade}}]} if grade else condition


def rendered(finding):
    card = RENDERER.render(finding)
    return card.summary, card.detail


def test_each_conjugate_gets_its_own_card():
    both = context(ILD, drafts=(TDXD, TDM1_DRAFT, PHESGO))
    findings = {f.card: f for ild_rule in (tdxd_ild, tdm1_ild) for f in ild_rule(both)}
    assert set(findings) == {"pulmonary-tdxd-ild", "pulmonary-tdm1-ild"}
    assert findings["pulmonary-tdxd-ild"].values["grade"] == 1


def test_no_card_without_ild_or_for_pertuzumab_alone():
    assert list(tdxd_ild(context(drafts=(TDXD,)))) == []
    assert list(trastuzumab_discontinuation(context(ILD, drafts=(PERTUZUMAB,)))) == []


def test_unverified_icd10_candidate_is_not_read_as_ild():
    icd_only = {**ILD, "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "J84.9"}]}}
    assert list(tdxd_ild(context(icd_only, drafts=(TDXD,)))) == []


def test_trastuzumab_products_with_ild_are_discontinued():
    (finding,) = trastuzumab_discontinuation(context(ILD, drafts=(PHESGO, TDXD)))
    assert finding.card == "pulmonary-trastuzumab-discontinue"
    assert [s.actions[0].resource_id for s in finding.suggestions] == ["MedicationRequest/phesgo"]


def test_a_resolved_reaction_after_the_first_trastuzumab_discontinues_it():
    for code, system in (("39579001", SCT), ("41291007", SCT), ("67782005", SCT), ("T88.6XXA", "http://hl7.org/fhir/sid/icd-10-cm")):
        (finding,) = trastuzumab_discontinuation(context(PRIOR_TRASTUZUMAB, reaction(code, "2026-07-01", system=system), drafts=(HERCEPTIN,)))
        assert finding.card == "pulmonary-trastuzumab-discontinue"
        assert finding.values["reactions"][0]["onset"].isoformat() == "2026-07-01"


def test_a_reaction_before_trastuzumab_or_refuted_does_not_fire():
    before = reaction("39579001", "2009-05-01")
    refuted = reaction("41291007", "2026-07-01", verification="refuted")
    assert list(trastuzumab_discontinuation(context(PRIOR_TRASTUZUMAB, before, refuted, drafts=(HERCEPTIN,)))) == []


def test_an_undated_reaction_asks_only_when_trastuzumab_was_given():
    (finding,) = trastuzumab_discontinuation(context(PRIOR_TRASTUZUMAB, reaction("41291007"), drafts=(HERCEPTIN,)))
    assert finding.card == "pulmonary-trastuzumab-reaction-undated" and finding.suggestions == ()
    assert list(trastuzumab_discontinuation(context(reaction("41291007"), drafts=(HERCEPTIN,)))) == []


def trastuzumab_statement(status="active", **dates):
    """Trastuzumab on record as a MedicationStatement; without `dates` it has no start date."""
    return {"resourceType": "MedicationStatement", "id": f"statement-{status}", "status": status, "subject": {"reference": "Patient/p"},
            "medicationCodeableConcept": {"coding": [{"system": RX, "code": "224905"}]}, **dates}


@pytest.mark.parametrize("status", ["active", "completed"])
def test_a_dated_reaction_beside_trastuzumab_without_a_start_date_asks_whether_it_followed_trastuzumab(status):
    (finding,) = trastuzumab_discontinuation(context(trastuzumab_statement(status), reaction("39579001", "2026-10-01"), drafts=(HERCEPTIN,)))
    assert finding.card == "pulmonary-trastuzumab-reaction-undated" and finding.suggestions == ()
    assert finding.values["undated_trastuzumab"] == [f"MedicationStatement/statement-{status}"]
    assert finding.evidence == ("Condition/r-39579001", "MedicationRequest/herceptin", f"MedicationStatement/statement-{status}")
    summary, detail = rendered(finding)
    assert summary == "Discontinue trastuzumab if the reaction 39579001 of 2026-10-01 on record followed it; Herceptin ordered"
    assert f"Trastuzumab is on record without a start date (MedicationStatement/statement-{status})" in detail


def test_a_reaction_before_the_first_dated_trastuzumab_is_asked_about_only_beside_undated_trastuzumab():
    before = reaction("39579001", "2026-05-01")
    assert list(trastuzumab_discontinuation(context(PRIOR_TRASTUZUMAB, before, drafts=(HERCEPTIN,)))) == []
    (finding,) = trastuzumab_discontinuation(context(PRIOR_TRASTUZUMAB, trastuzumab_statement(), before, drafts=(HERCEPTIN,)))
    assert finding.card == "pulmonary-trastuzumab-reaction-undated"
    assert "the first dated trastuzumab was given on 2026-06-01" in rendered(finding)[1]


def test_undated_tdm1_is_not_undated_trastuzumab():
    tdm1 = {**trastuzumab_statement(), "medicationCodeableConcept": {"coding": [{"system": RX, "code": "1371041"}]}}
    assert list(trastuzumab_discontinuation(context(tdm1, reaction("39579001", "2026-10-01"), drafts=(HERCEPTIN,)))) == []


def test_a_stop_card_lists_a_reaction_undated_trastuzumab_leaves_unplaced():
    after, before = reaction("39579001", "2026-07-01"), {**reaction("41291007", "2020-01-01"), "id": "before"}
    (finding,) = trastuzumab_discontinuation(context(PRIOR_TRASTUZUMAB, trastuzumab_statement(), after, before, drafts=(HERCEPTIN,)))
    assert finding.card == "pulmonary-trastuzumab-discontinue"
    assert [r["reference"] for r in finding.values["unplaced"]] == ["Condition/before"]
    assert "Also recorded on 2020-01-01, not known to be before trastuzumab" in rendered(finding)[1]


@pytest.mark.parametrize("grade, action", [("Grade 2", "discontinue"), ("Grade 3", "discontinue"), (None, "ungraded")])
def test_tdxd_after_a_resolved_grade_2_or_ungraded_episode_is_not_given(grade, action):
    past = episode("past", grade, onsetDateTime="2026-06-01", abatementDateTime="2026-08-03")
    (finding,) = tdxd_ild(context(past, drafts=(TDXD,)))
    assert finding.card == "pulmonary-tdxd-ild" and finding.values["action"] == action
    summary, detail = rendered(finding)
    assert "past episode, ended 2026-08-03" in summary
    assert "past episode** (onset 2026-06-01, ended 2026-08-03, recorded as resolved)" in detail


@pytest.mark.parametrize("status", ["inactive", "resolved", "remission"])
def test_tdxd_after_a_past_grade_1_episode_gets_no_stop_card(status):
    assert list(tdxd_ild(context(episode("past", "Grade 1", status), drafts=(TDXD,)))) == []


def test_an_ungraded_episode_beside_a_grade_1_one_may_be_grade_2():
    mixed = context(episode("ild", "Grade 1", "active"), episode("pneu", None, "active", code="205237003"), drafts=(TDXD,))
    (finding,) = tdxd_ild(mixed)
    assert finding.values["action"] == "ungraded" and finding.values["grade"] == 1
    summary, detail = rendered(finding)
    assert "grade not recorded" in summary and "interrupt" not in summary
    assert "The grade is not recorded: do not give" in detail


def test_a_grade_2_episode_decides_over_ungraded_and_grade_1_ones():
    (finding,) = tdxd_ild(context(episode("g1", "Grade 1", "active"), episode("none", None, "active"),
                                  episode("g2", "Grade 2", "resolved"), drafts=(TDXD,)))
    assert finding.values["action"] == "discontinue" and finding.values["grade"] == 2
    (finding,) = tdxd_ild(context(episode("g1", "Grade 1", "active"), drafts=(TDXD,)))
    assert finding.values["action"] == "interrupt"


def test_tdm1_after_any_past_episode_is_discontinued():
    past = episode("past", "Grade 1", "resolved", onsetDateTime="2026-06-01", abatementDateTime="2026-06-20")
    (finding,) = tdm1_ild(context(past))
    assert finding.card == "pulmonary-tdm1-ild"
    summary, detail = rendered(finding)
    assert "past episode, ended 2026-06-20" in summary
    assert "past episode** (onset 2026-06-01, ended 2026-06-20, recorded as resolved)" in detail


def test_refuted_or_entered_in_error_episodes_are_ignored():
    wrong = (episode("refuted", "Grade 2", "resolved", "refuted"), episode("error", None, "active", "entered-in-error"))
    for ild_rule, drafts in ((tdxd_ild, (TDXD,)), (tdm1_ild, (TDM1_DRAFT,)), (trastuzumab_discontinuation, (HERZUMA,))):
        assert list(ild_rule(context(PRIOR_TRASTUZUMAB, *wrong, drafts=drafts))) == []


def test_trastuzumab_after_a_resolved_pneumonitis_that_followed_it_is_discontinued():
    past = episode("past", None, code="205237003", onsetDateTime="2026-07-01", abatementDateTime="2026-08-01")
    (finding,) = trastuzumab_discontinuation(context(PRIOR_TRASTUZUMAB, past, drafts=(HERZUMA,)))
    assert finding.card == "pulmonary-trastuzumab-discontinue"
    assert [r["reference"] for r in finding.values["reactions"]] == ["Condition/past"]
    summary, detail = rendered(finding)
    assert "Pneumonitis past on 2026-07-01 (past episode, ended 2026-08-01)" in summary
    assert "(past episode, ended 2026-08-01, recorded as resolved)" in detail


def test_trastuzumab_after_a_past_pneumonitis_before_it_or_undated():
    before = episode("before", onsetDateTime="2020-01-01", abatementDateTime="2020-02-01")
    assert list(trastuzumab_discontinuation(context(PRIOR_TRASTUZUMAB, before, drafts=(HERZUMA,)))) == []
    (finding,) = trastuzumab_discontinuation(context(PRIOR_TRASTUZUMAB, episode("undated"), drafts=(HERZUMA,)))
    assert finding.card == "pulmonary-trastuzumab-reaction-undated"
    assert "Pneumonitis undated" in rendered(finding)[1]


PRIOR_TDXD = {"resourceType": "MedicationAdministration", "id": "tdxd-given", "status": "completed", "subject": {"reference": "Patient/p"},
              "medicationCodeableConcept": {"coding": [{"system": RX, "code": "2267576"}]}, "effectiveDateTime": "2026-08-01",
              "dosage": {"dose": {"value": 5.4, "unit": "mg/kg", "system": "http://unitsofmeasure.org", "code": "mg/kg"}}}


def test_tdxd_after_a_grade_1_episode_that_took_over_28_days_to_resolve_is_reduced():
    slow = episode("slow", onsetDateTime="2026-09-01", abatementDateTime="2026-10-20")
    (finding,) = tdxd_resumption_after_grade_1_ild(context(PRIOR_TDXD, slow, drafts=(TDXD,)))
    assert finding.card == "pulmonary-tdxd-resumption-after-grade-1-ild"
    assert finding.values["episode"]["days_to_resolution"] == 49
    assert finding.values["last_level"]["mg_per_kg"] == 5.4
    summary, detail = rendered(finding)
    assert "49 days" in summary and "reduce one dose level" in detail


def test_tdxd_resumption_names_a_level_given_since_a_past_planned_start_as_the_last():
    # Drafted for 2026-09-05 and still a draft on 2026-11-22; 4.4 mg/kg was given on 2026-09-10, before the episode
    # (2026-09-20 to 2026-11-05): that is the level to reduce from, not the 5.4 mg/kg before the planned start.
    reduced = {**PRIOR_TDXD, "id": "tdxd-reduced", "effectiveDateTime": "2026-09-10",
               "dosage": {"dose": {"value": 4.4, "unit": "mg/kg", "system": "http://unitsofmeasure.org", "code": "mg/kg"}}}
    slow = episode("slow", onsetDateTime="2026-09-20", abatementDateTime="2026-11-05")
    september = {**TDXD, "dosageInstruction": [{"timing": {"repeat": {"boundsPeriod": {"start": "2026-09-05"}}}}]}
    (finding,) = tdxd_resumption_after_grade_1_ild(context(PRIOR_TDXD, reduced, slow, drafts=(september,)))
    assert finding.values["last_level"] == {"mg_per_kg": 4.4, "day": date(2026, 9, 10)}
    assert "Last T-DXd dose recorded: 4.4 mg/kg on 2026-09-10" in rendered(finding)[1]
    # Near miss: 4.4 mg/kg given since the episode resolved chose the level already.
    resumed = {**reduced, "id": "tdxd-resumed", "effectiveDateTime": "2026-11-12"}
    assert list(tdxd_resumption_after_grade_1_ild(context(PRIOR_TDXD, resumed, slow, drafts=(september,)))) == []


def test_tdxd_after_a_grade_1_episode_with_no_resolution_date_asks_for_it():
    undated = episode("undated", onsetDateTime="2026-09-01")
    (finding,) = tdxd_resumption_after_grade_1_ild(context(undated, drafts=(TDXD,)))
    assert finding.values["episode"]["days_to_resolution"] is None and finding.values["last_level"] is None
    assert "not recorded" in rendered(finding)[0]


def test_no_resumption_card_within_28_days_once_resumed_or_when_the_stop_card_speaks():
    quick = episode("quick", onsetDateTime="2026-09-01", abatementDateTime="2026-09-29")
    slow = episode("slow", onsetDateTime="2026-09-01", abatementDateTime="2026-10-20")
    resumed = {**PRIOR_TDXD, "id": "resumed", "effectiveDateTime": "2026-11-01"}
    for resources in ((quick,), (slow, resumed), (slow, episode("now", status="active")), (slow, episode("g2", "Grade 2"))):
        assert list(tdxd_resumption_after_grade_1_ild(context(*resources, drafts=(TDXD,)))) == []


def given(gid, rxcui, day):
    """A dose given (MedicationAdministration) on `day`."""
    return {"resourceType": "MedicationAdministration", "id": gid, "status": "completed", "subject": {"reference": "Patient/p"},
            "medicationCodeableConcept": {"coding": [{"system": RX, "code": rxcui}], "text": f"given {gid}"},
            "effectiveDateTime": day}


GRADE_2_ILD = episode("g2", "Grade 2", "active", onsetDateTime="2026-11-05")
# On patient-view (2026-11-22), 21 days after a 3-weekly dose: its 20-day cover has ended, the next is due today.
TDXD_DOSE_DAY = given("tdxd-cycle-4", "2267576", "2026-11-01")


def test_ongoing_tdxd_with_grade_2_ild_gets_the_stop_card_on_patient_view_without_a_draft_to_remove():
    (finding,) = tdxd_ild(chart_opened(TDXD_DOSE_DAY, GRADE_2_ILD))
    assert finding.values["action"] == "discontinue" and finding.suggestions == ()
    assert finding.evidence == ("Condition/g2", "MedicationAdministration/tdxd-cycle-4")
    summary, detail = rendered(finding)
    assert summary == "Permanently discontinue T-DXd: grade 2 ILD/pneumonitis on record; on given tdxd-cycle-4"
    assert "for a patient on given tdxd-cycle-4" in detail and "an order for" not in detail
    assert "given tdxd-cycle-4: dose given on 2026-11-01 (MedicationAdministration/tdxd-cycle-4)" in detail


def test_an_ongoing_tdxd_order_is_named_with_its_start_and_an_ungraded_episode_holds_the_next_dose():
    plan = {**TDXD, "id": "plan", "status": "active",
            "dosageInstruction": [{"timing": {"repeat": {"boundsPeriod": {"start": "2026-08-01"}, "period": 3, "periodUnit": "wk"}}}]}
    (finding,) = tdxd_ild(chart_opened(plan, episode("none", None, "active")))
    assert finding.values["action"] == "ungraded"
    detail = rendered(finding)[1]
    assert "Enhertu: MedicationRequest active, since 2026-08-01 (MedicationRequest/plan)" in detail
    assert "do not give the next dose" in detail
    # A signed course not begun: its first dose.
    (ahead,) = tdxd_ild(chart_opened(SIGNED_TDXD_PLAN, episode("none", None, "active")))
    assert "do not give the first dose" in rendered(ahead)[1]


@pytest.mark.parametrize("course", [
    given("long-ago", "2267576", "2026-08-01"),
    {"resourceType": "MedicationStatement", "id": "done", "status": "completed", "subject": {"reference": "Patient/p"},
     "medicationCodeableConcept": {"coding": [{"system": RX, "code": "2267576"}]},
     "effectivePeriod": {"start": "2026-03-01", "end": "2026-09-01"}},
    {"resourceType": "MedicationStatement", "id": "planned", "status": "intended", "subject": {"reference": "Patient/p"},
     "medicationCodeableConcept": {"coding": [{"system": RX, "code": "2267576"}]}, "effectivePeriod": {"start": "2026-11-01"}},
], ids=["last-dose-16-weeks-ago", "completed-statement", "only-intended"])
def test_no_card_on_patient_view_when_the_tdxd_course_ended_or_was_never_given(course):
    assert list(tdxd_ild(chart_opened(course, GRADE_2_ILD))) == []


def test_ongoing_tdm1_with_ild_gets_the_tdm1_card_only():
    ongoing_tdm1 = given("tdm1-cycle-2", "1371041", "2026-11-10")
    assert list(tdxd_ild(chart_opened(ongoing_tdm1, GRADE_2_ILD))) == []
    (finding,) = tdm1_ild(chart_opened(ongoing_tdm1, GRADE_2_ILD))
    assert finding.card == "pulmonary-tdm1-ild" and finding.suggestions == ()
    assert rendered(finding)[0] == "Permanently discontinue T-DM1: ILD/pneumonitis on record; on given tdm1-cycle-2"


def test_ongoing_trastuzumab_after_a_reaction_is_discontinued_or_asked_about_on_patient_view():
    herzuma = given("herzuma-cycle", "2107053", "2026-11-10")
    (finding,) = trastuzumab_discontinuation(chart_opened(herzuma, reaction("39579001", "2026-11-10")))
    assert finding.card == "pulmonary-trastuzumab-discontinue" and finding.suggestions == ()
    assert "The patient is on given herzuma-cycle and has a reaction" in rendered(finding)[1]
    (finding,) = trastuzumab_discontinuation(chart_opened(herzuma, reaction("41291007")))
    assert finding.card == "pulmonary-trastuzumab-reaction-undated"
    assert list(trastuzumab_discontinuation(chart_opened(given("old", "2107053", "2026-06-01"), reaction("39579001", "2026-06-01")))) == []


def test_no_card_hides_the_lung_stop_cards():
    stop_cards = {"pulmonary-tdxd-ild", "pulmonary-tdm1-ild", "pulmonary-trastuzumab-discontinue"}
    assert not any(stop_cards & set(template.absorbs) for template in RENDERER.templates.values())


def test_active_ards_stops_a_first_trastuzumab_whatever_its_date():
    for ards in (reaction("67782005", "2026-11-20", status="active"), reaction("67782005", status="active")):
        (finding,) = trastuzumab_discontinuation(context(ards, drafts=(HERCEPTIN,)))
        assert finding.card == "pulmonary-trastuzumab-discontinue"
        assert [c["reference"] for c in finding.values["ards"]] == ["Condition/r-67782005"]
        assert finding.values["reactions"] == [] and finding.values["unplaced"] == []
        summary, detail = rendered(finding)
        assert summary == "Discontinue trastuzumab (boxed warning): reaction 67782005 recorded (active); Herceptin ordered"
        assert "Acute respiratory distress syndrome, active: reaction 67782005" in detail


def test_past_or_refuted_ards_before_trastuzumab_does_not_stop_it():
    past = reaction("67782005", "2026-03-01", status="resolved")
    refuted = {**reaction("67782005", "2026-11-20", status="active", verification="refuted"), "id": "refuted"}
    assert list(trastuzumab_discontinuation(context(PRIOR_TRASTUZUMAB, past, refuted, drafts=(HERCEPTIN,)))) == []


SIGNED_TDXD_PLAN = {**TDXD, "id": "signed-plan", "status": "active", "authoredOn": "2026-11-20",
                    "dosageInstruction": [{"timing": {"repeat": {"boundsPeriod": {"start": "2026-11-26"}, "period": 3, "periodUnit": "wk"}}}]}


@pytest.mark.parametrize("status", ["active", "on-hold"])
def test_a_signed_tdxd_course_still_to_start_gets_the_stop_card_on_patient_view(status):
    (finding,) = tdxd_ild(chart_opened({**SIGNED_TDXD_PLAN, "status": status}, GRADE_2_ILD))
    assert finding.values["action"] == "discontinue" and finding.suggestions == ()
    assert f"Enhertu: MedicationRequest {status}, to start on 2026-11-26 (MedicationRequest/signed-plan)" in rendered(finding)[1]


def test_a_course_only_intended_or_stopped_before_its_start_gets_no_stop_card_on_patient_view():
    intended = {"resourceType": "MedicationStatement", "id": "intended", "status": "intended", "subject": {"reference": "Patient/p"},
                "medicationCodeableConcept": {"coding": [{"system": RX, "code": "2267576"}]}, "effectivePeriod": {"start": "2026-11-26"}}
    stopped = {**SIGNED_TDXD_PLAN, "status": "stopped"}
    for course in (intended, stopped):
        assert list(tdxd_ild(chart_opened(course, GRADE_2_ILD))) == []


def signed_course(rxcui):
    """A signed course of the drug (MedicationRequest active) whose first dose, on 2026-11-26, is after AS_OF."""
    return {**SIGNED_TDXD_PLAN, "id": f"course-{rxcui}",
            "medicationCodeableConcept": {"coding": [{"system": RX, "code": rxcui}], "text": "Course"}}


# Each lung stop card that patient-view gives for ongoing therapy: its rule, the drug, the records beside the therapy
# and the summary before the words naming the therapy (the action first, so the 140-character cut never takes it).
LUNG_STOP_CARDS = [
    pytest.param(tdxd_ild, "2267576", (GRADE_2_ILD,), "Permanently discontinue T-DXd: grade 2 ILD/pneumonitis on record; ",
                 id="pulmonary-tdxd-ild"),
    pytest.param(tdm1_ild, "1371041", (GRADE_2_ILD,), "Permanently discontinue T-DM1: ILD/pneumonitis on record; ",
                 id="pulmonary-tdm1-ild"),
    pytest.param(trastuzumab_discontinuation, "2107053", (PRIOR_TRASTUZUMAB, reaction("39579001", "2026-07-01")),
                 "Discontinue trastuzumab (boxed warning): reaction 39579001 on 2026-07-01 (past episode, recorded as resolved); ",
                 id="pulmonary-trastuzumab-discontinue"),
    pytest.param(trastuzumab_discontinuation, "2107053", (PRIOR_TRASTUZUMAB, reaction("41291007")),
                 "Discontinue trastuzumab if the undated reaction 41291007 on record followed it; ",
                 id="pulmonary-trastuzumab-reaction-undated"),
]


@pytest.mark.parametrize("stop_rule, rxcui, records, action", LUNG_STOP_CARDS)
def test_a_stop_card_names_a_course_still_to_start_as_such_not_as_therapy_the_patient_is_on(stop_rule, rxcui, records, action):
    (finding,) = stop_rule(chart_opened(signed_course(rxcui), *records))
    summary, detail = rendered(finding)
    assert summary == f"{action}Course to start 2026-11-26"
    heading = detail.splitlines()[0]
    assert "Course is due to start 2026-11-26" in heading or "with Course due to start 2026-11-26" in heading
    assert "on Course" not in heading


@pytest.mark.parametrize("stop_rule, rxcui, records, action", LUNG_STOP_CARDS)
def test_the_140_character_cut_of_a_summary_never_takes_its_action(stop_rule, rxcui, records, action):
    # The course's name comes from the record and can be long; it ends the summary, after the action.
    course = {**signed_course(rxcui), "medicationCodeableConcept": {"coding": [{"system": RX, "code": rxcui}],
                                                                     "text": "Course " + "of a long product name " * 6}}
    (finding,) = stop_rule(chart_opened(course, *records))
    summary, _ = rendered(finding)
    assert len(summary) < 140 and summary.endswith("…") and summary.startswith(action)


@pytest.mark.parametrize("stop_rule, rxcui, records, action", LUNG_STOP_CARDS)
def test_a_stop_card_names_therapy_begun_as_therapy_the_patient_is_on(stop_rule, rxcui, records, action):
    (finding,) = stop_rule(chart_opened(given("cycle", rxcui, "2026-11-10"), *records))
    summary, detail = rendered(finding)
    assert summary == f"{action}on given cycle"
    assert "on given cycle" in detail.splitlines()[0] and "due to start" not in detail


def test_therapy_begun_names_the_card_while_a_further_course_is_still_to_start():
    (finding,) = tdxd_ild(chart_opened(TDXD_DOSE_DAY, SIGNED_TDXD_PLAN, GRADE_2_ILD))
    summary, detail = rendered(finding)
    assert summary.endswith("grade 2 ILD/pneumonitis on record; on given tdxd-cycle-4")
    assert "for a patient on given tdxd-cycle-4." in detail
    assert "Enhertu: MedicationRequest active, to start on 2026-11-26 (MedicationRequest/signed-plan)" in detail
