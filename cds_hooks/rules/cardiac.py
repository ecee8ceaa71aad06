"""Cardiac rules (clinical reference Part B2): anthracycline overlap, LVEF baseline and monitoring."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Iterator

from cds_hooks import terminology
from cds_hooks.facts.therapy import Exposure, planned_period
from cds_hooks.protocol.request import ORDER_HOOKS
from cds_hooks.record import DraftOrder
from cds_hooks.rules.base import Finding, ProposedAction, ProposedSuggestion, RuleContext, rule

ANTHRACYCLINES = terminology.ingredients_in_class("anthracycline")
# Rule 20 names every trastuzumab product (biosimilars, Hylecta, Phesgo) and pertuzumab; not T-DM1 or T-DXd.
ANTHRACYCLINE_PARTNERS = terminology.ingredients_in_class("trastuzumab_product") | {"pertuzumab"}


@rule(
    id="cardiac.anthracycline-with-trastuzumab",
    numbers=(20,),
    title="Anthracycline active or overlapping with trastuzumab or pertuzumab",
    hooks=ORDER_HOOKS,
    cards=("anthracycline-with-trastuzumab",),
    trigger=(
        "A drafted trastuzumab product (biosimilars, Hylecta, Phesgo) or pertuzumab while an anthracycline is drafted "
        "too or recorded over the planned period; or a drafted anthracycline while one of those is."
    ),
    thresholds="Overlap of periods; a recorded dose covers 20 days after it (21-day cycle). T-DM1 and T-DXd are not in scope.",
)
def anthracycline_with_trastuzumab(context: RuleContext) -> Iterator[Finding]:
    pairs: dict[frozenset[str], dict[str, str]] = {}
    removable: dict[str, DraftOrder] = {}
    names: dict[str, set[str]] = {"her2": set(), "anthracycline": set()}
    for order in context.focus_orders:
        partner_class = _partner_class(order)
        if partner_class is None:
            continue
        own_kind, partner_kind = ("her2", "anthracycline") if partner_class is ANTHRACYCLINES else ("anthracycline", "her2")
        start, end = planned_period(order, context.as_of)
        for other in _overlapping(context, order, partner_class, start, end):
            removable[order.reference] = order
            if other.draft is not None:
                removable[other.draft.reference] = other.draft
            names[own_kind].add(order.text)
            names[partner_kind].add(other.text)
            pairs.setdefault(
                frozenset({order.reference, other.reference}),
                {"ordered": order.text, "ordered_when": f"planned from {start.isoformat()}", "other": other.text, "other_when": other.when},
            )
    if not pairs:
        return
    yield Finding(
        card="anthracycline-with-trastuzumab",
        values={
            "pairs": list(pairs.values()),
            "her2_drugs": " and ".join(sorted(names["her2"])),
            "anthracyclines": " and ".join(sorted(names["anthracycline"])),
        },
        suggestions=tuple(
            ProposedSuggestion(
                key="remove-draft",
                values={"order": order.text},
                actions=(ProposedAction(type="delete", resource_id=order.reference),),
            )
            for order in removable.values()
        ),
        evidence=tuple(sorted({reference for key in pairs for reference in key})),
        system_actions=(_detected_issue(context, pairs),) if context.hook == "order-sign" else (),
    )


def _detected_issue(context: RuleContext, pairs: dict[frozenset[str], dict[str, str]]) -> ProposedAction:
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


@dataclass(frozen=True)
class _Overlap:
    text: str
    when: str
    reference: str
    # Set when the overlapping drug is itself an unsigned order, which the clinician can remove.
    draft: DraftOrder | None = None


def _partner_class(order: DraftOrder) -> frozenset[str] | None:
    """The drug class this order must not overlap with, or None when rule 20 does not concern it."""
    if order.match is None:
        return None
    if order.match.ingredients & ANTHRACYCLINE_PARTNERS:
        return ANTHRACYCLINES
    if order.match.ingredients & ANTHRACYCLINES:
        return ANTHRACYCLINE_PARTNERS
    return None


def _overlapping(context: RuleContext, order: DraftOrder, partner_class: frozenset[str], start: date, end: date | None) -> Iterator[_Overlap]:
    """Each partner drug drafted alongside this order or recorded over its planned period."""
    for other in context.record.draft_orders:
        if other is not order and other.match is not None and other.match.ingredients & partner_class:
            yield _Overlap(other.text, "ordered together in this order session", other.reference, other)
    for exposure in context.facts.exposures:
        if exposure.ingredients & partner_class and exposure.overlaps(start, end):
            yield _Overlap(exposure.text, _describe(exposure), exposure.source)


def _describe(exposure: Exposure) -> str:
    kind = exposure.source.split("/")[0]
    since = f" since {exposure.start.isoformat()}" if exposure.start else ""
    if exposure.ongoing:
        return f"{kind} {exposure.status}{since}, no end date"
    return f"{kind} {exposure.status}{since}, exposure to {exposure.end.isoformat()}"
