"""The typed patient record: raw FHIR JSON filtered to what the rules read, then built into validated views.

Building a `fhir.resources` model costs ~25x a json.loads (~85 µs an Observation), so resources are filtered by
type and code on the raw JSON first, and what is kept is built into the narrow views of cds_hooks.fhir_views
(~5 µs each); Observations only when a fact reads them: the latest weight costs one view, not years of them.
Draft orders, a few per call, are full R4B MedicationRequest models, since suggestions copy them whole.
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from datetime import date, time
from typing import Any, Iterable, Iterator, Mapping

from fhir.resources.R4B.medicationrequest import MedicationRequest
from pydantic import BaseModel, ValidationError

from cds_hooks import terminology
from cds_hooks.dates import first_day
from cds_hooks.fhir_views import HISTORY_VIEWS, Condition, HistoryEntry, Observation, Patient
from cds_hooks.protocol.errors import InvalidRequest
from cds_hooks.terminology import MedicationMatch

log = logging.getLogger(__name__)

# Value sets whose Observations and Conditions the rules read; everything else is dropped unmodelled.
OBSERVATION_VALUE_SETS = (
    "her2_ihc", "her2_ish", "her2_ish_ratio", "her2_copy_number", "her2_interpretation", "her2_tissue_other",
    "lvef", "body_weight", "body_height", "bsa", "platelets", "neutrophils", "ast", "alt", "bilirubin_total", "hcg",
    "disease_status", "staging", "history_of_metastatic_cancer",
)
CONDITION_VALUE_SETS = (
    "breast_cancer", "her2_positive_breast_cancer", "her2_negative_breast_cancer", "metastatic",
    "history_of_metastatic_cancer", "brain_metastasis", "heart_failure", "lv_systolic_dysfunction", "pregnancy", "ild",
    "peripheral_neuropathy", "anaphylaxis", "angioedema", "ards",
)
_KEPT_OBSERVATION_VALUE_SETS = frozenset(OBSERVATION_VALUE_SETS)
_KEPT_CONDITION_VALUE_SETS = frozenset(CONDITION_VALUE_SETS)
# An Observation is kept when one of its codings is a code of these value sets as written; each such (system, code)
# with the kept value sets it is in, looked up once here rather than for every Observation of every call.
_KEPT_VALUE_SETS_BY_CODE = {
    (system, code): frozenset(terminology.value_sets_of({"system": system, "code": code}) & _KEPT_OBSERVATION_VALUE_SETS)
    for value_set in OBSERVATION_VALUE_SETS for system, code in terminology.value_set_codes(value_set)
}


@dataclass(frozen=True)
class MedicationRecord:
    """A medication resource from the record, as the view of the elements facts read, with the ingredient(s) it
    normalises to."""

    resource: HistoryEntry
    match: MedicationMatch
    text: str

    @property
    def reference(self) -> str:
        return f"{self.resource.get_resource_type()}/{self.resource.id}"


@dataclass(frozen=True)
class DraftOrder:
    """An unsigned order from context.draftOrders, normalised to an R4 MedicationRequest."""

    # The reference as the client named it (a DSTU2 client says MedicationOrder/...), used for delete actions.
    reference: str
    resource: MedicationRequest
    match: MedicationMatch | None
    text: str
    # The medication CodeableConcept as sent, a referenced Medication's code, or None: what `match` was read from.
    concept: Mapping[str, Any] | None

    @property
    def ingredients(self) -> frozenset[str]:
        """The ingredient keys the order normalises to; empty when its medication is not recognised."""
        return self.match.ingredients if self.match is not None else frozenset()


@dataclass(frozen=True)
class UnreadableResource:
    """A resource the checks would have read, left out because it is not valid FHIR R4."""

    reference: str
    # What the record calls it (the medication, test or diagnosis as written), for the clinician to find it.
    name: str


_NOT_READ = object()


class _LazyObservation:
    """A kept Observation as sent; its model is built the first time a fact reads it (None if it is not valid R4)."""

    __slots__ = ("raw", "_day", "_model", "_built", "_unreadable")

    def __init__(self, raw: dict[str, Any], unreadable: list[UnreadableResource]) -> None:
        self.raw = raw
        self._unreadable = unreadable
        self._day: Any = _NOT_READ
        self._model: Observation | None = None
        self._built = False

    @property
    def day(self) -> date | None:
        if self._day is _NOT_READ:
            self._day = _effective_day(self.raw)
        return self._day

    def model(self) -> Observation | None:
        if not self._built:
            self._model = _model(Observation, self.raw, self._unreadable)
            self._built = True
        return self._model


class _ObservationIndex:
    """The kept Observations by value set, grouped the first time a fact reads one and each value set sorted the
    first time it is read: a call whose rules read no Observation never looks at years of vitals and labs, and
    one that reads LVEF and weight never dates or models the labs.

    Each value set is read from one key of `prefetch`, the key's resources read (prefetch.PrefetchResources) when
    one of its value sets is first read: reading LVEF never looks at the labs key's Observations.
    """

    def __init__(
        self, prefetch: Mapping[str, list[dict[str, Any]]], keys: Mapping[str, frozenset[str]], unreadable: list[UnreadableResource]
    ) -> None:
        self._prefetch = prefetch
        self._unreadable = unreadable
        self._key_of = {value_set: key for key, value_sets in keys.items() for value_set in value_sets}
        self._keys = keys
        self._grouped: dict[str, list[dict[str, Any]]] = {}
        # One entry per resource, shared by the value sets its codings are in, so it is modelled once.
        self._entries: dict[Any, _LazyObservation] = {}
        self._series: dict[str, tuple[_LazyObservation, ...]] = {}

    def series(self, value_set: str) -> tuple[_LazyObservation, ...]:
        """The value set's kept Observations, newest first (undated last, else in record order)."""
        if value_set not in self._series:
            if value_set not in self._grouped and value_set in self._key_of:
                key = self._key_of[value_set]
                groups = _by_value_set(self._prefetch[key], self._keys[key])
                for each in self._keys[key]:
                    self._grouped[each] = groups.get(each, [])
            entries = [self._entry(resource) for resource in self._grouped.get(value_set, ())]
            # A stable sort: Observations of one day stay in record order.
            self._series[value_set] = tuple(sorted(entries, key=lambda e: e.day or date.min, reverse=True))
        return self._series[value_set]

    def _entry(self, resource: dict[str, Any]) -> _LazyObservation:
        # An Observation in two value sets is in the results of both their keys: one entry, one model, one
        # unreadable listing. The resources outlive the index (it holds the lists), so an id() is not reused.
        identity = _identity(resource)
        entry = self._entries.get(identity)
        if entry is None:
            entry = self._entries[identity] = _LazyObservation(resource, self._unreadable)
        return entry


