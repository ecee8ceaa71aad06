"""Disease facts: setting, residual disease (A3.4), progression, metastatic lines and recurrence interval."""
from __future__ import annotations

from datetime import date

import pytest

from cds_hooks.facts import Facts
from cds_hooks.facts.disease import (
    brain_metastases,
    line_of_therapy,
    metastatic_lines,
    metastatic_since,
    neoadjuvant_therapy,
    progression,
    recurrence,
    recurrence_interval_months,
    residual_disease,
    residual_disease_findings,
    setting,
    taxane_finished_before,
    within_months,
)
from cds_hooks.record import build_record
from cds_hooks.settings import Settings

RX = "http://www.nlm.nih.gov/research/umls/rxnorm"
SCT = "http://snomed.info/sct"
LOINC = "http://loinc.org"
TODAY = date(2026, 11, 22)
DRUGS = {"trastuzumab": "224905", "pertuzumab": "1298944", "paclitaxel": "56946", "docetaxel": "72962", "tdm1": "1371041",
         "capecitabine": "194000"}
TDXD = {"coding": [{"system": "http://www.whocc.no/atc", "code": "L01FD04"}], "text": "Enhertu"}


def facts(*resources) -> Facts:
    return Facts(build_record({"all": list(resources)}, []), TODAY, Settings())


def condition(cid, code, onset=None, status="active", recorded=None):
    resource = {"resourceType": "Condition", "id": cid, "subject": {"reference": "Patient/p"},
                "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": status}]},
                "code": {"coding": [{"system": SCT, "code": code}]}}
    if onset:
        resource["onsetDateTime"] = onset
    if recorded:
        resource["recordedDate"] = recorded
    return resource


HER2POS = condition("her2", "427685000", "2024-01-08")


def mets(onset=None, **kwargs):
    return condition("mets", "128462008", onset, **kwargs)


def statement(sid, drug, start=None, end=None):
    medication = TDXD if drug == "tdxd" else {"coding": [{"system": RX, "code": DRUGS[drug]}], "text": drug}
    resource = {"resourceType": "MedicationStatement", "id": sid, "status": "completed" if end else "active",
                "subject": {"reference": "Patient/p"}, "medicationCodeableConcept": medication}
    if start:
        resource["effectivePeriod"] = {"start": start, **({"end": end} if end else {})}
    return resource


def staging(oid, code, when, value=None, text=None, string=None):
    resource = {"resourceType": "Observation", "id": oid, "status": "final", "subject": {"reference": "Patient/p"},
                "code": {"coding": [{"system": LOINC if "-" in code else SCT, "code": code}]}, "effectiveDateTime": when}
    if value or text:
        resource["valueCodeableConcept"] = {**({"coding": [value]} if value else {}), **({"text": text} if text else {})}
    if string:
        resource["valueString"] = string
    return resource


def history_of_metastatic_cancer(value=None):
    resource = {"resourceType": "Observation", "id": "history", "status": "final", "subject": {"reference": "Patient/p"},
                "code": {"coding": [{"system": SCT, "code": "1287652008"}]}, "effectiveDateTime": "2026-02-02"}
    if value is not None:
        resource["valueBoolean"] = value
    return resource


def administration(aid, drug, day):
    return {"resourceType": "MedicationAdministration", "id": aid, "status": "completed", "subject": {"reference": "Patient/p"},
            "medicationCodeableConcept": {"coding": [{"system": RX, "code": DRUGS[drug]}], "text": drug}, "effectiveDateTime": day}


def yp_t(text, when="2026-06-22"):
    return staging("ypt", "1222595002", when, {"system": "http://cancerstaging.org", "code": text})


def yp_n(text, when="2026-06-22"):
    return staging("ypn", "1222596001", when, text=text)


def disease_status(oid, when, code):
    resource = {"resourceType": "Observation", "id": oid, "status": "final", "subject": {"reference": "Patient/p"},
                "code": {"coding": [{"system": LOINC, "code": "97509-4"}]},
                "valueCodeableConcept": {"coding": [{"system": SCT, "code": code}]}}
    if when:
        resource["effectiveDateTime"] = when
    return resource


# --- setting and metastatic disease -------------------------------------------------------------------


