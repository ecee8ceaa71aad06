"""Cardiac rules (clinical reference Part B2, rules 12-21): LVEF baseline, monitoring and hold tables, heart failure,
anthracycline overlap and cumulative doxorubicin."""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Iterator

from cds_hooks import terminology
from cds_hooks.facts import disease
from cds_hooks.facts.body_size import BodySize, bsa_m2
from cds_hooks.facts.dosing import dose_written, ordered_dose
from cds_hooks.facts.cardiac import (
    AFTER_ADJUVANT_LVEF_INTERVAL_DAYS,
    AFTER_ADJUVANT_MONITORING_MONTHS,
    COMPLETION_LVEF_WINDOW_DAYS,
    DOXORUBICIN,
    HELD_LVEF_INTERVAL_DAYS,
    NEXT_DOSE_GRACE,
    UNWRITTEN_DOSE_INTERVAL,
    LvefResult,
    LvefSeries,
    cumulative_doxorubicin,
    cumulative_doxorubicin_mg_per_m2,
    given_exposures,
    had_by_today,
    heart_failure_conditions,
    lvef_schedule,
    lvef_series,
    resumption_lvef_schedule,
)
from cds_hooks.dates import add_months, first_day
from cds_hooks.facts.therapy import DOSE_COVERAGE, DOSE_DAY, DOSE_PERIOD, Exposure, LastDose, dose_day, dose_period, last_dose_of, planned_period
from cds_hooks.fhir_views import Condition
from cds_hooks.protocol.request import ORDER_HOOKS
from cds_hooks.record import DraftOrder
from cds_hooks.rules.base import (
    Finding,
    ProposedAction,
    ProposedSuggestion,
    RuleContext,
    ingredient_names,
    joined,
    names_of,
    rule,
    unusable_lvef,
    when_given,
)
from cds_hooks.rules.proposals import loinc, remove_drafts, service_request

ANTHRACYCLINES = terminology.ingredients_in_class("anthracycline")
TRASTUZUMAB_PRODUCTS = terminology.ingredients_in_class("trastuzumab_product")
# Rule 20 names every trastuzumab product (biosimilars, Hylecta, Phesgo) and pertuzumab; not T-DM1 or T-DXd.
ANTHRACYCLINE_PARTNERS = TRASTUZUMAB_PRODUCTS | {"pertuzumab"}
# Rule 20: "avoiding anthracyclines for up to ~7 months after stopping trastuzumab (washout; verify §5.1 wording)".
TRASTUZUMAB_WASHOUT_MONTHS = 7


@rule(
    id="cardiac.anthracycline-with-trastuzumab",
    numbers=(20,),
    title="Anthracycline active or overlapping with trastuzumab or pertuzumab, or within the trastuzumab washout",
    hooks=ORDER_HOOKS,
    cards=("anthracycline-with-trastuzumab", "anthracycline-after-trastuzumab"),
    trigger=(
        "A drafted trastuzumab product (biosimilars, Hylecta, Phesgo) or pertuzumab while an anthracycline is drafted "
        "too (unless one of the two is planned to end before the other's dose day: AC then TH, or TH then AC; a course "
        "planned to end by its own dose day is one dose, covering 20 days) or recorded over the days it is given (its "
        "dose day to its planned end); or a drafted anthracycline while one of those is (critical). Otherwise, a "
        "drafted anthracycline whose dose day is within the washout after the last dose of a trastuzumab product: "
        "given, or planned by a trastuzumab product drafted to end before it (its planned end, or its dose day for one "
        "dose) (warning; a last dose the record does not date is counted from the latest day it shows)."
    ),
    thresholds=(
        f"Overlap with the days {DOSE_PERIOD}; a recorded dose covers 20 days after it (21-day cycle). Washout: "
        f"{TRASTUZUMAB_WASHOUT_MONTHS} calendar months after the last trastuzumab dose (verify §5.1). T-DM1 and T-DXd are "
        "not in scope."
    ),
)
def anthracycline_with_trastuzumab(context: RuleContext) -> Iterator[Finding]:
    pairs: dict[frozenset[str], dict[str, object]] = {}
    removable: dict[str, DraftOrder] = {}
    names: dict[str, set[str]] = {"her2": set(), "anthracycline": set()}
    for order in context.focus_orders:
        partner_class = _partner_class(order)
        if partner_class is None:
            continue
        own_kind, partner_kind = ("her2", "anthracycline") if partner_class is ANTHRACYCLINES else ("anthracycline", "her2")
        # Concurrent with what runs from the day this dose is given: a partner given and finished since a past
        # planned start is sequential (the washout card's, for an anthracycline drafted after trastuzumab), while one
        # running today is concurrent even when the draft's planned end is already past.
        day, until = dose_period(order, context.as_of)
        for other in _overlapping(context, order, partner_class, day, until):
            removable[order.reference] = order
            if other.draft is not None:
                removable[other.draft.reference] = other.draft
            names[own_kind].add(order.text)
            names[partner_kind].add(other.text)
            pairs.setdefault(
                frozenset({order.reference, other.reference}),
                {"ordered": order.text, "when": when_given(order, context.as_of), "other": other.text, "other_when": other.when},
            )
    if not pairs:
        # Concurrent use is the graver finding; the washout card is only shown without it.
        yield from _anthracycline_after_trastuzumab(context)
        return
    yield Finding(
        card="anthracycline-with-trastuzumab",
        values={
            "pairs": list(pairs.values()),
            "her2_drugs": joined(names["her2"]),
            "anthracyclines": joined(names["anthracycline"]),
        },
        suggestions=remove_drafts(removable.values()),
        evidence=tuple(sorted({reference for key in pairs for reference in key})),
        system_actions=(_detected_issue(context, pairs),) if context.hook == "order-sign" else (),
    )


