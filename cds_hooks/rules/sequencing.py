"""Regimen selection and sequencing (clinical reference Part B5, rules 38-45, Part 0 G1-G11): advisory cards
on which HER2-directed regimen fits where the patient is in her disease course."""
from __future__ import annotations

from datetime import date, timedelta
from typing import Any, Iterable, Iterator, Literal

from cds_hooks import terminology
from cds_hooks.facts import Facts
from cds_hooks.facts.body_size import weight_kg
from cds_hooks.facts.disease import (
    ADJUVANT_HER2_THERAPY,
    COURSE_GAP,
    HER2_DIRECTED,
    TAXANES,
    TRASTUZUMAB_PRODUCTS,
    NeoadjuvantTherapy,
    Progression,
    TherapyLine,
    brain_metastases,
    condition_day,
    line_of_therapy,
    metastatic_lines,
    metastatic_since,
    progression,
    recurrence,
    residual_disease_findings,
    setting,
    taxane_finished_before,
    therapy_before,
    within_months,
)
from cds_hooks.facts.her2 import her2_status
from cds_hooks.facts.therapy import (
    DOSE_DAY,
    DOSE_PERIOD,
    Exposure,
    course_limit,
    dose_day,
    dose_period,
    dosed_until,
    last_dose_of,
    planned_period,
)
from cds_hooks.fhir_views import Condition
from cds_hooks.protocol.request import ORDER_HOOKS
from cds_hooks.record import DraftOrder
from cds_hooks.rules.base import Finding, ProposedAction, ProposedSuggestion, RuleContext, ingredient_names, names_of, rule
from cds_hooks.rules.proposals import dose_quantity, medication_request, remove_drafts

ALL_HOOKS = ORDER_HOOKS | {"patient-view"}
HER2_ANTIBODY_ORDER = TRASTUZUMAB_PRODUCTS | {"pertuzumab"}
HER2_ANTIBODIES = terminology.ingredients_in_class("her2_antibody")
TDM1 = "ado_trastuzumab_emtansine"
TDXD = "fam_trastuzumab_deruxtecan"
ATEZOLIZUMAB = "atezolizumab"

# KATHERINE regimen (B5 rule 38, B6 T1).
TDM1_DOSE_MG_PER_KG = 3.6
TDM1_ADJUVANT_CYCLES = 14
RXNORM_TDM1 = "1371041"
RXNORM_PERTUZUMAB = "1298944"
PERTUZUMAB_LOADING_MG = 840
PERTUZUMAB_MAINTENANCE_MG = 420
# ASCO guideline early-recurrence window (rule 42) and the Kadcyla/Enhertu label wording "within 6 months".
GUIDELINE_RECURRENCE_MONTHS = 12
LABEL_RECURRENCE_MONTHS = 6
# Adjuvant trastuzumab: 1 year total (rule 45), one course across gaps of up to disease.COURSE_GAP.
ADJUVANT_COURSE = timedelta(weeks=52)
# In metastatic disease HER2 antibodies continue until progression (rule 45); an order that ends within its first
# 3-week cycle is a per-cycle order, not a fixed course.
SINGLE_CYCLE = timedelta(days=21)


def _her2_positive(facts: Facts) -> bool:
    return facts.get(her2_status).status == "positive"


# --- rule 38: KATHERINE ------------------------------------------------------------------------------


