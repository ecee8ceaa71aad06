"""Scenarios for the card preview page: the fixture patients and cases shipped with the package, and the CDS Hooks
request one of them makes with the draft orders chosen on the page. Only these synthetic patients are evaluated.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping

from cds_hooks.cases import (
    Case, hook_request, is_draft_order_list, is_reference_list, load_cases, prefetch_from_store, read_bundle,
)
from cds_hooks.memory_fhir import InMemoryFhirStore
from cds_hooks.protocol.errors import InvalidRequest
from cds_hooks.protocol.request import ORDER_HOOKS
from cds_hooks.services import SERVICES, SERVICES_BY_ID, service_for_hook

# fixtures/ of the source tree, installed as this package (setup.cfg), so the page works from a plain install.
FIXTURE_PACKAGE = "cds_hooks.fixture_content"
PREVIEW_USER = "Practitioner/preview"
# Fields that say nothing about what is ordered: two drafts differing only in these are one choice on the page.
_ORDER_BOOKKEEPING_FIELDS = ("id", "subject", "authoredOn")


@dataclass(frozen=True)
class FixturePatient:
    name: str  # the Bundle's file name without .json: the clinical situation it shows
    patient: Mapping[str, Any]
    store: InMemoryFhirStore


class ScenarioCatalog:
    def __init__(self, patients: Mapping[str, FixturePatient], scenarios: list[Case]) -> None:
        self.patients = dict(patients)
        # What the page offers: patients, hooks, scenarios (a case's patient, hook and drafts) and draft orders.
        self.listing = {
            "patients": [{"name": fixture.name, "patient": fixture.patient} for fixture in self.patients.values()],
            "hooks": [service.hook for service in SERVICES],
            "scenarios": [_scenario_json(case) for case in scenarios],
            "orders": _distinct_orders(order for case in scenarios for order in _draft_orders(case)),
        }

    @classmethod
    def load(cls, folder: Path | None = None) -> "ScenarioCatalog":
        """Every patient Bundle in `folder`/patients and every case in `folder`/cases that names one of them."""
        folder = folder or Path(resources.files(FIXTURE_PACKAGE))
        cases = [case for case in load_cases([folder / "cases"]) if case.patient_file is not None]
        # A case's own store, so a patient whose case is written_on an earlier day has its dates moved as in the case.
        case_stores = {case.patient_file.stem: case.store for case in cases}
        patients = {}
        for file in sorted((folder / "patients").glob("*.json")):
            store = case_stores.get(file.stem) or InMemoryFhirStore.from_bundle(read_bundle(file, file))
            patient = next((r for r in store.resources if r.get("resourceType") == "Patient"), None)
            if patient is not None:
                patients[file.stem] = FixturePatient(file.stem, patient, store)
        return cls(patients, [case for case in cases if case.patient_file.stem in patients])

    def request_for(self, patient: Any, hook: Any, draft_orders: Any, selections: Any) -> tuple[str, dict[str, Any]]:
        """The service to call and the request an EHR would send for a fixture patient, with prefetch filled in."""
        fixture = self.patients.get(patient) if isinstance(patient, str) else None
        if fixture is None:
            raise InvalidRequest("patient must name a bundled fixture patient", details=[f"got {str(patient)[:100]!r}"])
        service = service_for_hook(hook)
        if service is None:
            raise InvalidRequest(f"hook must be one of {', '.join(s.hook for s in SERVICES)}")
        patient_id = fixture.patient["id"]
        drafts = None
        if hook in ORDER_HOOKS:
            drafts = [_for_patient(order, patient_id) for order in _valid_orders(draft_orders)]
            if selections is not None and not is_reference_list(selections):
                raise InvalidRequest("selections must be a list of references such as MedicationRequest/draft-1")
        request = hook_request(hook, patient_id, drafts, selections, user_id=PREVIEW_USER, hook_instance=str(uuid.uuid4()))
        request["prefetch"] = prefetch_from_store(fixture.store, service.id, request)
        return service.id, request


def _scenario_json(case: Case) -> dict[str, Any]:
    return {
        "name": case.name,
        "description": case.description,
        "kind": case.kind,
        "patient": case.patient_file.stem,
        "hook": SERVICES_BY_ID[case.service_id].hook,
        "draftOrders": _draft_orders(case),
        "selections": case.request["context"].get("selections"),
        "expect": {"cards": list(case.expect.cards), "absent": list(case.expect.absent), "empty": case.expect.empty},
    }


def _draft_orders(case: Case) -> list[dict[str, Any]]:
    bundle = case.request["context"].get("draftOrders") or {}
    return [entry["resource"] for entry in bundle.get("entry", [])]


def _distinct_orders(orders: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    distinct: dict[str, dict[str, Any]] = {}
    for order in orders:
        identity = json.dumps({k: v for k, v in order.items() if k not in _ORDER_BOOKKEEPING_FIELDS}, sort_keys=True)
        distinct.setdefault(identity, order)
    return list(distinct.values())


def _valid_orders(draft_orders: Any) -> list[Mapping[str, Any]]:
    if not is_draft_order_list(draft_orders):
        raise InvalidRequest("draftOrders must be a list of FHIR resources, each with resourceType and id")
    return draft_orders


def _for_patient(order: Mapping[str, Any], patient_id: str) -> dict[str, Any]:
    # A draft picked from another scenario is ordered for the patient on screen, as it would be in an EHR.
    return {**order, "subject": {"reference": f"Patient/{patient_id}"}}