@dataclass(frozen=True)
class PatientRecord:
    patient: Patient | None
    conditions: tuple[Condition, ...]
    medications: tuple[MedicationRecord, ...]
    draft_orders: tuple[DraftOrder, ...]
    # The Observations of OBSERVATION_VALUE_SETS, modelled when read.
    observation_index: _ObservationIndex = field(repr=False)
    # Resources that looked relevant but were not valid FHIR R4 and were left out; an Observation is added when a
    # fact first reads it.
    unreadable: list[UnreadableResource]

    def observations(self, value_set: str, newest: date | None = None, oldest: date | None = None) -> Iterator[Observation]:
        """The value set's valid Observations, newest first (undated last, else in record order), modelled as read.

        Reading without modelling: those dated after `newest` are skipped, and the series ends at the first one
        dated before `oldest` or undated, since everything after it is older or undated too.
        """
        if value_set not in _KEPT_OBSERVATION_VALUE_SETS:
            raise KeyError(f"Observations of value set {value_set!r} are not kept: add it to record.OBSERVATION_VALUE_SETS")
        for entry in self.observation_index.series(value_set):
            if oldest is not None and (entry.day is None or entry.day < oldest):
                return
            if newest is not None and entry.day is not None and entry.day > newest:
                continue
            model = entry.model()
            if model is not None:
                yield model


