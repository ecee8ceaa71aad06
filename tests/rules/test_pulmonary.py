"""Rules 31-33: ILD/pneumonitis with T-DXd or T-DM1, one rule and card per drug; trastuzumab after ILD, ARDS, anaphylaxis or
angioedema."""
from __future__ import annotations

from cds_hooks.rules.pulmonary import tdm1_ild, tdxd_ild, trastuzumab_discontinuation

from .test_hepatic import RX, SCT, TDM1_DRAFT, context

ILD = {"resourceType": "Condition", "id": "ild", "subject": {"reference": "Patient/p"},
       "clinicalStatus": {"coding": [{"code": "active"}]},
       "code": {"coding": [{"system": SCT, "code": "233703007"}]},
       "stage": [{"summary": {"text": "Grade 1"}}]}
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
