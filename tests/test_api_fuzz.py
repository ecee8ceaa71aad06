"""Property-based fuzzing of the HTTP API over real HTTP (Hypothesis): whatever the body and content type, the answer
is never a 5xx, always strict JSON with a documented status, and a 200 is a card response as /openapi.json says.

Bodies range from arbitrary JSON and non-JSON bytes to fixture requests with a few things broken: odd context
fields, malformed prefetch resources, draft orders with odd medication codings and dosage shapes, huge numbers,
unicode and nulls. The number of examples comes from the Hypothesis profile in conftest.py.
"""
from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from typing import Any, Callable

import hypothesis
import pytest
import requests
import yaml
from hypothesis import strategies as st

from cds_hooks import terminology
from cds_hooks.cases import load_cases
from cds_hooks.record import CONDITION_VALUE_SETS, OBSERVATION_VALUE_SETS
from cds_hooks.services import PREFETCH, SERVICES
from cds_hooks.settings import Settings

from .conftest import FIXTURES, LiveServer
from .test_openapi import response_validator

SERVICE_PATHS = [f"/cds-services/{service.id}" for service in SERVICES]
FEEDBACK_PATHS = [path + "/feedback" for path in SERVICE_PATHS]
UNKNOWN_SERVICE_PATH = "/cds-services/no-such-service"
# One server serves every example of a test: that is the point, so the function-scoped fixture check is off.
ONE_SERVER_PER_TEST = hypothesis.settings(suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture])


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Fuzzed requests name arbitrary fhirServers: allowing none keeps every call on this machine, and fast.
    return settings.replace(development_mode=False)


# --- the property --------------------------------------------------------------------------------------------------


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def assert_documented_answer(response: requests.Response, path: str, document: dict[str, Any]) -> None:
    """Never a 5xx; strict JSON (no NaN or Infinity); a documented status; the documented body for it."""
    assert response.status_code < 500, f"{response.status_code} from {path}: {response.text[:500]}"
    assert response.headers["Content-Type"] == "application/json"
    body = json.loads(response.content, parse_constant=_refuse_constant)
    documented_path = path if path in document["paths"] else "/cds-services/{service_id}"
    assert str(response.status_code) in document["paths"][documented_path]["post"]["responses"], (
        f"undocumented {response.status_code} from {path}: {response.text[:500]}"
    )
    if response.status_code != 200:
        schema = "ErrorBody"
    else:
        schema = "FeedbackStored" if path.endswith("/feedback") else "CdsServiceResponse"
    errors = sorted(response_validator(document, schema).iter_errors(body), key=str)
    assert not errors, f"{path} answered {response.status_code} with a body that breaks {schema}: {errors[0]}"


# --- odd values ----------------------------------------------------------------------------------------------------

# Number literals json.dumps cannot write: integers past Python's 4,300-digit parsing limit, floats out of range,
# and the NaN and Infinity that Python's parser accepts although JSON has no such values. They travel as
# placeholder strings that `encode` replaces with the bare literal.
_RAW_LITERAL = "\x00raw-literal:"


