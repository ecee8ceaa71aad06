"""Narrow, validated views of the record's resources: the medication history (MedicationAdministration,
MedicationStatement, MedicationRequest), Observations, Conditions and the Patient.

A long HER2 course is over a hundred administrations and years of LVEF results, which the facts read every one
of (exposure periods, doses given, cumulative anthracycline, LVEF history), and a full `fhir.resources` model
costs ~60 µs each. These views carry only the elements the facts read, under their FHIR names and with the
primitive types of `fhir_core` (the same date, dateTime, instant and decimal validation as the full models), for
~5 µs each. Elements the facts do not read are not validated: an error in a note does not hide a dose that was
given, nor a malformed address the patient's age. Two things the full models check stay checked: a choice
element ([x]) with two values, whichever of them facts read, and dates (written as JSON strings). Draft orders
stay full models: suggestions copy them whole (cds_hooks.record).
"""
from __future__ import annotations

from typing import Annotated, Any, ClassVar, Optional

from fhir_core.types import CodeType, DateTimeType, DateType, DecimalType, InstantType, PositiveIntType, StringType, UriType
from pydantic import BaseModel, BeforeValidator, ConfigDict, model_validator


def _json_string(value: Any) -> Any:
    # FHIR JSON writes dates and times as strings. fhir_core also takes a number as epoch seconds, which makes
    # 20261110 a day in 1970; and record.py orders a series by the day read from the JSON string before modelling.
    if not isinstance(value, str):
        raise ValueError("a FHIR date or time is a JSON string")
    return value


# fhir_core's date, dateTime and instant, from JSON strings only.
Date = Annotated[DateType, BeforeValidator(_json_string)]
DateTime = Annotated[DateTimeType, BeforeValidator(_json_string)]
Instant = Annotated[InstantType, BeforeValidator(_json_string)]


