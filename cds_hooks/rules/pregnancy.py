"""Pregnancy and contraception (clinical reference Part B4, rules 35-37)."""
from __future__ import annotations

from datetime import date, timedelta
from typing import Any, Iterator

from cds_hooks.dates import add_months
from cds_hooks.facts.pregnancy import (
    EMBRYO_FETAL_WARNING_AGENTS,
    POSITIVE_TEST_MONTHS,
    REPRODUCTIVE_AGE_YEARS,
    THERAPY_BREAK,
    HcgResult,
    Her2Start,
    PregnancyEvidence,
    hcg_results,
    her2_start,
    lapsed_positive_test,
    pregnancy_evidence,
    recent_pregnancy_test,
    reproductive_potential,
)
from cds_hooks.facts.therapy import DOSE_DAY, Exposure, dose_day, last_dose_of
from cds_hooks.protocol.request import ORDER_HOOKS
from cds_hooks.record import DraftOrder
from cds_hooks.rules.base import (
    ONGOING_THERAPY, Finding, ProposedAction, ProposedSuggestion, RuleContext, ingredient_names, names_of,
    ongoing_values, rule, when_given,
)
from cds_hooks.rules.proposals import loinc, remove_drafts, service_request

# What "starts" a HER2 agent for rules 36-37, in words for the catalogue.
_START = (
    "the first dose of the ordered agent on record, or any HER2 agent after "
    f"{THERAPY_BREAK.days} days or more with none running"
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
        "is pregnant; on patient-view, pregnancy while a HER2 agent is ongoing (see \"Ongoing\" below) or a record of "
        "one, even one only intended, covers today. Pregnant = an active, unrefuted pregnancy Condition (SNOMED "
        "77386006) without an end date, or a positive hCG that nothing later answers: no newer readable test, and no "
        "pregnancy recorded as ended (or refuted) on or after its day."
    ),
    thresholds=(
        "Positive hCG: coded Positive (qualitative) or above the result's own reference range high (quantitative; "
        "a high in a different one of mIU/mL, IU/L, IU/mL and mIU/L is converted; in any other unit the test is not "
        "read), "
        f"counted for {POSITIVE_TEST_MONTHS} calendar months to today, whatever the dose day (longer than a pregnancy "
        f"can last after a positive test; local policy); tests up to {DOSE_DAY} are read. {ONGOING_THERAPY}"
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
        f"{REPRODUCTIVE_AGE_YEARS[0]}-{REPRODUCTIVE_AGE_YEARS[1]}, or gender or birth date unknown), when it starts "
        f"({_START}) and no pregnancy test falls in the window; on any order, when the newest test in the window cannot "
        "be read as positive or negative, or when the newest readable test is a positive one too old to show a current "
        "pregnancy and no outcome is recorded."
    ),
    thresholds=(
        f"Window: pregnancy_test_lookback_days before {DOSE_DAY}, local policy (the labels say only 'before "
        f"starting'). Break: {THERAPY_BREAK.days} days without HER2 therapy before that day (local policy). Old "
        f"positive test: more than {POSITIVE_TEST_MONTHS} calendar months."
    ),
)
def status_before_her2_start(context: RuleContext) -> Iterator[Finding]:
    potential = context.facts.get(reproductive_potential)
    if potential.status == "no":
        return
    lookback = context.settings.pregnancy_test_lookback_days
    facts = context.facts
    problems: list[dict[str, Any]] = []
    lapsed: HcgResult | None = None
    for order, day in _her2_drafts(context):
        if facts.get(pregnancy_evidence, day) is not None:
            continue  # the critical pregnancy card already speaks for this order
        test = recent_pregnancy_test(facts, day)
        starting = facts.get(her2_start, order.ingredients, day)
        found = {"order": order, "day": day, "starting": starting}
        if test is not None and not test.interpretable:
            problems.append({**found, "reason": "unreadable", "test": test})
        elif (old := facts.get(lapsed_positive_test, day)) is not None:
            lapsed = lapsed or old
            problems.append({**found, "reason": "positive-without-outcome", "test": old})
        elif test is None and starting is not None:
            problems.append({**found, "reason": "no-test", "test": None})
    if not problems:
        return
    latest = _latest_test_before(context, max(p["day"] for p in problems))
    tests = {p["test"].reference for p in problems if p["test"]} | ({latest.reference} if latest else set())
    yield Finding(
        card=STATUS_CARD,
        values={
            "drugs": names_of(p["order"] for p in problems),
            "orders": [{"name": p["order"].text, "when": when_given(p["order"], context.as_of),
                        "window_from": p["day"] - timedelta(days=lookback), "reason": p["reason"],
                        "test": _test_values(p["test"]) if p["test"] else None,
                        "start_reason": _start_values(p["starting"])} for p in problems],
            "lookback_days": lookback,
            "lapsed": _test_values(lapsed) if lapsed else None,
            "positive_test_months": POSITIVE_TEST_MONTHS,
            "break_days": THERAPY_BREAK.days,
            "potential": potential.status,
            "patient": potential.description,
            "age_low": REPRODUCTIVE_AGE_YEARS[0],
            "age_high": REPRODUCTIVE_AGE_YEARS[1],
            "latest": _test_values(latest) if latest is not None else None,
        },
        suggestions=tuple(_test_suggestion(context, key) for key in _PREGNANCY_TESTS),
        evidence=tuple(sorted({p["order"].reference for p in problems} | tests)),
    )