def _detected_issue(context: RuleContext, pairs: dict[frozenset[str], dict[str, object]]) -> ProposedAction:
    """At signing, a DetectedIssue lets the EHR keep a record that this interaction was flagged."""
    implicated = sorted({reference for key in pairs for reference in key})
    return ProposedAction(
        type="create",
        resource={
            "resourceType": "DetectedIssue",
            "status": "preliminary",
            "code": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "DRG",
                                 "display": "Drug Interaction Alert"}]},
            "severity": "high",
            "patient": {"reference": f"Patient/{context.patient_id}"},
            "identifiedDateTime": context.as_of.isoformat(),
            "implicated": [{"reference": reference} for reference in implicated],
            "detail": "HER2 antibody (trastuzumab or pertuzumab) planned concurrently with an anthracycline; "
                      "cardiac dysfunction 27% with concurrent anthracycline + trastuzumab (Slamon, NEJM 2001).",
        },
    )


def _anthracycline_after_trastuzumab(context: RuleContext) -> Iterator[Finding]:
    """Drafted anthracyclines whose dose day is within the washout after the last dose of a trastuzumab product,
    given or planned by a trastuzumab course drafted to end before them."""
    orders: list[DraftOrder] = []
    windows: list[dict[str, object]] = []
    sources: set[str] = set()
    for order in context.focus_orders_of(ANTHRACYCLINES):
        day = dose_day(order, context.as_of)
        stopped = [
            e for e in context.facts.get(given_exposures)
            if e.ingredients & TRASTUZUMAB_PRODUCTS and e.end is not None and e.end < day
        ]
        drafted = [
            t for t in context.record.draft_orders
            if t.ingredients & TRASTUZUMAB_PRODUCTS and _planned_before(context, t, order)
        ]
        given, planned = last_dose_of(stopped), _planned_last_dose(context, drafted)
        # TH then AC drafted together: the washout runs from the drafted course's last dose when it is the later one.
        last = planned if planned is not None and (given is None or planned.at_least > given.at_least) else given
        if last is None:
            continue
        until = add_months(last.at_least, TRASTUZUMAB_WASHOUT_MONTHS)
        if day > until:
            continue
        orders.append(order)
        sources.update(last.sources)
        windows.append({
            "ordered": order.text, "day": day, "planned": last is planned,
            "trastuzumab": names_of(t for t in drafted if t.reference in last.sources) if last is planned else names_of(stopped),
            "last_dose": last.day, "at_least": last.at_least, "until": until,
        })
    if not orders:
        return
    yield Finding(
        card="anthracycline-after-trastuzumab",
        values={"orders": windows, "anthracyclines": names_of(orders), "months": TRASTUZUMAB_WASHOUT_MONTHS},
        suggestions=remove_drafts(orders),
        evidence=tuple(order.reference for order in orders) + tuple(sorted(sources)),
    )


@dataclass(frozen=True)
class _Overlap:
    text: str
    when: str
    reference: str
    # Set when the overlapping drug is itself an unsigned order, which the clinician can remove.
    draft: DraftOrder | None = None


def _partner_class(order: DraftOrder) -> frozenset[str] | None:
    """The drug class this order must not overlap with, or None when rule 20 does not concern it."""
    if order.ingredients & ANTHRACYCLINE_PARTNERS:
        return ANTHRACYCLINES
    if order.ingredients & ANTHRACYCLINES:
        return ANTHRACYCLINE_PARTNERS
    return None


@dataclass(frozen=True)
class _PlannedCourse:
    last_dose: date
    # The last day the course exposes the patient: its planned end (the same end read as for a signed order), or the
    # cycle after its one dose.
    covered_until: date


def _planned_course(context: RuleContext, order: DraftOrder) -> _PlannedCourse | None:
    """When a drafted course is planned to give its last dose and stop exposing the patient; None when open-ended."""
    day, end = dose_period(order, context.as_of)
    if end is None:
        return None
    # A course planned to end by its dose day (a past plan given today) is one dose, covering the cycle after it.
    return _PlannedCourse(end, end) if end > day else _PlannedCourse(day, day + DOSE_COVERAGE)


def _planned_before(context: RuleContext, first: DraftOrder, then: DraftOrder) -> bool:
    """The drafted course `first` is planned to end before the dose day of the drafted `then`: AC then TH ordered in
    one session, the sequence rule 20 recommends, or TH then AC, which the washout card judges instead."""
    course = _planned_course(context, first)
    return course is not None and course.covered_until < dose_day(then, context.as_of)


def _planned_last_dose(context: RuleContext, drafted: list[DraftOrder]) -> LastDose | None:
    """The last dose the drafted courses are planned to give (each with a planned end); None without one."""
    planned = [(course.last_dose, order) for order in drafted if (course := _planned_course(context, order)) is not None]
    if not planned:
        return None
    day = max(last for last, _ in planned)
    last_orders = [order for last, order in planned if last == day]
    return LastDose(day, day, tuple(o.reference for o in last_orders), frozenset().union(*(o.ingredients for o in last_orders)))


def _overlapping(context: RuleContext, order: DraftOrder, partner_class: frozenset[str], start: date, end: date | None) -> Iterator[_Overlap]:
    """Each partner drug drafted alongside this order, unless one is planned to end before the other starts, or
    recorded over [start, end]."""
    for other in context.record.draft_orders:
        if other is order or not other.ingredients & partner_class:
            continue
        if not (_planned_before(context, order, other) or _planned_before(context, other, order)):
            yield _Overlap(other.text, "ordered together in this order session", other.reference, other)
    for exposure in context.facts.exposures:
        if exposure.ingredients & partner_class and exposure.overlaps(start, end):
            yield _Overlap(exposure.text, exposure.describe(), exposure.source)


# --- LVEF baseline and monitoring (rules 12, 13) ---------------------------------------------------------

