"""HER2 tumour status from IHC, ISH and diagnosis codes, read by the ASCO/CAP 2018 rules (affirmed in 2023).

Serum HER2 (value set her2_serum) is never read: it is not tumour status. The thresholds are those of the
clinical reference, Part B1 "HER2 positivity rules".
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from typing import Literal

from cds_hooks.fhir_views import Condition, Observation
from cds_hooks.facts import Facts
from cds_hooks.dates import first_day
from cds_hooks.facts.disease import recorded_unless_refuted
from cds_hooks.facts.observations import coded_value, effective_day, measurement, observations_in

Status = Literal["positive", "negative", "equivocal", "unknown"]
Call = Literal["positive", "negative", "equivocal"]
IhcScore = Literal["0", "1+", "2+", "3+"]
IshResult = Literal["amplified", "not_amplified"]

# Dual-probe ISH (ASCO/CAP 2018): HER2/CEP17 ratio cut-off and average HER2 copies per cell.
RATIO_CUTOFF = 2.0
AMPLIFIED_COPIES = 4.0
HIGH_COPIES = 6.0

_IHC_SCORES: dict[str, IhcScore] = {"ihc_0": "0", "ihc_1plus": "1+", "ihc_2plus": "2+", "ihc_3plus": "3+"}
_IHC_CALLS: dict[IhcScore, Call] = {"3+": "positive", "2+": "equivocal", "1+": "negative", "0": "negative"}
_QUALITATIVE: dict[str, Call] = {"positive": "positive", "negative": "negative", "equivocal": "equivocal"}


@dataclass(frozen=True)
class Her2Result:
    """One HER2 test result with the call ASCO/CAP gives it on its own (None: not interpretable)."""

    method: Literal["IHC", "ISH", "interpretation"]
    reference: str
    day: date | None
    call: Call | None
    ihc_score: IhcScore | None = None
    ish: IshResult | None = None
    # Dual-probe ISH only: the ratio, the copies per cell and the ASCO/CAP group (1-5) they fall in.
    ratio: float | None = None
    copies: float | None = None
    ish_group: int | None = None
    # A value that is not a HER2 answer code (text, a number, "indeterminate"), as recorded: on file but not a call.
    recorded_as: str | None = None

    def describe(self) -> str:
        """E.g. "IHC 2+ on 2026-03-02" or "ISH on 2026-03-09: HER2/CEP17 ratio 2.3, 5.1 HER2 copies/cell (group 1)"."""
        when = f" on {self.day.isoformat()}" if self.day else " (undated)"
        if self.recorded_as is not None:
            label = {"IHC": "IHC", "ISH": "ISH", "interpretation": "HER2 interpretation"}[self.method]
            return f'{label}{when} recorded as "{self.recorded_as}", not as a HER2 answer code the service can read'
        if self.method == "IHC":
            return f"IHC {self.ihc_score or self.call or 'uninterpretable'}{when}"
        if self.method == "ISH" and self.ratio is not None:
            copies = f"{self.copies:g} HER2 copies/cell" if self.copies is not None else "no copies-per-cell result"
            group = f" (ASCO/CAP group {self.ish_group})" if self.ish_group else ""
            return f"ISH{when}: HER2/CEP17 ratio {self.ratio:g}, {copies}{group}"
        if self.method == "ISH":
            return f"ISH {(self.ish or self.call or 'uninterpretable').replace('_', ' ')}{when}"
        return f"HER2 interpretation {self.call or 'uninterpretable'}{when}"


@dataclass(frozen=True)
class Her2Status:
    status: Status
    ihc_score: IhcScore | None
    ish: IshResult | None
    # "Observation/..." or "Condition/..." that decided the status; None when unknown.
    decided_by: str | None
    date: date | None
    # The newest IHC result, and the ISH result that goes with it (same day or later).
    ihc: Her2Result | None = None
    ish_result: Her2Result | None = None
    # ISH groups 2-4: the final call needs a concomitant IHC review.
    needs_ihc_review: bool = False
    # Plain words for the card: what the status rests on.
    basis: str = "no HER2 result on file"
    # Status unknown although a HER2 result is on file: a partial ISH or a value that cannot be read.
    result_on_file: bool = False

    @property
    def ihc_equivocal(self) -> bool:
        """The newest IHC is 2+, or recorded only as equivocal: ASCO/CAP's equivocal IHC category is 2+."""
        return self.ihc is not None and self.ihc.call == "equivocal"


def her2_results(facts: Facts) -> tuple[Her2Result, ...]:
    """Every interpretable or partial tumour HER2 result, newest first."""
    record = facts.record
    results = [
        *(_ihc(o) for o in observations_in(record, "her2_ihc")),
        *(_ish_presence(o) for o in observations_in(record, "her2_ish")),
        *_ish_by_counts(observations_in(record, "her2_ish_ratio"), observations_in(record, "her2_copy_number")),
        *(_interpretation(o) for o in observations_in(record, "her2_interpretation")),
        *(_interpretation(o) for o in observations_in(record, "her2_tissue_other")),
    ]
    found = [r for r in results if r is not None]
    return tuple(sorted(found, key=lambda r: r.day or date.min, reverse=True))


