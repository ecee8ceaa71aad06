"""Lung toxicity and the reactions that stop trastuzumab (clinical reference Part B3, rules 31-33): ILD and
pneumonitis with T-DXd or T-DM1; for trastuzumab, interstitial pneumonitis, ARDS, anaphylaxis or angioedema."""
from __future__ import annotations

from typing import Any, Iterator

from cds_hooks import terminology
from cds_hooks.facts.toxicity import active_ild, acute_reactions, worst_grade
from cds_hooks.protocol.request import ORDER_HOOKS
from cds_hooks.rules.base import Finding, RuleContext, listed, rule
from cds_hooks.rules.proposals import remove_drafts

TDXD = "fam_trastuzumab_deruxtecan"
TDM1 = "ado_trastuzumab_emtansine"
# Biosimilars, Herceptin Hylecta and Phesgo included; T-DM1 and T-DXd are not trastuzumab products.
TRASTUZUMAB_PRODUCTS = terminology.ingredients_in_class("trastuzumab_product")
DISCONTINUE_CARD = "pulmonary-trastuzumab-discontinue"
UNDATED_CARD = "pulmonary-trastuzumab-reaction-undated"


# One rule per drug, as their label actions differ: with both drafted, each gets its own card.
_GRADE_READ = (
    "grade read from Condition.stage.summary or Condition.severity only when written as a grade, else 'grade not "
    "recorded'"
)


@rule(
    id="pulmonary.tdxd-ild",
    numbers=(31,),
    title="T-DXd ordered for a patient with ILD or pneumonitis",
    hooks=ORDER_HOOKS,
    cards=("pulmonary-tdxd-ild",),
    trigger=(
        "A drafted fam-trastuzumab deruxtecan while an active, not refuted Condition in the ILD/pneumonitis value set "
        "is recorded."
    ),
    thresholds=f"Any active ILD/pneumonitis: grade 1 interrupt, grade >= 2 permanently discontinue; {_GRADE_READ}.",
)
def tdxd_ild(context: RuleContext) -> Iterator[Finding]:
    yield from _ild_finding(context, TDXD, "pulmonary-tdxd-ild")


@rule(
    id="pulmonary.tdm1-ild",
    numbers=(32,),
    title="T-DM1 ordered for a patient with ILD or pneumonitis",
    hooks=ORDER_HOOKS,
    cards=("pulmonary-tdm1-ild",),
    trigger=(
        "A drafted ado-trastuzumab emtansine while an active, not refuted Condition in the ILD/pneumonitis value set "
        "is recorded."
    ),
    thresholds=f"Any active ILD/pneumonitis: permanently discontinue; {_GRADE_READ}.",
)
def tdm1_ild(context: RuleContext) -> Iterator[Finding]:
    yield from _ild_finding(context, TDM1, "pulmonary-tdm1-ild")


def _ild_finding(context: RuleContext, drug: str, card: str) -> Iterator[Finding]:
    orders = context.focus_orders_of({drug})
    ild = context.facts.get(active_ild) if orders else ()
    if ild:
        yield Finding(
            card=card,
            values={"conditions": [t.card_values() for t in ild], "grade": worst_grade(ild), "orders": listed(orders)},
            suggestions=remove_drafts(orders),
            evidence=tuple(sorted({order.reference for order in orders} | {t.reference for t in ild})),
        )


@rule(
    id="pulmonary.trastuzumab-discontinuation",
    numbers=(33,),
    title="Trastuzumab ordered after interstitial pneumonitis, ARDS, anaphylaxis or angioedema",
    hooks=ORDER_HOOKS,
    cards=(DISCONTINUE_CARD, UNDATED_CARD),
    trigger=(
        "A drafted trastuzumab product (biosimilars, Hylecta, Phesgo) while an active, not refuted ILD/pneumonitis "
        "Condition is recorded, or an anaphylaxis, angioedema or ARDS Condition (any clinical status, not refuted) "
        "dated on or after the first trastuzumab on record. Such a reaction without a date, for a patient given "
        "trastuzumab before, gets a card asking whether it followed trastuzumab."
    ),
    thresholds=(
        "Reaction date: onsetDateTime, else recordedDate; a reaction dated before the first trastuzumab predates it and "
        "does not fire."
    ),
)
def trastuzumab_discontinuation(context: RuleContext) -> Iterator[Finding]:
    orders = context.focus_orders_of(TRASTUZUMAB_PRODUCTS)
    if not orders:
        return
    ild = context.facts.get(active_ild)
    starts = [e.start for e in context.facts.exposures if e.ingredients & TRASTUZUMAB_PRODUCTS and e.start is not None]
    first = min(starts, default=None)
    reactions = context.facts.get(acute_reactions)
    after = [r for r in reactions if first is not None and r.onset is not None and r.onset >= first]
    undated = [r for r in reactions if r.onset is None]
    values: dict[str, Any] = {"orders": listed(orders), "first_trastuzumab": first}
    if ild or after:
        yield Finding(
            card=DISCONTINUE_CARD,
            values={**values, "ild": [t.card_values() for t in ild], "reactions": [t.card_values() for t in after],
                    "undated": [t.card_values() for t in undated]},
            suggestions=remove_drafts(orders),
            evidence=tuple(sorted({order.reference for order in orders} | {t.reference for t in (*ild, *after)})),
        )
    elif undated and first is not None:
        yield Finding(
            card=UNDATED_CARD,
            values={**values, "undated": [t.card_values() for t in undated]},
            evidence=tuple(sorted({order.reference for order in orders} | {t.reference for t in undated})),
        )
