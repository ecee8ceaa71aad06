"""Liver tests as multiples of each result's own upper limit of normal, and platelet and neutrophil counts per
mm³, as they stood in the lookback window before a planned dose."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Callable, Mapping, TypeVar

from cds_hooks.fhir_views import Observation
from cds_hooks.facts import Facts
from cds_hooks.facts.observations import measurement, results_in, unit_key, upper_limit

Result = TypeVar("Result")

LIVER_TESTS: Mapping[str, str] = {"ast": "AST", "alt": "ALT", "bilirubin_total": "total bilirubin"}
TRANSAMINASES = ("ast", "alt")
# The code a card offers to order when a pre-dose result is missing (clinical reference A3.3; the neutrophil code is
# verified in data/clinical_codes.yaml).
LAB_ORDER_CODES: Mapping[str, tuple[str, str]] = {
    "ast": ("1920-8", "AST [Enzymatic activity/volume] in Serum or Plasma"),
    "alt": ("1742-6", "ALT [Enzymatic activity/volume] in Serum or Plasma"),
    "bilirubin_total": ("1975-2", "Bilirubin.total [Mass/volume] in Serum or Plasma"),
    "platelets": ("777-3", "Platelets [#/volume] in Blood by Automated count"),
    "neutrophils": ("751-8", "Neutrophils [#/volume] in Blood by Automated count"),
}

# Blood cell count units (platelets, neutrophils) seen in practice, with the factor to a count per mm³ (= per µL).
# Keys are compared after unit_key (case folded, µ/mc read as u, ³ as 3, spaces removed): UCUM codes (10*3/uL,
# 10*9/L, /uL, /mm3) and the common non-UCUM spellings of the same units (K/uL, x10E3/uL, 10^9/L, /nL). 10*9/L
# equals 10*3/uL (1 L = 10^6 µL) and /nL equals 10*3/uL (1 µL = 1000 nL). Any other unit leaves the count unknown,
# never guessed.
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
class CellCount:
    """A platelet or absolute neutrophil count as recorded, and per mm³."""

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
    platelets: CellCount | None
    neutrophils: CellCount | None

    @property
    def missing_liver_tests(self) -> tuple[str, ...]:
        return tuple(test for test in LIVER_TESTS if self.liver[test] is None)

    @property
    def liver_tests_without_uln(self) -> tuple[LiverTest, ...]:
        return tuple(result for result in self.liver.values() if result is not None and result.uln is None)


def labs_before(facts: Facts, dose_day: date) -> PreDoseLabs:
    """The latest liver tests, platelet and neutrophil counts within settings.lab_lookback_days before (and on) the
    dose day.

    Results dated after the dose day are not "before this dose"; undated results cannot be placed and are ignored.
    """
    window_start = dose_day - timedelta(days=facts.settings.lab_lookback_days)

    def newest(value_set: str, read: Callable[[Observation], Result | None]) -> Result | None:
        """The newest dated numeric result in the window; older results are never read (nor modelled)."""
        found = results_in(facts.record, value_set, newest=dose_day, oldest=window_start)
        return next((result for observation in found if (result := read(observation)) is not None), None)

    return PreDoseLabs(
        window_start=window_start,
        dose_day=dose_day,
        liver={test: newest(test, lambda observation, test=test: _liver_test(observation, test)) for test in LIVER_TESTS},
        platelets=newest("platelets", _cell_count),
        neutrophils=newest("neutrophils", _cell_count),
    )


def platelet_counts(facts: Facts, after: date, dose_day: date) -> tuple[CellCount, ...]:
    """The dated platelet counts after `after` up to (and on) the dose day, newest first; a count in a unit that
    cannot be read per mm³ is left out."""
    found = results_in(facts.record, "platelets", newest=dose_day, oldest=after + timedelta(days=1))
    return tuple(count for observation in found if (count := _cell_count(observation)) is not None and count.per_mm3 is not None)


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
    return LiverTest(test, found.value, found.unit, found.day, found.reference, upper_limit(observation))


def _cell_count(observation: Observation) -> CellCount | None:
    found = measurement(observation)
    if found is None or found.day is None:
        return None
    factor = _PER_MM3.get(unit_key(found.unit))
    return CellCount(found.value, found.unit, found.day, found.reference, found.value * factor if factor else None)

