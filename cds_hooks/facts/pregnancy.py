"""Pregnancy facts (Part B4): pregnancy evidence, hCG results read against their own ranges, reproductive potential,
and when a HER2 agent starts therapy (the labels' "before starting")."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

from cds_hooks import terminology
from cds_hooks.fhir_views import Condition, Observation
from cds_hooks.facts import Facts
from cds_hooks.dates import add_months, first_day, last_day
from cds_hooks.facts.disease import active_conditions, condition_day
from cds_hooks.facts.observations import coded_value, effective_day, measurement, observations_in, upper_limit
from cds_hooks.facts.therapy import LastDose, last_dose_of, started_before

# The HER2 agents whose labels carry the embryo-fetal toxicity boxed warning (Part B intro and B4): trastuzumab and
# its biosimilars (with Hylecta and Phesgo, which normalise to their ingredients), T-DM1, T-DXd and pertuzumab.
EMBRYO_FETAL_WARNING_AGENTS = (
    terminology.ingredients_in_class("trastuzumab_product")
    | terminology.ingredients_in_class("antibody_drug_conjugate")
    | {"pertuzumab"}
)

# Ages (inclusive, in whole years) at which a female patient is taken to be of reproductive potential. The labels
# name "females of reproductive potential" without ages, so this is local policy, chosen wide on purpose: a
# needless pregnancy check costs less than a missed pregnancy. Menopause and sterilisation are not read.
REPRODUCTIVE_AGE_YEARS = (12, 55)

# How long a positive test is taken to show a current pregnancy when nothing later answers it. A pregnancy lasts at
# most about 42 weeks from the last period and hCG turns positive about 4 weeks in, so the pregnancy a test showed is
# over within about 38 weeks; 10 calendar months (at least 43 weeks) is longer on purpose, since treating a
# pregnancy as over too early is the costlier mistake. Local policy: the reference gives no figure.
POSITIVE_TEST_MONTHS = 10

# A HER2 agent given after this long with none running starts a new course, which the labels ask to be preceded by a
# pregnancy test ("before starting"): a pregnancy begun in such a break can show on a test by the restart, while a
# cycle delayed by a week or two belongs to the same course. Local policy, like the test lookback.
THERAPY_BREAK = timedelta(days=28)

# Generic LOINC (and Synthea SNOMED) Positive/Negative answers; of that value set only these two meanings apply to hCG.
_ANSWERS_VALUE_SET = "her2_answers"
_READINGS = frozenset({"positive", "negative"})

# Quantitative hCG units (unit_key of the UCUM code or printed unit) with the factor to IU/L, so that a result and its
# reference range recorded in different units are compared in one: 1 mIU/mL = 1 IU/L, 1 IU/mL = 1,000 IU/L.
_HCG_UNITS_TO_IU_PER_L = {"miu/ml": 1.0, "iu/l": 1.0, "iu/ml": 1000.0, "miu/l": 0.001}

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
    """Why the patient is taken to be pregnant: a recorded pregnancy, a positive test nothing later answers, or both."""

    conditions: tuple[RecordedPregnancy, ...]
    positive_test: HcgResult | None
    # The newest readable test, shown when it contradicts a recorded pregnancy (a negative test after it).
    latest_test: HcgResult | None

    @property
    def references(self) -> tuple[str, ...]:
        tests = (self.positive_test.reference,) if self.positive_test else ()
        return tuple(c.reference for c in self.conditions) + tests


@dataclass(frozen=True)
class Her2Start:
    """Why a drafted HER2 agent starts therapy: the first dose of an agent, or HER2 therapy resumed after a break."""

    # The ordered HER2 agents (ingredient keys) with no earlier record; empty when each was given before.
    new_agents: frozenset[str]
    # The last HER2 dose on record before the start; None when no HER2 agent was recorded before.
    previous: LastDose | None
    # No HER2 agent ran in the THERAPY_BREAK before the start.
    after_break: bool


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
    """The newest pregnancy test from `pregnancy_test_lookback_days` before `on` (a drafted dose's dose day, never
    before today; default today) up to that day."""
    day = on or facts.as_of
    earliest = day - timedelta(days=facts.settings.pregnancy_test_lookback_days)
    return next((r for r in facts.get(hcg_results) if r.day is not None and earliest <= r.day <= day), None)


def pregnancy_evidence(facts: Facts, on: date | None = None) -> PregnancyEvidence | None:
    """An active pregnancy Condition, or a positive test that nothing later answers (read up to `on`) and that a
    pregnancy could still follow: no more than POSITIVE_TEST_MONTHS old today.

    `on` is the dose day of a drafted dose (never before today; default today); a dose planned weeks ahead does not
    hide a test, since the pregnancy it shows is judged as of today.
    """
    conditions = tuple(_recorded(c) for c in facts.get(active_conditions, "pregnancy") if _still_pregnant(c))
    positive = facts.get(_unanswered_positive_test, on)
    if positive is not None and not _could_be_current(facts, positive):
        positive = None
    if not conditions and positive is None:
        return None
    return PregnancyEvidence(conditions=conditions, positive_test=positive, latest_test=facts.get(_latest_readable_test, on))


def lapsed_positive_test(facts: Facts, on: date | None = None) -> HcgResult | None:
    """A positive test that nothing later answers but older than a pregnancy lasts: the pregnancy it showed is over,
    the record does not say how, and so it cannot tell whether the patient is pregnant now."""
    positive = facts.get(_unanswered_positive_test, on)
    return positive if positive is not None and not _could_be_current(facts, positive) else None


def her2_start(facts: Facts, agents: frozenset[str], on: date) -> Her2Start | None:
    """Whether a HER2 order of these ingredients given on `on` (its dose day) starts therapy; None when it continues
    a course.

    An undated earlier record counts as given before, as in `started_before`.
    """
    earlier = [e for e in facts.exposures if e.ingredients & EMBRYO_FETAL_WARNING_AGENTS and (e.start is None or e.start < on)]
    new_agents = frozenset(a for a in agents & EMBRYO_FETAL_WARNING_AGENTS if not started_before(facts.exposures, a, on))
    after_break = bool(earlier) and not any(e.overlaps(on - THERAPY_BREAK, on - timedelta(days=1)) for e in earlier)
    if not new_agents and not after_break:
        return None
    return Her2Start(new_agents=new_agents, previous=last_dose_of(earlier), after_break=after_break)


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


def _latest_readable_test(facts: Facts, on: date | None) -> HcgResult | None:
    """The newest test read as positive or negative, up to `on` (a dose day, never before today; default today)."""
    until = on or facts.as_of
    return next((r for r in facts.get(hcg_results) if r.interpretable and r.day is not None and r.day <= until), None)


def _unanswered_positive_test(facts: Facts, on: date | None) -> HcgResult | None:
    """The newest readable test when it is positive and no pregnancy is recorded as ended on or after its day."""
    latest = facts.get(_latest_readable_test, on)
    if latest is None or latest.reading != "positive":
        return None
    answered = any(end >= latest.day for end in facts.get(_pregnancy_end_days))
    return None if answered else latest


def _could_be_current(facts: Facts, positive: HcgResult) -> bool:
    return add_months(positive.day, POSITIVE_TEST_MONTHS) >= facts.as_of


def _pregnancy_end_days(facts: Facts) -> tuple[date, ...]:
    """For each pregnancy the record shows as over (resolved or inactive, ended, or refuted), the earliest day its end
    can be: the abatement, else its onset (it ended after it began). Undated ones cannot be placed and are left out."""
    current = facts.get(active_conditions, "pregnancy")
    ended = [c for c in facts.record.conditions if terminology.in_value_set(c.code, "pregnancy")
             and not (c in current and _still_pregnant(c))]
    days = (max(filter(None, (_abatement_day(c), condition_day(c))), default=None) for c in ended)
    return tuple(day for day in days if day is not None)


def _abatement_day(condition: Condition) -> date | None:
    period = condition.abatementPeriod
    return first_day(condition.abatementDateTime) or (first_day(period.start) or last_day(period.end) if period else None)


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
    # The cut-off differs between assays, so only the result's own reference range decides, in the result's unit.
    high = upper_limit(observation, _HCG_UNITS_TO_IU_PER_L)
    if high is None:
        missing = "a reference range in another unit" if result.high is not None else "no reference range"
        return HcgResult(**common, reading="uninterpretable", value=amount,
                         problem=f"it has {missing}, so the laboratory's cut-off for a positive test is unknown")
    reading: Reading = "positive" if result.value > high else "negative"
    return HcgResult(**common, reading=reading, value=f"{amount} (reference range up to {high:g})")


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
