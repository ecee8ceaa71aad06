"""Clinical rules, one module per topic; importing this package registers every rule in REGISTRY."""
from cds_hooks.rules import cardiac  # noqa: F401  (registers its rules)
from cds_hooks.rules.base import REGISTRY, Finding, Rule, RuleContext

__all__ = ["REGISTRY", "Finding", "Rule", "RuleContext"]
