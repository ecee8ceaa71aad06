"""Large, realistic patient records and the CDS Hooks requests the benchmark sends.

Two patients, ~2,000 resources each, dated relative to the day the benchmark runs:
- `her2pos`: five and a half years of HER2-positive breast cancer (neoadjuvant AC then THP, residual disease
  and adjuvant T-DM1, metastatic recurrence on docetaxel-trastuzumab-pertuzumab then HP maintenance), with
  vitals and labs at every visit, LVEF every three months, HER2 tests, staging and disease status;
- `no-oncology`: nine years of diabetes and hypertension care, the same density of vitals and labs, no
  oncology data at all.

Each gets three requests (order-select, order-sign, patient-view), with full prefetch (what an EHR would
prefetch from the record through our templates) and with none (the service fetches from `fhirServer`).
Random values are seeded, so two runs on the same day send identical bodies.
"""
from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Iterator

from cds_hooks import cases
from cds_hooks.memory_fhir import InMemoryFhirStore
from cds_hooks.protocol.request import ORDER_HOOKS
from cds_hooks.services import service_for_hook

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
# Drugs the rules do not know are coded in the EHR's own formulary: the service must recognise them as
# "nothing to check" by code and by name, which is the path most medication records of a real chart take.
LOCAL_FORMULARY = "urn:oid:2.16.840.1.113883.3.9999.bench.formulary"
HOOKS = ("order-select", "order-sign", "patient-view")
PATIENTS = ("her2pos", "no-oncology")


@dataclass(frozen=True)
class Lab:
    code: str
    display: str
    unit: str
    low: float | None
    high: float | None
    typical: float
    spread: float