def test_setting_reads_conditions_and_m1_staging():
    assert setting(facts(HER2POS)) == "early"
    assert setting(facts(HER2POS, mets("2026-01-05"))) == "metastatic"
    assert setting(facts(HER2POS, staging("m", "399387003", "2026-02-02", text="cM1"))) == "metastatic"
    assert setting(facts(HER2POS, staging("m", "399387003", "2026-02-02", text="cM0"))) == "early"
    assert setting(facts()) == "unknown"


STAGE_IV = [
    ("399537006", {"text": "Stage IV"}),
    ("21908-9", {"value": {"system": "http://cancerstaging.org", "code": "4", "display": "IV"}}),  # mCODE's AJCC#4 form
    ("399588009", {"value": {"display": "American Joint Committee on Cancer stage IV (qualifier value)"}}),
    ("21902-2", {"string": "IVB"}),
    ("1222594003", {"text": "ypIV"}),
]
BELOW_IV = [
    ("399537006", {"text": "Stage IIIC"}),
    ("399588009", {"value": {"system": "http://cancerstaging.org", "code": "3C", "display": "IIIC"}}),
    ("1222594003", {"text": "ypIIA"}),
    ("21902-2", {"string": "Stage IV pending restaging"}),  # only a whole value is read
    ("399387003", {"text": "IV"}),  # an M category, not a stage group
]


def setting_from_staging(code, value, when):
    """The setting and metastatic day of a HER2-positive record holding this one staging Observation."""
    record = facts(HER2POS, staging("sg", code, when, **value))
    return setting(record), metastatic_since(record)


def test_stage_group_iv_is_metastatic_from_its_day_and_lower_stage_groups_are_not():
    for code, value in STAGE_IV:
        assert setting_from_staging(code, value, "2026-02-02") == ("metastatic", date(2026, 2, 2)), (code, value)
    for code, value in BELOW_IV:
        assert setting_from_staging(code, value, "2026-02-02") == ("early", None), (code, value)


M1_QUALIFIERS = [
    ("399387003", {"value": {"system": SCT, "code": "1229903009", "display": "American Joint Committee on Cancer cM1 (qualifier value)"}}),
    ("371497001", {"value": {"display": "American Joint Committee on Cancer pM1 (qualifier value)"}}),
]
NOT_M1_QUALIFIERS = [
    ("399387003", {"value": {"display": "American Joint Committee on Cancer cM0 (qualifier value)"}}),
    ("399387003", {"value": {"display": "American Joint Committee on Cancer cM0(i+) (qualifier value)"}}),
    ("399387003", {"value": {"system": SCT, "code": "1229903009"}}),  # the code alone: not listed by the reference
    ("384625004", {"value": {"display": "American Joint Committee on Cancer pM1 (qualifier value)"}}),  # a T category
]


def test_m1_as_snomed_displays_it_is_metastatic_from_its_day():
    for code, value in M1_QUALIFIERS:
        assert setting_from_staging(code, value, "2024-05-20") == ("metastatic", date(2024, 5, 20)), (code, value)
    for code, value in NOT_M1_QUALIFIERS:
        assert setting_from_staging(code, value, "2024-05-20") == ("early", None), (code, value)


@pytest.mark.parametrize("status", ["remission", "inactive", "resolved"])
def test_metastases_in_remission_or_resolved_stay_metastatic_from_their_onset(status):
    record = facts(HER2POS, mets("2024-05-20", status=status))
    assert (setting(record), metastatic_since(record)) == ("metastatic", date(2024, 5, 20))