HER2_ANTIBODIES = terminology.ingredients_in_class("her2_antibody")
PERTUZUMAB = "pertuzumab"
T_DM1 = "ado_trastuzumab_emtansine"
T_DXD = "fam_trastuzumab_deruxtecan"
# Rule 12 names every HER2 antibody (the reference's "HER2-agent set") and every anthracycline.
BASELINE_LVEF_AGENTS = HER2_ANTIBODIES | ANTHRACYCLINES
_METHOD_NAMES = {
    "unspecified": "method not recorded",
    "echocardiography": "echocardiography",
    "muga": "MUGA",
    "mri": "cardiac MRI",
    "ct": "cardiac CT",
    "angiography": "contrast ventriculography",
}


@dataclass(frozen=True)
class _BaselineGap:
    order: DraftOrder
    start: date
    new_agents: frozenset[str]
    # Records of the new agents not taken as a dose given (facts.cardiac._not_yet_given), for the card to name.
    not_given: tuple[Exposure, ...] = ()


@rule(
    id="cardiac.baseline-lvef-before-first-dose",
    numbers=(12,),
    title="No baseline LVEF before the first dose of a HER2 antibody or anthracycline",
    hooks=ORDER_HOOKS,
    cards=("cardiac-baseline-lvef-missing",),
    trigger=(
        "A drafted HER2 antibody (trastuzumab products, pertuzumab, Phesgo, T-DM1, T-DXd, margetuximab) or anthracycline "
        "that no record shows the patient has had by today and no earlier draft of the session starts, and no LVEF "
        f"result in the lookback window before {DOSE_DAY}. A record dated after today is planned, not given; a signed "
        "order (MedicationRequest) with no usable LVEF on record at all is not taken as a dose given either: whenever "
        "its first dose was, no LVEF came before it. The card names such records."
    ),
    thresholds=(
        "LVEF (any method, A3.2) dated within settings.baseline_lvef_lookback_days before the dose day, or later. "
        "As for every LVEF rule, a value counts above 1 and at most 100, in % or with no unit; a value of 1 or less "
        "(possibly a fraction, with % or no unit), another unit or a % outside 0-100 is named on the card as unusable."
    ),
)
def baseline_lvef_before_first_dose(context: RuleContext) -> Iterator[Finding]:
    gaps = _first_doses([gap for order in context.focus_orders if (gap := _baseline_gap(context, order)) is not None])
    if not gaps:
        return
    series = context.facts.get(lvef_series)
    yield Finding(
        card="cardiac-baseline-lvef-missing",
        values={
            "orders": [
                {"order": gap.order.text, "start": gap.start, "agents": ingredient_names(gap.new_agents),
                 "not_given": [
                     {"text": e.text, "record": e.describe(), "starts_later": e.starts_after(context.as_of)}
                     for e in gap.not_given
                 ]}
                for gap in gaps
            ],
            "agents": ingredient_names(agent for gap in gaps for agent in gap.new_agents),
            "lookback_days": context.settings.baseline_lvef_lookback_days,
            "latest": _lvef_view(series.latest) if series.latest else None,
            # Every unusable record, older ones too: with no LVEF in the window, any of them may be the missing baseline.
            "unusable_lvef": unusable_lvef(series, None),
        },
        suggestions=(_order_lvef_suggestion(context),),
        evidence=tuple(gap.order.reference for gap in gaps) + tuple(item.reference for item in series.unusable),
    )


@rule(
    id="cardiac.lvef-monitoring-due",
    numbers=(13,),
    title="LVEF monitoring due on HER2 antibody therapy, while trastuzumab is held, or after adjuvant trastuzumab",
    hooks=ORDER_HOOKS | {"patient-view"},
    cards=("cardiac-lvef-due",),
    trigger=(
        "patient-view: the last LVEF is older than the interval that applies today: trastuzumab (any trastuzumab "
        "product) held, i.e. an order or statement on hold over today that no later order or statement not on hold "
        "has taken over from; else on HER2 antibody therapy (an exposure covers today, or the next dose is not yet long "
        "late); else early breast cancer (disease setting: breast cancer recorded, no metastatic disease), off HER2 "
        "antibody therapy, within 2 years of the last trastuzumab dose: due on that last dose when no LVEF was recorded "
        "at completion (the card says so, with the last LVEF and how long before the last dose it was), else 6 months "
        "after the last LVEF. "
        "Order hooks: a HER2 antibody drafted for a patient who has had one by today (read as rule 12 reads it), with "
        "the last LVEF older than the "
        f"interval at {DOSE_DAY}: the held interval while trastuzumab is held (a resumption), else the on-therapy "
        "one (a first dose without a baseline is rule 12's card instead). The card names the interval and why."
    ),
    thresholds=(
        f"Held: {HELD_LVEF_INTERVAL_DAYS} days (label: every 4 weeks while held). On therapy: "
        "settings.lvef_monitoring_interval_days (default 84, about 12 weeks); on therapy until one dosing interval + "
        f"{NEXT_DOSE_GRACE.days} days after the last dose, the interval being the longest the record's orders and "
        f"statements of the drug write, else {UNWRITTEN_DOSE_INTERVAL.days} days. After adjuvant therapy: "
        f"{AFTER_ADJUVANT_LVEF_INTERVAL_DAYS} days (label: every 6 months) for {AFTER_ADJUVANT_MONITORING_MONTHS} "
        "calendar months after the last trastuzumab dose (label: at least 2 years), counted from the last LVEF; "
        f"patient-view only. The LVEF at completion (label: \"and at completion\") is one dated {COMPLETION_LVEF_WINDOW_DAYS} "
        "days or less before the last dose, or after it (local policy: the label gives no window); without it (no LVEF "
        "on record, or only older ones) due on the last dose. An undated last dose counts from the earliest day the "
        "record allows for it, for both windows. Held or on therapy with no LVEF on record: due from the start of that "
        "therapy."
    ),
)
def lvef_monitoring_due(context: RuleContext) -> Iterator[Finding]:
    # The LVEF series is read only once HER2 antibody therapy makes it matter.
    if context.hook == "patient-view":
        schedule = context.facts.get(lvef_schedule)
        if schedule is None or schedule.due > context.as_of:
            return
        drugs = names_of(schedule.exposures)
        evidence = tuple(e.source for e in schedule.exposures)
        orders: list[dict[str, object]] = []
    else:
        continuing = [(order, day) for order in context.focus_orders if (day := _continuation_day(context, order))]
        if not continuing:
            return
        schedule = context.facts.get(resumption_lvef_schedule)
        due_orders = [(order, day) for order, day in continuing if schedule.due <= day]
        if not due_orders:
            return
        drugs = names_of(order for order, _ in due_orders)
        evidence = tuple(order.reference for order, _ in due_orders) + tuple(e.source for e in schedule.exposures)
        orders = [{"order": order.text, "start": planned_period(order, context.as_of)[0]} for order, _ in due_orders]
    series = context.facts.get(lvef_series)
    latest = series.latest
    held = schedule.exposures if schedule.reason == "held" else ()
    yield Finding(
        card="cardiac-lvef-due",
        values={
            "drugs": drugs,
            "latest": _lvef_view(latest) if latest else None,
            "unusable_lvef": unusable_lvef(series, latest),
            "due": schedule.due,
            "schedule": schedule.reason,
            "interval_days": schedule.interval_days,
            "held": [{"text": e.text, "record": e.describe(), "reason": e.status_reason} for e in held],
            "held_drugs": names_of(held),
            "last_dose": schedule.last_dose,
            "monitoring_until": schedule.monitoring_until,
            "completion_lvef_missing": schedule.completion_lvef_missing,
            "lvef_days_before_last_dose": (
                (schedule.last_dose.at_least - latest.day).days if schedule.completion_lvef_missing and latest else None
            ),
            "completion_window_days": COMPLETION_LVEF_WINDOW_DAYS,
            "orders": orders,
        },
        suggestions=(_order_lvef_suggestion(context),),
        evidence=evidence + ((latest.reference,) if latest else ()),
    )


