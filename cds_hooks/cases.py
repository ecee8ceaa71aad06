"""Fixture cases: a CDS Hooks request (or a patient Bundle, a hook and draft orders) and what must come back.

A case file is JSON:
    {"description": "...", "hook": "order-select", "patient": "../patients/x.json",
     "draftOrders": [...], "selections": [...],          # order hooks; selections default to every draft
     "request": {...} or "../requests/x.json",           # instead of hook/draftOrders: a whole request (its
                                                        #   prefetch, if it has none, built from "patient")
     "service": "her2-order-select",                    # optional; default: the service for the hook
     "written_on": "2026-11-22",                         # optional: the day the case's dates were written for;
                                                        #   they move forward by the days since (see below)
     "rule": "cardiac.anthracycline-with-trastuzumab",   # optional: the rule this case exercises, and
     "kind": "fire",                                    #   how: fire | near-miss | missing-data
     "expect": {"cards": [{"card": "card-id", "indicator": "critical"}], "absent": ["card-id"], "empty": true}}

`expect` needs at least one of: cards that must appear (indicator optional), cards that must not, or
"empty": true for exactly {"cards": []}. Paths are relative to the case file.

A case that names `written_on` has every full date in its patient, draft orders and request moved forward by the
days between then and today, so it means the same whenever it runs. Any case whose meaning depends on today needs
it: one about the day the chart is opened ("the last dose was four weeks ago"), and one about a drafted dose, which is
never given on a day already past (facts.therapy.dose_day): what must be known before it (weight, BSA, labs, LVEF,
pregnancy test, earlier doses), what runs alongside it and how far into a course it falls are read as of that day.
"""
from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal, Mapping

from cds_hooks.json_files import UnreadableJsonFile, read_json_file
from cds_hooks.memory_fhir import InMemoryFhirStore
from cds_hooks.prefetch import render_template
from cds_hooks.protocol.errors import ServiceError
from cds_hooks.protocol.request import parse_hook_request
from cds_hooks.services import SERVICES_BY_ID, service_for_hook

PrefetchMode = Literal["full", "none"]
CASE_KINDS = ("fire", "near-miss", "missing-data")
INDICATORS = ("info", "warning", "critical")


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
    # The patient Bundle file the store was read from, when the case names one.
    patient_file: Path | None = None
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
    """Read and check one case file; anything that does not follow the format is a CaseError naming the file."""
    path = Path(path)
    data = _read_json(path, path)
    if not isinstance(data, dict) or not isinstance(data.get("expect"), dict):
        raise CaseError(f"{path}: a case is an object with an 'expect' object")
    for name in ("patient", "service", "rule", "description", "written_on"):
        if data.get(name) is not None and not isinstance(data[name], str):
            raise CaseError(f"{path}: '{name}' must be a string")
    days_later = _days_since_written(data.get("written_on"), path)
    store = patient_file = None
    if "patient" in data:
        patient_file = path.parent / data["patient"]
        store = InMemoryFhirStore.from_bundle(shift_dates(read_bundle(patient_file, path), days_later))
    if "request" in data:
        request = _read_json(path.parent / data["request"], path) if isinstance(data["request"], str) else data["request"]
        if not isinstance(request, dict):
            raise CaseError(f"{path}: 'request' is a CDS Hooks request object, or the path of a file holding one")
        request = shift_dates(request, days_later)
        hook = request.get("hook")
    else:
        hook = data.get("hook")
        _check_draft_orders(data, path)
        request = _request_from_parts({**data, "draftOrders": shift_dates(data.get("draftOrders"), days_later)}, store, path)
    default_service = service_for_hook(hook)
    service_id = data.get("service") or (default_service.id if default_service else None)
    if service_id not in SERVICES_BY_ID:
        raise CaseError(f"{path}: no service for hook {hook!r}; name one with 'service'")
    if data.get("kind") is not None and data["kind"] not in CASE_KINDS:
        raise CaseError(f"{path}: kind must be one of {', '.join(CASE_KINDS)}")
    _check_request(request, service_id, path)
    return Case(
        name=path.stem,
        path=path,
        description=str(data.get("description", "")),
        service_id=service_id,
        expect=_expectation(data["expect"], path),
        request=request,
        store=store,
        patient_file=patient_file,
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


# A full FHIR date or dateTime; partial dates ("2026", "2026-03") name a year or month and stay as written.
_FULL_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})(T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)?")


def shift_dates(value: Any, days: int) -> Any:
    """`value` (FHIR JSON) with every full date and dateTime `days` later; times of day and zones kept."""
    if days == 0:
        return value
    if isinstance(value, dict):
        return {key: shift_dates(item, days) for key, item in value.items()}
    if isinstance(value, list):
        return [shift_dates(item, days) for item in value]
    if isinstance(value, str) and (match := _FULL_DATE.fullmatch(value)):
        try:
            day = date.fromisoformat(match.group(1))
        except ValueError:
            return value
        return (day + timedelta(days=days)).isoformat() + (match.group(2) or "")
    return value