def her2_status(facts: Facts) -> Her2Status:
    """HER2 status under ASCO/CAP: any positive result on file makes the tumour HER2-positive; otherwise the
    newest IHC with its ISH decides; a HER2 diagnosis code counts only when there is no test result."""
    results = facts.get(her2_results)
    ihc = next((r for r in results if r.method == "IHC" and r.call is not None), None)
    ish = _ish_for(ihc, results)
    positive = next((r for r in results if r.call == "positive"), None)
    if positive is not None:
        return _status("positive", positive, ihc, ish, f"{positive.describe()} is HER2-positive")
    if ish is not None and ish.ish_group in (2, 3, 4):
        return _status("equivocal", ish, ihc, ish, f"{ish.describe()} needs a concomitant IHC review", review=True)
    if ihc is not None:
        return _from_ihc(ihc, ish)
    if ish is not None and ish.call is not None:
        return _status(ish.call, ish, None, ish, ish.describe())
    interpretation = next((r for r in results if r.method == "interpretation" and r.call is not None), None)
    if interpretation is not None:
        return _status(interpretation.call, interpretation, None, ish, interpretation.describe())  # type: ignore[arg-type]
    unread = next((r for r in results if r.recorded_as is not None), None)
    # The ISH found may itself be the unreadable result: named once.
    partial = tuple({id(r): r for r in (ish, unread) if r is not None}.values())
    return _from_diagnosis(facts, partial, ish)


def her2_low(facts: Facts) -> bool | None:
    """HER2-low (IHC 1+, or 2+ or equivocal with ISH not amplified, or a HER2-low diagnosis): True; IHC 0 or HER2-positive:
    False; None when the record does not tell."""
    status = facts.get(her2_status)
    if status.status == "positive" or status.ihc_score == "0":
        return False
    if status.ihc_score == "1+" or (status.ihc_equivocal and status.ish == "not_amplified"):
        return True
    if recorded_unless_refuted(facts, "her2_low_breast_cancer"):
        return True
    return None


def _from_ihc(ihc: Her2Result, ish: Her2Result | None) -> Her2Status:
    if ihc.call == "equivocal":
        if ish is not None and ish.ish == "not_amplified":
            return _status("negative", ish, ihc, ish, f"{ihc.describe()} with {ish.describe()}")
        missing = f"{ish.describe()} is incomplete" if ish is not None else "no ISH result"
        return _status("equivocal", ihc, ihc, ish, f"{ihc.describe()}, {missing}")
    return _status(ihc.call, ihc, ihc, ish, ihc.describe())  # type: ignore[arg-type]


def _from_diagnosis(facts: Facts, partial: tuple[Her2Result, ...], ish: Her2Result | None) -> Her2Status:
    # Receptor status is tumour biology: a resolved or in-remission diagnosis still records it.
    for value_set, status in (("her2_positive_breast_cancer", "positive"), ("her2_negative_breast_cancer", "negative")):
        condition = _newest_condition(facts, value_set)
        if condition is not None:
            day = first_day(condition.onsetDateTime or condition.recordedDate)
            when = f" (onset {day.isoformat()})" if day else ""
            return Her2Status(status, None, None, f"Condition/{condition.id}", day, None, ish,  # type: ignore[arg-type]
                              basis=f"diagnosis {_condition_text(condition)}{when}, no HER2 test result on file")
    if partial:
        return Her2Status("unknown", None, None, None, None, None, ish, basis="; ".join(r.describe() for r in partial),
                          result_on_file=True)
    return Her2Status("unknown", None, None, None, None)


def _status(status: Status, decided: Her2Result, ihc: Her2Result | None, ish: Her2Result | None, basis: str,
            review: bool = False) -> Her2Status:
    return Her2Status(
        status=status,
        ihc_score=ihc.ihc_score if ihc else None,
        ish=ish.ish if ish else None,
        decided_by=decided.reference,
        date=decided.day,
        ihc=ihc,
        ish_result=ish,
        needs_ihc_review=review,
        basis=basis,
    )


def _ish_for(ihc: Her2Result | None, results: tuple[Her2Result, ...]) -> Her2Result | None:
    """The newest complete ISH result (amplified, not amplified, or a group 2-4), else the newest partial one, that is
    not older than the IHC it would complete (same specimen or later): a later ratio without copies, or a value that
    cannot be read, does not undo a complete ISH."""
    found = [r for r in results if r.method == "ISH" and (ihc is None or ihc.day is None or (r.day is not None and r.day >= ihc.day))]
    return next((r for r in found if r.ish is not None or r.ish_group is not None), found[0] if found else None)


