"""Pregnancy and contraception (clinical reference Part B4, rules 35-37)."""
from __future__ import annotations

from datetime import date, timedelta
from typing import Any, Iterator

from cds_hooks import terminology
from cds_hooks.dates import add_months
from cds_hooks.facts.pregnancy import (
    REPRODUCTIVE_AGE_YEARS,
    HcgResult,
    PregnancyEvidence,
    hcg_results,
    pregnancy_evidence,
    recent_pregnancy_test,
    reproductive_potential,
)
from cds_hooks.facts.therapy import Exposure, last_dose_of, planned_period
from cds_hooks.protocol.request import ORDER_HOOKS
from cds_hooks.record import DraftOrder
from cds_hooks.rules.base import Finding, ProposedAction, ProposedSuggestion, RuleContext, names_of, rule
from cds_hooks.rules.proposals import loinc, remove_drafts, service_request

# The reference's HER2-agent set (Part B intro): trastuzumab and biosimilars (with Hylecta and Phesgo, which
# normalise to their ingredients), T-DM1, T-DXd and pertuzumab.
HER2_AGENTS = (
    terminology.ingredients_in_class("trastuzumab_product")
    | terminology.ingredients_in_class("antibody_drug_conjugate")
    | {"pertuzumab"}
)
PREGNANT_CARD = "pregnancy-her2-agent-in-pregnancy"
STATUS_CARD = "pregnancy-status-before-her2-start"
CONTRACEPTION_CARD = "pregnancy-contraception-counselling"
AFTER_THERAPY_CARD = "pregnancy-contraception-after-therapy"
TDXD = "fam_trastuzumab_deruxtecan"
TDM1 = "ado_trastuzumab_emtansine"
# Rule 37: contraception for 7 months after the last dose (all four labels; T-DXd females), 4 months for males with
# female partners on T-DXd; Kadcyla: no breastfeeding for 7 months after the last dose.
CONTRACEPTION_MONTHS = 7
TDXD_MALE_CONTRACEPTION_MONTHS = 4
BREASTFEEDING_MONTHS = 7

# Pregnancy tests a suggestion may order: LOINC codes verified in A3.3 and the verification addendum.
_PREGNANCY_TESTS = {
    "order-urine-hcg": ("2106-3", "Choriogonadotropin (pregnancy test) [Presence] in Urine", "Pregnancy test (urine hCG)"),
    "order-serum-hcg": ("21198-7", "hCG beta subunit, quantitative, in Serum", "Pregnancy test (serum beta-hCG, quantitative)"),
}


@rule(
    id="pregnancy.her2-agent-in-pregnancy",
    numbers=(35,),
    title="HER2 agent ordered or given during pregnancy",
    hooks=ORDER_HOOKS | {"patient-view"},
    cards=(PREGNANT_CARD,),
    trigger=(
        "A drafted HER2 agent (trastuzumab products incl. Hylecta and Phesgo, pertuzumab, T-DM1, T-DXd) while the patient "
        "is pregnant; on patient-view, pregnancy while a HER2 agent is recorded as ongoing. Pregnant = an active, "
        "unrefuted pregnancy Condition (SNOMED 77386006) without an end date, or a positive hCG that no newer negative "
        "test supersedes."
    ),
    thresholds=(
        "Positive hCG: coded Positive (qualitative) or above the result's own reference range high (quantitative), "
        "no older than pregnancy_test_lookback_days before the earlier of today and the planned start."
    ),
)
def her2_agent_in_pregnancy(context: RuleContext) -> Iterator[Finding]:
    if context.hook in ORDER_HOOKS:
        yield from _drafted_during_pregnancy(context)
    else:
        yield from _given_during_pregnancy(context)