def _baseline_gap(context: RuleContext, order: DraftOrder) -> _BaselineGap | None:
    """The order starts a HER2 antibody or anthracycline the patient has not had, with no recent LVEF (the LVEF
    history is read only for such an order)."""
    if not order.ingredients & BASELINE_LVEF_AGENTS:
        return None
    # The baseline must be recent at the first dose, which is today at the earliest when the planned start is past.
    new_agents = (order.ingredients & BASELINE_LVEF_AGENTS) - context.facts.get(had_by_today)
    if not new_agents:
        return None
    day = dose_day(order, context.as_of)
    window_start = day - timedelta(days=context.settings.baseline_lvef_lookback_days)
    if any(result.day >= window_start for result in context.facts.get(lvef_series).results):
        return None
    not_given = tuple(e for e in context.facts.get(given_exposures) if e.ingredients & new_agents)
    return _BaselineGap(order, planned_period(order, context.as_of)[0], frozenset(new_agents), not_given)


def _first_doses(gaps: list[_BaselineGap]) -> list[_BaselineGap]:
    """Each agent's first drafted dose: a draft whose agents an earlier draft of the same session starts (a maintenance
    dose signed with its loading dose) is not a first dose, and the card does not call it one."""
    started: set[str] = set()
    first = []
    for gap in sorted(gaps, key=lambda gap: gap.start):
        if new_agents := gap.new_agents - started:
            first.append(replace(gap, new_agents=new_agents))
            started |= new_agents
    return first


def _continuation_day(context: RuleContext, order: DraftOrder) -> date | None:
    """The dose day of a drafted HER2 antibody continuing prior HER2 antibody therapy (not a first dose, which
    rule 12 covers)."""
    if not order.ingredients & HER2_ANTIBODIES:
        return None
    if _baseline_gap(context, order) is not None:
        return None
    if not context.facts.get(had_by_today) & HER2_ANTIBODIES:
        return None
    return dose_day(order, context.as_of)


def _order_lvef_suggestion(context: RuleContext) -> ProposedSuggestion:
    """A draft order for an echocardiogram or MUGA, coded with the canonical LVEF LOINC (A3.2)."""
    return ProposedSuggestion(
        key="order-lvef",
        actions=(
            ProposedAction(
                type="create",
                resource=service_request(
                    context, loinc("10230-1", "Left ventricular Ejection fraction"), "Echocardiogram or MUGA for LVEF"
                ),
            ),
        ),
        recommended=True,
    )


def _lvef_view(result: LvefResult) -> dict[str, object]:
    return {"value": result.value, "day": result.day, "method": _METHOD_NAMES.get(result.method, result.method), "low": result.low}


# --- LVEF dose-modification tables (rules 14-18) ----------------------------------------------------------
#
# Each table gives a verdict for the latest LVEF and its drop from the pre-HER2 baseline. The wording of every
# criterion lives in the card files; a verdict names its table and criterion.

_RANK = {"continue": 0, "repeat": 1, "needs-baseline": 2, "hold": 3}


@dataclass(frozen=True)
class _Verdict:
    action: str  # continue | repeat | needs-baseline | hold
    table: str  # us | eu | mbc | ebc | label
    criterion: str = ""
    # The institutional lower limit of normal the US trastuzumab table used, and whether it was assumed.
    lln: float | None = None
    lln_assumed: bool = False