@rule(
    id="sequencing.katherine-adjuvant-tdm1",
    numbers=(38,),
    title="Residual invasive disease after neoadjuvant taxane + trastuzumab: consider adjuvant T-DM1",
    hooks=ORDER_HOOKS,
    cards=("sequencing-katherine-adjuvant-tdm1",),
    trigger=(
        "Early HER2-positive breast cancer; a trastuzumab (± pertuzumab) order, given after surgery (the yp staging "
        "day) even when planned before it, since its dose day is today at the earliest; taxane and trastuzumab started "
        "in the year before surgery; ypT >= T1mi and/or ypN >= N1mi, a yp stage group from I to III (each needs one of "
        "them), or RCB >= 1. "
        "No yp staging: the card asks for the pathology result instead of assuming, but only once the taxane has "
        "finished (last dose more than 21 days before the order's dose day, none continuing or drafted with it), "
        "counting taxane and trastuzumab started in the year before the order's planned start. yp staging is "
        "read from yp codes, or from a T, N or stage group Observation whose value is yp (mCODE). Not once the "
        "trastuzumab year is over: the order's dose day more than 52 weeks after the first neoadjuvant trastuzumab. "
        "Not when T-DM1 is drafted too, or recorded as started since the first neoadjuvant trastuzumab (or undated): "
        "adjuvant T-DM1 is already the choice, and trastuzumab may be completing the year after it stopped."
    ),
    thresholds=(
        "T-DM1 3.6 mg/kg IV q3w x 14 cycles from the order's dose day; dose in mg from the latest weight within the "
        f"weight lookback before that day. Upper bound: {DOSE_DAY} <= 52 weeks after the first trastuzumab started in the year before "
        "surgery (adjuvant trastuzumab is 1 year total, rule 45; T-DM1 replaces its adjuvant part)."
    ),
)
def katherine_adjuvant_tdm1(context: RuleContext) -> Iterator[Finding]:
    facts = context.facts
    orders = [o for o in context.focus_orders if o.ingredients & TRASTUZUMAB_PRODUCTS and o.ingredients <= HER2_ANTIBODY_ORDER]
    if not orders or facts.get(setting) != "early" or not _her2_positive(facts):
        return
    if any(TDM1 in o.ingredients for o in context.record.draft_orders):
        return
    # The order is given on its dose day, today at the earliest: after surgery whenever yp staging is on record, even
    # for a draft planned before it, and with no adjuvant trastuzumab left to replace once the year is over by then.
    # Without yp staging, its planned start stands for surgery, as the nearest day the record gives.
    start = min(planned_period(o, context.as_of)[0] for o in orders)
    day = min(dose_day(o, context.as_of) for o in orders)
    residual = facts.get(residual_disease_findings)
    if residual.status == "pcr":
        return
    if residual.day is None and not _taxane_finished(context, day):
        return
    neoadjuvant = facts.get(therapy_before, residual.day or start)
    if not neoadjuvant.taxane_and_trastuzumab or not _within_trastuzumab_year(neoadjuvant, day):
        return
    if _tdm1_recorded_since(facts, neoadjuvant):
        return
    # The suggested course starts on the dose day: its mg dose comes from a weight of the lookback before that day.
    weight = facts.on(day).get(weight_kg)
    dose_mg = round(TDM1_DOSE_MG_PER_KG * weight.value, 1) if weight is not None else None
    replaced = [o for o in context.record.draft_orders if o.ingredients & HER2_ANTIBODY_ORDER and TDM1 not in o.ingredients]
    confirmed = residual.status == "residual"
    yield Finding(
        card="sequencing-katherine-adjuvant-tdm1",
        values={
            "confirmed": confirmed,
            "orders": names_of(replaced),
            "when": {"start": start, "day": day},
            "staging": residual.described,
            "staging_day": residual.day,
            "neoadjuvant": _neoadjuvant_values(neoadjuvant),
            "weight": weight.value if weight is not None else None,
            "weight_day": weight.day if weight is not None else None,
            "weight_lookback_days": facts.settings.weight_lookback_days,
            "dose_mg": dose_mg,
        },
        suggestions=(
            ProposedSuggestion(
                key="replace-with-tdm1",
                values={"dose_mg": dose_mg, "replaced": names_of(replaced)},
                actions=(
                    ProposedAction(type="create", resource=_tdm1_order(context, day, dose_mg, weight.value if weight else None)),
                    *(ProposedAction(type="delete", resource_id=o.reference, values={"order": o.text}) for o in replaced),
                ),
            ),
        ) if confirmed else (),
        evidence=residual.references + tuple(e.source for e in neoadjuvant.taxanes + neoadjuvant.trastuzumab),
    )


def _within_trastuzumab_year(neoadjuvant: NeoadjuvantTherapy, day: date) -> bool:
    """KATHERINE's T-DM1 takes the place of the adjuvant part of the one-year trastuzumab course (rule 45), which
    began with the neoadjuvant trastuzumab: once that year is over there is no adjuvant trastuzumab left to replace."""
    return day - _first_trastuzumab(neoadjuvant) <= ADJUVANT_COURSE


def _tdm1_recorded_since(facts: Facts, neoadjuvant: NeoadjuvantTherapy) -> bool:
    """Whether T-DM1 is recorded (given, running, held, stopped or signed to start) since the neoadjuvant trastuzumab
    began, or undated: adjuvant T-DM1 was chosen already. A trastuzumab order then completes the year after T-DM1
    stopped (for toxicity, say), and a new 14-cycle T-DM1 course in its place would restart what was stopped."""
    first = _first_trastuzumab(neoadjuvant)
    return any(TDM1 in e.ingredients and (e.start is None or e.start >= first) for e in facts.exposures)


def _first_trastuzumab(neoadjuvant: NeoadjuvantTherapy) -> date:
    return min(e.start for e in neoadjuvant.trastuzumab if e.start is not None)


def _taxane_finished(context: RuleContext, day: date) -> bool:
    """Without yp staging nothing dates surgery: until the taxane has finished by the dose day (and while one is
    drafted with the order), a trastuzumab order is the next neoadjuvant cycle, not the adjuvant one."""
    if any(o.ingredients & TAXANES for o in context.record.draft_orders):
        return False
    return context.facts.get(taxane_finished_before, day)


