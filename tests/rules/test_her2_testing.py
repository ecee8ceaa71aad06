"""Rules 9-11: HER2 positivity before HER2-directed therapy, reflex ISH for IHC 2+, HER2 subtype for T-DXd."""
from __future__ import annotations

from datetime import date

from cds_hooks.facts import Facts
from cds_hooks.record import build_record
from cds_hooks.rules import her2_testing
from cds_hooks.render import CardRenderer
from cds_hooks.rules.base import RuleContext
from cds_hooks.settings import Settings

RX = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
DRUGS = {
    "trastuzumab": {"coding": [{"system": RX, "code": "224905"}], "text": "trastuzumab"},
    "tdxd": {"coding": [{"system": RX, "code": "2267576"}], "text": "fam-trastuzumab deruxtecan-nxki"},
    "lapatinib": {"coding": [{"system": RX, "code": "672149"}], "text": "lapatinib"},
    "paclitaxel": {"coding": [{"system": RX, "code": "56946"}], "text": "paclitaxel"},
}
RENDERER = CardRenderer.load()
IHC = {"0": "LA6111-4", "1+": "LA11841-6", "2+": "LA11842-4", "3+": "LA11843-2"}


def ihc(score):
    return {"resourceType": "Observation", "id": "ihc", "status": "final", "code": {"coding": [{"system": LOINC, "code": "85319-2"}]},
            "effectiveDateTime": "2026-03-02", "valueCodeableConcept": {"coding": [{"system": LOINC, "code": IHC[score]}]}}


def her2_low_diagnosis():
    return {"resourceType": "Condition", "id": "low", "subject": {"reference": "Patient/p"},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "1381317004"}]}}


def draft(drug):
    return {"resourceType": "MedicationRequest", "id": f"d-{drug}", "status": "draft", "intent": "order",
            "subject": {"reference": "Patient/p"}, "authoredOn": "2026-11-22", "medicationCodeableConcept": DRUGS[drug]}


def run(rule, *resources, drugs=(), hook="order-select") -> list:
    record = build_record({"all": list(resources)}, [draft(d) for d in drugs])
    today = date(2026, 11, 22)
    return list(rule(RuleContext(hook, "p", record, Facts(record, today, Settings()), record.draft_orders, Settings(), today)))


def test_rule_9_is_not_for_tdxd_or_tki_and_leaves_ihc_2plus_to_rule_10():
    assert run(her2_testing.positivity_not_confirmed, ihc("0"), drugs=["tdxd", "lapatinib"]) == []
    assert run(her2_testing.positivity_not_confirmed, ihc("2+"), drugs=["trastuzumab"]) == []
    (finding,) = run(her2_testing.positivity_not_confirmed, ihc("0"), drugs=["trastuzumab"])
    assert (finding.values["status"], finding.values["basis"]) == ("negative", "IHC 0 on 2026-03-02")


def test_rule_10_on_orders_only_with_a_her2_directed_drug_and_always_on_patient_view():
    assert run(her2_testing.equivocal_needs_ish, ihc("2+"), drugs=["paclitaxel"]) == []
    (finding,) = run(her2_testing.equivocal_needs_ish, ihc("2+"), drugs=["lapatinib"])
    assert finding.values["drugs"] == "lapatinib"
    (finding,) = run(her2_testing.equivocal_needs_ish, ihc("2+"), hook="patient-view")
    create = finding.suggestions[0].actions[0]
    assert create.resource["code"]["coding"][0]["code"] == "85318-4"
    assert create.resource["reasonReference"] == [{"reference": "Observation/ihc"}]
    assert run(her2_testing.equivocal_needs_ish, ihc("3+"), hook="patient-view") == []


def test_rule_11_accepts_positive_and_low_and_flags_zero_or_unknown():
    assert run(her2_testing.tdxd_her2_subtype, ihc("2+"), drugs=["tdxd"]) == []
    assert run(her2_testing.tdxd_her2_subtype, her2_low_diagnosis(), drugs=["tdxd"]) == []
    (zero,) = run(her2_testing.tdxd_her2_subtype, ihc("0"), drugs=["tdxd"])
    (unknown,) = run(her2_testing.tdxd_her2_subtype, drugs=["tdxd"])
    assert (zero.values["ihc_zero"], unknown.values["ihc_zero"]) == (True, False)


def dated_ihc(score, day):
    return {**ihc(score), "id": f"ihc-{day}", "effectiveDateTime": day}


def ish_presence(day, answer="LA6576-8"):
    return {"resourceType": "Observation", "id": f"fish-{day}", "status": "final", "effectiveDateTime": day,
            "code": {"coding": [{"system": LOINC, "code": "85318-4"}]},
            "valueCodeableConcept": {"coding": [{"system": LOINC, "code": answer}]}}