@dataclass(frozen=True)
class _Assessment:
    family: str
    orders: tuple[DraftOrder, ...]
    series: LvefSeries
    latest: LvefResult
    setting: str
    jurisdiction: str
    verdicts: tuple[_Verdict, ...]

    @property
    def action(self) -> str:
        return max((v.action for v in self.verdicts), key=_RANK.__getitem__)

    def values(self) -> dict[str, object]:
        """What every LVEF table card shows: the orders, the results, and the criteria that decided."""
        latest, baseline = self.latest, self.series.baseline
        return {
            "drugs": names_of(self.orders),
            "latest": _lvef_view(latest),
            "unusable_lvef": unusable_lvef(self.series, latest),
            "baseline": _lvef_view(baseline) if baseline and not self.series.baseline_is_latest else None,
            "drop": self.series.drop_points if not self.series.baseline_is_latest else None,
            "no_result_since_baseline": self.series.baseline_is_latest,
            "same_method": baseline is None or baseline.method == latest.method,
            "first_dose": self.series.anchor if self.series.anchor_is_first_dose else None,
            "first_dose_undated": self.series.anchor_is_first_dose and self.series.anchor is None,
            "setting": self.setting,
            "jurisdiction": self.jurisdiction,
            "verdicts": [
                {"table": v.table, "criterion": v.criterion, "lln": v.lln, "lln_assumed": v.lln_assumed}
                for v in self.verdicts if v.action == self.action
            ],
            "has_trastuzumab": any(o.ingredients & TRASTUZUMAB_PRODUCTS for o in self.orders),
            "has_pertuzumab": any(PERTUZUMAB in o.ingredients for o in self.orders),
        }

    def evidence(self) -> tuple[str, ...]:
        results = {self.latest.reference}
        if self.series.baseline:
            results.add(self.series.baseline.reference)
        return tuple(order.reference for order in self.orders) + tuple(sorted(results))


@rule(
    id="cardiac.trastuzumab-pertuzumab-lvef-hold",
    numbers=(14, 18),
    title="LVEF decline: withhold trastuzumab (and pertuzumab)",
    hooks=ORDER_HOOKS,
    cards=("cardiac-lvef-hold-trastuzumab-pertuzumab",),
    trigger=(
        "A drafted trastuzumab product (biosimilars, Hylecta, Phesgo) or pertuzumab and the latest LVEF meets a hold "
        "criterion against the pre-HER2 baseline. Pertuzumab and trastuzumab are held together."
    ),
    thresholds=(
        "Trastuzumab, settings.jurisdiction US: drop >= 16 points, or below the LLN (referenceRange.low, else 50%) with "
        "drop >= 10; EU: drop >= 10 and LVEF < 50%. Pertuzumab (verify): MBC < 45%, or 45-49% with drop >= 10; EBC < 50% "
        "with drop >= 10; unknown setting: MBC thresholds (they include the EBC ones)."
    ),
)
def trastuzumab_pertuzumab_lvef_hold(context: RuleContext) -> Iterator[Finding]:
    yield from _hold_findings(context, "trastuzumab-pertuzumab", "cardiac-lvef-hold-trastuzumab-pertuzumab", None)


@rule(
    id="cardiac.tdm1-lvef",
    numbers=(15, 16),
    title="LVEF on ado-trastuzumab emtansine (T-DM1): hold, repeat or continue",
    hooks=ORDER_HOOKS,
    cards=("cardiac-lvef-hold-tdm1", "cardiac-lvef-repeat-tdm1"),
    trigger="A drafted T-DM1 order and an LVEF result, read against the Kadcyla MBC or EBC table by disease setting.",
    thresholds=(
        "MBC: < 40% hold; 40-45% with drop >= 10 hold; 40-45% with drop < 10 continue and repeat within 3 weeks. "
        "EBC (verify): < 45% hold; 45-<50% with drop >= 10 hold. Unknown setting: both tables, the more cautious verdict."
    ),
)
def tdm1_lvef(context: RuleContext) -> Iterator[Finding]:
    yield from _hold_findings(context, "tdm1", "cardiac-lvef-hold-tdm1", "cardiac-lvef-repeat-tdm1")


@rule(
    id="cardiac.tdxd-lvef",
    numbers=(17,),
    title="LVEF on fam-trastuzumab deruxtecan (T-DXd): interrupt, repeat or continue",
    hooks=ORDER_HOOKS,
    cards=("cardiac-lvef-hold-tdxd", "cardiac-lvef-repeat-tdxd"),
    trigger="A drafted T-DXd order and an LVEF result, read against the Enhertu LVEF table.",
    thresholds=(
        "< 40% or drop > 20 interrupt; 40-45% with drop 10-20 interrupt; 40-45% with drop < 10 continue and repeat "
        "within 3 weeks; > 45% with drop <= 20 continue."
    ),
)
def tdxd_lvef(context: RuleContext) -> Iterator[Finding]:
    yield from _hold_findings(context, "tdxd", "cardiac-lvef-hold-tdxd", "cardiac-lvef-repeat-tdxd")


@rule(
    id="cardiac.lvef-drop-not-assessable",
    numbers=(14, 15, 16, 17, 18),
    title="LVEF on HER2 therapy with no pretreatment baseline to measure the drop",
    hooks=ORDER_HOOKS,
    cards=("cardiac-lvef-baseline-unknown",),
    trigger=(
        "A drafted trastuzumab product, pertuzumab, T-DM1 or T-DXd whose LVEF table needs the drop from baseline to "
        "decide, and no LVEF on record before the first HER2 antibody dose (none can be shown to be when the record "
        "dates none of the HER2 antibody therapy given). Not where the latest LVEF decides whatever "
        "the drop (T-DM1 > 45% MBC or >= 50% EBC, pertuzumab >= 50%, trastuzumab EU >= 50%)."
    ),
    thresholds=(
        "The same tables as rules 14-18, where the latest LVEF alone cannot decide: trastuzumab US at any LVEF (a drop "
        ">= 16 points holds at any value), T-DXd at 40% or more (a drop > 20 points interrupts at any value), "
        "T-DM1 MBC 40-45%, and the low bands of the other tables."
    ),
)
def lvef_drop_not_assessable(context: RuleContext) -> Iterator[Finding]:
    blocked = [a for family in _FAMILIES if (a := _assess(context, family)) is not None and a.action == "needs-baseline"]
    if not blocked:
        return
    yield Finding(
        card="cardiac-lvef-baseline-unknown",
        values={
            "drugs": names_of(o for a in blocked for o in a.orders),
            "families": [{"family": a.family, **a.values()} for a in blocked],
        },
        evidence=tuple(reference for a in blocked for reference in a.evidence()),
    )