def _neoadjuvant_values(therapy: NeoadjuvantTherapy) -> list[dict[str, Any]]:
    exposures = therapy.taxanes + therapy.trastuzumab + tuple(e for e in therapy.pertuzumab if e not in therapy.trastuzumab)
    return [{"text": e.text, "start": e.start, "end": e.end} for e in sorted(exposures, key=lambda e: e.start or date.min)]


def _tdm1_order(context: RuleContext, start: date, dose_mg: float | None, weight: float | None) -> dict[str, Any]:
    """A draft T-DM1 MedicationRequest for the KATHERINE regimen from `start` (the replaced order's dose day, never a
    day already past); the mg dose only when a weight is on file."""
    dose_text = f"{TDM1_DOSE_MG_PER_KG:g} mg/kg"
    if dose_mg is not None:
        dose_text += f" ({dose_mg:g} mg for {weight:g} kg)"
    else:
        dose_text += " (no current weight on file: calculate the mg dose from a new weight)"
    dose_and_rate: list[dict[str, Any]] = [{
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/dose-rate-type", "code": "ordered", "display": "Ordered"}]},
        "doseQuantity": dose_quantity(TDM1_DOSE_MG_PER_KG, "mg/kg"),
    }]
    if dose_mg is not None:
        dose_and_rate.append({
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/dose-rate-type", "code": "calculated", "display": "Calculated"}]},
            "doseQuantity": dose_quantity(dose_mg, "mg"),
        })
    return medication_request(context, RXNORM_TDM1, "ado-trastuzumab emtansine", [{
        "text": f"{dose_text} IV every 3 weeks for {TDM1_ADJUVANT_CYCLES} cycles (adjuvant, KATHERINE)",
        "timing": {"repeat": {"boundsPeriod": {"start": start.isoformat()}, "count": TDM1_ADJUVANT_CYCLES,
                              "frequency": 1, "period": 3, "periodUnit": "wk"}},
        "route": {"text": "intravenous"},
        "doseAndRate": dose_and_rate,
    }])


# --- rule 39: T-DM1 outside the KATHERINE population -------------------------------------------------


@rule(
    id="sequencing.adjuvant-tdm1-not-katherine",
    numbers=(39,),
    title="Adjuvant T-DM1 ordered after pCR or without neoadjuvant therapy",
    hooks=ORDER_HOOKS,
    cards=("sequencing-adjuvant-tdm1-not-katherine",),
    trigger=(
        "T-DM1 ordered in early breast cancer when yp staging shows pCR (ypT0/Tis ypN0, yp stage 0, RCB-0), or no taxane + "
        "trastuzumab started in the year before surgery (when no yp staging dates surgery, before the T-DM1 course the "
        "order starts or continues); after neoadjuvant taxane + trastuzumab without readable yp staging the card asks "
        "for it."
    ),
    thresholds=(
        "pCR = ypT0/Tis ypN0 (yp stage 0) or RCB-0 (A3.4); neoadjuvant = started within 365 days before the yp staging day, or, "
        "with no yp staging, before the first dose of the T-DM1 course running up to the order's planned start (T-DM1 "
        "exposures <= 90 days apart), else before that planned start."
    ),
)
def adjuvant_tdm1_not_katherine(context: RuleContext) -> Iterator[Finding]:
    facts = context.facts
    orders = context.focus_orders_of({TDM1})
    if not orders or facts.get(setting) != "early":
        return
    start = min(planned_period(o, context.as_of)[0] for o in orders)
    residual = facts.get(residual_disease_findings)
    # Without yp staging nothing dates surgery, but a T-DM1 course the order continues began after it: a later
    # cycle's neoadjuvant therapy can have begun more than a year before the cycle.
    course = _course_until(facts, start, frozenset({TDM1})) if residual.day is None else None
    tdm1_since = min((e.start for e in course or () if e.start is not None and e.start < start), default=None)
    neoadjuvant = facts.get(therapy_before, residual.day or tdm1_since or start)
    if residual.status == "pcr":
        reason = "pcr"
    elif not neoadjuvant.taxane_and_trastuzumab:
        # Without yp staging there is no surgery day: nothing in the year before the order means no neoadjuvant
        # therapy on record (upfront surgery), and no ypTNM to ask for.
        reason = "no-neoadjuvant"
    elif residual.status == "unknown":
        reason = "unconfirmed"
    else:
        return
    yield Finding(
        card="sequencing-adjuvant-tdm1-not-katherine",
        values={
            "reason": reason,
            "orders": names_of(orders),
            "staging": residual.described,
            "staging_day": residual.day,
            "tdm1_since": tdm1_since,
            "neoadjuvant": _neoadjuvant_values(neoadjuvant),
        },
        evidence=residual.references,
    )


# --- rule 40: first line -----------------------------------------------------------------------------


