"""Narrow, validated views of the record's resources: the medication history (MedicationAdministration,
MedicationStatement, MedicationRequest), Observations, Conditions and the Patient.

A long HER2 course is over a hundred administrations and years of LVEF results, which the facts read every one
of (exposure periods, doses given, cumulative anthracycline, LVEF history), and a full `fhir.resources` model
costs ~60 µs each. These views carry only the elements the facts read, under their FHIR names and with the
primitive types of `fhir_core` (the same date, dateTime, instant and decimal validation as the full models), for
~5 µs each. Elements the facts do not read are not validated: an error in a note does not hide a dose that was
given, nor a malformed address the patient's age. Draft orders stay full models: suggestions copy them whole
(cds_hooks.record).
"""
from __future__ import annotations

from typing import Any, ClassVar, Optional

from fhir_core.types import CodeType, DateTimeType, DateType, DecimalType, InstantType, StringType, UriType
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


class Range(_View):
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


class _Event(_Resource):
    status: CodeType


class _Effective(_Event):
    effectiveDateTime: Optional[DateTimeType] = None
    effectivePeriod: Optional[Period] = None

    CHOICES = (("effectiveDateTime", "effectivePeriod"),)


class Observation(_Event):
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


class MedicationRequest(_Event):
    authoredOn: Optional[DateTimeType] = None
    dosageInstruction: Optional[list[Dosage]] = None
    dispenseRequest: Optional[DispenseRequest] = None


HISTORY_VIEWS: dict[str, type[_Event]] = {
    "MedicationRequest": MedicationRequest,
    "MedicationStatement": MedicationStatement,
    "MedicationAdministration": MedicationAdministration,
}
HistoryEntry = MedicationAdministration | MedicationStatement | MedicationRequest


class ConditionStage(_View):
    summary: Optional[CodeableConcept] = None


class Condition(_Resource):
    clinicalStatus: Optional[CodeableConcept] = None
    verificationStatus: Optional[CodeableConcept] = None
    severity: Optional[CodeableConcept] = None
    code: Optional[CodeableConcept] = None
    stage: Optional[list[ConditionStage]] = None
    onsetDateTime: Optional[DateTimeType] = None
    onsetAge: Optional[Quantity] = None
    onsetPeriod: Optional[Period] = None
    onsetRange: Optional[Range] = None
    onsetString: Optional[StringType] = None
    # Read only for whether the condition has ended (a pregnancy that is over).
    abatementDateTime: Optional[DateTimeType] = None
    abatementAge: Optional[Quantity] = None
    abatementPeriod: Optional[Period] = None
    abatementRange: Optional[Range] = None
    abatementString: Optional[StringType] = None
    recordedDate: Optional[DateTimeType] = None

    CHOICES = (
        ("onsetDateTime", "onsetAge", "onsetPeriod", "onsetRange", "onsetString"),
        ("abatementDateTime", "abatementAge", "abatementPeriod", "abatementRange", "abatementString"),
    )


class Patient(_Resource):
    gender: Optional[CodeType] = None
    birthDate: Optional[DateType] = None
