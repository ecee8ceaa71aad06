"""Every fixture case in fixtures/cases, over real HTTP: once with full prefetch, once fetched from a FHIR server; and
the whole folder through `cds-hooks test`, as a hospital runs its own cases."""
from __future__ import annotations

import json
import shutil
from datetime import date, timedelta
import xml.etree.ElementTree as ElementTree

import pytest

from cds_hooks.cases import CASE_KINDS, CaseError, card_id, check_response, load_case, load_cases
from cds_hooks.engine import Engine
from cds_hooks.memory_fhir import searchset
from cds_hooks.protocol.request import parse_hook_request
from cds_hooks.rules import REGISTRY
from cds_hooks.scope import concerns_checks
from cds_hooks.services import OBSERVATION_KEYS
from cds_hooks.settings import Settings
from cds_hooks.terminology import RXNORM

from .conftest import FIXTURES, SERVICE_LOG, LiveServer
from .fhir_server import FhirTestServer
from .test_case_runner import PATIENT
from .test_cli import REQUEST, run_cli

CASES = load_cases([FIXTURES / "cases"])


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_case_with_full_prefetch(live_server: LiveServer, case):
    response = live_server.post(f"/cds-services/{case.service_id}", case.request_for("full"))
    assert check_response(case, response.status_code, response.json()) == []


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_case_fetched_from_fhir_server(live_server: LiveServer, case):
    with FhirTestServer(resources=case.store.resources, page_size=5) as fhir:
        request = case.request_for("none", fhir.base_url)
        response = live_server.post(f"/cds-services/{case.service_id}", request)
        if concerns_checks(parse_hook_request(request, request["hook"])):
            assert fhir.requests, "the service should have fetched the missing prefetch"
        else:
            assert not fhir.requests, "an order no check reads needs no record (scope.py)"
    assert check_response(case, response.status_code, response.json()) == []


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> Engine:
    return Engine(Settings(database_path=tmp_path_factory.mktemp("db") / "service.sqlite3", auth_required=False))


PREFETCHED_CASES = [case for case in CASES if case.store is not None and "prefetch" not in case.request]


@pytest.mark.parametrize("case", PREFETCHED_CASES, ids=[case.name for case in PREFETCHED_CASES])
def test_case_from_a_server_that_ignores_the_code_parameter(engine: Engine, case):
    # Each value set is read from the key that asked for its codes (record.build_record); a server that ignores
    # `code` puts every Observation under each of those keys, and the cards must be the same.
    request = case.request_for("full")
    observations = [r for r in case.store.resources if r.get("resourceType") == "Observation"]
    for key in OBSERVATION_KEYS:
        request["prefetch"][key] = searchset([dict(r) for r in observations], [])
    assert check_response(case, 200, engine.evaluate(case.service_id, request).body) == []


# What a long local product description adds to each RxNorm-coded drug's name (it names no drug itself): every name
# is then over 120 characters, as the record's own names can be ("trastuzumab-pkrb 150 MG Injection [Herzuma]").
LONG_NAME_TAIL = " as written in this hospital's formulary with its local product description" * 2


def with_long_drug_names(value):
    """The request with the text of each RxNorm-coded medication (drafts and the record alike) made long."""
    if isinstance(value, list):
        return [with_long_drug_names(item) for item in value]
    if not isinstance(value, dict):
        return value
    copy = {key: with_long_drug_names(item) for key, item in value.items()}
    codings = [c for c in value.get("coding") or () if isinstance(c, dict) and c.get("system") == RXNORM]
    if codings:
        copy["text"] = (value.get("text") or codings[0].get("display") or "") + LONG_NAME_TAIL
    return copy