@rule(
    id="sequencing.first-line-thp-preferred",
    numbers=(40,),
    title="First-line HER2-positive metastatic therapy without pertuzumab, or T-DM1",
    hooks=ORDER_HOOKS,
    cards=("sequencing-first-line-thp-preferred",),
    trigger=(
        "HER2-positive metastatic disease with no HER2-directed therapy started since the metastatic diagnosis, and "
        "an order for trastuzumab with a taxane (drafted, or recorded over the days the trastuzumab is given) but no "
        "pertuzumab, or for T-DM1. Not when the "
        "recurrence came within 12 months of (neo)adjuvant trastuzumab or T-DM1, or may have (last dose undated; "
        "rule 42)."
    ),
    thresholds=(
        "Lines: HER2-directed regimens started after the metastatic diagnosis or within 30 days before it (30-day "
        f"grouping). The days a drafted trastuzumab is given: {DOSE_PERIOD}."
    ),
)
def first_line_thp_preferred(context: RuleContext) -> Iterator[Finding]:
    facts = context.facts
    # The orders first: they cost nothing to read, the disease setting and HER2 status read Observations.
    if not context.focus_orders_of({TDM1} | TRASTUZUMAB_PRODUCTS):
        return
    if facts.get(setting) != "metastatic" or not _her2_positive(facts):
        return
    line = facts.get(line_of_therapy)
    if line is not None and line > 0:
        return
    # Within 12 months of (neo)adjuvant therapy, or maybe so, this is second line (rule 42 says which).
    if _recurrence_timing(facts) in ("early", "undecided"):
        return
    tdm1 = context.focus_orders_of({TDM1})
    without_pertuzumab = {
        o.reference: (o, regimen) for o in context.focus_orders
        if o.ingredients & TRASTUZUMAB_PRODUCTS and (regimen := _regimen_around(context, o)) & TAXANES and "pertuzumab" not in regimen
    }
    if not tdm1 and not without_pertuzumab:
        return
    taxanes = {key for _, regimen in without_pertuzumab.values() for key in regimen & TAXANES}
    first = next(iter(without_pertuzumab.values()), None)
    yield Finding(
        card="sequencing-first-line-thp-preferred",
        values={
            "tdm1": names_of(tdm1),
            "without_pertuzumab": names_of(order for order, _ in without_pertuzumab.values()),
            "taxanes": ingredient_names(taxanes),
            "metastatic_since": facts.get(metastatic_since),
            "line_known": line is not None,
        },
        suggestions=(
            ProposedSuggestion(key="add-pertuzumab", actions=(ProposedAction(type="create", resource=_pertuzumab_order(context, first[0])),)),
        ) if first is not None else (),
        evidence=tuple(o.reference for o in tdm1) + tuple(without_pertuzumab),
    )


def _regimen_around(context: RuleContext, order: DraftOrder) -> frozenset[str]:
    """Ingredients of the regimen this order belongs to: every draft of the session and every drug recorded over
    the days the order is given (dose_period: a taxane finished since a past planned start is not given with it)."""
    day, end = dose_period(order, context.as_of)
    drafted = (other.ingredients for other in context.record.draft_orders)
    current = (e.ingredients for e in context.facts.exposures if e.overlaps(day, end))
    return frozenset().union(*drafted, *current)


def _pertuzumab_order(context: RuleContext, order: DraftOrder) -> dict[str, Any]:
    """A draft pertuzumab MedicationRequest: the 840 mg load with the trastuzumab order's dose day, then 420 mg."""
    start = dose_day(order, context.as_of)
    return medication_request(context, RXNORM_PERTUZUMAB, "pertuzumab", [
        {
            "sequence": 1,
            "text": f"{PERTUZUMAB_LOADING_MG} mg IV loading dose (cycle 1)",
            "timing": {"repeat": {"boundsPeriod": {"start": start.isoformat()}, "count": 1}},
            "route": {"text": "intravenous"},
            "doseAndRate": [{"doseQuantity": dose_quantity(PERTUZUMAB_LOADING_MG, "mg")}],
        },
        {
            "sequence": 2,
            "text": f"then {PERTUZUMAB_MAINTENANCE_MG} mg IV every 3 weeks, with trastuzumab and the taxane",
            "timing": {"repeat": {"frequency": 1, "period": 3, "periodUnit": "wk"}},
            "route": {"text": "intravenous"},
            "doseAndRate": [{"doseQuantity": dose_quantity(PERTUZUMAB_MAINTENANCE_MG, "mg")}],
        },
    ])


# --- rule 41: second line and beyond after progression ----------------------------------------------


