"""An order no rule is about costs no reading of the record's Observations: each order rule checks the drafted
drugs, which cost nothing to read, before the facts (LVEF history, disease setting, HER2 status, weight) that
group and model years of Observations. bench/RESULTS.md measures what this saves; this keeps it from regressing."""
from __future__ import annotations

from datetime import date

import pytest

from cds_hooks.facts import Facts
from cds_hooks.protocol.request import ORDER_HOOKS
from cds_hooks.record import build_record
from cds_hooks.rules.base import REGISTRY, RuleContext
from cds_hooks.settings import Settings

LOINC = "http://loinc.org"
RX = "http://www.nlm.nih.gov/research/umls/rxnorm"
AS_OF = date(2026, 11, 22)


def observation(oid, code, value, unit):
    return {"resourceType": "Observation", "id": oid, "status": "final", "subject": {"reference": "Patient/p"},
            "code": {"coding": [{"system": LOINC, "code": code}]}, "effectiveDateTime": "2026-11-01",
            "valueQuantity": {"value": value, "unit": unit, "code": unit}}


OBSERVATIONS = [observation("weight", "29463-7", 70, "kg"), observation("lvef", "10230-1", 60, "%"),
                observation("ast", "1920-8", 30, "U/L")]
STATIN = {"resourceType": "MedicationRequest", "id": "statin", "status": "draft", "intent": "order",
          "subject": {"reference": "Patient/p"}, "authoredOn": "2026-11-22",
          "medicationCodeableConcept": {"coding": [{"system": RX, "code": "83367", "display": "atorvastatin"}]}}


@pytest.mark.parametrize("rule", [r for r in REGISTRY if r.hooks & ORDER_HOOKS], ids=lambda r: r.id)
def test_an_order_no_rule_is_about_reads_no_observation(rule):
    record = build_record({"observations": OBSERVATIONS}, [STATIN])
    context = RuleContext(hook="order-sign", patient_id="p", record=record, facts=Facts(record, AS_OF, Settings()),
                          focus_orders=record.draft_orders, settings=Settings(), as_of=AS_OF)
    assert list(rule.evaluate(context)) == []
    # The index groups the Observations by value set the first time any fact reads one.
    assert record.observation_index._groups is None