@rule(
    id="pregnancy.contraception-counselling",
    numbers=(37,),
    title="Contraception counselling when a HER2 agent starts",
    hooks=frozenset({"order-sign"}),
    cards=(CONTRACEPTION_CARD,),
    trigger=(
        f"Signing a HER2 agent that starts ({_START}) for a female patient who may be of reproductive potential, or "
        "T-DXd for a patient who is not recorded as female. Once per start, at signing only, so it does not repeat on "
        "every order or cycle."
    ),
    thresholds=f"Reproductive potential: female aged {REPRODUCTIVE_AGE_YEARS[0]}-{REPRODUCTIVE_AGE_YEARS[1]} (local policy); unknown gender or birth date counts.",
)
def contraception_counselling(context: RuleContext) -> Iterator[Finding]:
    facts = context.facts
    potential = facts.get(reproductive_potential)
    starts = [
        (order, day, starting) for order, day in _her2_drafts(context)
        if (starting := facts.get(her2_start, order.ingredients, day)) is not None
        and facts.get(pregnancy_evidence, day) is None
    ]
    started = frozenset().union(*(order.ingredients for order, _, _ in starts))
    female_advice = potential.status != "no"
    male_advice = TDXD in started and potential.gender != "female"
    if not starts or not (female_advice or male_advice):
        return
    yield Finding(
        card=CONTRACEPTION_CARD,
        values={
            "drugs": names_of(order for order, _, _ in starts),
            "orders": [{"name": order.text, "when": when_given(order, context.as_of), "start_reason": _start_values(starting)}
                       for order, day, starting in starts],
            "break_days": THERAPY_BREAK.days,
            "patient": potential.description,
            "potential": potential.status,
            "female_advice": female_advice,
            "male_advice": male_advice,
            "tdm1": TDM1 in started,
            "pertuzumab": "pertuzumab" in started,
            "age_low": REPRODUCTIVE_AGE_YEARS[0],
            "age_high": REPRODUCTIVE_AGE_YEARS[1],
        },
        evidence=tuple(order.reference for order, _, _ in starts),
    )


