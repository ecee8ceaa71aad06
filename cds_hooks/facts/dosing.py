"""Doses of HER2 agents: what a draft orders (in mg/kg where the weight allows) and the doses given before."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from cds_hooks import terminology
from cds_hooks.facts import Facts
from cds_hooks.facts.body_size import BodySize, weight_kg
from cds_hooks.dates import first_day
from cds_hooks.facts.observations import latest_measurement
from cds_hooks.facts.therapy import IGNORED_STATUSES, dose_day, recorded_period
from cds_hooks.record import DraftOrder, MedicationRecord

DoseUnit = Literal["mg/kg", "mg", "mg/m2"]
Route = Literal["intravenous", "subcutaneous"]

# UCUM codes and printed units seen for doses, lower-cased, with the unit they mean and the factor to it. The one
# table for every dose the facts read: ordered, given, and summed as cumulative doxorubicin (facts.cardiac).
_UNITS: dict[str, tuple[DoseUnit, float]] = {
    "mg/kg": ("mg/kg", 1.0), "mg/kg{dose}": ("mg/kg", 1.0),
    "mg": ("mg", 1.0), "g": ("mg", 1000.0),
    "mg/m2": ("mg/m2", 1.0), "mg/m^2": ("mg/m2", 1.0), "mg/m²": ("mg/m2", 1.0), "mg/(m2)": ("mg/m2", 1.0),
}
# Route words as EHRs print them (route text or coding display); codes alone are not read (see report).
_ROUTE_WORDS: dict[str, Route] = {
    "intravenous": "intravenous", "intravenously": "intravenous", "iv": "intravenous", "i.v.": "intravenous",
    "subcutaneous": "subcutaneous", "subcutaneously": "subcutaneous", "sc": "subcutaneous", "s.c.": "subcutaneous",
    "subcut": "subcutaneous", "sq": "subcutaneous",
}
_PERIOD_DAYS = {"d": 1, "wk": 7}
HER2_AGENTS = terminology.ingredients_in_class("her2_directed")


@dataclass(frozen=True)
class OrderedDose:
    value: float
    unit: DoseUnit
    route: Route | None
    # The route as written (text or display), for the card; None when the order gives no route.
    route_text: str | None
    # Days between doses from dosageInstruction[0].timing (21 = every 3 weeks); None when not given.
    interval_days: int | None

    def describe(self) -> str:
        return f"{self.value:g} {self.unit}"


@dataclass(frozen=True)
class WeightBasedDose:
    mg_per_kg: float
    ordered: OrderedDose
    # The weight the mg/kg was computed from, or that an mg/kg order will be computed with; None if none.
    weight: BodySize | None

    @property
    def converted_from_mg(self) -> bool:
        """Ordered in mg, so the mg/kg is a quotient of a dose that may have been rounded to vials."""
        return self.ordered.unit == "mg"

    def describe(self) -> str:
        if self.ordered.unit == "mg/kg":
            return self.ordered.describe()
        return f"{self.ordered.describe()} = {self.mg_per_kg:g} mg/kg at {_weight_text(self.weight)}"


@dataclass(frozen=True)
class RecordedDose:
    """A dose of a HER2 agent from the record: given (administration, single-date statement) or prescribed."""

    ingredients: frozenset[str]
    reference: str
    day: date | None
    given: bool
    value: float | None
    unit: DoseUnit | None


@dataclass(frozen=True)
class DoseLevel:
    """A recorded dose in mg/kg: as recorded, or its mg divided by the weight of that day."""

    reference: str
    day: date
    mg_per_kg: float
    # Recorded in mg and divided by that day's weight (see WeightBasedDose.converted_from_mg).
    converted_from_mg: bool


@dataclass(frozen=True)
class LastDoseDay:
    """The day of the last dose of an ingredient, and the record that dates it."""

    day: date
    # True: a dose given that day (administration, single-date statement), or planned for it by another draft of the
    # request (`drafted`). False: no dose given is recorded, and the day is the recorded end of a statement's or
    # request's period: the therapy stopped then, so the last dose was on or before it.
    given: bool
    source: str
    # A dose of another draft order of this request, planned for `day`: rules read drafts signed together as one plan.
    drafted: bool = False


def ordered_dose(order: DraftOrder) -> OrderedDose | None:
    """The structured dose of the draft's first dosage instruction; None without a quantity in a known unit."""
    dosages = order.resource.dosageInstruction or []
    if not dosages:
        return None
    dosage = dosages[0]
    quantity = _dose_quantity(dosage)
    converted = dose_in_known_unit(quantity)
    if converted is None:
        return None
    route, route_text = order_route(order)
    return OrderedDose(converted[0], converted[1], route, route_text, interval_days(dosage))