_FAMILIES: dict[str, frozenset[str]] = {
    "trastuzumab-pertuzumab": TRASTUZUMAB_PRODUCTS | {PERTUZUMAB},
    "tdm1": frozenset({T_DM1}),
    "tdxd": frozenset({T_DXD}),
}


def _hold_findings(context: RuleContext, family: str, hold_card: str, repeat_card: str | None) -> Iterator[Finding]:
    assessment = _assess(context, family)
    if assessment is None:
        return
    if assessment.action == "hold":
        yield Finding(
            card=hold_card,
            values=assessment.values(),
            suggestions=(
                ProposedSuggestion(
                    key="remove-drafts",
                    values={"orders": names_of(assessment.orders)},
                    actions=tuple(ProposedAction(type="delete", resource_id=o.reference) for o in assessment.orders),
                ),
            ),
            evidence=assessment.evidence(),
        )
    elif assessment.action == "repeat" and repeat_card is not None and assessment.series.anchor_is_first_dose:
        # "Continue and repeat" is a dose-modification step for patients already on HER2 therapy.
        yield Finding(card=repeat_card, values=assessment.values(), evidence=assessment.evidence())


def _assess(context: RuleContext, family: str) -> _Assessment | None:
    """The drafted orders of one drug family read against their LVEF tables; None without such an order or an LVEF."""
    members = _FAMILIES[family]
    orders = tuple(_family_drafts(context, members))
    if not orders:
        return None
    series = context.facts.get(lvef_series)
    latest = series.latest
    if latest is None:
        return None
    drop = series.drop_points
    setting = context.facts.get(disease.setting)
    ingredients = frozenset().union(*(o.ingredients for o in orders))
    verdicts: list[_Verdict] = []
    if family == "trastuzumab-pertuzumab":
        if ingredients & TRASTUZUMAB_PRODUCTS:
            verdicts.append(_trastuzumab_verdict(latest, drop, context.settings.jurisdiction))
        if PERTUZUMAB in ingredients:
            verdicts.extend(_pertuzumab_verdict(latest.value, drop, table) for table in _tables(setting))
    elif family == "tdm1":
        verdicts.extend(_tdm1_verdict(latest.value, drop, table) for table in _tables(setting))
    else:
        verdicts.append(_tdxd_verdict(latest.value, drop))
    return _Assessment(family, orders, series, latest, setting, context.settings.jurisdiction, tuple(verdicts))


def _family_drafts(context: RuleContext, members: frozenset[str]) -> Iterator[DraftOrder]:
    """Focus drafts of the family; a pertuzumab hold also holds trastuzumab drafted alongside (B1 rule 6), so every
    family draft in the session is included once one is in focus."""
    if not context.focus_orders_of(members):
        return
    for order in context.record.draft_orders:
        if order.ingredients & members:
            yield order


def _tables(setting: str) -> tuple[str, ...]:
    """The MBC or EBC table by disease setting; both when the setting is unknown (the more cautious verdict wins)."""
    return {"metastatic": ("mbc",), "early": ("ebc",)}.get(setting, ("mbc", "ebc"))


def _trastuzumab_verdict(latest: LvefResult, drop: float | None, jurisdiction: str) -> _Verdict:
    """Herceptin US label (>= 16 points, or < LLN and >= 10) or EU SmPC (>= 10 points and < 50%)."""
    if jurisdiction == "EU":
        if latest.value >= 50:
            return _Verdict("continue", "eu")
        if drop is None:
            return _Verdict("needs-baseline", "eu", "eu-no-baseline")
        return _Verdict("hold", "eu", "eu-drop") if drop >= 10 else _Verdict("continue", "eu")
    lln, assumed = (latest.low, False) if latest.low is not None else (50.0, True)
    if drop is None:
        # The 16-point fall holds at any LVEF, so without a pretreatment value no LVEF rules it out.
        criterion = "us-below-lln-no-baseline" if latest.value < lln else "us-normal-no-baseline"
        return _Verdict("needs-baseline", "us", criterion, lln, assumed)
    if drop >= 16:
        return _Verdict("hold", "us", "us-drop", lln, assumed)
    if latest.value < lln and drop >= 10:
        return _Verdict("hold", "us", "us-lln", lln, assumed)
    return _Verdict("continue", "us")


def _pertuzumab_verdict(value: float, drop: float | None, table: str) -> _Verdict:
    """Commonly cited Perjeta thresholds (not confirmed in a retrieved label: verify)."""
    if value >= 50:
        return _Verdict("continue", table)
    if table == "mbc" and value < 45:
        return _Verdict("hold", table, "mbc-below-45")
    if drop is None:
        return _Verdict("needs-baseline", table, f"{table}-no-baseline")
    return _Verdict("hold", table, f"{table}-drop") if drop >= 10 else _Verdict("continue", table)


def _tdm1_verdict(value: float, drop: float | None, table: str) -> _Verdict:
    """Kadcyla US label Table 4 (MBC), or the EBC table (partially seen: verify)."""
    floor, ceiling = (40, 45) if table == "mbc" else (45, 50)
    if value < floor:
        return _Verdict("hold", table, f"{table}-below-floor")
    # MBC reads "40 to <= 45%"; EBC "45 to < 50%".
    in_band = value <= ceiling if table == "mbc" else value < ceiling
    if not in_band:
        return _Verdict("continue", table)
    if drop is None:
        return _Verdict("needs-baseline", table, f"{table}-no-baseline")
    if drop >= 10:
        return _Verdict("hold", table, f"{table}-band-drop")
    return _Verdict("repeat", table, "mbc-band-small-drop") if table == "mbc" else _Verdict("continue", table)