VITALS = (
    Lab("8867-4", "Heart rate", "/min", None, None, 76, 8),
    Lab("8480-6", "Systolic blood pressure", "mm[Hg]", None, None, 128, 10),
    Lab("8462-4", "Diastolic blood pressure", "mm[Hg]", None, None, 78, 6),
    Lab("8310-5", "Body temperature", "Cel", None, None, 36.7, 0.3),
    Lab("9279-1", "Respiratory rate", "/min", None, None, 16, 2),
    Lab("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", "%", None, None, 97, 1.2),
    Lab("39156-5", "Body mass index (BMI) [Ratio]", "kg/m2", None, None, 25, 0.4),
)
BLOOD_COUNT = (
    Lab("6690-2", "Leukocytes [#/volume] in Blood by Automated count", "10*3/uL", 4.0, 11.0, 6.2, 1.4),
    Lab("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 12.0, 15.5, 12.8, 0.8),
    Lab("4544-3", "Hematocrit [Volume Fraction] of Blood by Automated count", "%", 36, 46, 39, 2),
    Lab("751-8", "Neutrophils [#/volume] in Blood by Automated count", "10*3/uL", 1.8, 7.7, 3.9, 1.0),
    Lab("777-3", "Platelets [#/volume] in Blood by Automated count", "10*3/uL", 150, 400, 235, 35),
)
CHEMISTRY = (
    Lab("2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L", 135, 145, 139, 2),
    Lab("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", 3.5, 5.1, 4.2, 0.3),
    Lab("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", 0.5, 1.1, 0.8, 0.1),
    Lab("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL", 70, 99, 96, 12),
    Lab("1920-8", "AST [Enzymatic activity/volume] in Serum or Plasma", "U/L", 10, 40, 24, 5),
    Lab("1742-6", "ALT [Enzymatic activity/volume] in Serum or Plasma", "U/L", 7, 40, 22, 6),
    Lab("1975-2", "Bilirubin.total [Mass/volume] in Serum or Plasma", "mg/dL", 0.2, 1.2, 0.6, 0.15),
    Lab("6768-6", "Alkaline phosphatase [Enzymatic activity/volume] in Serum or Plasma", "U/L", 44, 147, 80, 15),
    Lab("1751-7", "Albumin [Mass/volume] in Serum or Plasma", "g/dL", 3.5, 5.0, 4.1, 0.3),
)
DIABETES_LABS = (
    Lab("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", 4.0, 5.6, 7.1, 0.4),
    Lab("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", None, 200, 185, 20),
    Lab("2085-9", "Cholesterol in HDL [Mass/volume] in Serum or Plasma", "mg/dL", 40, None, 48, 5),
    Lab("13457-7", "Cholesterol in LDL [Mass/volume] in Serum or Plasma by calculation", "mg/dL", None, 100, 105, 15),
)


class _Chart:
    """Accumulates one patient's resources with ids, subject references and dates filled in."""

    def __init__(self, patient_id: str, today: date, seed: int) -> None:
        self.patient_id = patient_id
        self.today = today
        self.random = random.Random(seed)
        self.resources: list[dict[str, Any]] = []
        self._counter = 0

    def day(self, days_ago: int) -> str:
        return (self.today - timedelta(days=days_ago)).isoformat()

    def add(self, resource: dict[str, Any]) -> dict[str, Any]:
        self._counter += 1
        resource_type = resource.pop("resourceType")
        if resource_type == "Patient":
            resource = {"resourceType": resource_type, "id": self.patient_id, **resource}
        else:
            resource = {"resourceType": resource_type, "id": f"{self.patient_id}-{self._counter}",
                        "subject": {"reference": f"Patient/{self.patient_id}"}, **resource}
        self.resources.append(resource)
        return resource

    def observation(self, code: str, display: str, days_ago: int, system: str = LOINC, category: str = "laboratory",
                    **value: Any) -> dict[str, Any]:
        return self.add({
            "resourceType": "Observation",
            "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": category}]}],
            "code": {"coding": [{"system": system, "code": code, "display": display}], "text": display},
            "effectiveDateTime": f"{self.day(days_ago)}T09:{self.random.randint(0, 59):02d}:00Z",
            "issued": f"{self.day(days_ago)}T11:00:00Z",
            **value,
        })

    def measured(self, lab: Lab, days_ago: int, category: str = "laboratory", value: float | None = None) -> dict[str, Any]:
        if value is None:
            value = round(max(0.0, self.random.gauss(lab.typical, lab.spread)), 1)
        extra: dict[str, Any] = {"valueQuantity": {"value": value, "unit": lab.unit, "system": UCUM, "code": lab.unit}}
        if lab.low is not None or lab.high is not None:
            limits = {name: {"value": limit, "unit": lab.unit, "system": UCUM, "code": lab.unit}
                      for name, limit in (("low", lab.low), ("high", lab.high)) if limit is not None}
            extra["referenceRange"] = [limits]
        return self.observation(lab.code, lab.display, days_ago, category=category, **extra)

    def coded(self, code: str, display: str, days_ago: int, answer: tuple[str, str, str], system: str = LOINC,
              category: str = "laboratory") -> dict[str, Any]:
        answer_system, answer_code, answer_display = answer
        return self.observation(code, display, days_ago, system=system, category=category, valueCodeableConcept={
            "coding": [{"system": answer_system, "code": answer_code, "display": answer_display}], "text": answer_display})

    def visit(self, days_ago: int, weight_kg: float, height_cm: float, labs: tuple[Lab, ...]) -> None:
        """One clinic or infusion visit: vital signs, weight, body surface area and the blood tests drawn."""
        for vital in VITALS:
            self.measured(vital, days_ago, category="vital-signs")
        weight = round(self.random.gauss(weight_kg, 0.6), 1)
        self.measured(Lab("29463-7", "Body weight", "kg", None, None, weight, 0), days_ago, "vital-signs", weight)
        bsa = round((height_cm * weight / 3600) ** 0.5, 2)  # Mosteller
        self.measured(Lab("8277-6", "Body surface area", "m2", None, None, bsa, 0), days_ago, "vital-signs", bsa)
        for lab in labs:
            self.measured(lab, days_ago)

    def condition(self, code: str, display: str, onset_days_ago: int, system: str = SNOMED, status: str = "active",
                  icd10: tuple[str, str] | None = None) -> dict[str, Any]:
        codings = [{"system": system, "code": code, "display": display}]
        if icd10:
            codings.append({"system": ICD10CM, "code": icd10[0], "display": icd10[1]})
        return self.add({
            "resourceType": "Condition",
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": status}]},
            "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]},
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category", "code": "problem-list-item"}]}],
            "code": {"coding": codings, "text": display},
            "onsetDateTime": self.day(onset_days_ago),
            "recordedDate": self.day(onset_days_ago),
        })

    def administration(self, medication: dict[str, Any], days_ago: int, dose: float, unit: str) -> dict[str, Any]:
        return self.add({
            "resourceType": "MedicationAdministration",
            "status": "completed",
            **medication,
            "effectiveDateTime": f"{self.day(days_ago)}T10:30:00Z",
            "dosage": {"route": {"text": "intravenous"}, "dose": {"value": dose, "unit": unit, "system": UCUM, "code": unit}},
        })

    def request(self, medication: dict[str, Any], start_days_ago: int, end_days_ago: int | None, status: str,
                dose: float, unit: str, every_weeks: int | None = None) -> dict[str, Any]:
        timing: dict[str, Any] = {"boundsPeriod": {"start": self.day(start_days_ago)}}
        if end_days_ago is not None:
            timing["boundsPeriod"]["end"] = self.day(end_days_ago)
        if every_weeks:
            timing.update({"frequency": 1, "period": every_weeks, "periodUnit": "wk"})
        else:
            timing.update({"frequency": 1, "period": 1, "periodUnit": "d"})
        return self.add({
            "resourceType": "MedicationRequest",
            "status": status,
            "intent": "order",
            **medication,
            "authoredOn": self.day(start_days_ago + 2),
            "requester": {"reference": "Practitioner/bench-oncologist"},
            "dosageInstruction": [{"timing": {"repeat": timing},
                                   "doseAndRate": [{"doseQuantity": {"value": dose, "unit": unit, "system": UCUM, "code": unit}}]}],
        })

    def statement(self, medication: dict[str, Any], start_days_ago: int, end_days_ago: int | None = None) -> dict[str, Any]:
        period = {"start": self.day(start_days_ago)}
        if end_days_ago is not None:
            period["end"] = self.day(end_days_ago)
        return self.add({
            "resourceType": "MedicationStatement",
            "status": "active" if end_days_ago is None else "completed",
            **medication,
            "effectivePeriod": period,
        })

    def bundle(self) -> dict[str, Any]:
        return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in self.resources]}


