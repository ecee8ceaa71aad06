"""Therapy exposures: which drug, from when to when, from MedicationStatement/Request/Administration.

"Concurrent" and "completed N months ago" are computed from these periods, never guessed from status alone.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Iterable

from cds_hooks.dates import first_day, last_day
from cds_hooks.record import DraftOrder, MedicationRecord, PatientRecord

# HER2-directed and anthracycline regimens are given in cycles of up to 21 days, so one recorded dose exposes
# the patient until the next would be due: a drug started 10 days after a dose is concurrent with it, one
# started on day 21 (the usual AC -> TH switch) is sequential.
DOSE_COVERAGE = timedelta(days=20)

# A MedicationRequest still in "draft" was never signed: an order someone began, not therapy given or running (the
# drafts a clinician is signing now come in the request's draftOrders, not as exposures).
IGNORED_STATUSES = frozenset({"entered-in-error", "not-taken", "not-done", "cancelled", "draft"})
# An order or statement whose drug is withheld for now, to resume later (FHIR R4 MedicationRequest and
# MedicationStatement status "on-hold").
ON_HOLD = "on-hold"
# Statuses meaning the therapy continues (or is planned) unless an end date says otherwise.
_CONTINUING_STATUSES = frozenset({"active", "intended", ON_HOLD, "in-progress"})
# Statuses of a signed order or statement that is given when its start comes ("intended" is only planned).
_SIGNED_STATUSES = frozenset({"active", ON_HOLD})
# Statuses with which a record says the drug is not being given now, whatever its dates.
HELD_OR_STOPPED = frozenset({ON_HOLD, "stopped"})
# Statuses with which an order or statement says its therapy is over: a period end after the day of the record was
# the plan, not when it ended.
_ENDED_STATUSES = frozenset({"stopped", "completed"})
# UCUM units of Timing periods and Durations, in days (a month as 30 days, a year as 365).
_UNIT_DAYS = {"d": 1, "wk": 7, "mo": 30, "a": 365}


@dataclass(frozen=True)
class Exposure:
    ingredients: frozenset[str]
    text: str
    source: str
    status: str
    start: date | None
    # Last day of exposure; None means it continues with no planned end.
    end: date | None
    # The last day a dose was (or, by a recorded end, could have been) given: an administration's day, a statement's
    # single day, or the recorded end of a statement or request. None while ongoing, or when the record gives no end.
    last_dose: date | None = None
    # Why the record says it is held, stopped or changed (a statement's or request's statusReason), in its own words.
    status_reason: str | None = None

    @property
    def ongoing(self) -> bool:
        return self.end is None

    def starts_after(self, day: date) -> bool:
        """Whether the record dates its start after `day`: on that day the course has not begun."""
        return self.start is not None and self.start > day

    @property
    def resource_type(self) -> str:
        """The type of the record it comes from: an administration records a dose given, not a plan or a hold."""
        return self.source.split("/")[0]

    @property
    def halted(self) -> bool:
        """Whether it is an order or statement whose status says its therapy is over (stopped, completed)."""
        return self.status in _ENDED_STATUSES and self.resource_type != "MedicationAdministration"

    def describe(self) -> str:
        """How the record shows it, for card text: "MedicationStatement active, since 2026-11-02, no end date"."""
        kind = self.resource_type
        since = f"since {self.start.isoformat()}" if self.start else "start date not recorded"
        until = "no end date" if self.end is None else f"exposure to {self.end.isoformat()}"
        return f"{kind} {self.status}, {since}, {until}"

    def overlaps(self, start: date, end: date | None = None) -> bool:
        """Whether this exposure shares at least one day with [start, end] (end None = open-ended)."""
        if self.end is not None and self.end < start:
            return False
        if end is not None and self.start is not None and self.start > end:
            return False
        return True


def exposures(record: PatientRecord, record_day: date) -> tuple[Exposure, ...]:
    """Every medication exposure in the record as it stands on `record_day`, oldest first (neither the request's draft
    orders nor unsigned drafts the record holds)."""
    found = [exposure for medication in record.medications if (exposure := _exposure(medication, record_day)) is not None]
    return tuple(sorted(found, key=lambda e: e.start or date.min))


@dataclass(frozen=True)
class LastDose:
    """When a therapy's last dose was, as far as the record shows."""

    # The newest recorded last dose; None when a later exposure does not record when its last dose was.
    day: date | None
    # The last dose was on or after this day: `day` when known, else the start of the exposure that leaves it open.
    at_least: date
    sources: tuple[str, ...]
    # The drugs of the exposures that gave it (a card names the drug given last, T-DM1 after trastuzumab).
    ingredients: frozenset[str]