def test_refuted_metastases_are_not_metastatic():
    refuted = {**mets("2024-05-20", status="resolved"),
               "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "refuted"}]}}
    assert (setting(facts(HER2POS, refuted)), metastatic_since(facts(HER2POS, refuted))) == ("early", None)
    refuted_history = {**condition("history", "1287652008", "2025-06-02"), "verificationStatus": refuted["verificationStatus"]}
    assert setting(facts(HER2POS, refuted_history)) == "early"


def test_history_of_metastatic_cancer_is_metastatic_as_an_observation_or_a_condition_in_any_status():
    assert setting(facts(HER2POS, history_of_metastatic_cancer())) == "metastatic"
    assert setting(facts(HER2POS, history_of_metastatic_cancer(True))) == "metastatic"
    assert setting(facts(HER2POS, history_of_metastatic_cancer(False))) == "early"
    # The day the history was noted is not the day of the metastases.
    assert metastatic_since(facts(HER2POS, history_of_metastatic_cancer())) is None
    remission = facts(HER2POS, condition("history", "1287652008", "2025-06-02", status="remission"))
    assert (setting(remission), metastatic_since(remission)) == ("metastatic", date(2025, 6, 2))
    # As a Condition, too, the day it was recorded is when the history was noted.
    recorded = facts(HER2POS, condition("history", "1287652008", recorded="2026-10-01"))
    assert (setting(recorded), metastatic_since(recorded)) == ("metastatic", None)


def test_metastatic_since_is_the_earliest_onset_or_recorded_day():
    brain = condition("brain", "94225005", "2026-03-01")
    assert metastatic_since(facts(HER2POS, mets(recorded="2026-02-10"), brain)) == date(2026, 2, 10)
    assert metastatic_since(facts(HER2POS, mets())) is None
    assert [c.id for c in brain_metastases(facts(HER2POS, brain))] == ["brain"]
    assert brain_metastases(facts(HER2POS, condition("brain", "94225005", status="resolved"))) == ()


def test_an_unverified_icd10_brain_code_alone_is_not_read_as_brain_metastases():
    icd_only = {**condition("brain", "94225005", "2026-03-01"),
                "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "C79.31"}]}}
    record = facts(HER2POS, icd_only)
    assert brain_metastases(record) == ()
    # C79.31 is still a secondary malignant neoplasm (C77-C79): the disease is metastatic from its onset.
    assert (setting(record), metastatic_since(record)) == ("metastatic", date(2026, 3, 1))
    both = {**icd_only, "code": {"coding": [*icd_only["code"]["coding"], {"system": SCT, "code": "94225005"}]}}
    assert [c.id for c in brain_metastases(facts(HER2POS, both))] == ["brain"]


# --- residual disease ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("t", "n", "expected"), [
    ("ypT1c", "ypN0", "residual"),
    ("ypT0", "ypN1mi", "residual"),
    ("ypT1mi", "ypN0", "residual"),
    ("ypT0", "ypN0", "pcr"),
    ("ypTis", "ypN0", "pcr"),
    ("ypTis (DCIS)", "ypN0(sn)", "pcr"),
    ("ypT0", "ypN0(i+)", "unknown"),   # isolated tumour cells: A3.4 names neither, so ask
    ("ypTX", "ypN0", "unknown"),
    ("ypT2 with a comment", "ypN0", "unknown"),  # only a whole value is read
])
def test_residual_disease_from_yp_categories(t, n, expected):
    assert residual_disease(facts(yp_t(t), yp_n(n))) == expected


def test_pcr_needs_both_breast_and_nodes():
    assert residual_disease(facts(yp_t("ypT0"))) == "unknown"


def test_no_evidence_of_malignancy_and_rcb_class():
    no_tumour = {"system": SCT, "code": "110396000"}
    assert residual_disease(facts(staging("g", "1222594003", "2026-06-22", no_tumour))) == "pcr"
    assert residual_disease(facts(staging("r", "85323-4", "2026-06-22", string="RCB-II"))) == "residual"
    assert residual_disease(facts(staging("r", "85323-4", "2026-06-22", text="RCB 0"))) == "pcr"
    assert residual_disease(facts(yp_t("ypT0"), yp_n("ypN0"), staging("r", "85323-4", "2026-06-22", text="RCB-I"))) == "residual"


# mCODE codes the Observation as a T or N category (or stage group) and carries the yp hierarchy in the value (A3.4).
PT, PN, PATHOLOGIC_GROUP = "384625004", "371494008", "399588009"


def snomed_display(display):
    return {"system": SCT, "display": display}