def _days_since_written(written_on: str | None, path: Path) -> int:
    if written_on is None:
        return 0
    try:
        written = date.fromisoformat(written_on)
    except ValueError:
        raise CaseError(f"{path}: written_on is a date such as 2026-11-22") from None
    # Never backwards: a case run before the day it was written for is run as written.
    return max(0, (date.today() - written).days)


def _request_from_parts(data: Mapping[str, Any], store: InMemoryFhirStore | None, path: Path) -> dict[str, Any]:
    hook = data.get("hook")
    patient_id = data.get("patientId") or (store.patient_id() if store else None)
    if not hook or not patient_id:
        raise CaseError(f"{path}: give 'hook' and a 'patient' Bundle with a Patient (or a whole 'request')")
    # A fixed hookInstance per case keeps runs comparable.
    return hook_request(
        hook, patient_id, data.get("draftOrders"), data.get("selections"),
        user_id=data.get("userId", "Practitioner/fixture-oncologist"),
        hook_instance=str(uuid.uuid5(uuid.NAMESPACE_URL, str(path.name))),
    )


def hook_request(hook: str, patient_id: str, draft_orders: list[Mapping[str, Any]] | None, selections: list[str] | None,
                 *, user_id: str, hook_instance: str) -> dict[str, Any]:
    """A CDS Hooks request without prefetch; order-select selects every draft unless `selections` names some."""
    context: dict[str, Any] = {"userId": user_id, "patientId": patient_id}
    if draft_orders is not None:
        context["draftOrders"] = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": d} for d in draft_orders]}
        if hook == "order-select":
            context["selections"] = selections or [f"{d['resourceType']}/{d['id']}" for d in draft_orders]
    return {"hook": hook, "hookInstance": hook_instance, "context": context}


def _expectation(expect: Mapping[str, Any], path: Path) -> Expectation:
    cards, absent, empty = expect.get("cards", []), expect.get("absent", []), expect.get("empty", False)
    unknown = set(expect) - {"cards", "absent", "empty"}
    if unknown:
        raise CaseError(f"{path}: expect knows only cards, absent and empty, not {', '.join(sorted(unknown))}")
    if not isinstance(cards, list) or not all(
        isinstance(c, dict) and set(c) <= {"card", "indicator"} and isinstance(c.get("card"), str)
        and c.get("indicator", "info") in INDICATORS
        for c in cards
    ):
        raise CaseError(f"{path}: expect.cards is a list of {{\"card\": id, \"indicator\": {' | '.join(INDICATORS)}}}")
    if not isinstance(absent, list) or not all(isinstance(card, str) for card in absent):
        raise CaseError(f"{path}: expect.absent is a list of card ids")
    if not isinstance(empty, bool):
        raise CaseError(f"{path}: expect.empty is true or false")
    if empty and cards:
        raise CaseError(f"{path}: expect.empty contradicts expect.cards")
    # An expectation that nothing can fail is a mistake in the case, not a passing test.
    if not (cards or absent or empty):
        raise CaseError(f"{path}: expect names no cards, no absent cards and not empty: it would always pass")
    return Expectation(cards=tuple(cards), absent=tuple(absent), empty=empty)


def is_draft_order_list(value: Any) -> bool:
    """A list of FHIR resources, each with a resourceType and an id, as draftOrders needs."""
    return isinstance(value, list) and all(
        isinstance(d, dict) and isinstance(d.get("resourceType"), str) and isinstance(d.get("id"), str) for d in value
    )


def is_reference_list(value: Any) -> bool:
    """A list of references such as "MedicationRequest/draft-1", as selections needs."""
    return isinstance(value, list) and all(isinstance(s, str) for s in value)


def _check_draft_orders(data: Mapping[str, Any], path: Path) -> None:
    drafts, selections = data.get("draftOrders"), data.get("selections")
    if drafts is not None and not is_draft_order_list(drafts):
        raise CaseError(f"{path}: draftOrders is a list of FHIR resources, each with resourceType and id")
    if selections is not None and not is_reference_list(selections):
        raise CaseError(f"{path}: selections is a list of references such as \"MedicationRequest/draft-1\"")


def _check_request(request: Mapping[str, Any], service_id: str, path: Path) -> None:
    """A request the service would refuse can never meet an expectation: it is a broken case, not a failing one."""
    try:
        parse_hook_request(request, SERVICES_BY_ID[service_id].hook)
    except ServiceError as error:
        raise CaseError(f"{path}: not a valid {service_id} request: {'; '.join([error.message, *(error.details or ())])}") from None


def read_bundle(bundle_path: Path, case_path: Path) -> Mapping[str, Any]:
    """A patient Bundle file; anything else is a CaseError naming the case that uses it."""
    value = _read_json(bundle_path, case_path)
    entries = value.get("entry", []) if isinstance(value, dict) and value.get("resourceType") == "Bundle" else None
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise CaseError(f"{case_path}: {bundle_path} is not a FHIR Bundle with a list of entries")
    return value


def _read_json(path: Path, case_path: Path) -> Any:
    try:
        return read_json_file(path)
    except UnreadableJsonFile as error:
        where = f"{case_path}:" if path == case_path else f"{case_path}: cannot read {path}:"
        raise CaseError(f"{where} {error}") from None
