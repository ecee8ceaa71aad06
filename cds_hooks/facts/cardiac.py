"""Cardiac facts: the LVEF series and its pre-HER2 baseline, when the next LVEF is due, heart failure on record,
and the cumulative doxorubicin dose (clinical reference Part B2, A3.2)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

from cds_hooks import terminology
from cds_hooks.facts import Facts, body_size, disease
from cds_hooks.facts.body_size import BodySize
from cds_hooks.facts.dosing import dose_in_known_unit, interval_days
from cds_hooks.dates import add_months, first_day
from cds_hooks.facts.observations import effective_day, measurement, observations_in
from cds_hooks.facts.therapy import IGNORED_STATUSES, ON_HOLD, Exposure, LastDose, last_dose_of, planned_period
from cds_hooks.fhir_views import Condition

HER2_ANTIBODIES = terminology.ingredients_in_class("her2_antibody")
# Every trastuzumab product (biosimilars, Hylecta, Phesgo); not T-DM1 or T-DXd.
TRASTUZUMAB_PRODUCTS = terminology.ingredients_in_class("trastuzumab_product")
ANTHRACYCLINES = terminology.ingredients_in_class("anthracycline")
DOXORUBICIN = "doxorubicin"
# LVEF is a percentage (A3.2: "expect value units of %"). A value reads as one when it is plainly one: more than 1 and
# at most 100, with the unit % (UCUM code or unit text) or with no unit. A value of 1 or less may be a fraction (0.55
# for 55 %, as some echo systems send, sometimes labelled %), and no heart pumps 1 % or less: it is never multiplied by
# 100, nor read as 0.55 % (a critical hold), but left out as unusable, like a value in any other unit ("1",
# "{fraction}") or outside 0-100 %.
_PERCENT_UNITS = frozenset({"%", "percent"})
# A value above this (and at most 100) is plainly a percentage; at or below it, it may be a fraction.
_FRACTION_MAX = 1.0
# Administrations that record a dose the patient received.
_GIVEN_STATUSES = frozenset({"completed", "in-progress"})
# Records of therapy that is only planned: no dose has been given, so they neither anchor the baseline nor make
# a drafted drug a continuation. (Unsigned drafts in the record are no exposure at all: facts.therapy.)
_PLANNED_STATUSES = frozenset({"intended"})
# For LVEF monitoring (rule 13: "every 3 months during therapy") a patient stays on HER2 antibody therapy until the
# next dose is more than this late. therapy.DOSE_COVERAGE ends a dose's exposure on day 20 because concurrency needs
# day 21 to be sequential (AC -> TH); read as "on therapy", it took the patient off therapy on every dosing day. The
# label re-loads trastuzumab only after a dose missed by more than a week (B1 rule 5), so a cycle a week late is
# still the course; two weeks late with nothing given or ongoing, the course has ended. Local policy, not a label figure.
NEXT_DOSE_GRACE = timedelta(days=14)
# The interval taken when the record writes no schedule: 3-weekly, the longest usual HER2 antibody schedule
# (trastuzumab weekly or 3-weekly, G8; pertuzumab, T-DM1 and T-DXd 3-weekly, B1 rules 2, 4, 6), so a patient between
# 3-weekly doses is never taken off therapy.
UNWRITTEN_DOSE_INTERVAL = timedelta(days=21)
# Rule 13, Herceptin US label [L2]: LVEF "every 4 weeks while held", and "every 6 months for >= 2 years after
# adjuvant therapy ends". Label figures, unlike the local on-therapy interval (settings.lvef_monitoring_interval_days).
HELD_LVEF_INTERVAL_DAYS = 28
AFTER_ADJUVANT_LVEF_INTERVAL_DAYS = 182
AFTER_ADJUVANT_MONITORING_MONTHS = 24
# Rule 13: trastuzumab LVEF "at completion". The label gives no window: an LVEF up to 4 weeks before the last dose, or
# any day after it, is taken as the one at completion. A judgement call (local policy), not a label figure.
COMPLETION_LVEF_WINDOW_DAYS = 28


@dataclass(frozen=True)
class LvefResult:
    value: float
    day: date
    # Method from the code's meaning in the lvef value set: unspecified | echocardiography | muga | mri | ct | angiography.
    method: str
    reference: str
    # Lower limit of the Observation's own reference range: the institutional LLN, when the result gives one.
    low: float | None = None


@dataclass(frozen=True)
class UnusableLvef:
    """An LVEF Observation left out of the series, and the record fact that kept it out."""

    reference: str
    day: date | None
    # Plain language for the cards, e.g. "it has no date" or "recorded as 0.55 with no unit, not read as 0.55%
    # (it may be a fraction)".
    why: str


@dataclass(frozen=True)
class LvefSeries:
    # Usable results (a percentage value and a date, not after the reference date), newest first.
    results: tuple[LvefResult, ...]
    # LVEF Observations left out because they have no value, no date, or a value that is not a percentage (_lvef_result),
    # or are dated after the reference date; newest first, undated last.
    unusable: tuple[UnusableLvef, ...]
    # The day the baseline is taken against: the first HER2 antibody dose, else the planned start of a drafted one;
    # None without either, or when the record shows HER2 antibody therapy given but dates none of it.
    anchor: date | None
    # True when HER2 antibody therapy is recorded as given (from `anchor`, or undated when it is None), False when
    # `anchor` is only a planned start.
    anchor_is_first_dose: bool
    baseline: LvefResult | None

    @property
    def latest(self) -> LvefResult | None:
        return self.results[0] if self.results else None

    @property
    def last_measured(self) -> date | None:
        return self.results[0].day if self.results else None

    def unusable_after(self, day: date | None) -> tuple[UnusableLvef, ...]:
        """The unusable records that may be newer than a result of `day`, newest first: dated after it, or undated (a
        record of the same day is not counted newer). With no result (None), every unusable record."""
        return tuple(item for item in self.unusable if day is None or item.day is None or item.day > day)

    @property
    def drop_points(self) -> float | None:
        """Baseline minus latest in absolute percentage points (positive = a fall); None without both."""
        if self.baseline is None or self.latest is None:
            return None
        return round(self.baseline.value - self.latest.value, 1)

    @property
    def baseline_is_latest(self) -> bool:
        """No result since the baseline: the drop is 0 because nothing on treatment was measured."""
        return self.baseline is not None and self.baseline == self.latest


ScheduleReason = Literal["on-therapy", "held", "after-adjuvant"]


@dataclass(frozen=True)
class LvefSchedule:
    """Which rule 13 interval applies now, and the day the next LVEF is due by it."""

    # on-therapy: HER2 antibody therapy under way; held: trastuzumab on hold; after-adjuvant: within the years of
    # monitoring after adjuvant trastuzumab ended.
    reason: ScheduleReason
    interval_days: int
    # The last LVEF + the interval; with no LVEF on record, the start of the therapy (on therapy or held; for a drafted
    # continuation, the first HER2 antibody dose). After adjuvant therapy without an LVEF at completion, its last dose.
    due: date
    # What sets the schedule: the current HER2 antibody therapy, the trastuzumab records on hold, or the trastuzumab
    # whose last dose ended adjuvant therapy (none for the on-therapy schedule a drafted continuation is read against).
    exposures: tuple[Exposure, ...]
    # After adjuvant therapy: its last trastuzumab dose, and the last day of monitoring (counted from the earliest day
    # the record allows for that dose).
    last_dose: LastDose | None = None
    monitoring_until: date | None = None
    # After adjuvant therapy: no usable LVEF is dated from COMPLETION_LVEF_WINDOW_DAYS before its last dose on (none at
    # all, or only older ones), so the LVEF at completion is missing and was due on the last dose.
    completion_lvef_missing: bool = False


@dataclass(frozen=True)
class AnthracyclineTotal:
    ingredient: str  # key in medications.yaml
    display: str
    doses: int
    total_mg: float
    total_mg_per_m2: float


@dataclass(frozen=True)
class AnthracyclineCourse:
    display: str
    source: str


@dataclass(frozen=True)
class DoxorubicinHistory:
    """Doxorubicin given so far according to the MedicationAdministrations, and what stops an exact total."""

    # Cumulative dose; None when any recorded dose (or the BSA needed for mg doses) is missing.
    mg_per_m2: float | None
    doses: int
    first_day: date | None
    last_day: date | None
    bsa: BodySize | None
    # Plain-language reasons the total could not be computed, e.g. a dose without a quantity, or a course
    # recorded only as a statement or order (its doses cannot be summed).
    missing: tuple[str, ...]
    # Other anthracyclines, reported as recorded: epirubicin-to-doxorubicin factors are UNVERIFIED (B2 rule 21).
    other_anthracyclines: tuple[AnthracyclineTotal, ...]
    # Other anthracycline courses recorded only as a statement or order: no administration gives their doses.
    other_courses: tuple[AnthracyclineCourse, ...]


def lvef_series(facts: Facts) -> LvefSeries:
    """Every LVEF result, newest first, with the baseline before HER2 antibody therapy (same method where possible)."""
    results: list[LvefResult] = []
    unusable: list[UnusableLvef] = []
    for observation in observations_in(facts.record, "lvef"):
        result = _lvef_result(observation)
        if isinstance(result, LvefResult) and result.day > facts.as_of:
            # Not measured yet, so a date entered wrong: it may be the newest result, so it is named, not passed over.
            result = UnusableLvef(result.reference, result.day, "it is dated after today")
        if isinstance(result, UnusableLvef):
            unusable.append(result)
        else:
            results.append(result)
    anchor, is_first_dose = _her2_anchor(facts)
    # Before any recorded dose every result so far is pretreatment, even one after a planned start already past.
    pretreatment_until = anchor if is_first_dose or anchor is None else max(anchor, facts.as_of)
    return LvefSeries(
        results=tuple(results),
        unusable=tuple(unusable),
        anchor=anchor,
        anchor_is_first_dose=is_first_dose,
        baseline=_baseline(results, pretreatment_until),
    )


def latest_lvef(facts: Facts, on_or_before: date, within_days: int) -> LvefResult | None:
    """The newest usable LVEF of the series dated on or before `on_or_before` and no more than `within_days` before it."""
    oldest = on_or_before - timedelta(days=within_days)
    return next((r for r in facts.get(lvef_series).results if oldest <= r.day <= on_or_before), None)


def given_exposures(facts: Facts) -> tuple[Exposure, ...]:
    """Exposures to therapy that has been given or is under way (not only drafted or intended)."""
    return tuple(e for e in facts.exposures if e.status not in _PLANNED_STATUSES)


def had_by_today(facts: Facts) -> frozenset[str]:
    """Ingredients of every exposure given that the record shows begun by today (undated ones count as begun); a fact,
    read for each drafted HER2 antibody or anthracycline by rules 12 and 13 (rules.cardiac)."""
    return frozenset(
        ingredient for e in facts.get(given_exposures) if not _not_yet_given(facts, e) for ingredient in e.ingredients
    )


def _not_yet_given(facts: Facts, exposure: Exposure) -> bool:
    """Whether the record leaves the exposure's first dose ahead: it starts after today (a plan, even when signed), or it
    is a signed order, which does not record a dose given, while no usable LVEF is on record at all. Then whenever the
    first dose comes or came, no LVEF preceded it (rule 12); with an LVEF on record an order under way is read as the
    course, since the record cannot show whether that LVEF came before the first dose."""
    if exposure.starts_after(facts.as_of):
        return True
    return exposure.resource_type == "MedicationRequest" and not facts.get(lvef_series).results


def current_her2_antibody_therapy(facts: Facts) -> tuple[Exposure, ...]:
    """HER2 antibody exposures given that keep the patient on therapy for LVEF monitoring: covering the reference
    date, or with a last dose whose next is not yet late by more than NEXT_DOSE_GRACE."""
    return tuple(
        e for e in facts.get(given_exposures)
        if e.ingredients & HER2_ANTIBODIES and (e.overlaps(facts.as_of, facts.as_of) or _next_dose_not_long_late(facts, e))
    )


def her2_antibody_dose_interval(facts: Facts, ingredients: frozenset[str]) -> timedelta:
    """The interval between doses of these HER2 antibodies: the longest that the record's orders and statements of
    them write (weekly with a taxane, then 3-weekly, is 3-weekly), else UNWRITTEN_DOSE_INTERVAL."""
    written = [
        days
        for medication in facts.record.medications
        if medication.match.ingredients & ingredients and str(medication.resource.status) not in IGNORED_STATUSES
        for dosage in _written_dosages(medication.resource)
        if (days := interval_days(dosage)) is not None
    ]
    return timedelta(days=max(written)) if written else UNWRITTEN_DOSE_INTERVAL


def held_trastuzumab(facts: Facts) -> tuple[Exposure, ...]:
    """Trastuzumab-product orders and statements on hold over today, unless an order or statement of one that is not on
    hold started after them: an old order left on hold while a newer one runs is no hold. Administrations record doses
    given, not holds, and the record does not date when a hold began, so a dose does not end one."""
    records = [
        e for e in facts.get(given_exposures)
        if e.ingredients & TRASTUZUMAB_PRODUCTS and e.resource_type != "MedicationAdministration"
    ]
    held = [e for e in records if e.status == ON_HOLD and e.overlaps(facts.as_of, facts.as_of)]
    return tuple(h for h in held if not any(_started_after(other, h) for other in records if other.status != ON_HOLD))


def lvef_schedule(facts: Facts) -> LvefSchedule | None:
    """The LVEF monitoring that applies today (rule 13): every 4 weeks while trastuzumab is held; every
    settings.lvef_monitoring_interval_days on HER2 antibody therapy (current_her2_antibody_therapy); every 6 months
    for 2 years after adjuvant trastuzumab in early breast cancer. None when none does."""
    return facts.get(held_lvef_schedule) or facts.get(_on_therapy_lvef_schedule) or facts.get(_after_adjuvant_lvef_schedule)


def held_lvef_schedule(facts: Facts) -> LvefSchedule | None:
    """Every 4 weeks while trastuzumab is held (held_trastuzumab); None when it is not."""
    held = facts.get(held_trastuzumab)
    return _from_last_lvef(facts, "held", HELD_LVEF_INTERVAL_DAYS, held, _started(facts, held)) if held else None


def resumption_lvef_schedule(facts: Facts) -> LvefSchedule:
    """The schedule a drafted HER2 antibody that continues therapy is read against: while trastuzumab is held the order
    resumes it, so the held one; else the on-therapy one (with no LVEF on record, due since the first HER2 antibody
    dose)."""
    held = facts.get(held_lvef_schedule)
    if held is not None:
        return held
    first_dose = facts.get(lvef_series).anchor
    return _from_last_lvef(facts, "on-therapy", facts.settings.lvef_monitoring_interval_days, (), first_dose or facts.as_of)


def _on_therapy_lvef_schedule(facts: Facts) -> LvefSchedule | None:
    """Every settings.lvef_monitoring_interval_days while on HER2 antibody therapy; None when not on it."""
    current = facts.get(current_her2_antibody_therapy)
    if not current:
        return None
    return _from_last_lvef(facts, "on-therapy", facts.settings.lvef_monitoring_interval_days, current, _started(facts, current))


def _after_adjuvant_lvef_schedule(facts: Facts) -> LvefSchedule | None:
    """At completion, then every 6 months for 2 years after the last dose of trastuzumab, for early breast cancer
    (disease.setting) when no HER2 antibody therapy is under way now. Without an LVEF at completion, due on the last
    dose; else 6 months after the last LVEF."""
    if facts.get(current_her2_antibody_therapy):
        return None
    ended = [
        e for e in facts.get(given_exposures)
        if e.ingredients & TRASTUZUMAB_PRODUCTS and e.end is not None and e.end < facts.as_of
    ]
    last_dose = last_dose_of(ended)
    if last_dose is None:
        return None
    until = add_months(last_dose.at_least, AFTER_ADJUVANT_MONITORING_MONTHS)
    if facts.as_of > until or facts.get(disease.setting) != "early":
        return None
    interval = AFTER_ADJUVANT_LVEF_INTERVAL_DAYS
    last_doses = tuple(e for e in ended if e.source in last_dose.sources)
    last_lvef = facts.get(lvef_series).last_measured
    # Counted from the earliest day the last dose can be, so an undated last dose never makes the LVEF look missing.
    completion_missing = last_lvef is None or last_lvef < last_dose.at_least - timedelta(days=COMPLETION_LVEF_WINDOW_DAYS)
    due = last_dose.at_least if completion_missing else last_lvef + timedelta(days=interval)
    return LvefSchedule("after-adjuvant", interval, due, last_doses, last_dose=last_dose, monitoring_until=until,
                        completion_lvef_missing=completion_missing)


def _from_last_lvef(
    facts: Facts, reason: ScheduleReason, interval_days: int, exposures: tuple[Exposure, ...], without_lvef: date
) -> LvefSchedule:
    """Due `interval_days` after the last LVEF; on `without_lvef` when none is on record."""
    last = facts.get(lvef_series).last_measured
    due = last + timedelta(days=interval_days) if last is not None else without_lvef
    return LvefSchedule(reason, interval_days, due, exposures)


def _started(facts: Facts, therapy: tuple[Exposure, ...]) -> date:
    """The day the therapy began (today when the record dates none of it)."""
    return min((e.start for e in therapy if e.start is not None), default=facts.as_of)


def heart_failure_conditions(facts: Facts) -> tuple[Condition, ...]:
    """Active heart failure or left ventricular systolic dysfunction Conditions."""
    return facts.get(disease.active_conditions, "heart_failure") + facts.get(disease.active_conditions, "lv_systolic_dysfunction")


def cumulative_doxorubicin(facts: Facts) -> DoxorubicinHistory:
    """Doxorubicin mg/m2 given so far: administered mg / BSA, or the mg/m2 doses as recorded."""
    per_m2 = 0.0
    mg = 0.0
    doses = 0
    # Each anthracycline's dose days, where recorded: an administration without a date still counts in the total.
    administered: dict[str, list[date]] = {}
    missing: list[str] = []
    others: dict[str, list[tuple[float, str] | None]] = {}
    for medication in facts.record.medications:
        resource = medication.resource
        if resource.get_resource_type() != "MedicationAdministration" or str(resource.status) not in _GIVEN_STATUSES:
            continue
        anthracyclines = medication.match.ingredients & ANTHRACYCLINES
        if not anthracyclines:
            continue
        dose = _dose(resource)
        day = _administration_day(resource)
        if day is not None:
            for ingredient in anthracyclines:
                administered.setdefault(ingredient, []).append(day)
        if DOXORUBICIN not in anthracyclines:
            for ingredient in anthracyclines:
                others.setdefault(ingredient, []).append(dose)
            continue
        doses += 1
        if dose is None:
            missing.append(f"the dose of {medication.reference}")
        elif dose[1] == "mg/m2":
            per_m2 += dose[0]
        else:
            mg += dose[0]
    courses = _unsummed_courses(facts, administered)
    missing.extend(
        f"the doses of {source} (a course recorded without administrations)" for source in courses.pop(DOXORUBICIN, ())
    )
    days = administered.get(DOXORUBICIN, [])
    bsa = _bsa_when_given(facts, max(days, default=None)) if mg else None
    if mg and bsa is None:
        missing.append("a body surface area (or height and weight) to convert the mg doses")
    total = None if missing else round(per_m2 + (mg / bsa.value if bsa else 0.0), 1)
    return DoxorubicinHistory(
        mg_per_m2=total,
        doses=doses,
        first_day=min(days, default=None),
        last_day=max(days, default=None),
        bsa=bsa,
        missing=tuple(missing),
        other_anthracyclines=tuple(_other_total(key, doses) for key, doses in sorted(others.items())),
        other_courses=tuple(
            AnthracyclineCourse(terminology.ingredient_display(key), source)
            for key, sources in sorted(courses.items()) for source in sources
        ),
    )


def cumulative_doxorubicin_mg_per_m2(facts: Facts) -> float | None:
    """The cumulative doxorubicin dose in mg/m2, or None when the record is insufficient to compute it."""
    return facts.get(cumulative_doxorubicin).mg_per_m2


def dose_of(quantity: Any) -> tuple[float, str] | None:
    """A dose Quantity as (value, "mg") or (value, "mg/m2"), its unit read as every dose is; None for other units
    (mg/kg among them) or no value."""
    dose = dose_in_known_unit(quantity)
    return dose if dose is not None and dose[1] != "mg/kg" else None


def _lvef_result(observation: Any) -> LvefResult | UnusableLvef:
    """The one place an LVEF value is read: as a percentage, or unusable with the record fact that stops it."""
    found = measurement(observation)
    day = effective_day(observation)
    reference = f"Observation/{observation.id}"
    if found is None:
        return UnusableLvef(reference, day, "it has no numeric value")
    if day is None:
        return UnusableLvef(reference, None, "it has no date")
    why = _not_a_percentage(found.value, found.unit)
    if why is not None:
        return UnusableLvef(reference, day, why)
    method = terminology.coded_meaning(observation.code, "lvef") or "unspecified"
    return LvefResult(value=found.value, day=day, method=method, reference=found.reference, low=found.low)


def _not_a_percentage(value: float, unit: str | None) -> str | None:
    """Why an LVEF value cannot be read as a percentage, stated as the record has it; None when it can."""
    unit = (unit or "").strip() or None
    shown = f"{value:g}"
    if unit is None:
        if _FRACTION_MAX < value <= 100:
            return None
        if 0 <= value <= _FRACTION_MAX:
            return f"recorded as {shown} with no unit, not read as {shown}% (it may be a fraction)"
        return f"recorded as {shown} with no unit, outside 0-100"
    if unit not in _PERCENT_UNITS:
        return f'recorded as {shown} with the unit "{unit}", not %'
    if not 0 <= value <= 100:
        return f"recorded as {shown}%, outside 0-100%"
    if value <= _FRACTION_MAX:
        return f"recorded as {shown}%, which no heart pumps (it may be a fraction written with %)"
    return None


def _her2_anchor(facts: Facts) -> tuple[date | None, bool]:
    """The first recorded HER2 antibody exposure, else the earliest planned start of a drafted HER2 antibody; (None,
    True) when HER2 antibody therapy was given on days the record does not date."""
    given = [e for e in facts.get(given_exposures) if e.ingredients & HER2_ANTIBODIES]
    started = [e.start for e in given if e.start is not None]
    if started:
        return min(started), True
    if given:
        # Any result may come after its first dose: none is taken as pretreatment (the drop is unknown, not 0).
        return None, True
    planned = [
        planned_period(order, facts.as_of)[0]
        for order in facts.record.draft_orders
        if order.ingredients & HER2_ANTIBODIES
    ]
    return min(planned, default=None), False


def _next_dose_not_long_late(facts: Facts, exposure: Exposure) -> bool:
    """The exposure's last dose is past and the next, one interval later, is not late by more than the grace."""
    if exposure.last_dose is None or exposure.last_dose > facts.as_of:
        return False
    interval = facts.get(her2_antibody_dose_interval, exposure.ingredients & HER2_ANTIBODIES)
    return facts.as_of <= exposure.last_dose + interval + NEXT_DOSE_GRACE


