"""Treatment toxicities recorded as Conditions (ILD/pneumonitis, peripheral neuropathy, and the acute reactions
after which trastuzumab is stopped) with their grade when the record states one, and when they began and ended."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any, Iterable

from cds_hooks import terminology
from cds_hooks.facts import Facts
from cds_hooks.dates import first_day, last_day
from cds_hooks.facts.disease import active_conditions, clinical_status, is_active_status, verification_status
from cds_hooks.fhir_views import Condition

# The clinical reference gives no code system for toxicity grades, so a grade is read only where it is written
# out as one: "Grade 3", "CTCAE grade 3", "CTCAE v5.0 grade 3" or "G3", as the whole text, display or code of
# Condition.stage[].summary or Condition.severity. Severity words (mild/moderate/severe) are NOT grades and are
# never mapped to one; they are reported as written.
_GRADE = re.compile(r"(?:ctcae\s*(?:v\s*\d+(?:\.\d+)*\s*)?)?(?:grade\s*|g)([1-5])", re.IGNORECASE)
_NOT_CONFIRMED = frozenset({"refuted", "entered-in-error"})
# Rule 33: besides interstitial pneumonitis, the Herceptin boxed warning stops trastuzumab for these (value sets).
ACUTE_REACTIONS = ("anaphylaxis", "angioedema", "ards")


@dataclass(frozen=True)
class Toxicity:
    text: str
    reference: str
    # CTCAE-style grade 1-5 when recorded as a grade; None when not recorded.
    grade: int | None
    # What the record says about severity when it is not a grade (e.g. "Severe"), for the card to quote.
    severity_text: str | None
    # The first day the recorded onset (onsetDateTime or onsetPeriod.start) can mean; None when not recorded.
    began: date | None
    recorded: date | None
    # clinicalStatus as recorded; None when not recorded (then the condition counts as active).
    status: str | None
    # The last day the recorded abatement (abatementDateTime or abatementPeriod.end) can mean; None when not recorded.
    resolved_on: date | None

    @property
    def active(self) -> bool:
        return is_active_status(self.status)

    @property
    def onset(self) -> date | None:
        """When it happened, else the day it was charted: enough to place it before or after a drug."""
        return self.began or self.recorded

    @property
    def days_to_resolution(self) -> int | None:
        """Days from onset (not the day it was charted) to resolution, from the widest reading of both dates so a
        resolution never looks quicker than it may have been; None unless both are recorded."""
        return (self.resolved_on - self.began).days if self.began and self.resolved_on else None

    def card_values(self) -> dict[str, Any]:
        """What a card shows of it."""
        return {"text": self.text, "reference": self.reference, "grade": self.grade, "severity": self.severity_text,
                "onset": self.onset, "began": self.began, "status": self.status, "active": self.active,
                "resolved_on": self.resolved_on, "days_to_resolution": self.days_to_resolution}


def ild_episodes(facts: Facts) -> tuple[Toxicity, ...]:
    """Interstitial lung disease or pneumonitis (value set `ild`) whatever its clinical status, highest grade first
    (ungraded last), current before past: the labels stop the drugs permanently, so a resolved episode still counts."""
    return _toxicities(c for c in facts.record.conditions if terminology.in_value_set(c.code, "ild"))


def active_peripheral_neuropathy(facts: Facts) -> tuple[Toxicity, ...]:
    """Active peripheral neuropathy (value set `peripheral_neuropathy`), highest grade first."""
    return _toxicities(facts.get(active_conditions, "peripheral_neuropathy"))


def acute_reactions(facts: Facts) -> tuple[Toxicity, ...]:
    """Recorded anaphylaxis, angioedema and ARDS, oldest first (undated last), whatever their clinical status: an
    acute event is soon recorded as resolved, yet still happened."""
    conditions = [
        c for c in facts.record.conditions
        if any(terminology.in_value_set(c.code, value_set) for value_set in ACUTE_REACTIONS)
    ]
    return oldest_first(_toxicity(c) for c in conditions if verification_status(c) not in _NOT_CONFIRMED)


def active_ards(facts: Facts) -> tuple[Toxicity, ...]:
    """Active, not refuted acute respiratory distress syndrome (value set `ards`): like active ILD, a current lung
    injury, whenever it began."""
    return _toxicities(facts.get(active_conditions, "ards"))


def oldest_first(toxicities: Iterable[Toxicity]) -> tuple[Toxicity, ...]:
    """By onset, undated last."""
    return tuple(sorted(toxicities, key=lambda t: (t.onset is None, t.onset or date.min)))


def worst_grade(toxicities: Iterable[Toxicity]) -> int | None:
    """The highest recorded grade; None when no condition states one."""
    return max((t.grade for t in toxicities if t.grade is not None), default=None)


def _toxicities(conditions: Iterable[Condition]) -> tuple[Toxicity, ...]:
    found = [_toxicity(c) for c in conditions if verification_status(c) not in _NOT_CONFIRMED]
    return tuple(sorted(found, key=lambda t: (t.grade or 0, t.active), reverse=True))


def _toxicity(condition: Condition) -> Toxicity:
    concepts = [stage.summary for stage in condition.stage or [] if stage.summary is not None]
    if condition.severity is not None:
        concepts.append(condition.severity)
    grades = [grade for concept in concepts if (grade := _grade(concept)) is not None]
    severity = condition.severity
    return Toxicity(
        text=_text(condition.code) or "condition",
        reference=f"Condition/{condition.id}",
        grade=max(grades) if grades else None,
        severity_text=_text(severity) if severity is not None and _grade(severity) is None else None,
        began=first_day(condition.onsetDateTime or (condition.onsetPeriod.start if condition.onsetPeriod else None)),
        recorded=first_day(condition.recordedDate),
        status=clinical_status(condition),
        resolved_on=last_day(
            condition.abatementDateTime or (condition.abatementPeriod.end if condition.abatementPeriod else None)
        ),
    )


def _grade(concept: Any) -> int | None:
    candidates = [concept.text] + [value for coding in concept.coding or [] for value in (coding.display, coding.code)]
    grades = [int(match.group(1)) for text in candidates if text and (match := _GRADE.fullmatch(text.strip()))]
    return max(grades) if grades else None


def _text(concept: Any) -> str | None:
    if concept is None:
        return None
    if concept.text:
        return str(concept.text)
    return next((str(coding.display) for coding in concept.coding or [] if coding.display), None)