class _View(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _WithChoices(_View):
    """An element with choice elements ([x]). Every type a choice allows is listed, those no fact reads as `Any`:
    a resource with two values for one choice says two different things, and is left out whichever one is read."""

    @model_validator(mode="after")
    def _one_element_per_choice(self) -> Any:
        # Only elements the JSON gives can be present (each defaults to None), so a choice is looked at element by
        # element only when the JSON gives two of its names: this runs for hundreds of views a call, nearly all
        # giving one element of each choice.
        given = self.model_fields_set
        for choice in self.CHOICES:
            if len(given.intersection(choice)) > 1:
                present = [name for name in choice if getattr(self, name) is not None]
                if len(present) > 1:
                    raise ValueError(f"{' and '.join(present)} are both present; a choice element takes one")
        return self

    # The choice elements of the type, each as the names of all its elements (each defaulting to None).
    CHOICES: ClassVar[tuple[tuple[str, ...], ...]] = ()


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


class Range(_View):
    low: Optional[Quantity] = None
    high: Optional[Quantity] = None


class ReferenceRange(Range):
    """Observation.referenceRange: its low and high are the elements facts read."""


class Period(_View):
    start: Optional[DateTime] = None
    end: Optional[DateTime] = None


class TimingRepeat(_WithChoices):
    boundsPeriod: Optional[Period] = None
    boundsDuration: Any = None
    boundsRange: Any = None
    frequency: Optional[PositiveIntType] = None
    period: Optional[DecimalType] = None
    periodUnit: Optional[CodeType] = None

    CHOICES = (("boundsPeriod", "boundsDuration", "boundsRange"),)


class Timing(_View):
    repeat: Optional[TimingRepeat] = None


class DoseAndRate(_WithChoices):
    doseQuantity: Optional[Quantity] = None
    doseRange: Any = None

    CHOICES = (("doseQuantity", "doseRange"),)


class Dosage(_View):
    timing: Optional[Timing] = None
    doseAndRate: Optional[list[DoseAndRate]] = None


class DispenseRequest(_View):
    validityPeriod: Optional[Period] = None


class AdministrationDosage(_View):
    dose: Optional[Quantity] = None


class _Resource(_WithChoices):
    resourceType: str
    id: Optional[StringType] = None

    def get_resource_type(self) -> str:
        """As a `fhir.resources` model answers, so readers shared with draft orders need not tell them apart."""
        return self.resourceType


class _Event(_Resource):
    status: CodeType


class _MedicationEvent(_Event):
    # Read from the JSON by cds_hooks.record, which follows the reference.
    medicationCodeableConcept: Any = None
    medicationReference: Any = None

    CHOICES = (("medicationCodeableConcept", "medicationReference"),)


class _Effective(_MedicationEvent):
    effectiveDateTime: Optional[DateTime] = None
    effectivePeriod: Optional[Period] = None

    CHOICES = _MedicationEvent.CHOICES + (("effectiveDateTime", "effectivePeriod"),)


class Observation(_Event):
    code: CodeableConcept
    effectiveDateTime: Optional[DateTime] = None
    effectivePeriod: Optional[Period] = None
    effectiveInstant: Optional[Instant] = None
    effectiveTiming: Any = None
    issued: Optional[Instant] = None
    valueQuantity: Optional[Quantity] = None
    valueCodeableConcept: Optional[CodeableConcept] = None
    valueString: Optional[StringType] = None
    valueRatio: Optional[Ratio] = None
    valueBoolean: Any = None
    valueInteger: Any = None
    valueRange: Any = None
    valueSampledData: Any = None
    valueTime: Any = None
    valueDateTime: Any = None
    valuePeriod: Any = None
    referenceRange: Optional[list[ReferenceRange]] = None

    CHOICES = (
        ("effectiveDateTime", "effectivePeriod", "effectiveInstant", "effectiveTiming"),
        ("valueQuantity", "valueCodeableConcept", "valueString", "valueRatio", "valueBoolean", "valueInteger",
         "valueRange", "valueSampledData", "valueTime", "valueDateTime", "valuePeriod"),
    )


class MedicationAdministration(_Effective):
    dosage: Optional[AdministrationDosage] = None


class MedicationStatement(_Effective):
    statusReason: Optional[list[CodeableConcept]] = None
    dosage: Optional[list[Dosage]] = None


class MedicationRequest(_MedicationEvent):
    statusReason: Optional[CodeableConcept] = None
    authoredOn: Optional[DateTime] = None
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
    onsetDateTime: Optional[DateTime] = None
    onsetAge: Optional[Quantity] = None
    onsetPeriod: Optional[Period] = None
    onsetRange: Optional[Range] = None
    onsetString: Optional[StringType] = None
    # Read only for whether the condition has ended (a pregnancy that is over).
    abatementDateTime: Optional[DateTime] = None
    abatementAge: Optional[Quantity] = None
    abatementPeriod: Optional[Period] = None
    abatementRange: Optional[Range] = None
    abatementString: Optional[StringType] = None
    recordedDate: Optional[DateTime] = None

    CHOICES = (
        ("onsetDateTime", "onsetAge", "onsetPeriod", "onsetRange", "onsetString"),
        ("abatementDateTime", "abatementAge", "abatementPeriod", "abatementRange", "abatementString"),
    )

    @model_validator(mode="before")
    @classmethod
    def _only_types_the_choices_take(cls, data: Any) -> Any:
        # An onset or abatement of a type R4 does not have (STU3's abatementBoolean, a typo such as
        # abatementDatetime) would read as none: a pregnancy or heart failure that has ended would count as current.
        # Elsewhere a value of an unknown type reads as no value, which facts report as missing; here it would not.
        if isinstance(data, dict):
            for key in data:
                if isinstance(key, str) and key.startswith(("onset", "abatement")) and key not in _CONDITION_CHOICE_NAMES:
                    raise ValueError(f"{key} is not a type its choice element takes")
        return data


_CONDITION_CHOICE_NAMES = frozenset(name for choice in Condition.CHOICES for name in choice)


class Patient(_Resource):
    gender: Optional[CodeType] = None
    birthDate: Optional[Date] = None