def build_record(
    prefetch: Mapping[str, list[dict[str, Any]]],
    draft_orders: Iterable[dict[str, Any]],
    observation_keys: Mapping[str, Iterable[str]] | None = None,
) -> PatientRecord:
    """Build the typed record from resolved prefetch resources and the request's draft orders.

    `observation_keys` names the prefetch keys whose queries ask for Observations, each with the value sets whose
    codes its query asks for: a key's results are that query's (CDS Hooks prefetch), so each value set's
    Observations are read from its own key and no other, and no other key's Observations are read. Without it
    (a record not built from a service's prefetch), every key's Observations are read for every kept value set.
    """
    by_type: dict[str, list[dict[str, Any]]] = {}
    for key in prefetch:
        if observation_keys is not None and key in observation_keys:
            continue  # read by the Observation index, when a fact first reads one of its value sets
        for resource in prefetch[key]:
            # A resource without a string resourceType is not FHIR; no rule reads it.
            if isinstance(resource, dict) and isinstance(resource_type := resource.get("resourceType"), str):
                by_type.setdefault(resource_type, []).append(resource)
    if observation_keys is None:
        observations: Mapping[str, list[dict[str, Any]]] = {"every key": by_type.get("Observation", [])}
        keys = {"every key": _KEPT_OBSERVATION_VALUE_SETS}
    else:
        observations = prefetch
        keys = {key: frozenset(value_sets) & _KEPT_OBSERVATION_VALUE_SETS for key, value_sets in observation_keys.items() if key in prefetch}
    drafts = list(draft_orders)
    index = medication_index(by_type.get("Medication", []) + drafts)
    unreadable: list[UnreadableResource] = []

    patient = next(iter(by_type.get("Patient", [])), None)
    conditions = [r for r in _unique(by_type.get("Condition", [])) if _is_relevant_condition(r)]
    medications: list[MedicationRecord] = []
    for resource_type, view in HISTORY_VIEWS.items():
        for resource in _unique(by_type.get(resource_type, [])):
            concept = medication_concept(resource, index)
            match = terminology.classify_medication(concept)
            if match is None:
                continue
            text = _concept_text(concept, match)
            model = _model(view, resource, unreadable, name=text)
            if model is not None:
                medications.append(MedicationRecord(model, match, text))

    return PatientRecord(
        patient=_model(Patient, patient, unreadable, name="the patient's sex and date of birth") if patient else None,
        conditions=tuple(m for m in (_model(Condition, r, unreadable) for r in conditions) if m),
        medications=tuple(medications),
        draft_orders=tuple(_draft_order(resource, index) for resource in drafts if is_medication_order(resource)),
        observation_index=_ObservationIndex(observations, keys, unreadable),
        unreadable=unreadable,
    )


def _by_value_set(observations: list[dict[str, Any]], value_sets: frozenset[str]) -> dict[str, list[dict[str, Any]]]:
    """The Observations of each of `value_sets`, in record order."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for resource in _unique(observations):
        for value_set in _kept_value_sets(resource):
            if value_set in value_sets:
                groups.setdefault(value_set, []).append(resource)
    return groups


def _effective_day(observation: Mapping[str, Any]) -> date | None:
    """The day facts.observations.effective_day reads from the model, read from the JSON: the same elements in the
    same order, and the same day, since a model keeps the date as written (its offset is not applied)."""
    if observation.get("effectiveDateTime") is not None:
        return first_day(observation["effectiveDateTime"])
    period = observation.get("effectivePeriod")
    if period is not None:
        return first_day(period.get("start")) if isinstance(period, dict) else None
    return first_day(observation.get("effectiveInstant") or observation.get("issued"))


def _unique(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Resources of one type, each once even if two prefetch keys returned it."""
    seen: set[Any] = set()
    unique = []
    for resource in resources:
        key = _identity(resource)
        if key not in seen:
            seen.add(key)
            unique.append(resource)
    return unique


def _identity(resource: Mapping[str, Any]) -> Any:
    """What tells one resource of a type from another: its id; without one it is itself, and an id of the wrong
    type is compared as text."""
    found = resource.get("id")
    return found if type(found) is str else id(resource) if found is None else str(found)


def _kept_value_sets(resource: Mapping[str, Any]) -> frozenset[str]:
    """The kept value sets the Observation's code is in (terminology.value_sets_of); none unless one of its codings
    is a kept code as written, or when it is not an Observation or was entered in error. Run on every resource of the
    Observation keys read."""
    if resource.get("resourceType") != "Observation" or resource.get("status") == "entered-in-error":
        return _NONE
    # Raw JSON from the client: a code, coding list or system of the wrong type is simply not a kept code.
    code = resource.get("code")
    codings = code.get("coding") if type(code) is dict else None
    if type(codings) is not list:
        return _NONE
    if len(codings) == 1:
        # Nearly every Observation has one coding: its value sets as listed, without the unions below.
        found = _listed_value_sets(codings[0])
        return _NONE if found is None else found
    kept = _NONE
    unlisted = []
    for coding in codings:
        if type(coding) is dict:
            found = _listed_value_sets(coding)
            if found is None:
                unlisted.append(coding)
            else:
                kept = kept | found
    if kept and unlisted:
        kept = kept.union(*(terminology.value_sets_of(coding) & _KEPT_OBSERVATION_VALUE_SETS for coding in unlisted))
    return kept


