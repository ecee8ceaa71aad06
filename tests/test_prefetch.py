"""Prefetch templates and resolution, against a real FHIR endpoint on a free local port (no patched HTTP)."""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from typing import Any, Callable, Iterator, Mapping

import pytest
import requests

from cds_hooks.memory_fhir import InMemoryFhirStore
from cds_hooks.prefetch import FHIR_SERVER_NOT_ALLOWED, PrefetchResolver, render_template, resources_in
from cds_hooks.protocol.errors import PrefetchUnavailable, TooManyResources
from cds_hooks.protocol.request import FhirAuthorization, HookRequest
from cds_hooks.settings import Settings

from .conftest import FIXTURES, secret_token
from .fhir_server import FhirTestServer, unreachable_base_url

PATIENT_ID = "pt-4711"
TOKEN = secret_token("eyJhbGciOi.secret-access-token.Zx9")
LVEF = "http://loinc.org|10230-1"
PATIENT_READ = "Patient/{{context.patientId}}"
CONDITIONS = "Condition?patient={{context.patientId}}"
LVEF_SERIES = "Observation?patient={{context.patientId}}&code=" + LVEF


def hook_request(
    prefetch: Mapping[str, Any] | None = None,
    fhir_server: str | None = None,
    token: str | None = TOKEN,
    **context: Any,
) -> HookRequest:
    return HookRequest(
        hook="patient-view",
        hook_instance="d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        context={"userId": "Practitioner/dr-1", "patientId": PATIENT_ID, **context},
        prefetch=dict(prefetch or {}),
        fhir_server=fhir_server,
        fhir_authorization=FhirAuthorization(access_token=token, token_type="Bearer") if token and fhir_server else None,
    )


def patient(patient_id: str = PATIENT_ID) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": patient_id, "gender": "female"}


def lvef(index: int, patient_id: str = PATIENT_ID) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": f"lvef-{patient_id}-{index}",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "10230-1"}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "valueQuantity": {"value": 55, "unit": "%"},
    }


def condition(condition_id: str, patient_id: str = PATIENT_ID) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": condition_id,
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "254837009"}]},
        "subject": {"reference": f"Patient/{patient_id}"},
    }


def ids(resources: list[dict]) -> list[str]:
    return [resource["id"] for resource in resources]


@pytest.fixture
def resolver_with() -> Iterator[Callable[..., PrefetchResolver]]:
    """Make a resolver with the given settings; all are closed after the test. The FHIR test servers are on
    loopback, which development mode allows."""
    made: list[PrefetchResolver] = []

    def make(**settings: Any) -> PrefetchResolver:
        resolver = PrefetchResolver(Settings(**{"prefetch_budget_seconds": 2.0, "development_mode": True, **settings}))
        made.append(resolver)
        return resolver

    yield make
    for resolver in made:
        resolver.close()


def unavailable(resolver: PrefetchResolver, request: HookRequest, templates: Mapping[str, str]) -> dict[str, str]:
    """The failing keys and their reasons from the PrefetchUnavailable that resolve() must raise."""
    with pytest.raises(PrefetchUnavailable) as raised:
        resolver.resolve(request, templates)
    assert raised.value.status == 412
    return {detail["key"]: detail["reason"] for detail in raised.value.details}


# --- render_template -------------------------------------------------------------------------------------------


def test_context_tokens_are_filled_and_url_encoded_in_the_query():
    request = hook_request(patientId="a b&c=d", encounterId="enc-9", count=3, flag=True)
    template = "Observation?patient={{context.patientId}}&encounter={{context.encounterId}}&n={{context.count}}&f={{context.flag}}"
    assert render_template(template, request) == "Observation?patient=a%20b%26c%3Dd&encounter=enc-9&n=3&f=true"


def test_read_templates_keep_type_and_id_paths():
    request = hook_request()
    assert render_template(PATIENT_READ, request) == f"Patient/{PATIENT_ID}"
    assert render_template("{{context.userId}}", request) == "Practitioner/dr-1"


