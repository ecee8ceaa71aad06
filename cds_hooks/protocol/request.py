"""The CDS Hooks 2.0 service request: parsed, validated, and tolerant of what real clients send."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from cds_hooks.protocol.errors import InvalidRequest

ORDER_HOOKS = frozenset({"order-select", "order-sign"})

# Per-hook context fields (CDS Hooks library, hookVersion 1.0): name -> required?
HOOK_CONTEXT_FIELDS: Mapping[str, Mapping[str, bool]] = {
    "patient-view": {"userId": True, "patientId": True, "encounterId": False},
    "order-select": {
        "userId": True,
        "patientId": True,
        "encounterId": False,
        "selections": True,
        "draftOrders": True,
    },
    "order-sign": {"userId": True, "patientId": True, "encounterId": False, "draftOrders": True},
}


@dataclass(frozen=True)
class FhirAuthorization:
    access_token: str = field(repr=False)
    token_type: str
    scope: str | None = None
    subject: str | None = None
    patient: str | None = None
    expires_in: int | None = None


@dataclass(frozen=True)
class HookRequest:
    hook: str
    hook_instance: str
    context: Mapping[str, Any]
    prefetch: Mapping[str, Any]
    fhir_server: str | None = None
    fhir_authorization: FhirAuthorization | None = None

    @property
    def patient_id(self) -> str:
        return self.context["patientId"]

    @property
    def user_id(self) -> str:
        return self.context["userId"]

    @property
    def draft_orders(self) -> list[dict[str, Any]]:
        """The resources of context.draftOrders (order hooks), in the order the client sent them."""
        if self.hook not in ORDER_HOOKS:
            # Only an order hook's draftOrders is validated; what a client puts there on another hook is not read.
            return []
        return [entry["resource"] for entry in self.context["draftOrders"].get("entry", [])]

    @property
    def selections(self) -> tuple[str, ...]:
        return tuple(self.context.get("selections") or ())

    def acts_on(self, draft_reference: str) -> bool:
        """Whether the clinician is acting on this draft: one of order-select's selections, or any draft at order-sign."""
        return self.hook != "order-select" or draft_reference in self.selections


def parse_hook_request(body: Any, expected_hook: str) -> HookRequest:
    """Validate a decoded JSON body for a service bound to `expected_hook`; raise InvalidRequest naming each problem."""
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    problems: list[str] = []
    hook = _required_string(body, "hook", problems)
    hook_instance = _required_string(body, "hookInstance", problems)
    if hook is not None and hook != expected_hook:
        problems.append(f"hook '{hook}' does not match this service, which answers '{expected_hook}'")

    fhir_server = body.get("fhirServer")
    if fhir_server is not None and (not isinstance(fhir_server, str) or not fhir_server.startswith(("http://", "https://"))):
        problems.append("fhirServer must be an absolute http(s) URL")
        fhir_server = None
    authorization = _fhir_authorization(body.get("fhirAuthorization"), problems)
    if authorization is not None and fhir_server is None and "fhirServer" not in body:
        problems.append("fhirServer is required when fhirAuthorization is present")

    context = body.get("context")
    if not isinstance(context, dict):
        problems.append("context is required and must be an object")
        context = {}
    else:
        _check_context(expected_hook, context, problems)

    prefetch = body.get("prefetch", {})
    if prefetch is None:
        prefetch = {}
    if not isinstance(prefetch, dict):
        problems.append("prefetch must be an object mapping keys to FHIR resources or null")
        prefetch = {}
    else:
        for key, value in prefetch.items():
            if value is not None and not (isinstance(value, dict) and isinstance(value.get("resourceType"), str)):
                problems.append(f"prefetch.{key} must be a FHIR resource or null")

    if problems:
        raise InvalidRequest("the CDS Hooks request is not valid", details=problems)
    return HookRequest(
        hook=hook,
        hook_instance=hook_instance,
        context=context,
        prefetch=prefetch,
        fhir_server=fhir_server.rstrip("/") if fhir_server else None,
        fhir_authorization=authorization,
    )


def _required_string(container: Mapping[str, Any], name: str, problems: list[str], where: str = "") -> str | None:
    value = container.get(name)
    if not isinstance(value, str) or not value.strip():
        problems.append(f"{where}{name} is required and must be a non-empty string")
        return None
    return value


def _fhir_authorization(value: Any, problems: list[str]) -> FhirAuthorization | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        problems.append("fhirAuthorization must be an object")
        return None
    token = _required_string(value, "access_token", problems, "fhirAuthorization.")
    token_type = _required_string(value, "token_type", problems, "fhirAuthorization.")
    if token_type is not None and token_type.lower() != "bearer":
        problems.append("fhirAuthorization.token_type must be 'Bearer'")
    expires_in = value.get("expires_in")
    if expires_in is not None and (not isinstance(expires_in, int) or isinstance(expires_in, bool)):
        problems.append("fhirAuthorization.expires_in must be an integer")
    if token is None or token_type is None:
        return None
    optional = {name: value.get(name) if isinstance(value.get(name), str) else None for name in ("scope", "subject", "patient")}
    return FhirAuthorization(
        access_token=token,
        token_type=token_type,
        expires_in=expires_in if isinstance(expires_in, int) else None,
        **optional,
    )


def _check_context(hook: str, context: Mapping[str, Any], problems: list[str]) -> None:
    fields = HOOK_CONTEXT_FIELDS.get(hook, {})
    for name, required in fields.items():
        if name in ("selections", "draftOrders"):
            continue
        if required:
            _required_string(context, name, problems, "context.")
        elif name in context and not isinstance(context[name], str):
            problems.append(f"context.{name} must be a string")
    if hook not in ORDER_HOOKS:
        return
    draft_ids = _check_draft_orders(context.get("draftOrders"), context.get("patientId"), problems)
    if hook == "order-select":
        _check_selections(context.get("selections"), draft_ids, problems)


def _check_draft_orders(bundle: Any, patient_id: Any, problems: list[str]) -> set[str]:
    """Check context.draftOrders and return the `Type/id` of each entry.

    The Sandbox sends the Bundle without `type`, so `type` is not required.
    """
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        problems.append("context.draftOrders is required and must be a FHIR Bundle")
        return set()
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        problems.append("context.draftOrders.entry must be an array")
        return set()
    references: set[str] = set()
    for index, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            problems.append(f"context.draftOrders.entry[{index}] has no resource")
            continue
        if isinstance(resource.get("id"), str):
            references.add(f"{resource['resourceType']}/{resource['id']}")
        subject = _subject_reference(resource)
        if isinstance(patient_id, str) and subject and subject not in (f"Patient/{patient_id}", patient_id):
            problems.append(
                f"context.draftOrders.entry[{index}] is for {subject}, not for context.patientId {patient_id}"
            )
    return references


def _subject_reference(resource: Mapping[str, Any]) -> str | None:
    # R4/STU3 use `subject`; DSTU2 MedicationOrder uses `patient`.
    for name in ("subject", "patient"):
        value = resource.get(name)
        if isinstance(value, dict) and isinstance(value.get("reference"), str):
            return value["reference"]
    return None


def _check_selections(selections: Any, draft_ids: set[str], problems: list[str]) -> None:
    if selections is None:
        problems.append("context.selections is required for order-select")
        return
    if not isinstance(selections, list) or not all(isinstance(item, str) for item in selections):
        problems.append("context.selections must be an array of 'Type/id' strings")
        return
    for selection in selections:
        if selection not in draft_ids:
            problems.append(f"context.selections names {selection}, which is not in context.draftOrders")
