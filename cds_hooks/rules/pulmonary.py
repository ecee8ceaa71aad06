"""Lung toxicity: ILD and pneumonitis (clinical reference Part B3, rules 31-33).

Anaphylaxis, angioedema and ARDS (rule 33) have no value set in the reference, so only ILD/pneumonitis is read.
"""
from __future__ import annotations

from typing import Any, Iterator, Mapping

from cds_hooks import terminology
from cds_hooks.facts.toxicity import Toxicity, active_ild, worst_grade
from cds_hooks.protocol.request import ORDER_HOOKS
from cds_hooks.record import DraftOrder
from cds_hooks.rules.base import Finding, ProposedAction, ProposedSuggestion, RuleContext, rule

# Which card each drug's order gets; checked in this order, so an order is judged by its most specific drug.
# Trastuzumab products include biosimilars, Herceptin Hylecta and Phesgo; T-DM1 and T-DXd are not among them.
_CARDS: Mapping[str, frozenset[str]] = {
    "pulmonary-tdxd-ild": frozenset({"fam_trastuzumab_deruxtecan"}),
    "pulmonary-tdm1-ild": frozenset({"ado_trastuzumab_emtansine"}),
    "pulmonary-trastuzumab-ild": terminology.ingredients_in_class("trastuzumab_product"),
}


@rule(
    id="pulmonary.ild-with-her2-therapy",
    numbers=(31, 32, 33),
    title="T-DXd, T-DM1 or trastuzumab ordered for a patient with ILD or pneumonitis",
    hooks=ORDER_HOOKS,
    cards=tuple(_CARDS),
    trigger=(
        "A drafted fam-trastuzumab deruxtecan, ado-trastuzumab emtansine or trastuzumab product (biosimilars, Hylecta, "
        "Phesgo) while an active, not refuted Condition in the ILD/pneumonitis value set is recorded."
    ),
    thresholds=(
        "Any active ILD/pneumonitis. T-DXd: grade 1 interrupt, grade >= 2 permanently discontinue; grade read from "
        "Condition.stage.summary or Condition.severity only when written as a grade, else 'grade not recorded'."
    ),
)
def ild_with_her2_therapy(context: RuleContext) -> Iterator[Finding]:
    ild = context.facts.get(active_ild)
    if not ild:
        return
    by_card: dict[str, list[DraftOrder]] = {}
    for order in context.focus_orders:
        card = _card_for(order)
        if card is not None:
            by_card.setdefault(card, []).append(order)
    for card, orders in by_card.items():
        yield Finding(
            card=card,
            values={"conditions": [_condition(t) for t in ild], "grade": worst_grade(ild),
                    "orders": ", ".join(order.text for order in orders)},
            suggestions=tuple(
                ProposedSuggestion(key="remove-draft", values={"order": order.text},
                                   actions=(ProposedAction(type="delete", resource_id=order.reference),))
                for order in orders
            ),
            evidence=tuple(sorted({order.reference for order in orders} | {t.reference for t in ild})),
        )


def _card_for(order: DraftOrder) -> str | None:
    if order.match is None:
        return None
    return next((card for card, drugs in _CARDS.items() if order.match.ingredients & drugs), None)


def _condition(toxicity: Toxicity) -> dict[str, Any]:
    return {"text": toxicity.text, "grade": toxicity.grade, "severity": toxicity.severity_text, "onset": toxicity.onset}