@pytest.mark.parametrize(
    "token, user_id, expected",
    [
        ("userPractitionerId", "Practitioner/123", "123"),
        ("userPractitionerRoleId", "PractitionerRole/role-7", "role-7"),
        ("userPatientId", "Patient/p-5", "p-5"),
        ("userRelatedPersonId", "RelatedPerson/rp-2", "rp-2"),
        ("userPractitionerId", "https://ehr.example.org/fhir/Practitioner/abs-1", "abs-1"),
    ],
)
def test_user_tokens_take_the_id_of_a_matching_user(token, user_id, expected):
    request = hook_request(userId=user_id)
    assert render_template(f"X?_id={{{{{token}}}}}", request) == f"X?_id={expected}"


@pytest.mark.parametrize(
    "template",
    [
        "PractitionerRole?_id={{userPractitionerRoleId}}",  # the user is a Practitioner, not a PractitionerRole
        "Observation?patient={{context.patientId}}&encounter={{context.encounterId}}",  # no encounterId in context
        "Observation?x={{context.draftOrders}}",  # not a primitive
        "Observation?x={{context.draftOrders.id}}",  # not top-level
        "Observation?x={{patientId}}",  # not a CDS Hooks token
        "Patient/{{context.emptyId}}",  # an empty value would read the type, not the patient
        "Patient/{{context.sneaky}}/x",  # dot segments would leave the resource path
    ],
)
def test_unresolvable_tokens_make_the_template_unfetchable(template):
    request = hook_request(draftOrders={"resourceType": "Bundle", "entry": []}, emptyId="", sneaky="../Observation")
    assert render_template(template, request) is None


def test_whitespace_inside_braces_is_tolerated():
    request = hook_request()
    template = "Observation?patient={{ context.patientId }}&performer={{userPractitionerId   }}"
    assert render_template(template, request) == f"Observation?patient={PATIENT_ID}&performer=dr-1"


def test_a_template_without_tokens_is_returned_unchanged():
    assert render_template("Medication?code=http://www.nlm.nih.gov/research/umls/rxnorm|224905", hook_request()) == (
        "Medication?code=http://www.nlm.nih.gov/research/umls/rxnorm|224905"
    )


# --- data the client sent ---------------------------------------------------------------------------------------


def test_fully_supplied_prefetch_makes_no_http_call(resolver_with):
    supplied = {
        "patient": patient(),
        "conditions": {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [
                {"resource": condition("c1"), "search": {"mode": "match"}},
                {"resource": {"resourceType": "OperationOutcome", "issue": []}, "search": {"mode": "outcome"}},
                {"resource": condition("c2"), "search": {"mode": "match"}},
            ],
        },
    }
    with FhirTestServer([patient(), condition("server-only")]) as server:
        result = resolver_with().resolve(
            hook_request(supplied, server.base_url), {"patient": PATIENT_READ, "conditions": CONDITIONS}
        )
        assert server.requests == []
    assert ids(result.resources["patient"]) == [PATIENT_ID]
    assert ids(result.resources["conditions"]) == ["c1", "c2"]
    assert result.fetched_keys == ()


def test_a_search_element_that_is_not_an_object_is_not_an_outcome(resolver_with):
    # It made the service fail with a 500 before.
    supplied = {
        "conditions": {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": condition("c1"), "search": "match"}, {"resource": condition("c2"), "search": ["outcome"]}],
        },
    }
    result = resolver_with().resolve(hook_request(supplied), {"conditions": CONDITIONS})
    assert ids(result.resources["conditions"]) == ["c1", "c2"]


def test_null_means_no_data_and_is_not_fetched(resolver_with):
    with FhirTestServer([condition("c1")]) as server:
        result = resolver_with().resolve(hook_request({"conditions": None}, server.base_url), {"conditions": CONDITIONS})
        assert server.requests == []
    assert result.resources == {"conditions": []}
    assert result.fetched_keys == ()


def test_only_template_keys_are_returned(resolver_with):
    result = resolver_with().resolve(
        hook_request({"patient": patient(), "unasked": patient("other")}), {"patient": PATIENT_READ}
    )
    assert set(result.resources) == {"patient"}


# --- fetching missing keys --------------------------------------------------------------------------------------


