"""Liver (clinical reference Part B3, rules 22-27): labs before each T-DM1 dose, untested starting values,
the MBC and EBC hepatotoxicity tables and the Hy's-law pattern."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Iterator

from cds_hooks.facts.cardiac import LvefResult, latest_lvef, lvef_series
from cds_hooks.facts.disease import setting
from cds_hooks.facts.labs import LIVER_TESTS, CellCount, LiverTest, PreDoseLabs, hys_law_pattern, labs_before
from cds_hooks.facts.therapy import DOSE_DAY, dose_day, started_before
from cds_hooks.protocol.request import ORDER_HOOKS
from cds_hooks.record import DraftOrder
from cds_hooks.rules.base import Finding, RuleContext, rule, unusable_lvef
from cds_hooks.rules.proposals import lab_orders, remove_drafts

TDM1 = "ado_trastuzumab_emtansine"

# Rule 23: starting values outside those studied (MIMS TH Kadcyla).
_NOT_STUDIED_ULN = {"ast": 2.5, "alt": 2.5, "bilirubin_total": 1.5}
_NOT_STUDIED_LVEF = 50.0
_NOT_STUDIED_PLATELETS = 100_000.0

# How strongly an action interrupts treatment; the strictest action found decides the card.
SAME_DOSE, HOLD_SAME_DOSE, HOLD_REDUCE, DISCONTINUE = 1, 2, 3, 4


@dataclass(frozen=True)
class _Band:
    """One row of a dose-modification table: results > low and <= high (None = no upper end) times ULN.

    `action` and `note` are keys whose wording is in the card files.
    """

    low: float
    high: float | None
    grade: str
    action: str
    strictness: int
    # Grade 4 (MBC table definitions) is imminent harm in any setting: the card is critical.
    grade_4: bool = False
    note: str | None = None

    def contains(self, multiple: float) -> bool:
        return multiple > self.low and (self.high is None or multiple <= self.high)


_MBC_TRANSAMINASE = (
    _Band(2.5, 5, "grade 2 (> 2.5–5× ULN)", "same-dose", SAME_DOSE),
    _Band(5, 20, "grade 3 (> 5–20× ULN)", "hold-to-grade-2-then-reduce", HOLD_REDUCE),
    _Band(20, None, "grade 4 (> 20× ULN)", "discontinue", DISCONTINUE, grade_4=True),
)
_MBC_BILIRUBIN = (
    _Band(1.5, 3, "grade 2 (> 1.5–3× ULN)", "hold-to-grade-1-then-same-dose", HOLD_SAME_DOSE, note="bilirubin-grade-2-sources-differ"),
    _Band(3, 10, "grade 3 (> 3–10× ULN)", "hold-then-reduce", HOLD_REDUCE),
    _Band(10, None, "grade 4 (> 10× ULN)", "discontinue", DISCONTINUE, grade_4=True),
)
# Rule 27 gives the EBC table only as a partial excerpt; ranges it does not cover fall back to the MBC row.
_EBC = {
    "ast": (
        _Band(3, 5, "> 3–5× ULN", "hold-to-grade-1-then-same-dose", HOLD_SAME_DOSE, note="ebc-verify"),
        _Band(5, 20, "grade 3 (> 5–20× ULN)", "hold-to-grade-2-then-reduce", HOLD_REDUCE, note="beyond-ebc-excerpt"),
        _Band(20, None, "grade 4 (> 20× ULN)", "discontinue", DISCONTINUE, grade_4=True, note="beyond-ebc-excerpt"),
    ),
    "alt": (
        _Band(3, 20, "> 3–20× ULN", "hold-then-reduce", HOLD_REDUCE, note="ebc-verify"),
        _Band(20, None, "grade 4 (> 20× ULN)", "discontinue", DISCONTINUE, grade_4=True, note="beyond-ebc-excerpt"),
    ),
    "bilirubin_total": (
        _Band(1, 2, "> 1–2× ULN", "hold-then-reduce", HOLD_REDUCE, note="ebc-verify"),
        _Band(2, 10, "> 2× ULN", "discontinue", DISCONTINUE, note="ebc-verify"),
        _Band(10, None, "> 2× ULN; grade 4 (> 10× ULN)", "discontinue", DISCONTINUE, grade_4=True, note="ebc-verify"),
    ),
}
_MBC = {"ast": _MBC_TRANSAMINASE, "alt": _MBC_TRANSAMINASE, "bilirubin_total": _MBC_BILIRUBIN}


@rule(
    id="hepatic.tdm1-labs-before-dose",
    numbers=(22,),
    title="Liver tests and platelet count needed before a T-DM1 dose",
    hooks=ORDER_HOOKS,
    cards=("hepatic-tdm1-labs-needed",),
    trigger=(
        "A drafted ado-trastuzumab emtansine (T-DM1) with no AST, ALT, total bilirubin or platelet count dated within "
        f"the lab lookback window before {DOSE_DAY}, or with a liver test that has no reference range (ULN) in "
        "its own unit (however the unit is spelled) or a platelet count in a unit that cannot be converted."
    ),
    thresholds="settings.lab_lookback_days (local policy; default 7) before the dose day, inclusive.",
)
def tdm1_labs_before_dose(context: RuleContext) -> Iterator[Finding]:
    doses: list[dict[str, Any]] = []
    # Ordered and without duplicates across several T-DM1 drafts.
    to_order: dict[str, None] = {}
    for order in context.focus_orders_of({TDM1}):
        day = dose_day(order, context.as_of)
        labs = context.facts.get(labs_before, day)
        missing = list(labs.missing_liver_tests) + (["platelets"] if labs.platelets is None else [])
        unconvertible = labs.platelets if labs.platelets is not None and labs.platelets.per_mm3 is None else None
        if not (missing or labs.liver_tests_without_uln or unconvertible):
            continue
        to_order.update(dict.fromkeys(missing))
        doses.append({
            "order": order.text,
            "dose_day": day,
            "window_start": labs.window_start,
            "missing": [_lab_name(test) for test in missing],
            "without_uln": [_liver_values(result) for result in labs.liver_tests_without_uln],
            "unconvertible": _platelet_values(unconvertible) if unconvertible else None,
            "found": _found(labs),
        })
    if not doses:
        return
    yield Finding(
        card="hepatic-tdm1-labs-needed",
        values={"doses": doses, "lookback_days": context.settings.lab_lookback_days},
        suggestions=(lab_orders(context, "order-labs", {test: _lab_name(test) for test in to_order}),) if to_order else (),
        evidence=tuple(order.reference for order in context.focus_orders_of({TDM1})),
    )


@rule(
    id="hepatic.tdm1-start-not-studied",
    numbers=(23,),
    title="T-DM1 started with liver tests, LVEF or platelets outside the studied range",
    hooks=ORDER_HOOKS,
    cards=("hepatic-tdm1-not-studied",),
    trigger=(
        f"A drafted T-DM1 with no T-DM1 recorded before {DOSE_DAY}, and a pre-dose AST or ALT > 2.5× ULN, total "
        "bilirubin > 1.5× ULN, platelets < 100,000/mm³, or the latest LVEF < 50%. A start with grade 4 liver tests or "
        "the Hy's-law pattern is left to the critical card of hepatic.tdm1-liver-toxicity, which shows these values too."
    ),
    thresholds=(
        "Labs: latest within settings.lab_lookback_days before the dose day, ULN from the result's own reference "
        "range. LVEF: latest usable result (a percentage, read as the cardiac rules read it) within "
        "settings.baseline_lvef_lookback_days before the dose day."
    ),
)
def tdm1_start_not_studied(context: RuleContext) -> Iterator[Finding]:
    starts: list[dict[str, Any]] = []
    evidence: set[str] = set()
    for order in context.focus_orders_of({TDM1}):
        day = dose_day(order, context.as_of)
        if started_before(context.facts.exposures, TDM1, day):
            continue
        labs = context.facts.get(labs_before, day)
        outside = _outside_studied_range(context, labs, day)
        # "Weigh the risk" beside "do not start" would contradict it: the critical card shows these values instead.
        if outside and not _start_at_discontinuation_level(labs, context.facts.get(setting)):
            evidence.update({order.reference, *(item["reference"] for item in outside)})
            starts.append({"order": order.text, "dose_day": day, "outside": outside})
    if starts:
        yield Finding(card="hepatic-tdm1-not-studied", values={"starts": starts}, evidence=tuple(sorted(evidence)))


@rule(
    id="hepatic.tdm1-liver-toxicity",
    numbers=(24, 25, 26, 27),
    title="T-DM1 dose with raised transaminases or bilirubin, or the Hy's-law pattern",
    hooks=ORDER_HOOKS,
    cards=("hepatic-tdm1-liver-toxicity", "hepatic-tdm1-liver-discontinue"),
    trigger=(
        "A drafted T-DM1 for a patient already given T-DM1, with a pre-dose AST, ALT or total bilirubin in a "
        "dose-modification band of the metastatic (MBC) or early breast cancer (EBC) table; or any drafted T-DM1, the "
        "first included, with a grade 4 AST, ALT or total bilirubin, or AST or ALT > 3× ULN with total bilirubin > 2× ULN."
    ),
    thresholds=(
        "MBC: AST/ALT > 2.5–5× same dose, > 5–20× hold then reduce, > 20× discontinue; bilirubin > 1.5–3× hold then same "
        "dose, > 3–10× hold then reduce, > 10× discontinue. EBC (verify): AST > 3–5× hold then same dose, ALT > 3–20× "
        "hold then reduce, bilirubin > 1–2× hold then reduce, > 2× discontinue. Setting unknown: the stricter table. "
        "Critical for grade 4 or Hy's law. Before a first dose only grade 4 and Hy's law apply (critical: do not start); "
        "lower values there are hepatic.tdm1-start-not-studied's. Latest result of each test within "
        f"settings.lab_lookback_days before {DOSE_DAY}."
    ),
)
def tdm1_liver_toxicity(context: RuleContext) -> Iterator[Finding]:
    tdm1_orders = context.focus_orders_of({TDM1})
    if not tdm1_orders:
        return
    disease_setting = context.facts.get(setting)
    doses: list[dict[str, Any]] = []
    orders: list[DraftOrder] = []
    evidence: set[str] = set()
    for order in tdm1_orders:
        day = dose_day(order, context.as_of)
        first_dose = not started_before(context.facts.exposures, TDM1, day)
        labs = context.facts.get(labs_before, day)
        graded, hys_law = _liver_toxicity(labs, disease_setting, first_dose)
        if graded or hys_law:
            orders.append(order)
            shown = {item["reference"] for item in graded} | {result.reference for result in hys_law or ()}
            # Rule 23 leaves a first dose at this level to this card, so its other values outside those studied show here.
            not_studied = [
                item for item in _outside_studied_range(context, labs, day) if item["reference"] not in shown
            ] if first_dose else []
            evidence.update({order.reference, *shown, *(item["reference"] for item in not_studied)})
            doses.append({
                "order": order.text,
                "dose_day": day,
                "first_dose": first_dose,
                "results": graded,
                "hys_law": {"transaminase": _liver_values(hys_law[0]), "bilirubin": _liver_values(hys_law[1])} if hys_law else None,
                "not_studied": not_studied,
            })
    if not doses:
        return
    results = [item for dose in doses for item in dose["results"]]
    hys_law_found = next((dose["hys_law"] for dose in doses if dose["hys_law"]), None)
    critical = hys_law_found is not None or any(item["grade_4"] for item in results)
    strictest = DISCONTINUE if critical else max(item["strictness"] for item in results)
    first_doses_only = all(dose["first_dose"] for dose in doses)
    why = "do not start" if first_doses_only else "discontinue" if strictest == DISCONTINUE else "hold"
    yield Finding(
        card="hepatic-tdm1-liver-discontinue" if critical else "hepatic-tdm1-liver-toxicity",
        values={
            "doses": doses,
            "setting": disease_setting,
            "worst": max(results, key=lambda item: (item["strictness"], item["grade_4"], item["multiple"])) if results else None,
            "hys_law": hys_law_found,
            "first_doses_only": first_doses_only,
        },
        suggestions=remove_drafts(orders, why=why) if strictest > SAME_DOSE else (),
        evidence=tuple(sorted(evidence)),
    )


def _liver_toxicity(
    labs: PreDoseLabs, disease_setting: str, first_dose: bool
) -> tuple[list[dict[str, Any]], tuple[LiverTest, LiverTest] | None]:
    """The graded results and the Hy's-law pattern the liver-toxicity cards show for one dose.

    The tables grade values during treatment. Before a first dose only their permanent-discontinuation level (grade 4,
    Hy's law) applies: starting there is the same imminent harm. Lower values there are rule 23's untested start.
    """
    graded = [item for result in labs.liver.values() if result is not None and (item := _graded(result, disease_setting))]
    if first_dose:
        graded = [item for item in graded if item["grade_4"]]
    return graded, hys_law_pattern(labs)


def _start_at_discontinuation_level(labs: PreDoseLabs, disease_setting: str) -> bool:
    """Whether the liver-toxicity rule takes this first dose (grade 4 or Hy's law) with its critical card."""
    graded, hys_law = _liver_toxicity(labs, disease_setting, first_dose=True)
    return bool(graded) or hys_law is not None


def _outside_studied_range(context: RuleContext, labs: PreDoseLabs, day: date) -> list[dict[str, Any]]:
    outside = []
    for test, limit in _NOT_STUDIED_ULN.items():
        result = labs.liver[test]
        if result is not None and result.times_uln is not None and result.times_uln > limit:
            outside.append({**_liver_values(result), "limit": f"> {limit:g}× ULN"})
    platelets = labs.platelets
    if platelets is not None and platelets.per_mm3 is not None and platelets.per_mm3 < _NOT_STUDIED_PLATELETS:
        outside.append({**_platelet_values(platelets), "limit": "< 100,000/mm³"})
    # Read as every LVEF is (facts.cardiac): a value that is not plainly a percentage is not compared with 50%.
    lvef = latest_lvef(context.facts, day, context.settings.baseline_lvef_lookback_days)
    if lvef is not None and lvef.value < _NOT_STUDIED_LVEF:
        newer = unusable_lvef(context.facts.get(lvef_series), lvef)
        outside.append({**_lvef_values(lvef), "limit": "< 50%", "unusable_lvef": newer})
    return outside


def _graded(result: LiverTest, disease_setting: str) -> dict[str, Any] | None:
    """The band of the applicable table for this result; with the setting unknown, the stricter of MBC and EBC."""
    multiple = result.times_uln
    if multiple is None:
        return None
    tables = {"metastatic": [_MBC], "early": [_EBC]}.get(disease_setting, [_MBC, _EBC])
    bands = [band for table in tables for band in table[result.test] if band.contains(multiple)]
    if not bands:
        return None
    band = max(bands, key=lambda b: (b.strictness, b.grade_4))
    return {**_liver_values(result), "grade": band.grade, "action": band.action, "note": band.note,
            "strictness": band.strictness, "grade_4": band.grade_4}


def _lab_name(test: str) -> str:
    return "platelet count" if test == "platelets" else LIVER_TESTS[test]


def _found(labs: PreDoseLabs) -> list[dict[str, Any]]:
    found = [_liver_values(result) for result in labs.liver.values() if result is not None and result.uln is not None]
    if labs.platelets is not None and labs.platelets.per_mm3 is not None:
        found.append(_platelet_values(labs.platelets))
    return found


def _liver_values(result: LiverTest) -> dict[str, Any]:
    multiple = result.times_uln
    return {
        "kind": "liver",
        "name": result.name,
        "value": result.value,
        "unit": result.unit or "",
        "day": result.day,
        "uln": result.uln,
        "multiple": round(multiple, 2) if multiple is not None else None,
        "reference": result.reference,
    }


def _platelet_values(count: CellCount) -> dict[str, Any]:
    return {
        "kind": "platelets",
        "name": "platelets",
        "value": count.value,
        "unit": count.unit or "",
        "day": count.day,
        "per_mm3": count.per_mm3,
        "reference": count.reference,
    }


def _lvef_values(lvef: LvefResult) -> dict[str, Any]:
    return {"kind": "lvef", "name": "LVEF", "value": lvef.value, "unit": "%", "day": lvef.day, "reference": lvef.reference}
