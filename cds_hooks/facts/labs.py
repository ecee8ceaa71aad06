"""Liver tests as multiples of each result's own upper limit of normal, and platelet counts per mm³,
as they stood in the lookback window before a planned dose."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Mapping

from fhir.resources.R4B.observation import Observation

from cds_hooks.facts import Facts
from cds_hooks.facts.observations import measurement, observations_in

LIVER_TESTS: Mapping[str, str] = {"ast": "AST", "alt": "ALT", "bilirubin_total": "total bilirubin"}
TRANSAMINASES = ("ast", "alt")

# Platelet units seen in practice, with the factor to a count per mm³ (= per µL). Keys are compared after
# _unit_key (case folded, µ/mc read as u, ³ as 3, spaces removed): UCUM codes (10*3/uL, 10*9/L, /uL, /mm3) and
# the common non-UCUM spellings of the same units (K/uL, x10E3/uL, 10^9/L, /nL). 10*9/L equals 10*3/uL
# (1 L = 10^6 µL) and /nL equals 10*3/uL (1 µL = 1000 nL). Any other unit leaves the count unknown, never guessed.
_PER_MM3 = {
    "/ul": 1.0, "/mm3": 1.0, "{cells}/ul": 1.0, "cells/ul": 1.0,
    "10*3/ul": 1000.0, "10^3/ul": 1000.0, "x10e3/ul": 1000.0, "x10^3/ul": 1000.0, "k/ul": 1000.0,
    "10*3/mm3": 1000.0, "10^3/mm3": 1000.0, "/nl": 1000.0,
    "10*9/l": 1000.0, "10^9/l": 1000.0, "x10e9/l": 1000.0, "x10^9/l": 1000.0,
}

# Hy's-law pattern (clinical reference Part B3, rule 26).
HYS_LAW_TRANSAMINASE_ULN = 3.0
HYS_LAW_BILIRUBIN_ULN = 2.0


@dataclass(frozen=True)
class LiverTest:
    test: str  # value-set key: ast | alt | bilirubin_total
    value: float
    unit: str | None
    day: date
    reference: str
    # The Observation's own referenceRange.high, when it is in the result's unit; never a textbook value.
    uln: float | None

    @property
    def name(self) -> str:
        return LIVER_TESTS[self.test]

    @property
    def times_uln(self) -> float | None:
        """The result as a multiple of the upper limit of normal; None when the record gives no usable ULN."""
        return self.value / self.uln if self.uln else None


@dataclass(frozen=True)
class PlateletCount:
    value: float
    unit: str | None
    day: date
    reference: str
    # None when the unit is not one listed in _PER_MM3.
    per_mm3: float | None


@dataclass(frozen=True)
class PreDoseLabs:
    """The newest result of each test dated within [dose_day - lab_lookback_days, dose_day]."""

    window_start: date
    dose_day: date
    liver: Mapping[str, LiverTest | None]
    platelets: PlateletCount | None

    @property
    def missing_liver_tests(self) -> tuple[str, ...]:
        return tuple(test for test in LIVER_TESTS if self.liver[test] is None)

    @property
    def liver_tests_without_uln(self) -> tuple[LiverTest, ...]:
        return tuple(result for result in self.liver.values() if result is not None and result.uln is None)


def liver_test_history(facts: Facts) -> Mapping[str, tuple[LiverTest, ...]]:
    """Every dated numeric AST, ALT and total bilirubin result, newest first, by test."""
    return {
        test: tuple(result for o in observations_in(facts.record, test) if (result := _liver_test(o, test)) is not None)
        for test in LIVER_TESTS
    }


def platelet_history(facts: Facts) -> tuple[PlateletCount, ...]:
    """Every dated numeric platelet count (LOINC 777-3, 26515-7), newest first."""
    return tuple(count for o in observations_in(facts.record, "platelets") if (count := _platelet_count(o)) is not None)


def labs_before(facts: Facts, dose_day: date) -> PreDoseLabs:
    """The latest liver tests and platelet count within settings.lab_lookback_days before (and on) the dose day.

    Results dated after the dose day are not "before this dose"; undated results cannot be placed and are ignored.
    """
    window_start = dose_day - timedelta(days=facts.settings.lab_lookback_days)
    history = facts.get(liver_test_history)

    def within(day: date) -> bool:
        return window_start <= day <= dose_day

    return PreDoseLabs(
        window_start=window_start,
        dose_day=dose_day,
        liver={test: next((r for r in history[test] if within(r.day)), None) for test in LIVER_TESTS},
        platelets=next((c for c in facts.get(platelet_history) if within(c.day)), None),
    )


def hys_law_pattern(labs: PreDoseLabs) -> tuple[LiverTest, LiverTest] | None:
    """(transaminase, bilirubin) when AST or ALT > 3× ULN and total bilirubin > 2× ULN, else None.

    Each test's latest result within the pre-dose window is used, so the two need not come from the same draw:
    within a few days of each other they describe the same liver, and requiring one draw would miss the pattern
    whenever the tests were sent separately. The higher transaminase multiple is returned.
    """
    bilirubin = labs.liver["bilirubin_total"]
    if bilirubin is None or bilirubin.times_uln is None or bilirubin.times_uln <= HYS_LAW_BILIRUBIN_ULN:
        return None
    raised = [
        result for test in TRANSAMINASES
        if (result := labs.liver[test]) is not None and result.times_uln is not None and result.times_uln > HYS_LAW_TRANSAMINASE_ULN
    ]
    if not raised:
        return None
    return max(raised, key=lambda result: result.times_uln or 0.0), bilirubin


def _liver_test(observation: Observation, test: str) -> LiverTest | None:
    found = measurement(observation)
    if found is None or found.day is None:
        return None
    return LiverTest(test, found.value, found.unit, found.day, found.reference, _upper_limit(observation))


def _upper_limit(observation: Observation) -> float | None:
    """referenceRange.high when positive and in the value's unit (a range without a unit is taken as the value's)."""
    value_unit = _unit(observation.valueQuantity)
    for reference_range in observation.referenceRange or []:
        high = reference_range.high
        if high is None or high.value is None or float(high.value) <= 0:
            continue
        high_unit = _unit(high)
        if high_unit is None or value_unit is None or high_unit == value_unit:
            return float(high.value)
    return None


def _unit(quantity: object) -> str | None:
    if quantity is None:
        return None
    return getattr(quantity, "code", None) or getattr(quantity, "unit", None)


def _platelet_count(observation: Observation) -> PlateletCount | None:
    found = measurement(observation)
    if found is None or found.day is None:
        return None
    factor = _PER_MM3.get(_unit_key(found.unit))
    return PlateletCount(found.value, found.unit, found.day, found.reference, found.value * factor if factor else None)


def _unit_key(unit: str | None) -> str:
    text = (unit or "").casefold().replace("µ", "u").replace("μ", "u").replace("³", "3").replace(" ", "")
    return text.replace("/mcl", "/ul")