def _listed_value_sets(coding: Any) -> frozenset[str] | None:
    """The kept value sets of a coding whose (system, code) is a kept code as written; None for any other coding."""
    if type(coding) is not dict:
        return None
    try:
        return _KEPT_VALUE_SETS_BY_CODE.get((coding.get("system"), coding.get("code")))
    except TypeError:  # a list or object where a string belongs: not a kept code
        return None


_NONE: frozenset[str] = frozenset()


def _is_relevant_condition(resource: Mapping[str, Any]) -> bool:
    if _first_code(resource.get("verificationStatus")) == "entered-in-error":
        return False
    return bool(terminology.value_sets_of(resource.get("code")) & _KEPT_CONDITION_VALUE_SETS)


def _first_code(concept: Any) -> str | None:
    if isinstance(concept, dict):
        for coding in _json_list(concept.get("coding")):
            if isinstance(coding, dict) and coding.get("code"):
                return coding["code"]
    return None


def _json_list(value: Any) -> list[Any]:
    """A JSON array of the client's, or none: a number or object where FHIR has an array is not iterated (it answered
    500), and a string would be read one character at a time."""
    return value if isinstance(value, list) else []


def _model(model_type: type, resource: dict[str, Any], unreadable: list[UnreadableResource], name: str | None = None) -> Any:
    """The resource as `model_type`, or None when it is not valid; then it is added to `unreadable` under `name`,
    else under the text of its code."""
    try:
        return model_type.model_validate(resource)
    except ValidationError as error:
        resource_type = resource.get("resourceType")
        name = name or _concept_name(resource.get("code")) or f"an unnamed {resource_type}"
        unreadable.append(UnreadableResource(f"{resource_type}/{resource.get('id')}", name))
        # Field locations only: the error text itself can quote patient data.
        log.warning("left out invalid resource", extra={"resource_type": resource_type, "fields": _error_fields(error)})
        return None


def _error_fields(error: ValidationError) -> list[str]:
    return sorted({".".join(str(part) for part in item["loc"]) for item in error.errors()})


def warm_up() -> None:
    """Build one model of each `fhir.resources` type (draft orders) and the Condition and Patient views, with the
    elements records carry, at start-up.

    pydantic finishes each full model's validators lazily, ~3 ms per element type on first use; without this the
    first clinician after a restart would wait tens of milliseconds longer. The narrow views cost well under
    0.1 ms each on first use and are not warmed.
    """
    coded = {"coding": [{"system": "http://loinc.org", "code": "0-0", "display": "warm-up"}], "text": "warm-up"}
    subject = {"reference": "Patient/warm-up"}
    dosage = [{"timing": {"repeat": {"boundsPeriod": {"start": "2026-01-01"}, "frequency": 1, "period": 3, "periodUnit": "wk"}},
               "route": coded, "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"}}]}]
    Patient.model_validate({"resourceType": "Patient", "id": "w", "gender": "female", "birthDate": "1970-01-01",
                            "name": [{"given": ["w"], "family": "w"}], "identifier": [{"system": "urn:w", "value": "w"}]})
    Condition.model_validate({"resourceType": "Condition", "id": "w", "code": coded, "subject": subject, "clinicalStatus": coded,
                              "verificationStatus": coded, "onsetDateTime": "2026-01-01", "severity": coded, "stage": [{"summary": coded}],
                              "abatementAge": {"value": 1, "unit": "a"}, "recordedDate": "2026-01-01"})
    MedicationRequest.model_validate({"resourceType": "MedicationRequest", "id": "w", "status": "draft", "intent": "order", "subject": subject,
                                      "medicationCodeableConcept": coded, "authoredOn": "2026-01-01", "dosageInstruction": dosage,
                                      "category": [coded], "reasonCode": [coded], "note": [{"text": "w"}],
                                      "dispenseRequest": {"validityPeriod": {"start": "2026-01-01"}},
                                      "contained": [{"resourceType": "Medication", "id": "m", "code": coded}]})


# --- medications -----------------------------------------------------------------------------------


