"""Product identity and dosing (clinical reference Part B1, rules 1-8)."""
from __future__ import annotations

import json
from datetime import date
from typing import Any, Iterator, Mapping

from cds_hooks import terminology
from cds_hooks.facts.dosing import (
    DoseLevel,
    DoseUnit,
    LastDoseDay,
    WeightBasedDose,
    draft_doses,
    dose_written,
    last_dose_day,
    last_recorded_weight,
    order_route,
    order_weight,
    ordered_dose,
    previous_levels,
    undated_records,
    unweighed_doses,
)
from cds_hooks.facts.therapy import (
    DOSE_DAY,
    DOSE_PERIOD,
    HELD_OR_STOPPED,
    Exposure,
    dose_day,
    dose_period,
    exposures_started_before,
    running_over,
    started_before,
)
from cds_hooks.protocol.request import ORDER_HOOKS
from cds_hooks.record import DraftOrder
from cds_hooks.rules.base import Finding, ProposedAction, ProposedSuggestion, RuleContext, rule
from cds_hooks.rules.proposals import dose_quantity, remove_draft

TDM1 = "ado_trastuzumab_emtansine"
TDXD = "fam_trastuzumab_deruxtecan"
TRASTUZUMAB = "trastuzumab"
PERTUZUMAB = "pertuzumab"
SUBCUTANEOUS = "subcutaneous"
ADCS = terminology.ingredients_in_class("antibody_drug_conjugate")
TRASTUZUMAB_PRODUCTS = terminology.ingredients_in_class("trastuzumab_product")
HER2_AGENTS = terminology.ingredients_in_class("her2_directed")
WEIGHT_BASED = frozenset({TDM1, TDXD, TRASTUZUMAB})
# The agents whose doses rules 1-6 check as IV products (`_agent`); Herceptin Hylecta and Phesgo are SUBCUTANEOUS.
IV_PRODUCTS = WEIGHT_BASED | {PERTUZUMAB}

# Label doses, clinical reference B1 (mg/kg unless named _MG).
TDM1_MAX = 3.6
TDM1_LOWEST = 2.4
TDXD_BREAST_LEVELS = (5.4, 4.4, 3.2)
# The full and lowest levels of the agents with a reduction ladder (rules 3 and 4), in mg/kg.
REDUCTION_LADDERS = {TDM1: (TDM1_MAX, TDM1_LOWEST), TDXD: (TDXD_BREAST_LEVELS[0], TDXD_BREAST_LEVELS[-1])}
TDXD_GASTRIC = 6.4
TRASTUZUMAB_SCHEDULES = {8.0: ("loading", 21), 6.0: ("maintenance", 21), 4.0: ("loading", 7), 2.0: ("maintenance", 7)}
TRASTUZUMAB_LOADING = {21: 8.0, 7: 4.0}
PERTUZUMAB_LOAD_MG = 840.0
PERTUZUMAB_MAINTENANCE_MG = 420.0
PERTUZUMAB_INTERVAL_DAYS = 21
# Pertuzumab is given with trastuzumab (rule 6); T-DXd + pertuzumab first line (DESTINY-Breast09) is on the Enhertu
# label too (rule 40), so pertuzumab beside T-DXd is not pertuzumab alone.
PERTUZUMAB_PARTNERS = TRASTUZUMAB_PRODUCTS | {TDXD}
# Label: a trastuzumab dose missed by more than one week is re-loaded (wording to verify).
MISSED_DOSE_GRACE_DAYS = 7
# Rule 1: doses that belong to another product.
SUBSTITUTION_PATTERNS: Mapping[str, tuple[tuple[float, str], ...]] = {
    TDM1: ((4.0, TRASTUZUMAB), (6.0, TRASTUZUMAB), (8.0, TRASTUZUMAB), (5.4, TDXD)),
    TRASTUZUMAB: ((3.6, TDM1),),
    TDXD: ((3.6, TDM1),),
}
# A weight-based dose ordered or recorded in mg was computed from mg/kg and rounded to vials, so within 5% of a label
# level (or of a recorded level) counts as that level: local pharmacy policy, not a label figure. Nothing rounds a
# dose written in mg/kg or a fixed dose (pertuzumab): those must be the level itself. `_allowance` chooses for mg/kg
# doses; the T-DM1 maximum (rule 2) has no allowance in either unit.
VIAL_ROUNDING = 0.05
# A relative difference that is only binary floating point, not a different dose.
FLOAT_NOISE = 1e-9


# --- rule 1 ---------------------------------------------------------------------------------------


