"""protocol.body.read_hook_call: the hook call's members as json_text.strict_loads reads them, each prefetch Bundle's
entries read when asked; the same 400 for a malformed body; a number the service cannot hold refused when read."""
from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cds_hooks import json_text
from cds_hooks.cases import load_case, load_cases
from cds_hooks.protocol.body import DeferredEntries, read_hook_call

from .conftest import FIXTURES, LiveServer

READ_MEMBERS = ("hook", "hookInstance", "fhirServer", "fhirAuthorization", "context", "prefetch")


def materialised(value: Any) -> Any:
    """The value with every DeferredEntries read."""
    if isinstance(value, DeferredEntries):
        return value.load()
    if isinstance(value, dict):
        return {key: materialised(item) for key, item in value.items()}
    return value


def read_members(body: Any) -> Any:
    """What parse_hook_request reads of a strictly parsed body, and how a deferred prefetch Bundle keeps it."""
    if not isinstance(body, dict):
        return body
    members = {name: body[name] for name in READ_MEMBERS if name in body}
    prefetch = members.get("prefetch")
    if isinstance(prefetch, dict):
        members["prefetch"] = {key: _bundle_as_read(value) for key, value in prefetch.items()}
    return members


def _bundle_as_read(value: Any) -> Any:
    if isinstance(value, dict) and value.get("resourceType") == "Bundle" and isinstance(value.get("entry", []), (list, type(None))):
        return {name: value[name] for name in ("resourceType", "link", "entry") if name in value}
    return value


def reads_alike(data: bytes) -> bool:
    """read_hook_call gives what parse_hook_request reads of strict_loads's value: a body read whole keeps members
    nothing reads, and its own member order."""
    return _canonical(read_members(materialised(read_hook_call(data)))) == _canonical(read_members(json_text.strict_loads(data)))


def _canonical(value: Any) -> Any:
    # repr tells -0.0 from 0.0 and 1 from 1.0, which == does not.
    if isinstance(value, dict):
        return sorted((key, _canonical(item)) for key, item in value.items())
    if isinstance(value, list):
        return [_canonical(item) for item in value]
    return repr(value)


CASES = load_cases([FIXTURES / "cases"])


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.path.name)
def test_every_case_request_reads_as_strict_loads_reads_it(case):
    data = json.dumps(case.request_for("full")).encode()
    assert reads_alike(data)


def _bundle(*resources: dict[str, Any], **members: Any) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "searchset", **members,
            "entry": [{"fullUrl": f"urn:x:{i}", "resource": r, "search": {"mode": "match"}} for i, r in enumerate(resources)]}


def call(prefetch: Any = None, **members: Any) -> dict[str, Any]:
    body = {"hook": "patient-view", "hookInstance": "i", "context": {"userId": "Practitioner/1", "patientId": "p"}, **members}
    if prefetch is not None:
        body["prefetch"] = prefetch
    return body


def test_a_bundles_entries_are_left_unread_counted_and_read_on_demand():
    observation = {"resourceType": "Observation", "id": "o1", "valueQuantity": {"value": 63.5, "unit": "%"}}
    body = read_hook_call(json.dumps(call({"lvef": _bundle(observation, observation), "patient": {"resourceType": "Patient", "id": "p"}})).encode())
    entries = body["prefetch"]["lvef"]["entry"]
    assert isinstance(entries, DeferredEntries) and len(entries) == 2
    assert entries.load()[1]["resource"] == observation
    # A single resource is read whole.
    assert body["prefetch"]["patient"] == {"resourceType": "Patient", "id": "p"}


@pytest.mark.parametrize("prefetch", [
    {"lvef": None}, {"lvef": {"resourceType": "Bundle", "entry": None}}, {"lvef": {"resourceType": "Bundle", "entry": {"x": 1}}},
    {"lvef": {"resourceType": "Bundle"}}, {"lvef": [1, 2]}, {"lvef": "Bundle"}, {"lvef": {"resourceType": ["Bundle"], "entry": []}},
    [], "x", {"lvef": _bundle({"resourceType": "Observation"}, link=[{"relation": "next", "url": "http://x/2"}])},
    {"lvef": {"resourceType": "OperationOutcome", "issue": [{"severity": "error"}]}},
])
def test_any_shape_of_prefetch_reads_as_strict_loads_reads_it(prefetch: Any):
    data = json.dumps(call(prefetch)).encode()
    assert reads_alike(data)


@pytest.mark.parametrize("data", [
    b"[1, 2]", b'"x"', b"null", b'\xef\xbb\xbf{"hook": "x"}', '{"hook": "x"}'.encode("utf-16"),
    b'{"hook": "\\ud800", "prefetch": {}}', b'{"prefetch": {"k": {"resourceType": "Bundle", "entry": ["\\ud800"]}}}',
])
def test_a_body_of_another_shape_or_encoding_is_read_whole(data: bytes):
    assert reads_alike(data)


