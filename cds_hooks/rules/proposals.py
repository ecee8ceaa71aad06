"""The FHIR that rules suggest: unsigned orders to remove, and draft orders (tests, studies, medications) to create.

One place builds each kind of resource, so every card offers the same shape an EHR or the Sandbox can apply.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from cds_hooks import terminology
from cds_hooks.facts.labs import LAB_ORDER_CODES
from cds_hooks.record import DraftOrder
from cds_hooks.rules.base import ProposedAction, ProposedSuggestion, RuleContext

UCUM = "http://unitsofmeasure.org"


def remove_draft(order: DraftOrder, **values: Any) -> ProposedSuggestion:
    """The card's `remove-draft` suggestion: delete this unsigned order (its wording may use `order` and `values`)."""
    return ProposedSuggestion(key="remove-draft", values={"order": order.text, **values},
                              actions=(ProposedAction(type="delete", resource_id=order.reference),))


def remove_drafts(orders: Iterable[DraftOrder], **values: Any) -> tuple[ProposedSuggestion, ...]:
    """One `remove-draft` suggestion per order."""
    return tuple(remove_draft(order, **values) for order in orders)


def service_request(context: RuleContext, coding: Mapping[str, str], text: str, **fields: Any) -> dict[str, Any]:
    """A draft ServiceRequest for the patient: a test or study, coded (LOINC) so the EHR can place it."""
    return {
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "order",
        "code": {"coding": [dict(coding)], "text": text},
        "subject": {"reference": f"Patient/{context.patient_id}"},
        **fields,
    }


def loinc(code: str, display: str) -> dict[str, str]:
    return {"system": terminology.LOINC, "code": code, "display": display}


def lab_orders(context: RuleContext, key: str, tests: Mapping[str, str]) -> ProposedSuggestion:
    """One recommended suggestion that drafts an order for each lab test, given as value-set key -> name for the card
    (codes from facts.labs.LAB_ORDER_CODES); its wording may use `tests` (the names joined) and, per action, `test`."""
    actions = []
    for test, name in tests.items():
        code, display = LAB_ORDER_CODES[test]
        resource = service_request(context, loinc(code, display), display)
        actions.append(ProposedAction(type="create", values={"test": name}, resource=resource))
    return ProposedSuggestion(key=key, values={"tests": ", ".join(tests.values())}, actions=tuple(actions), recommended=True)


def medication_request(context: RuleContext, rxnorm_code: str, name: str, dosage: list[dict[str, Any]]) -> dict[str, Any]:
    """A draft MedicationRequest; EHRs and the Sandbox need the text and an RxNorm `coding[0]` to apply it."""
    return {
        "resourceType": "MedicationRequest",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": f"Patient/{context.patient_id}"},
        "authoredOn": context.as_of.isoformat(),
        "medicationCodeableConcept": {
            "coding": [{"system": terminology.RXNORM, "code": rxnorm_code, "display": name}],
            "text": name,
        },
        "dosageInstruction": dosage,
    }


def dose_quantity(value: float, unit: str) -> dict[str, Any]:
    """A UCUM dose quantity (`mg`, `mg/kg`)."""
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}