# Each card whose summary names drugs from the record, a case that shows it, and what the summary says before the
# first of those names: its action, and the values that go with it.
SUMMARIES_NAMING_DRUGS = [
    ("anthracycline-after-trastuzumab", "anthracycline-doxorubicin-127-days-after-last-trastuzumab",
     "The labels advise avoiding anthracyclines within ~7 months of the last trastuzumab dose; "),
    ("cardiac-heart-failure-her2-therapy", "cardiac-heart-failure-with-first-line-trastuzumab",
     "Review cardiac risk before this dose: Congestive heart failure on record; "),
    ("cardiac-lvef-baseline-unknown", "cardiac-lvef-baseline-unknown-tdxd-43",
     "The hold rule cannot be applied: LVEF 43% with no pretreatment LVEF on record; "),
    ("cardiac-lvef-hold-tdm1", "cardiac-lvef-hold-tdm1-metastatic-below-40", "Hold T-DM1: LVEF 38% on 2026-11-02, down 22 points; "),
    ("cardiac-lvef-hold-tdxd", "cardiac-lvef-hold-tdxd-drop-over-20", "Interrupt T-DXd: LVEF 42% on 2026-11-02, down 22 points; "),
    ("cardiac-lvef-hold-trastuzumab-pertuzumab", "cardiac-lvef-hold-trastuzumab-pertuzumab-drop-18",
     "Withhold trastuzumab and pertuzumab: LVEF 44% on 2026-11-02, down 18 points from baseline; "),
    ("cardiac-lvef-newest-unusable", "cardiac-lvef-newest-record-unitless-fraction-on-tdm1-named",
     "A newer LVEF record could not be used; last usable LVEF 55% on 2026-07-13; "),
    ("cardiac-lvef-newest-unusable", "cardiac-lvef-newest-record-unitless-fraction-on-patient-view-named",
     "A newer LVEF record could not be used; last usable LVEF 62% on "),
    ("cardiac-lvef-repeat-tdm1", "cardiac-lvef-repeat-tdm1-metastatic-43-down-7",
     "T-DM1 may continue: LVEF 43% on 2026-11-02; repeat LVEF within 3 weeks; "),
    ("cardiac-lvef-repeat-tdxd", "cardiac-lvef-repeat-tdxd-43-down-7",
     "T-DXd may continue: LVEF 43% on 2026-11-02; repeat LVEF within 3 weeks; "),
    ("dosing-agent-not-identified", "dosing-trastuzumab-and-tdm1-codes-not-identified",
     "Check the product: not identified, so HER2 agent and anthracycline checks did not run for "),
    ("dosing-dose-not-checked", "dosing-tdm1-weight-outdated",
     "Dose not fully checked: needs a current weight, a structured dose or a dated last dose; "),
    ("dosing-iv-product-subcutaneous-route", "dosing-iv-trastuzumab-600mg-subcutaneous-route",
     "Confirm the product and route - IV product ordered by the subcutaneous route: "),
    ("dosing-pertuzumab-without-trastuzumab", "dosing-pertuzumab-first-dose-drafted-without-trastuzumab",
     "Pertuzumab is given with trastuzumab and held or stopped with it: no trastuzumab drafted or running with "),
    ("dosing-product-substitution", "dosing-tdm1-at-trastuzumab-loading-dose",
     "Do not substitute - verify product and dose (may be the wrong HER2 product): "),
    ("dosing-subcutaneous-product", "dosing-hylecta-ordered-by-weight", "Confirm the dose and route - subcutaneous fixed-dose product: "),
    ("pregnancy-contraception-counselling", "pregnancy-contraception-at-first-signing",
     "Counsel on contraception during treatment and for 7 months after the last dose: starting "),
    ("pregnancy-status-before-her2-start", "anthracycline-entered-in-error-is-ignored",
     "Verify pregnancy status: no readable pregnancy test within 7 days before the dose; "),
    ("pregnancy-status-before-her2-start", "pregnancy-next-dose-eleven-months-after-positive-hcg",
     "Verify pregnancy status: last pregnancy test positive ("),
    ("pulmonary-tdxd-resumption-after-grade-1-ild", "pulmonary-tdxd-after-grade-1-ild-resolved-in-49-days",
     "Reduce T-DXd one dose level: grade 1 ILD/pneumonitis, 49 days to resolve; "),
    ("pulmonary-tdxd-resumption-after-grade-1-ild", "pulmonary-tdxd-after-grade-1-ild-resolution-undated",
     "Check the T-DXd dose level: grade 1 ILD/pneumonitis, time to resolution not recorded; "),
    ("sequencing-metastatic-no-fixed-duration", "sequencing-metastatic-trastuzumab-six-cycles",
     "In metastatic disease continue until progression or unacceptable toxicity; ordered as a fixed course (6 doses): "),
    ("sequencing-metastatic-no-fixed-duration", "sequencing-fixed-course-setting-unknown",
     "If metastatic, continue until progression or unacceptable toxicity; ordered as a fixed course (6 doses): "),
]


