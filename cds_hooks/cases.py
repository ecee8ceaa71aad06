"""Fixture cases: a CDS Hooks request (or a patient Bundle, a hook and draft orders) and what must come back.

A case file is JSON:
    {"description": "...", "hook": "order-select", "patient": "../patients/x.json",
     "draftOrders": [...], "selections": [...],          # order hooks; selections default to every draft
     "request": {...},                                  # instead of hook/patient/draftOrders: a whole request
     "service": "her2-order-select",                    # optional; default: the service for the hook
     "rule": "cardiac.anthracycline-with-trastuzumab",   # optional: the rule this case exercises, and
     "kind": "fire",                                    #   how: fire | near-miss | missing-data
     "expect": {"cards": [{"card": "card-id", "indicator": "critical"}], "absent": ["card-id"], "empty": true}}
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

from cds_hooks.memory_fhir import InMemoryFhirStore
from cds_hooks.prefetch import render_template
from cds_hooks.protocol.request import parse_hook_request
from cds_hooks.services import SERVICES, SERVICES_BY_ID

PrefetchMode = Literal["full", "none"]
CASE_KINDS = ("fire", "near-miss", "missing-data")


class CaseError(ValueError):
    """A case file that cannot be read or does not follow the format."""


@dataclass(frozen=True)
class Expectation:
    cards: tuple[Mapping[str, str], ...] = ()
    absent: tuple[str, ...] = ()
    empty: bool = False


@dataclass(frozen=True)
class Case:
    name: str
    path: Path
    description: str
    service_id: str
    expect: Expectation
    # The request without prefetch or fhirServer; `request_for` adds those.
    request: Mapping[str, Any]
    store: InMemoryFhirStore | None = field(default=None, repr=False)
    rule: str | None = None
    kind: str | None = None

    def request_for(self, prefetch: PrefetchMode = "full", fhir_server: str | None = None) -> dict[str, Any]:
        """The request to send: prefetch filled from the patient Bundle, or left for fhirServer to supply."""
        request = json.loads(json.dumps(self.request))
        if fhir_server:
            request["fhirServer"] = fhir_server
        if prefetch == "full" and self.store is not None and "prefetch" not in request:
            request["prefetch"] = prefetch_from_store(self.store, self.service_id, request)
        return request


def load_case(path: Path) -> Case:
    path = Path(path)
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CaseError(f"{path}: {error}") from None
    if not isinstance(data, dict) or not isinstance(data.get("expect"), dict):
        raise CaseError(f"{path}: a case is an object with an 'expect' object")
    store = None
    if "patient" in data:
        store = InMemoryFhirStore.from_bundle(_read_json(path.parent / data["patient"], path))
    if "request" in data:
        request = data["request"]
        hook = request.get("hook") if isinstance(request, dict) else None
    else:
        hook = data.get("hook")
        request = _request_from_parts(data, store, path)
    service_id = data.get("service") or next((s.id for s in SERVICES if s.hook == hook), None)
    if service_id not in SERVICES_BY_ID:
        raise CaseError(f"{path}: no service for hook {hook!r}; name one with 'service'")
    if data.get("kind") is not None and data["kind"] not in CASE_KINDS:
        raise CaseError(f"{path}: kind must be one of {', '.join(CASE_KINDS)}")
    return Case(
        name=path.stem,
        path=path,
        description=str(data.get("description", "")),
        service_id=service_id,
        expect=_expectation(data["expect"], path),
        request=request,
        store=store,
        rule=data.get("rule"),
        kind=data.get("kind"),
    )


def load_cases(paths: list[Path]) -> list[Case]:
    """Every case under the given files and folders, in name order."""
    files: list[Path] = []
    for path in map(Path, paths):
        files.extend(sorted(path.rglob("*.json")) if path.is_dir() else [path])
    return [load_case(file) for file in files]


def check_response(case: Case, status: int, body: Any) -> list[str]:
    """What differs from the expectation; an empty list means the case passed."""
    if status != 200:
        return [f"expected HTTP 200, got {status}: {json.dumps(body)[:300]}"]
    cards = body.get("cards", []) if isinstance(body, dict) else []
    found = {card_id(card): card.get("indicator") for card in cards}
    problems = []
    if case.expect.empty and body != {"cards": []}:
        problems.append(f"expected exactly {{\"cards\": []}}, got cards {sorted(found)}")
    for wanted in case.expect.cards:
        if wanted["card"] not in found:
            problems.append(f"missing card {wanted['card']} (got {sorted(found) or 'none'})")
        elif wanted.get("indicator") and found[wanted["card"]] != wanted["indicator"]:
            problems.append(f"card {wanted['card']} is {found[wanted['card']]}, expected {wanted['indicator']}")
    for unwanted in case.expect.absent:
        if unwanted in found:
            problems.append(f"card {unwanted} must not appear")
    return problems


def card_id(card: Mapping[str, Any]) -> str | None:
    """The id of the cards/ file a card came from (it travels as source.topic.code)."""
    return ((card.get("source") or {}).get("topic") or {}).get("code")


def prefetch_from_store(store: InMemoryFhirStore, service_id: str, request: Mapping[str, Any]) -> dict[str, Any]:
    """What an EHR would prefetch: each of the service's templates run against the patient's data."""
    hook_request = parse_hook_request(request, SERVICES_BY_ID[service_id].hook)
    prefetch = {}
    for key, template in SERVICES_BY_ID[service_id].prefetch.items():
        query = render_template(template, hook_request)
        if query is not None:
            prefetch[key] = store.query(query)
    return prefetch


def _request_from_parts(data: Mapping[str, Any], store: InMemoryFhirStore | None, path: Path) -> dict[str, Any]:
    hook = data.get("hook")
    patient_id = data.get("patientId") or (store.patient_id() if store else None)
    if not hook or not patient_id:
        raise CaseError(f"{path}: give 'hook' and a 'patient' Bundle with a Patient (or a whole 'request')")
    context: dict[str, Any] = {"userId": data.get("userId", "Practitioner/fixture-oncologist"), "patientId": patient_id}
    drafts = data.get("draftOrders")
    if drafts is not None:
        context["draftOrders"] = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": d} for d in drafts]}
        if hook == "order-select":
            context["selections"] = data.get("selections") or [f"{d['resourceType']}/{d['id']}" for d in drafts]
    # A fixed hookInstance per case keeps runs comparable.
    return {"hook": hook, "hookInstance": str(uuid.uuid5(uuid.NAMESPACE_URL, str(path.name))), "context": context}


def _expectation(expect: Mapping[str, Any], path: Path) -> Expectation:
    cards = expect.get("cards", [])
    if not all(isinstance(c, dict) and isinstance(c.get("card"), str) for c in cards):
        raise CaseError(f"{path}: expect.cards is a list of {{\"card\": id, \"indicator\": ...}}")
    return Expectation(cards=tuple(cards), absent=tuple(expect.get("absent", [])), empty=bool(expect.get("empty", False)))


def _read_json(path: Path, case_path: Path) -> Any:
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CaseError(f"{case_path}: cannot read {path}: {error}") from None