def test_missing_key_is_fetched_with_the_bearer_token(resolver_with):
    resources = [condition("c1"), condition("c2"), condition("someone-else", patient_id="pt-other")]
    with FhirTestServer(resources, required_token=TOKEN) as server:
        result = resolver_with().resolve(
            hook_request({"patient": patient()}, server.base_url), {"patient": PATIENT_READ, "conditions": CONDITIONS}
        )
        [sent] = server.requests
    assert sent.method == "GET"
    assert sent.path == f"/fhir/Condition?patient={PATIENT_ID}"
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"
    assert sent.headers["Accept"] == "application/fhir+json"
    assert ids(result.resources["conditions"]) == ["c1", "c2"]
    assert result.fetched_keys == ("conditions",)


def test_no_authorization_header_without_fhir_authorization(resolver_with):
    with FhirTestServer([patient()]) as server:
        resolver_with().resolve(hook_request(fhir_server=server.base_url, token=None), {"patient": PATIENT_READ})
        [sent] = server.requests
    assert "Authorization" not in sent.headers


def test_a_read_that_finds_nothing_is_no_data(resolver_with):
    with FhirTestServer([patient("somebody-else")]) as server:
        result = resolver_with().resolve(hook_request(fhir_server=server.base_url), {"patient": PATIENT_READ})
    assert result.resources == {"patient": []}
    assert result.fetched_keys == ("patient",)


def test_a_search_answered_404_is_an_error(resolver_with):
    with FhirTestServer([patient()]) as server:
        reasons = unavailable(resolver_with(), hook_request(fhir_server=server.base_url), {"x": "Nothing/here/at/all?a=b"})
    assert reasons == {"x": "FHIR server answered 404"}


def test_operation_outcome_in_prefetch_is_fetched_again(resolver_with):
    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}
    with FhirTestServer([condition("c1")]) as server:
        result = resolver_with().resolve(hook_request({"conditions": outcome}, server.base_url), {"conditions": CONDITIONS})
        assert len(server.requests) == 1
    assert ids(result.resources["conditions"]) == ["c1"]
    assert result.fetched_keys == ("conditions",)


def test_operation_outcome_without_fhir_server_is_unavailable(resolver_with):
    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}
    reasons = unavailable(resolver_with(), hook_request({"conditions": outcome}), {"conditions": CONDITIONS})
    assert reasons == {"conditions": "the client sent an OperationOutcome and there is no fhirServer to fetch it from"}


def test_missing_key_without_fhir_server_names_the_key(resolver_with):
    with pytest.raises(PrefetchUnavailable) as raised:
        resolver_with().resolve(hook_request({"patient": patient()}), {"patient": PATIENT_READ, "lvef": LVEF_SERIES})
    assert raised.value.details == [{"key": "lvef", "reason": "missing from prefetch and there is no fhirServer to fetch it from"}]
    assert "lvef" in raised.value.message


def test_unrenderable_template_names_the_key_and_fetches_nothing(resolver_with):
    templates = {"role": "PractitionerRole?_id={{userPractitionerRoleId}}", "patient": PATIENT_READ}
    with FhirTestServer([patient()]) as server:
        reasons = unavailable(resolver_with(), hook_request(fhir_server=server.base_url), templates)
        assert server.requests == []
    assert reasons == {"role": "the prefetch template cannot be filled from this request's context"}


# --- paging -----------------------------------------------------------------------------------------------------


def test_search_pages_are_all_collected(resolver_with):
    resources = [lvef(i) for i in range(120)] + [lvef(i, patient_id="pt-other") for i in range(5)]
    with FhirTestServer(resources, page_size=50) as server:
        result = resolver_with().resolve(hook_request(fhir_server=server.base_url), {"lvef": LVEF_SERIES})
        pages = [sent.query.get("_page", ["1"])[0] for sent in server.requests]
        connections = {sent.client_port for sent in server.requests}
    assert pages == ["1", "2", "3"]
    assert len(connections) == 1, "pages should reuse one kept-alive connection"
    assert ids(result.resources["lvef"]) == [f"lvef-{PATIENT_ID}-{i}" for i in range(120)]


