"""Therapy exposures: which drug, from when to when, from MedicationStatement/Request/Administration.

"Concurrent" and "completed N months ago" are computed from these periods, never guessed from status alone.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from cds_hooks.facts.dates import first_day, last_day
from cds_hooks.record import DraftOrder, MedicationRecord, PatientRecord

# HER2-directed and anthracycline regimens are given in cycles of up to 21 days, so one recorded dose exposes
# the patient until the next would be due: a drug started 10 days after a dose is concurrent with it, one
# started on day 21 (the usual AC -> TH switch) is sequential.
DOSE_COVERAGE = timedelta(days=20)

_IGNORED_STATUSES = frozenset({"entered-in-error", "not-taken", "not-done", "cancelled"})
# Statuses meaning the therapy continues (or is planned) unless an end date says otherwise.
_CONTINUING_STATUSES = frozenset({"active", "intended", "on-hold", "in-progress", "draft"})


@dataclass(frozen=True)
class Exposure:
    ingredients: frozenset[str]
    text: str
    source: str
    status: str
    start: date | None
    # Last day of exposure; None means it continues with no planned end.
    end: date | None

    @property
    def ongoing(self) -> bool:
        return self.end is None

    def overlaps(self, start: date, end: date | None = None) -> bool:
        """Whether this exposure shares at least one day with [start, end] (end None = open-ended)."""
        if self.end is not None and self.end < start:
            return False
        if end is not None and self.start is not None and self.start > end:
            return False
        return True


def exposures(record: PatientRecord) -> tuple[Exposure, ...]:
    """Every medication exposure in the record (drafts excluded), oldest first."""
    found = [exposure for medication in record.medications if (exposure := _exposure(medication)) is not None]
    return tuple(sorted(found, key=lambda e: e.start or date.min))


def planned_period(order: DraftOrder, as_of: date) -> tuple[date, date | None]:
    """When a draft order would run: its dosage bounds or validity period, else from its authoring date or today."""
    start, end = _request_period(order.resource)
    return start or as_of, end


def _exposure(medication: MedicationRecord) -> Exposure | None:
    resource = medication.resource
    status = str(resource.status or "unknown")
    if status in _IGNORED_STATUSES:
        return None
    start, recorded_end = _recorded_period(resource)
    single_doses = resource.get_resource_type() == "MedicationAdministration"
    if recorded_end is not None or (status in _CONTINUING_STATUSES and not single_doses):
        end = recorded_end
    elif start is not None:
        end = start + DOSE_COVERAGE
    else:
        return None
    return Exposure(
        ingredients=medication.match.ingredients,
        text=medication.text,
        source=medication.reference,
        status=status,
        start=start,
        end=end,
    )


def _recorded_period(resource: Any) -> tuple[date | None, date | None]:
    """Start and end days written on the resource, whichever element its type uses."""
    resource_type = resource.get_resource_type()
    if resource_type in ("MedicationStatement", "MedicationAdministration"):
        period = resource.effectivePeriod
        if period is not None:
            end = last_day(period.end)
            if resource_type == "MedicationAdministration" and end is not None:
                end += DOSE_COVERAGE
            return first_day(period.start), end
        # A single moment is one dose; its exposure is DOSE_COVERAGE, not an end date.
        return first_day(resource.effectiveDateTime), None
    return _request_period(resource)


def _request_period(resource: Any) -> tuple[date | None, date | None]:
    """A MedicationRequest's period: dosage bounds, else dispense validity, else from its authoring date."""
    bounds = _dosage_bounds(resource)
    validity = resource.dispenseRequest.validityPeriod if resource.dispenseRequest else None
    start = (
        first_day(bounds.start if bounds else None)
        or first_day(validity.start if validity else None)
        or first_day(resource.authoredOn)
    )
    end = last_day(bounds.end if bounds else None) or last_day(validity.end if validity else None)
    return start, end


def _dosage_bounds(resource: Any) -> Any:
    for dosage in resource.dosageInstruction or []:
        repeat = dosage.timing.repeat if dosage.timing else None
        if repeat is not None and repeat.boundsPeriod is not None:
            return repeat.boundsPeriod
    return None
