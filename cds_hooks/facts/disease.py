"""Disease setting: early vs metastatic HER2-positive breast cancer, from conditions and staging."""
from __future__ import annotations

from typing import Literal

from fhir.resources.R4B.condition import Condition

from cds_hooks import terminology
from cds_hooks.facts import Facts

Setting = Literal["metastatic", "early", "unknown"]
_INACTIVE = frozenset({"inactive", "resolved", "remission"})


def active_conditions(facts: Facts, value_set: str) -> tuple[Condition, ...]:
    """Conditions in the value set that are not recorded as inactive, resolved or in remission."""
    return tuple(
        c for c in facts.record.conditions
        if _clinical_status(c) not in _INACTIVE and terminology.in_value_set(c.code.model_dump(exclude_none=True), value_set)
    )


def setting(facts: Facts) -> Setting:
    """Metastatic when a secondary cancer or a history of metastatic cancer is recorded (mCODE); early when
    breast cancer is recorded without either; unknown when the record names no breast cancer."""
    if active_conditions(facts, "metastatic") or active_conditions(facts, "brain_metastasis"):
        return "metastatic"
    if any(active_conditions(facts, vs) for vs in ("breast_cancer", "her2_positive_breast_cancer", "her2_negative_breast_cancer")):
        return "early"
    return "unknown"


def _clinical_status(condition: Condition) -> str | None:
    status = condition.clinicalStatus
    if status is None or not status.coding:
        return None
    return status.coding[0].code