def order_route(order: DraftOrder) -> tuple[Route | None, str | None]:
    """The route of the draft's first dosage instruction: what it means and how it is written."""
    dosages = order.resource.dosageInstruction or []
    concept = dosages[0].route if dosages else None
    return _route(concept), _route_text(concept)


def dose_written(order: DraftOrder) -> str | None:
    """The draft's dose as written, even in a unit the rules do not read ("2 vials"); None when there is none."""
    dosages = order.resource.dosageInstruction or []
    quantity = _dose_quantity(dosages[0]) if dosages else None
    if quantity is None or quantity.value is None:
        return dosages[0].text if dosages and dosages[0].text else None
    return f"{float(quantity.value):g} {quantity.unit or quantity.code or ''}".strip()


def order_weight(facts: Facts, order: DraftOrder) -> BodySize | None:
    """The latest weight within settings.weight_lookback_days before (and on) the dose day: the weight the dose is
    given at, not the one of the day the draft was written or its course began."""
    return weight_on(facts, dose_day(order, facts.as_of))


def weight_on(facts: Facts, day: date) -> BodySize | None:
    """body_size.weight_kg as of `day` (the same lookback and unit conversion)."""
    if day == facts.as_of:
        return facts.get(weight_kg)
    return facts.on(day).get(weight_kg)


def last_recorded_weight(facts: Facts, order: DraftOrder) -> str | None:
    """The newest weight at any age, as written, to show next to "no current weight"."""
    found = latest_measurement(facts.record, "body_weight", dose_day(order, facts.as_of))
    if found is None:
        return None
    when = f" on {found.day.isoformat()}" if found.day else ""
    return f"{found.value:g} {found.unit or ''}".strip() + when


def dose_mg_per_kg(facts: Facts, order: DraftOrder) -> WeightBasedDose | None:
    """The ordered dose in mg/kg: as written, or mg divided by the weight of the dose day; None if it cannot be known."""
    dose = ordered_dose(order)
    if dose is None or dose.unit == "mg/m2":
        return None
    weight = order_weight(facts, order)
    if dose.unit == "mg/kg":
        return WeightBasedDose(dose.value, dose, weight)
    if weight is None or weight.value <= 0:
        return None
    return WeightBasedDose(round(dose.value / weight.value, 2), dose, weight)


def draft_doses(facts: Facts) -> dict[str, WeightBasedDose]:
    """The mg/kg of every draft order that has one, by order reference (computed once per request)."""
    return {order.reference: dose for order in facts.record.draft_orders if (dose := dose_mg_per_kg(facts, order)) is not None}


def recorded_doses(facts: Facts) -> tuple[RecordedDose, ...]:
    """Doses of HER2 agents recorded before now, oldest first."""
    found = [dose for medication in facts.record.medications if (dose := _recorded(medication)) is not None]
    return tuple(sorted(found, key=lambda d: d.day or date.min))


def previous_levels(facts: Facts, ingredient: str, before: date) -> tuple[DoseLevel, ...]:
    """Recorded doses of one ingredient dated before `before` in mg/kg, oldest first; mg doses are converted with
    the weight of their day, so only the doses of the ingredient asked about need a weight looked up."""
    levels = []
    for dose in facts.get(recorded_doses):
        if ingredient in dose.ingredients and dose.day is not None and dose.day < before:
            if (mg_per_kg := _mg_per_kg(facts, dose)) is not None:
                levels.append(DoseLevel(dose.reference, dose.day, mg_per_kg, dose.unit == "mg"))
    return tuple(levels)


def unweighed_doses(facts: Facts, ingredient: str, before: date) -> tuple[RecordedDose, ...]:
    """Recorded doses of one ingredient dated before `before` in mg with no weight of their day (weight_on), oldest
    first: their mg/kg, and so whether they were a reduction, cannot be known (previous_levels leaves them out)."""
    return tuple(
        dose for dose in facts.get(recorded_doses)
        if ingredient in dose.ingredients and dose.day is not None and dose.day < before and dose.unit == "mg"
        and dose.value is not None and _mg_per_kg(facts, dose) is None
    )


