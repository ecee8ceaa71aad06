"""Narrow, validated views of the resources a long record holds many of: the medication history
(MedicationAdministration, MedicationStatement, MedicationRequest) and Observations.

A long HER2 course is over a hundred administrations and years of LVEF results, which the facts read every one
of (exposure periods, doses given, cumulative anthracycline, LVEF history), and a full `fhir.resources` model
costs ~60 µs each. These views carry only the elements the facts read, under their FHIR names and with the
primitive types of `fhir_core` (the same date, dateTime, instant and decimal validation as the full models), for
~5 µs each. Elements the facts do not read are not validated: an error in a note does not hide a dose that was
given. Draft orders, Conditions and the Patient, few and read more widely, stay full models (cds_hooks.record).
"""
from __future__ import annotations

from typing import Any, ClassVar, Optional

from fhir_core.types import CodeType, DateTimeType, DecimalType, InstantType, StringType, UriType
from pydantic import BaseModel, ConfigDict, model_validator


class _View(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Quantity(_View):
    value: Optional[DecimalType] = None
    unit: Optional[StringType] = None
    code: Optional[CodeType] = None


class Coding(_View):
    system: Optional[UriType] = None
    code: Optional[CodeType] = None
    display: Optional[StringType] = None


class CodeableConcept(_View):
    coding: Optional[list[Coding]] = None
    text: Optional[StringType] = None


class Ratio(_View):
    numerator: Optional[Quantity] = None
    denominator: Optional[Quantity] = None


class ReferenceRange(_View):
    low: Optional[Quantity] = None
    high: Optional[Quantity] = None


class Period(_View):
    start: Optional[DateTimeType] = None
    end: Optional[DateTimeType] = None


class TimingRepeat(_View):
    boundsPeriod: Optional[Period] = None


class Timing(_View):
    repeat: Optional[TimingRepeat] = None


class DoseAndRate(_View):
    doseQuantity: Optional[Quantity] = None


class Dosage(_View):
    timing: Optional[Timing] = None
    doseAndRate: Optional[list[DoseAndRate]] = None


class DispenseRequest(_View):
    validityPeriod: Optional[Period] = None


class AdministrationDosage(_View):
    dose: Optional[Quantity] = None


class _Resource(_View):
    resourceType: str
    id: Optional[StringType] = None
    status: CodeType

    def get_resource_type(self) -> str:
        """As a `fhir.resources` model answers, so readers shared with draft orders need not tell them apart."""
        return self.resourceType

    @model_validator(mode="after")
    def _one_element_per_choice(self) -> Any:
        # A choice element ([x]) holds one value: a resource with two says two different things.
        for choice in self.CHOICES:
            present = [name for name in choice if getattr(self, name) is not None]
            if len(present) > 1:
                raise ValueError(f"{' and '.join(present)} are both present; a choice element takes one")
        return self

    # The choice elements ([x]) of the type, each as the names of its elements here.
    CHOICES: ClassVar[tuple[tuple[str, ...], ...]] = ()


class _Effective(_Resource):
    effectiveDateTime: Optional[DateTimeType] = None
    effectivePeriod: Optional[Period] = None

    CHOICES = (("effectiveDateTime", "effectivePeriod"),)


class Observation(_Resource):
    code: CodeableConcept
    effectiveDateTime: Optional[DateTimeType] = None
    effectivePeriod: Optional[Period] = None
    effectiveInstant: Optional[InstantType] = None
    issued: Optional[InstantType] = None
    valueQuantity: Optional[Quantity] = None
    valueCodeableConcept: Optional[CodeableConcept] = None
    valueString: Optional[StringType] = None
    valueRatio: Optional[Ratio] = None
    referenceRange: Optional[list[ReferenceRange]] = None

    CHOICES = (
        ("effectiveDateTime", "effectivePeriod", "effectiveInstant"),
        ("valueQuantity", "valueCodeableConcept", "valueString", "valueRatio"),
    )


class MedicationAdministration(_Effective):
    dosage: Optional[AdministrationDosage] = None


class MedicationStatement(_Effective):
    dosage: Optional[list[Dosage]] = None


class MedicationRequest(_Resource):
    authoredOn: Optional[DateTimeType] = None
    dosageInstruction: Optional[list[Dosage]] = None
    dispenseRequest: Optional[DispenseRequest] = None


HISTORY_VIEWS: dict[str, type[_Resource]] = {
    "MedicationRequest": MedicationRequest,
    "MedicationStatement": MedicationStatement,
    "MedicationAdministration": MedicationAdministration,
}
HistoryEntry = MedicationAdministration | MedicationStatement | MedicationRequest