@rule(
    id="pregnancy.status-before-her2-start",
    numbers=(36,),
    title="Pregnancy status not verified before starting a HER2 agent",
    hooks=ORDER_HOOKS,
    cards=(STATUS_CARD,),
    trigger=(
        "A drafted HER2 agent for a patient who may be of reproductive potential (female aged "
        f"{REPRODUCTIVE_AGE_YEARS[0]}-{REPRODUCTIVE_AGE_YEARS[1]}, or gender or birth date unknown), when it is the "
        "first HER2 agent on record and no pregnancy test falls in the window, or when the newest test in the window "
        "cannot be read as positive or negative."
    ),
    thresholds="Window: pregnancy_test_lookback_days before the planned start (local policy; the labels say only 'before starting').",
)
def status_before_her2_start(context: RuleContext) -> Iterator[Finding]:
    potential = context.facts.get(reproductive_potential)
    if potential.status == "no":
        return
    lookback = context.settings.pregnancy_test_lookback_days
    problems: list[dict[str, Any]] = []
    for order, start in _her2_drafts(context):
        if context.facts.get(pregnancy_evidence, start) is not None:
            continue  # the critical pregnancy card already speaks for this order
        test = recent_pregnancy_test(context.facts, start)
        if test is not None and not test.interpretable:
            problems.append({"order": order, "start": start, "test": _test_values(test)})
        elif test is None and _first_dose(context, start):
            problems.append({"order": order, "start": start, "test": None})
    if not problems:
        return
    latest = _latest_test_before(context, max(p["start"] for p in problems))
    yield Finding(
        card=STATUS_CARD,
        values={
            "drugs": names_of(p["order"] for p in problems),
            "orders": [{"name": p["order"].text, "start": p["start"], "window_from": p["start"] - timedelta(days=lookback),
                        "test": p["test"]} for p in problems],
            "lookback_days": lookback,
            "potential": potential.status,
            "patient": potential.description,
            "age_low": REPRODUCTIVE_AGE_YEARS[0],
            "age_high": REPRODUCTIVE_AGE_YEARS[1],
            "latest": _test_values(latest) if latest is not None else None,
        },
        suggestions=tuple(_test_suggestion(context, key) for key in _PREGNANCY_TESTS),
        evidence=tuple(sorted({p["order"].reference for p in problems} | ({latest.reference} if latest else set()))),
    )


@rule(
    id="pregnancy.contraception-counselling",
    numbers=(37,),
    title="Contraception counselling when a HER2 agent starts",
    hooks=frozenset({"order-sign"}),
    cards=(CONTRACEPTION_CARD,),
    trigger=(
        "Signing the first HER2 agent on record (no earlier HER2-agent exposure) for a female patient who may be of "
        "reproductive potential, or T-DXd for a patient who is not recorded as female. Once per start, at signing only, "
        "so it does not repeat on every order."
    ),
    thresholds=f"Reproductive potential: female aged {REPRODUCTIVE_AGE_YEARS[0]}-{REPRODUCTIVE_AGE_YEARS[1]} (local policy); unknown gender or birth date counts.",
)
def contraception_counselling(context: RuleContext) -> Iterator[Finding]:
    potential = context.facts.get(reproductive_potential)
    starts = [
        (order, start) for order, start in _her2_drafts(context)
        if _first_dose(context, start) and context.facts.get(pregnancy_evidence, start) is None
    ]
    started = frozenset().union(*(order.ingredients for order, _ in starts))
    female_advice = potential.status != "no"
    male_advice = TDXD in started and potential.gender != "female"
    if not starts or not (female_advice or male_advice):
        return
    yield Finding(
        card=CONTRACEPTION_CARD,
        values={
            "drugs": names_of(order for order, _ in starts),
            "orders": [{"name": order.text, "start": start} for order, start in starts],
            "patient": potential.description,
            "potential": potential.status,
            "female_advice": female_advice,
            "male_advice": male_advice,
            "tdm1": TDM1 in started,
            "pertuzumab": "pertuzumab" in started,
            "age_low": REPRODUCTIVE_AGE_YEARS[0],
            "age_high": REPRODUCTIVE_AGE_YEARS[1],
        },
        evidence=tuple(order.reference for order, _ in starts),
    )


@rule(
    id="pregnancy.contraception-after-therapy",
    numbers=(37,),
    title="Contraception after the last dose of a HER2 agent",
    hooks=frozenset({"patient-view"}),
    cards=(AFTER_THERAPY_CARD,),
    trigger=(
        "A chart opens for a patient whose HER2-agent therapy has stopped (no exposure running or planned, and the "
        "cycle after the last recorded dose over), who is not pregnant, while a window after the last dose is open: "
        "contraception for a female patient who may be of reproductive potential, contraception for a patient on "
        "T-DXd not recorded as female, no breastfeeding after T-DM1. A last dose the record does not date is counted "
        "from the latest day it shows."
    ),
    thresholds=(
        f"{CONTRACEPTION_MONTHS} calendar months after the last dose of any HER2 agent; T-DXd, male patients with "
        f"female partners: {TDXD_MALE_CONTRACEPTION_MONTHS} months; Kadcyla: no breastfeeding for "
        f"{BREASTFEEDING_MONTHS} months."
    ),
)
def contraception_after_therapy(context: RuleContext) -> Iterator[Finding]:
    facts = context.facts
    her2 = [e for e in facts.exposures if e.ingredients & HER2_AGENTS]
    # Therapy running today, or planned to start later, has not stopped.
    if not her2 or any(e.end is None or e.end >= context.as_of for e in her2) or facts.get(pregnancy_evidence) is not None:
        return
    potential = facts.get(reproductive_potential)
    tdxd = [e for e in her2 if TDXD in e.ingredients]
    tdm1 = [e for e in her2 if TDM1 in e.ingredients]
    windows = []
    if potential.status != "no":
        windows.append(_window("contraception", her2, CONTRACEPTION_MONTHS))
        if tdm1:
            windows.append(_window("breastfeeding", tdm1, BREASTFEEDING_MONTHS))
    if tdxd and potential.gender != "female":
        windows.append(_window("male-contraception", tdxd, TDXD_MALE_CONTRACEPTION_MONTHS))
    open_windows = [w for w in windows if w is not None and w["until"] >= context.as_of]
    if not open_windows:
        return
    yield Finding(
        card=AFTER_THERAPY_CARD,
        values={
            "windows": open_windows,
            "patient": potential.description,
            "potential": potential.status,
            "pertuzumab": any("pertuzumab" in e.ingredients for e in her2),
            "age_low": REPRODUCTIVE_AGE_YEARS[0],
            "age_high": REPRODUCTIVE_AGE_YEARS[1],
        },
        evidence=tuple(sorted({source for w in open_windows for source in w["sources"]})),
    )