def last_dose_day(facts: Facts, ingredient: str, before: date) -> LastDoseDay | None:
    """The last dose of the ingredient before `before`, from the best evidence the record has: the newest dose given
    (administration or single-date statement), else the newest recorded end of its therapy (`Exposure.last_dose` of
    a statement or request; EHRs that send no administrations often record only that), unless a later therapy of the
    ingredient started after it. None when neither is dated."""
    given = [(d.day, d.reference) for d in facts.get(recorded_doses)
             if ingredient in d.ingredients and d.given and d.day is not None and d.day < before]
    if given:
        day, source = max(given)
        return LastDoseDay(day, True, source)
    ended = [(e.last_dose, e.source) for e in facts.exposures
             if ingredient in e.ingredients and e.last_dose is not None and e.last_dose < before]
    if ended:
        day, source = max(ended)
        # A therapy of the ingredient that started after that end (the next order or statement) continued it, and
        # the record does not date its doses: the end no longer dates the last dose.
        if not any(ingredient in e.ingredients and e.start is not None and day < e.start < before for e in facts.exposures):
            return LastDoseDay(day, False, source)
    return None


def undated_records(facts: Facts, ingredient: str) -> tuple[MedicationRecord, ...]:
    """The ingredient's medication records that date nothing and whose status does not say the therapy continues,
    so no exposure comes from them: the record shows the drug, but not when it was given."""
    dated = {e.source for e in facts.exposures}
    return tuple(m for m in facts.record.medications if ingredient in m.match.ingredients
                 and str(m.resource.status) not in IGNORED_STATUSES and m.reference not in dated)


def _recorded(medication: MedicationRecord) -> RecordedDose | None:
    if not medication.match.ingredients & HER2_AGENTS:
        return None
    resource = medication.resource
    if str(resource.status) in IGNORED_STATUSES:
        return None
    day, given, quantity = _dose_of(resource)
    converted = dose_in_known_unit(quantity)
    value, unit = converted if converted else (None, None)
    return RecordedDose(medication.match.ingredients, medication.reference, day, given, value, unit)


def _mg_per_kg(facts: Facts, dose: RecordedDose) -> float | None:
    if dose.unit == "mg/kg":
        return dose.value
    if dose.unit == "mg" and dose.day is not None and (weight := weight_on(facts, min(dose.day, facts.as_of))) is not None:
        return round(dose.value / weight.value, 2)  # type: ignore[operator]
    return None


def _dose_of(resource: Any) -> tuple[date | None, bool, Any]:
    """Day, whether it was given, and dose Quantity of an administration, statement or request."""
    kind = resource.get_resource_type()
    if kind == "MedicationAdministration":
        return recorded_period(resource)[0], True, resource.dosage.dose if resource.dosage else None
    if kind == "MedicationStatement":
        dosages = resource.dosage or []
        return recorded_period(resource)[0], resource.effectiveDateTime is not None, _dose_quantity(dosages[0]) if dosages else None
    # A request's level is prescribed when it is written; one that records no authoredOn is dated, as its exposure
    # is, by its dosage bounds or validity period (a reduced order dated that way is still a reduction).
    dosages = resource.dosageInstruction or []
    return first_day(resource.authoredOn) or recorded_period(resource)[0], False, _dose_quantity(dosages[0]) if dosages else None


def _dose_quantity(dosage: Any) -> Any:
    rates = dosage.doseAndRate or []
    return rates[0].doseQuantity if rates else None


def dose_in_known_unit(quantity: Any) -> tuple[float, DoseUnit] | None:
    """A dose Quantity as (value, unit) in mg, mg/kg or mg/m2, read from its code, else its printed unit; None for
    other units or no value."""
    if quantity is None or quantity.value is None:
        return None
    for written in (quantity.code, quantity.unit):
        if written and written.strip().lower() in _UNITS:
            unit, factor = _UNITS[written.strip().lower()]
            return round(float(quantity.value) * factor, 4), unit
    return None


def _route(concept: Any) -> Route | None:
    text = _route_text(concept)
    if text is None:
        return None
    kinds = {_ROUTE_WORDS[word] for word in text.lower().replace(",", " ").split() if word in _ROUTE_WORDS}
    return kinds.pop() if len(kinds) == 1 else None


def _route_text(concept: Any) -> str | None:
    if concept is None:
        return None
    if concept.text:
        return concept.text
    return next((c.display for c in concept.coding or [] if c.display), None)


def interval_days(dosage: Any) -> int | None:
    """Days between doses that a Dosage's timing writes (21 = every 3 weeks); None without one dose per period in
    days or weeks."""
    repeat = dosage.timing.repeat if dosage.timing else None
    if repeat is None or repeat.period is None or str(repeat.periodUnit) not in _PERIOD_DAYS:
        return None
    frequency = repeat.frequency or 1
    if frequency != 1:
        return None
    return round(float(repeat.period) * _PERIOD_DAYS[str(repeat.periodUnit)])


def _weight_text(weight: BodySize | None) -> str:
    if weight is None:
        return "no current weight"
    when = f" on {weight.day.isoformat()}" if weight.day else ""
    return f"{weight.value:g} kg{when}"