@pytest.mark.parametrize(("t", "n", "expected"), [
    (staging("t", PT, "2026-06-22", text="ypT1c"), staging("n", PN, "2026-06-22", text="ypN1a"), "residual"),
    (staging("t", PT, "2026-06-22", text="ypT0"), staging("n", PN, "2026-06-22", text="ypN0"), "pcr"),
    (staging("t", "1222595002", "2026-06-22", snomed_display("American Joint Committee on Cancer ypT1c (qualifier value)")),
     staging("n", "1222596001", "2026-06-22", snomed_display("American Joint Committee on Cancer ypN1a (qualifier value)")), "residual"),
    (staging("t", PT, "2026-06-22", snomed_display("American Joint Committee on Cancer ypT0 (qualifier value)")),
     staging("n", PN, "2026-06-22", snomed_display("American Joint Committee on Cancer ypN0 (qualifier value)")), "pcr"),
    (yp_t("ypT0"), yp_n("ypN1mi(sn)"), "residual"),
    (yp_t("ypT1c(m)"), yp_n("ypN0"), "residual"),
    (staging("t", PT, "2026-06-22", text="ypT1c (m)"), staging("n", PN, "2026-06-22", text="ypN0(sn)"), "residual"),
])
def test_yp_staging_is_read_from_its_value_whatever_the_category_code(t, n, expected):
    found = residual_disease_findings(facts(t, n))
    assert (found.status, found.day) == (expected, date(2026, 6, 22))


@pytest.mark.parametrize("t", [
    "pT2",                    # upfront surgery: pathologic, not post-neoadjuvant
    "ycT1c",                  # clinical staging after therapy, not pathologic
    "T1c",                    # no prefix on a pT code: not yp
    "ypN1a",                  # an N value on a T code
    "American Joint Committee on Cancer pT2 (qualifier value)",
])
def test_a_t_category_code_with_a_value_that_is_not_yp_t_is_not_post_neoadjuvant_staging(t):
    found = residual_disease_findings(facts(staging("t", PT, "2026-06-22", text=t)))
    assert (found.status, found.day) == ("unknown", None), t


@pytest.mark.parametrize("t", ["ypT1c ypN1a", "ypT1c(sn)", "ypT1c (qualifier value) extra", "ypT1cc"])
def test_a_yp_value_is_read_only_whole_and_exact(t):
    # yp staging (it dates surgery), but a value that is not exactly one T category is not read: the card asks.
    found = residual_disease_findings(facts(staging("t", PT, "2026-06-22", text=t), staging("n", PN, "2026-06-22", text="ypN0")))
    assert (found.status, found.day) == ("unknown", date(2026, 6, 22)), t


def test_a_stage_group_or_a_yp_hierarchy_value_marks_post_neoadjuvant_staging():
    group = residual_disease_findings(facts(staging("g", PATHOLOGIC_GROUP, "2026-06-22", text="ypIIA")))
    assert (group.status, group.day) == ("residual", date(2026, 6, 22))
    assert residual_disease_findings(facts(staging("g", PATHOLOGIC_GROUP, "2026-06-22", text="IIA"))).day is None
    hierarchy = residual_disease_findings(facts(staging("t", PT, "2026-06-22", {"system": SCT, "code": "1222595002"})))
    assert (hierarchy.status, hierarchy.day) == ("unknown", date(2026, 6, 22))


YP_GROUP = "1222594003"


@pytest.mark.parametrize(("code", "value", "expected"), [
    # Every AJCC breast stage group from I to III needs ypT >= T1mi or ypN >= N1mi; stage 0 is ypTis ypN0.
    (PATHOLOGIC_GROUP, {"text": "ypIIA"}, "residual"),
    (PATHOLOGIC_GROUP, {"text": "yp Stage IIIC"}, "residual"),
    (PATHOLOGIC_GROUP, {"text": "ypIA"}, "residual"),
    (PATHOLOGIC_GROUP, snomed_display("American Joint Committee on Cancer ypIB (qualifier value)"), "residual"),
    (YP_GROUP, {"text": "IIB"}, "residual"),      # the code says yp; the value need not
    (YP_GROUP, {"system": "http://cancerstaging.org", "code": "2A"}, "residual"),
    (YP_GROUP, {"text": "Stage 0"}, "pcr"),
    (PATHOLOGIC_GROUP, {"text": "ypStage 0"}, "pcr"),
    (YP_GROUP, {"text": "IV"}, "unknown"),        # metastatic: the setting's business, not residual disease's
    (YP_GROUP, {"text": "ypIIA with a comment"}, "unknown"),
    (YP_GROUP, {"text": "0A"}, "unknown"),
    (YP_GROUP, {"text": "IIIE"}, "unknown"),
])
def test_a_yp_stage_group_is_read_as_residual_disease_or_pcr(code, value, expected):
    concept = {"text": value["text"]} if set(value) == {"text"} else {}
    coded = None if concept else value
    found = residual_disease_findings(facts(staging("g", code, "2026-06-22", coded, text=concept.get("text"))))
    assert (found.status, found.day) == (expected, date(2026, 6, 22)), value


