"""Rules 31-33: ILD/pneumonitis with T-DXd, T-DM1 or a trastuzumab product, one card per drug."""
from __future__ import annotations

from cds_hooks.rules.pulmonary import ild_with_her2_therapy

from .test_hepatic import RX, TDM1_DRAFT, context

ILD = {"resourceType": "Condition", "id": "ild", "subject": {"reference": "Patient/p"},
       "clinicalStatus": {"coding": [{"code": "active"}]},
       "code": {"coding": [{"system": "http://snomed.info/sct", "code": "233703007"}]},
       "stage": [{"summary": {"text": "Grade 1"}}]}


def draft(did, concept):
    return {**TDM1_DRAFT, "id": did, "medicationCodeableConcept": concept}


TDXD = draft("tdxd", {"coding": [{"system": RX, "code": "2267576"}], "text": "Enhertu"})
PHESGO = draft("phesgo", {"text": "Phesgo"})
PERTUZUMAB = draft("pertuzumab", {"coding": [{"system": RX, "code": "1298944"}]})


def test_each_drug_gets_its_own_card_and_orders_are_merged():
    findings = {f.card: f for f in ild_with_her2_therapy(context(ILD, drafts=(TDXD, TDM1_DRAFT, PHESGO)))}
    assert set(findings) == {"pulmonary-tdxd-ild", "pulmonary-tdm1-ild", "pulmonary-trastuzumab-ild"}
    assert findings["pulmonary-tdxd-ild"].values["grade"] == 1
    assert findings["pulmonary-trastuzumab-ild"].suggestions[0].actions[0].resource_id == "MedicationRequest/phesgo"


def test_no_card_without_ild_or_for_pertuzumab_alone():
    assert list(ild_with_her2_therapy(context(drafts=(TDXD,)))) == []
    assert list(ild_with_her2_therapy(context(ILD, drafts=(PERTUZUMAB,)))) == []


def test_unverified_icd10_candidate_is_not_read_as_ild():
    icd_only = {**ILD, "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "J84.9"}]}}
    assert list(ild_with_her2_therapy(context(icd_only, drafts=(TDXD,)))) == []