@rule(
    id="pregnancy.contraception-after-therapy",
    numbers=(37,),
    title="Contraception after the last dose of a HER2 agent",
    hooks=frozenset({"patient-view"}),
    cards=(AFTER_THERAPY_CARD,),
    trigger=(
        "A chart opens for a patient who is not pregnant and whose HER2-agent therapy has stopped (none ongoing, see "
        "\"Ongoing\" below; no record of one covering today, even one only intended; none planned to start later), "
        "while a window after the last dose is open: contraception for a female patient who may be of reproductive "
        "potential, contraception for a patient on T-DXd not recorded as female, no breastfeeding after T-DM1. A last "
        "dose the record does not date is counted from the latest day it shows."
    ),
    thresholds=(
        f"{CONTRACEPTION_MONTHS} calendar months after the last dose of any HER2 agent; T-DXd, male patients with "
        f"female partners: {TDXD_MALE_CONTRACEPTION_MONTHS} months; Kadcyla: no breastfeeding for "
        f"{BREASTFEEDING_MONTHS} months. {ONGOING_THERAPY}"
    ),
)
def contraception_after_therapy(context: RuleContext) -> Iterator[Finding]:
    facts = context.facts
    her2 = [e for e in facts.exposures if e.ingredients & EMBRYO_FETAL_WARNING_AGENTS]
    # Therapy ongoing today, or planned to start later, has not stopped.
    if (
        not her2
        or any(e.start is not None and e.start > context.as_of for e in her2)
        or _her2_agents_ongoing(context)
        or facts.get(pregnancy_evidence) is not None
    ):
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
    for order, day in _her2_drafts(context):
        found = context.facts.get(pregnancy_evidence, day)
        if found is not None:
            evidence = evidence or found
            drafts.append((order, day))
    if evidence is None:
        return
    yield Finding(
        card=PREGNANT_CARD,
        values={
            **_evidence_values(evidence),
            "drugs": names_of(order for order, _ in drafts),
            "drafts": [{"name": order.text, "when": when_given(order, context.as_of)} for order, _ in drafts],
            "ongoing": [],
        },
        suggestions=remove_drafts(order for order, _ in drafts),
        evidence=tuple(sorted(set(evidence.references) | {order.reference for order, _ in drafts})),
    )


def _given_during_pregnancy(context: RuleContext) -> Iterator[Finding]:
    ongoing = _her2_agents_ongoing(context)
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
            "ongoing": ongoing_values(ongoing, context.as_of),
        },
        evidence=tuple(sorted(set(evidence.references) | {e.source for e in ongoing})),
    )


def _her2_agents_ongoing(context: RuleContext) -> list[Exposure]:
    """The HER2-agent records that keep the patient on therapy today (patient-view, rules 35 and 37): ongoing as the
    stop cards read it (RuleContext.checked_therapy_of), so the dosing day of a 3-weekly cycle and a signed course
    still to start count; and any record covering today, even one only intended, which that reading leaves out: in
    pregnancy a course about to start matters as much, and advice for after therapy does not apply yet."""
    stop_card_reading = {e.source for e in context.checked_therapy_of(EMBRYO_FETAL_WARNING_AGENTS).ongoing}
    return [
        e for e in context.facts.exposures
        if e.ingredients & EMBRYO_FETAL_WARNING_AGENTS
        and (e.source in stop_card_reading or e.overlaps(context.as_of, context.as_of))
    ]


def _her2_drafts(context: RuleContext) -> list[tuple[DraftOrder, date]]:
    """The focus orders for a HER2 agent, each with its dose day: the labels' "before starting" is before the first
    dose, which is today at the earliest when the planned start is past (a test, a pregnancy or a dose since then
    counts)."""
    return [(order, dose_day(order, context.as_of)) for order in context.focus_orders_of(EMBRYO_FETAL_WARNING_AGENTS)]


def _latest_test_before(context: RuleContext, day: date) -> HcgResult | None:
    """The newest dated pregnancy test up to the dose day, whatever its age."""
    return next((r for r in context.facts.get(hcg_results) if r.day is not None and r.day <= day), None)


def _evidence_values(evidence: PregnancyEvidence) -> dict[str, Any]:
    latest = evidence.latest_test
    contradicting = latest if latest is not None and latest.reading == "negative" else None
    return {
        "conditions": [{"text": c.text, "since": c.since} for c in evidence.conditions],
        "positive_test": _test_values(evidence.positive_test) if evidence.positive_test else None,
        "negative_test": _test_values(contradicting) if contradicting else None,
        "positive_test_months": POSITIVE_TEST_MONTHS,
    }


def _start_values(start: Her2Start | None) -> dict[str, Any] | None:
    """Why an order starts HER2 therapy, for card text; None when it continues a course."""
    if start is None:
        return None
    previous = start.previous
    return {
        "new_agents": ingredient_names(start.new_agents) or None,
        "first_her2": previous is None,
        "after_break": start.after_break,
        "last_dose": previous.day if previous else None,
        "last_dose_at_least": previous.at_least if previous else None,
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