def test_a_yp_stage_group_beside_yp_categories_that_say_pcr_is_residual_disease():
    # The newest reading of each kind is kept; any of them naming invasive disease shows the KATHERINE card.
    group = staging("g", YP_GROUP, "2026-06-22", text="IA")
    assert residual_disease(facts(yp_t("ypT0"), yp_n("ypN0"), group)) == "residual"


@pytest.mark.parametrize(("value", "expected"), [
    ("Residual cancer burden class II", "residual"),
    ("RCB II (moderate)", "residual"),
    ("residual cancer burden 0", "pcr"),
    ("RCB-0 (pCR)", "pcr"),
    ("RCB 0 (moderate)", "unknown"),   # the words contradict the class: ask
    ("RCB II pending", "unknown"),
    ("residual cancer burden", "unknown"),
])
def test_rcb_class_written_out_or_with_its_description(value, expected):
    assert residual_disease(facts(staging("r", "85323-4", "2026-06-22", string=value))) == expected


def test_missing_staging_is_unknown_and_described():
    found = residual_disease_findings(facts(HER2POS))
    assert (found.status, found.day) == ("unknown", None)
    assert "no post-neoadjuvant" in found.described
    described = residual_disease_findings(facts(yp_t("ypT1c"), yp_n("ypN0")))
    assert described.day == date(2026, 6, 22) and described.described == "ypT1c (2026-06-22), ypN0 (2026-06-22)"


def test_neoadjuvant_therapy_is_what_started_in_the_year_before_surgery():
    record = facts(
        yp_t("ypT1c"), yp_n("ypN0"),
        statement("pac", "paclitaxel", "2026-02-02", "2026-04-20"),
        statement("h", "trastuzumab", "2026-02-02", "2026-05-25"),
        statement("old", "trastuzumab", "2020-01-06", "2020-12-28"),
        statement("adj", "trastuzumab", "2026-07-13"),
    )
    therapy = neoadjuvant_therapy(record)
    assert therapy is not None and therapy.taxane_and_trastuzumab
    assert [e.source for e in therapy.trastuzumab] == ["MedicationStatement/h"]
    assert neoadjuvant_therapy(facts(statement("h", "trastuzumab", "2026-02-02"))) is None


def test_the_taxane_has_finished_more_than_a_cycle_after_its_last_dose():
    given = facts(administration("t1", "docetaxel", "2026-09-14"), administration("t2", "docetaxel", "2026-10-05"))
    assert not taxane_finished_before(given, date(2026, 10, 26))   # 21 days: the next cycle is due
    assert taxane_finished_before(given, date(2026, 10, 27))
    # A recorded end dates the last dose like a dose given: a per-cycle order ends on its cycle's day.
    ended = facts(statement("pac", "paclitaxel", "2026-02-02", "2026-04-20"))
    assert not taxane_finished_before(ended, date(2026, 5, 11)) and taxane_finished_before(ended, date(2026, 5, 12))


def test_a_taxane_recorded_as_continuing_or_never_given_has_not_finished():
    continuing = facts(administration("t1", "docetaxel", "2026-08-03"), statement("t", "docetaxel", "2026-08-24"))
    assert not taxane_finished_before(continuing, date(2026, 11, 16))
    assert not taxane_finished_before(facts(statement("h", "trastuzumab", "2026-02-02", "2026-05-25")), date(2026, 7, 13))


# --- progression, lines, recurrence -------------------------------------------------------------------


def test_progression_is_the_newest_status_when_it_says_worsened():
    worsened, stable = "271299001", "359746009"
    found = progression(facts(disease_status("a", "2026-06-01", stable), disease_status("b", "2026-10-20", worsened)))
    assert found is not None and found.day == date(2026, 10, 20) and found.reference == "Observation/b"
    assert progression(facts(disease_status("a", "2026-06-01", worsened), disease_status("b", "2026-10-20", stable))) is None
    assert progression(facts(disease_status("future", "2027-01-01", worsened))) is None