@rule(
    id="sequencing.second-line-after-progression",
    numbers=(41,),
    title="Progression on or after trastuzumab-based metastatic therapy: next-line options",
    hooks=ALL_HOOKS,
    cards=("sequencing-second-line-after-progression",),
    trigger=(
        "HER2-positive metastatic disease whose newest disease status (97509-4) is 'worsened', after a "
        "trastuzumab-based metastatic line started before its day and with no new line started on or since it (a "
        "line that starts on the day of the progression is the next one, not one progressed on); on patient-view, "
        "and on ordering a HER2-directed drug other than T-DXd (unless T-DXd was already given)."
    ),
    thresholds="Lines: HER2-directed regimens started after the metastatic diagnosis or within 30 days before it (30-day grouping).",
)
def second_line_after_progression(context: RuleContext) -> Iterator[Finding]:
    facts = context.facts
    if not _may_be_next_line_order(context):
        return
    worsened = facts.get(progression)
    if worsened is None or facts.get(setting) != "metastatic" or not _her2_positive(facts):
        return
    line = facts.get(line_of_therapy)
    lines = facts.get(metastatic_lines)
    before = _lines_before(lines, worsened)
    if line is not None:
        if len(before) < len(lines) or not any(item.trastuzumab_based for item in before):
            return
    elif not any(e.ingredients & TRASTUZUMAB_PRODUCTS for e in facts.exposures):
        return
    used = frozenset().union(*(e.ingredients for e in facts.exposures))
    if not _next_line_order_context(context, used, preferred={TDXD}):
        return
    yield Finding(
        card="sequencing-second-line-after-progression",
        values={
            "progression_day": worsened.day,
            "lines": _line_values(before),
            "line_known": line is not None,
            "next_line": len(before) + 1 if line is not None else None,
            "tdxd_used": TDXD in used,
            "tdm1_used": TDM1 in used,
            "tucatinib_used": "tucatinib" in used,
            "orders": names_of(context.focus_orders_of(HER2_DIRECTED)),
        },
        evidence=(worsened.reference, *(source for item in before for source in item.sources)),
    )


def _lines_before(lines: tuple[TherapyLine, ...], worsened: Progression) -> tuple[TherapyLine, ...]:
    """Lines started before the day of the progression; all lines when the progression is undated. A line that
    starts on that day answers the progression: no disease progresses on therapy the day it begins."""
    if worsened.day is None:
        return lines
    return tuple(item for item in lines if item.start < worsened.day)


def _line_values(lines: Iterable[TherapyLine]) -> list[dict[str, Any]]:
    return [{"number": item.number, "start": item.start, "end": item.end, "drugs": " + ".join(item.texts)} for item in lines]


def _may_be_next_line_order(context: RuleContext) -> bool:
    """What _next_line_order_context asks of the orders alone, checked before the facts that read Observations."""
    return context.hook == "patient-view" or bool(context.focus_orders_of(HER2_DIRECTED))


def _next_line_order_context(context: RuleContext, used: frozenset[str], preferred: set[str]) -> bool:
    """Patient-view always qualifies; an order qualifies when it is HER2-directed and not already a preferred,
    not-yet-used option (ordering the recommended drug needs no card)."""
    if context.hook == "patient-view":
        return True
    drafts = context.focus_orders_of(HER2_DIRECTED)
    if not drafts:
        return False
    fresh_preferred = preferred - used
    return not any(o.ingredients & fresh_preferred for o in drafts)


# --- rule 42: early recurrence -----------------------------------------------------------------------


def _recurrence_timing(facts: Facts) -> Literal["early", "late", "undecided"] | None:
    """Whether metastatic disease came within 12 months of finishing (neo)adjuvant therapy: "undecided" when the last
    dose is undated and could fall on either side of the cut-off; None without dated recurrence."""
    found = facts.get(recurrence)
    if found is None:
        return None
    # An undated last dose was on or after measured_from, so the interval is at most found.months.
    if within_months(found.measured_from, found.metastatic_since, GUIDELINE_RECURRENCE_MONTHS):
        return "early"
    if not found.last_dose_undated:
        return "late"
    # measured_from is the start of the record that leaves the last dose open, and one record of (neo)adjuvant therapy
    # ends within a year (trastuzumab is 1 year in all, rule 45; KATHERINE's 14 T-DM1 cycles take 39 weeks): a
    # metastatic diagnosis more than 12 months after that year is late whenever in it the last dose came.
    latest_last_dose = found.measured_from + ADJUVANT_COURSE
    return "undecided" if within_months(latest_last_dose, found.metastatic_since, GUIDELINE_RECURRENCE_MONTHS) else "late"


