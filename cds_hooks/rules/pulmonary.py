"""Lung toxicity and the reactions that stop trastuzumab (clinical reference Part B3, rules 31-33): ILD and
pneumonitis with T-DXd or T-DM1, past episodes included, and the T-DXd dose after a resolved grade 1 episode; for
trastuzumab, interstitial pneumonitis, ARDS, anaphylaxis or angioedema. The stop cards come for a drafted order and,
on patient-view, for ongoing therapy: later cycles are often given from a plan signed weeks before, with no order
call."""
from __future__ import annotations

from datetime import date
from typing import Any, Callable, Iterable, Iterator, Literal, Sequence

from cds_hooks import terminology
from cds_hooks.facts.dosing import dose_written, last_dose_day, previous_levels, undated_records
from cds_hooks.facts.therapy import DOSE_DAY, dose_day
from cds_hooks.facts.toxicity import Toxicity, active_ards, acute_reactions, ild_episodes, oldest_first, worst_grade
from cds_hooks.protocol.request import ORDER_HOOKS
from cds_hooks.rules.base import ONGOING_THERAPY, CheckedTherapy, Finding, RuleContext, listed, rule
from cds_hooks.rules.proposals import remove_drafts

TDXD = "fam_trastuzumab_deruxtecan"
TDM1 = "ado_trastuzumab_emtansine"
# Biosimilars, Herceptin Hylecta and Phesgo included; T-DM1 and T-DXd are not trastuzumab products.
TRASTUZUMAB_PRODUCTS = terminology.ingredients_in_class("trastuzumab_product")
DISCONTINUE_CARD = "pulmonary-trastuzumab-discontinue"
UNDATED_CARD = "pulmonary-trastuzumab-reaction-undated"
RESUMPTION_CARD = "pulmonary-tdxd-resumption-after-grade-1-ild"
# Rule 31: grade >= 2 stops T-DXd for good, grade 1 interrupts it; after grade 1, the same dose if it resolved
# within 28 days, else one level lower.
DISCONTINUE_FROM_GRADE = 2
SAME_DOSE_WITHIN_DAYS = 28

TdxdAction = Literal["discontinue", "ungraded", "interrupt"]
# In order of precedence, what an episode asks of the next T-DXd dose. An ungraded episode may have been grade 2 or
# worse, so it holds T-DXd until graded, past or not; a past grade 1 episode asks nothing (T-DXd may resume).
_TDXD_ACTIONS: tuple[tuple[TdxdAction, Callable[[Toxicity], bool]], ...] = (
    ("discontinue", lambda t: t.grade is not None and t.grade >= DISCONTINUE_FROM_GRADE),
    ("ungraded", lambda t: t.grade is None),
    ("interrupt", lambda t: t.active),
)


# One rule per drug, as their label actions differ: with both drafted, each gets its own card.
_GRADE_READ = (
    "grade read from Condition.stage.summary or Condition.severity only when written as a grade, else 'grade not "
    "recorded'"
)


@rule(
    id="pulmonary.tdxd-ild",
    numbers=(31,),
    title="T-DXd ordered or ongoing for a patient with ILD or pneumonitis",
    hooks=ORDER_HOOKS | {"patient-view"},
    cards=("pulmonary-tdxd-ild",),
    trigger=(
        "A drafted fam-trastuzumab deruxtecan, or on patient-view ongoing T-DXd therapy, while a not refuted Condition "
        "in the ILD/pneumonitis value set is recorded: active at any grade, or past (inactive, resolved, remission) at "
        "grade >= 2 or without a grade."
    ),
    thresholds=(
        f"Grade >= 2, current or past: permanently discontinue; no grade (possibly >= 2): do not give until graded; "
        f"active grade 1: interrupt; {_GRADE_READ}. {ONGOING_THERAPY}"
    ),
)
def tdxd_ild(context: RuleContext) -> Iterator[Finding]:
    therapy = context.checked_therapy_of({TDXD})
    episodes = context.facts.get(ild_episodes) if therapy else ()
    decision = _tdxd_decision(episodes)
    if decision is not None:
        action, deciding = decision
        yield Finding(
            card="pulmonary-tdxd-ild",
            values={**_ild_values(episodes, therapy), "action": action, "deciding": deciding.card_values()},
            suggestions=remove_drafts(therapy.orders),
            evidence=_evidence(therapy.references, episodes),
        )