def test_lines_group_drugs_started_within_30_days_and_keep_maintenance_in_the_same_line():
    record = facts(
        HER2POS, mets("2025-03-01"),
        statement("adj", "trastuzumab", "2024-01-08", "2024-12-16"),   # before metastatic disease: not a line
        statement("t", "docetaxel", "2025-03-17", "2025-08-04"),
        statement("h", "trastuzumab", "2025-03-17", "2025-08-04"),
        statement("p", "pertuzumab", "2025-04-07", "2025-08-04"),     # 21 days later: same regimen
        statement("hp", "trastuzumab", "2025-08-25", "2026-05-04"),   # maintenance: same drugs, same line
        statement("dxd", "tdxd", "2026-05-25"),                       # a switch: line 2
    )
    lines = metastatic_lines(record)
    assert [(line.number, line.start, sorted(line.her2_ingredients)) for line in lines] == [
        (1, date(2025, 3, 17), ["pertuzumab", "trastuzumab"]),
        (2, date(2026, 5, 25), ["fam_trastuzumab_deruxtecan"]),
    ]
    assert "docetaxel" in lines[0].ingredients and lines[0].trastuzumab_based and lines[1].end is None
    assert line_of_therapy(record) == 2


def test_a_regimen_started_within_30_days_before_the_metastatic_date_is_line_1():
    thp = (statement("t", "docetaxel", "2025-03-03", "2025-07-14"), statement("h", "trastuzumab", "2025-03-03"),
           statement("p", "pertuzumab", "2025-03-03"))
    record = facts(HER2POS, mets("2025-03-17"), *thp)
    (line,) = metastatic_lines(record)
    assert (line.start, sorted(line.her2_ingredients)) == (date(2025, 3, 3), ["pertuzumab", "trastuzumab"])
    assert "docetaxel" in line.ingredients and line_of_therapy(record) == 1 and recurrence(record) is None
    # Started 31 days before: (neo)adjuvant therapy continuing into the metastatic diagnosis.
    earlier = facts(HER2POS, mets("2025-04-03"), *thp)
    assert line_of_therapy(earlier) == 0 and recurrence_interval_months(earlier) == 0.0


def test_the_last_doses_of_a_course_before_the_metastatic_date_are_not_a_new_line():
    # Adjuvant trastuzumab dosed every 3 weeks, the last dose 10 days before the metastases.
    doses = [administration(f"a{n}", "trastuzumab", day) for n, day in enumerate(["2026-09-14", "2026-10-05", "2026-10-26"])]
    record = facts(HER2POS, mets("2026-11-05"), *doses)
    assert line_of_therapy(record) == 0
    found = recurrence(record)
    assert found is not None and found.last_dose is not None and found.last_dose.day == date(2026, 10, 26)
    # Adjuvant trastuzumab resumed after surgery (a 35-day gap after the neoadjuvant part), 20 days before the metastases.
    resumed = facts(HER2POS, mets("2026-11-05"), statement("neo", "trastuzumab", "2026-03-02", "2026-09-11"),
                    statement("adj", "trastuzumab", "2026-10-16"))
    assert line_of_therapy(resumed) == 0 and recurrence_interval_months(resumed) == 0.0


def test_line_of_therapy_is_unknown_without_a_metastatic_date_and_none_outside_metastatic_disease():
    assert line_of_therapy(facts(HER2POS, mets(), statement("h", "trastuzumab", "2025-03-17"))) is None
    assert line_of_therapy(facts(HER2POS, mets())) == 0
    assert line_of_therapy(facts(HER2POS, statement("h", "trastuzumab", "2025-03-17"))) is None


def test_recurrence_interval_from_the_end_of_adjuvant_trastuzumab():
    record = facts(HER2POS, mets("2025-08-18"), statement("h", "trastuzumab", "2024-01-08", "2024-12-16"),
                   statement("p", "pertuzumab", "2024-01-08", "2024-12-16"))
    found = recurrence(record)
    assert found is not None and found.measured_from == date(2024, 12, 16) and found.with_pertuzumab
    assert recurrence_interval_months(record) == 8.0
    during = facts(HER2POS, mets("2025-08-18"), statement("h", "trastuzumab", "2025-01-06"))
    assert recurrence_interval_months(during) == 0.0
    assert recurrence_interval_months(facts(HER2POS, mets("2025-08-18"))) is None


