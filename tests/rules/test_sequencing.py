"""Sequencing rules 38-45: what each finding carries and the situations fixture cases do not reach."""
from __future__ import annotations

from datetime import date, timedelta

from cds_hooks.facts import Facts
from cds_hooks.record import build_record
from cds_hooks.render import CardRenderer
from cds_hooks.rules.base import RuleContext
from cds_hooks.rules.summary import her2_therapy_summary
from cds_hooks.rules.sequencing import (
    adjuvant_tdm1_not_katherine,
    brain_metastases_progression,
    early_recurrence_second_line,
    first_line_thp_preferred,
    katherine_adjuvant_tdm1,
    metastatic_no_fixed_duration,
    second_line_after_progression,
    tdm1_with_atezolizumab,
    trastuzumab_duration,
)
from cds_hooks.settings import Settings

RX = "http://www.nlm.nih.gov/research/umls/rxnorm"
SCT = "http://snomed.info/sct"
LOINC = "http://loinc.org"
TODAY = date(2026, 11, 22)
CODES = {"trastuzumab": "224905", "pertuzumab": "1298944", "paclitaxel": "56946", "docetaxel": "72962", "tdm1": "1371041",
         "atezolizumab": "1792780"}
TDXD = {"coding": [{"system": "http://www.whocc.no/atc", "code": "L01FD04"}], "text": "Enhertu"}
TUCATINIB = {"coding": [{"system": "http://www.whocc.no/atc", "code": "L01EH03"}], "text": "tucatinib"}
RENDERER = CardRenderer.load()


def medication(drug):
    return {"tdxd": TDXD, "tucatinib": TUCATINIB}.get(drug) or {"coding": [{"system": RX, "code": CODES[drug]}], "text": drug}


def condition(cid, code, onset=None, status=None, recorded=None):
    resource = {"resourceType": "Condition", "id": cid, "subject": {"reference": "Patient/p"}, "code": {"coding": [{"system": SCT, "code": code}]}}
    if onset:
        resource["onsetDateTime"] = onset
    if status:
        resource["clinicalStatus"] = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": status}]}
    if recorded:
        resource["recordedDate"] = recorded
    return resource


HER2POS = condition("her2", "427685000", "2025-12-01")


def statement(sid, drug, start, end=None):
    return {"resourceType": "MedicationStatement", "id": sid, "status": "completed" if end else "active", "subject": {"reference": "Patient/p"},
            "medicationCodeableConcept": medication(drug), "effectivePeriod": {"start": start, **({"end": end} if end else {})}}


def administration(aid, drug, day):
    return {"resourceType": "MedicationAdministration", "id": aid, "status": "completed", "subject": {"reference": "Patient/p"},
            "medicationCodeableConcept": medication(drug), "effectiveDateTime": day}


def draft(did, drug, start="2026-11-23", count=None, end=None):
    bounds = {"start": start, **({"end": end} if end else {})}
    repeat = {"boundsPeriod": bounds, "frequency": 1, "period": 3, "periodUnit": "wk", **({"count": count} if count else {})}
    return {"resourceType": "MedicationRequest", "id": did, "status": "draft", "intent": "order", "subject": {"reference": "Patient/p"},
            "medicationCodeableConcept": medication(drug), "authoredOn": "2026-11-22", "dosageInstruction": [{"timing": {"repeat": repeat}}]}


def observation(oid, system, code, when, value=None, quantity=None):
    resource = {"resourceType": "Observation", "id": oid, "status": "final", "subject": {"reference": "Patient/p"},
                "code": {"coding": [{"system": system, "code": code}]}, "effectiveDateTime": when}
    if value:
        resource["valueCodeableConcept"] = value
    if quantity:
        resource["valueQuantity"] = quantity
    return resource


def yp(oid, code, text, when="2026-06-22"):
    return observation(oid, SCT, code, when, {"text": text})