def _started_after(later: Exposure, earlier: Exposure) -> bool:
    """Both are dated and `later` started after `earlier` (an undated record cannot be shown to be the later one)."""
    return later.start is not None and earlier.start is not None and later.start > earlier.start


def _written_dosages(resource: Any) -> list[Any]:
    """The dosages of a recorded order or statement; an administration records a dose, not a schedule."""
    kind = resource.get_resource_type()
    if kind == "MedicationRequest":
        return resource.dosageInstruction or []
    if kind == "MedicationStatement":
        return resource.dosage or []
    return []


def _baseline(results: list[LvefResult], pretreatment_until: date | None) -> LvefResult | None:
    """The newest result on or before the last pretreatment day, preferring the latest result's method (A3.2)."""
    if pretreatment_until is None or not results:
        return None
    before = [r for r in results if r.day <= pretreatment_until]
    same_method = [r for r in before if r.method == results[0].method]
    return (same_method or before or [None])[0]


def _dose(resource: Any) -> tuple[float, str] | None:
    return dose_of(resource.dosage.dose if resource.dosage else None)


def _administration_day(resource: Any) -> date | None:
    if resource.effectiveDateTime is not None:
        return first_day(resource.effectiveDateTime)
    return first_day(resource.effectivePeriod.start) if resource.effectivePeriod else None