def rxnorm(code: str, name: str) -> dict[str, Any]:
    return {"medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": code, "display": name}], "text": name}}


def formulary(number: int, name: str) -> dict[str, Any]:
    return {"medicationCodeableConcept": {"coding": [{"system": LOCAL_FORMULARY, "code": f"F{number:05d}", "display": name}], "text": name}}


TRASTUZUMAB = rxnorm("224905", "trastuzumab")
PERTUZUMAB = rxnorm("1298944", "pertuzumab")
DOXORUBICIN = rxnorm("3639", "doxorubicin")
CYCLOPHOSPHAMIDE = rxnorm("3002", "cyclophosphamide")
PACLITAXEL = rxnorm("56946", "paclitaxel")
DOCETAXEL = rxnorm("72962", "docetaxel")
TDM1 = rxnorm("1371041", "ado-trastuzumab emtansine")
SUPPORTIVE = [formulary(n, name) for n, name in enumerate((
    "ondansetron 8 MG Oral Tablet", "dexamethasone 4 MG Oral Tablet", "loratadine 10 MG Oral Tablet",
    "pegfilgrastim 6 MG/0.6 ML Prefilled Syringe", "olanzapine 5 MG Oral Tablet", "lorazepam 0.5 MG Oral Tablet",
    "omeprazole 20 MG Delayed Release Oral Capsule", "prochlorperazine 10 MG Oral Tablet", "diphenhydramine 25 MG Injection",
    "famotidine 20 MG Injection", "lidocaine 2.5 % / prilocaine 2.5 % Topical Cream", "loperamide 2 MG Oral Capsule",
    "senna 8.6 MG Oral Tablet", "cholecalciferol 1000 UNT Oral Tablet", "calcium carbonate 500 MG Chewable Tablet",
    "acetaminophen 500 MG Oral Tablet", "oxycodone 5 MG Oral Tablet", "zoledronic acid 4 MG/100 ML Injection",
    "magic mouthwash Oral Suspension", "levothyroxine 50 MCG Oral Tablet",
), start=100)]
PRIMARY_CARE = [formulary(n, name) for n, name in enumerate((
    "metformin 1000 MG Oral Tablet", "lisinopril 20 MG Oral Tablet", "atorvastatin 40 MG Oral Tablet",
    "amlodipine 5 MG Oral Tablet", "empagliflozin 10 MG Oral Tablet", "aspirin 81 MG Delayed Release Oral Tablet",
    "insulin glargine 100 UNT/ML Pen Injector", "hydrochlorothiazide 12.5 MG Oral Tablet", "sertraline 50 MG Oral Tablet",
    "gabapentin 300 MG Oral Capsule",
), start=200)]