@rule(
    id="dosing.product-identity",
    numbers=(1,),
    title="T-DM1, T-DXd and trastuzumab confused (product identity)",
    hooks=ORDER_HOOKS,
    cards=("dosing-product-substitution",),
    trigger=(
        "A draft whose RxNorm/ATC codes, text and displays name different drugs (one a HER2 agent); a T-DM1 or "
        "T-DXd draft while a trastuzumab product is drafted too or its order or statement is still active on the dose "
        "day; or a dose that belongs to another "
        "product (T-DM1 at 4/6/8 or 5.4 mg/kg, trastuzumab or T-DXd at 3.6 mg/kg)."
    ),
    thresholds=(
        "Dose patterns exact for doses written in mg/kg, within 5% for mg converted with the latest weight within "
        f"weight_lookback_days before {DOSE_DAY} (vial rounding)."
    ),
)
def product_identity(context: RuleContext) -> Iterator[Finding]:
    orders = []
    for order in context.focus_orders:
        issues = [*_naming_conflicts(order), *_plan_conflicts(context, order)]
        pattern = _substitution_dose(context, order)
        if pattern is not None:
            dose, ordered, other = pattern
            issues.append(f"{dose.describe()} is a dose of {_display(other)}, not of {_display(ordered)}")
        if issues:
            orders.append((order, issues))
    if not orders:
        return
    yield Finding(
        card="dosing-product-substitution",
        values={"orders": [{"order": order.text, "issues": issues} for order, issues in orders]},
        suggestions=tuple(remove_draft(order) for order, _ in orders),
        evidence=tuple(order.reference for order, _ in orders),
    )


def _naming_conflicts(order: DraftOrder) -> list[str]:
    """Each code, the text and each display read alone; a contradiction involving a HER2 agent is a finding."""
    named = terminology.drugs_named_apart(order.concept)
    kinds = {drug.ingredients for drug in named}
    if len(kinds) < 2 or not frozenset().union(*kinds) & HER2_AGENTS:
        return []
    return ["its medication names different drugs: " + "; ".join(
        f"{_NAMED_AS[drug.kind].format(drug.written)} means {' + '.join(_display(i) for i in sorted(drug.ingredients))}"
        for drug in named
    ) + ". It cannot be identified"]


_NAMED_AS = {"code": "code {}", "display": 'display "{}"', "text": 'text "{}"'}


def _plan_conflicts(context: RuleContext, order: DraftOrder) -> list[str]:
    """T-DM1 or T-DXd drafted while a trastuzumab product is drafted alongside or its order is still active on the
    dose day (an order that ended since a past planned start is a finished course, not a conflict)."""
    if not order.ingredients & ADCS:
        return []
    day = dose_day(order, context.as_of)
    issues = [
        f"{other.text} is drafted in the same order session"
        for other in context.record.draft_orders
        if other is not order and _is_plain_trastuzumab(other.ingredients)
    ]
    for exposure in context.facts.exposures:
        planned = exposure.resource_type in ("MedicationRequest", "MedicationStatement")
        if planned and _is_plain_trastuzumab(exposure.ingredients) and exposure.overlaps(day):
            since = f" since {exposure.start.isoformat()}" if exposure.start else ""
            issues.append(f"{exposure.text} is still {exposure.status} ({exposure.source}{since}) on {day.isoformat()}")
    return issues


def _is_plain_trastuzumab(ingredients: frozenset[str]) -> bool:
    return bool(ingredients & TRASTUZUMAB_PRODUCTS) and not ingredients & ADCS


def _substitution_dose(context: RuleContext, order: DraftOrder) -> tuple[WeightBasedDose, str, str] | None:
    """The ordered mg/kg, the ordered product and the product the dose belongs to, when it is another product's (rule 1)."""
    agent = _agent(order)
    if agent not in SUBSTITUTION_PATTERNS:
        return None
    dose = context.facts.get(draft_doses).get(order.reference)
    if dose is None:
        return None
    allowance = _allowance(dose)
    other = next((product for level, product in SUBSTITUTION_PATTERNS[agent] if _near(dose.mg_per_kg, level, allowance)), None)
    return (dose, agent, other) if other else None


# --- rule 1: orders that cannot be identified -----------------------------------------------------

# Every check of this service reads an order by the drug it is: an order naming these and not identified is unchecked.
CHECKED_CLASSES = ("her2_directed", "anthracycline")


@rule(
    id="dosing.agent-not-identified",
    numbers=(1,),
    title="HER2 agent or anthracycline order not identified, so none of its checks ran",
    hooks=ORDER_HOOKS,
    cards=("dosing-agent-not-identified",),
    trigger=(
        "A draft that no known RxNorm or ATC code or exact known name identifies, or whose codes or names mean "
        "different drugs, when its text or a display holds a whole word of a HER2 agent's or an anthracycline's name, "
        "or one of its codes alone means one; or a draft that names no medication at all (no code, text or display)."
    ),
    thresholds=(
        "Words of the names of the her2_directed and anthracycline drugs in medications.yaml, except strength, dose "
        "form, salt and joiner words and generic_name_words; a word inside a longer word does not count."
    ),
)
def agent_not_identified(context: RuleContext) -> Iterator[Finding]:
    orders = []
    for order in context.focus_orders:
        why = unidentified_checked_drug(order.concept)
        if why is not None:
            orders.append((order, why))
    if not orders:
        return
    yield Finding(
        card="dosing-agent-not-identified",
        values={"orders": [
            {"order": order.text, "reference": order.reference, "conflict": why.conflict,
             "unknown_codes": list(why.unknown_codes), "unread_names": list(why.unread_names),
             "names_nothing": why.names_nothing}
            for order, why in orders
        ]},
        suggestions=tuple(remove_draft(order) for order, _ in orders),
        evidence=tuple(order.reference for order, _ in orders),
    )


