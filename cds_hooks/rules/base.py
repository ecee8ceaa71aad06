"""What a rule is and what it returns: a Finding names a card in cards/ and carries the patient's own values."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Callable, Iterable, Literal, Mapping

from cds_hooks import terminology
from cds_hooks.facts import Facts
from cds_hooks.facts.cardiac import (
    HER2_ANTIBODIES, NEXT_DOSE_GRACE, UNWRITTEN_DOSE_INTERVAL, LvefResult, LvefSeries, current_her2_antibody_therapy,
)
from cds_hooks.facts.therapy import Exposure, courses_ahead, dose_day, planned_period
from cds_hooks.protocol.request import ORDER_HOOKS
from cds_hooks.record import DraftOrder, PatientRecord
from cds_hooks.settings import Settings


@dataclass(frozen=True)
class ProposedAction:
    type: Literal["create", "update", "delete"]
    # Values for the action's description template in the card file.
    values: Mapping[str, Any] = field(default_factory=dict)
    resource_id: str | None = None
    resource: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class ProposedSuggestion:
    # Names a suggestion in the card file, which holds its label and action wording.
    key: str
    actions: tuple[ProposedAction, ...]
    values: Mapping[str, Any] = field(default_factory=dict)
    recommended: bool = False


@dataclass(frozen=True)
class Finding:
    card: str
    values: Mapping[str, Any]
    suggestions: tuple[ProposedSuggestion, ...] = ()
    # References ("Type/id") of the resources that made the rule fire, for audit logs and tests.
    evidence: tuple[str, ...] = ()
    # Actions the client may apply without the clinician choosing them (CDS Hooks systemActions); their
    # wording is the card file's `systemActions`.
    system_actions: tuple[ProposedAction, ...] = ()


# What RuleContext.checked_therapy_of counts as ongoing therapy on patient-view, in words for rule thresholds.
ONGOING_THERAPY = (
    "Ongoing on patient-view: an order, statement or dose given (not only intended) covering today, or one whose next "
    f"dose (a written interval after the last, else {UNWRITTEN_DOSE_INTERVAL.days} days) is not more than "
    f"{NEXT_DOSE_GRACE.days} days late; or a signed order or statement (active or on hold) whose start is still ahead."
)


@dataclass(frozen=True)
class RuleContext:
    hook: str
    patient_id: str
    record: PatientRecord
    facts: Facts
    # Draft orders the clinician is acting on: the selections for order-select, every draft for order-sign.
    focus_orders: tuple[DraftOrder, ...]
    settings: Settings
    as_of: date

    def focus_orders_of(self, ingredients: Iterable[str]) -> list[DraftOrder]:
        """The focus orders containing any of these ingredient keys."""
        wanted = frozenset(ingredients)
        return [order for order in self.focus_orders if order.ingredients & wanted]

    def checked_therapy_of(self, ingredients: Iterable[str]) -> CheckedTherapy:
        """For a rule about HER2 antibodies that runs on order hooks and patient-view: on an order hook the focus
        orders containing these ingredient keys; on patient-view the therapy with them the patient is on today
        (patient_view_therapy)."""
        wanted = frozenset(ingredients)
        if self.hook in ORDER_HOOKS:
            return CheckedTherapy(orders=tuple(self.focus_orders_of(wanted)), ongoing=(), as_of=self.as_of)
        ongoing = tuple(e for e in self.facts.get(patient_view_therapy) if e.ingredients & wanted)
        return CheckedTherapy(orders=(), ongoing=ongoing, as_of=self.as_of)


def patient_view_therapy(facts: Facts) -> tuple[Exposure, ...]:
    """The HER2 antibody therapy a patient-view stop card checks (ONGOING_THERAPY): as read for LVEF monitoring
    (facts.cardiac.current_her2_antibody_therapy: given, not only intended, and covering today or with its next dose
    not long late), so cycles given from a plan signed weeks ago count, dosing days included; and a signed course
    whose first dose is still ahead, which a stop card must reach before that dose. The LVEF reading leaves the latter
    out: monitoring on therapy starts with the therapy."""
    current = facts.get(current_her2_antibody_therapy)
    ahead = courses_ahead((e for e in facts.exposures if e.ingredients & HER2_ANTIBODIES), facts.as_of)
    return (*current, *(e for e in ahead if e not in current))


@dataclass(frozen=True)
class CheckedTherapy:
    """What a rule checks: drafted orders (order hooks) or the ongoing therapy (patient-view) of its drug."""

    orders: tuple[DraftOrder, ...]
    ongoing: tuple[Exposure, ...]
    as_of: date

    def __bool__(self) -> bool:
        return bool(self.orders or self.ongoing)

    @property
    def references(self) -> frozenset[str]:
        return frozenset({order.reference for order in self.orders} | {e.source for e in self.ongoing})

    def card_values(self) -> dict[str, Any]:
        """`orders` (the drafts, listed); for cards/includes/therapy-summary.txt, `started` (the names of the ongoing
        drugs the patient has begun), `starting` (those of the signed courses still to start) and `starting_on` (the
        first of their starts), as a card must not say "on" a drug not yet given; and, for
        cards/includes/ongoing-therapy.md, `ongoing` (each record: what, since when, its last dose)."""
        ahead = [e for e in self.ongoing if e.starts_after(self.as_of)]
        return {
            "orders": listed(self.orders),
            "started": names_of(e for e in self.ongoing if e not in ahead),
            "starting": names_of(ahead),
            "starting_on": min((e.start for e in ahead if e.start is not None), default=None),
            "ongoing": ongoing_values(self.ongoing, self.as_of),
        }


def ongoing_values(exposures: Iterable[Exposure], as_of: date) -> list[dict[str, Any]]:
    """Each record that keeps a patient on a drug today, as cards list it: what, which record, since when (or, for a
    course still to start, from when), last dose."""
    return [
        {"name": e.text, "record": e.source, "kind": e.resource_type, "status": e.status, "since": e.start,
         "to_start": e.starts_after(as_of), "last_dose": e.last_dose}
        for e in exposures
    ]


def when_given(order: DraftOrder, as_of: date) -> dict[str, date]:
    """When a drafted order is given, for cards/includes/planned-from.txt: its planned start and its dose day."""
    return {"start": planned_period(order, as_of)[0], "day": dose_day(order, as_of)}


def joined(names: Iterable[str]) -> str:
    """Distinct names, sorted and joined for card text: "Herzuma and Perjeta"."""
    return " and ".join(sorted(set(names)))


def names_of(items: Iterable[Any]) -> str:
    """The distinct `.text` of orders or exposures, joined: "Herzuma and Perjeta"."""
    return joined(item.text for item in items)


def listed(orders: Iterable[Any]) -> str:
    """The orders' `.text` in their own order, comma-separated: "Enhertu, Kadcyla"."""
    return ", ".join(order.text for order in orders)