def her2pos_patient(today: date) -> dict[str, Any]:
    """A HER2-positive patient five and a half years into treatment, due for her next HP maintenance cycle."""
    chart = _Chart("bench-her2pos", today, seed=20)
    chart.add({"resourceType": "Patient", "name": [{"given": ["Morgan"], "family": "Bench-HER2"}], "gender": "female",
               "birthDate": "1969-03-14", "identifier": [{"system": "urn:oid:2.16.840.1.113883.3.9999.mrn", "value": "B-2000"}]})
    diagnosis, height = 2000, 165.0
    weight = lambda days_ago: 70 - 4 * (days_ago < 1800) + 2 * (days_ago < 800)  # noqa: E731  (lost weight on chemo, regained some)

    chart.condition("427685000", "HER2-positive carcinoma of breast", diagnosis, icd10=("C50.912", "Malignant neoplasm of unspecified site of left female breast"))
    chart.condition("128462008", "Secondary malignant neoplastic disease", 900, icd10=("C78.01", "Secondary malignant neoplasm of right lung"))
    for code, display, onset, status in (
        ("38341003", "Hypertensive disorder", 3000, "active"), ("55822004", "Hyperlipidemia", 2800, "active"),
        ("40930008", "Hypothyroidism", 2500, "active"), ("35489007", "Depressive disorder", 1900, "resolved"),
        ("422587007", "Nausea", 1990, "resolved"), ("271737000", "Anemia", 1950, "resolved"),
        ("62315008", "Diarrhea", 1000, "resolved"), ("68962001", "Muscle pain", 700, "resolved"),
        ("49727002", "Cough", 910, "resolved"), ("267036007", "Dyspnea", 905, "resolved"),
    ):
        chart.condition(code, display, onset, status=status)

    # Diagnosis work-up: HER2 by IHC and ISH, clinical staging; later yp staging after surgery.
    chart.coded("85319-2", "HER2 [Presence] in Breast cancer specimen by Immune stain", diagnosis - 3, (LOINC, "LA11843-2", "IHC score 3+"))
    chart.coded("85318-4", "ERBB2 gene duplication [Presence] in Breast cancer specimen by FISH", diagnosis - 5, (LOINC, "LA6576-8", "Positive"))
    chart.measured(Lab("49683-6", "ERBB2 gene copy number/Chromosome 17 copy number in Tissue by FISH", "{ratio}", None, None, 4.8, 0), diagnosis - 5, value=4.8)
    chart.coded("48676-1", "HER2 [Interpretation] in Tissue", diagnosis - 5, (LOINC, "LA6576-8", "Positive"))
    for code, display, answer in (("399537006", "Clinical stage group", "Stage IIB"), ("399504009", "Clinical T category", "cT2"),
                                  ("399534004", "Clinical N category", "cN1"), ("399387003", "Clinical M category", "cM0")):
        chart.coded(code, display, diagnosis - 8, (SNOMED, "261614003", answer), system=SNOMED, category="exam")
    for code, display, answer in (("1222594003", "yp stage group", "Stage IIA"), ("1222595002", "ypT category", "ypT1c"),
                                  ("1222596001", "ypN category", "ypN1a")):
        chart.coded(code, display, 1830, (SNOMED, "261614003", answer), system=SNOMED, category="exam")
    chart.coded("85319-2", "HER2 [Presence] in Breast cancer specimen by Immune stain", 895, (LOINC, "LA11843-2", "IHC score 3+"))

    # LVEF by echo every three months from baseline, the last one seven weeks ago.
    for days_ago in range(diagnosis - 10, 40, -91):
        chart.measured(Lab("18043-0", "LVEF by US", "%", None, None, 0, 0), days_ago, "imaging", value=round(chart.random.uniform(57, 64)))
    # Disease status every three months since recurrence: worsened at recurrence, then stable.
    for days_ago in range(900, 30, -91):
        trend = ("271299001", "Patient's condition worsened") if days_ago == 900 else ("359746009", "Patient's condition stable")
        chart.coded("97509-4", "Cancer disease progression", days_ago, (SNOMED, *trend, ), category="exam")

    # Treatment, each line with its orders, administrations and a visit (vitals and labs) per dose.
    labs = BLOOD_COUNT + CHEMISTRY
    chart.request(DOXORUBICIN, diagnosis - 12, diagnosis - 54, "completed", 60, "mg/m2", every_weeks=2)
    chart.request(CYCLOPHOSPHAMIDE, diagnosis - 12, diagnosis - 54, "completed", 600, "mg/m2", every_weeks=2)
    for cycle in range(4):  # dose-dense AC
        day = diagnosis - 12 - 14 * cycle
        chart.visit(day, weight(day), height, labs)
        bsa = round((height * weight(day) / 3600) ** 0.5, 2)
        chart.administration(DOXORUBICIN, day, round(60 * bsa), "mg")
        chart.administration(CYCLOPHOSPHAMIDE, day, round(600 * bsa), "mg")
    thp_start = diagnosis - 68
    chart.request(PACLITAXEL, thp_start, thp_start - 77, "completed", 80, "mg/m2", every_weeks=1)
    chart.request(TRASTUZUMAB, thp_start, thp_start - 63, "completed", 6, "mg/kg", every_weeks=3)
    chart.request(PERTUZUMAB, thp_start, thp_start - 63, "completed", 420, "mg", every_weeks=3)
    for week in range(12):
        day = thp_start - 7 * week
        chart.visit(day, weight(day), height, labs)
        chart.administration(PACLITAXEL, day, round(80 * 1.75), "mg")
        if week % 3 == 0:
            chart.administration(TRASTUZUMAB, day, round((8 if week == 0 else 6) * weight(day)), "mg")
            chart.administration(PERTUZUMAB, day, 840 if week == 0 else 420, "mg")
    tdm1_start = 1800
    chart.request(TDM1, tdm1_start, tdm1_start - 273, "completed", 3.6, "mg/kg", every_weeks=3)
    for cycle in range(14):
        day = tdm1_start - 21 * cycle
        chart.visit(day, weight(day), height, labs)
        chart.administration(TDM1, day, round(3.6 * weight(day)), "mg")
    # Metastatic recurrence 900 days ago: docetaxel x6 with trastuzumab and pertuzumab, then HP every 3 weeks.
    first_line = 882
    chart.request(DOCETAXEL, first_line, first_line - 105, "completed", 75, "mg/m2", every_weeks=3)
    chart.request(TRASTUZUMAB, first_line, None, "active", 6, "mg/kg", every_weeks=3)
    chart.request(PERTUZUMAB, first_line, None, "active", 420, "mg", every_weeks=3)
    for day in range(first_line, 20, -21):
        chart.visit(day, weight(day), height, labs)
        if day > first_line - 106:
            chart.administration(DOCETAXEL, day, round(75 * 1.8), "mg")
        chart.administration(TRASTUZUMAB, day, round((8 if day == first_line else 6) * weight(day)), "mg")
        chart.administration(PERTUZUMAB, day, 840 if day == first_line else 420, "mg")
    # Visits between cycles (toxicity checks, survivorship) and primary care before the diagnosis.
    for day in list(range(1500, 920, -60)) + list(range(3300, diagnosis + 30, -180)):
        chart.visit(day, weight(day), height, labs)

    for index, medication in enumerate(SUPPORTIVE):
        start = diagnosis - 10 - 40 * index
        chart.statement(medication, start, None if index % 3 == 0 else start - 120)
        chart.request(medication, start, None if index % 3 == 0 else start - 120, "active" if index % 3 == 0 else "completed", 1, "{tbl}")
    return chart.bundle()