# Order hooks only: it judges the dose level of a drafted resumption. On patient-view the episode, while active, gets
# the interrupt card of pulmonary.tdxd-ild.
@rule(
    id="pulmonary.tdxd-resumption-after-grade-1-ild",
    numbers=(31,),
    title="T-DXd resumed after a grade 1 ILD or pneumonitis that took over 28 days to resolve, or whose dates are missing",
    hooks=ORDER_HOOKS,
    cards=(RESUMPTION_CARD,),
    trigger=(
        "A drafted fam-trastuzumab deruxtecan when every not refuted ILD/pneumonitis Condition is grade 1 and "
        "inactive, resolved or in remission, no T-DXd dose is recorded after the latest one resolved (or began, when "
        "its resolution is undated), and it took more than 28 days from onset to resolution or either date is missing."
    ),
    thresholds=(
        "Resolved within 28 days of onset: same dose, no card; later: reduce one level (5.4 -> 4.4 -> 3.2 mg/kg -> "
        "discontinue). Onset from onsetDateTime or onsetPeriod.start, resolution from abatementDateTime or "
        "abatementPeriod.end, partial dates read at their widest. The level to reduce from: the last T-DXd dose "
        f"recorded before {DOSE_DAY}."
    ),
)
def tdxd_resumption_after_grade_1_ild(context: RuleContext) -> Iterator[Finding]:
    orders = context.focus_orders_of({TDXD})
    episodes = context.facts.get(ild_episodes) if orders else ()
    if not episodes or _tdxd_decision(episodes) is not None:
        return
    # An undated episode may be the latest: the dose cannot be judged from an older one.
    latest = max(episodes, key=lambda t: t.onset or date.max)
    days = latest.days_to_resolution
    if days is not None and days <= SAME_DOSE_WITHIN_DAYS:
        return
    # Only the first dose after the episode chooses the level; later doses keep it (rule 4, dosing.tdxd-dose).
    since = latest.resolved_on or latest.onset
    last = context.facts.get(last_dose_day, TDXD, date.max)
    if since is not None and last is not None and last.day > since:
        return
    # The level to reduce from is the last one given before this dose, a dose given since a past planned start too.
    day = min(dose_day(order, context.as_of) for order in orders)
    levels = context.facts.get(previous_levels, TDXD, day)
    yield Finding(
        card=RESUMPTION_CARD,
        values={
            "orders": listed(orders),
            "ordered": [{"order": order.text, "dose": dose_written(order)} for order in orders],
            "episode": latest.card_values(),
            "same_dose_within_days": SAME_DOSE_WITHIN_DAYS,
            "last_level": {"mg_per_kg": levels[-1].mg_per_kg, "day": levels[-1].day} if levels else None,
        },
        evidence=_evidence({order.reference for order in orders}, (latest,)),
    )


@rule(
    id="pulmonary.tdm1-ild",
    numbers=(32,),
    title="T-DM1 ordered or ongoing for a patient with ILD or pneumonitis",
    hooks=ORDER_HOOKS | {"patient-view"},
    cards=("pulmonary-tdm1-ild",),
    trigger=(
        "A drafted ado-trastuzumab emtansine, or on patient-view ongoing T-DM1 therapy, while a not refuted Condition "
        "in the ILD/pneumonitis value set is recorded, whatever its clinical status (a resolved episode still rules "
        "T-DM1 out)."
    ),
    thresholds=f"Any ILD/pneumonitis, current or past: permanently discontinue; {_GRADE_READ}. {ONGOING_THERAPY}",
)
def tdm1_ild(context: RuleContext) -> Iterator[Finding]:
    therapy = context.checked_therapy_of({TDM1})
    episodes = context.facts.get(ild_episodes) if therapy else ()
    if episodes:
        yield Finding(
            card="pulmonary-tdm1-ild",
            values={**_ild_values(episodes, therapy), "all_past": not any(t.active for t in episodes),
                    "deciding": episodes[0].card_values()},
            suggestions=remove_drafts(therapy.orders),
            evidence=_evidence(therapy.references, episodes),
        )