def test_next_link_of_a_client_bundle_is_followed(resolver_with):
    resources = [lvef(i) for i in range(120)]
    with FhirTestServer(resources, page_size=50) as server:
        first_page = {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": 120,
            "link": [{"relation": "next", "url": f"{server.base_url}/Observation?patient={PATIENT_ID}&_page=2"}],
            "entry": [{"resource": resource} for resource in resources[:50]],
        }
        result = resolver_with().resolve(hook_request({"lvef": first_page}, server.base_url), {"lvef": LVEF_SERIES})
        assert [sent.query["_page"] for sent in server.requests] == [["2"], ["3"]]
        assert all(sent.headers["Authorization"] == f"Bearer {TOKEN}" for sent in server.requests)
    assert ids(result.resources["lvef"]) == ids(resources)
    assert result.fetched_keys == ("lvef",)


def test_next_link_off_the_fhir_server_is_refused(resolver_with):
    with FhirTestServer([lvef(1)]) as server:
        elsewhere = unreachable_base_url()
        first_page = {
            "resourceType": "Bundle",
            "type": "searchset",
            "link": [{"relation": "next", "url": f"{elsewhere}/Observation?page=2"}],
            "entry": [{"resource": lvef(0)}],
        }
        reasons = unavailable(resolver_with(), hook_request({"lvef": first_page}, server.base_url), {"lvef": LVEF_SERIES})
        assert server.requests == []
    assert reasons == {"lvef": "a next link points outside fhirServer"}


@pytest.mark.parametrize("link", ["{base}/../admin/Observation?page=2", "{base}/%2e%2e/admin/Observation?page=2",
                                  "http://[::1/fhir/Observation?page=2"],
                         ids=["dot segments", "encoded dot segments", "unparseable"])
def test_next_link_that_climbs_out_of_the_base_path_is_refused(resolver_with, link):
    with FhirTestServer([lvef(1)]) as server:
        first_page = {
            "resourceType": "Bundle",
            "type": "searchset",
            "link": [{"relation": "next", "url": link.format(base=server.base_url)}],
            "entry": [{"resource": lvef(0)}],
        }
        reasons = unavailable(resolver_with(), hook_request({"lvef": first_page}, server.base_url), {"lvef": LVEF_SERIES})
        assert server.requests == []
    assert reasons == {"lvef": "a next link points outside fhirServer"}


def test_client_bundle_with_next_link_and_no_fhir_server_is_unavailable(resolver_with):
    first_page = {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": [{"relation": "next", "url": "http://ehr.example/fhir/Observation?page=2"}],
        "entry": [{"resource": lvef(0)}],
    }
    reasons = unavailable(resolver_with(), hook_request({"lvef": first_page}), {"lvef": LVEF_SERIES})
    assert reasons == {"lvef": "the prefetched Bundle has a next page but there is no fhirServer to fetch it from"}


def test_looping_next_link_ends_with_an_error(resolver_with):
    with FhirTestServer([lvef(i) for i in range(3)], looping_next=True) as server:
        reasons = unavailable(resolver_with(), hook_request(fhir_server=server.base_url), {"lvef": LVEF_SERIES})
        assert len(server.requests) == 2  # the template's URL, then its `_page=1` self-link once
    assert reasons == {"lvef": "a next link repeats a page already fetched"}


def test_more_pages_than_allowed_is_an_error(resolver_with):
    with FhirTestServer([lvef(i) for i in range(30)], page_size=1) as server:
        reasons = unavailable(
            resolver_with(prefetch_max_pages=5), hook_request(fhir_server=server.base_url), {"lvef": LVEF_SERIES}
        )
        assert len(server.requests) == 5
    assert reasons == {"lvef": "more than 5 pages"}


# --- allowed FHIR servers ---------------------------------------------------------------------------------------


def test_a_fhir_server_that_is_not_allowed_is_never_called(resolver_with):
    with FhirTestServer([patient(), condition("c1")]) as server:
        reasons = unavailable(
            resolver_with(development_mode=False), hook_request(fhir_server=server.base_url),
            {"patient": PATIENT_READ, "conditions": CONDITIONS},
        )
        assert server.requests == []
    assert reasons == {"patient": FHIR_SERVER_NOT_ALLOWED, "conditions": FHIR_SERVER_NOT_ALLOWED}


def test_an_unparseable_fhir_server_is_not_allowed(resolver_with):
    reasons = unavailable(resolver_with(), hook_request(fhir_server="http://[::1/fhir"), {"patient": PATIENT_READ})
    assert reasons == {"patient": FHIR_SERVER_NOT_ALLOWED}


