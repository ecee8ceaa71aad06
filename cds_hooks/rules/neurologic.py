"""Nerve toxicity (clinical reference Part B3, rule 34): T-DM1 with grade 3-4 or ungraded peripheral neuropathy, for a
drafted order and, on patient-view, for ongoing T-DM1 therapy."""
from __future__ import annotations

from typing import Iterator

from cds_hooks.facts.toxicity import active_peripheral_neuropathy, worst_grade
from cds_hooks.protocol.request import ORDER_HOOKS
from cds_hooks.rules.base import ONGOING_THERAPY, Finding, RuleContext, rule
from cds_hooks.rules.proposals import remove_drafts

TDM1 = "ado_trastuzumab_emtansine"
HOLD_FROM_GRADE = 3


@rule(
    id="neurologic.tdm1-peripheral-neuropathy",
    numbers=(34,),
    title="T-DM1 with grade 3-4 or ungraded peripheral neuropathy",
    hooks=ORDER_HOOKS | {"patient-view"},
    cards=("neurologic-tdm1-neuropathy",),
    trigger=(
        "A drafted ado-trastuzumab emtansine (T-DM1), or on patient-view ongoing T-DM1 therapy, while an active "
        "peripheral neuropathy Condition is recorded at grade 3 or higher, or without a grade."
    ),
    thresholds=(
        "Grade >= 3: hold until <= grade 2. No grade recorded: ask for it. Grade read from Condition.stage.summary or "
        "Condition.severity only when written as a grade (e.g. 'Grade 3', 'CTCAE grade 3', 'G3'); grades 1-2 do not "
        f"fire. {ONGOING_THERAPY}"
    ),
)
def tdm1_peripheral_neuropathy(context: RuleContext) -> Iterator[Finding]:
    therapy = context.checked_therapy_of({TDM1})
    neuropathy = context.facts.get(active_peripheral_neuropathy) if therapy else ()
    if not neuropathy:
        return
    grade = worst_grade(neuropathy)
    hold = grade is not None and grade >= HOLD_FROM_GRADE
    ungraded = [t for t in neuropathy if t.grade is None]
    if not hold and not ungraded:
        return
    yield Finding(
        card="neurologic-tdm1-neuropathy",
        values={
            **therapy.card_values(),
            "hold": hold,
            "grade": grade,
            "conditions": [t.card_values() for t in neuropathy],
        },
        suggestions=remove_drafts(therapy.orders) if hold else (),
        evidence=tuple(sorted(therapy.references | {t.reference for t in neuropathy})),
    )