def _tdxd_decision(episodes: Sequence[Toxicity]) -> tuple[TdxdAction, Toxicity] | None:
    """What the episodes ask of the next T-DXd dose, and the episode that asks it (the first so asking, highest grade
    first); None when they ask nothing."""
    return next(((action, t) for action, asks in _TDXD_ACTIONS for t in episodes if asks(t)), None)


def _ild_values(episodes: Sequence[Toxicity], therapy: CheckedTherapy) -> dict[str, Any]:
    return {"conditions": [t.card_values() for t in episodes], "grade": worst_grade(episodes), **therapy.card_values()}


def _evidence(references: Iterable[str], toxicities: Sequence[Toxicity]) -> tuple[str, ...]:
    return tuple(sorted({*references, *(t.reference for t in toxicities)}))


@rule(
    id="pulmonary.trastuzumab-discontinuation",
    numbers=(33,),
    title="Trastuzumab ordered or ongoing after interstitial pneumonitis, ARDS, anaphylaxis or angioedema",
    hooks=ORDER_HOOKS | {"patient-view"},
    cards=(DISCONTINUE_CARD, UNDATED_CARD),
    trigger=(
        "A drafted trastuzumab product (biosimilars, Hylecta, Phesgo), or on patient-view ongoing therapy with one, "
        "while an active, not refuted ILD/pneumonitis or ARDS Condition is recorded (whatever its date), or an "
        "anaphylaxis, angioedema or past ARDS Condition (not refuted) or a past (inactive, resolved, remission) "
        "ILD/pneumonitis dated on or after the first trastuzumab on record. "
        "Such a reaction or past episode without a date, for a patient given trastuzumab before, or not dated after "
        "the first trastuzumab while a trastuzumab record has no start date, gets a card asking whether it followed "
        "trastuzumab."
    ),
    thresholds=(
        "Reaction date: onsetDateTime or onsetPeriod.start, else recordedDate; a reaction or past episode dated before "
        "the first trastuzumab predates it and does not fire, unless a trastuzumab record without a start date may "
        f"have come before it. {ONGOING_THERAPY}"
    ),
)
def trastuzumab_discontinuation(context: RuleContext) -> Iterator[Finding]:
    therapy = context.checked_therapy_of(TRASTUZUMAB_PRODUCTS)
    if not therapy:
        return
    episodes = context.facts.get(ild_episodes)
    # Current lung injury stops trastuzumab whenever it began; so does an acute reaction or past episode on it.
    ild = [t for t in episodes if t.active]
    ards = context.facts.get(active_ards)
    current = {t.reference for t in ards}
    reactions = oldest_first((
        *(r for r in context.facts.get(acute_reactions) if r.reference not in current),
        *(t for t in episodes if not t.active),
    ))
    if not (ild or ards or reactions):
        return
    given = [e for e in context.facts.exposures if e.ingredients & TRASTUZUMAB_PRODUCTS]
    first = min((e.start for e in given if e.start is not None), default=None)
    # Trastuzumab on record with no start date may have come before any reaction.
    undated_trastuzumab = sorted({e.source for e in given if e.start is None} | {
        m.reference for ingredient in TRASTUZUMAB_PRODUCTS for m in context.facts.get(undated_records, ingredient)
    })
    after = [r for r in reactions if first is not None and r.onset is not None and r.onset >= first]
    # What cannot be placed before or after trastuzumab: an undated reaction, or any not after the first dated
    # trastuzumab while undated trastuzumab is on record.
    unplaced = [r for r in reactions if r not in after and (r.onset is None or undated_trastuzumab)]
    values: dict[str, Any] = {**therapy.card_values(), "first_trastuzumab": first, "undated_trastuzumab": undated_trastuzumab}
    if ild or ards or after:
        yield Finding(
            card=DISCONTINUE_CARD,
            values={**values, "ild": [t.card_values() for t in ild], "ards": [t.card_values() for t in ards],
                    "reactions": [t.card_values() for t in after], "unplaced": [t.card_values() for t in unplaced]},
            suggestions=remove_drafts(therapy.orders),
            evidence=_evidence(therapy.references, (*ild, *ards, *after)),
        )
    elif unplaced and (first is not None or undated_trastuzumab):
        yield Finding(
            card=UNDATED_CARD,
            values={**values, "unplaced": [t.card_values() for t in unplaced]},
            evidence=_evidence({*therapy.references, *undated_trastuzumab}, unplaced),
        )