def refuted_her2_diagnosis(code, cid="dx"):
    return {"resourceType": "Condition", "id": cid, "subject": {"reference": "Patient/p"},
            "verificationStatus": {"coding": [{"code": "refuted"}]},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": code}]}}


def test_rule_9_does_not_count_a_refuted_her2_positive_diagnosis():
    (finding,) = run(her2_testing.positivity_not_confirmed, refuted_her2_diagnosis("427685000"), drugs=["trastuzumab"])
    assert finding.values["status"] == "unknown"
    confirmed = {**refuted_her2_diagnosis("427685000"), "verificationStatus": {"coding": [{"code": "confirmed"}]}}
    assert run(her2_testing.positivity_not_confirmed, confirmed, drugs=["trastuzumab"]) == []


def test_rule_11_does_not_count_a_refuted_her2_low_or_positive_diagnosis():
    for code in ("1381317004", "427685000"):
        (finding,) = run(her2_testing.tdxd_her2_subtype, refuted_her2_diagnosis(code), drugs=["tdxd"])
        assert finding.card == "her2-tdxd-subtype-unconfirmed"


def test_rule_9_reads_an_ish_ratio_value_just_below_2_as_not_final():
    ratio = {"resourceType": "Observation", "id": "ratio", "status": "final", "effectiveDateTime": "2026-03-02",
             "code": {"coding": [{"system": LOINC, "code": "49683-6"}]},
             "valueRatio": {"numerator": {"value": 499}, "denominator": {"value": 250}}}
    copies = {"resourceType": "Observation", "id": "copies", "status": "final", "effectiveDateTime": "2026-03-02",
              "code": {"coding": [{"system": LOINC, "code": "74860-8"}]}, "valueQuantity": {"value": 4.5}}
    (finding,) = run(her2_testing.positivity_not_confirmed, ratio, copies, drugs=["trastuzumab"])
    assert finding.values["status"] == "equivocal" and finding.values["needs_ihc_review"]
    over = {**ratio, "valueRatio": {"numerator": {"value": 500}, "denominator": {"value": 250}}}
    assert run(her2_testing.positivity_not_confirmed, over, copies, drugs=["trastuzumab"]) == []


def test_rule_10_reads_the_newest_ihc_2plus_even_after_an_older_positive_result():
    (finding,) = run(her2_testing.equivocal_needs_ish, dated_ihc("3+", "2024-01-10"), dated_ihc("2+", "2026-03-01"),
                     drugs=["trastuzumab"])
    assert finding.values["earlier_positive"] == "IHC 3+ on 2024-01-10 is HER2-positive"
    assert "Observation/ihc-2026-03-01" in finding.evidence
    assert "An earlier result was positive" in RENDERER.render(finding).detail
    # Rule 9 still reads the tumour as HER2-positive.
    assert run(her2_testing.positivity_not_confirmed, dated_ihc("3+", "2024-01-10"), dated_ihc("2+", "2026-03-01"),
               drugs=["trastuzumab"]) == []


def test_rule_10_is_silent_when_an_ish_of_that_day_or_later_completes_the_newest_ihc_2plus():
    older_positive = dated_ihc("3+", "2024-01-10")
    for ish in (ish_presence("2026-03-05"), ish_presence("2026-03-05", answer="LA6577-6")):
        assert run(her2_testing.equivocal_needs_ish, older_positive, dated_ihc("2+", "2026-03-01"), ish,
                   drugs=["trastuzumab"]) == []
    # The newest IHC is 3+: an older IHC 2+ asks for nothing.
    assert run(her2_testing.equivocal_needs_ish, dated_ihc("2+", "2024-01-10"), dated_ihc("3+", "2026-03-01"),
               hook="patient-view") == []


def test_rule_9_names_an_incomplete_ish_result_instead_of_saying_there_is_none():
    ratio = {"resourceType": "Observation", "id": "ratio", "status": "final", "effectiveDateTime": "2026-03-09",
             "code": {"coding": [{"system": LOINC, "code": "49683-6"}]}, "valueQuantity": {"value": 5.0}}
    (finding,) = run(her2_testing.positivity_not_confirmed, ratio, drugs=["trastuzumab"])
    assert finding.values["result_on_file"] is True
    card = RENDERER.render(finding)
    assert "HER2/CEP17 ratio 5, no copies-per-cell result" in card.detail
    assert "No HER2 test result" not in card.detail and card.summary.startswith("HER2 result incomplete")
    (none,) = run(her2_testing.positivity_not_confirmed, drugs=["trastuzumab"])
    assert RENDERER.render(none).summary.startswith("No HER2 result on file")


def ihc_recorded_as(answer_code: str) -> dict:
    return {**ihc("2+"), "valueCodeableConcept": {"coding": [{"system": LOINC, "code": answer_code}]}}


def ish(result_code: str, day: str = "2026-03-09") -> dict:
    return {"resourceType": "Observation", "id": "ish", "status": "final", "effectiveDateTime": day,
            "code": {"coding": [{"system": LOINC, "code": "85318-4"}]},
            "valueCodeableConcept": {"coding": [{"system": LOINC, "code": result_code}]}}


def test_an_ihc_recorded_as_equivocal_is_the_2plus_category_and_needs_reflex_ish():
    equivocal = ihc_recorded_as("LA11885-3")
    (finding,) = run(her2_testing.equivocal_needs_ish, equivocal, hook="patient-view")
    card = RENDERER.render(finding)
    assert card.summary == "HER2 IHC recorded as equivocal and ISH is missing or incomplete: order reflex ISH"
    assert "IHC equivocal on 2026-03-02" in card.detail
    (finding,) = run(her2_testing.equivocal_needs_ish, equivocal, drugs=["trastuzumab"])
    assert RENDERER.render(finding).summary.endswith("order reflex ISH before trastuzumab")
    # Rule 10 speaks for it on an order, as for IHC 2+; rule 9 stays silent.
    assert run(her2_testing.positivity_not_confirmed, equivocal, drugs=["trastuzumab"]) == []
    # Near misses: ISH not amplified completes it (HER2-negative, then rule 9); an IHC recorded as negative is no 2+.
    assert run(her2_testing.equivocal_needs_ish, equivocal, ish("LA6577-6"), hook="patient-view") == []
    (finding,) = run(her2_testing.positivity_not_confirmed, equivocal, ish("LA6577-6"), drugs=["trastuzumab"])
    assert finding.values["status"] == "negative"
    assert run(her2_testing.equivocal_needs_ish, ihc_recorded_as("LA6577-6"), hook="patient-view") == []


def test_an_ihc_recorded_as_equivocal_with_ish_not_amplified_is_her2_low_for_tdxd():
    equivocal = ihc_recorded_as("LA11885-3")
    assert run(her2_testing.tdxd_her2_subtype, equivocal, ish("LA6577-6"), drugs=["tdxd"]) == []
    # Near miss: an IHC recorded as negative (0 or 1+ unknown) leaves the subtype unconfirmed.
    (finding,) = run(her2_testing.tdxd_her2_subtype, ihc_recorded_as("LA6577-6"), drugs=["tdxd"])
    assert finding.values["ihc_zero"] is False


def ihc_as_text(text: str = "3+") -> dict:
    return {"resourceType": "Observation", "id": "ihc-text", "status": "final", "effectiveDateTime": "2026-03-02",
            "code": {"coding": [{"system": LOINC, "code": "85319-2"}]}, "valueString": text}


def test_rule_9_names_an_ihc_recorded_as_text_instead_of_saying_there_is_no_result():
    (finding,) = run(her2_testing.positivity_not_confirmed, ihc_as_text(), drugs=["trastuzumab"])
    card = RENDERER.render(finding)
    assert card.summary.startswith("HER2 result incomplete or unreadable")
    # The renderer escapes "+" for markdown.
    assert 'IHC on 2026-03-02 recorded as "3\\+"' in card.detail and "No HER2 test result" not in card.detail
    # Near miss: nothing on file at all is still said so.
    (none,) = run(her2_testing.positivity_not_confirmed, drugs=["trastuzumab"])
    assert none.values["result_on_file"] is False and RENDERER.render(none).summary.startswith("No HER2 result on file")


def test_rule_11_names_an_ihc_recorded_as_text_in_its_basis():
    (finding,) = run(her2_testing.tdxd_her2_subtype, ihc_as_text("1+"), drugs=["tdxd"])
    assert 'recorded as "1\\+"' in RENDERER.render(finding).detail


def ratio_and_copies(day, ratio, copies=None):
    found = [{"resourceType": "Observation", "id": f"ratio-{day}", "status": "final", "effectiveDateTime": day,
              "code": {"coding": [{"system": LOINC, "code": "49683-6"}]}, "valueQuantity": {"value": ratio}}]
    if copies is not None:
        found.append({"resourceType": "Observation", "id": f"copies-{day}", "status": "final", "effectiveDateTime": day,
                      "code": {"coding": [{"system": LOINC, "code": "74860-8"}]}, "valueQuantity": {"value": copies}})
    return found


def test_rule_10_is_silent_when_a_later_ratio_without_copies_follows_a_complete_ish():
    complete, later_partial = ratio_and_copies("2026-03-05", 1.4, 2.8), ratio_and_copies("2026-03-10", 2.5)
    assert run(her2_testing.equivocal_needs_ish, ihc("2+"), *complete, *later_partial, hook="patient-view") == []
    # Rule 9 then reads the tumour as HER2-negative (IHC 2+, ISH group 5).
    (finding,) = run(her2_testing.positivity_not_confirmed, ihc("2+"), *complete, *later_partial, drugs=["trastuzumab"])
    assert finding.values["status"] == "negative"
    # Near miss: the partial ISH alone does not complete the IHC 2+.
    (finding,) = run(her2_testing.equivocal_needs_ish, ihc("2+"), *later_partial, hook="patient-view")
    assert "no copies-per-cell result" in finding.values["ish"]