def unidentified_checked_drug(concept: Mapping[str, Any] | None) -> terminology.NotIdentified | None:
    """Why a draft's medication is not identified, when it may be a drug of CHECKED_CLASSES or names no drug at all;
    None for an identified drug, or another drug (a code or a name but none of these words) this service does not check."""
    why = terminology.why_not_identified(concept)
    return why if why is not None and (why.names_nothing or terminology.mentions_class(concept, CHECKED_CLASSES)) else None


# --- rules 2 and 3: T-DM1 -------------------------------------------------------------------------


@rule(
    id="dosing.tdm1-maximum-dose",
    numbers=(2,),
    title="T-DM1 dose above 3.6 mg/kg",
    hooks=ORDER_HOOKS,
    cards=("dosing-tdm1-overdose",),
    trigger="A T-DM1 draft above 3.6 mg/kg (ordered in mg/kg, or mg divided by the latest weight up to the dose day).",
    thresholds=f"> 3.6 mg/kg, no rounding allowance in either unit; weight within weight_lookback_days before {DOSE_DAY}.",
)
def tdm1_maximum_dose(context: RuleContext) -> Iterator[Finding]:
    over = []
    for order in _orders_of(context, TDM1):
        dose = context.facts.get(draft_doses).get(order.reference)
        # Also when rule 1 reads the dose as another product's: the overdose is a separate, certain harm.
        if dose is not None and _exceeds_tdm1_maximum(dose):
            over.append((order, dose))
    if not over:
        return
    yield Finding(
        card="dosing-tdm1-overdose",
        values={"orders": [_dose_values(order, dose) | {"max_mg": _mg_at(TDM1_MAX, dose)} for order, dose in over]},
        suggestions=tuple(
            s for order, _ in over for s in (_set_dose(order, TDM1_MAX, "mg/kg", recommended=True), remove_draft(order))
        ),
        evidence=tuple(order.reference for order, _ in over),
    )


@rule(
    id="dosing.tdm1-dose-reduction",
    numbers=(3,),
    title="T-DM1 re-escalated after a reduction, or reduced below 2.4 mg/kg",
    hooks=ORDER_HOOKS,
    cards=("dosing-tdm1-reduction",),
    trigger=(
        "A T-DM1 draft above the lowest level given or prescribed before the dose day (after a reduction below 3.6), "
        "or below 2.4 mg/kg."
    ),
    thresholds=(
        "Ladder 3.6 -> 3.0 -> 2.4 mg/kg, then discontinue; no re-escalation; exact for doses written in mg/kg, within 5% "
        f"when the draft or the recorded level was in mg (vial rounding); recorded levels dated before {DOSE_DAY}."
    ),
)
def tdm1_dose_reduction(context: RuleContext) -> Iterator[Finding]:
    orders, suggestions = [], []
    for order in _orders_of(context, TDM1):
        dose = context.facts.get(draft_doses).get(order.reference)
        if dose is None or _exceeds_tdm1_maximum(dose) or _substitution_dose(context, order) is not None:
            continue
        reduced = _reduced_to(context, order, TDM1, TDM1_MAX)
        if reduced is not None and _re_escalated(dose, reduced):
            orders.append(_dose_values(order, dose) | _reduction_values(reduced))
            suggestions.append(_set_dose(order, reduced.mg_per_kg, "mg/kg", recommended=True))
        elif dose.mg_per_kg < TDM1_LOWEST * (1 - _allowance(dose)):
            orders.append(_dose_values(order, dose) | {"problem": "below-lowest"})
            suggestions.append(remove_draft(order))
    if orders:
        yield Finding(card="dosing-tdm1-reduction", values={"orders": orders}, suggestions=tuple(suggestions),
                      evidence=tuple(o["reference"] for o in orders))


# --- rule 4: T-DXd --------------------------------------------------------------------------------


@rule(
    id="dosing.tdxd-dose",
    numbers=(4,),
    title="T-DXd dose not a breast-cancer level, or re-escalated after a reduction",
    hooks=ORDER_HOOKS,
    cards=("dosing-tdxd-dose",),
    trigger=(
        "A T-DXd draft not at 5.4, 4.4 or 3.2 mg/kg (6.4 mg/kg named as the gastric dose), or above a level reduced to "
        "before the dose day."
    ),
    thresholds=(
        "Breast 5.4 mg/kg q3w; reductions 4.4 -> 3.2 -> discontinue; no re-escalation; exact for doses written in mg/kg, "
        f"within 5% when the draft or the recorded level was in mg (vial rounding); recorded levels dated before {DOSE_DAY}."
    ),
)
def tdxd_dose(context: RuleContext) -> Iterator[Finding]:
    orders, suggestions = [], []
    for order in _orders_of(context, TDXD):
        dose = context.facts.get(draft_doses).get(order.reference)
        if dose is None or _substitution_dose(context, order) is not None:
            continue
        reduced = _reduced_to(context, order, TDXD, TDXD_BREAST_LEVELS[0])
        if reduced is not None and _re_escalated(dose, reduced):
            orders.append(_dose_values(order, dose) | _reduction_values(reduced))
            suggestions.append(_set_dose(order, reduced.mg_per_kg, "mg/kg", recommended=True))
        elif _near(dose.mg_per_kg, TDXD_GASTRIC, _allowance(dose)):
            orders.append(_dose_values(order, dose) | {"problem": "gastric"})
            suggestions.append(_set_dose(order, TDXD_BREAST_LEVELS[0], "mg/kg", recommended=True))
        elif _level(dose.mg_per_kg, TDXD_BREAST_LEVELS, _allowance(dose)) is None:
            # Which level was meant is unknown, so no corrected dose is offered.
            orders.append(_dose_values(order, dose) | {"problem": "not-a-level"})
    if orders:
        yield Finding(card="dosing-tdxd-dose", values={"orders": orders}, suggestions=tuple(suggestions),
                      evidence=tuple(o["reference"] for o in orders))


