"""The patient-view summary: one calm card for a HER2-positive patient, with where they are in therapy."""
from __future__ import annotations

from typing import Any, Iterator

from cds_hooks import terminology
from cds_hooks.facts import Facts
from cds_hooks.facts.cardiac import (
    TRASTUZUMAB_PRODUCTS,
    cumulative_doxorubicin,
    current_her2_antibody_therapy,
    held_trastuzumab,
    lvef_schedule,
    lvef_series,
)
from cds_hooks.facts.disease import line_of_therapy, metastatic_lines, metastatic_since, setting
from cds_hooks.facts.her2 import her2_status
from cds_hooks.facts.therapy import ON_HOLD
from cds_hooks.rules.base import Finding, RuleContext, rule, unusable_lvef

HER2_DIRECTED = terminology.ingredients_in_class("her2_directed")


@rule(
    id="summary.her2-therapy-summary",
    numbers=(),
    title="HER2-positive breast cancer therapy summary",
    hooks=("patient-view",),
    cards=("summary-her2-therapy",),
    trigger="A chart opens for a patient whose HER2 status is positive (test result or HER2-positive diagnosis).",
    thresholds=(
        "Line of therapy is an estimate from HER2-directed regimens since metastatic disease; LVEF is due by the "
        "interval that applies (cardiac.lvef-monitoring-due): 4 weeks while trastuzumab is held, "
        "lvef_monitoring_interval_days on HER2 antibody therapy, 6 months for 2 years after adjuvant trastuzumab (due "
        "at its last dose when no LVEF was recorded at completion)."
    ),
)
def her2_therapy_summary(context: RuleContext) -> Iterator[Finding]:
    facts = context.facts
    status = facts.get(her2_status)
    if status.status != "positive":
        return
    yield Finding(
        card="summary-her2-therapy",
        values={"her2_basis": status.basis, **_disease(facts), **_therapy(facts), **_lvef(facts), **_anthracyclines(facts)},
        evidence=tuple(reference for reference in (status.decided_by,) if reference),
    )


def _disease(facts: Facts) -> dict[str, Any]:
    disease_setting = facts.get(setting)
    lines = facts.get(metastatic_lines)
    line = facts.get(line_of_therapy)
    # A course signed to start later (an active order or statement whose period begins after today) is a line the
    # rules count, since the decision is made, but the summary says it is planned, not that the patient is on it.
    listed = [
        {"number": item.number, "start": item.start, "planned": item.start > facts.as_of, "regimen": " + ".join(item.texts)}
        for item in lines
    ]
    planned = [item for item in listed if item["planned"]]
    return {
        "setting": disease_setting,
        "metastatic_since": facts.get(metastatic_since),
        "line": None if line is None else len(listed) - len(planned),
        "planned_line": {"number": planned[0]["number"], "start": planned[0]["start"]} if planned else None,
        "lines": listed,
    }


def _therapy(facts: Facts) -> dict[str, Any]:
    covering = [e for e in facts.exposures if e.ingredients & HER2_DIRECTED and e.overlaps(facts.as_of, facts.as_of)]
    # An antibody between doses is current while its next dose is not long late, as the LVEF line beside it counts:
    # on the dosing day of a 3-weekly cycle the 20-day cover of the last dose has ended.
    # A course its record says is stopped or completed is not current, even on the day it ended.
    current = {e.source: e for e in (*covering, *facts.get(current_her2_antibody_therapy)) if not e.halted}
    # Held therapy stays current (it is to resume), said as held: trastuzumab as the LVEF interval beside it reads a
    # hold (held_trastuzumab: a newer order that runs ends an old one's hold), other drugs by their record's status.
    held = {e.source for e in facts.get(held_trastuzumab)} | {
        e.source for e in current.values() if e.status == ON_HOLD and not e.ingredients & TRASTUZUMAB_PRODUCTS
    }
    # One line per drug as the record names it: each dose given is its own record, and "T-DXd since 2026-11-17;
    # T-DXd since 2026-10-27" would read as two courses. The earliest start is the one the drug has run since.
    therapy: dict[str, dict[str, Any]] = {}
    for e in current.values():
        item = therapy.setdefault(e.text, {"text": e.text, "since": e.start, "held": False})
        if e.start is not None and (item["since"] is None or e.start < item["since"]):
            item["since"] = e.start
        item["held"] = item["held"] or e.source in held
    return {"current_therapy": list(therapy.values())}


def _lvef(facts: Facts) -> dict[str, Any]:
    series = facts.get(lvef_series)
    schedule = facts.get(lvef_schedule)
    return {
        "lvef_latest": series.latest,
        "unusable_lvef": unusable_lvef(series, series.latest),
        "lvef_baseline": series.baseline if not series.baseline_is_latest else None,
        "lvef_drop": series.drop_points,
        "lvef_due": schedule.due if schedule else None,
        "lvef_overdue": schedule is not None and schedule.due < facts.as_of,
        "lvef_schedule": schedule.reason if schedule else None,
        "lvef_completion_missing": schedule is not None and schedule.completion_lvef_missing,
    }


def _anthracyclines(facts: Facts) -> dict[str, Any]:
    history = facts.get(cumulative_doxorubicin)
    return {
        "doxorubicin_mg_per_m2": history.mg_per_m2,
        "doxorubicin_doses": history.doses,
        "doxorubicin_missing": list(history.missing),
        "other_anthracyclines": [
            {"name": terminology.ingredient_display(total.ingredient), "doses": total.doses, "mg": total.total_mg,
             "mg_per_m2": total.total_mg_per_m2}
            for total in history.other_anthracyclines
        ],
    }