def last_dose_of(found: Iterable[Exposure]) -> LastDose | None:
    """The last dose over these exposures; None when none of them is dated."""
    found = list(found)
    day = max((e.last_dose for e in found if e.last_dose is not None), default=None)
    # An exposure with no recorded last dose still gave one on or after its start.
    open_starts = [e.start for e in found if e.last_dose is None and e.start is not None]
    floor = max(open_starts, default=None)
    if floor is not None and (day is None or floor > day):
        return _last_dose(None, floor, [e for e in found if e.last_dose is None and e.start == floor])
    if day is None:
        return None
    return _last_dose(day, day, [e for e in found if e.last_dose == day])


def _last_dose(day: date | None, at_least: date, given: list[Exposure]) -> LastDose:
    return LastDose(day, at_least, tuple(e.source for e in given), frozenset().union(*(e.ingredients for e in given)))


def dosed_until(found: Iterable[Exposure], day: date) -> date | None:
    """How far therapy over these exposures had got by `day`: its last dose (`last_dose_of`), not the end of that
    dose's cycle (DOSE_COVERAGE), and never past `day`; `day` itself while an exposure recorded as continuing has no
    dose dated since it started. None when none of them is dated."""
    found = list(found)
    last = last_dose_of(found)
    if last is None:
        return None
    # Doses dated after a continuing order or statement began show how far it got; with none, it runs to today.
    continuing = any(e.ongoing and e.start is not None and e.start >= last.at_least for e in found)
    return day if continuing else min(last.at_least, day)


def started_before(found: Iterable[Exposure], ingredient: str, day: date) -> bool:
    """Whether the ingredient is recorded as started before `day`, i.e. an order for `day` continues or restarts it."""
    return bool(exposures_started_before(found, ingredient, day))


def exposures_started_before(found: Iterable[Exposure], ingredient: str, day: date) -> tuple[Exposure, ...]:
    """The exposures to the ingredient that started before `day`.

    An undated record counts as before: it cannot show that this is the first dose.
    """
    return tuple(e for e in found if ingredient in e.ingredients and (e.start is None or e.start < day))


def running_over(found: Iterable[Exposure], ingredients: frozenset[str], start: date, end: date | None = None) -> tuple[Exposure, ...]:
    """The exposures to any of these ingredients that cover [start, end] and are not held or stopped: an order or
    statement over those days, or a dose given within the cycle before them (DOSE_COVERAGE)."""
    return tuple(e for e in found if e.ingredients & ingredients and e.status not in HELD_OR_STOPPED and e.overlaps(start, end))


def courses_ahead(found: Iterable[Exposure], day: date) -> tuple[Exposure, ...]:
    """Signed orders and statements, active or on hold, whose start is after `day`: a course about to start."""
    return tuple(
        e for e in found
        if e.resource_type != "MedicationAdministration" and e.status in _SIGNED_STATUSES and e.starts_after(day)
    )


def planned_period(order: DraftOrder, as_of: date) -> tuple[date, date | None]:
    """When a draft order would run: its dosage bounds or validity period, else from its authoring date or today."""
    start, end = _request_period(order.resource)
    return start or as_of, end


# dose_day in words, for rule thresholds.
DOSE_DAY = "the dose day (the draft's planned start, or today when that day is past)"


def dose_day(order: DraftOrder, as_of: date) -> date:
    """The day a drafted dose is given, for what must be known before it (labs, weight, LVEF): its planned start,
    or today when that day is past.

    A dose not yet given cannot be given on a day already past, so a draft started weeks ago (a course's first day)
    must be read against today's results, not those before that day. planned_period stays the course's own start.
    """
    return max(planned_period(order, as_of)[0], as_of)


# dose_period in words, for rule thresholds.
DOSE_PERIOD = f"from {DOSE_DAY} to the planned end (that day alone when the planned end is past)"


def dose_period(order: DraftOrder, as_of: date) -> tuple[date, date | None]:
    """The days a drafted dose runs over, for what runs alongside it: from its dose day to its planned end (None =
    open-ended), never ending before the dose day.

    A draft whose planned course is already over is still a dose ordered now: it is given on its dose day, so the
    window keeps that day rather than becoming empty and hiding what runs on it.
    """
    day = dose_day(order, as_of)
    end = planned_period(order, as_of)[1]
    return day, None if end is None else max(end, day)


@dataclass(frozen=True)
class CourseLimit:
    """What ends a drafted course: its last planned day, and how the order says so, in words."""

    end: date
    how: str