def _ihc(observation: Observation) -> Her2Result | None:
    meaning = coded_value(observation, "her2_answers")
    score = _IHC_SCORES.get(meaning or "")
    if score is not None:
        return Her2Result("IHC", f"Observation/{observation.id}", effective_day(observation), _IHC_CALLS[score], ihc_score=score)
    return _qualitative("IHC", observation, meaning)


def _ish_presence(observation: Observation) -> Her2Result | None:
    result = _qualitative("ISH", observation, coded_value(observation, "her2_answers"))
    if result is None or result.call is None:
        return result
    ish: IshResult | None = {"positive": "amplified", "negative": "not_amplified"}.get(result.call)  # type: ignore[assignment]
    return replace(result, ish=ish)


def _qualitative(method: Literal["IHC", "ISH", "interpretation"], observation: Observation, meaning: str | None) -> Her2Result | None:
    """A positive/negative/equivocal answer as its call; any other value (text, a number, "indeterminate") as a result
    on file without a call, so that the card names it instead of saying there is none; no value at all: None."""
    reference, day = f"Observation/{observation.id}", effective_day(observation)
    call = _QUALITATIVE.get(meaning or "")
    if call is not None:
        return Her2Result(method, reference, day, call)
    # As the record writes it; a code it gives without words, by what the code means ("IHC 3+", not "ihc_3plus").
    recorded = (_as_recorded(observation) or (f"IHC {_IHC_SCORES[meaning]}" if meaning in _IHC_SCORES else meaning)
                or _first_code(observation))
    return Her2Result(method, reference, day, None, recorded_as=recorded) if recorded else None


def _first_code(observation: Observation) -> str | None:
    concept = observation.valueCodeableConcept
    return next((str(c.code) for c in concept.coding or [] if c.code), None) if concept is not None else None


def _as_recorded(observation: Observation) -> str | None:
    if observation.valueString:
        return str(observation.valueString)
    quantity = observation.valueQuantity
    if quantity is not None and quantity.value is not None:
        return f"{float(quantity.value):g} {quantity.unit or quantity.code or ''}".strip()
    concept = observation.valueCodeableConcept
    if concept is not None:
        return concept.text or next((c.display for c in concept.coding or [] if c.display), None)
    return None


def _ish_by_counts(ratios: tuple[Observation, ...], copies: tuple[Observation, ...]) -> list[Her2Result]:
    """Ratio results paired with the copies-per-cell result of the same day, grouped as ASCO/CAP 2018 does."""
    copies_by_day = {effective_day(o): value for o in copies if (value := _number(o)) is not None}
    results = []
    for observation in ratios:
        ratio = _number(observation)
        if ratio is None:
            continue
        day = effective_day(observation)
        count = copies_by_day.get(day) if day is not None else None
        group = _ish_group(ratio, count) if count is not None else None
        results.append(Her2Result(
            "ISH", f"Observation/{observation.id}", day, _GROUP_CALLS.get(group) if group else None,
            ish=_GROUP_ISH.get(group) if group else None, ratio=ratio, copies=count, ish_group=group,
        ))
    return results


def _ish_group(ratio: float, copies: float) -> int:
    if ratio >= RATIO_CUTOFF:
        return 1 if copies >= AMPLIFIED_COPIES else 2
    if copies >= HIGH_COPIES:
        return 3
    return 4 if copies >= AMPLIFIED_COPIES else 5


# Groups 2-4 are not a call on their own: the reference asks for a concomitant IHC review first.
_GROUP_CALLS: dict[int, Call] = {1: "positive", 2: "equivocal", 3: "equivocal", 4: "equivocal", 5: "negative"}
_GROUP_ISH: dict[int, IshResult] = {1: "amplified", 5: "not_amplified"}


def _interpretation(observation: Observation) -> Her2Result | None:
    return _qualitative("interpretation", observation, coded_value(observation, "her2_answers"))


def _number(observation: Observation) -> float | None:
    """A Quantity value, or a Ratio's numerator/denominator (mCODE allows both for the ISH ratio), unrounded: rounding
    before the ASCO/CAP cut-offs would read 499/250 (1.996) as 2.0, group 1."""
    found = measurement(observation)
    if found is not None:
        return found.value
    ratio = observation.valueRatio
    if ratio is None or ratio.numerator is None or ratio.denominator is None:
        return None
    numerator, denominator = ratio.numerator.value, ratio.denominator.value
    if numerator is None or not denominator:
        return None
    return float(numerator) / float(denominator)


def _newest_condition(facts: Facts, value_set: str) -> Condition | None:
    # A refuted HER2 diagnosis says the tumour is not of that type; one in remission still says what it was.
    return max(recorded_unless_refuted(facts, value_set), key=lambda c: first_day(c.onsetDateTime or c.recordedDate) or date.min,
               default=None)


def _condition_text(condition: Condition) -> str:
    code = condition.code
    if code.text:
        return code.text
    return next((c.display for c in code.coding or [] if c.display), "HER2 diagnosis")