def test_a_listed_fhir_server_is_called_without_development_mode(resolver_with):
    with FhirTestServer([patient()]) as server:
        resolver = resolver_with(development_mode=False, allowed_fhir_servers=(server.base_url,))
        result = resolver.resolve(hook_request(fhir_server=server.base_url + "/"), {"patient": PATIENT_READ})
    assert ids(result.resources["patient"]) == [PATIENT_ID]


def test_a_server_listed_with_another_path_is_not_allowed(resolver_with):
    with FhirTestServer([patient()]) as server:
        resolver = resolver_with(development_mode=False, allowed_fhir_servers=(server.base_url + "/tenant-a",))
        reasons = unavailable(resolver, hook_request(fhir_server=server.base_url), {"patient": PATIENT_READ})
        assert server.requests == []
    assert reasons == {"patient": FHIR_SERVER_NOT_ALLOWED}


def test_complete_prefetch_needs_no_allowed_fhir_server(resolver_with):
    request = hook_request({"patient": patient()}, "https://ehr.example.org/fhir")
    result = resolver_with(development_mode=False).resolve(request, {"patient": PATIENT_READ})
    assert ids(result.resources["patient"]) == [PATIENT_ID]


# --- the resource count of one call -----------------------------------------------------------------------------


def lvef_bundle(count: int) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": lvef(i)} for i in range(count)]}


def test_a_request_carrying_more_resources_than_allowed_is_413(resolver_with):
    request = hook_request({"patient": patient(), "lvef": lvef_bundle(10)})
    with pytest.raises(TooManyResources) as raised:
        resolver_with(max_resources_per_request=10).resolve(request, {"patient": PATIENT_READ, "lvef": LVEF_SERIES})
    assert raised.value.status == 413
    assert "11 FHIR resources" in raised.value.message and "at most 10" in raised.value.message


class Unwalkable(list):
    def __iter__(self):
        raise AssertionError("the Bundle's entries were walked")


def test_a_sent_bundle_is_counted_without_walking_its_entries_and_read_out_when_its_key_is_read(resolver_with):
    bundle = lvef_bundle(3)
    sent = {**bundle, "entry": Unwalkable(bundle["entry"])}
    with pytest.raises(TooManyResources):
        resolver_with(max_resources_per_request=3).resolve(hook_request({"patient": patient(), "lvef": sent}), {"patient": PATIENT_READ, "lvef": LVEF_SERIES})
    result = resolver_with().resolve(hook_request({"patient": patient(), "lvef": bundle}), {"patient": PATIENT_READ, "lvef": LVEF_SERIES})
    assert "lvef" in result.resources and ids(result.resources["lvef"]) == [f"lvef-{PATIENT_ID}-{i}" for i in range(3)]


def test_draft_orders_count_towards_the_resources_of_a_call(resolver_with):
    drafts = {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "MedicationRequest", "id": f"d{i}"}}
                                                  for i in range(3)]}
    request = dataclasses.replace(hook_request({"patient": patient()}, draftOrders=drafts), hook="order-sign")
    with pytest.raises(TooManyResources):
        resolver_with(max_resources_per_request=3).resolve(request, {"patient": PATIENT_READ})
    assert resolver_with(max_resources_per_request=4).resolve(request, {"patient": PATIENT_READ}).resources["patient"]


def test_fetched_pages_beyond_the_resource_count_fail_their_key(resolver_with):
    with FhirTestServer([lvef(i) for i in range(30)], page_size=10) as server:
        request = hook_request({"patient": patient()}, server.base_url)
        reasons = unavailable(resolver_with(max_resources_per_request=25), request, {"patient": PATIENT_READ, "lvef": LVEF_SERIES})
        assert len(server.requests) == 3  # the third page brings the call to 31 resources; no fourth is asked for
    assert reasons == {"lvef": "this call's FHIR data is more than 25 resources"}