# --- rule 5: trastuzumab IV -----------------------------------------------------------------------


@rule(
    id="dosing.trastuzumab-schedule",
    numbers=(5,),
    title="Trastuzumab IV dose and schedule match neither label schedule",
    hooks=ORDER_HOOKS,
    cards=("dosing-trastuzumab-schedule",),
    trigger=(
        "An IV trastuzumab draft whose mg/kg is not 8/6 (every 3 weeks) or 4/2 (weekly), whose repeat interval "
        "does not fit its dose, a maintenance dose with no earlier trastuzumab or after a dose missed by more than "
        "a week, or a loading dose when the last dose was on time. A trastuzumab dose drafted in the same request "
        "(selected or not) for an earlier day is the dose before it."
    ),
    thresholds=(
        "Levels exact for doses written in mg/kg, within 5% for mg converted with the weight (vial rounding); missed = "
        f"more than interval + 7 days from the last dose given or drafted for an earlier day, else from the recorded end "
        f"of the therapy, to {DOSE_DAY} (label wording to verify); a loading dose is questioned only from a dose given or "
        "drafted."
    ),
)
def trastuzumab_schedule(context: RuleContext) -> Iterator[Finding]:
    orders, suggestions = [], []
    for order in _orders_of(context, TRASTUZUMAB):
        dose = context.facts.get(draft_doses).get(order.reference)
        if dose is None or _substitution_dose(context, order) is not None:
            continue
        issues, reload_to = _trastuzumab_issues(context, order, dose)
        if issues:
            orders.append(_dose_values(order, dose) | {"issues": issues})
            if reload_to is not None:
                suggestions.append(_set_dose(order, reload_to, "mg/kg"))
    if orders:
        yield Finding(card="dosing-trastuzumab-schedule", values={"orders": orders}, suggestions=tuple(suggestions),
                      evidence=tuple(o["reference"] for o in orders))


def _trastuzumab_issues(context: RuleContext, order: DraftOrder, dose: WeightBasedDose) -> tuple[list[str], float | None]:
    """What does not fit the label schedules, and the loading dose to suggest when a re-load is due."""
    schedule = _trastuzumab_level(dose)
    if schedule is None:
        return [f"{dose.mg_per_kg:g} mg/kg is none of 8, 6, 4 or 2 mg/kg"], None
    level, phase, interval = schedule
    issues = []
    ordered_interval = dose.ordered.interval_days
    if ordered_interval is not None and ordered_interval != interval:
        issues.append(f"{level:g} mg/kg belongs to the {_schedule_name(interval)} schedule, but the order repeats every {ordered_interval} days")
    # Missed or on time as of the day this dose is given, not a past planned start.
    day = dose_day(order, context.as_of)
    last = _dose_before(context, order, TRASTUZUMAB)
    late = last is not None and (day - last.day).days > interval + MISSED_DOSE_GRACE_DAYS
    reload_to = None
    if phase == "maintenance" and _first_dose(context, order, TRASTUZUMAB):
        issues.append(f"no earlier trastuzumab is on record: a first dose is the loading dose ({TRASTUZUMAB_LOADING[interval]:g} mg/kg)")
        reload_to = TRASTUZUMAB_LOADING[interval]
    elif phase == "maintenance" and last is not None and late:
        issues.append(f"{_last_dose_text(last, day)}: missed by more than a week, which calls for a re-load "
                      "(label section 2; verify)")
        reload_to = TRASTUZUMAB_LOADING[interval]
    # A recorded end shows when the therapy stopped, not that the last dose was that recent: it can show a dose was
    # missed, but only a dose given shows that a re-load is not needed.
    elif phase == "loading" and last is not None and last.given and not late:
        issues.append(f"a loading dose, but {_last_dose_text(last, day)} (not missed by more than a week)")
    return issues, reload_to


def _trastuzumab_level(dose: WeightBasedDose) -> tuple[float, str, int] | None:
    """The label level the dose is, its phase (loading or maintenance) and its interval in days; None for no level."""
    level = _level(dose.mg_per_kg, tuple(TRASTUZUMAB_SCHEDULES), _allowance(dose))
    return None if level is None else (level, *TRASTUZUMAB_SCHEDULES[level])