def no_oncology_patient(today: date) -> dict[str, Any]:
    """Nine years of diabetes and hypertension care: as many resources, none of them about cancer."""
    chart = _Chart("bench-no-oncology", today, seed=7)
    chart.add({"resourceType": "Patient", "name": [{"given": ["Riley"], "family": "Bench-Primary-Care"}], "gender": "male",
               "birthDate": "1961-09-02", "identifier": [{"system": "urn:oid:2.16.840.1.113883.3.9999.mrn", "value": "B-1000"}]})
    for code, display, onset, status in (
        ("44054006", "Diabetes mellitus type 2", 3300, "active"), ("38341003", "Hypertensive disorder", 3300, "active"),
        ("55822004", "Hyperlipidemia", 3000, "active"), ("35489007", "Depressive disorder", 2000, "active"),
        ("195967001", "Asthma", 3000, "active"), ("40055000", "Chronic sinusitis", 1500, "resolved"),
        ("239873007", "Osteoarthritis of knee", 1200, "active"), ("267036007", "Dyspnea", 400, "resolved"),
        ("49727002", "Cough", 380, "resolved"), ("62315008", "Diarrhea", 200, "resolved"),
        ("271737000", "Anemia", 150, "resolved"), ("40930008", "Hypothyroidism", 900, "active"),
    ):
        chart.condition(code, display, onset, status=status)
    for day in range(3285, 0, -40):
        chart.visit(day, 92 - day / 800, 178.0, BLOOD_COUNT + CHEMISTRY + DIABETES_LABS)
    for index, medication in enumerate(PRIMARY_CARE * 2):
        start = 3200 - 150 * index
        chart.statement(medication, start, None if index >= len(PRIMARY_CARE) else start - 1000)
        chart.request(medication, start, None if index >= len(PRIMARY_CARE) else start - 1000, "active", 1, "{tbl}")
    return chart.bundle()


