"""Pregnancy facts (Part B4): pregnancy evidence, hCG results read against their own ranges, reproductive potential."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

from cds_hooks import terminology
from cds_hooks.fhir_views import Condition, Observation
from cds_hooks.facts import Facts
from cds_hooks.dates import first_day, last_day
from cds_hooks.facts.disease import active_conditions, condition_day
from cds_hooks.facts.observations import coded_value, effective_day, measurement, observations_in

# Ages (inclusive, in whole years) at which a female patient is taken to be of reproductive potential. The labels
# name "females of reproductive potential" without ages, so this is local policy, chosen wide on purpose: a
# needless pregnancy check costs less than a missed pregnancy. Menopause and sterilisation are not read.
REPRODUCTIVE_AGE_YEARS = (12, 55)

# Generic LOINC (and Synthea SNOMED) Positive/Negative answers; of that value set only these two meanings apply to hCG.
_ANSWERS_VALUE_SET = "her2_answers"
_READINGS = frozenset({"positive", "negative"})

Reading = Literal["positive", "negative", "uninterpretable"]
Potential = Literal["yes", "no", "unknown"]


@dataclass(frozen=True)
class HcgResult:
    """One pregnancy test as the rules read it."""

    reference: str
    day: date | None
    test: str  # the test's own name, e.g. "hCG [Presence] in Urine (LOINC 2106-3)"
    reading: Reading
    value: str  # the result as recorded, e.g. "Negative" or "12 mIU/mL (reference range up to 5)"
    # Why a result could not be read as positive or negative; None when it could.
    problem: str | None = None

    @property
    def interpretable(self) -> bool:
        return self.reading != "uninterpretable"


@dataclass(frozen=True)
class RecordedPregnancy:
    reference: str
    text: str
    since: date | None


@dataclass(frozen=True)
class PregnancyEvidence:
    """Why the patient is taken to be pregnant: a recorded pregnancy, a recent positive test, or both."""

    conditions: tuple[RecordedPregnancy, ...]
    positive_test: HcgResult | None
    # The newest readable test, shown when it contradicts a recorded pregnancy (a negative test after it).
    latest_test: HcgResult | None

    @property
    def references(self) -> tuple[str, ...]:
        tests = (self.positive_test.reference,) if self.positive_test else ()
        return tuple(c.reference for c in self.conditions) + tests


@dataclass(frozen=True)
class ReproductivePotential:
    status: Potential
    gender: str | None
    age: int | None
    # What the record says, in words for the card: "female, 38 years", "no birth date recorded".
    description: str


def hcg_results(facts: Facts) -> tuple[HcgResult, ...]:
    """Every pregnancy test in the record, newest first, each read as positive, negative or uninterpretable."""
    return tuple(_read(observation) for observation in observations_in(facts.record, "hcg"))


def recent_pregnancy_test(facts: Facts, on: date | None = None) -> HcgResult | None:
    """The newest pregnancy test from `pregnancy_test_lookback_days` before `on` (the planned start; default today).

    A test taken after a planned start that is already past still counts: the first dose is not given yet.
    """
    day = on or facts.as_of
    earliest, latest = day - timedelta(days=facts.settings.pregnancy_test_lookback_days), max(day, facts.as_of)
    return next((r for r in facts.get(hcg_results) if r.day is not None and earliest <= r.day <= latest), None)


def pregnancy_evidence(facts: Facts, on: date | None = None) -> PregnancyEvidence | None:
    """An active pregnancy Condition, or a positive test within the lookback that no newer negative test supersedes.

    `on` is the planned start of a drafted dose (default today). A positive test counts when it is no older than the
    lookback at the earlier of today and `on`, so a start planned a few weeks ahead does not hide it.
    """
    day = on or facts.as_of
    conditions = tuple(_recorded(c) for c in facts.get(active_conditions, "pregnancy") if _still_pregnant(c))
    until = max(day, facts.as_of)
    latest = next((r for r in facts.get(hcg_results) if r.interpretable and r.day is not None and r.day <= until), None)
    since = min(day, facts.as_of) - timedelta(days=facts.settings.pregnancy_test_lookback_days)
    positive = latest if latest is not None and latest.reading == "positive" and latest.day >= since else None
    if not conditions and positive is None:
        return None
    return PregnancyEvidence(conditions=conditions, positive_test=positive, latest_test=latest)


def reproductive_potential(facts: Facts) -> ReproductivePotential:
    """Female and aged within REPRODUCTIVE_AGE_YEARS today; an unknown gender or birth date gives "unknown", not "no"."""
    patient = facts.record.patient
    gender = str(patient.gender) if patient is not None and patient.gender else None
    birth = patient.birthDate if patient is not None else None
    # A partial birth date ("1988") gives an age range; it decides only when both ends fall on the same side.
    oldest, youngest = _age(first_day(birth), facts.as_of), _age(last_day(birth), facts.as_of)
    age = oldest if oldest == youngest else None
    low, high = REPRODUCTIVE_AGE_YEARS
    in_range = None if oldest is None or youngest is None else (low <= youngest and oldest <= high)
    outside = oldest is not None and youngest is not None and (oldest < low or youngest > high)
    described = _describe(gender, oldest, youngest)
    if gender == "male" or outside:
        return ReproductivePotential("no", gender, age, described)
    if gender == "female" and in_range:
        return ReproductivePotential("yes", gender, age, described)
    return ReproductivePotential("unknown", gender, age, described)


def _age(birth: date | None, on: date) -> int | None:
    if birth is None:
        return None
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def _describe(gender: str | None, oldest: int | None, youngest: int | None) -> str:
    sex = gender if gender in ("female", "male") else ("gender recorded as " + gender if gender else "no gender recorded")
    if oldest is None or youngest is None:
        return f"{sex}, no birth date recorded"
    years = f"{oldest} years" if oldest == youngest else f"{youngest}-{oldest} years (partial birth date)"
    return f"{sex}, {years}"


def _read(observation: Observation) -> HcgResult:
    kind = terminology.coded_meaning(observation.code, "hcg")
    common = {"reference": f"Observation/{observation.id}", "day": effective_day(observation), "test": _test_name(observation)}
    if kind == "presence":
        return _read_presence(observation, common)
    if kind == "quantity":
        return _read_quantity(observation, common)
    return HcgResult(**common, reading="uninterpretable", value=_as_recorded(observation),
                     problem="its codes name both a qualitative and a quantitative test")


def _read_presence(observation: Observation, common: dict[str, Any]) -> HcgResult:
    meaning = coded_value(observation, _ANSWERS_VALUE_SET)
    recorded = _as_recorded(observation)
    if meaning in _READINGS:
        return HcgResult(**common, reading=meaning, value=recorded or meaning)
    # Free text ("neg", "not detected") is not read: only the coded Positive/Negative answers are.
    return HcgResult(**common, reading="uninterpretable", value=recorded,
                     problem="the result is not coded as Positive or Negative (LOINC LA6576-8 / LA6577-6)")


def _read_quantity(observation: Observation, common: dict[str, Any]) -> HcgResult:
    result = measurement(observation)
    if result is None:
        return HcgResult(**common, reading="uninterpretable", value=_as_recorded(observation),
                         problem="it has no numeric value")
    # The printed unit ("mIU/mL") reads better than the UCUM code ("m[IU]/mL") that Measurement keeps.
    unit = (observation.valueQuantity.unit if observation.valueQuantity else None) or result.unit or ""
    amount = f"{result.value:g} {unit}".strip()
    # The cut-off differs between assays, so only the result's own reference range decides.
    if result.high is None:
        return HcgResult(**common, reading="uninterpretable", value=amount,
                         problem="it has no reference range, so the laboratory's cut-off for a positive test is unknown")
    reading: Reading = "positive" if result.value > result.high else "negative"
    return HcgResult(**common, reading=reading, value=f"{amount} (reference range up to {result.high:g})")


def _test_name(observation: Observation) -> str:
    code = observation.code
    coding = next((c for c in code.coding or [] if terminology.in_value_set(c, "hcg")), None)
    name = code.text or (coding.display if coding else None) or "Pregnancy test"
    return f"{name} (LOINC {coding.code})" if coding is not None else name


def _as_recorded(observation: Observation) -> str:
    concept = observation.valueCodeableConcept
    if concept is not None:
        return concept.text or next((c.display or c.code for c in concept.coding or [] if c.display or c.code), "")
    if observation.valueString:
        return observation.valueString
    return "no result value"


def _still_pregnant(condition: Condition) -> bool:
    """A refuted pregnancy, or one with an end recorded, is not current."""
    verification = condition.verificationStatus
    refuted = verification is not None and any(c.code == "refuted" for c in verification.coding or [])
    ended = any(getattr(condition, f"abatement{kind}") is not None
                for kind in ("DateTime", "Age", "Period", "Range", "String"))
    return not refuted and not ended


def _recorded(condition: Condition) -> RecordedPregnancy:
    code = condition.code
    text = code.text or next((c.display for c in code.coding or [] if c.display), None) or "Pregnancy"
    return RecordedPregnancy(reference=f"Condition/{condition.id}", text=text, since=condition_day(condition))