def test_recurrence_is_measured_from_the_last_dose_not_the_end_of_its_cycle():
    doses = facts(HER2POS, mets("2026-11-15"), administration("a1", "trastuzumab", "2025-10-11"),
                  administration("a2", "trastuzumab", "2025-11-01"))
    found = recurrence(doses)
    assert found is not None and found.last_dose is not None
    assert (found.last_dose.day, found.measured_from, found.months) == (date(2025, 11, 1), date(2025, 11, 1), 12.5)
    # A stopped record without an end date leaves the last dose open: measured from the earliest it can have been.
    stopped = {**statement("h", "trastuzumab", "2025-11-01"), "status": "stopped"}
    found = recurrence(facts(HER2POS, mets("2026-11-15"), stopped))
    assert found is not None and found.last_dose is not None
    assert (found.last_dose.day, found.measured_from) == (None, date(2025, 11, 1))
    # Doses recorded up to or past the diagnosis: a recurrence during trastuzumab.
    during = recurrence(facts(HER2POS, mets("2026-11-15"), statement("h", "trastuzumab", "2025-11-01", "2026-12-01")))
    assert during is not None and (during.last_dose, during.months) == (None, 0.0)


def test_recurrence_is_measured_from_the_end_of_adjuvant_tdm1_after_neoadjuvant_trastuzumab():
    katherine = facts(HER2POS, mets("2026-08-01"), statement("h", "trastuzumab", "2025-01-06", "2025-05-12"),
                      statement("p", "pertuzumab", "2025-01-06", "2025-05-12"), statement("k", "tdm1", "2025-06-30", "2026-03-20"))
    found = recurrence(katherine)
    assert found is not None and found.measured_from == date(2026, 3, 20) and found.months == 4.4
    assert "MedicationStatement/k" in found.sources
    # T-DXd is metastatic therapy in the reference: not (neo)adjuvant therapy to measure from.
    tdxd = facts(HER2POS, mets("2026-08-01"), statement("h", "trastuzumab", "2025-01-06", "2025-05-12"),
                 statement("dxd", "tdxd", "2025-06-30", "2026-03-20"))
    found = recurrence(tdxd)
    assert found is not None and found.measured_from == date(2025, 5, 12)


def test_recurrence_names_the_adjuvant_her2_therapy_given_last():
    neoadjuvant = (statement("h", "trastuzumab", "2025-01-06", "2025-05-12"), statement("p", "pertuzumab", "2025-01-06", "2025-05-12"))
    katherine = recurrence(facts(HER2POS, mets("2026-08-01"), *neoadjuvant, statement("k", "tdm1", "2025-06-30", "2026-03-20")))
    assert katherine is not None and katherine.last_given == {"ado_trastuzumab_emtansine"}
    # Continuing to the diagnosis, T-DM1 is what the recurrence came during.
    during = recurrence(facts(HER2POS, mets("2026-01-12"), *neoadjuvant, statement("k", "tdm1", "2025-06-30")))
    assert during is not None and during.last_dose is None and during.last_given == {"ado_trastuzumab_emtansine"}
    # Pertuzumab given with the last trastuzumab dose is not (neo)adjuvant HER2 therapy rule 42 measures from.
    hp = recurrence(facts(HER2POS, mets("2025-08-18"), *neoadjuvant))
    assert hp is not None and hp.last_given == {"trastuzumab"}


def test_an_undated_last_dose_leaves_the_interval_open():
    completed_request = {"resourceType": "MedicationRequest", "id": "h", "status": "completed", "intent": "order",
                         "subject": {"reference": "Patient/p"}, "authoredOn": "2025-01-10",
                         "medicationCodeableConcept": {"coding": [{"system": RX, "code": DRUGS["trastuzumab"]}]}}
    found = recurrence(facts(HER2POS, mets("2026-03-01"), completed_request))
    assert found is not None and found.last_dose_undated and found.measured_from == date(2025, 1, 10)
    dated = recurrence(facts(HER2POS, mets("2026-03-01"), statement("h", "trastuzumab", "2025-01-10", "2025-12-29")))
    assert dated is not None and not dated.last_dose_undated


def test_within_months_uses_calendar_months():
    assert within_months(date(2024, 12, 16), date(2025, 12, 16), 12)
    assert not within_months(date(2024, 12, 16), date(2025, 12, 17), 12)
    assert within_months(date(2025, 8, 31), date(2026, 2, 28), 6)
    assert not within_months(date(2025, 8, 31), date(2026, 3, 1), 6)