@rule(
    id="sequencing.early-recurrence-second-line",
    numbers=(42,),
    title="Metastatic recurrence within 12 months of (neo)adjuvant trastuzumab or T-DM1: treat as second line",
    hooks=ALL_HOOKS,
    cards=("sequencing-early-recurrence-second-line",),
    trigger=(
        "HER2-positive metastatic disease diagnosed <= 12 months after the last dose of (neo)adjuvant trastuzumab or "
        "T-DM1 (therapy started before the metastatic diagnosis, less a HER2-directed regimen started within 30 days "
        "before it, which is metastatic line 1), before any metastatic line has started; on patient-view, and on "
        "ordering trastuzumab or pertuzumab (not T-DM1/T-DXd). The card names the drug of that last dose. When the "
        "last dose is undated and could be either side of 12 months, the card asks for it; when the metastatic "
        "diagnosis is undated, on ordering after (neo)adjuvant trastuzumab or T-DM1 that has ended, for that date."
    ),
    thresholds=(
        "12 months (ASCO guideline, calendar months) and 6 months (Kadcyla/Enhertu label wording), both shown; a "
        "regimen continuing a course of the same drug (gap <= 90 days) is not a new metastatic line. An undated last "
        "dose came at most 52 weeks after its record began (adjuvant trastuzumab is 1 year in all, rule 45): a "
        "metastatic diagnosis more than 12 months after that is late, and the card does not ask."
    ),
)
def early_recurrence_second_line(context: RuleContext) -> Iterator[Finding]:
    facts = context.facts
    first_line_orders = context.focus_orders_of(HER2_ANTIBODY_ORDER)
    if context.hook != "patient-view" and (not first_line_orders or any(o.ingredients & {TDM1, TDXD} for o in context.focus_orders)):
        return
    if facts.get(setting) != "metastatic" or not _her2_positive(facts) or facts.get(line_of_therapy) not in (0, None):
        return
    found = facts.get(recurrence)
    if found is not None:
        timing = _recurrence_timing(facts)
        if timing == "late":
            return
        values: dict[str, Any] = {
            "dated": True,
            **_last_given_values(found.last_given),
            "last_dose_needed": timing == "undecided",
            "during": found.last_dose is None,
            "last_dose": found.last_dose.day if found.last_dose is not None else None,
            "measured_from": found.measured_from,
            "metastatic_since": found.metastatic_since,
            "months": found.months,
            "within_label_window": within_months(found.measured_from, found.metastatic_since, LABEL_RECURRENCE_MONTHS),
            "with_pertuzumab": found.with_pertuzumab,
        }
        evidence = found.sources
    else:
        # Undated metastatic disease: ask, but only while a first-line order is being written.
        last = last_dose_of(e for e in facts.exposures if e.ingredients & ADJUVANT_HER2_THERAPY and not e.ongoing)
        if facts.get(metastatic_since) is not None or context.hook == "patient-view" or last is None:
            return
        values = {"dated": False, **_last_given_values(last.ingredients), "last_dose": last.day, "measured_from": last.at_least,
                  "with_pertuzumab": any("pertuzumab" in e.ingredients for e in facts.exposures)}
        evidence = last.sources
    yield Finding(
        card="sequencing-early-recurrence-second-line",
        values={**values, "orders": names_of(first_line_orders), "guideline_months": GUIDELINE_RECURRENCE_MONTHS,
                "label_months": LABEL_RECURRENCE_MONTHS,
                # Second line after T-DM1 is T-DXd (rule 41 offers T-DM1 only if not used before).
                "tdm1_used": any(TDM1 in e.ingredients for e in facts.exposures)},
        evidence=evidence,
    )


def _last_given_values(ingredients: frozenset[str]) -> dict[str, bool]:
    """Which (neo)adjuvant HER2 therapy the last dose was, for the card to name: T-DM1, a trastuzumab product, or both."""
    return {"tdm1_last": TDM1 in ingredients, "trastuzumab_last": bool(ingredients & TRASTUZUMAB_PRODUCTS)}


# --- rule 43: brain metastases -----------------------------------------------------------------------


@rule(
    id="sequencing.brain-metastases-progression",
    numbers=(43,),
    title="Brain metastases progressing after anti-HER2 therapy: HER2CLIMB regimen or T-DXd",
    hooks=ALL_HOOKS,
    cards=("sequencing-brain-metastases-progression",),
    trigger=(
        "HER2-positive disease with an active brain metastasis condition (SNOMED 94225005; ICD-10-CM C79.31 is "
        "UNVERIFIED in the reference and not read alone), newest disease status 'worsened', at least "
        "one HER2-directed drug started before its day and none started on or since it (one that starts on the day "
        "of the progression is the next line); on patient-view, and on ordering a HER2-directed drug other than "
        "tucatinib or T-DXd."
    ),
    thresholds="At least one prior HER2-directed exposure (any setting) before the progression.",
)
def brain_metastases_progression(context: RuleContext) -> Iterator[Finding]:
    facts = context.facts
    if not _may_be_next_line_order(context) or not any(e.ingredients & HER2_DIRECTED for e in facts.exposures):
        return
    worsened = facts.get(progression)
    brain = facts.get(brain_metastases)
    if worsened is None or not brain or not _her2_positive(facts):
        return
    started = [(e, e.start) for e in facts.exposures if e.ingredients & HER2_DIRECTED and e.start is not None]
    prior = [e for e, start in started if worsened.day is None or start < worsened.day]
    # A HER2-directed drug started on or after the day of the progression means the next line is already under way.
    if not prior or any(worsened.day is not None and start >= worsened.day for _, start in started):
        return
    used = frozenset().union(*(e.ingredients for e in facts.exposures))
    if not _next_line_order_context(context, used, preferred={"tucatinib", TDXD}):
        return
    yield Finding(
        card="sequencing-brain-metastases-progression",
        values={
            "brain": [{"text": _condition_text(c), "since": condition_day(c)} for c in brain],
            "progression_day": worsened.day,
            "prior": [{"text": e.text, "start": e.start, "end": e.end} for e in prior],
            "tucatinib_used": "tucatinib" in used,
            "tdxd_used": TDXD in used,
        },
        evidence=(worsened.reference, *(f"Condition/{c.id}" for c in brain)),
    )