def _last_dose_text(last: LastDoseDay, day: date) -> str:
    """The last dose, the record that dates it and the days to this dose (on `day`), as the card names them."""
    when = f"{last.day.isoformat()}, {(day - last.day).days} days before this dose on {day.isoformat()}"
    if last.drafted:
        return f"the dose drafted in this order session ({last.source}) is planned for {when}"
    if last.given:
        return f"the last recorded dose ({last.source}) was given on {when}"
    return (f"no dose given is recorded; the trastuzumab therapy on record ({last.source}) ended on {when}, and the last "
            "dose was on or before that day")


def _undated_last_dose_reason(context: RuleContext, order: DraftOrder) -> str | None:
    """Why rule 5 cannot tell whether a dose was missed by more than a week: a trastuzumab maintenance dose after
    earlier trastuzumab, when neither the record (a dose given, the end of that therapy) nor a draft of this request
    for an earlier day dates the dose before it. None otherwise."""
    dose = context.facts.get(draft_doses).get(order.reference) if _agent(order) == TRASTUZUMAB else None
    schedule = _trastuzumab_level(dose) if dose is not None else None
    if schedule is None or schedule[1] != "maintenance":
        return None
    day = dose_day(order, context.as_of)
    if _dose_before(context, order, TRASTUZUMAB) is not None:
        return None
    earlier = exposures_started_before(context.facts.exposures, TRASTUZUMAB, day)
    # An active order or statement is the record's own account that the therapy continues. EHRs that send no
    # administrations show every patient on trastuzumab this way; a warning on each cycle there would be overridden
    # by habit. Stopped, completed, on-hold or unknown therapy with no end date does not say when doses stopped.
    if not earlier or any(e.status == "active" and e.overlaps(day) for e in earlier):
        return None
    therapy = "; ".join(f"{e.source}, {e.status}" + (f", since {e.start.isoformat()}" if e.start else "") for e in earlier)
    return (f"trastuzumab is on record ({therapy}) but the record dates neither a dose given nor the end of that "
            f"therapy before this dose on {day.isoformat()}: whether a dose was missed by more than a week, which "
            "calls for a re-load (label section 2; verify), could not be checked")


def _dose_before(context: RuleContext, order: DraftOrder, ingredient: str) -> LastDoseDay | None:
    """The dose before this draft's: the last on record before its dose day (`last_dose_day`), or a dose drafted in
    this request for a day after that one and before this draft's (`_drafted_before`)."""
    recorded = context.facts.get(last_dose_day, ingredient, dose_day(order, context.as_of))
    drafted = _drafted_before(context, order, ingredient)
    if drafted is None:
        return recorded
    drafted_day = dose_day(drafted, context.as_of)
    if recorded is not None and recorded.day >= drafted_day:
        return recorded
    return LastDoseDay(drafted_day, True, drafted.reference, drafted=True)


def _first_dose(context: RuleContext, order: DraftOrder, ingredient: str) -> bool:
    """Whether no dose of the ingredient comes before this draft's: none recorded as started before its dose day (a
    dose since a past planned start included) and none drafted in this request for an earlier day."""
    day = dose_day(order, context.as_of)
    return not started_before(context.facts.exposures, ingredient, day) and not _drafted_before(context, order, ingredient)


def _drafted_before(context: RuleContext, order: DraftOrder, ingredient: str) -> DraftOrder | None:
    """The latest other draft of the request (selected or not) with the ingredient, planned for a day before this
    draft's dose day. Drafts signed together are one plan: the loading dose drafted for the first cycle comes before
    the maintenance drafted from the second, which is then neither a first dose nor one after a missed dose."""
    day = dose_day(order, context.as_of)
    earlier = [other for other in context.record.draft_orders
               if other is not order and ingredient in other.ingredients and dose_day(other, context.as_of) < day]
    return max(earlier, key=lambda other: dose_day(other, context.as_of), default=None)


def _schedule_name(interval: int) -> str:
    return "every-3-weeks" if interval == 21 else "weekly"


# --- rule 6: pertuzumab ---------------------------------------------------------------------------


@rule(
    id="dosing.pertuzumab-dose",
    numbers=(6,),
    title="Pertuzumab dose other than 840 mg loading then 420 mg every 3 weeks",
    hooks=ORDER_HOOKS,
    cards=("dosing-pertuzumab-dose",),
    trigger=(
        "An IV pertuzumab draft not in mg, not 840 or 420 mg, not repeated every 3 weeks, or 420 mg with no "
        "pertuzumab on record before the dose day and none drafted in the request (selected or not) for an earlier day."
    ),
    thresholds="840 mg load, 420 mg q3w, exactly (a fixed dose is not rounded); no dose reductions.",
)
def pertuzumab_dose(context: RuleContext) -> Iterator[Finding]:
    orders, suggestions = [], []
    for order in _orders_of(context, PERTUZUMAB):
        dose = ordered_dose(order)
        if dose is None:
            continue
        issues = []
        if dose.unit != "mg":
            issues.append(f"ordered as {dose.describe()}: pertuzumab is a fixed dose in mg, not weight- or BSA-based")
        elif _level(dose.value, (PERTUZUMAB_LOAD_MG, PERTUZUMAB_MAINTENANCE_MG), FLOAT_NOISE) is None:
            issues.append(f"{dose.describe()} is neither the 840 mg loading dose nor the 420 mg maintenance dose; "
                          "pertuzumab has no dose reductions")
        elif _near(dose.value, PERTUZUMAB_MAINTENANCE_MG, FLOAT_NOISE) and _first_dose(context, order, PERTUZUMAB):
            issues.append("420 mg, but no earlier pertuzumab is on record: the first dose is 840 mg")
            suggestions.append(_set_dose(order, PERTUZUMAB_LOAD_MG, "mg"))
        if dose.interval_days is not None and dose.interval_days != PERTUZUMAB_INTERVAL_DAYS:
            issues.append(f"the order repeats every {dose.interval_days} days; pertuzumab is given every 3 weeks")
        if issues:
            orders.append({"order": order.text, "reference": order.reference, "dose": dose.describe(), "issues": issues})
    if orders:
        yield Finding(card="dosing-pertuzumab-dose", values={"orders": orders}, suggestions=tuple(suggestions),
                      evidence=tuple(o["reference"] for o in orders))