def draft_orders(patient_id: str, today: date, oncology: bool) -> list[dict[str, Any]]:
    """Today's unsigned orders: the next HP maintenance cycle with an antiemetic, or a statin refill."""
    def order(order_id: str, medication: dict[str, Any], dose: float, unit: str, every_weeks: int | None) -> dict[str, Any]:
        repeat: dict[str, Any] = {"boundsPeriod": {"start": (today + timedelta(days=1)).isoformat()}}
        repeat.update({"frequency": 1, "period": every_weeks, "periodUnit": "wk"} if every_weeks else {"frequency": 1, "period": 1, "periodUnit": "d"})
        return {
            "resourceType": "MedicationRequest", "id": order_id, "status": "draft", "intent": "order", **medication,
            "subject": {"reference": f"Patient/{patient_id}"}, "authoredOn": today.isoformat(),
            "dosageInstruction": [{"timing": {"repeat": repeat}, "route": {"text": "intravenous" if every_weeks else "oral"},
                                   "doseAndRate": [{"doseQuantity": {"value": dose, "unit": unit, "system": UCUM, "code": unit}}]}],
        }

    if oncology:
        return [order("draft-trastuzumab", TRASTUZUMAB, 408, "mg", 3), order("draft-pertuzumab", PERTUZUMAB, 420, "mg", 3),
                order("draft-ondansetron", SUPPORTIVE[0], 8, "mg", None)]
    return [order("draft-atorvastatin", PRIMARY_CARE[2], 40, "mg", None), order("draft-lisinopril", PRIMARY_CARE[1], 20, "mg", None)]


def hook_request(bundle: dict[str, Any], hook: str, today: date, fhir_server: str | None) -> dict[str, Any]:
    """The CDS Hooks request an EHR sends: full prefetch from the record, or none and a fhirServer to fetch from."""
    store = InMemoryFhirStore.from_bundle(bundle)
    patient_id = store.patient_id()
    drafts = draft_orders(patient_id, today, oncology=patient_id == "bench-her2pos") if hook in ORDER_HOOKS else None
    request = cases.hook_request(
        hook, patient_id, drafts, [f"MedicationRequest/{drafts[0]['id']}"] if drafts else None,
        user_id="Practitioner/bench-oncologist",
        hook_instance=str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench/{patient_id}/{hook}")),
    )
    request["context"]["encounterId"] = "bench-visit"
    if fhir_server is not None:
        request["fhirServer"] = fhir_server
        request["fhirAuthorization"] = {"access_token": "bench-token", "token_type": "Bearer", "expires_in": 300,
                                        "scope": "patient/*.read", "subject": "bench"}
    else:
        service_id = service_for_hook(hook).id
        request["prefetch"] = cases.prefetch_from_store(store, service_id, request)
    return request


def patient_bundle(name: str, today: date) -> dict[str, Any]:
    return {"her2pos": her2pos_patient, "no-oncology": no_oncology_patient}[name](today)


def write_bodies(folder: Path, bundles: dict[str, dict[str, Any]], today: date, fhir_server: str) -> Iterator[tuple[str, str, str, Path]]:
    """Write every request body for the records (by patient name) to `folder`; yields (patient, hook, prefetch mode, path)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, bundle in bundles.items():
        for hook in HOOKS:
            for mode, server in (("full", None), ("none", fhir_server)):
                path = folder / f"{name}-{hook}-{mode}.json"
                path.write_bytes(json.dumps(hook_request(bundle, hook, today, server), separators=(",", ":")).encode("utf-8"))
                yield name, hook, mode, path


if __name__ == "__main__":
    import sys
    from collections import Counter

    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("bench/out")
    records = {name: patient_bundle(name, date.today()) for name in PATIENTS}
    for patient, hook, mode, path in write_bodies(target, records, date.today(), "http://127.0.0.1:9999/fhir"):
        print(f"{path}: {path.stat().st_size / 1e6:.2f} MB")
    for name, record in records.items():
        (target / f"{name}-record.json").write_text(json.dumps(record), "utf-8")
        counts = Counter(entry["resource"]["resourceType"] for entry in record["entry"])
        print(name, sum(counts.values()), dict(counts))
