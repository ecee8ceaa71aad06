"""Blood counts (clinical reference Part B3, rules 28-30): T-DM1 thrombocytopenia holds and T-DXd cytopenias.

A missing pre-dose platelet count for T-DM1 is reported by the "labs needed before T-DM1" card (rules.hepatic);
for T-DXd, whose label asks for a complete blood count before each dose, by this module's own card.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from itertools import takewhile
from typing import Any, Iterator, Mapping

from cds_hooks.facts.dosing import last_dose_day
from cds_hooks.facts.labs import CellCount, labs_before, platelet_counts
from cds_hooks.facts.therapy import DOSE_DAY, dose_day, started_before
from cds_hooks.protocol.request import ORDER_HOOKS
from cds_hooks.record import DraftOrder
from cds_hooks.rules.base import Finding, RuleContext, rule
from cds_hooks.rules.proposals import lab_orders, remove_drafts

TDM1 = "ado_trastuzumab_emtansine"
TDXD = "fam_trastuzumab_deruxtecan"
# Platelets per mm³ (Kadcyla label, clinical reference rules 28 and 29): T-DM1 is held below 50,000 until they
# recover to 75,000 or more.
HOLD_BELOW = 50_000.0
SEVERE_BELOW = 25_000.0
RESUME_FROM = 75_000.0

# Rule 30: Enhertu US prescribing information §2.3 Table 2 (grades per NCI-CTCAE v5.0), as reproduced on
# https://www.enhertuhcp.com/en/breast/manage-potential-risks/neutropenia and .../thrombocytopenia: grade 3 is
# ANC < 1.0-0.5 × 10⁹/L and platelets < 50-25 × 10⁹/L, grade 4 is ANC < 0.5 and platelets < 25 × 10⁹/L.
# Per mm³ (10⁹/L = 1,000/mm³), the count below which each grade begins:
TDXD_GRADE_BELOW: Mapping[str, Mapping[int, float]] = {
    "neutrophils": {4: 500.0, 3: 1_000.0},
    "platelets": {4: 25_000.0, 3: 50_000.0},
}
TDXD_CARDS = {4: "haematologic-tdxd-cytopenia-grade-4", 3: "haematologic-tdxd-cytopenia-grade-3"}
COUNT_NEEDED_CARD = "haematologic-tdxd-blood-count-needed"
COUNT_NAMES = {"neutrophils": "absolute neutrophil count", "platelets": "platelet count"}


@rule(
    id="haematologic.tdm1-thrombocytopenia",
    numbers=(28, 29),
    title="T-DM1 dose with a platelet count below 50,000/mm³, or not yet recovered to 75,000/mm³ since one",
    hooks=ORDER_HOOKS,
    cards=("haematologic-tdm1-platelets-hold", "haematologic-tdm1-platelets-severe"),
    trigger=(
        "A drafted ado-trastuzumab emtansine (T-DM1) whose latest platelet count (LOINC 777-3, 26515-7) within the lab "
        f"lookback window before {DOSE_DAY} is below 50,000/mm³; or is below 75,000/mm³ while a count below 50,000/mm³ "
        "dated after the last T-DM1 dose (with no dated dose, within that window) has no count of 75,000/mm³ or more "
        "after it."
    ),
    thresholds=(
        "25,000 to < 50,000/mm³: warning, hold until ≥ 75,000 then the same dose. < 25,000/mm³: critical, hold until "
        "≥ 75,000 then reduce one level. A count not yet recovered is judged by the lowest count below 50,000/mm³ since "
        "the last dose. Units converted to per mm³ (10*3/uL, 10*9/L, /uL, /mm3); window settings.lab_lookback_days "
        "before the dose day, inclusive."
    ),
)
def tdm1_thrombocytopenia(context: RuleContext) -> Iterator[Finding]:
    # Each held dose with the count that holds it and, when newer, the latest count, which has not recovered.
    held: list[tuple[DraftOrder, CellCount, CellCount | None]] = []
    for order in context.focus_orders_of({TDM1}):
        day = dose_day(order, context.as_of)
        labs = context.facts.get(labs_before, day)
        latest = labs.platelets
        if latest is None or latest.per_mm3 is None or latest.per_mm3 >= RESUME_FROM:
            continue
        if latest.per_mm3 < HOLD_BELOW:
            held.append((order, latest, None))
        elif (low := _low_not_recovered(context, TDM1, day, labs.window_start)) is not None:
            held.append((order, low, latest))
    if not held:
        return
    _, lowest, lowest_latest = min(held, key=lambda item: item[1].per_mm3 or 0.0)
    severe = lowest.per_mm3 is not None and lowest.per_mm3 < SEVERE_BELOW
    yield Finding(
        card="haematologic-tdm1-platelets-severe" if severe else "haematologic-tdm1-platelets-hold",
        values={
            "doses": [{"order": order.text, "dose_day": dose_day(order, context.as_of), "platelets": _count(count),
                       "latest": _count(latest) if latest else None}
                      for order, count, latest in held],
            "lowest": _count(lowest),
            "latest_after_lowest": _count(lowest_latest) if lowest_latest else None,
        },
        suggestions=remove_drafts(order for order, _, _ in held),
        evidence=tuple(sorted({order.reference for order, _, _ in held}
                              | {c.reference for _, low, latest in held for c in (low, latest) if c is not None})),
    )


def _low_not_recovered(context: RuleContext, ingredient: str, day: date, window_start: date) -> CellCount | None:
    """The lowest platelet count below HOLD_BELOW since the last dose of the ingredient before `day` (with no dated
    dose, within the lab window) that no count of RESUME_FROM or more has followed: the T-DM1 and T-DXd labels hold
    the drug until platelets recover to 75,000/mm³ (T-DXd: grade 1 or less), so a count of 50,000 to 75,000 since
    does not end the hold."""
    last = context.facts.get(last_dose_day, ingredient, day)
    after = last.day if last is not None else window_start - timedelta(days=1)
    # Newest first, each read per mm³; those older than the newest recovered count no longer hold the dose.
    counts = context.facts.get(platelet_counts, after, day)
    since_recovery = takewhile(lambda count: (count.per_mm3 or 0.0) < RESUME_FROM, counts)
    return min((count for count in since_recovery if (count.per_mm3 or 0.0) < HOLD_BELOW),
               key=lambda count: count.per_mm3 or 0.0, default=None)


@dataclass(frozen=True)
class _TdxdDose:
    """One drafted T-DXd dose and the blood counts before it."""

    order: DraftOrder
    values: dict[str, Any]
    worst_grade: int | None
    # Counts (value-set keys) with no result in the window, or with a unit that cannot be converted.
    unknown: tuple[str, ...]
    references: tuple[str, ...]


@rule(
    id="haematologic.tdxd-cytopenia",
    numbers=(30,),
    title="T-DXd dose with grade 3-4 neutropenia or thrombocytopenia, or without a blood count",
    hooks=ORDER_HOOKS,
    cards=(TDXD_CARDS[4], TDXD_CARDS[3], COUNT_NEEDED_CARD),
    trigger=(
        "A drafted fam-trastuzumab deruxtecan (T-DXd) whose latest absolute neutrophil count (LOINC 751-8, 26499-4, "
        f"753-4) or platelet count (777-3, 26515-7) within the lab lookback window before {DOSE_DAY} is grade 3 "
        "or 4, or whose latest platelet count is below 75,000/mm³ while a grade 3-4 one dated after the last T-DXd "
        "dose (with no dated dose, within that window) has no count of 75,000/mm³ or more after it; else, when "
        "either count is missing there or in a unit that cannot be converted, a card asks for it."
    ),
    thresholds=(
        "Enhertu label §2.3 Table 2 (CTCAE v5.0). Neutrophils: grade 3 < 1.0-0.5 × 10⁹/L (< 1,000/mm³) interrupt until "
        "grade <= 2, then the same dose; grade 4 < 0.5 × 10⁹/L (< 500/mm³) interrupt, then reduce one level. Platelets: "
        "grade 3 < 50-25 × 10⁹/L interrupt until grade <= 1, then the same dose; grade 4 < 25 × 10⁹/L interrupt, then "
        "reduce one level. Grade 4: critical. Units converted to per mm³; window settings.lab_lookback_days."
    ),
)
def tdxd_cytopenia(context: RuleContext) -> Iterator[Finding]:
    doses = [_tdxd_dose(context, order) for order in context.focus_orders_of({TDXD})]
    graded = [dose for dose in doses if dose.worst_grade is not None]
    if graded:
        worst = max((count for dose in graded for count in dose.values["counts"] if count["grade"]),
                    key=lambda count: (count["grade"], -count["per_mm3"]))
        yield Finding(
            card=TDXD_CARDS[worst["grade"]],
            values={"doses": [dose.values for dose in graded], "worst": worst},
            suggestions=remove_drafts(dose.order for dose in graded),
            evidence=tuple(sorted({reference for dose in graded for reference in dose.references})),
        )
        return
    incomplete = [dose for dose in doses if dose.unknown]
    if not incomplete:
        return
    to_order = sorted({test for dose in incomplete for test in dose.unknown})
    yield Finding(
        card=COUNT_NEEDED_CARD,
        values={"doses": [dose.values for dose in incomplete], "lookback_days": context.settings.lab_lookback_days},
        suggestions=(lab_orders(context, "order-blood-counts", {test: COUNT_NAMES[test] for test in to_order}),),
        evidence=tuple(sorted({dose.order.reference for dose in incomplete})),
    )


def _tdxd_dose(context: RuleContext, order: DraftOrder) -> _TdxdDose:
    day = dose_day(order, context.as_of)
    labs = context.facts.get(labs_before, day)
    counts = {"neutrophils": labs.neutrophils, "platelets": labs.platelets}
    graded = {test: grade for test, count in counts.items() if (grade := _tdxd_grade(test, count)) is not None}
    unknown = tuple(test for test, count in counts.items() if count is None or count.per_mm3 is None)
    shown = [{**_count(count), "test": test, "name": COUNT_NAMES[test], "grade": graded.get(test), "not_recovered_by": None}
             for test, count in counts.items() if count is not None]
    references = [count.reference for test, count in counts.items() if test in graded and count]
    # Grade 3-4 platelets since the last dose hold T-DXd until grade 1 or less (>= 75,000/mm³): a grade 2 count
    # since then is not yet the recovery the label resumes at (ANC resumes at grade 2, so a grade 2 ANC has).
    latest = labs.platelets
    if "platelets" not in graded and latest is not None and latest.per_mm3 is not None and latest.per_mm3 < RESUME_FROM:
        low = _low_not_recovered(context, TDXD, day, labs.window_start)
        if low is not None and (grade := _tdxd_grade("platelets", low)) is not None:
            graded["platelets"] = grade
            shown.append({**_count(low), "test": "platelets", "name": COUNT_NAMES["platelets"], "grade": grade,
                          "not_recovered_by": _count(latest)})
            references.extend((low.reference, latest.reference))
    return _TdxdDose(
        order=order,
        values={
            "order": order.text,
            "dose_day": day,
            "window_start": labs.window_start,
            "first_dose": not started_before(context.facts.exposures, TDXD, day),
            "counts": shown,
            "missing": [COUNT_NAMES[test] for test, count in counts.items() if count is None],
            "unconvertible": [COUNT_NAMES[test] for test in unknown if counts[test] is not None],
        },
        worst_grade=max(graded.values(), default=None),
        unknown=unknown,
        references=(order.reference, *references),
    )


def _tdxd_grade(test: str, count: CellCount | None) -> int | None:
    """Grade 4 or 3 by the Enhertu table's absolute thresholds; None below grade 3 or when the count is unknown."""
    if count is None or count.per_mm3 is None:
        return None
    return next((grade for grade, below in TDXD_GRADE_BELOW[test].items() if count.per_mm3 < below), None)


def _count(count: CellCount) -> dict[str, Any]:
    return {"value": count.value, "unit": count.unit or "", "day": count.day, "per_mm3": count.per_mm3}