def test_a_key_over_two_fetched_pages_counts_both_and_reads_both_in_order(resolver_with):
    templates = {"patient": PATIENT_READ, "lvef": LVEF_SERIES}
    with FhirTestServer([lvef(i) for i in range(20)], page_size=10) as server:
        request = hook_request({"patient": patient()}, server.base_url)
        # The patient and the first page are 11; the second page brings the call to 21.
        assert unavailable(resolver_with(max_resources_per_request=20), request, templates) == {
            "lvef": "this call's FHIR data is more than 20 resources"
        }
        result = resolver_with(max_resources_per_request=21).resolve(request, templates)
    assert ids(result.resources["lvef"]) == [f"lvef-{PATIENT_ID}-{i}" for i in range(20)]


def test_a_sent_first_page_and_its_fetched_next_page_count_both_and_read_both_in_order(resolver_with):
    templates = {"patient": PATIENT_READ, "lvef": LVEF_SERIES}
    resources = [lvef(i) for i in range(20)]
    with FhirTestServer(resources, page_size=10) as server:
        first_page = {
            "resourceType": "Bundle",
            "type": "searchset",
            "link": [{"relation": "next", "url": f"{server.base_url}/Observation?patient={PATIENT_ID}&_page=2"}],
            "entry": [{"resource": resource} for resource in resources[:10]],
        }
        request = hook_request({"patient": patient(), "lvef": first_page}, server.base_url)
        # What the request carries (the patient and the first page, 11) is 413; the fetched page makes 21.
        with pytest.raises(TooManyResources):
            resolver_with(max_resources_per_request=10).resolve(request, templates)
        assert unavailable(resolver_with(max_resources_per_request=20), request, templates) == {
            "lvef": "this call's FHIR data is more than 20 resources"
        }
        result = resolver_with(max_resources_per_request=21).resolve(request, templates)
    assert ids(result.resources["lvef"]) == ids(resources)


def test_exactly_the_resource_count_is_accepted(resolver_with):
    with FhirTestServer([lvef(i) for i in range(29)], page_size=10) as server:
        result = resolver_with(max_resources_per_request=30).resolve(
            hook_request({"patient": patient()}, server.base_url), {"patient": PATIENT_READ, "lvef": LVEF_SERIES}
        )
    assert len(result.resources["lvef"]) == 29


# --- failures ---------------------------------------------------------------------------------------------------


def test_server_down_is_unavailable_quickly(resolver_with):
    started = time.monotonic()
    reasons = unavailable(resolver_with(), hook_request(fhir_server=unreachable_base_url()), {"patient": PATIENT_READ})
    assert time.monotonic() - started < 0.5
    assert reasons == {"patient": "connection refused"}


def test_a_kept_alive_connection_closed_unanswered_is_asked_again_on_a_new_one(resolver_with):
    # The server closes each connection as its second request arrives: pages 2 and 3 each come on a second try.
    resources = [lvef(i) for i in range(120)]
    with FhirTestServer(resources, page_size=50, close_unanswered="reused") as server:
        result = resolver_with().resolve(hook_request(fhir_server=server.base_url), {"lvef": LVEF_SERIES})
        sent = server.requests
    assert [request.query.get("_page", ["1"])[0] for request in sent] == ["1", "2", "2", "3", "3"]
    assert len({request.client_port for request in sent}) == 3
    assert ids(result.resources["lvef"]) == [f"lvef-{PATIENT_ID}-{i}" for i in range(120)]


def test_a_server_that_closes_every_connection_unanswered_is_asked_twice_then_unavailable(resolver_with):
    with FhirTestServer([patient()], close_unanswered="every") as server:
        reasons = unavailable(resolver_with(), hook_request(fhir_server=server.base_url), {"patient": PATIENT_READ})
        sent = server.requests
    assert reasons == {"patient": "connection to the FHIR server failed"}
    assert [request.path for request in sent] == [f"/fhir/Patient/{PATIENT_ID}"] * 2


def test_slow_server_is_abandoned_when_the_budget_ends(resolver_with):
    with FhirTestServer([patient()], delay_seconds=3.0) as server:
        started = time.monotonic()
        reasons = unavailable(
            resolver_with(prefetch_budget_seconds=0.5), hook_request(fhir_server=server.base_url), {"patient": PATIENT_READ}
        )
        elapsed = time.monotonic() - started
    assert 0.5 <= elapsed < 1.0
    assert reasons == {"patient": "timed out after the 0.5 s prefetch budget"}