@pytest.mark.parametrize("data", [
    # Malformed deep inside a Bundle's entries, where nothing is read: still the body's 400, with json's position.
    b'{"hook": "x", "prefetch": {"k": {"resourceType": "Bundle", "entry": [{"resource": {"a": [1, 2,]}}]}}}',
    b'{"hook": "x", "prefetch": {"k": {"resourceType": "Bundle", "entry": [{"resource": {"a": NaN}}]}}}',
    b'{"hook": "x", "unknown": {"a": tru}}',
    # Not UTF-8 in a string nothing reads.
    b'{"hook": "x", "prefetch": {"k": {"resourceType": "Bundle", "entry": [{"resource": {"a": "\xff"}}]}}}',
    b'{"hook": "x", "unknown": "\xc3\x28"}',
    b'{"hook": 1e999}', b'{"context": {"x": -1e999}}', b'{"hook": ' + b"9" * 4301 + b"}",
    b"[" * 200_000 + b"]" * 200_000,
])
def test_a_malformed_body_is_refused_as_strict_loads_refuses_it(data: bytes):
    with pytest.raises(json_text.NotJson) as expected:
        json_text.strict_loads(data)
    with pytest.raises(json_text.NotJson) as raised:
        read_hook_call(data)
    assert str(raised.value) == str(expected.value)


@pytest.mark.parametrize("number, problem", [
    (b"1e999", "the number 1e999 is out of range"),
    (b"9" * 4301, "an integer has more digits than the service reads"),
])
def test_a_number_the_service_cannot_hold_is_refused_when_its_entries_are_read(number: bytes, problem: str):
    data = b'{"hook": "x", "prefetch": {"k": {"resourceType": "Bundle", "entry": [{"resource": {"v": ' + number + b"}}]}}}"
    entries = read_hook_call(data)["prefetch"]["k"]["entry"]
    with pytest.raises(json_text.NotJson, match=f"^not valid JSON: {problem}$"):
        entries.load()


def test_a_member_the_service_does_not_read_is_checked_as_json_but_not_converted():
    assert read_hook_call(b'{"hook": "x", "padding": [1e999, ' + b"9" * 5000 + b"]}") == {"hook": "x"}


# --- any body ------------------------------------------------------------------------------------------------------

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=12)
resources = st.fixed_dictionaries({"resourceType": st.sampled_from(["Observation", "Patient", "Bundle"])}, optional={"id": values, "value": values})
entries = st.lists(st.one_of(st.fixed_dictionaries({"resource": resources}, optional={"search": values}), values), max_size=4)
prefetch_values = st.one_of(
    st.fixed_dictionaries({"resourceType": st.just("Bundle")}, optional={"entry": st.one_of(entries, values), "link": values, "total": values}),
    resources, values,
)
bodies = st.one_of(
    st.fixed_dictionaries({}, optional={
        "hook": values, "hookInstance": values, "context": values, "fhirServer": values, "fhirAuthorization": values,
        "prefetch": st.one_of(st.dictionaries(st.text(max_size=6), prefetch_values, max_size=4), values), "extension": values,
    }),
    values,
)


@settings(max_examples=400, deadline=None)
@given(bodies)
def test_any_body_reads_as_strict_loads_reads_it(body: Any):
    data = json.dumps(body).encode()
    assert reads_alike(data)


# --- through HTTP --------------------------------------------------------------------------------------------------

def _case_request(name: str) -> dict[str, Any]:
    return load_case(FIXTURES / "cases" / name).request_for("full")


def _with_out_of_range_lab(request: dict[str, Any]) -> bytes:
    marker = 987654.25
    labs = request["prefetch"]["labs"]
    labs.setdefault("entry", []).append({"resource": {
        "resourceType": "Observation", "id": "lab-out-of-range", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "777-3"}]},
        "effectiveDateTime": "2020-01-01", "valueQuantity": {"value": marker, "unit": "10*3/uL"},
    }})
    data = json.dumps(request).encode()
    assert data.count(str(marker).encode()) == 1
    return data.replace(str(marker).encode(), b"1e999")


def test_an_unreadable_number_in_a_key_no_check_reads_does_not_stop_the_call(live_server: LiveServer):
    # Trastuzumab's checks do not read the labs (services.py): the call is answered as without that Observation.
    request = _case_request("sequencing-trastuzumab-19th-cycle-at-week-54.json")
    expected = live_server.post("/cds-services/her2-order-select", request)
    response = live_server.session.post(live_server.base_url + "/cds-services/her2-order-select", data=_with_out_of_range_lab(request),
                                        headers={"Content-Type": "application/json"}, timeout=10)
    assert expected.status_code == response.status_code == 200
    assert [card["summary"] for card in response.json()["cards"]] == [card["summary"] for card in expected.json()["cards"]]


def test_an_unreadable_number_in_a_key_a_check_reads_is_400_naming_the_key(live_server: LiveServer):
    # T-DM1's checks read the platelets as a rule runs: the 400 is not taken for a rule that failed.
    request = _case_request("haematologic-tdm1-platelets-50000.json")
    response = live_server.session.post(live_server.base_url + "/cds-services/her2-order-select", data=_with_out_of_range_lab(request),
                                        headers={"Content-Type": "application/json"}, timeout=10)
    assert response.status_code == 400
    assert response.json() == {"error": "invalid-request", "message": "prefetch.labs is not valid JSON: the number 1e999 is out of range"}
