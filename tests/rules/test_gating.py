"""An order no rule is about costs no reading of the record's Observations: each order rule checks the drafted
drugs, which cost nothing to read, before the facts (LVEF history, disease setting, HER2 status, weight) that
group and model years of Observations. bench/RESULTS.md measures what this saves; this keeps it from regressing."""
from __future__ import annotations

import pytest

from cds_hooks.protocol.request import ORDER_HOOKS
from cds_hooks.rules.base import REGISTRY

from .test_hepatic import RX, context, lab

STATIN = {"resourceType": "MedicationRequest", "id": "statin", "status": "draft", "intent": "order",
          "subject": {"reference": "Patient/p"}, "authoredOn": "2026-11-22",
          "medicationCodeableConcept": {"coding": [{"system": RX, "code": "83367", "display": "atorvastatin"}]}}


@pytest.mark.parametrize("rule", [r for r in REGISTRY if r.hooks & ORDER_HOOKS], ids=lambda r: r.id)
def test_an_order_no_rule_is_about_reads_no_observation(rule):
    order_context = context(lab("weight", 70, "kg"), lab("lvef", 60, "%"), lab("ast", 30), drafts=(STATIN,))
    assert list(rule.evaluate(order_context)) == []
    # The index groups a source's Observations by value set the first time a fact reads one of its value sets.
    assert order_context.record.observation_index._grouped == {}