def test_dripping_server_does_not_hold_the_worker_past_the_budget(resolver_with):
    # One worker thread: if the dripping fetch kept it, the call to the healthy server could not run.
    resolver = resolver_with(prefetch_budget_seconds=0.5, prefetch_threads=1)
    with FhirTestServer([patient()], drip_seconds=0.05) as dripping, FhirTestServer([patient()]) as healthy:
        started = time.monotonic()
        reasons = unavailable(resolver, hook_request(fhir_server=dripping.base_url), {"patient": PATIENT_READ})
        assert time.monotonic() - started < 1.0
        assert reasons == {"patient": "timed out after the 0.5 s prefetch budget"}
        time.sleep(0.2)
        result = resolver.resolve(hook_request(fhir_server=healthy.base_url), {"patient": PATIENT_READ})
    assert ids(result.resources["patient"]) == [PATIENT_ID]


@pytest.mark.parametrize(
    "fault, reason",
    [
        ({"status": 500}, "FHIR server answered 500"),
        ({"status": 401}, "FHIR server answered 401"),
        ({"status": 302}, "FHIR server answered 302 (redirects are not followed)"),
        ({"non_json": True}, "response is not JSON"),
        ({"huge_bytes": 200_000}, "response is larger than 10000 bytes"),
    ],
)
def test_server_faults_are_reported_per_key(resolver_with, fault, reason):
    with FhirTestServer([patient()], **fault) as server:
        reasons = unavailable(
            resolver_with(prefetch_max_response_bytes=10_000),
            hook_request(fhir_server=server.base_url),
            {"patient": PATIENT_READ, "conditions": CONDITIONS},
        )
    assert reasons == {"patient": reason, "conditions": reason}


def test_oversized_response_with_content_length_is_refused(resolver_with):
    big = [condition(f"c{i}") for i in range(200)]
    with FhirTestServer(big, page_size=200) as server:
        reasons = unavailable(
            resolver_with(prefetch_max_response_bytes=10_000), hook_request(fhir_server=server.base_url), {"c": CONDITIONS}
        )
    assert reasons == {"c": "response is larger than 10000 bytes"}


# An LVEF whose value the FHIR test server writes as what json.dumps cannot: the marker replaced in its answers.
MARKER = 987654.25


def lvef_with_marker() -> dict[str, Any]:
    return {**lvef(99), "valueQuantity": {"value": MARKER, "unit": "%"}}


def test_a_fetched_searchset_is_read_when_its_key_is_first_read(resolver_with):
    # json.loads reads the syntax of an integer of 5,000 digits but will not convert it (a ValueError): the key's
    # data cannot be had, as when the whole answer was read on arrival, but only a call that reads the key says so.
    digits = b"9" * 5000
    with FhirTestServer([patient(), lvef(1), lvef_with_marker()], replace_in_body=(str(MARKER).encode(), digits)) as server:
        result = resolver_with().resolve(hook_request(fhir_server=server.base_url), {"patient": PATIENT_READ, "lvef": LVEF_SERIES})
        assert digits in requests.get(f"{server.base_url}/{LVEF_SERIES.replace('{{context.patientId}}', PATIENT_ID)}", timeout=5).content
    assert ids(result.resources["patient"]) == [PATIENT_ID]
    with pytest.raises(PrefetchUnavailable) as raised:
        result.resources["lvef"]
    assert raised.value.status == 412
    assert raised.value.details == [{"key": "lvef", "reason": "response is not JSON"}]


def test_a_fetched_searchset_that_is_not_utf8_is_refused_when_fetched(resolver_with):
    # msgspec does not check the UTF-8 of what it passes over: the whole answer is checked on arrival.
    with FhirTestServer([lvef(1), lvef_with_marker()], replace_in_body=(str(MARKER).encode(), b'"\xff"')) as server:
        reasons = unavailable(resolver_with(), hook_request(fhir_server=server.base_url), {"lvef": LVEF_SERIES})
    assert reasons == {"lvef": "response is not JSON"}


