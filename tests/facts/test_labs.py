"""Pre-dose labs: ULN multiples from each result's own range, platelet units, the window and the Hy's-law pattern."""
from __future__ import annotations

from datetime import date

import pytest

from cds_hooks.facts import Facts
from cds_hooks.facts.labs import hys_law_pattern, labs_before, platelet_counts
from cds_hooks.record import build_record
from cds_hooks.settings import Settings

LOINC = "http://loinc.org"
CODES = {"ast": "1920-8", "alt": "1742-6", "bilirubin": "1975-2", "platelets": "777-3", "neutrophils": "751-8",
         "neutrophils-unspecified": "26499-4", "neutrophils-percent": "770-8"}
DOSE_DAY = date(2026, 12, 1)


def lab(oid, test, value, unit, day="2026-11-28", high=None, high_unit=None):
    resource = {"resourceType": "Observation", "id": oid, "status": "final", "subject": {"reference": "Patient/p"},
                "code": {"coding": [{"system": LOINC, "code": CODES[test]}]}, "effectiveDateTime": day,
                "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}}
    if high is not None:
        resource["referenceRange"] = [{"high": {"value": high, "unit": high_unit or unit, "code": high_unit or unit}}]
    return resource


def facts_with(*observations, lookback=7):
    return Facts(build_record({"labs": list(observations)}, []), date(2026, 11, 22), Settings(lab_lookback_days=lookback))


def test_liver_tests_are_multiples_of_their_own_upper_limit():
    labs = labs_before(facts_with(lab("a", "ast", 120, "U/L", high=40), lab("b", "bilirubin", 1.8, "mg/dL", high=1.2)), DOSE_DAY)
    assert labs.liver["ast"].times_uln == pytest.approx(3.0)
    assert labs.liver["bilirubin_total"].times_uln == pytest.approx(1.5)
    assert labs.missing_liver_tests == ("alt",)


@pytest.mark.parametrize("high, high_unit", [(None, None), (40, "U/mL"), (0, None)])
def test_no_usable_reference_range_leaves_the_multiple_unknown(high, high_unit):
    labs = labs_before(facts_with(lab("a", "ast", 120, "U/L", high=high, high_unit=high_unit)), DOSE_DAY)
    assert labs.liver["ast"].uln is None and labs.liver["ast"].times_uln is None
    assert labs.liver_tests_without_uln == (labs.liver["ast"],)


def test_window_is_the_lookback_before_the_dose_day_inclusive():
    facts = facts_with(lab("old", "ast", 10, "U/L", "2026-11-23", 40), lab("edge", "alt", 11, "U/L", "2026-11-24", 40),
                       lab("after", "bilirubin", 0.5, "mg/dL", "2026-12-02", 1.2))
    labs = labs_before(facts, DOSE_DAY)
    assert labs.window_start == date(2026, 11, 24)
    assert labs.liver["ast"] is None                     # 8 days before
    assert labs.liver["alt"].reference == "Observation/edge"
    assert labs.liver["bilirubin_total"] is None         # after the dose is not "before this dose"


def test_the_newest_result_in_the_window_is_used():
    labs = labs_before(facts_with(lab("older", "ast", 300, "U/L", "2026-11-25", 40), lab("newer", "ast", 30, "U/L", "2026-11-29", 40)), DOSE_DAY)
    assert labs.liver["ast"].reference == "Observation/newer"


@pytest.mark.parametrize("value, unit, per_mm3", [
    (40, "10*3/uL", 40_000), (40, "10*9/L", 40_000), (40, "10^9/L", 40_000), (40, "K/µL", 40_000), (40, "/nL", 40_000),
    (40_000, "/uL", 40_000), (40_000, "/mm3", 40_000), (40, "x10E3/uL", 40_000),
])
def test_platelet_units_convert_to_a_count_per_mm3(value, unit, per_mm3):
    assert labs_before(facts_with(lab("p", "platelets", value, unit)), DOSE_DAY).platelets.per_mm3 == pytest.approx(per_mm3)


@pytest.mark.parametrize("unit", ["g/L", "%", "mg/dL"])
def test_unknown_platelet_unit_leaves_the_count_unknown(unit):
    count = labs_before(facts_with(lab("p", "platelets", 40, unit)), DOSE_DAY).platelets
    assert count is not None and count.per_mm3 is None


def test_platelet_counts_after_a_day_up_to_the_dose_day_newest_first_in_known_units():
    facts = facts_with(lab("on-the-day", "platelets", 30, "10*3/uL", "2026-11-10"), lab("low", "platelets", 40, "10*3/uL", "2026-11-15"),
                       lab("unit", "platelets", 50, "g/L", "2026-11-20"), lab("latest", "platelets", 60, "10*3/uL", "2026-11-28"),
                       lab("after", "platelets", 10, "10*3/uL", "2026-12-02"))
    counts = platelet_counts(facts, date(2026, 11, 10), DOSE_DAY)
    assert [(c.reference, c.per_mm3) for c in counts] == [("Observation/latest", 60_000), ("Observation/low", 40_000)]


@pytest.mark.parametrize("test, value, unit, per_mm3", [
    ("neutrophils", 0.8, "10*9/L", 800), ("neutrophils", 0.8, "10*3/uL", 800), ("neutrophils-unspecified", 450, "/uL", 450),
])
def test_absolute_neutrophil_counts_convert_like_platelets(test, value, unit, per_mm3):
    assert labs_before(facts_with(lab("n", test, value, unit)), DOSE_DAY).neutrophils.per_mm3 == pytest.approx(per_mm3)


def test_a_neutrophil_percentage_is_not_an_absolute_count():
    assert labs_before(facts_with(lab("n", "neutrophils-percent", 40, "%")), DOSE_DAY).neutrophils is None


def test_hys_law_pattern_pairs_the_latest_results_of_separate_draws():
    facts = facts_with(lab("ast", "ast", 100, "U/L", "2026-11-26", 40), lab("alt", "alt", 130, "U/L", "2026-11-26", 40),
                       lab("bili", "bilirubin", 2.5, "mg/dL", "2026-11-28", 1.2))
    transaminase, bilirubin = hys_law_pattern(labs_before(facts, DOSE_DAY))
    assert transaminase.name == "ALT" and bilirubin.reference == "Observation/bili"


@pytest.mark.parametrize("alt, bilirubin", [(120, 2.5), (130, 2.4), (130, None)])
def test_hys_law_needs_both_limits_strictly_exceeded(alt, bilirubin):
    observations = [lab("alt", "alt", alt, "U/L", high=40)]   # 120/40 = exactly 3x
    if bilirubin is not None:
        observations.append(lab("bili", "bilirubin", bilirubin, "mg/dL", high=1.2))   # 2.4/1.2 = exactly 2x
    assert hys_law_pattern(labs_before(facts_with(*observations), DOSE_DAY)) is None


def with_range_high(resource, high):
    return {**resource, "referenceRange": [{"high": high}]}


@pytest.mark.parametrize("value, high", [
    # The UCUM code on the value, only the printed unit on the range.
    ({"value": 250, "unit": "µmol/L", "code": "umol/L"}, {"value": 21, "unit": "µmol/L"}),
    ({"value": 250, "unit": "umol/L"}, {"value": 21, "unit": "µmol/L", "code": "umol/L"}),
    ({"value": 250, "unit": "UMOL/L"}, {"value": 21, "unit": "umol/l"}),
])
def test_a_reference_range_in_the_same_unit_spelled_differently_gives_the_uln(value, high):
    bilirubin = with_range_high({**lab("b", "bilirubin", 0, "umol/L"), "valueQuantity": value}, high)
    result = labs_before(facts_with(bilirubin), DOSE_DAY).liver["bilirubin_total"]
    assert result.uln == 21 and result.times_uln == pytest.approx(250 / 21)


def test_a_bilirubin_range_in_mg_per_dl_is_not_read_against_a_value_in_umol_per_l():
    bilirubin = with_range_high(lab("b", "bilirubin", 40, "umol/L"), {"value": 1.2, "unit": "mg/dL", "code": "mg/dL"})
    assert labs_before(facts_with(bilirubin), DOSE_DAY).liver["bilirubin_total"].uln is None
