"""Observations of one value set, newest first, with their day, numeric value and reference range."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from fhir.resources.R4B.observation import Observation

from cds_hooks import terminology
from cds_hooks.facts.dates import first_day
from cds_hooks.record import PatientRecord

# Observation statuses that carry a usable result.
_RESULT_STATUSES = frozenset({"final", "amended", "corrected", "preliminary"})


@dataclass(frozen=True)
class Measurement:
    """One numeric result as the rules read it, with the resource it came from."""

    value: float
    unit: str | None
    day: date | None
    reference: str
    # Upper and lower limits of the Observation's own reference range, when it gives them.
    high: float | None = None
    low: float | None = None


def observations_in(record: PatientRecord, value_set: str) -> tuple[Observation, ...]:
    """Observations with a result whose code is in the value set, newest first (undated last)."""
    found = [
        o for o in record.observations
        if str(o.status) in _RESULT_STATUSES and terminology.in_value_set(o.code.model_dump(exclude_none=True), value_set)
    ]
    return tuple(sorted(found, key=lambda o: effective_day(o) or date.min, reverse=True))


def effective_day(observation: Observation) -> date | None:
    if observation.effectiveDateTime is not None:
        return first_day(observation.effectiveDateTime)
    if observation.effectivePeriod is not None:
        return first_day(observation.effectivePeriod.start)
    return first_day(observation.effectiveInstant or observation.issued)


def measurement(observation: Observation) -> Measurement | None:
    """The Observation's valueQuantity as a Measurement, or None when it has no numeric value."""
    quantity = observation.valueQuantity
    if quantity is None or quantity.value is None:
        return None
    ranges = observation.referenceRange or []
    high = next((float(r.high.value) for r in ranges if r.high is not None and r.high.value is not None), None)
    low = next((float(r.low.value) for r in ranges if r.low is not None and r.low.value is not None), None)
    return Measurement(
        value=float(quantity.value),
        unit=quantity.code or quantity.unit,
        day=effective_day(observation),
        reference=f"Observation/{observation.id}",
        high=high,
        low=low,
    )


def measurements(record: PatientRecord, value_set: str) -> tuple[Measurement, ...]:
    """Numeric results of the value set, newest first."""
    return tuple(m for o in observations_in(record, value_set) if (m := measurement(o)) is not None)


def latest_measurement(record: PatientRecord, value_set: str, as_of: date, within_days: int | None = None) -> Measurement | None:
    """The newest numeric result on or before `as_of`, if it is no older than `within_days`."""
    for result in measurements(record, value_set):
        if result.day is not None and result.day > as_of:
            continue
        if within_days is not None and (result.day is None or result.day < as_of - timedelta(days=within_days)):
            return None
        return result
    return None


def coded_value(observation: Observation, value_set: str) -> str | None:
    """The meaning (per the value set) of the Observation's coded value, e.g. 'positive' or 'ihc_3_plus'."""
    concept: Any = observation.valueCodeableConcept
    return terminology.coded_meaning(concept.model_dump(exclude_none=True), value_set) if concept is not None else None