def test_operation_outcome_answered_with_200_is_an_error(resolver_with):
    outcome = {"resourceType": "OperationOutcome", "id": PATIENT_ID, "issue": []}
    with FhirTestServer([outcome]) as server:
        templates = {"outcome": "OperationOutcome/{{context.patientId}}"}
        assert unavailable(resolver_with(), hook_request(fhir_server=server.base_url), templates) == {
            "outcome": "FHIR server answered with an OperationOutcome"
        }


def test_missing_keys_are_fetched_concurrently(resolver_with):
    templates = {
        "patient": PATIENT_READ,
        "conditions": CONDITIONS,
        "lvef": LVEF_SERIES,
        "user": "{{context.userId}}",
    }
    resources = [patient(), condition("c1"), lvef(1), {"resourceType": "Practitioner", "id": "dr-1"}]
    with FhirTestServer(resources, delay_seconds=0.3) as server:
        started = time.monotonic()
        result = resolver_with().resolve(hook_request(fhir_server=server.base_url), templates)
        elapsed = time.monotonic() - started
    assert elapsed < 0.7  # one after another would take 1.2 s
    assert {key: ids(found) for key, found in result.resources.items()} == {
        "patient": [PATIENT_ID],
        "conditions": ["c1"],
        "lvef": [f"lvef-{PATIENT_ID}-1"],
        "user": ["dr-1"],
    }
    assert result.fetched_keys == ("patient", "conditions", "lvef", "user")


def test_errors_and_logs_never_carry_the_token_or_patient_data(resolver_with, caplog):
    caplog.set_level(logging.DEBUG, logger="cds_hooks.prefetch")
    with FhirTestServer([patient(), condition("c1")]) as server:
        resolver = resolver_with()
        resolver.resolve(hook_request({"conditions": None}, server.base_url), {"patient": PATIENT_READ, "conditions": CONDITIONS})
        server.status = 403
        with pytest.raises(PrefetchUnavailable) as raised:
            resolver.resolve(hook_request(fhir_server=server.base_url), {"patient": PATIENT_READ, "lvef": LVEF_SERIES})
    error_text = json.dumps(raised.value.body())
    assert raised.value.details == [
        {"key": "patient", "reason": "FHIR server answered 403"},
        {"key": "lvef", "reason": "FHIR server answered 403"},
    ]
    logged = " ".join(f"{record.getMessage()} {vars(record)}" for record in caplog.records)
    assert {(record.key, record.outcome) for record in caplog.records} == {
        ("patient", "fetched"),
        ("conditions", "supplied"),
        ("patient", "failed"),
        ("lvef", "failed"),
    }
    for text in (error_text, logged):
        assert TOKEN not in text
        assert PATIENT_ID not in text
        assert "127.0.0.1" not in text


# --- the FHIR test endpoint itself ------------------------------------------------------------------------------


def test_fixture_bundle_served_over_http_matches_the_bundle(resolver_with):
    bundle_file = FIXTURES / "patients" / "her2pos-metastatic-on-trastuzumab.json"
    store = InMemoryFhirStore.from_bundle(json.loads(bundle_file.read_text("utf-8")))
    templates = {"patient": PATIENT_READ, "conditions": CONDITIONS, "statements": "MedicationStatement?patient={{context.patientId}}"}
    request_context = {"patientId": store.patient_id()}
    with FhirTestServer.from_bundle(bundle_file, page_size=1) as server:
        result = resolver_with().resolve(hook_request(fhir_server=server.base_url, **request_context), templates)
    for key, template in templates.items():
        expected = store.query(render_template(template, hook_request(**request_context)))
        assert result.resources[key] == resources_in(expected)
    assert len(result.resources["conditions"]) == 2


def test_fhir_test_server_answers_post_search_and_metadata():
    with FhirTestServer([condition("c1"), condition("c2"), condition("x", patient_id="pt-other")], page_size=1) as server:
        searched = requests.post(
            f"{server.base_url}/Condition/_search", data={"patient": PATIENT_ID}, timeout=5
        ).json()
        metadata = requests.get(f"{server.base_url}/metadata", timeout=5).json()
    assert searched["total"] == 2
    assert ids(resources_in(searched)) == ["c1"]
    assert [link["relation"] for link in searched["link"]] == ["self", "next"]
    assert metadata["resourceType"] == "CapabilityStatement"