@pytest.mark.parametrize("card, case_name, action", SUMMARIES_NAMING_DRUGS, ids=[f"{c}:{n}" for c, n, _ in SUMMARIES_NAMING_DRUGS])
def test_the_140_character_cut_of_a_summary_takes_only_the_drug_names_that_end_it(engine: Engine, card, case_name, action):
    # CDS Hooks caps a summary below 140 characters (render._summary cuts it); the record's drug names come last.
    (case,) = [c for c in CASES if c.name == case_name]

    def summary(request) -> str:
        (text,) = [c["summary"] for c in engine.evaluate(case.service_id, request).body["cards"] if card_id(c) == card]
        return text

    whole = summary(case.request_for("full"))
    cut = summary(with_long_drug_names(case.request_for("full")))
    assert whole.startswith(action) and len(whole) < 140 and not whole.endswith("…")
    # The two agree up to the end of the first drug name, whose long form then runs on to the cut.
    name_ends = cut.find(LONG_NAME_TAIL[:8])
    assert len(action) <= name_ends and cut[:name_ends] == whole[:name_ends]
    assert len(cut) < 140 and cut.endswith("…") and LONG_NAME_TAIL.startswith(cut[name_ends:-1])


@pytest.mark.parametrize("rule", REGISTRY, ids=[rule.id for rule in REGISTRY])
def test_every_rule_has_a_firing_a_near_miss_and_a_missing_data_case(rule):
    kinds = {case.kind for case in CASES if case.rule == rule.id}
    assert kinds >= set(CASE_KINDS), f"{rule.id} lacks cases of kind {set(CASE_KINDS) - kinds}"


def test_cases_name_registered_rules_and_their_cards():
    rules = {rule.id: rule for rule in REGISTRY}
    for case in CASES:
        if case.rule is None:
            continue
        assert case.rule in rules, f"{case.name} names unknown rule {case.rule}"
        named = {e["card"] for e in case.expect.cards} | set(case.expect.absent)
        assert named & set(rules[case.rule].cards), f"{case.name} expects none of {case.rule}'s cards"


def test_the_fixture_suite_passes_through_cds_hooks_test(tmp_path):
    result = run_cli("test", str(FIXTURES / "cases"), "--junit", str(tmp_path / "junit" / "cases.xml"), cwd=tmp_path)
    SERVICE_LOG.add_output(result.stderr)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.splitlines()[-1] == f"{len(CASES)} passed, 0 failed"
    suite = ElementTree.parse(tmp_path / "junit" / "cases.xml").getroot()
    assert (suite.get("tests"), suite.get("failures")) == (str(len(CASES)), "0")
    assert {case.get("name") for case in suite.iter("testcase")} == {case.name for case in CASES}




def test_a_case_written_for_an_earlier_day_moves_its_dates_forward(tmp_path):
    written_on = date.today() - timedelta(days=100)
    patient = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Patient", "id": "p", "birthDate": "1987-05-02"}},
        {"resource": {"resourceType": "MedicationAdministration", "id": "a", "status": "completed",
                      "subject": {"reference": "Patient/p"}, "effectivePeriod": {"start": "2026-10-26T09:30:00+01:00"},
                      "note": [{"text": "2026-10-26 in a note is text"}], "medicationCodeableConcept": {"text": "2026"}}},
    ]}
    draft = {"resourceType": "MedicationRequest", "id": "d", "status": "draft", "intent": "order", "subject": {"reference": "Patient/p"},
             "authoredOn": "2026-11-22", "medicationCodeableConcept": {"text": "trastuzumab"}}
    (tmp_path / "patient.json").write_text(json.dumps(patient))
    (tmp_path / "case.json").write_text(json.dumps({
        "hook": "order-select", "patient": "patient.json", "written_on": written_on.isoformat(), "draftOrders": [draft],
        "expect": {"absent": ["x"]},
    }))
    case = load_case(tmp_path / "case.json")
    stored = {resource["id"]: resource for resource in case.store.resources}
    assert stored["p"]["birthDate"] == "1987-08-10"
    assert stored["a"]["effectivePeriod"]["start"] == "2027-02-03T09:30:00+01:00"
    assert stored["a"]["note"][0]["text"] == "2026-10-26 in a note is text"
    assert stored["a"]["medicationCodeableConcept"]["text"] == "2026"
    assert case.request["context"]["draftOrders"]["entry"][0]["resource"]["authoredOn"] == "2027-03-02"


