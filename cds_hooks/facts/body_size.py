"""Body weight and body surface area for dose calculations, within the configured lookback."""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

from cds_hooks.facts import Facts
from cds_hooks.facts.observations import Measurement, latest_measurement

# UCUM units seen for body weight and height, with their factor to kg and cm.
_TO_KG = {"kg": 1.0, "g": 0.001, "[lb_av]": 0.45359237, "lb": 0.45359237, "lbs": 0.45359237}
_TO_CM = {"cm": 1.0, "m": 100.0, "mm": 0.1, "[in_i]": 2.54, "in": 2.54}


@dataclass(frozen=True)
class BodySize:
    value: float
    day: date | None
    reference: str
    # How it was obtained: "measured" (an Observation) or "Mosteller" (computed from height and weight).
    method: str = "measured"


def weight_kg(facts: Facts) -> BodySize | None:
    """The latest body weight within settings.weight_lookback_days, in kg; None if there is none or its unit is unknown."""
    found = latest_measurement(facts.record, "body_weight", facts.as_of, facts.settings.weight_lookback_days)
    return _converted(found, _TO_KG)


def bsa_m2(facts: Facts) -> BodySize | None:
    """Body surface area: a recorded BSA within the lookback, else Mosteller from recent height and weight."""
    recorded = latest_measurement(facts.record, "bsa", facts.as_of, facts.settings.weight_lookback_days)
    if recorded is not None and (recorded.unit or "m2") in ("m2", "m^2", "m²"):
        return BodySize(recorded.value, recorded.day, recorded.reference)
    weight = facts.get(weight_kg)
    # Adult height changes slowly; any recorded height is acceptable.
    height = _converted(latest_measurement(facts.record, "body_height", facts.as_of), _TO_CM)
    if weight is None or height is None:
        return None
    return BodySize(round(math.sqrt(height.value * weight.value / 3600), 2), weight.day, weight.reference, method="Mosteller")


def _converted(found: Measurement | None, factors: dict[str, float]) -> BodySize | None:
    if found is None or (found.unit or "") not in factors:
        return None
    return BodySize(round(found.value * factors[found.unit], 2), found.day, found.reference)