def _tdxd_verdict(value: float, drop: float | None) -> _Verdict:
    """Enhertu LVEF table [L4]."""
    if value < 40:
        return _Verdict("hold", "label", "below-40")
    if drop is None:
        # A fall of more than 20 points interrupts at any LVEF, so a missing baseline matters above 45% too.
        return _Verdict("needs-baseline", "label", "band-no-baseline" if value <= 45 else "above-45-no-baseline")
    if drop > 20:
        return _Verdict("hold", "label", "drop-over-20")
    if value > 45:
        return _Verdict("continue", "label")
    if drop >= 10:
        return _Verdict("hold", "label", "band-drop")
    return _Verdict("repeat", "label", "band-small-drop")


# --- The newest LVEF record cannot be used (rules 13-18) --------------------------------------------------


@rule(
    id="cardiac.newest-lvef-unusable",
    numbers=(13, 14, 15, 16, 17, 18),
    title="An LVEF record newer than the latest usable LVEF cannot be used: the LVEF checks read the older result",
    hooks=ORDER_HOOKS | {"patient-view"},
    cards=("cardiac-lvef-newest-unusable",),
    trigger=(
        "An LVEF record the service cannot use (no value, no date or a date after today, or a value not plainly a "
        "percentage) dated after the latest usable LVEF, or undated. Order hooks: a drafted HER2 antibody "
        "(trastuzumab products, pertuzumab, T-DM1, T-DXd, margetuximab). patient-view: an LVEF monitoring interval applies (as for "
        "cardiac.lvef-monitoring-due: trastuzumab held, on HER2 antibody therapy, or after adjuvant trastuzumab). "
        "Not shown beside a card that names the record itself and is at least a warning (absorbed): rule 12's, the hold "
        "and baseline-unknown cards of rules 14-18, rule 19's. Not with "
        "no usable LVEF at all: no older result is then read in its place, and the cards that say so (rules 12, 13, 19, "
        "the summary) list every unusable record."
    ),
    thresholds=(
        "Newer: dated after the latest usable LVEF (a record of the same day is not counted newer); an undated record "
        "may be newer. Usable, as for every LVEF rule: % from 0 to 100, or no unit above 1 and at most 100."
    ),
)
def newest_lvef_unusable(context: RuleContext) -> Iterator[Finding]:
    # The LVEF series is read only where the rules above read it: for a drafted HER2 antibody, or on patient-view
    # once a monitoring schedule applies (computing it read the series).
    if context.hook == "patient-view":
        schedule = context.facts.get(lvef_schedule)
        if schedule is None:
            return
        drugs = names_of(schedule.exposures)
        orders: list[DraftOrder] = []
    else:
        orders = context.focus_orders_of(HER2_ANTIBODIES)
        if not orders:
            return
        drugs = names_of(orders)
    series = context.facts.get(lvef_series)
    latest = series.latest
    newer = series.unusable_after(latest.day) if latest else ()
    if not newer:
        return
    yield Finding(
        card="cardiac-lvef-newest-unusable",
        values={
            "drugs": drugs,
            "orders": [{"order": order.text, "start": planned_period(order, context.as_of)[0]} for order in orders],
            "latest": _lvef_view(latest),
            "unusable_lvef": unusable_lvef(series, latest),
        },
        evidence=tuple(order.reference for order in orders) + tuple(item.reference for item in newer) + (latest.reference,),
    )


# --- Heart failure (rule 19) ------------------------------------------------------------------------------


@rule(
    id="cardiac.heart-failure-with-her2-therapy",
    numbers=(19,),
    title="HER2 antibody ordered with active heart failure or LV systolic dysfunction",
    hooks=ORDER_HOOKS,
    cards=("cardiac-heart-failure-her2-therapy",),
    trigger=(
        "A drafted HER2 antibody and an active heart failure (42343007 and the heart failure disorders of VSAC Heart "
        "Failure 2.16.840.1.113883.3.526.3.376, listed in clinical_codes.yaml; I50.-) or LVSD (134401001 ...) Condition."
    ),
    thresholds="Condition not recorded as inactive, resolved or in remission (no clinical status counts as active), nor as refuted.",
)
def heart_failure_with_her2_therapy(context: RuleContext) -> Iterator[Finding]:
    orders = context.focus_orders_of(HER2_ANTIBODIES)
    conditions = context.facts.get(heart_failure_conditions)
    if not orders or not conditions:
        return
    ingredients = frozenset().union(*(o.ingredients for o in orders))
    series = context.facts.get(lvef_series)
    yield Finding(
        card="cardiac-heart-failure-her2-therapy",
        values={
            "drugs": names_of(orders),
            "conditions": [_condition_view(c) for c in conditions],
            "latest": _lvef_view(series.latest) if series.latest else None,
            "unusable_lvef": unusable_lvef(series, series.latest),
            "has_adc": bool(ingredients & {T_DM1, T_DXD}),
            "has_trastuzumab": bool(ingredients & TRASTUZUMAB_PRODUCTS),
        },
        suggestions=remove_drafts(orders),
        evidence=tuple(o.reference for o in orders) + tuple(f"Condition/{c.id}" for c in conditions),
    )


def _condition_view(condition: Condition) -> dict[str, object]:
    code = condition.code
    text = code.text or next((c.display or c.code for c in code.coding or [] if c.display or c.code), "condition")
    status = condition.clinicalStatus.coding[0].code if condition.clinicalStatus and condition.clinicalStatus.coding else None
    return {"text": text, "onset": first_day(condition.onsetDateTime), "status": status}


# --- Cumulative doxorubicin (rule 21) ---------------------------------------------------------------------

# Doxorubicin label risk of cardiomyopathy by cumulative dose (mg/m2); the card file holds the percentages.
RISK_TIERS = (500, 450, 400, 300)
CEILING = 550
# "<= 400 with other cardiotoxic therapy, e.g. trastuzumab" (rule 21): every HER2 antibody's label warns of left
# ventricular dysfunction (rule 12), T-DM1 and T-DXd included.
CEILING_WITH_CARDIOTOXIC_THERAPY = 400


