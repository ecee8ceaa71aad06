"""Clinical rules, one module per topic; importing this package registers every rule in REGISTRY."""
from cds_hooks.rules import (  # noqa: F401  (importing a topic module registers its rules)
    cardiac,
    dosing,
    haematologic,
    hepatic,
    her2_testing,
    neurologic,
    pregnancy,
    pulmonary,
    sequencing,
    summary,
)
from cds_hooks.rules.base import REGISTRY, Finding, Rule, RuleContext

__all__ = ["REGISTRY", "Finding", "Rule", "RuleContext"]