def medication_index(resources: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """Medication resources by their relative reference (Medication/id), from prefetch and the draft bundle."""
    index: dict[str, Mapping[str, Any]] = {}
    for resource in resources:
        if resource.get("resourceType") == "Medication" and resource.get("id"):
            index[f"Medication/{resource['id']}"] = resource
    return index


def medication_concept(resource: Mapping[str, Any], index: Mapping[str, Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The medication CodeableConcept of an order, statement or administration, following medicationReference."""
    concept = resource.get("medicationCodeableConcept")
    if isinstance(concept, dict):
        return concept
    reference = resource.get("medicationReference")
    if not isinstance(reference, dict):
        return None
    medication = _referenced_medication(resource, reference, index)
    if medication is not None:
        return medication["code"]
    # A reference we cannot resolve still has its display, which the documented name fallback may match.
    display = reference.get("display")
    return {"text": display} if isinstance(display, str) else None


def references_unknown_medication(resource: Mapping[str, Any], index: Mapping[str, Mapping[str, Any]]) -> bool:
    """Whether the resource names its drug only by a medicationReference to a coded Medication that neither it
    (contained) nor `index` holds."""
    reference = resource.get("medicationReference")
    return (
        not isinstance(resource.get("medicationCodeableConcept"), dict)
        and isinstance(reference, dict)
        and _referenced_medication(resource, reference, index) is None
    )


def _referenced_medication(
    resource: Mapping[str, Any], reference: Mapping[str, Any], index: Mapping[str, Mapping[str, Any]]
) -> Mapping[str, Any] | None:
    """The contained or indexed Medication a medicationReference points to, when it has a code."""
    target = reference.get("reference")
    medication = None
    if isinstance(target, str) and target.startswith("#"):
        medication = next(
            (c for c in _json_list(resource.get("contained")) if isinstance(c, dict) and c.get("id") == target[1:]), None
        )
    elif isinstance(target, str):
        medication = index.get(target) or index.get(_strip_base(target))
    return medication if isinstance(medication, dict) and isinstance(medication.get("code"), dict) else None


def _strip_base(reference: str) -> str:
    """'https://ehr/fhir/Medication/1' -> 'Medication/1'."""
    parts = reference.rstrip("/").split("/")
    return "/".join(parts[-2:]) if len(parts) >= 2 else reference


def _concept_text(concept: Mapping[str, Any] | None, match: MedicationMatch | None) -> str:
    """What the clinician would call this medication: the order's own text, else the ingredient name."""
    name = _concept_name(concept)
    if name is not None:
        return name
    if match:
        return " + ".join(terminology.ingredient_display(key) for key in sorted(match.ingredients))
    return "unnamed medication"


def _concept_name(concept: Any) -> str | None:
    """A CodeableConcept's text as the client wrote it, else its first coding's display; None without either."""
    if not isinstance(concept, dict):
        return None
    if isinstance(concept.get("text"), str) and concept["text"].strip():
        return concept["text"].strip()
    for coding in _json_list(concept.get("coding")):
        if isinstance(coding, dict) and isinstance(coding.get("display"), str) and coding["display"].strip():
            return coding["display"].strip()
    return None


# --- draft orders: R4, STU3 and DSTU2 shapes -------------------------------------------------------

_MEDICATION_ORDER_TYPES = ("MedicationRequest", "MedicationOrder")
# Fields kept when a draft must be rebuilt from its essentials because the client's shape is not R4.
_ESSENTIAL_FIELDS = (
    "resourceType", "id", "status", "intent", "subject", "authoredOn", "medicationCodeableConcept",
    "medicationReference", "dosageInstruction", "dispenseRequest", "category", "reasonCode", "contained", "note",
)


def is_medication_order(resource: Mapping[str, Any]) -> bool:
    return resource.get("resourceType") in _MEDICATION_ORDER_TYPES


def draft_reference(resource: Mapping[str, Any]) -> str:
    """A draft as selections and card actions name it: its type as the client sent it, and its id."""
    return f"{resource['resourceType']}/{resource.get('id')}"


def _draft_order(resource: dict[str, Any], index: Mapping[str, Mapping[str, Any]]) -> DraftOrder:
    reference = draft_reference(resource)
    normalised = normalise_medication_order(resource)
    model, problems = _read_draft(normalised)
    if model is None:
        model, problems = _read_draft({k: v for k, v in normalised.items() if k in _ESSENTIAL_FIELDS})
    if model is None:
        raise InvalidRequest(
            f"draft order {reference} is not a MedicationRequest we can read",
            details=[f"{reference}: {problem}" for problem in problems],
        )
    concept = medication_concept(normalised, index)
    match = terminology.classify_medication(concept)
    return DraftOrder(reference=reference, resource=model, match=match, text=_concept_text(concept, match), concept=concept)


def _read_draft(order: dict[str, Any]) -> tuple[MedicationRequest | None, list[str]]:
    """The order as a full model, or None and what stops it: invalid fields, or a date written as a JSON number."""
    try:
        model = MedicationRequest.model_validate(order)
    except ValidationError as error:
        return None, [f"invalid field {field}" for field in _error_fields(error)]
    numbers = _dates_written_as_numbers(model, order)
    if numbers:
        return None, [f"{path} is a date written as a number (FHIR JSON writes dates as strings)" for path in numbers]
    return model, []


def _dates_written_as_numbers(model: Any, value: Any, path: str = "") -> list[str]:
    """Where the model holds a date, dateTime, instant or time that the JSON gave as a number.

    fhir_core takes a number there as epoch seconds and keeps no trace of it: a bounds start of 20261123 would be
    a day in 1970, moving the planned first dose decades back. The record's views refuse such values
    (fhir_views._json_string); this holds draft orders, full models, to the same rule.
    """
    if isinstance(model, BaseModel) and isinstance(value, dict):
        names = _field_names(type(model))
        return [
            found
            for key, item in value.items() if type(item) is not str and key in names  # a string is never the problem
            for found in _dates_written_as_numbers(getattr(model, names[key]), item, f"{path}.{key}" if path else key)
        ]
    if isinstance(model, list) and isinstance(value, list) and len(model) == len(value):
        return [found for i, (element, item) in enumerate(zip(model, value)) for found in _dates_written_as_numbers(element, item, f"{path}[{i}]")]
    if isinstance(model, (date, time)) and not isinstance(value, str):  # a datetime is a date
        return [path]
    return []


@functools.cache
def _field_names(model_type: type[BaseModel]) -> dict[str, str]:
    """A model type's attribute names by their JSON names ("class" is the attribute `class_fhir`)."""
    return {field.alias or name: name for name, field in model_type.model_fields.items()}


def normalise_medication_order(resource: Mapping[str, Any]) -> dict[str, Any]:
    """An R4 MedicationRequest dict from what clients send.

    Tolerated: DSTU2 MedicationOrder (patient, dateWritten, reasonCodeableConcept, doseQuantity, timing
    periodUnits/durationUnits), STU3 dosage (doseQuantity directly on the dosage), and the Sandbox's single-object
    `category` and `reasonCode`.
    """
    order = dict(resource)
    if order.get("resourceType") == "MedicationOrder":
        order["resourceType"] = "MedicationRequest"
        if "patient" in order:
            order.setdefault("subject", order.pop("patient"))
        if "dateWritten" in order:
            order.setdefault("authoredOn", order.pop("dateWritten"))
        if "reasonCodeableConcept" in order:
            order.setdefault("reasonCode", order.pop("reasonCodeableConcept"))
        order.pop("prescriber", None)
    order.setdefault("intent", "order")
    order.setdefault("status", "draft")
    for name in ("category", "reasonCode"):
        if isinstance(order.get(name), dict):
            order[name] = [order[name]]
    if isinstance(order.get("dosageInstruction"), dict):
        order["dosageInstruction"] = [order["dosageInstruction"]]
    if isinstance(order.get("dosageInstruction"), list):
        order["dosageInstruction"] = [_r4_dosage(d) for d in order["dosageInstruction"] if isinstance(d, dict)]
    return order


def _r4_dosage(dosage: Mapping[str, Any]) -> dict[str, Any]:
    dosage = dict(dosage)
    moved = {name: dosage.pop(name) for name in ("doseQuantity", "doseRange", "rateQuantity", "rateRatio", "rateRange") if name in dosage}
    if moved:
        dosage.setdefault("doseAndRate", [moved])
    timing = dosage.get("timing")
    if isinstance(timing, dict) and isinstance(timing.get("repeat"), dict):
        dosage["timing"] = {**timing, "repeat": _r4_repeat(timing["repeat"])}
    return dosage


def _r4_repeat(repeat: Mapping[str, Any]) -> dict[str, Any]:
    """DSTU2 names the units of Timing.repeat `periodUnits` and `durationUnits`; STU3 and R4 drop the "s". Left as
    they are, every DSTU2 order repeating by a period fails to read, and the request gets no card at all."""
    repeat = dict(repeat)
    for dstu2, r4 in (("periodUnits", "periodUnit"), ("durationUnits", "durationUnit")):
        if dstu2 in repeat:
            repeat.setdefault(r4, repeat.pop(dstu2))
    return repeat
