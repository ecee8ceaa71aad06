"""The CDS services this server offers: one per hook, with the prefetch templates the rules need."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from cds_hooks import terminology

PATIENT = "{{context.patientId}}"


@dataclass(frozen=True)
class ServiceDefinition:
    id: str
    hook: str
    title: str
    description: str
    usage_requirements: str
    prefetch: Mapping[str, str]
    # The prefetch keys that search Observations, with the value sets whose codes each search asks for
    # (record.build_record reads each value set from its key).
    observation_keys: Mapping[str, tuple[str, ...]]

    def discovery_entry(self) -> dict:
        return {
            "id": self.id,
            "hook": self.hook,
            "title": self.title,
            "description": self.description,
            "usageRequirements": self.usage_requirements,
            "prefetch": dict(self.prefetch),
        }


def observation_query(*value_sets: str, newest_first: bool = True) -> str:
    """An Observation search for the patient restricted to the codes of the given value sets."""
    codes = ",".join(f"{system}|{code}" for value_set in value_sets for system, code in terminology.value_set_codes(value_set))
    query = f"Observation?patient={PATIENT}&code={codes}"
    return query + "&_sort=-date" if newest_first else query


def medication_query(resource_type: str) -> str:
    # _include brings the Medication resources that orders reference, so they can be normalised too.
    return f"{resource_type}?patient={PATIENT}&_include={resource_type}:medication"


# Each Observation value set the rules read is asked for by one key, and read from that key only.
OBSERVATION_KEYS: Mapping[str, tuple[str, ...]] = {
    "her2": ("her2_ihc", "her2_ish", "her2_ish_ratio", "her2_copy_number", "her2_interpretation", "her2_tissue_other"),
    "lvef": ("lvef",),
    "bodySize": ("body_weight", "body_height", "bsa"),
    "labs": ("platelets", "neutrophils", "ast", "alt", "bilirubin_total"),
    # Apart from the labs: every HER2 agent's order reads the pregnancy tests, only T-DM1 and T-DXd the labs.
    "pregnancyTests": ("hcg",),
    "diseaseStatus": ("disease_status",),
    # The extent of disease: TNM staging, and mCODE's HistoryOfMetastaticCancer (an Observation).
    "staging": ("staging", "history_of_metastatic_cancer"),
}

PREFETCH: Mapping[str, str] = {
    "patient": f"Patient/{PATIENT}",
    "conditions": f"Condition?patient={PATIENT}",
    "medicationRequests": medication_query("MedicationRequest"),
    "medicationStatements": medication_query("MedicationStatement"),
    "medicationAdministrations": medication_query("MedicationAdministration"),
    **{key: observation_query(*value_sets) for key, value_sets in OBSERVATION_KEYS.items()},
}

USAGE = (
    "Reads the patient's Conditions, MedicationRequests, MedicationStatements, MedicationAdministrations and "
    "Observations (HER2, LVEF, body size, platelet and neutrophil counts, liver tests, hCG, disease status, "
    "staging, history of metastatic cancer), from prefetch or from fhirServer with the fhirAuthorization token "
    "(patient/*.read). Medications are recognised by RxNorm or ATC codes, with exact drug names as a fallback."
)

SERVICES: tuple[ServiceDefinition, ...] = (
    ServiceDefinition(
        id="her2-order-select",
        hook="order-select",
        title="HER2 therapy safety check while ordering",
        description=(
            "Checks a selected order for trastuzumab (and biosimilars), ado-trastuzumab emtansine, trastuzumab "
            "deruxtecan, pertuzumab or an anthracycline against the patient's record: concurrent anthracycline, "
            "cardiac monitoring, HER2 status, product identity and dose."
        ),
        usage_requirements=USAGE,
        prefetch=PREFETCH,
        observation_keys=OBSERVATION_KEYS,
    ),
    ServiceDefinition(
        id="her2-order-sign",
        hook="order-sign",
        title="HER2 therapy safety check at signing",
        description=(
            "Checks every unsigned order for HER2-directed therapy or anthracyclines before signing, with the "
            "same rules as the ordering check, across all orders signed together."
        ),
        usage_requirements=USAGE,
        prefetch=PREFETCH,
        observation_keys=OBSERVATION_KEYS,
    ),
    ServiceDefinition(
        id="her2-patient-view",
        hook="patient-view",
        title="HER2-positive breast cancer therapy summary",
        description=(
            "When a chart opens: where a HER2-positive patient is in therapy, cardiac monitoring due, and any "
            "safety problem in the current regimen."
        ),
        usage_requirements=USAGE,
        prefetch=PREFETCH,
        observation_keys=OBSERVATION_KEYS,
    ),
)

SERVICES_BY_ID: Mapping[str, ServiceDefinition] = {service.id: service for service in SERVICES}
# One service per hook (docs/architecture.md), so a hook names its service.
_SERVICES_BY_HOOK: Mapping[str, ServiceDefinition] = {service.hook: service for service in SERVICES}


def service_for_hook(hook: Any) -> ServiceDefinition | None:
    """The service that answers `hook`; None for another hook or for anything but a string (untrusted input)."""
    return _SERVICES_BY_HOOK.get(hook) if isinstance(hook, str) else None