@rule(
    id="dosing.pertuzumab-without-trastuzumab",
    numbers=(6,),
    title="Pertuzumab drafted without trastuzumab",
    hooks=ORDER_HOOKS,
    cards=("dosing-pertuzumab-without-trastuzumab",),
    trigger=(
        "An IV pertuzumab draft when no draft of the request (selected or not) is a trastuzumab product (biosimilars, "
        "Hylecta, Phesgo) or T-DXd, and none runs on its dose day: no order or statement over that day that is "
        "not on-hold or stopped, and no dose given in the 3-week cycle before it. The card names held or stopped "
        "trastuzumab (with the recorded reason), its last dose, and trastuzumab records that date nothing."
    ),
    thresholds=(
        f"Over the days {DOSE_PERIOD}; a dose given covers the 20 days after it (a 21-day cycle); on-hold and "
        "stopped records never run."
    ),
)
def pertuzumab_without_trastuzumab(context: RuleContext) -> Iterator[Finding]:
    # Every draft, not only the selected ones: trastuzumab drafted beside a selected pertuzumab is given with it.
    if any(order.ingredients & PERTUZUMAB_PARTNERS for order in context.record.draft_orders):
        return
    alone, last_dose_unknown = [], False
    for order in _orders_of(context, PERTUZUMAB):
        # Trastuzumab that ran at a past planned start but has stopped since is not given with this dose; one that
        # runs today is, even when the draft's planned end is already past.
        day, end = dose_period(order, context.as_of)
        if running_over(context.facts.exposures, PERTUZUMAB_PARTNERS, day, end):
            continue
        trastuzumab, last_unknown = _trastuzumab_on_record(context, day)
        last_dose_unknown = last_dose_unknown or last_unknown
        alone.append((order, {"order": order.text, "reference": order.reference, "day": day.isoformat(),
                              "trastuzumab": trastuzumab}))
    if alone:
        yield Finding(card="dosing-pertuzumab-without-trastuzumab",
                      values={"orders": [values for _, values in alone], "last_dose_unknown": last_dose_unknown},
                      suggestions=tuple(remove_draft(order) for order, _ in alone),
                      evidence=tuple(order.reference for order, _ in alone))


def _trastuzumab_on_record(context: RuleContext, day: date) -> tuple[list[str], bool]:
    """What the record shows of trastuzumab before `day`, as the card lists it (held or stopped therapy, the last
    dose, records that date nothing), and whether trastuzumab is on record but its last dose is not dated."""
    earlier = exposures_started_before(context.facts.exposures, TRASTUZUMAB, day)
    undated = context.facts.get(undated_records, TRASTUZUMAB)
    last = context.facts.get(last_dose_day, TRASTUZUMAB, day)
    shown = [_held_or_stopped_text(e) for e in earlier if e.status in HELD_OR_STOPPED]
    if last is not None:
        shown.append(_last_dose_text(last, day))
    shown += [f"{m.text} ({m.reference}, {m.resource.status}) is on record with no date" for m in undated]
    return shown, last is None and bool(earlier or undated)


def _held_or_stopped_text(exposure: Exposure) -> str:
    since = f", since {exposure.start.isoformat()}" if exposure.start else ""
    reason = f'; reason recorded: "{exposure.status_reason}"' if exposure.status_reason else ""
    return f"{exposure.text} is {exposure.status} ({exposure.source}{since}{reason})"


# --- rule 7: subcutaneous fixed-dose products, and IV products by the subcutaneous route ----------


@rule(
    id="dosing.subcutaneous-product",
    numbers=(7,),
    title="Subcutaneous fixed-dose product ordered by weight or by the IV route",
    hooks=ORDER_HOOKS,
    cards=("dosing-subcutaneous-product",),
    trigger="A Herceptin Hylecta or Phesgo draft with a dose in mg/kg or mg/m2, or an intravenous route.",
    thresholds="Route read from the route text or display.",
)
def subcutaneous_product(context: RuleContext) -> Iterator[Finding]:
    orders = []
    for order in context.focus_orders:
        if _agent(order) != SUBCUTANEOUS:
            continue
        issues = []
        dose = ordered_dose(order)
        if dose is not None and dose.unit != "mg":
            issues.append(f"the dose is written as {dose.describe()}, a weight- or BSA-based dose")
        route, route_text = order_route(order)
        if route == "intravenous":
            issues.append(f'the route is "{route_text}"')
        if issues:
            orders.append((order, issues))
    if orders:
        yield Finding(card="dosing-subcutaneous-product",
                      values={"orders": [{"order": order.text, "issues": issues} for order, issues in orders]},
                      suggestions=tuple(remove_draft(order) for order, _ in orders),
                      evidence=tuple(order.reference for order, _ in orders))


