"""Observations of one value set, newest first, with their day, numeric value and reference range."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Iterator, Mapping

from cds_hooks import terminology
from cds_hooks.fhir_views import Observation
from cds_hooks.dates import first_day
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
    return tuple(results_in(record, value_set))


def results_in(record: PatientRecord, value_set: str, newest: date | None = None, oldest: date | None = None) -> Iterator[Observation]:
    """observations_in, read one at a time: a fact that stops at the first it can use models no more of the series.

    With `newest`, results dated after it are passed over; with `oldest`, reading ends at the first result dated
    before it or undated (PatientRecord.observations).
    """
    return (o for o in record.observations(value_set, newest, oldest) if str(o.status) in _RESULT_STATUSES)


# record.py reads the same day from the JSON to order a series before modelling it; the two must agree.
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


def unit_key(unit: str | None) -> str:
    """A unit as compared: case folded, µ (and "mc" in /mcL) read as u, ³ as 3, UCUM brackets and spaces removed, so
    the UCUM code and the printed unit of one unit ("umol/L" and "µmol/L", "m[IU]/mL" and "mIU/mL") are one key."""
    text = (unit or "").casefold().replace("µ", "u").replace("μ", "u").replace("³", "3").replace(" ", "")
    return text.replace("[", "").replace("]", "").replace("/mcl", "/ul")


def upper_limit(observation: Observation, to_common_unit: Mapping[str, float] | None = None) -> float | None:
    """The first positive referenceRange.high in the value's unit, or None: the same unit however it is spelled (the
    UCUM code or the printed unit of either), a high without a unit taken as the value's, or, when `to_common_unit`
    (unit_key -> factor to one common unit) lists both units, a high in another unit converted to the value's."""
    value_units = _unit_keys(observation.valueQuantity)
    value_factor = next((to_common_unit[u] for u in value_units if u in to_common_unit), None) if to_common_unit else None
    for reference_range in observation.referenceRange or []:
        high = reference_range.high
        if high is None or high.value is None or float(high.value) <= 0:
            continue
        high_units = _unit_keys(high)
        if not high_units or not value_units or high_units & value_units:
            return float(high.value)
        high_factor = next((to_common_unit[u] for u in high_units if u in to_common_unit), None) if to_common_unit else None
        if value_factor and high_factor:
            return float(high.value) * high_factor / value_factor
    return None


def _unit_keys(quantity: Any) -> set[str]:
    if quantity is None:
        return set()
    return {key for unit in (quantity.code, quantity.unit) if (key := unit_key(unit))}


def latest_measurement(record: PatientRecord, value_set: str, as_of: date, within_days: int | None = None) -> Measurement | None:
    """The newest numeric result on or before `as_of`, if it is no older than `within_days`."""
    oldest = as_of - timedelta(days=within_days) if within_days is not None else None
    for observation in results_in(record, value_set, newest=as_of, oldest=oldest):
        if (result := measurement(observation)) is not None:
            return result
    return None


def coded_value(observation: Observation, value_set: str) -> str | None:
    """The meaning (per the value set) of the Observation's coded value, e.g. 'positive' or 'ihc_3_plus'."""
    concept: Any = observation.valueCodeableConcept
    return terminology.coded_meaning(concept, value_set) if concept is not None else None