def ingredient_names(keys: Iterable[str]) -> str:
    """Ingredient keys as their display names, sorted and joined: "docetaxel and paclitaxel"."""
    return joined(terminology.ingredient_display(key) for key in keys)


def unusable_lvef(series: LvefSeries, shown: LvefResult | None) -> dict[str, Any]:
    """The `unusable_lvef` of cards/includes/unusable-lvef.md: the unusable LVEF records that may be newer than the
    result a card shows; every one when it shows none. Every card that shows an LVEF includes it."""
    day = shown.day if shown else None
    return {"newer_than": day, "records": series.unusable_after(day)}


RuleFunction = Callable[[RuleContext], Iterable[Finding]]


@dataclass(frozen=True)
class Rule:
    id: str
    # The rule numbers in Part B of the clinical reference that this rule implements.
    numbers: tuple[int, ...]
    title: str
    hooks: frozenset[str]
    cards: tuple[str, ...]
    # For the reviewable catalogue (docs/rules.md): what makes it fire, and the thresholds it applies.
    trigger: str
    thresholds: str
    evaluate: RuleFunction


REGISTRY: list[Rule] = []


def rule(
    *,
    id: str,
    numbers: Iterable[int],
    title: str,
    hooks: Iterable[str],
    cards: Iterable[str],
    trigger: str,
    thresholds: str = "",
) -> Callable[[RuleFunction], RuleFunction]:
    """Register a rule function; its findings may only name the cards declared here."""

    def register(function: RuleFunction) -> RuleFunction:
        if any(existing.id == id for existing in REGISTRY):
            raise ValueError(f"duplicate rule id {id}")
        REGISTRY.append(Rule(id, tuple(numbers), title, frozenset(hooks), tuple(cards), trigger, thresholds, function))
        return function

    return register