@rule(
    id="dosing.iv-product-subcutaneous-route",
    numbers=(7,),
    title="IV HER2 product ordered by the subcutaneous route",
    hooks=ORDER_HOOKS,
    cards=("dosing-iv-product-subcutaneous-route",),
    trigger=(
        "An IV trastuzumab (biosimilars included), IV pertuzumab, T-DM1 or T-DXd draft whose route reads as "
        "subcutaneous. The dose cards of rules 1-6 and 8 still check it as the IV product it names."
    ),
    thresholds="Route read from the route text or display; no route, or one naming both routes, is not read.",
)
def iv_product_subcutaneous_route(context: RuleContext) -> Iterator[Finding]:
    # The product or the route is wrong, and which is unknown: the dose checks of the IV product stay (right when the
    # route is the mistake; rule 1's critical card must never go), and this card says they do not apply if the
    # subcutaneous product was meant.
    orders = []
    for order in context.focus_orders:
        agent = _agent(order)
        if agent not in IV_PRODUCTS:
            continue
        route, route_text = order_route(order)
        if route == "subcutaneous":
            orders.append((order, {"order": order.text, "reference": order.reference, "product": _display(agent),
                                   "route": route_text}))
    if orders:
        yield Finding(card="dosing-iv-product-subcutaneous-route", values={"orders": [v for _, v in orders]},
                      suggestions=tuple(remove_draft(order) for order, _ in orders),
                      evidence=tuple(order.reference for order, _ in orders))


# --- rule 8 and the missing data of rules 2-7 -----------------------------------------------------


@rule(
    id="dosing.dose-not-checked",
    numbers=(8,),
    title="HER2 agent dose could not be checked (no current weight, no structured dose or no dated last dose)",
    hooks=ORDER_HOOKS,
    cards=("dosing-dose-not-checked",),
    trigger=(
        "A weight-based HER2 agent (IV trastuzumab, T-DM1, T-DXd) drafted with no body weight within "
        "weight_lookback_days, or dosed in mg/m2; an IV trastuzumab maintenance dose after earlier trastuzumab when the "
        "record dates neither a dose given nor the end of the therapy before the dose day, no active order or "
        "statement shows it continuing then and no dose of the request is drafted for an earlier day; a T-DM1 or "
        "T-DXd draft above the lowest level of its reduction ladder after an earlier dose recorded in mg with no "
        "weight of its day (rules 3/4 cannot see whether it was a reduction), unless a reduction card speaks; at "
        "order-sign also any HER2 agent draft with no dose quantity in mg, mg/kg or mg/m2."
    ),
    thresholds=f"weight_lookback_days (local policy; the labels give none) before {DOSE_DAY}.",
)
def dose_not_checked(context: RuleContext) -> Iterator[Finding]:
    orders, last_dose_unknown, levels_unknown = [], False, False
    for order in context.focus_orders:
        reasons = _unchecked_reasons(context, order)
        if (undated := _undated_last_dose_reason(context, order)) is not None:
            reasons.append(undated)
            last_dose_unknown = True
        if (unweighed := _unweighed_history_reason(context, order)) is not None:
            reasons.append(unweighed)
            levels_unknown = True
        if reasons:
            orders.append((order, reasons))
    if orders:
        yield Finding(card="dosing-dose-not-checked",
                      values={"orders": [{"order": order.text, "reasons": reasons} for order, reasons in orders],
                              "lookback_days": context.settings.weight_lookback_days,
                              "last_dose_unknown": last_dose_unknown, "levels_unknown": levels_unknown},
                      evidence=tuple(order.reference for order, _ in orders))


def _unchecked_reasons(context: RuleContext, order: DraftOrder) -> list[str]:
    agent = _agent(order)
    if agent is None:
        return []
    reasons = []
    dose = ordered_dose(order)
    if agent in WEIGHT_BASED and order_weight(context.facts, order) is None:
        last = last_recorded_weight(context.facts, order)
        day = dose_day(order, context.as_of).isoformat()
        consequence = ("the mg dose cannot be converted to mg/kg and checked" if dose is not None and dose.unit == "mg"
                       else "the dose in mg cannot be computed from mg/kg")
        reasons.append(f"no body weight in the {context.settings.weight_lookback_days} days up to {day}"
                       + (f" (last recorded: {last})" if last else " (none recorded)") + f": {consequence}")
    if agent in WEIGHT_BASED and dose is not None and dose.unit == "mg/m2":
        reasons.append(f"the dose is written as {dose.describe()}; this agent is dosed in mg/kg")
    if dose is None and context.hook == "order-sign":
        written = dose_written(order)
        reasons.append(f'the dose "{written}" is not a quantity in mg, mg/kg or mg/m2' if written else "the order has no dose")
    return reasons


