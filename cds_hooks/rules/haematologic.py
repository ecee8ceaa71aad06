"""Blood counts (clinical reference Part B3, rules 28-29): T-DM1 thrombocytopenia holds.

Rule 30 (T-DXd cytopenias) is not implemented: the reference gives neither the grade thresholds it says are
not re-verified nor a neutrophil LOINC code. A missing pre-dose platelet count for T-DM1 is reported by the
"labs needed before T-DM1" card (rules.hepatic), not here.
"""
from __future__ import annotations

from typing import Any, Iterator

from cds_hooks.facts.labs import PlateletCount, labs_before
from cds_hooks.facts.therapy import planned_period
from cds_hooks.protocol.request import ORDER_HOOKS
from cds_hooks.record import DraftOrder
from cds_hooks.rules.base import Finding, ProposedAction, ProposedSuggestion, RuleContext, rule

TDM1 = "ado_trastuzumab_emtansine"
# Platelets per mm³ (Kadcyla label, clinical reference rules 28 and 29).
HOLD_BELOW = 50_000.0
SEVERE_BELOW = 25_000.0


@rule(
    id="haematologic.tdm1-thrombocytopenia",
    numbers=(28, 29),
    title="T-DM1 dose with a platelet count below 50,000/mm³",
    hooks=ORDER_HOOKS,
    cards=("haematologic-tdm1-platelets-hold", "haematologic-tdm1-platelets-severe"),
    trigger=(
        "A drafted ado-trastuzumab emtansine (T-DM1) whose latest platelet count (LOINC 777-3, 26515-7) within the lab "
        "lookback window before its planned start is below 50,000/mm³."
    ),
    thresholds=(
        "25,000 to < 50,000/mm³: warning, hold until ≥ 75,000 then the same dose. < 25,000/mm³: critical, hold until "
        "≥ 75,000 then reduce one level. Units converted to per mm³ (10*3/uL, 10*9/L, /uL, /mm3); window "
        "settings.lab_lookback_days before the planned start."
    ),
)
def tdm1_thrombocytopenia(context: RuleContext) -> Iterator[Finding]:
    low: list[tuple[DraftOrder, PlateletCount]] = []
    for order in context.focus_orders:
        if order.match is None or TDM1 not in order.match.ingredients:
            continue
        count = labs_before(context.facts, planned_period(order, context.as_of)[0]).platelets
        if count is not None and count.per_mm3 is not None and count.per_mm3 < HOLD_BELOW:
            low.append((order, count))
    if not low:
        return
    lowest = min((count for _, count in low), key=lambda count: count.per_mm3 or 0.0)
    severe = lowest.per_mm3 is not None and lowest.per_mm3 < SEVERE_BELOW
    yield Finding(
        card="haematologic-tdm1-platelets-severe" if severe else "haematologic-tdm1-platelets-hold",
        values={"doses": [_dose(order, count, context) for order, count in low], "lowest": _count(lowest)},
        suggestions=tuple(
            ProposedSuggestion(key="remove-draft", values={"order": order.text},
                               actions=(ProposedAction(type="delete", resource_id=order.reference),))
            for order, _ in low
        ),
        evidence=tuple(sorted({order.reference for order, _ in low} | {count.reference for _, count in low})),
    )


def _dose(order: DraftOrder, count: PlateletCount, context: RuleContext) -> dict[str, Any]:
    return {"order": order.text, "dose_day": planned_period(order, context.as_of)[0], "platelets": _count(count)}


def _count(count: PlateletCount) -> dict[str, Any]:
    return {"value": count.value, "unit": count.unit or "", "day": count.day, "per_mm3": count.per_mm3}