def _condition_text(condition: Condition) -> str:
    code = condition.code
    return code.text or next((c.display for c in code.coding or [] if c.display), "brain metastasis")


# --- rule 44: T-DM1 + atezolizumab -------------------------------------------------------------------


@rule(
    id="sequencing.tdm1-with-atezolizumab",
    numbers=(44,),
    title="T-DM1 and atezolizumab together",
    hooks=ORDER_HOOKS,
    cards=("sequencing-tdm1-with-atezolizumab",),
    trigger="T-DM1 and atezolizumab both drafted, or one drafted while the other is recorded over the days it is given.",
    thresholds=f"Overlap with the days {DOSE_PERIOD}; a recorded dose covers 20 days after it (21-day cycle).",
)
def tdm1_with_atezolizumab(context: RuleContext) -> Iterator[Finding]:
    partners = {TDM1: ATEZOLIZUMAB, ATEZOLIZUMAB: TDM1}
    pairs: list[dict[str, str]] = []
    removable: dict[str, DraftOrder] = {}
    for order in context.focus_orders:
        for own, partner in partners.items():
            if own not in order.ingredients:
                continue
            day, end = dose_period(order, context.as_of)
            for other in context.record.draft_orders:
                if other is not order and partner in other.ingredients:
                    removable.update({order.reference: order, other.reference: other})
                    pairs.append({"ordered": order.text, "other": other.text, "other_when": "ordered together in this order session"})
            for exposure in context.facts.exposures:
                if partner in exposure.ingredients and exposure.overlaps(day, end):
                    removable[order.reference] = order
                    pairs.append({"ordered": order.text, "other": exposure.text, "other_when": exposure.describe()})
    if not pairs:
        return
    # Two drafts name each other; show each pair once.
    unique = list({frozenset((p["ordered"], p["other"])): p for p in pairs}.values())
    atezolizumab_drafted = any(ATEZOLIZUMAB in o.ingredients for o in removable.values())
    yield Finding(
        card="sequencing-tdm1-with-atezolizumab",
        values={"pairs": unique, "atezolizumab_drafted": atezolizumab_drafted},
        # T-DM1 continues alone (KATE2): offer to remove drafted atezolizumab; when only T-DM1 is drafted (atezolizumab
        # already running), offer to remove that draft instead.
        suggestions=remove_drafts(o for o in removable.values() if ATEZOLIZUMAB in o.ingredients or len(removable) == 1),
        evidence=tuple(removable),
    )


# --- rule 45: adjuvant trastuzumab duration ---------------------------------------------------------