def _unweighed_history_reason(context: RuleContext, order: DraftOrder) -> str | None:
    """Rules 3 and 4 (no re-escalation after a reduction) read earlier doses in mg/kg: one recorded in mg with no
    weight of its day may have been a reduction nobody can see. Said when the drafted level is above the ladder's
    lowest and no reduction card speaks for the order already."""
    agent = _agent(order)
    if agent not in REDUCTION_LADDERS:
        return None
    dose = context.facts.get(draft_doses).get(order.reference)
    full, lowest = REDUCTION_LADDERS[agent]
    if dose is None or dose.mg_per_kg <= lowest * (1 + _allowance(dose)) or _substitution_dose(context, order) is not None:
        return None
    reduced = _reduced_to(context, order, agent, full)
    if reduced is not None and _re_escalated(dose, reduced):
        return None
    unweighed = context.facts.get(unweighed_doses, agent, dose_day(order, context.as_of))
    if not unweighed:
        return None
    listed = "; ".join(f"{d.value:g} mg on {d.day.isoformat()}, {d.reference}" for d in unweighed[-3:] if d.day is not None)
    more = f" and {len(unweighed) - 3} earlier" if len(unweighed) > 3 else ""
    return (f"earlier {terminology.ingredient_display(agent)} doses recorded in mg have no body weight in the "
            f"{context.settings.weight_lookback_days} days up to them ({listed}{more}): whether this dose re-escalates "
            "after a dose reduction (never re-escalate) could not be checked")


# --- shared ---------------------------------------------------------------------------------------


def _agent(order: DraftOrder) -> str | None:
    """Which dosing schedule applies: an IV HER2 agent's ingredient key, SUBCUTANEOUS, or None."""
    match = order.match
    if match is None or not match.ingredients & HER2_AGENTS:
        return None
    if match.subcutaneous_fixed_dose:
        return SUBCUTANEOUS
    if len(match.ingredients) != 1:
        return None
    (only,) = match.ingredients
    return only if only in IV_PRODUCTS else None


def _orders_of(context: RuleContext, agent: str) -> list[DraftOrder]:
    return [order for order in context.focus_orders if _agent(order) == agent]


def _reduced_to(context: RuleContext, order: DraftOrder, ingredient: str, full_dose: float) -> DoseLevel | None:
    """The lowest level recorded before the dose day, when it is a reduction from the full dose: a reduction given
    since a past planned start counts too."""
    day = dose_day(order, context.as_of)
    lowest = min(context.facts.get(previous_levels, ingredient, day), key=lambda level: level.mg_per_kg, default=None)
    if lowest is None or lowest.mg_per_kg >= full_dose * (1 - _allowance(lowest)):
        return None
    return lowest


def _re_escalated(dose: WeightBasedDose, reduced: DoseLevel) -> bool:
    return dose.mg_per_kg > reduced.mg_per_kg * (1 + _allowance(dose, reduced))


def _reduction_values(reduced: DoseLevel) -> dict[str, Any]:
    return {"problem": "re-escalation", "reduced_to": reduced.mg_per_kg, "reduced_on": reduced.day}


def _exceeds_tdm1_maximum(dose: WeightBasedDose) -> bool:
    """Above 3.6 mg/kg with no rounding allowance: the label says "do not exceed"."""
    return dose.mg_per_kg > TDM1_MAX * (1 + FLOAT_NOISE)


def _allowance(*doses: WeightBasedDose | DoseLevel) -> float:
    """How far (relative) doses may be from a level, or from each other, and still count as the same: vial rounding
    when any of them was ordered or recorded in mg and converted with a weight, else floating-point noise only."""
    return VIAL_ROUNDING if any(dose.converted_from_mg for dose in doses) else FLOAT_NOISE


def _near(value: float, level: float, allowance: float) -> bool:
    return abs(value - level) <= level * allowance


def _level(value: float, levels: tuple[float, ...], allowance: float) -> float | None:
    return next((level for level in levels if _near(value, level, allowance)), None)


def _display(ingredient: str) -> str:
    return terminology.ingredient_display(ingredient)


def _mg_at(mg_per_kg: float, dose: WeightBasedDose) -> float | None:
    return round(mg_per_kg * dose.weight.value) if dose.weight is not None else None


def _dose_values(order: DraftOrder, dose: WeightBasedDose) -> dict[str, Any]:
    weight = dose.weight
    return {
        "order": order.text,
        "reference": order.reference,
        "dose": dose.describe(),
        "mg_per_kg": dose.mg_per_kg,
        "weight": f"{weight.value:g} kg on {weight.day.isoformat()}" if weight is not None and weight.day else None,
    }


def _set_dose(order: DraftOrder, value: float, unit: DoseUnit, recommended: bool = False) -> ProposedSuggestion:
    """The same draft with only its dose replaced (the client re-computes mg from mg/kg with its own weight)."""
    resource = json.loads(order.resource.model_dump_json(exclude_none=True))
    resource["dosageInstruction"][0]["doseAndRate"] = [{"doseQuantity": dose_quantity(value, unit)}]
    dose = f"{value:g} {unit}"
    return ProposedSuggestion(key="change-dose", values={"order": order.text, "new_dose": dose}, recommended=recommended,
                              actions=(ProposedAction(type="update", resource=resource),))
