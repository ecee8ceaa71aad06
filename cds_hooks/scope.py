"""Whether an order call concerns anything the checks read, decided from the request alone, before prefetch.

EHRs call order-select and order-sign for every medication ordered, and nearly all are drugs no check of this
service reads (a statin, an antibiotic). Every order-hook rule acts on a draft the clinician is acting on
(HookRequest.acts_on) that names a drug of medications.yaml, or on one the service cannot identify that may be a
checked drug or names none (dosing.agent-not-identified). A call with no such draft is answered with no cards before
its prefetch is read: nothing is fetched from the EHR's FHIR server, no record is built, and neither missing data
(412) nor an unreadable draft of another drug (400) stops the answer. When the call does concern the checks, a
draft of another drug beside it is left out of the record (drafts_checks_read), so it does not stop them either.
"""
from __future__ import annotations

from typing import Any, Mapping

from cds_hooks import terminology
from cds_hooks.protocol.request import ORDER_HOOKS, HookRequest
from cds_hooks.record import draft_reference, is_medication_order, medication_concept, medication_index, references_unknown_medication
from cds_hooks.rules.dosing import unidentified_checked_drug


def concerns_checks(request: HookRequest) -> bool:
    """False only for an order call none of whose drafts acted on is a drug the checks read; True for patient-view."""
    if request.hook not in ORDER_HOOKS:
        return True
    return any(is_medication_order(draft) and request.acts_on(draft_reference(draft)) for draft in drafts_checks_read(request))


def drafts_checks_read(request: HookRequest) -> list[dict[str, Any]]:
    """context.draftOrders less the medication orders that name no drug the checks read, acted on or not: an
    unreadable statin drafted beside trastuzumab is neither read nor refused (400)."""
    drafts = request.draft_orders
    index = medication_index(drafts)
    return [draft for draft in drafts if not is_medication_order(draft) or _concerns_checks(draft, index)]


def _concerns_checks(draft: Mapping[str, Any], index: Mapping[str, Mapping[str, Any]]) -> bool:
    if references_unknown_medication(draft, index):
        # Its Medication may come with the prefetch (the medication queries _include them): read the record.
        return True
    concept = medication_concept(draft, index)
    return (
        terminology.classify_medication(concept) is not None
        or bool(terminology.drugs_named_apart(concept))
        or unidentified_checked_drug(concept) is not None
    )