def _window(advice: str, exposures: list[Exposure], months: int) -> dict[str, Any] | None:
    """How long an advice holds after the last dose of these exposures; None when none of them is dated."""
    last = last_dose_of(exposures)
    if last is None:
        return None
    return {"advice": advice, "drugs": names_of(exposures), "last_dose": last.day, "at_least": last.at_least,
            "months": months, "until": add_months(last.at_least, months), "sources": last.sources}


def _drafted_during_pregnancy(context: RuleContext) -> Iterator[Finding]:
    drafts: list[tuple[DraftOrder, date]] = []
    evidence: PregnancyEvidence | None = None
    for order, start in _her2_drafts(context):
        found = context.facts.get(pregnancy_evidence, start)
        if found is not None:
            evidence = evidence or found
            drafts.append((order, start))
    if evidence is None:
        return
    yield Finding(
        card=PREGNANT_CARD,
        values={
            **_evidence_values(evidence),
            "drugs": names_of(order for order, _ in drafts),
            "drafts": [{"name": order.text, "start": start} for order, start in drafts],
            "ongoing": [],
        },
        suggestions=remove_drafts(order for order, _ in drafts),
        evidence=tuple(sorted(set(evidence.references) | {order.reference for order, _ in drafts})),
    )


def _given_during_pregnancy(context: RuleContext) -> Iterator[Finding]:
    ongoing = [e for e in context.facts.exposures if e.ingredients & HER2_AGENTS and e.overlaps(context.as_of, context.as_of)]
    if not ongoing:
        return
    evidence = context.facts.get(pregnancy_evidence)
    if evidence is None:
        return
    yield Finding(
        card=PREGNANT_CARD,
        values={
            **_evidence_values(evidence),
            "drugs": names_of(ongoing),
            "drafts": [],
            "ongoing": [{"name": e.text, "since": e.start, "source": e.source.split("/")[0], "status": e.status} for e in ongoing],
        },
        evidence=tuple(sorted(set(evidence.references) | {e.source for e in ongoing})),
    )


def _her2_drafts(context: RuleContext) -> list[tuple[DraftOrder, date]]:
    """The focus orders for a HER2 agent, each with its planned start."""
    return [(order, planned_period(order, context.as_of)[0]) for order in context.focus_orders_of(HER2_AGENTS)]


def _first_dose(context: RuleContext, start: date) -> bool:
    """No HER2 agent recorded before this planned start: the order starts HER2 therapy."""
    return not any(e.ingredients & HER2_AGENTS and (e.start is None or e.start <= start) for e in context.facts.exposures)


def _latest_test_before(context: RuleContext, start: date) -> HcgResult | None:
    """The newest dated pregnancy test up to the planned start (or today, if later), whatever its age."""
    until = max(start, context.as_of)
    return next((r for r in context.facts.get(hcg_results) if r.day is not None and r.day <= until), None)


def _evidence_values(evidence: PregnancyEvidence) -> dict[str, Any]:
    latest = evidence.latest_test
    contradicting = latest if latest is not None and latest.reading == "negative" else None
    return {
        "conditions": [{"text": c.text, "since": c.since} for c in evidence.conditions],
        "positive_test": _test_values(evidence.positive_test) if evidence.positive_test else None,
        "negative_test": _test_values(contradicting) if contradicting else None,
    }


def _test_values(test: HcgResult) -> dict[str, Any]:
    return {"test": test.test, "day": test.day, "value": test.value, "reading": test.reading, "problem": test.problem}


def _test_suggestion(context: RuleContext, key: str) -> ProposedSuggestion:
    code, display, text = _PREGNANCY_TESTS[key]
    return ProposedSuggestion(
        key=key,
        actions=(
            ProposedAction(
                type="create",
                resource=service_request(
                    context, loinc(code, display), text,
                    reasonCode=[{"text": "Verify pregnancy status before starting a HER2-directed agent"}],
                ),
            ),
        ),
    )