@rule(
    id="sequencing.trastuzumab-duration",
    numbers=(45,),
    title="Adjuvant trastuzumab beyond 52 weeks",
    hooks=ALL_HOOKS,
    cards=("sequencing-trastuzumab-duration",),
    trigger=(
        "Not metastatic: a trastuzumab-product order whose dose day or planned end (never before the dose day) lies "
        "more than 52 weeks after the start of the trastuzumab course running up to its planned start (neoadjuvant + "
        "adjuvant), or, with no such course, after its own dose day (an order for over a year); on patient-view, a trastuzumab course still "
        "running (a dose within its 3-week cycle, or recorded as continuing) whose last dose came more than 52 weeks "
        "after it began (to today while it continues with no dose dated since)."
    ),
    thresholds=(
        f"52 weeks total; exposures separated by <= 90 days (from the latest end of those before) belong to one course; an order's doses run from {DOSE_DAY}, "
        "a number of doses or a duration counted from that day too."
    ),
)
def trastuzumab_duration(context: RuleContext) -> Iterator[Finding]:
    facts = context.facts
    if context.hook == "patient-view":
        course = _course_until(facts, context.as_of, TRASTUZUMAB_PRODUCTS)
        if course is None or not any(e.end is None or e.end >= context.as_of for e in course):
            return
        # The course runs to its last dose: counting the cycle after it would pass 52 weeks on a complete 18-cycle course.
        reached = dosed_until(course, context.as_of)
        assert reached is not None  # _course_until keeps only dated exposures
        until, orders = reached, []
        course_start = _course_start(course)
    else:
        orders = context.focus_orders_of(TRASTUZUMAB_PRODUCTS)
        if not orders:
            return
        # The course the orders were planned to continue, and the last day they give a dose (never before today: a
        # draft planned within the year but signed after it gives its dose after it).
        start = min(planned_period(o, context.as_of)[0] for o in orders)
        course = _course_until(facts, start, TRASTUZUMAB_PRODUCTS) or []
        until = max(_planned_end(o, context.as_of) for o in orders)
        # With no course running up to them, the orders begin one: it starts with their first dose.
        course_start = _course_start(course) if course else min(dose_day(o, context.as_of) for o in orders)
    if until - course_start <= ADJUVANT_COURSE:
        return
    current_setting = facts.get(setting)
    if current_setting == "metastatic":
        return
    yield Finding(
        card="sequencing-trastuzumab-duration",
        values={
            "setting_known": current_setting == "early",
            "course_start": course_start,
            "until": until,
            "weeks": (until - course_start).days // 7,
            "course": [{"text": e.text, "start": e.start, "end": e.end} for e in course],
            "orders": names_of(orders),
        },
        evidence=tuple(e.source for e in course) + tuple(o.reference for o in orders),
    )


@rule(
    id="sequencing.metastatic-no-fixed-duration",
    numbers=(45,),
    title="HER2 antibody ordered for a fixed course in metastatic disease",
    hooks=ORDER_HOOKS,
    cards=("sequencing-metastatic-no-fixed-duration",),
    trigger=(
        "Metastatic (or unrecorded) disease setting and a drafted HER2 antibody (trastuzumab products, pertuzumab, "
        "T-DM1, T-DXd) whose order fixes the length of its course beyond one cycle: a dosage bounds end, a number of "
        "doses or a bounds duration in every scheduled dosage (phase; the latest end counts, and an open-ended "
        "maintenance phase continues the course), or an expected supply duration."
    ),
    thresholds=f"A fixed course: planned to end at least {SINGLE_CYCLE.days} days after its start (one 3-week cycle).",
)
def metastatic_no_fixed_duration(context: RuleContext) -> Iterator[Finding]:
    fixed = []
    for order in context.focus_orders_of(HER2_ANTIBODIES):
        # How the order is written: its course counted from its own planned start.
        start = planned_period(order, context.as_of)[0]
        limit = course_limit(order, start)
        if limit is not None and limit.end - start >= SINGLE_CYCLE:
            fixed.append({"order": order.text, "start": start, "end": limit.end, "how": limit.how,
                          "reference": order.reference})
    if not fixed:
        return
    current_setting = context.facts.get(setting)
    if current_setting == "early":
        return
    yield Finding(
        card="sequencing-metastatic-no-fixed-duration",
        values={"orders": fixed, "setting_known": current_setting == "metastatic",
                "metastatic_since": context.facts.get(metastatic_since)},
        evidence=tuple(item["reference"] for item in fixed),
    )


def _course_until(facts: Facts, day: date, ingredients: frozenset[str]) -> list[Exposure] | None:
    """The exposures to these ingredients of the course running up to `day`: dated exposures started by then, oldest
    first, each joining the course when it starts at most COURSE_GAP after the latest end among those before it (an
    order or statement of the whole course joins the doses recorded within it, whichever record started last). None
    when nothing dated precedes `day`, or the course ended more than COURSE_GAP before it."""
    dated = sorted(
        (e for e in facts.exposures if e.ingredients & ingredients and e.start is not None and e.start <= day),
        key=lambda e: e.start or date.min,
    )
    course: list[Exposure] = []
    # The latest end in the course so far; None while one of its exposures continues.
    reach: date | None = None
    for exposure in dated:
        assert exposure.start is not None  # only dated exposures are sorted
        if course and reach is not None and exposure.start - reach > COURSE_GAP:
            course = []
        if not course:
            reach = exposure.end
        elif reach is not None:
            reach = None if exposure.end is None else max(reach, exposure.end)
        course.append(exposure)
    if not course or (reach is not None and day - reach > COURSE_GAP):
        return None
    return course


def _course_start(course: list[Exposure]) -> date:
    return min(e.start for e in course if e.start is not None)


def _planned_end(order: DraftOrder, as_of: date) -> date:
    """The last planned day of an order: its bounds or validity end, else the end its course limit sets, else its
    dose day; never before the dose day, since a draft whose planned course is over still gives a dose then. A number
    of doses or a duration runs from the dose day: none of those doses is given yet."""
    day, end = dose_period(order, as_of)
    if end is not None:
        return end
    limit = course_limit(order, day)
    return max(limit.end, day) if limit is not None else day