def course_limit(order: DraftOrder, start: date) -> CourseLimit | None:
    """The end an order writes into its course: the latest end its scheduled dosages (phases: a loading dose, weekly
    then 3-weekly) write, each a bounds end, a number of doses (timing count) or a bounds duration; else the
    dispense's expected supply duration. Counts and durations run from `start`, the day of its first dose. None for
    an open-ended order, and none from the dosages while one of them writes no end: a maintenance phase with no end
    after a fixed one continues the course. The validity period of the prescription is not a course length and is
    not read."""
    phases = [dosage.timing.repeat for dosage in order.resource.dosageInstruction or [] if dosage.timing and dosage.timing.repeat]
    limits = [_phase_limit(repeat, start) for repeat in phases]
    if limits and all(limit is not None for limit in limits):
        return max((limit for limit in limits if limit is not None), key=lambda limit: limit.end)
    supply = order.resource.dispenseRequest.expectedSupplyDuration if order.resource.dispenseRequest else None
    if supply is not None and (days := _days(supply.value, supply.code or supply.unit)) is not None:
        written = f"{supply.value:g} {supply.unit or supply.code}"
        return CourseLimit(start + timedelta(days=round(days)), f"a supply for {written}")
    return None


def _phase_limit(repeat: Any, start: date) -> CourseLimit | None:
    """The end one dosage's timing writes: a bounds end, a number of doses, or a bounds duration; None when it writes
    none. A single dose needs no interval: it is given on `start`."""
    if repeat.boundsPeriod is not None and (end := last_day(repeat.boundsPeriod.end)) is not None:
        return CourseLimit(end, f"ends on {end.isoformat()}")
    interval = _days(repeat.period, repeat.periodUnit)
    if repeat.count == 1:
        return CourseLimit(start, "1 dose")
    if repeat.count and interval is not None:
        # The last of `count` doses, `interval / frequency` days apart.
        spacing = interval / float(repeat.frequency or 1)
        return CourseLimit(start + timedelta(days=round(spacing * (repeat.count - 1))), f"{repeat.count} doses")
    duration = repeat.boundsDuration
    if duration is not None and (days := _days(duration.value, duration.code or duration.unit)) is not None:
        written = f"{duration.value:g} {duration.unit or duration.code}"
        return CourseLimit(start + timedelta(days=round(days)), f"for {written}")
    return None


def _days(value: Any, unit: Any) -> float | None:
    """A FHIR Timing period or Duration in days; None for units other than days, weeks, months and years."""
    if value is None or unit not in _UNIT_DAYS:
        return None
    return float(value) * _UNIT_DAYS[unit]


def _exposure(medication: MedicationRecord, record_day: date) -> Exposure | None:
    resource = medication.resource
    status = str(resource.status or "unknown")
    if status in IGNORED_STATUSES:
        return None
    start, recorded_end = recorded_period(resource)
    resource_type = resource.get_resource_type()
    if status in _ENDED_STATUSES and resource_type != "MedicationAdministration" and recorded_end is not None:
        # Stopped or completed by the day of the record: it ended then at the latest (not before it began).
        recorded_end = max(min(recorded_end, record_day), start) if start is not None else min(recorded_end, record_day)
    if resource_type == "MedicationAdministration":
        # Each recorded dose exposes the patient for the cycle after it.
        last_dose = recorded_end or start
        if last_dose is None:
            return None
        end = last_dose + DOSE_COVERAGE
    elif recorded_end is not None or status in _CONTINUING_STATUSES:
        last_dose = end = recorded_end
    elif start is not None:
        # Stopped or completed without an end date: counted as one cycle. A statement of a single moment is one
        # dose; a request or a period without an end does not say when the last dose was.
        end = start + DOSE_COVERAGE
        last_dose = start if resource_type == "MedicationStatement" and resource.effectiveDateTime is not None else None
    else:
        return None
    return Exposure(
        ingredients=medication.match.ingredients,
        text=medication.text,
        source=medication.reference,
        status=status,
        start=start,
        end=end,
        last_dose=last_dose,
        status_reason=_status_reason(resource),
    )


def _status_reason(resource: Any) -> str | None:
    """A statement's or request's first statusReason as written: its text, else its first display. An administration
    has one only when the dose was not given, which is no exposure."""
    resource_type = resource.get_resource_type()
    if resource_type == "MedicationRequest":
        reasons = [resource.statusReason] if resource.statusReason is not None else []
    elif resource_type == "MedicationStatement":
        reasons = resource.statusReason or []
    else:
        return None
    words = [reason.text or next((c.display for c in reason.coding or [] if c.display), None) for reason in reasons]
    return next((str(w) for w in words if w), None)


def recorded_period(resource: Any) -> tuple[date | None, date | None]:
    """Start and end days written on the resource, whichever element its type uses."""
    resource_type = resource.get_resource_type()
    if resource_type in ("MedicationStatement", "MedicationAdministration"):
        period = resource.effectivePeriod
        if period is not None:
            return first_day(period.start), last_day(period.end)
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