def weight(kg, when="2026-11-20"):
    return observation("w", LOINC, "29463-7", when, quantity={"value": kg, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"})


def worsened(when):
    return observation("status", LOINC, "97509-4", when, {"coding": [{"system": SCT, "code": "271299001"}]})


def context(*resources, drafts=(), hook="order-sign", today=TODAY):
    record = build_record({"all": list(resources)}, list(drafts))
    settings = Settings()
    focus = record.draft_orders if hook != "patient-view" else ()
    return RuleContext(hook=hook, patient_id="p", record=record, facts=Facts(record, today, settings), focus_orders=focus,
                       settings=settings, as_of=today)


NEOADJUVANT = (
    HER2POS,
    statement("pac", "paclitaxel", "2026-01-05", "2026-03-23"),
    statement("h", "trastuzumab", "2026-01-05", "2026-05-18"),
)
RESIDUAL = (yp("ypt", "1222595002", "ypT1a"), yp("ypn", "1222596001", "ypN0"))


# --- rule 38 ------------------------------------------------------------------------------------------


def test_katherine_suggestion_creates_tdm1_with_mg_dose_and_removes_every_her2_antibody_draft():
    drafts = [draft("adj-h", "trastuzumab", "2026-07-13"), draft("adj-p", "pertuzumab", "2026-07-13")]
    (finding,) = katherine_adjuvant_tdm1(context(*NEOADJUVANT, *RESIDUAL, weight(70), drafts=drafts))
    assert finding.values["confirmed"] and finding.values["dose_mg"] == 252.0
    (suggestion,) = finding.suggestions
    create, *deletes = suggestion.actions
    assert [a.resource_id for a in deletes] == ["MedicationRequest/adj-h", "MedicationRequest/adj-p"]
    resource = create.resource
    assert resource["status"] == "draft" and resource["intent"] == "order" and resource["subject"] == {"reference": "Patient/p"}
    assert resource["medicationCodeableConcept"]["coding"][0]["code"] == "1371041"
    dosage = resource["dosageInstruction"][0]
    assert dosage["timing"]["repeat"]["count"] == 14 and dosage["timing"]["repeat"]["period"] == 3
    assert [d["doseQuantity"]["value"] for d in dosage["doseAndRate"]] == [3.6, 252.0]


def test_katherine_without_weight_orders_per_kg_only_and_says_so():
    (finding,) = katherine_adjuvant_tdm1(context(*NEOADJUVANT, *RESIDUAL, drafts=[draft("adj-h", "trastuzumab", "2026-07-13")]))
    assert finding.values["dose_mg"] is None and finding.values["weight"] is None
    dosage = finding.suggestions[0].actions[0].resource["dosageInstruction"][0]
    assert [d["doseQuantity"]["unit"] for d in dosage["doseAndRate"]] == ["mg/kg"]
    assert "no current weight" in dosage["text"]


def test_katherine_doses_a_course_starting_later_by_a_weight_from_before_its_start():
    # TODAY is 2026-11-22; the weight of 2026-11-20 is 35 days old on 2026-12-27.
    (near,) = katherine_adjuvant_tdm1(context(*NEOADJUVANT, *RESIDUAL, weight(70), drafts=[draft("adj-h", "trastuzumab", "2026-12-10")]))
    assert near.values["dose_mg"] == 252.0
    (later,) = katherine_adjuvant_tdm1(context(*NEOADJUVANT, *RESIDUAL, weight(70), drafts=[draft("adj-h", "trastuzumab", "2026-12-27")]))
    assert later.values["dose_mg"] is None
    assert "No body weight from the 30 days before 2026-12-27" in RENDERER.render(later).detail


def test_katherine_ignores_orders_when_tdm1_is_already_drafted():
    both = [draft("adj-h", "trastuzumab", "2026-07-13"), draft("k", "tdm1", "2026-07-13")]
    assert list(katherine_adjuvant_tdm1(context(*NEOADJUVANT, *RESIDUAL, drafts=both))) == []


def test_katherine_a_draft_planned_before_surgery_but_signed_after_it_is_adjuvant():
    # Planned 2026-03-02 with the neoadjuvant course, still a draft on 2026-11-22, after surgery (yp staging 2026-06-22):
    # its dose is adjuvant trastuzumab, so T-DM1 starting today is suggested in its place.
    (finding,) = katherine_adjuvant_tdm1(context(*NEOADJUVANT, *RESIDUAL, weight(70), drafts=[draft("neo-h", "trastuzumab", "2026-03-02")]))
    assert finding.values["when"] == {"start": date(2026, 3, 2), "day": TODAY}
    assert "planned from 2026-03-02, so given from 2026-11-22 at the earliest" in RENDERER.render(finding).detail
    repeat = finding.suggestions[0].actions[0].resource["dosageInstruction"][0]["timing"]["repeat"]
    assert repeat["boundsPeriod"] == {"start": "2026-11-22"}
    # Near miss: a pathologic complete response.
    pcr = (yp("ypt", "1222595002", "ypT0"), yp("ypn", "1222596001", "ypN0"))
    assert list(katherine_adjuvant_tdm1(context(*NEOADJUVANT, *pcr, drafts=[draft("neo-h", "trastuzumab", "2026-03-02")]))) == []


def test_katherine_not_when_metastases_are_recorded_in_remission():
    drafts = [draft("adj-h", "trastuzumab", "2026-07-13")]
    assert len(list(katherine_adjuvant_tdm1(context(*NEOADJUVANT, *RESIDUAL, drafts=drafts)))) == 1
    remission = condition("mets", "128462008", "2026-06-01", status="remission")
    assert list(katherine_adjuvant_tdm1(context(*NEOADJUVANT, *RESIDUAL, remission, drafts=drafts))) == []


def test_katherine_not_once_adjuvant_tdm1_is_on_record():
    # Adjuvant T-DM1 given 2026-07-13 to 2026-09-14 and stopped; trastuzumab now completes the year: the choice of
    # T-DM1 is made, and a new 14-cycle T-DM1 course in place of trastuzumab is not the advice.
    drafts = [draft("h", "trastuzumab", "2026-11-23")]
    given = statement("k", "tdm1", "2026-07-13", "2026-09-14")
    assert list(katherine_adjuvant_tdm1(context(*NEOADJUVANT, *RESIDUAL, given, drafts=drafts))) == []
    # Near miss: the T-DM1 record was entered in error.
    in_error = {**given, "status": "entered-in-error"}
    assert len(list(katherine_adjuvant_tdm1(context(*NEOADJUVANT, *RESIDUAL, in_error, drafts=drafts)))) == 1


def test_katherine_needs_a_taxane_before_surgery():
    trastuzumab_only = (HER2POS, statement("h", "trastuzumab", "2026-01-05", "2026-05-18"))
    assert list(katherine_adjuvant_tdm1(context(*trastuzumab_only, *RESIDUAL, drafts=[draft("adj-h", "trastuzumab", "2026-07-13")]))) == []


# mCODE form: pT/pN category codes with yp values (A3.4).
MCODE_RESIDUAL = (yp("ypt", "384625004", "ypT1c"), yp("ypn", "371494008", "ypN1a"))
MCODE_PCR = (yp("ypt", "384625004", "ypT0"), yp("ypn", "371494008", "ypN0"))


def test_katherine_reads_yp_values_under_pathologic_category_codes():
    (finding,) = katherine_adjuvant_tdm1(context(*NEOADJUVANT, *MCODE_RESIDUAL, drafts=[draft("adj-h", "trastuzumab", "2026-07-13")]))
    assert finding.values["confirmed"] and finding.values["staging_day"] == date(2026, 6, 22)
    assert list(katherine_adjuvant_tdm1(context(*NEOADJUVANT, *MCODE_PCR, drafts=[draft("adj-h", "trastuzumab", "2026-07-13")]))) == []


def test_katherine_reads_a_yp_stage_group_alone():
    adjuvant = [draft("adj-h", "trastuzumab", "2026-07-13")]
    (finding,) = katherine_adjuvant_tdm1(context(*NEOADJUVANT, yp("g", "399588009", "ypIIA"), drafts=adjuvant))
    assert finding.values["confirmed"] and "ypIIA" in RENDERER.render(finding).detail
    assert list(katherine_adjuvant_tdm1(context(*NEOADJUVANT, yp("g", "1222594003", "Stage 0"), drafts=adjuvant))) == []


def test_katherine_only_while_the_trastuzumab_year_is_not_complete():
    # Neoadjuvant trastuzumab began 2026-01-05: T-DM1 x 14 replaces adjuvant trastuzumab only within that year.
    def cards(start):
        return [f.values["confirmed"] for f in katherine_adjuvant_tdm1(context(*NEOADJUVANT, *RESIDUAL, drafts=[draft("h", "trastuzumab", start)]))]

    assert cards("2027-01-04") == [True]   # 52 weeks after the first neoadjuvant dose
    assert cards("2027-01-05") == []
    assert cards("2029-11-23") == []


def test_katherine_not_once_the_trastuzumab_year_is_over_on_the_dose_day_of_a_draft_planned_within_it():
    # Neoadjuvant trastuzumab began 2025-12-01; a draft planned 2026-11-02 (48 weeks) and signed 2026-11-22 (51 weeks)
    # still has adjuvant trastuzumab to replace; one signed after 2026-11-30 (52 weeks) does not.
    neoadjuvant = (HER2POS, statement("pac", "paclitaxel", "2025-12-01", "2026-02-16"),
                   statement("h", "trastuzumab", "2025-12-01", "2026-04-13"), yp("ypt", "1222595002", "ypT1a", "2026-05-18"))
    drafts = [draft("h", "trastuzumab", "2026-11-02")]
    assert len(list(katherine_adjuvant_tdm1(context(*neoadjuvant, drafts=drafts)))) == 1
    assert list(katherine_adjuvant_tdm1(context(*neoadjuvant, drafts=drafts, today=date(2026, 12, 1)))) == []


def every_three_weeks(drug, first, cycles):
    return tuple(administration(f"{drug}-{n}", drug, (date.fromisoformat(first) + timedelta(weeks=3 * n)).isoformat()) for n in range(cycles))


# Docetaxel + trastuzumab cycles 1-4 given (2026-08-03 to 2026-10-05); no yp staging: nothing dates surgery.
NEOADJUVANT_TH_4_CYCLES = (HER2POS, *every_three_weeks("docetaxel", "2026-08-03", 4), *every_three_weeks("trastuzumab", "2026-08-03", 4))


def test_katherine_without_yp_staging_asks_only_once_the_taxane_has_finished():
    # Cycles 1-4 from 2026-08-31, the last docetaxel dose on 2026-11-02.
    given = (HER2POS, *every_three_weeks("docetaxel", "2026-08-31", 4), *every_three_weeks("trastuzumab", "2026-08-31", 4))

    def cards(start):
        return [f.values["confirmed"] for f in katherine_adjuvant_tdm1(context(*given, drafts=[draft("h", "trastuzumab", start)]))]

    assert cards("2026-11-23") == []         # cycle 5, 21 days after the last docetaxel dose
    assert cards("2026-11-24") == [False]    # more than a cycle after it: asks for the pathology
    assert cards("2026-12-14") == [False]    # six weeks after it


def test_katherine_a_cycle_5_planned_in_october_and_still_a_draft_today_is_not_the_next_neoadjuvant_cycle():
    # Planned 2026-10-26, 21 days after the last docetaxel dose (2026-10-05); given today, 48 days after it.
    (finding,) = katherine_adjuvant_tdm1(context(*NEOADJUVANT_TH_4_CYCLES, drafts=[draft("h", "trastuzumab", "2026-10-26")]))
    assert finding.values["confirmed"] is False and finding.values["when"] == {"start": date(2026, 10, 26), "day": TODAY}
    # Near miss: docetaxel given since the planned start (2026-11-09): the draft is the next neoadjuvant cycle.
    cycle_5 = administration("docetaxel-5", "docetaxel", "2026-11-09")
    assert list(katherine_adjuvant_tdm1(context(*NEOADJUVANT_TH_4_CYCLES, cycle_5, drafts=[draft("h", "trastuzumab", "2026-10-26")]))) == []


def test_katherine_not_while_the_taxane_is_drafted_with_the_order_or_recorded_as_continuing():
    delayed_cycle_5 = [draft("h", "trastuzumab", "2026-11-02"), draft("t", "docetaxel", "2026-11-02")]
    assert list(katherine_adjuvant_tdm1(context(*NEOADJUVANT_TH_4_CYCLES, drafts=delayed_cycle_5))) == []
    continuing = (HER2POS, statement("t", "docetaxel", "2026-08-03"), statement("h", "trastuzumab", "2026-08-03"))
    assert list(katherine_adjuvant_tdm1(context(*continuing, drafts=[draft("h", "trastuzumab", "2026-11-16")]))) == []


# --- rule 39 ------------------------------------------------------------------------------------------

# Upfront surgery: pT2 pN1a, no taxane or trastuzumab before it.
UPFRONT_SURGERY = (HER2POS, yp("pt", "384625004", "pT2", "2026-06-01"), yp("pn", "371494008", "pN1a", "2026-06-01"))


def test_tdm1_after_upfront_surgery_is_not_the_katherine_population():
    (finding,) = adjuvant_tdm1_not_katherine(context(*UPFRONT_SURGERY, drafts=[draft("k", "tdm1", "2026-07-06", count=14)]))
    assert finding.values["reason"] == "no-neoadjuvant" and finding.values["neoadjuvant"] == []
    card = RENDERER.render(finding)
    assert "without neoadjuvant taxane + trastuzumab: not the KATHERINE population" in card.summary
    assert "No taxane + trastuzumab recorded in the year before this order" in card.detail
    assert "Record the ypTNM staging or RCB class" not in card.detail


def test_tdm1_after_neoadjuvant_therapy_without_yp_staging_asks_for_it():
    (finding,) = adjuvant_tdm1_not_katherine(context(*NEOADJUVANT, drafts=[draft("k", "tdm1", "2026-07-13", count=14)]))
    assert finding.values["reason"] == "unconfirmed"
    assert "Record the ypTNM staging" in RENDERER.render(finding).detail


def test_a_later_cycle_of_adjuvant_tdm1_counts_neoadjuvant_therapy_before_the_course_began():
    # Neoadjuvant TH from 2025-10-06, T-DM1 every 3 weeks from 2026-03-30 (12 cycles given); cycle 13 drafted for
    # 2026-11-23, more than a year after the neoadjuvant therapy began. Without yp staging nothing dates surgery,
    # but it came before the T-DM1 course: the card asks for the staging, not says there was no neoadjuvant therapy.
    course = (HER2POS, statement("pac", "paclitaxel", "2025-10-06", "2025-12-22"), statement("h", "trastuzumab", "2025-10-06", "2026-02-09"),
              *every_three_weeks("tdm1", "2026-03-30", 12))
    (finding,) = adjuvant_tdm1_not_katherine(context(*course, drafts=[draft("k", "tdm1", "2026-11-23")]))
    assert finding.values["reason"] == "unconfirmed" and finding.values["tdm1_since"] == date(2026, 3, 30)
    detail = RENDERER.render(finding).detail
    assert "Taxane and HER2 therapy started in the year before the T-DM1 course began on 2026-03-30:" in detail
    assert "Record the ypTNM staging or RCB class" in detail
    # Near miss: the same T-DM1 course with no taxane and trastuzumab in the year before it began.
    upfront = (HER2POS, *every_three_weeks("tdm1", "2026-03-30", 12))
    (finding,) = adjuvant_tdm1_not_katherine(context(*upfront, drafts=[draft("k", "tdm1", "2026-11-23")]))
    assert finding.values["reason"] == "no-neoadjuvant"
    assert "No taxane + trastuzumab recorded in the year before the T-DM1 course began on 2026-03-30" in RENDERER.render(finding).detail


def test_tdm1_after_residual_disease_in_the_mcode_form_gets_no_card():
    assert list(adjuvant_tdm1_not_katherine(context(*NEOADJUVANT, *MCODE_RESIDUAL, drafts=[draft("k", "tdm1", "2026-07-13")]))) == []


# --- rules 40-43 --------------------------------------------------------------------------------------

METASTATIC = (HER2POS, condition("mets", "128462008", "2025-03-03"))
THP_LINE = (statement("t", "docetaxel", "2025-03-17", "2025-08-04"), statement("h", "trastuzumab", "2025-03-17"),
            statement("p", "pertuzumab", "2025-03-17"))


def test_first_line_card_counts_a_taxane_already_running():
    record = (*METASTATIC, statement("t", "docetaxel", "2026-11-16"))
    (finding,) = first_line_thp_preferred(context(*record, drafts=[draft("h", "trastuzumab")]))
    assert finding.values["taxanes"] == "docetaxel" and finding.suggestions[0].key == "add-pertuzumab"
    assert list(first_line_thp_preferred(context(*METASTATIC, drafts=[draft("h", "trastuzumab")]))) == []


def test_first_line_regimen_is_what_runs_on_the_dose_day_of_a_draft_planned_earlier():
    # Trastuzumab planned 2026-09-01 to 2026-10-15, still a draft on 2026-11-22: it is given today, with the docetaxel
    # running since 2026-11-02, although its planned course ended before that began.
    running = statement("t", "docetaxel", "2026-11-02")
    (finding,) = first_line_thp_preferred(context(*METASTATIC, running, drafts=[draft("h", "trastuzumab", "2026-09-01", end="2026-10-15")]))
    assert finding.values["taxanes"] == "docetaxel"
    # The pertuzumab load is given with that dose, today, not on the past planned start.
    loading = finding.suggestions[0].actions[0].resource["dosageInstruction"][0]
    assert loading["timing"]["repeat"]["boundsPeriod"] == {"start": "2026-11-22"}
    # Near miss: docetaxel that finished in September, after the planned start, is not given with today's dose.
    finished = statement("t", "docetaxel", "2026-09-01", "2026-09-22")
    assert list(first_line_thp_preferred(context(*METASTATIC, finished, drafts=[draft("h", "trastuzumab", "2026-09-01")]))) == []


def test_first_line_card_not_after_metastatic_therapy_has_started():
    assert list(first_line_thp_preferred(context(*METASTATIC, *THP_LINE, drafts=[draft("k", "tdm1")]))) == []


def test_second_line_card_lists_lines_and_stops_once_a_new_line_started():
    (finding,) = second_line_after_progression(context(*METASTATIC, *THP_LINE, worsened("2026-10-20"), hook="patient-view"))
    assert finding.values["next_line"] == 2 and [line["number"] for line in finding.values["lines"]] == [1]
    moved_on = (*METASTATIC, *THP_LINE, worsened("2026-10-20"), statement("dxd", "tdxd", "2026-11-02"))
    assert list(second_line_after_progression(context(*moved_on, hook="patient-view"))) == []


def test_a_line_started_on_the_day_of_the_progression_is_the_next_line_not_one_progressed_on():
    # T-DXd started on 2026-10-20, the day the disease status says worsened: second line under way, no card.
    brain = condition("brain", "94225005", "2026-10-14")
    same_day = (*METASTATIC, brain, *THP_LINE, worsened("2026-10-20"), statement("dxd", "tdxd", "2026-10-20"))
    assert list(second_line_after_progression(context(*same_day, hook="patient-view"))) == []
    assert list(brain_metastases_progression(context(*same_day, hook="patient-view"))) == []
    # First-line THP started on the day metastatic disease was recorded as worsened: nothing has progressed on it.
    first = (*METASTATIC, statement("h", "trastuzumab", "2025-03-17"), statement("p", "pertuzumab", "2025-03-17"), worsened("2025-03-17"))
    assert list(second_line_after_progression(context(*first, hook="patient-view"))) == []
    # Near miss: T-DXd started the day before the progression is a line progressed on: third line next.
    day_before = (*METASTATIC, brain, *THP_LINE, worsened("2026-10-20"), statement("dxd", "tdxd", "2026-10-19"))
    (finding,) = second_line_after_progression(context(*day_before, hook="patient-view"))
    assert finding.values["next_line"] == 3 and finding.values["tdxd_used"]
    (finding,) = brain_metastases_progression(context(*day_before, hook="patient-view"))
    assert finding.values["tdxd_used"]


def test_third_line_after_tdxd_shows_later_line_options():
    record = (*METASTATIC, *THP_LINE[:1], statement("h", "trastuzumab", "2025-03-17", "2026-01-05"),
              statement("dxd", "tdxd", "2026-01-26"), worsened("2026-10-20"))
    (finding,) = second_line_after_progression(context(*record, drafts=[draft("k", "tdm1")]))
    assert finding.values["tdxd_used"] and finding.values["next_line"] == 3


def test_brain_metastases_card_not_when_tucatinib_is_ordered():
    record = (*METASTATIC, condition("brain", "94225005", "2026-10-14"), *THP_LINE, worsened("2026-10-20"))
    assert len(list(brain_metastases_progression(context(*record, hook="patient-view")))) == 1
    assert list(brain_metastases_progression(context(*record, drafts=[draft("tuc", "tucatinib")]))) == []


def test_brain_metastases_card_not_on_the_unverified_icd10_code_alone():
    icd = {"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "C79.31"}
    icd_only = {**condition("brain", "94225005", "2026-10-14"), "code": {"coding": [icd]}}
    record = (*METASTATIC, *THP_LINE, worsened("2026-10-20"))
    assert list(brain_metastases_progression(context(*record, icd_only, hook="patient-view"))) == []
    with_snomed = {**icd_only, "code": {"coding": [icd, {"system": SCT, "code": "94225005"}]}}
    assert len(list(brain_metastases_progression(context(*record, with_snomed, hook="patient-view")))) == 1


def test_early_recurrence_not_once_metastatic_therapy_started():
    record = (HER2POS, condition("mets", "128462008", "2025-08-18"), statement("adj", "trastuzumab", "2024-01-08", "2024-12-16"))
    (finding,) = early_recurrence_second_line(context(*record, hook="patient-view"))
    assert finding.values["months"] == 8.0 and not finding.values["within_label_window"] and not finding.values["with_pertuzumab"]
    started = (*record, statement("dxd", "tdxd", "2025-09-01"))
    assert list(early_recurrence_second_line(context(*started, hook="patient-view"))) == []


def test_early_recurrence_without_adjuvant_pertuzumab_offers_thp_as_well_as_second_line():
    # Part 0 G6: within 12 months of adjuvant trastuzumab without pertuzumab, first-line THP or second line.
    record = (HER2POS, condition("mets", "128462008", "2025-08-18"), statement("adj", "trastuzumab", "2024-01-08", "2024-12-16"))
    card = RENDERER.render(next(iter(early_recurrence_second_line(context(*record, hook="patient-view")))))
    assert card.summary == (
        "Metastatic recurrence 8 months after the last (neo)adjuvant trastuzumab dose: second line (e.g. T-DXd) or first-line THP"
    )
    assert "not as first line with THP" not in card.detail
    assert "either first-line THP or second-line therapy is an option" in card.detail
    # Near miss: with pertuzumab in the adjuvant regimen, second line only.
    with_pertuzumab = (*record, statement("p", "pertuzumab", "2024-01-08", "2024-12-16"))
    card = RENDERER.render(next(iter(early_recurrence_second_line(context(*with_pertuzumab, hook="patient-view")))))
    assert card.summary == "Metastatic recurrence 8 months after the last (neo)adjuvant trastuzumab dose: treat as second line (e.g. T-DXd)"
    assert "(e.g. T-DXd), not as first line with THP." in card.detail and "first-line THP or" not in card.detail


# First-line THP started 2025-03-03; the metastases are dated two weeks later (biopsy after the first cycle).
DE_NOVO_THP = (HER2POS, statement("t", "docetaxel", "2025-03-03", "2025-07-14"), statement("h", "trastuzumab", "2025-03-03"),
               statement("p", "pertuzumab", "2025-03-03"))


def test_a_regimen_started_just_before_the_metastatic_date_is_line_1_for_rule_42_and_the_summary():
    record = (*DE_NOVO_THP, condition("mets", "128462008", "2025-03-17"))
    assert list(early_recurrence_second_line(context(*record, hook="patient-view"))) == []
    (summary,) = her2_therapy_summary(context(*record, hook="patient-view"))
    assert summary.values["line"] == 1 and summary.values["lines"][0]["start"] == date(2025, 3, 3)
    # Started more than 30 days before the metastatic date, it was (neo)adjuvant: recurrence during it.
    before = (*DE_NOVO_THP, condition("mets", "128462008", "2025-04-07"))
    (finding,) = early_recurrence_second_line(context(*before, hook="patient-view"))
    assert finding.values["during"]


def test_a_history_of_metastases_is_not_dated_by_the_day_it_was_recorded():
    history = condition("hist", "1287652008", recorded="2026-10-01")
    assert list(early_recurrence_second_line(context(*DE_NOVO_THP, history, hook="patient-view"))) == []
    assert list(early_recurrence_second_line(context(*DE_NOVO_THP, history, drafts=[draft("h", "trastuzumab")]))) == []
    # Its onset dates the metastases.
    dated = condition("hist", "1287652008", "2026-10-01")
    (finding,) = early_recurrence_second_line(context(*DE_NOVO_THP, dated, hook="patient-view"))
    assert finding.values["during"] and finding.values["metastatic_since"] == date(2026, 10, 1)


# Neoadjuvant THP to 2025-05-12, then adjuvant T-DM1 for residual disease (KATHERINE) to 2026-03-20.
KATHERINE_COURSE = (HER2POS, statement("pac", "paclitaxel", "2025-01-06", "2025-03-31"), statement("h", "trastuzumab", "2025-01-06", "2025-05-12"),
                    statement("p", "pertuzumab", "2025-01-06", "2025-05-12"), statement("k", "tdm1", "2025-06-30", "2026-03-20"))


def test_recurrence_after_adjuvant_tdm1_is_measured_from_its_last_dose():
    record = (*KATHERINE_COURSE, condition("mets", "128462008", "2026-08-01"))
    (finding,) = early_recurrence_second_line(context(*record, hook="patient-view"))
    assert finding.values["last_dose"] == date(2026, 3, 20) and finding.values["months"] == 4.4
    assert finding.values["within_label_window"] and finding.values["with_pertuzumab"]
    th = [draft("h2", "trastuzumab"), draft("t", "docetaxel")]
    assert list(first_line_thp_preferred(context(*record, drafts=th))) == []
    # More than 12 months after the last T-DM1 dose: first-line options.
    late = (*KATHERINE_COURSE, condition("mets", "128462008", "2027-03-22"))
    assert list(early_recurrence_second_line(context(*late, hook="patient-view"))) == []
    assert [f.card for f in first_line_thp_preferred(context(*late, drafts=th))] == ["sequencing-first-line-thp-preferred"]


def test_after_adjuvant_tdm1_the_card_names_the_tdm1_dose_and_offers_no_tdm1_again():
    record = (*KATHERINE_COURSE, condition("mets", "128462008", "2026-08-01"))
    (finding,) = early_recurrence_second_line(context(*record, hook="patient-view"))
    card = RENDERER.render(finding)
    assert card.summary == "Metastatic recurrence 4.4 months after the last (neo)adjuvant T-DM1 dose: treat as second line (e.g. T-DXd)"
    assert "Measured from the last T-DM1 dose, 2026-03-20, to the metastatic diagnosis, 2026-08-01" in card.detail
    assert "trastuzumab dose" not in card.detail and "go to second-line therapy (T-DXd)." in card.detail
    # T-DM1 recorded as continuing up to the metastatic diagnosis: a recurrence during T-DM1.
    during = (*KATHERINE_COURSE[:-1], statement("k", "tdm1", "2025-06-30"), condition("mets", "128462008", "2026-01-12"))
    (finding,) = early_recurrence_second_line(context(*during, hook="patient-view"))
    card = RENDERER.render(finding)
    assert card.summary.startswith("Metastatic recurrence during (neo)adjuvant T-DM1: treat as second line")
    assert "The T-DM1 given before metastatic disease continued up to the metastatic diagnosis (2026-01-12)" in card.detail
    # After adjuvant trastuzumab + pertuzumab the card names trastuzumab, and T-DM1 stays a second-line option.
    hp = (HER2POS, condition("mets", "128462008", "2025-08-18"), statement("h", "trastuzumab", "2024-01-08", "2024-12-16"),
          statement("p", "pertuzumab", "2024-01-08", "2024-12-16"))
    card = RENDERER.render(next(iter(early_recurrence_second_line(context(*hp, hook="patient-view")))))
    assert card.summary.startswith("Metastatic recurrence 8 months after the last (neo)adjuvant trastuzumab dose")
    assert "go to second-line therapy (T-DXd, or T-DM1)." in card.detail


def completed_request(rid, drug, authored):
    """A completed order with no dosage period: the record does not say when its last dose was."""
    return {"resourceType": "MedicationRequest", "id": rid, "status": "completed", "intent": "order", "subject": {"reference": "Patient/p"},
            "medicationCodeableConcept": medication(drug), "authoredOn": authored}


def test_an_undated_last_dose_that_decides_the_12_months_asks_for_it_and_claims_no_first_line():
    record = (HER2POS, completed_request("h", "trastuzumab", "2025-01-10"), condition("mets", "128462008", "2026-03-01"))
    th = [draft("h2", "trastuzumab"), draft("t", "docetaxel")]
    (finding,) = early_recurrence_second_line(context(*record, drafts=th))
    assert finding.values["last_dose_needed"] and finding.values["measured_from"] == date(2025, 1, 10)
    card = RENDERER.render(finding)
    assert card.summary.startswith("Last (neo)adjuvant trastuzumab dose undated: if within 12 months")
    assert "came at most 13.6 months after it, possibly within 12" in card.detail and "label window" not in card.detail
    assert list(first_line_thp_preferred(context(*record, drafts=th))) == []
    # Undated but within 12 months whenever it was: second line, measured at most.
    within = (HER2POS, completed_request("h", "trastuzumab", "2025-06-02"), condition("mets", "128462008", "2026-03-01"))
    (finding,) = early_recurrence_second_line(context(*within, hook="patient-view"))
    assert not finding.values["last_dose_needed"] and RENDERER.render(finding).summary.startswith("Metastatic recurrence at most 8.9 months")


def test_an_undated_last_dose_is_not_asked_for_when_its_one_year_course_ended_over_12_months_before():
    # Trastuzumab ordered 2024-03-04, its last dose undated: within the 52-week course, so by 2025-03-03 at the latest.
    order = completed_request("h", "trastuzumab", "2024-03-04")
    th = [draft("h2", "trastuzumab"), draft("t", "docetaxel")]
    late = (HER2POS, order, condition("mets", "128462008", "2026-03-04"))
    assert list(early_recurrence_second_line(context(*late, hook="patient-view"))) == []
    assert list(early_recurrence_second_line(context(*late, drafts=th))) == []
    assert [f.card for f in first_line_thp_preferred(context(*late, drafts=th))] == ["sequencing-first-line-thp-preferred"]
    # 12 months after that latest day, the last dose may still have come within 12 months: the card asks for it.
    edge = (HER2POS, order, condition("mets", "128462008", "2026-03-03"))
    (finding,) = early_recurrence_second_line(context(*edge, hook="patient-view"))
    assert finding.values["last_dose_needed"] and finding.values["measured_from"] == date(2024, 3, 4)
    assert list(first_line_thp_preferred(context(*edge, drafts=th))) == []


def adjuvant_doses_until(last_dose):
    return (HER2POS, condition("mets", "128462008", "2026-11-15"), administration("a1", "trastuzumab", "2025-10-11"),
            administration("a2", "trastuzumab", last_dose))


def test_recurrence_counts_from_the_last_adjuvant_dose_which_the_card_names():
    (finding,) = early_recurrence_second_line(context(*adjuvant_doses_until("2025-11-16"), hook="patient-view"))
    card = RENDERER.render(finding)
    assert "Measured from the last trastuzumab dose, 2025-11-16, to the metastatic diagnosis, 2026-11-15" in card.detail
    # 12.5 months after the last dose, though within 12 months of the end of its 21-day cycle: a first-line choice.
    late = adjuvant_doses_until("2025-11-01")
    assert list(early_recurrence_second_line(context(*late, hook="patient-view"))) == []
    th = [draft("h", "trastuzumab"), draft("t", "docetaxel")]
    assert [f.card for f in first_line_thp_preferred(context(*late, drafts=th))] == ["sequencing-first-line-thp-preferred"]


def test_undated_recurrence_card_names_the_last_dose_on_record():
    record = (HER2POS, condition("mets", "128462008"), administration("a", "trastuzumab", "2025-11-16"))
    (finding,) = early_recurrence_second_line(context(*record, drafts=[draft("h", "trastuzumab")]))
    assert "Last trastuzumab dose on record: 2025-11-16" in RENDERER.render(finding).detail


def test_undated_metastases_after_adjuvant_tdm1_ask_for_the_date_against_the_last_tdm1_dose():
    record = (*KATHERINE_COURSE, condition("mets", "128462008"))
    (finding,) = early_recurrence_second_line(context(*record, drafts=[draft("h2", "trastuzumab")]))
    card = RENDERER.render(finding)
    assert card.summary == "Metastatic diagnosis undated: if within 12 months of the last (neo)adjuvant T-DM1 dose, treat as second line"
    assert "Last T-DM1 dose on record: 2026-03-20" in card.detail and finding.evidence == ("MedicationStatement/k",)
    # T-DM1 the only (neo)adjuvant HER2 therapy on record (the neoadjuvant regimen given elsewhere): asked too.
    tdm1_only = (HER2POS, statement("k", "tdm1", "2025-06-30", "2026-03-20"), condition("mets", "128462008"))
    assert len(list(early_recurrence_second_line(context(*tdm1_only, drafts=[draft("h2", "trastuzumab")])))) == 1
    # T-DXd is metastatic therapy in the reference, not (neo)adjuvant: nothing to measure from.
    tdxd_only = (HER2POS, statement("dxd", "tdxd", "2025-06-30", "2026-03-20"), condition("mets", "128462008"))
    assert list(early_recurrence_second_line(context(*tdxd_only, drafts=[draft("h2", "trastuzumab")]))) == []


# --- rules 44 and 45 ----------------------------------------------------------------------------------


def test_atezolizumab_pair_is_shown_once_and_only_the_atezolizumab_draft_is_offered_for_removal():
    (finding,) = tdm1_with_atezolizumab(context(*METASTATIC, drafts=[draft("k", "tdm1"), draft("a", "atezolizumab")]))
    assert len(finding.values["pairs"]) == 1
    assert [s.actions[0].resource_id for s in finding.suggestions] == ["MedicationRequest/a"]


def test_tdm1_drafted_while_atezolizumab_is_on_record_says_to_stop_it_since_the_suggestion_removes_the_tdm1():
    running = statement("a", "atezolizumab", "2026-11-02")
    (finding,) = tdm1_with_atezolizumab(context(*METASTATIC, running, drafts=[draft("k", "tdm1")]))
    assert [s.actions[0].resource_id for s in finding.suggestions] == ["MedicationRequest/k"]
    detail = " ".join(RENDERER.render(finding).detail.split())
    assert "Atezolizumab is on record, not in this order session: stop it before giving T-DM1 alone" in detail
    # Near miss: atezolizumab drafted too, the suggestion removes it, and T-DM1 goes on alone.
    (finding,) = tdm1_with_atezolizumab(context(*METASTATIC, drafts=[draft("k", "tdm1"), draft("a", "atezolizumab")]))
    detail = " ".join(RENDERER.render(finding).detail.split())
    assert "give T-DM1 without atezolizumab" in detail and "stop it before" not in detail


def test_atezolizumab_stopped_before_its_planned_end_is_not_given_with_tdm1():
    stopped = {**statement("a", "atezolizumab", "2026-09-01", "2027-03-01"), "status": "stopped"}
    assert list(tdm1_with_atezolizumab(context(*METASTATIC, stopped, drafts=[draft("k", "tdm1")]))) == []
    # Near miss: the same course active.
    active = {**stopped, "status": "active"}
    assert len(list(tdm1_with_atezolizumab(context(*METASTATIC, active, drafts=[draft("k", "tdm1")])))) == 1


def test_tdm1_with_atezolizumab_is_judged_over_the_days_a_draft_planned_earlier_is_given():
    # T-DM1 planned 2026-09-01 to 2026-10-15, still a draft on 2026-11-22: atezolizumab running since 2026-11-02 runs
    # with today's dose.
    september = [draft("k", "tdm1", "2026-09-01", end="2026-10-15")]
    (finding,) = tdm1_with_atezolizumab(context(*METASTATIC, statement("a", "atezolizumab", "2026-11-02"), drafts=september))
    assert finding.values["pairs"][0]["other"] == "atezolizumab"
    # Near miss: atezolizumab given once, on 2026-09-10, after the planned start: its cycle ended 2026-09-30.
    given = administration("a", "atezolizumab", "2026-09-10")
    assert list(tdm1_with_atezolizumab(context(*METASTATIC, given, drafts=[draft("k", "tdm1", "2026-09-01")]))) == []


def test_a_draft_planned_within_the_trastuzumab_year_but_signed_after_it_is_beyond_52_weeks():
    # 16 cycles from 2025-10-06 (the last 2026-08-17); an open-ended draft planned 2026-09-07 (week 48) and still a
    # draft on 2026-11-22 gives its dose in week 58.
    course = (HER2POS, *every_three_weeks("trastuzumab", "2025-10-06", 16))
    (finding,) = trastuzumab_duration(context(*course, drafts=[draft("h", "trastuzumab", "2026-09-07")]))
    assert finding.values["until"] == TODAY and finding.values["weeks"] == 58
    # So does one whose planned course ended before today.
    (ended,) = trastuzumab_duration(context(*course, drafts=[draft("h", "trastuzumab", "2026-09-07", end="2026-10-19")]))
    assert ended.values["until"] == TODAY
    # Near miss: the same draft for a course that began 2025-12-29 is in week 47 today.
    later = (HER2POS, *every_three_weeks("trastuzumab", "2025-12-29", 12))
    assert list(trastuzumab_duration(context(*later, drafts=[draft("h", "trastuzumab", "2026-09-07")]))) == []


def test_trastuzumab_course_counts_planned_cycles_and_breaks_on_long_gaps():
    course = (HER2POS, statement("neo", "trastuzumab", "2026-01-05", "2026-05-18"))
    # 4 cycles q3w planned from 2026-10-26, given from today (2026-11-22): last dose 2027-01-24, 54 weeks after the
    # course began on 2026-01-05 (counted from the planned start it would end 2026-12-28, in week 51).
    (finding,) = trastuzumab_duration(context(*course, statement("adj", "trastuzumab", "2026-06-01", "2026-10-05"),
                                              drafts=[draft("h", "trastuzumab", "2026-10-26", count=4)]))
    assert finding.values["until"] == date(2027, 1, 24) and finding.values["weeks"] == 54
    # Near miss: 2 cycles from today end on 2026-12-13, week 49.
    assert list(trastuzumab_duration(context(*course, statement("adj", "trastuzumab", "2026-06-01", "2026-10-05"),
                                             drafts=[draft("h", "trastuzumab", "2026-10-26", count=2)]))) == []
    # A gap over 90 days starts a new course.
    assert list(trastuzumab_duration(context(*course, drafts=[draft("h", "trastuzumab", "2026-11-23", count=17)]))) == []
    metastatic = (*METASTATIC, statement("h", "trastuzumab", "2025-03-17"))
    assert list(trastuzumab_duration(context(*metastatic, hook="patient-view"))) == []


def test_trastuzumab_course_runs_to_its_last_dose_not_to_the_end_of_that_dose_cycle():
    # 18 cycles, the last on 2026-11-11 (day 357), chart opened on day 368 while that dose's cycle runs: 51 weeks.
    eighteen = (HER2POS, *every_three_weeks("trastuzumab", "2025-11-19", 18))
    assert list(trastuzumab_duration(context(*eighteen, hook="patient-view"))) == []
    # A 19th cycle, given or ordered, takes the course to week 54.
    nineteen = (HER2POS, *every_three_weeks("trastuzumab", "2025-10-29", 19))
    (given,) = trastuzumab_duration(context(*nineteen, hook="patient-view"))
    assert given.values["until"] == date(2026, 11, 11) and given.values["weeks"] == 54
    (ordered,) = trastuzumab_duration(context(*eighteen, drafts=[draft("h19", "trastuzumab", "2026-12-02")]))
    assert ordered.values["weeks"] == 54


def test_a_course_recorded_as_a_whole_joins_the_doses_recorded_within_it_whichever_started_last():
    # A statement of the course from 2025-11-22 to 2026-09-30, with two of its doses also recorded as given: the one on
    # 2026-01-05 ended its cycle long before the one on 2026-11-02, but the statement bridges them. A dose on
    # 2026-11-23 is in week 53 of one course.
    doses = (administration("a1", "trastuzumab", "2026-01-05"), administration("a2", "trastuzumab", "2026-11-02"))
    whole = statement("course", "trastuzumab", "2025-11-22", "2026-09-30")
    (finding,) = trastuzumab_duration(context(HER2POS, whole, *doses, drafts=[draft("h", "trastuzumab", count=1)]))
    assert finding.values["course_start"] == date(2025, 11, 22) and finding.values["until"] == date(2026, 11, 23)
    # A dose recorded on the course's first day, too, starts no course of its own.
    first = administration("a0", "trastuzumab", "2025-11-22")
    (same_day,) = trastuzumab_duration(context(HER2POS, whole, first, drafts=[draft("h", "trastuzumab", count=1)]))
    assert same_day.values["course_start"] == date(2025, 11, 22)
    # Near miss: a statement ending 2026-07-31 leaves 94 days to the dose of 2026-11-02, which begins a new course.
    ended = statement("course", "trastuzumab", "2025-11-22", "2026-07-31")
    assert list(trastuzumab_duration(context(HER2POS, ended, *doses, drafts=[draft("h", "trastuzumab", count=1)]))) == []


def test_an_order_for_more_than_a_year_with_no_course_before_it_is_beyond_52_weeks():
    # 20 cycles q3w from 2026-11-23: the last on 2027-12-27, in week 57 of the course the order begins.
    (finding,) = trastuzumab_duration(context(HER2POS, drafts=[draft("h", "trastuzumab", count=20)]))
    assert (finding.values["course_start"], finding.values["until"], finding.values["weeks"]) == (date(2026, 11, 23), date(2027, 12, 27), 57)
    assert finding.values["course"] == [] and finding.values["orders"] == "trastuzumab"
    # Near miss: 18 cycles end on 2027-11-15, day 357 of the course (week 51).
    assert list(trastuzumab_duration(context(HER2POS, drafts=[draft("h", "trastuzumab", count=18)]))) == []


def test_a_fixed_course_in_metastatic_disease_is_named_however_the_order_fixes_it():
    bounded = {**draft("b", "pertuzumab"), "dosageInstruction": [{"timing": {"repeat": {
        "boundsPeriod": {"start": "2026-11-23", "end": "2027-05-31"}, "frequency": 1, "period": 3, "periodUnit": "wk"}}}]}
    duration = {**draft("d", "tdxd"), "dosageInstruction": [{"timing": {"repeat": {
        "boundsDuration": {"value": 6, "unit": "months", "system": "http://unitsofmeasure.org", "code": "mo"}, "frequency": 1, "period": 3, "periodUnit": "wk"}}}]}
    supply = {**draft("s", "tdm1"), "dispenseRequest": {"expectedSupplyDuration": {"value": 18, "unit": "weeks", "code": "wk"}}}
    (finding,) = metastatic_no_fixed_duration(context(*METASTATIC, drafts=[draft("c", "trastuzumab", count=6), bounded, duration, supply]))
    assert [o["how"] for o in finding.values["orders"]] == ["6 doses", "ends on 2027-05-31", "for 6 months", "a supply for 18 weeks"]
    assert finding.values["orders"][0]["end"] == date(2027, 3, 8) and finding.values["setting_known"]


def two_phase(did, drug, first_end, second_end=None):
    """Weekly from 2026-11-23 to first_end, then every 3 weeks from 2027-03-01 to second_end (open-ended without it)."""
    second = {"start": "2027-03-01", **({"end": second_end} if second_end else {})}
    return {**draft(did, drug), "dosageInstruction": [
        {"sequence": 1, "timing": {"repeat": {"boundsPeriod": {"start": "2026-11-23", "end": first_end}, "frequency": 1, "period": 1, "periodUnit": "wk"}}},
        {"sequence": 2, "timing": {"repeat": {"boundsPeriod": second, "frequency": 1, "period": 3, "periodUnit": "wk"}}},
    ]}


def test_an_order_whose_later_phase_is_open_ended_is_no_fixed_course():
    # Weekly for 12 weeks, then every 3 weeks with no end: it continues, as metastatic therapy should.
    assert list(metastatic_no_fixed_duration(context(*METASTATIC, drafts=[two_phase("h", "trastuzumab", "2027-02-08")]))) == []
    # Near miss: the later phase ends too: a fixed course, to the end of its last phase.
    (finding,) = metastatic_no_fixed_duration(context(*METASTATIC, drafts=[two_phase("h", "trastuzumab", "2027-02-08", "2027-08-30")]))
    assert finding.values["orders"][0]["end"] == date(2027, 8, 30)
    # A loading dose, then 6 doses every 3 weeks: fixed, to the sixth.
    loading = {**draft("l", "pertuzumab"), "dosageInstruction": [
        {"sequence": 1, "timing": {"repeat": {"boundsPeriod": {"start": "2026-11-23"}, "count": 1}}},
        {"sequence": 2, "timing": {"repeat": {"count": 6, "frequency": 1, "period": 3, "periodUnit": "wk"}}},
    ]}
    (finding,) = metastatic_no_fixed_duration(context(*METASTATIC, drafts=[loading]))
    assert finding.values["orders"][0]["end"] == date(2027, 3, 8) and finding.values["orders"][0]["how"] == "6 doses"


def test_per_cycle_orders_open_courses_and_early_disease_get_no_fixed_course_card():
    assert list(metastatic_no_fixed_duration(context(*METASTATIC, drafts=[draft("one", "trastuzumab", count=1), draft("open", "trastuzumab")]))) == []
    assert list(metastatic_no_fixed_duration(context(HER2POS, drafts=[draft("c", "trastuzumab", count=17)]))) == []


def test_a_fixed_course_with_the_setting_unrecorded_asks_for_it():
    (finding,) = metastatic_no_fixed_duration(context(drafts=[draft("c", "trastuzumab", count=6)]))
    assert finding.values["setting_known"] is False
