"""HER2 eligibility (clinical reference Part B1, rules 9-11): confirmed HER2 status before HER2-directed therapy."""
from __future__ import annotations

from typing import Iterator

from cds_hooks import terminology
from cds_hooks.facts.her2 import Her2Status, her2_low, her2_status
from cds_hooks.protocol.request import ORDER_HOOKS
from cds_hooks.rules.base import Finding, ProposedAction, ProposedSuggestion, RuleContext, names_of, rule
from cds_hooks.rules.proposals import loinc, service_request

TDXD = "fam_trastuzumab_deruxtecan"
# Rule 9 names trastuzumab (any product), pertuzumab and T-DM1; T-DXd is also labelled for HER2-low (rule 11).
NEEDS_HER2_POSITIVE = terminology.ingredients_in_class("trastuzumab_product") | {"pertuzumab", "ado_trastuzumab_emtansine"}
HER2_DIRECTED = terminology.ingredients_in_class("her2_directed")
# LOINC 85318-4 (A3.1): ERBB2 gene duplication [Presence] in Breast cancer specimen by FISH.
ISH_TEST = loinc("85318-4", "ERBB2 gene duplication [Presence] in Breast cancer specimen by FISH")


@rule(
    id="her2_testing.positivity-not-confirmed",
    numbers=(9,),
    title="HER2-directed therapy ordered without a HER2-positive result",
    hooks=ORDER_HOOKS,
    cards=("her2-not-confirmed",),
    trigger=(
        "A trastuzumab product, pertuzumab or T-DM1 draft while the record holds no HER2-positive result (IHC 3+, "
        "ISH amplified, positive interpretation, or HER2-positive diagnosis 427685000 when no test is on file). IHC 2+ "
        "without ISH is left to her2-equivocal-needs-ish."
    ),
    thresholds="ASCO/CAP 2018 (affirmed 2023): IHC 3+ or ISH group 1 positive; ISH groups 2-4 need IHC review.",
)
def positivity_not_confirmed(context: RuleContext) -> Iterator[Finding]:
    orders = context.focus_orders_of(NEEDS_HER2_POSITIVE)
    if not orders:
        return
    status = context.facts.get(her2_status)
    if status.status == "positive" or _awaits_reflex_ish(status):
        return
    yield Finding(
        card="her2-not-confirmed",
        values={"drugs": names_of(orders), "status": status.status, "basis": status.basis,
                "needs_ihc_review": status.needs_ihc_review, "result_on_file": status.result_on_file},
        evidence=tuple(o.reference for o in orders) + ((status.decided_by,) if status.decided_by else ()),
    )


@rule(
    id="her2_testing.equivocal-needs-ish",
    numbers=(10,),
    title="HER2 IHC 2+ (equivocal) without an ISH result",
    hooks=ORDER_HOOKS | {"patient-view"},
    cards=("her2-equivocal-needs-ish",),
    trigger=(
        "The newest HER2 IHC is 2+ (or recorded as equivocal, LA11885-3) and no ISH result of that day or later completes it (none, or a ratio without "
        "copies per cell), even when an older result was positive; on order hooks only when a HER2-directed drug is "
        "drafted."
    ),
    thresholds="ASCO/CAP 2018: IHC 2+ is equivocal and needs ISH.",
)
def equivocal_needs_ish(context: RuleContext) -> Iterator[Finding]:
    orders = context.focus_orders_of(HER2_DIRECTED)
    if context.hook in ORDER_HOOKS and not orders:
        return
    status = context.facts.get(her2_status)
    if not _awaits_reflex_ish(status) or status.ihc is None:
        return
    # Any positive result decides the status (facts.her2): here an older one, as the newest IHC is equivocal.
    earlier_positive = status.basis if status.status == "positive" else None
    yield Finding(
        card="her2-equivocal-needs-ish",
        values={"ihc": status.ihc.describe(), "ihc_score": status.ihc_score, "ish": status.ish_result.describe() if status.ish_result else None,
                "drugs": names_of(orders), "earlier_positive": earlier_positive},
        suggestions=(_order_ish(context, status.ihc.reference),),
        evidence=tuple(o.reference for o in orders) + (status.ihc.reference,),
    )


@rule(
    id="her2_testing.tdxd-her2-subtype",
    numbers=(11,),
    title="T-DXd ordered with HER2 IHC 0 or no HER2 subtype on file",
    hooks=ORDER_HOOKS,
    cards=("her2-tdxd-subtype-unconfirmed",),
    trigger=(
        "A T-DXd draft while the newest HER2 IHC is 0, or while the record shows neither HER2-positive nor "
        "HER2-low (IHC 1+, 2+, or a HER2-low diagnosis)."
    ),
    thresholds="Labelled populations: HER2-positive, HER2-low (IHC 1+ or 2+/ISH-), HER2-ultralow (HR+).",
)
def tdxd_her2_subtype(context: RuleContext) -> Iterator[Finding]:
    orders = context.focus_orders_of({TDXD})
    if not orders:
        return
    status = context.facts.get(her2_status)
    if status.status == "positive" or status.ihc_score == "1+" or status.ihc_equivocal or context.facts.get(her2_low):
        return
    yield Finding(
        card="her2-tdxd-subtype-unconfirmed",
        values={"drugs": names_of(orders), "ihc_zero": status.ihc_score == "0", "basis": status.basis},
        evidence=tuple(o.reference for o in orders) + ((status.decided_by,) if status.decided_by else ()),
    )


def _awaits_reflex_ish(status: Her2Status) -> bool:
    """The newest IHC is 2+ (or recorded as equivocal) and no ISH of that day or later completes it (amplified, not amplified, or a group 2-4
    that asks for the IHC review instead). An older positive result does not: the newest IHC still needs its ISH."""
    ish = status.ish_result
    completed = ish is not None and (ish.ish is not None or ish.ish_group in (2, 3, 4))
    return status.ihc_equivocal and not completed


def _order_ish(context: RuleContext, ihc_reference: str) -> ProposedSuggestion:
    resource = service_request(context, ISH_TEST, "HER2 ISH (reflex, same specimen as the equivocal IHC)",
                               authoredOn=context.as_of.isoformat(), reasonReference=[{"reference": ihc_reference}])
    return ProposedSuggestion(key="order-ish", recommended=True, actions=(ProposedAction(type="create", resource=resource),))