@st.composite
def raw_number_literal(draw: st.DrawFn) -> str:
    digits = draw(st.one_of(st.sampled_from([309, 4300, 4301, 6000]), st.integers(min_value=300, max_value=6000)))
    huge = draw(st.sampled_from(["", "-"])) + "9" * digits + draw(st.sampled_from(["", ".5", "e400", "e-400"]))
    return _RAW_LITERAL + draw(st.one_of(st.just(huge), st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e999"])))


def encode(value: Any) -> bytes:
    """JSON text for a generated value, with the raw-literal placeholders written as bare literals."""
    text = json.dumps(value, ensure_ascii=False)
    marker = '"\\u0000raw-literal:'  # how json.dumps writes the placeholder's opening quote and \x00
    while marker in text:
        start = text.index(marker)
        end = text.index('"', start + 1)
        text = text[:start] + text[start + len(marker):end] + text[end + 1:]
    return text.encode()




def mostly(valid: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`valid` nine times in ten, else `odd`: a near-valid request breaks in a few places, so most calls get past
    validation to the record, the facts and the rules."""
    return st.integers(0, 9).flatmap(lambda roll: odd if roll == 0 else valid)


numbers = mostly(
    st.one_of(st.integers(min_value=-(10**6), max_value=10**6), st.floats(allow_nan=False, allow_infinity=False),
              st.sampled_from([0, -0.0, 0.1, 1e308, -1e308, 5e-324, 2**63, -(2**63) - 1, 10**30])),
    raw_number_literal(),
)
texts = st.one_of(
    st.text(max_size=30),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=100, max_size=400),
    st.sampled_from(["", " ", "\u202e\u0644\u0627", "🧬💊" * 40, "trastuzumab\u200b", "null", "None", "<script>x</script>",
                     "{{ 7*7 }}", "../../etc/passwd", "Patient/", "/", "MedicationRequest/", "x" * 1000]),
)
dates = mostly(
    st.one_of(st.dates().map(str), st.datetimes().map(lambda moment: moment.isoformat() + "Z")),
    st.sampled_from(["2026-02-30", "0000-01-01", "9999-12-31T23:59:60Z", "2026", "2026-13", "2026-11-22T25:00:00",
                     "1e3", "yesterday", "2026-11-22T10:00:00+99:00", "-2026-01-01"]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts, dates)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(texts, children, max_size=5),
    max_leaves=25,
)
odd_values = st.one_of(scalars, json_values, st.just([]), st.just({}), st.just([None]))


# --- FHIR-shaped odd values ----------------------------------------------------------------------------------------

RXNORM = terminology.RXNORM
ATC_SYSTEMS = [terminology.ATC, "http://www.whocc.no/atc/", "urn:oid:2.16.840.1.113883.6.73"]


@cache
def medication_codes() -> tuple[list[tuple[str, str]], list[str]]:
    """Every (system, code) and drug name of cds_hooks/data/medications.yaml, the codes the service recognises."""
    data = yaml.safe_load(resources.files("cds_hooks").joinpath("data", "medications.yaml").read_text("utf-8"))
    codes: list[tuple[str, str]] = []
    names: list[str] = []
    for ingredient in data["ingredients"].values():
        codes += [(RXNORM, entry["code"]) for entry in ingredient.get("rxnorm", [])]
        codes += [(system, code) for code in ingredient.get("atc", []) for system in ATC_SYSTEMS]
        names += ingredient.get("names", [])
    return codes, names


@cache
def clinical_codes() -> list[tuple[str, str]]:
    return [pair for name in OBSERVATION_VALUE_SETS + CONDITION_VALUE_SETS for pair in terminology.value_set_codes(name)]


@st.composite
def medication_concept(draw: st.DrawFn) -> Any:
    codes, names = medication_codes()
    coding = mostly(st.one_of(
        st.sampled_from(codes).map(lambda pair: {"system": pair[0], "code": pair[1]}),
        st.fixed_dictionaries({}, optional={"system": mostly(st.sampled_from([RXNORM, *ATC_SYSTEMS]), odd_values),
                                            "code": mostly(st.sampled_from(codes).map(lambda p: p[1]), odd_values),
                                            "display": st.one_of(st.sampled_from(names), texts)}),
    ), odd_values)
    return draw(mostly(
        st.fixed_dictionaries({}, optional={"coding": mostly(st.lists(coding, max_size=4), odd_values),
                                            "text": mostly(st.one_of(st.sampled_from(names), texts), odd_values)}),
        odd_values,
    ))


quantities = st.fixed_dictionaries({}, optional={
    "value": mostly(numbers, odd_values),
    "unit": st.one_of(st.sampled_from(["mg", "mg/kg", "mg/m2", "g", "mcg", "%", "10*3/uL", "U/L", "kg", "cm", "m2"]), texts),
    "system": st.one_of(st.just("http://unitsofmeasure.org"), texts),
    "code": st.one_of(st.sampled_from(["mg", "mg/kg", "mg/m2", "kg", "cm", "%"]), texts),
})
dosages = st.fixed_dictionaries({}, optional={
    "timing": mostly(st.fixed_dictionaries({"repeat": st.fixed_dictionaries({}, optional={
        "boundsPeriod": st.fixed_dictionaries({}, optional={"start": dates, "end": dates}),
        "frequency": mostly(numbers, odd_values),
        "period": mostly(numbers, odd_values),
        "periodUnit": mostly(st.sampled_from(["d", "wk", "mo", "h", "a"]), texts),
    })}), odd_values),
    "route": mostly(st.sampled_from([{"text": "intravenous"}, {"text": "subcutaneous"}]), odd_values),
    "doseAndRate": mostly(st.lists(st.fixed_dictionaries({}, optional={"doseQuantity": quantities,
                                                                       "doseRange": odd_values}), max_size=2), odd_values),
    "doseQuantity": mostly(quantities, odd_values),  # STU3 and DSTU2 put it here
    "text": texts,
})


@st.composite
def draft_order(draw: st.DrawFn, patient_id: str) -> dict[str, Any]:
    order: dict[str, Any] = {
        "resourceType": draw(st.sampled_from(["MedicationRequest", "MedicationRequest", "MedicationOrder"])),
        "id": draw(mostly(st.from_regex(r"[A-Za-z0-9\-.]{1,64}", fullmatch=True), odd_values)),
        "status": draw(st.sampled_from(["draft", "active", "entered-in-error", "bogus"])),
        "intent": "order",
        "subject": draw(mostly(st.just({"reference": f"Patient/{patient_id}"}), odd_values)),
        "authoredOn": draw(dates),
        "medicationCodeableConcept": draw(medication_concept()),
        "dosageInstruction": draw(mostly(st.one_of(st.lists(dosages, max_size=3), dosages), odd_values)),
    }
    if draw(st.booleans()):
        # A referenced Medication instead of a concept, contained or not, resolvable or not.
        medication_id = draw(st.sampled_from(["med", "missing"]))
        order["medicationReference"] = {"reference": draw(st.sampled_from([f"#{medication_id}", f"Medication/{medication_id}",
                                                                           "https://ehr/fhir/Medication/med"])),
                                        "display": draw(st.one_of(st.sampled_from(medication_codes()[1]), texts))}
        order["contained"] = [{"resourceType": "Medication", "id": "med", "code": order.pop("medicationCodeableConcept")}]
    return order


@st.composite
def record_resource(draw: st.DrawFn, patient_id: str) -> dict[str, Any]:
    """An Observation, Condition or medication record whose code the rules read, with odd values and dates."""
    system, code = draw(st.sampled_from(clinical_codes()))
    subject = {"reference": f"Patient/{patient_id}"}
    kind = draw(st.sampled_from(["Observation", "Condition", "MedicationStatement", "MedicationAdministration"]))
    resource: dict[str, Any] = {"resourceType": kind, "id": draw(st.from_regex(r"[A-Za-z0-9]{1,12}", fullmatch=True)),
                                "subject": subject}
    if kind == "Observation":
        resource |= {"status": draw(st.sampled_from(["final", "amended", "preliminary", "entered-in-error"])),
                     "code": {"coding": [{"system": system, "code": code}]},
                     "effectiveDateTime": draw(dates)}
        resource |= draw(st.one_of(
            st.fixed_dictionaries({"valueQuantity": quantities}),
            st.fixed_dictionaries({"valueCodeableConcept": st.fixed_dictionaries({"coding": st.lists(
                st.sampled_from(clinical_codes()).map(lambda pair: {"system": pair[0], "code": pair[1]}), max_size=2)})}),
            st.fixed_dictionaries({"valueString": texts}),
            st.fixed_dictionaries({"component": st.lists(st.fixed_dictionaries({
                "code": st.sampled_from(clinical_codes()).map(lambda pair: {"coding": [{"system": pair[0], "code": pair[1]}]}),
                "valueQuantity": quantities}), max_size=3)}),
            st.fixed_dictionaries({"referenceRange": st.lists(st.fixed_dictionaries({}, optional={
                "low": quantities, "high": quantities}), max_size=2), "valueQuantity": quantities}),
        ))
    elif kind == "Condition":
        resource |= {"code": {"coding": [{"system": system, "code": code}]},
                     "clinicalStatus": {"coding": [{"code": draw(st.sampled_from(["active", "resolved", "remission", "x"]))}]},
                     "onsetDateTime": draw(dates)}
        if draw(st.booleans()):
            resource["abatementDateTime"] = draw(dates)
    else:
        resource |= {"status": draw(st.sampled_from(["active", "completed", "stopped", "entered-in-error"])),
                     "medicationCodeableConcept": draw(medication_concept())}
        resource |= draw(st.one_of(
            st.fixed_dictionaries({"effectiveDateTime": dates}),
            st.fixed_dictionaries({"effectivePeriod": st.fixed_dictionaries({}, optional={"start": dates, "end": dates})}),
        ))
        if kind == "MedicationAdministration":
            resource["dosage"] = draw(st.fixed_dictionaries({}, optional={"dose": quantities, "route": odd_values}))
        else:
            resource["dosage"] = draw(st.lists(dosages, max_size=2))
    return resource


# --- near-valid requests: a fixture request with a few things broken --------------------------------------------


@cache
def fixture_requests() -> list[tuple[str, dict[str, Any]]]:
    """Every fixture case as a complete request (full prefetch), with the service it goes to."""
    return [(case.service_id, case.request_for("full")) for case in load_cases([FIXTURES / "cases"])]


def _object(value: Any) -> dict[str, Any]:
    """`value` if it is a JSON object (an earlier mutation may have replaced it), else an empty one."""
    return value if isinstance(value, dict) else {}


def _resources(request: dict[str, Any]) -> list[dict[str, Any]]:
    """Every FHIR resource dict of the request, prefetch and draft orders, for mutating in place."""
    found: list[dict[str, Any]] = []
    containers = [*_object(request.get("prefetch")).values(), _object(request.get("context")).get("draftOrders")]
    for container in containers:
        if not isinstance(container, dict):
            continue
        entries = container.get("entry") if container.get("resourceType") == "Bundle" else None
        if isinstance(entries, list):
            found += [entry["resource"] for entry in entries if isinstance(entry, dict) and isinstance(entry.get("resource"), dict)]
        elif container.get("resourceType") != "Bundle":
            found.append(container)
    return found


def _patient_id(request: dict[str, Any]) -> str:
    patient_id = _object(request.get("context")).get("patientId")
    return patient_id if isinstance(patient_id, str) else "someone"


def break_top_level(draw: st.DrawFn, request: dict[str, Any]) -> None:
    # hook, hookInstance and context themselves are broken by the arbitrary-JSON test and schemathesis.
    name = draw(st.sampled_from(["fhirServer", "fhirAuthorization", "prefetch", "extension"]))
    if draw(st.booleans()):
        request.pop(name, None)
    elif name == "fhirServer":
        request[name] = draw(st.one_of(st.sampled_from(["https://ehr.example.org/fhir", "http://127.0.0.1:1/fhir",
                                                        "http://[::1]/fhir", "https://user@ehr/fhir", "file:///etc"]), odd_values))
    elif name == "fhirAuthorization":
        request[name] = draw(st.one_of(st.fixed_dictionaries({}, optional={
            "access_token": texts, "token_type": st.sampled_from(["Bearer", "bearer", "MAC", ""]),
            "expires_in": odd_values, "scope": odd_values, "subject": odd_values, "patient": odd_values}), odd_values))
    else:
        request[name] = draw(odd_values)


def break_context(draw: st.DrawFn, request: dict[str, Any]) -> None:
    context = request.get("context")
    if not isinstance(context, dict):
        return
    name = draw(st.sampled_from(["userId", "patientId", "encounterId", "selections", "draftOrders", "extension", "other"]))
    if draw(st.booleans()):
        context.pop(name, None)
    elif name == "selections":
        context[name] = draw(st.one_of(st.lists(st.one_of(st.sampled_from(["MedicationRequest/draft-trastuzumab",
                                                                           "MedicationOrder/x"]), texts), max_size=3), odd_values))
    elif name == "userId":
        context[name] = draw(st.one_of(st.sampled_from(["Practitioner/1", "PractitionerRole/x", "Patient/..", "Practitioner/"]),
                                       odd_values))
    elif name == "draftOrders":
        context[name] = draw(st.one_of(
            st.fixed_dictionaries({"resourceType": st.just("Bundle")}, optional={
                "entry": st.one_of(st.lists(st.one_of(st.fixed_dictionaries({"resource": odd_values}), odd_values), max_size=3),
                                   odd_values)}),
            odd_values))
    else:
        context[name] = draw(odd_values)


def break_prefetch_key(draw: st.DrawFn, request: dict[str, Any]) -> None:
    prefetch = request.get("prefetch")
    if not isinstance(prefetch, dict):
        return
    key = draw(st.sampled_from([*PREFETCH, "unknownKey"]))
    patient_id = _patient_id(request)
    prefetch[key] = draw(st.one_of(
        st.none(),
        odd_values,
        st.just({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "exception"}]}),
        st.lists(st.one_of(record_resource(patient_id), st.fixed_dictionaries({"resourceType": texts}), odd_values), max_size=4)
        .map(lambda resources: {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in resources]}),
        st.sampled_from(["Bundle?page=2", "https://elsewhere.example.org/fhir/Bundle?page=2", "javascript:alert(1)"])
        .map(lambda url: {"resourceType": "Bundle", "link": [{"relation": "next", "url": url}], "entry": []}),
        st.fixed_dictionaries({"resourceType": st.just("Bundle")}, optional={"entry": odd_values, "link": odd_values}),
    ))
    if draw(st.booleans()):
        del prefetch[key]


def break_bundle_entry(draw: st.DrawFn, request: dict[str, Any]) -> None:
    """An entry's search element (match, include, outcome) or its fullUrl, as odd values."""
    entries = [
        entry for bundle in _object(request.get("prefetch")).values() if isinstance(bundle, dict)
        for entry in (bundle.get("entry") if isinstance(bundle.get("entry"), list) else []) if isinstance(entry, dict)
    ]
    if not entries:
        return
    entry = draw(st.sampled_from(entries))
    entry[draw(st.sampled_from(["search", "fullUrl"]))] = draw(st.one_of(
        odd_values, st.fixed_dictionaries({"mode": st.one_of(st.sampled_from(["match", "include", "outcome"]), odd_values)})))


def break_resource_field(draw: st.DrawFn, request: dict[str, Any]) -> None:
    resources = _resources(request)
    if not resources:
        return
    resource = draw(st.sampled_from(resources))
    fields = sorted({*resource, "valueQuantity", "valueCodeableConcept", "effectiveDateTime", "effectivePeriod", "code",
                     "status", "subject", "component", "medicationCodeableConcept", "medicationReference", "dosage",
                     "dosageInstruction", "onsetDateTime", "abatementDateTime", "clinicalStatus", "verificationStatus",
                     "birthDate", "gender", "id", "resourceType", "referenceRange", "contained"})
    name = draw(st.sampled_from(fields))
    if draw(st.integers(0, 4)) == 0:
        resource.pop(name, None)
    elif name in ("valueQuantity", "doseQuantity"):
        resource[name] = draw(quantities)
    elif name in ("medicationCodeableConcept", "code"):
        resource[name] = draw(medication_concept())
    elif name in ("dosageInstruction", "dosage"):
        resource[name] = draw(st.one_of(st.lists(dosages, max_size=3), dosages, odd_values))
    elif name.endswith(("DateTime", "Date", "On")):
        resource[name] = draw(dates)
    else:
        resource[name] = draw(odd_values)


def add_draft_order(draw: st.DrawFn, request: dict[str, Any]) -> None:
    context = request.get("context")
    if not isinstance(context, dict):
        return
    bundle = context.setdefault("draftOrders", {"resourceType": "Bundle", "entry": []})
    if not isinstance(bundle, dict) or not isinstance(bundle.setdefault("entry", []), list):
        return
    order = draw(draft_order(_patient_id(request)))
    bundle["entry"].append({"resource": order})
    if isinstance(context.get("selections"), list) and isinstance(order.get("id"), str) and draw(st.booleans()):
        context["selections"].append(f"{order['resourceType']}/{order['id']}")


def add_record_resource(draw: st.DrawFn, request: dict[str, Any]) -> None:
    prefetch = request.get("prefetch")
    if not isinstance(prefetch, dict):
        return
    bundle = prefetch.get(draw(st.sampled_from(list(PREFETCH))))
    if isinstance(bundle, dict) and bundle.get("resourceType") == "Bundle" and isinstance(bundle.setdefault("entry", []), list):
        bundle["entry"].append({"resource": draw(record_resource(_patient_id(request)))})


MUTATIONS: list[Callable[[st.DrawFn, dict[str, Any]], None]] = [
    break_top_level, break_context, break_prefetch_key, break_bundle_entry, break_resource_field, break_resource_field,
    add_draft_order, add_draft_order, add_record_resource, add_record_resource,
]


@st.composite
def near_valid_requests(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    service_id, request = draw(st.sampled_from(fixture_requests()))
    request = copy.deepcopy(request)
    for mutation in draw(st.lists(st.sampled_from(MUTATIONS), min_size=1, max_size=3)):
        mutation(draw, request)
    return service_id, request


@st.composite
def near_valid_feedback(draw: st.DrawFn) -> dict[str, Any]:
    item = st.fixed_dictionaries(
        {"card": st.one_of(st.uuids().map(str), odd_values), "outcome": st.one_of(st.sampled_from(["accepted", "overridden"]), odd_values)},
        optional={
            "outcomeTimestamp": st.one_of(dates, odd_values),
            "acceptedSuggestions": st.one_of(st.lists(st.fixed_dictionaries({"id": st.one_of(st.uuids().map(str), odd_values)}),
                                                      max_size=3), odd_values),
            "overrideReason": st.one_of(st.fixed_dictionaries({}, optional={
                "reason": st.one_of(st.fixed_dictionaries({"system": texts, "code": texts}, optional={"display": texts}), odd_values),
                "userComment": st.one_of(texts, odd_values)}), odd_values),
            "extension": odd_values,
        },
    )
    return draw(st.one_of(st.fixed_dictionaries({"feedback": st.lists(st.one_of(item, odd_values), max_size=4)}),
                          st.fixed_dictionaries({"feedback": odd_values})))


# --- raw bodies ----------------------------------------------------------------------------------------------------

raw_bodies = st.one_of(
    st.binary(max_size=300),
    texts.map(str.encode),
    raw_number_literal().map(lambda placeholder: placeholder.removeprefix(_RAW_LITERAL).encode()),
    st.sampled_from([b"", b"null", b"NaN", b"Infinity", b"-Infinity", b'{"hook": NaN}', b'{"a": 1e999}', b"\xef\xbb\xbf{}",
                     b"{}" + b"\x00", b'{"a":1,"a":2}', b"[" * 100_000, b"{" * 50_000, b'"\\ud800"', b"\xff\xfe{\x00}\x00",
                     '{"hook":"order-sign"}'.encode("utf-16"), b'{"hook": "order-sign", ' * 1000]),
    json_values.map(encode),
)
content_types = st.one_of(
    st.sampled_from(["application/json", "application/fhir+json", "application/json; charset=utf-8",
                     "application/json; charset=latin-1", "APPLICATION/JSON", "text/plain", "application/xml",
                     "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "multipart/form-data",
                     "application/json;;;", "application/json; charset=\"", "*/*", ""]),
    # Any visible ASCII: what a header can carry (requests refuses leading blanks and non-Latin-1).
    st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40),
)


# --- the tests -----------------------------------------------------------------------------------------------------


@ONE_SERVER_PER_TEST
@hypothesis.given(path=st.sampled_from(SERVICE_PATHS + FEEDBACK_PATHS + [UNKNOWN_SERVICE_PATH]), body=json_values)
def test_any_json_body_gets_a_documented_answer(live_server: LiveServer, document: dict[str, Any], path: str, body: Any):
    response = live_server.session.post(live_server.base_url + path, data=encode(body),
                                        headers={"Content-Type": "application/json"}, timeout=10)
    assert_documented_answer(response, path, document)


@ONE_SERVER_PER_TEST
@hypothesis.given(case=near_valid_requests())
def test_near_valid_requests_get_a_documented_answer(live_server: LiveServer, document: dict[str, Any],
                                                      case: tuple[str, dict[str, Any]]):
    service_id, request = case
    path = f"/cds-services/{service_id}"
    response = live_server.session.post(live_server.base_url + path, data=encode(request),
                                        headers={"Content-Type": "application/json"}, timeout=10)
    assert_documented_answer(response, path, document)


@ONE_SERVER_PER_TEST
@hypothesis.given(path=st.sampled_from(FEEDBACK_PATHS), body=near_valid_feedback())
def test_near_valid_feedback_gets_a_documented_answer(live_server: LiveServer, document: dict[str, Any], path: str, body: Any):
    response = live_server.session.post(live_server.base_url + path, data=encode(body),
                                        headers={"Content-Type": "application/json"}, timeout=10)
    assert_documented_answer(response, path, document)


@ONE_SERVER_PER_TEST
@hypothesis.given(path=st.sampled_from(SERVICE_PATHS + FEEDBACK_PATHS), body=raw_bodies, content_type=content_types)
def test_any_bytes_with_any_content_type_get_a_documented_answer(live_server: LiveServer, document: dict[str, Any],
                                                                 path: str, body: bytes, content_type: str):
    response = live_server.session.post(live_server.base_url + path, data=body, headers={"Content-Type": content_type},
                                        timeout=10)
    assert_documented_answer(response, path, document)