def test_a_case_can_be_a_whole_request_read_from_a_file(tmp_path):
    shutil.copy(REQUEST, tmp_path / REQUEST.name)
    (tmp_path / "case.json").write_text(json.dumps({"request": REQUEST.name, "expect": {"absent": ["x"]}}))
    case = load_case(tmp_path / "case.json")
    assert case.service_id == "her2-order-sign" and case.store is None
    assert case.request_for("full") == json.loads(REQUEST.read_text())


BROKEN_CASES = {
    "not JSON": ("{not json", "Expecting property name"),
    "not an object": ([], "a case is an object with an 'expect' object"),
    "bad written_on": ({"hook": "patient-view", "patient": "p.json", "written_on": "22/11/2026", "expect": {"empty": True}},
                       "written_on is a date such as 2026-11-22"),
    "no expectation": ({"hook": "patient-view", "patient": "p.json", "expect": {}}, "it would always pass"),
    "unknown expectation": ({"hook": "patient-view", "patient": "p.json", "expect": {"cards": [], "present": ["x"]}},
                            "expect knows only cards, absent and empty, not present"),
    "unknown indicator": ({"hook": "patient-view", "patient": "p.json", "expect": {"cards": [{"card": "x", "indicator": "urgent"}]}},
                          "expect.cards is a list"),
    "absent not a list": ({"hook": "patient-view", "patient": "p.json", "expect": {"absent": "x"}}, "expect.absent is a list"),
    "empty and cards": ({"hook": "patient-view", "patient": "p.json", "expect": {"empty": True, "cards": [{"card": "x"}]}},
                        "contradicts"),
    "patient not a path": ({"hook": "patient-view", "patient": {"resourceType": "Bundle"}, "expect": {"empty": True}},
                           "'patient' must be a string"),
    "missing patient": ({"hook": "patient-view", "patient": "nowhere.json", "expect": {"empty": True}}, "cannot read"),
    "patient not a Bundle": ({"hook": "patient-view", "patient": "not-a-bundle.json", "expect": {"empty": True}},
                             "is not a FHIR Bundle"),
    "drafts without ids": ({"hook": "order-sign", "patient": "p.json", "draftOrders": [{"resourceType": "MedicationRequest"}],
                            "expect": {"empty": True}}, "draftOrders is a list of FHIR resources"),
    "selections not references": ({"hook": "order-select", "patient": "p.json", "draftOrders": [], "selections": [1],
                                   "expect": {"empty": True}}, "selections is a list of references"),
    "request not an object": ({"request": ["hook"], "expect": {"empty": True}}, "'request' is a CDS Hooks request object"),
    "request the service refuses": ({"request": {"hook": "patient-view", "context": {"userId": "Practitioner/1", "patientId": "1"}},
                                     "expect": {"empty": True}}, "hookInstance is required"),
    "unknown hook": ({"hook": "encounter-start", "patient": "p.json", "expect": {"empty": True}}, "no service for hook"),
    "unknown kind": ({"hook": "patient-view", "patient": "p.json", "kind": "maybe", "expect": {"empty": True}}, "kind must be"),
}


@pytest.mark.parametrize("name", BROKEN_CASES)
def test_a_case_that_cannot_pass_is_refused_naming_its_file(tmp_path, name):
    content, message = BROKEN_CASES[name]
    shutil.copy(PATIENT, tmp_path / "p.json")
    (tmp_path / "not-a-bundle.json").write_text('{"resourceType": "Patient"}')
    (tmp_path / "case.json").write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(CaseError) as refused:
        load_case(tmp_path / "case.json")
    assert str(refused.value).startswith(f"{tmp_path / 'case.json'}: ") and message in str(refused.value)