@rule(
    id="cardiac.cumulative-doxorubicin",
    numbers=(21,),
    title="Cumulative doxorubicin dose approaching cardiotoxic thresholds",
    hooks=ORDER_HOOKS,
    cards=("cardiac-cumulative-doxorubicin",),
    trigger=(
        "A drafted doxorubicin order when the doses already given (MedicationAdministration mg / BSA, or mg/m2 as "
        "recorded) plus this dose reach the first risk tier, when other anthracyclines were given (administrations, or "
        "a course recorded without them), or when the total cannot be computed (a dose or the BSA is missing, or a "
        "course is recorded without administrations); also when "
        "doxorubicin was given before and the drafted dose cannot be converted to mg/m2 (mg without a BSA of its dose "
        "day, mg/kg, another unit), so the total cannot include it."
    ),
    thresholds=(
        "Risk tiers 300/400/450/500 mg/m2; ceiling 550 mg/m2, 400 with other cardiotoxic therapy: a HER2 antibody "
        "(trastuzumab products, pertuzumab, T-DM1, T-DXd, margetuximab) recorded at any time or drafted. Epirubicin "
        "and other anthracyclines are shown as recorded, never converted (equivalence factors UNVERIFIED). BSA: for "
        "the doses given, the one within weight_lookback_days before the last of them, else the current one; for a "
        f"drafted dose in mg, the one within weight_lookback_days before {DOSE_DAY}: recorded, else Mosteller from a "
        "weight that recent and any height."
    ),
)
def cumulative_doxorubicin_dose(context: RuleContext) -> Iterator[Finding]:
    orders = context.focus_orders_of({DOXORUBICIN})
    if not orders:
        return
    history = context.facts.get(cumulative_doxorubicin)
    given = cumulative_doxorubicin_mg_per_m2(context.facts)
    planned = _planned_dose(context, orders)
    projected = None if given is None or planned.mg_per_m2 is None else round(given + planned.mg_per_m2, 1)
    # Without this dose, the total given so far is the most the card can judge by.
    judged = projected if planned.mg_per_m2 is not None else given
    tier = next((tier for tier in RISK_TIERS if judged is not None and judged >= tier), None)
    # A dose left out of a total the patient already has could be the one that crosses a tier.
    dose_left_out = bool(planned.not_counted) and history.doses > 0
    if not (tier or dose_left_out or history.missing or history.other_anthracyclines or history.other_courses):
        return
    cardiotoxic = _her2_antibodies_given_or_drafted(context)
    yield Finding(
        card="cardiac-cumulative-doxorubicin",
        values={
            "order": names_of(orders),
            "given": given,
            "planned": planned.mg_per_m2,
            "not_counted": list(planned.not_counted),
            "projected": projected,
            "doses": history.doses,
            "first_day": history.first_day,
            "last_day": history.last_day,
            "bsa": _bsa_view(history.bsa) if history.bsa else None,
            "converted": list(planned.converted),
            "weight_lookback_days": context.settings.weight_lookback_days,
            "missing": list(history.missing),
            "others": [vars(other) for other in history.other_anthracyclines],
            "other_courses": [vars(course) for course in history.other_courses],
            "tier": tier,
            "ceiling": CEILING_WITH_CARDIOTOXIC_THERAPY if cardiotoxic else CEILING,
            "cardiotoxic": cardiotoxic,
        },
        evidence=tuple(o.reference for o in orders),
    )


@dataclass(frozen=True)
class _PlannedDose:
    # The drafted doses in mg/m2; None when any of them cannot be converted.
    mg_per_m2: float | None
    # Each drafted dose that cannot be converted: the order, its dose as written, and why
    # (no-bsa | mg-per-kg | unit-unknown).
    not_counted: tuple[dict[str, str], ...]
    # Each drafted dose in mg converted to mg/m2: the order, its dose as written, the BSA used and the result.
    converted: tuple[dict[str, object], ...] = ()


def _planned_dose(context: RuleContext, orders: list[DraftOrder]) -> _PlannedDose:
    """The drafted doxorubicin in mg/m2, or why it cannot be converted. A dose in mg is divided by the BSA of its dose
    day (the BSA it was prescribed for), not the one of the doses given before, which may be years old."""
    total = 0.0
    not_counted: list[dict[str, str]] = []
    converted: list[dict[str, object]] = []
    for order in orders:
        dose = ordered_dose(order)
        bsa = context.facts.on(dose_day(order, context.as_of)).get(bsa_m2) if dose is not None and dose.unit == "mg" else None
        if dose is not None and dose.unit == "mg/m2":
            total += dose.value
        elif dose is not None and bsa is not None:
            total += dose.value / bsa.value
            converted.append({"order": order.text, "written": dose_written(order) or "", "bsa": _bsa_view(bsa),
                              "mg_per_m2": round(dose.value / bsa.value, 1)})
        else:
            reason = "unit-unknown" if dose is None else "mg-per-kg" if dose.unit == "mg/kg" else "no-bsa"
            not_counted.append({"order": order.text, "written": dose_written(order) or "", "reason": reason})
    return _PlannedDose(None if not_counted else round(total, 1), tuple(not_counted), tuple(converted))


def _bsa_view(bsa: BodySize) -> dict[str, object]:
    return {"value": bsa.value, "day": bsa.day, "method": bsa.method}


def _her2_antibodies_given_or_drafted(context: RuleContext) -> str:
    """The HER2 antibodies recorded at any time or drafted now, by name ("" for none): with them the lower commonly
    cited ceiling applies."""
    found = frozenset().union(*(e.ingredients for e in context.facts.exposures),
                              *(o.ingredients for o in context.record.draft_orders))
    return " and ".join(terminology.ingredient_display(key) for key in sorted(found & HER2_ANTIBODIES))