def _bsa_when_given(facts: Facts, last_dose: date | None) -> BodySize | None:
    """The BSA in use when the doses were given (lookback from the last dose), else the current one."""
    if last_dose is not None and last_dose < facts.as_of:
        then = facts.on(last_dose).get(body_size.bsa_m2)
        if then is not None:
            return then
    return facts.get(body_size.bsa_m2)


def _unsummed_courses(facts: Facts, administered: dict[str, list[date]]) -> dict[str, list[str]]:
    """For each anthracycline, its statements or orders already under way with no recorded administration of it in
    their period."""
    courses: dict[str, list[str]] = {}
    for exposure in facts.exposures:
        if exposure.resource_type == "MedicationAdministration" or exposure.start is None or exposure.start > facts.as_of:
            continue
        for ingredient in exposure.ingredients & ANTHRACYCLINES:
            if not any(exposure.overlaps(day, day) for day in administered.get(ingredient, ())):
                courses.setdefault(ingredient, []).append(exposure.source)
    return courses


def _other_total(ingredient: str, doses: list[tuple[float, str] | None]) -> AnthracyclineTotal:
    """As recorded, never converted to doxorubicin equivalents; unreadable doses are left out of the sums."""
    known = [dose for dose in doses if dose is not None]
    return AnthracyclineTotal(
        ingredient=ingredient,
        display=terminology.ingredient_display(ingredient),
        doses=len(doses),
        total_mg=round(sum(v for v, unit in known if unit == "mg"), 1),
        total_mg_per_m2=round(sum(v for v, unit in known if unit == "mg/m2"), 1),
    )
