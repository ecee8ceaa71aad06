"""The typed record: what is kept, what is dropped before modelling, and how client shapes are normalised."""
from __future__ import annotations

import copy

import pytest

from datetime import date
from urllib.parse import parse_qsl

from cds_hooks import fhir_views, terminology
from cds_hooks.facts.observations import effective_day
from cds_hooks.protocol.errors import InvalidRequest
from cds_hooks.memory_fhir import searchset
from cds_hooks.prefetch import PrefetchResources, SentBundle
from cds_hooks.record import OBSERVATION_VALUE_SETS, build_record, normalise_medication_order
from cds_hooks.services import OBSERVATION_KEYS, PREFETCH
from cds_hooks.terminology import value_set_codes

RX = "http://www.nlm.nih.gov/research/umls/rxnorm"


def observation(oid, code, system="http://loinc.org", status="final", **when):
    return {"resourceType": "Observation", "id": oid, "status": status, "code": {"coding": [{"system": system, "code": code}]},
            "subject": {"reference": "Patient/p"}, "valueQuantity": {"value": 60, "unit": "%"}, **when}


def kept_ids(record):
    return {o.id for value_set in OBSERVATION_VALUE_SETS for o in record.observations(value_set)}


def unreadable(record):
    return [resource.reference for resource in record.unreadable]


def test_only_observations_the_rules_read_are_kept():
    resources = [observation("lvef", "10230-1"), observation("glucose", "2345-7"), observation("race", "2106-3", system="urn:oid:2.16.840.1.113883.6.238"),
                 observation("void", "10230-1", status="entered-in-error")]
    record = build_record({"obs": resources}, [])
    assert kept_ids(record) == {"lvef"}


def test_observations_with_malformed_codes_are_not_kept_and_do_not_break_the_others():
    malformed = [{**observation(f"bad-{index}", "10230-1"), "code": code} for index, code in enumerate(
        ["abc", ["10230-1"], {"coding": "10230-1"}, {"coding": [{"system": ["http://loinc.org"], "code": "10230-1"}]}]
    )]
    record = build_record({"obs": [*malformed, observation("lvef", "10230-1")]}, [])
    assert kept_ids(record) == {"lvef"}


@pytest.mark.parametrize("coding", [
    "10230-1", None, ["http://loinc.org", "10230-1"], {"system": {"uri": "http://loinc.org"}, "code": "10230-1"},
    {"system": "http://loinc.org", "code": ["10230-1"]}, {"code": "10230-1"}, {"system": "http://loinc.org", "code": " 10230-1"},
])
def test_an_observation_whose_one_coding_is_no_kept_code_as_written_is_not_kept(coding):
    # One coding, nearly every Observation, is looked up on its own path (record._kept_value_sets).
    record = build_record({"obs": [{**observation("bad", "10230-1"), "code": {"coding": [coding]}}, observation("lvef", "10230-1")]}, [])
    assert kept_ids(record) == {"lvef"}


def test_an_observation_coded_in_two_kept_value_sets_is_in_both_once_and_never_when_entered_in_error():
    codings = [{"system": "http://loinc.org", "code": "10230-1"}, {"system": "http://loinc.org", "code": "29463-7"}]
    both = {**observation("both", "10230-1"), "code": {"coding": codings}}
    void = {**observation("void", "10230-1", status="entered-in-error"), "code": {"coding": codings}}
    record = build_record({"a": [both, void], "b": [dict(both)]}, [])
    assert [o.id for o in record.observations("lvef")] == [o.id for o in record.observations("body_weight")] == ["both"]


def test_a_coding_not_as_written_counts_only_beside_a_kept_code_as_written():
    # Kept codes are matched as written; once an Observation is kept, each of its other codings adds the value
    # sets terminology reads it in (" 29463-7 " is a weight code there, and not a valid FHIR code in the model).
    spaced = {"system": "http://loinc.org", "code": " 29463-7 "}
    alone = {**observation("alone", "29463-7"), "code": {"coding": [spaced]}}
    beside = {**observation("beside", "10230-1"), "code": {"coding": [{"system": "http://loinc.org", "code": "10230-1"}, spaced]}}
    record = build_record({"obs": [alone, beside]}, [])
    assert list(record.observations("body_weight")) == []
    assert unreadable(record) == ["Observation/beside"]


def test_observations_are_modelled_only_when_read():
    broken = observation("bad", "29463-7", effectiveDateTime="2026-11-01", valueQuantity={"value": "heavy"})
    record = build_record({"obs": [broken, observation("lvef", "10230-1")]}, [])
    assert unreadable(record) == []
    assert [o.id for o in record.observations("lvef")] == ["lvef"]
    assert unreadable(record) == []
    assert list(record.observations("body_weight")) == []
    assert unreadable(record) == ["Observation/bad"]


def test_a_series_is_newest_first_by_the_day_the_model_gives():
    dated = [
        observation("partial-month", "10230-1", effectiveDateTime="2026-03"),
        observation("undated", "10230-1"),
        observation("offset", "10230-1", effectiveDateTime="2026-03-01T23:30:00-05:00"),
        observation("year", "10230-1", effectiveDateTime="2026"),
        observation("period", "10230-1", effectivePeriod={"start": "2026-03-02"}),
        observation("issued", "10230-1", issued="2026-02-27T08:00:00+14:00"),
        observation("instant", "10230-1", effectiveInstant="2026-03-05T00:10:00Z", issued="2026-01-01T00:00:00Z"),
        observation("same-day", "10230-1", effectiveDateTime="2026-03-01"),
    ]
    series = list(build_record({"obs": dated}, []).observations("lvef"))
    # Ties keep record order, as a stable sort of the models by their effective day would.
    assert [o.id for o in series] == [o.id for o in sorted(series, key=lambda o: effective_day(o) or date.min, reverse=True)]
    assert [o.id for o in series] == ["instant", "period", "partial-month", "offset", "same-day", "issued", "year", "undated"]


def test_a_series_read_between_two_days_skips_newer_and_stops_at_older():
    weights = [observation(f"w{day}", "29463-7", effectiveDateTime=f"2026-11-{day:02d}") for day in (1, 8, 15, 22)]
    record = build_record({"obs": weights + [observation("undated", "29463-7")]}, [])
    assert [o.id for o in record.observations("body_weight", newest=date(2026, 11, 16), oldest=date(2026, 11, 8))] == ["w15", "w8"]
    assert [o.id for o in record.observations("body_weight", newest=date(2026, 11, 16))] == ["w15", "w8", "w1", "undated"]


def test_a_value_set_the_record_does_not_keep_is_an_error():
    with pytest.raises(KeyError):
        list(build_record({}, []).observations("her2_serum"))


def test_medications_are_kept_only_when_they_normalise_to_a_known_ingredient():
    statements = [
        {"resourceType": "MedicationStatement", "id": "dox", "status": "active", "subject": {"reference": "Patient/p"},
         "medicationCodeableConcept": {"coding": [{"system": RX, "code": "3639"}]}},
        {"resourceType": "MedicationStatement", "id": "aspirin", "status": "active", "subject": {"reference": "Patient/p"},
         "medicationCodeableConcept": {"text": "aspirin"}},
    ]
    record = build_record({"statements": statements}, [])
    assert [(m.reference, sorted(m.match.ingredients)) for m in record.medications] == [("MedicationStatement/dox", ["doxorubicin"])]


def test_medication_reference_is_resolved_from_contained_and_included_resources():
    medication = {"resourceType": "Medication", "id": "m1", "code": {"coding": [{"system": RX, "code": "224905"}]}}
    requests = [
        {"resourceType": "MedicationRequest", "id": "r1", "status": "active", "intent": "order", "subject": {"reference": "Patient/p"},
         "medicationReference": {"reference": "Medication/m1"}},
        {"resourceType": "MedicationRequest", "id": "r2", "status": "active", "intent": "order", "subject": {"reference": "Patient/p"},
         "contained": [{"resourceType": "Medication", "id": "c", "code": {"coding": [{"system": RX, "code": "3995"}]}}],
         "medicationReference": {"reference": "#c"}},
    ]
    record = build_record({"requests": requests + [medication]}, [])
    assert {m.reference: sorted(m.match.ingredients) for m in record.medications} == {
        "MedicationRequest/r1": ["trastuzumab"], "MedicationRequest/r2": ["epirubicin"],
    }


@pytest.mark.parametrize("contained", [5, {"resourceType": "Medication", "id": "c"}, "c"])
def test_a_contained_element_that_is_not_an_array_names_no_medication(contained):
    # A number there answered 500.
    request = {"resourceType": "MedicationRequest", "id": "r", "status": "active", "intent": "order", "subject": {"reference": "Patient/p"},
               "contained": contained, "medicationReference": {"reference": "#c"}}
    assert build_record({"requests": [request]}, []).medications == ()


def test_same_resource_from_two_prefetch_keys_counts_once():
    lvef = observation("lvef", "10230-1")
    assert len(list(build_record({"a": [lvef], "b": [dict(lvef)]}, []).observations("lvef"))) == 1


def test_invalid_resource_is_left_out_and_reported():
    broken = observation("bad", "10230-1")
    broken["effectiveDateTime"] = "not a date"
    record = build_record({"obs": [broken, observation("ok", "10230-1")]}, [])
    assert [o.id for o in record.observations("lvef")] == ["ok"]
    assert unreadable(record) == ["Observation/bad"]


def administration(aid, **elements):
    return {"resourceType": "MedicationAdministration", "id": aid, "status": "completed", "subject": {"reference": "Patient/p"},
            "medicationCodeableConcept": {"coding": [{"system": RX, "code": "224905"}]}, "effectiveDateTime": "2026-11-01",
            "dosage": {"dose": {"value": 420, "unit": "mg"}}, **elements}


def test_the_medication_history_is_read_through_views_of_the_elements_facts_read():
    (given,) = build_record({"administrations": [administration("a")]}, []).medications
    assert given.resource.get_resource_type() == "MedicationAdministration"
    assert given.resource.effectiveDateTime == date(2026, 11, 1)
    assert float(given.resource.dosage.dose.value) == 420 and given.resource.dosage.dose.unit == "mg"


def test_an_error_in_an_element_no_fact_reads_does_not_hide_a_dose_given():
    # A full R4 model rejects the whole administration for a malformed note; the dose was still given.
    record = build_record({"administrations": [administration("a", note="not a list of annotations", unknownElement=1)]}, [])
    assert [m.reference for m in record.medications] == ["MedicationAdministration/a"]
    assert unreadable(record) == []


@pytest.mark.parametrize("elements", [
    {"effectiveDateTime": "1 November"},
    {"effectivePeriod": {"start": "2026-11-01"}},  # and effectiveDateTime: a choice element with two values
    {"dosage": {"dose": {"value": "four hundred"}}},
    {"status": None},
])
def test_a_medication_record_unreadable_where_facts_read_it_is_left_out_and_reported(elements):
    resource = {key: value for key, value in administration("bad", **elements).items() if value is not None}
    record = build_record({"administrations": [resource, administration("ok")]}, [])
    assert [m.reference for m in record.medications] == ["MedicationAdministration/ok"]
    assert unreadable(record) == ["MedicationAdministration/bad"]


@pytest.mark.parametrize("when", [
    {"effectiveDateTime": 1793491200},  # fhir_core would read epoch seconds: 2026-11-01
    {"effectiveDateTime": 20261110},  # ... and this as a day in 1970
    {"effectivePeriod": {"start": 1793491200}},
    {"issued": 1793491200000},
])
def test_a_date_written_as_a_json_number_is_unreadable_not_a_guess(when):
    # The series is ordered by the day read from the JSON string before modelling; a number has no such day, and
    # was ordered as undated, after older results, while the model gave it a date.
    older = observation("older", "10230-1", effectiveDateTime="2026-06-01")
    record = build_record({"obs": [older, observation("number", "10230-1", **when)]}, [])
    assert [o.id for o in record.observations("lvef")] == ["older"]
    assert unreadable(record) == ["Observation/number"]


DAYS_AS_WRITTEN = [
    {"effectiveDateTime": value} for value in (
        "2026", "2026-03", "2026-03-01", "2026-03-01T00:00:00Z", "2026-03-01T23:59:59-12:00", "2026-03-01T00:30:00+14:00",
        "2026-03-01T10:00:00.123456+05:30", "2026-02-29", "2026-3-1", "2026-03-01T25:00:00Z", "March 2026", "",
    )
] + [
    {"effectivePeriod": {"start": "2026-03-01T08:00:00+01:00"}}, {"effectivePeriod": {"end": "2026-03-01"}},
    {"effectiveInstant": "2026-03-01T08:00:00Z"}, {"effectiveInstant": "2026-03-01"}, {"issued": "2026-03-01T08:00:00-03:00"}, {},
]


@pytest.mark.parametrize("when", DAYS_AS_WRITTEN)
def test_the_day_a_series_is_ordered_by_is_the_day_the_model_gives(when):
    (entry,) = build_record({"obs": [observation("o", "10230-1", **when)]}, []).observation_index.series("lvef")
    model = entry.model()
    if model is not None:
        assert entry.day == effective_day(model)


@pytest.mark.parametrize("resource", [
    observation("o", "10230-1", valueInteger=60),  # besides its valueQuantity
    observation("o", "10230-1", effectiveDateTime="2026-11-01", effectiveTiming={"event": ["2026-11-01"]}),
    administration("o", medicationReference={"reference": "Medication/m"}),
    {"resourceType": "MedicationStatement", "id": "o", "status": "completed", "effectiveDateTime": "2026-11-01",
     "medicationCodeableConcept": {"coding": [{"system": RX, "code": "224905"}]},
     "dosage": [{"doseAndRate": [{"doseQuantity": {"value": 420, "unit": "mg"}, "doseRange": {"low": {"value": 840, "unit": "mg"}}}]}]},
    {"resourceType": "MedicationRequest", "id": "o", "status": "active", "intent": "order",
     "medicationCodeableConcept": {"coding": [{"system": RX, "code": "224905"}]},
     "dosageInstruction": [{"timing": {"repeat": {"boundsPeriod": {"start": "2026-11-01"}, "boundsDuration": {"value": 1, "unit": "a"}}}}]},
], ids=["value", "effective", "medication", "dose", "bounds"])
def test_a_choice_element_with_two_values_leaves_the_resource_out_whichever_one_facts_read(resource):
    record = build_record({"resources": [resource]}, [])
    assert list(record.observations("lvef")) == [] and record.medications == ()
    assert unreadable(record) == [f"{resource['resourceType']}/o"]


def test_an_observation_with_two_values_is_left_out_and_reported():
    both = observation("both", "10230-1", effectiveDateTime="2026-11-01", valueString="normal")
    record = build_record({"obs": [both, observation("ok", "10230-1")]}, [])
    assert [o.id for o in record.observations("lvef")] == ["ok"]
    assert unreadable(record) == ["Observation/both"]


def test_a_choice_element_given_once_and_once_as_null_is_read():
    record = build_record({"administrations": [administration("a", effectivePeriod=None, medicationReference=None)]}, [])
    assert [m.reference for m in record.medications] == ["MedicationAdministration/a"]
    assert unreadable(record) == []


def test_every_element_of_a_views_choice_defaults_to_none():
    # The views look for a second value of a choice only among the elements the JSON gives: one it does not give
    # must read as None.
    views = [view for view in vars(fhir_views).values() if isinstance(view, type) and issubclass(view, fhir_views._WithChoices)]
    assert {"MedicationAdministration", "Observation", "Condition", "TimingRepeat", "DoseAndRate"} <= {view.__name__ for view in views}
    for view in views:
        for name in (name for choice in view.CHOICES for name in choice):
            assert view.model_fields[name].default is None and view.model_fields[name].default_factory is None, (view, name)


def condition(cid, value_set="breast_cancer", **elements):
    system, code = sorted(value_set_codes(value_set))[0]
    return {"resourceType": "Condition", "id": cid, "subject": {"reference": "Patient/p"},
            "code": {"coding": [{"system": system, "code": code}]}, "onsetDateTime": "2021-03-04", **elements}


def test_conditions_and_the_patient_are_read_through_views_of_the_elements_facts_read():
    patient = {"resourceType": "Patient", "id": "p", "gender": "female", "birthDate": "1980-02-03"}
    record = build_record({"patient": [patient], "conditions": [condition("c", recordedDate="2021-03-05")]}, [])
    assert (record.patient.gender, record.patient.birthDate) == ("female", date(1980, 2, 3))
    (kept,) = record.conditions
    assert (kept.id, kept.onsetDateTime, kept.recordedDate, kept.abatementDateTime) == ("c", date(2021, 3, 4), date(2021, 3, 5), None)


def test_an_error_in_an_element_no_fact_reads_does_not_hide_a_condition_or_the_patients_age():
    # A full R4 model rejects both: a Condition needs a subject, and telecom is a list of ContactPoints.
    patient = {"resourceType": "Patient", "id": "p", "gender": "female", "birthDate": "1980-02-03", "telecom": "555-0100"}
    without_subject = {key: value for key, value in condition("c").items() if key != "subject"}
    record = build_record({"patient": [patient], "conditions": [without_subject]}, [])
    assert record.patient.birthDate == date(1980, 2, 3)
    assert [c.id for c in record.conditions] == ["c"]
    assert unreadable(record) == []


def test_a_patient_unreadable_where_facts_read_it_is_left_out_and_reported():
    patient = {"resourceType": "Patient", "id": "p", "gender": "female", "birthDate": "3 February 1980"}
    record = build_record({"patient": [patient]}, [])
    assert record.patient is None
    assert unreadable(record) == ["Patient/p"]


@pytest.mark.parametrize("elements", [
    {"onsetDateTime": "spring 2021"},
    {"onsetString": "spring 2021"},  # and onsetDateTime: a choice element with two values
    {"abatementDateTime": "2022-01-01", "abatementString": "after delivery"},
    {"clinicalStatus": "active"},
    {"stage": [{"summary": {"text": ["Grade 3"]}}]},
    {"abatementBoolean": True},  # STU3: read as no end at all, it would keep a past pregnancy current
    {"abatementDatetime": "2022-01-01"},
    {"verificationStatus": {"coding": 5}},  # it answered 500 before the views were reached
])
def test_a_condition_unreadable_where_facts_read_it_is_left_out_and_reported(elements):
    record = build_record({"conditions": [condition("bad", **elements), condition("ok")]}, [])
    assert [c.id for c in record.conditions] == ["ok"]
    assert unreadable(record) == ["Condition/bad"]


def test_an_unreadable_resource_is_named_as_the_record_names_it():
    # The clinician has to find it in the chart: the medication's text, else its display, else the ingredient.
    medications = [
        administration("text", effectiveDateTime="1 November", medicationCodeableConcept={
            "coding": [{"system": RX, "code": "3639", "display": "doxorubicin"}], "text": "Adriamycin 50 mg"}),
        administration("display", effectiveDateTime="1 November", medicationCodeableConcept={
            "coding": [{"system": RX, "code": "3639", "display": "doxorubicin"}]}),
        administration("code-only", effectiveDateTime="1 November"),
    ]
    lvef = observation("lvef", "10230-1", effectiveDateTime="1 November")
    lvef["code"]["coding"][0]["display"] = "Left ventricular Ejection fraction"
    patient = {"resourceType": "Patient", "id": "p", "birthDate": "3 February 1980"}
    named = condition("named", onsetDateTime="spring 2021")
    named["code"]["text"] = "Breast cancer, left"
    conditions = [named, condition("coded-only", onsetDateTime="spring 2021")]
    record = build_record({"meds": medications, "obs": [lvef], "patient": [patient], "conditions": conditions}, [])
    list(record.observations("lvef"))
    assert [(resource.reference, resource.name) for resource in record.unreadable] == [
        ("MedicationAdministration/text", "Adriamycin 50 mg"),
        ("MedicationAdministration/display", "doxorubicin"),
        ("MedicationAdministration/code-only", "trastuzumab"),
        ("Patient/p", "the patient's sex and date of birth"),
        ("Condition/named", "Breast cancer, left"),
        ("Condition/coded-only", "an unnamed Condition"),
        ("Observation/lvef", "Left ventricular Ejection fraction"),
    ]


def test_kept_observation_codes_are_matched_as_written():
    # record.py keeps Observations by (system, code) exactly as written, before any model. ICD-10-CM codes are
    # matched after normalising (dots, case) and by category prefix, which that filter would miss.
    assert not {name for name, _ in terminology._ICD10CM_PREFIXES} & set(OBSERVATION_VALUE_SETS)
    assert not [(value_set, code) for value_set in OBSERVATION_VALUE_SETS
                for system, code in value_set_codes(value_set) if system == terminology.ICD10CM]


def test_sandbox_single_object_category_and_reason_become_arrays():
    order = normalise_medication_order({"resourceType": "MedicationRequest", "id": "d", "category": {"text": "community"},
                                        "reasonCode": {"text": "cancer"}, "subject": {"reference": "Patient/p"}})
    assert order["category"] == [{"text": "community"}] and order["reasonCode"] == [{"text": "cancer"}]
    assert order["intent"] == "order" and order["status"] == "draft"


def test_dstu2_medication_order_becomes_an_r4_request():
    order = normalise_medication_order({
        "resourceType": "MedicationOrder", "id": "o", "patient": {"reference": "Patient/p"}, "dateWritten": "2026-11-22",
        "reasonCodeableConcept": {"text": "cancer"}, "dosageInstruction": [{"doseQuantity": {"value": 8, "unit": "mg/kg"}}],
    })
    assert order["resourceType"] == "MedicationRequest"
    assert order["subject"] == {"reference": "Patient/p"} and order["authoredOn"] == "2026-11-22"
    assert order["reasonCode"] == [{"text": "cancer"}]
    assert order["dosageInstruction"] == [{"doseAndRate": [{"doseQuantity": {"value": 8, "unit": "mg/kg"}}]}]


def test_dstu2_timing_units_become_the_r4_names():
    dstu2 = {
        "resourceType": "MedicationOrder", "id": "o", "patient": {"reference": "Patient/p"},
        "medicationCodeableConcept": {"coding": [{"system": RX, "code": "224905"}]},
        "dosageInstruction": [{"timing": {"repeat": {"frequency": 1, "period": 3, "periodUnits": "wk",
                                                     "duration": 30, "durationUnits": "min"}}}],
    }
    assert normalise_medication_order(dstu2)["dosageInstruction"][0]["timing"] == {
        "repeat": {"frequency": 1, "period": 3, "periodUnit": "wk", "duration": 30, "durationUnit": "min"}}
    (draft,) = build_record({}, [dstu2]).draft_orders
    assert draft.resource.dosageInstruction[0].timing.repeat.periodUnit == "wk"


def test_draft_orders_keep_the_clients_reference_and_text():
    drafts = [{"resourceType": "MedicationOrder", "id": "o", "patient": {"reference": "Patient/p"},
               "medicationCodeableConcept": {"text": "Kadcyla 160 mg"}}]
    (order,) = build_record({}, drafts).draft_orders
    assert order.reference == "MedicationOrder/o"
    assert order.text == "Kadcyla 160 mg"
    assert order.match.ingredients == frozenset({"ado_trastuzumab_emtansine"})


def test_unreadable_draft_order_is_a_400_naming_the_order():
    drafts = [{"resourceType": "MedicationRequest", "id": "d", "subject": {"reference": "Patient/p"}, "authoredOn": "yesterday",
               "medicationCodeableConcept": {"text": "trastuzumab"}}]
    with pytest.raises(InvalidRequest) as raised:
        build_record({}, drafts)
    assert "MedicationRequest/d" in raised.value.message


TRASTUZUMAB_DRAFT = {
    "resourceType": "MedicationRequest", "id": "d", "subject": {"reference": "Patient/p"}, "authoredOn": "2026-11-22",
    "medicationCodeableConcept": {"coding": [{"system": RX, "code": "224905"}]},
    "dosageInstruction": [{"timing": {"repeat": {"boundsPeriod": {"start": "2026-11-23"}, "frequency": 1, "period": 3, "periodUnit": "wk"}},
                           "doseAndRate": [{"doseQuantity": {"value": 8, "unit": "mg/kg"}}]}],
}


def with_value(resource, path, value):
    changed = copy.deepcopy(resource)
    *parents, last = path
    target = changed
    for step in parents:
        target = target[step]
    target[last] = value
    return changed


@pytest.mark.parametrize("path, number, shown", [
    # fhir_core reads these as epoch seconds: 20261123 is 1970-08-23, a planned start five decades before the record.
    (("dosageInstruction", 0, "timing", "repeat", "boundsPeriod", "start"), 20261123, "dosageInstruction[0].timing.repeat.boundsPeriod.start"),
    (("authoredOn",), 1795392000, "authoredOn"),
    (("dispenseRequest",), {"validityPeriod": {"end": 1795392000.5}}, "dispenseRequest.validityPeriod.end"),
    (("dosageInstruction", 0, "timing", "event"), ["2026-11-23", 1795392000], "dosageInstruction[0].timing.event[1]"),
    (("dosageInstruction", 0, "timing", "repeat", "timeOfDay"), [3600], "dosageInstruction[0].timing.repeat.timeOfDay[0]"),
])
def test_a_draft_with_a_date_written_as_a_number_is_a_400_naming_it(path, number, shown):
    with pytest.raises(InvalidRequest) as raised:
        build_record({}, [with_value(TRASTUZUMAB_DRAFT, path, number)])
    assert raised.value.message == "draft order MedicationRequest/d is not a MedicationRequest we can read"
    assert raised.value.details == [f"MedicationRequest/d: {shown} is a date written as a number (FHIR JSON writes dates as strings)"]


def test_numbers_where_fhir_has_numbers_and_dates_as_strings_are_read():
    (order,) = build_record({}, [TRASTUZUMAB_DRAFT]).draft_orders
    repeat = order.resource.dosageInstruction[0].timing.repeat
    assert (repeat.frequency, repeat.period, str(repeat.boundsPeriod.start)) == (1, 3, "2026-11-23")
    assert float(order.resource.dosageInstruction[0].doseAndRate[0].doseQuantity.value) == 8


def test_a_date_written_as_a_number_outside_the_essentials_is_left_out_like_any_invalid_element():
    # The draft is rebuilt from its essential fields, as for any invalid element outside them; its start is still read.
    (order,) = build_record({}, [{**TRASTUZUMAB_DRAFT, "meta": {"lastUpdated": 1795392000}}]).draft_orders
    assert order.resource.meta is None
    assert str(order.resource.dosageInstruction[0].timing.repeat.boundsPeriod.start) == "2026-11-23"


def test_each_kept_value_set_is_asked_for_by_one_observation_key_whose_query_asks_for_its_codes():
    # Hand-kept lists: a value set kept and asked for by no key would never be read, or asked for and dropped.
    keys_of = {value_set: [key for key, value_sets in OBSERVATION_KEYS.items() if value_set in value_sets]
               for value_set in OBSERVATION_VALUE_SETS}
    assert all(len(keys) == 1 for keys in keys_of.values()), keys_of
    assert sorted(v for value_sets in OBSERVATION_KEYS.values() for v in value_sets) == sorted(OBSERVATION_VALUE_SETS)
    for key, value_sets in OBSERVATION_KEYS.items():
        (codes,) = [value for name, value in parse_qsl(PREFETCH[key].split("?", 1)[1]) if name == "code"]
        assert {tuple(code.split("|", 1)) for code in codes.split(",")} == {
            pair for value_set in value_sets for pair in value_set_codes(value_set)}


def keyed(prefetch):
    return build_record(prefetch, [], OBSERVATION_KEYS)


def test_with_the_services_keys_a_value_set_is_read_from_its_own_key_only():
    # A key holds its query's results (CDS Hooks prefetch): an LVEF result is in the "lvef" key's, never only
    # in the labs or conditions key's.
    record = keyed({"labs": [observation("misfiled", "10230-1"), observation("ast", "1920-8")],
                    "conditions": [observation("stray", "10230-1")], "lvef": [observation("lvef", "10230-1")]})
    assert [o.id for o in record.observations("lvef")] == ["lvef"]
    assert [o.id for o in record.observations("ast")] == ["ast"]
    assert list(keyed({"labs": [observation("misfiled", "10230-1")]}).observations("lvef")) == []


def test_a_server_that_ignores_the_code_parameter_returns_every_observation_under_every_key_and_each_is_read_once():
    both = {**observation("both", "10230-1"), "code": {"coding": [{"system": "http://loinc.org", "code": "10230-1"},
                                                                  {"system": "http://loinc.org", "code": "29463-7"}]},
            "effectiveDateTime": "not a date"}
    everything = [observation("lvef", "10230-1", effectiveDateTime="2026-11-01"), observation("ast", "1920-8"), both,
                  observation("glucose", "2345-7")]
    record = keyed({key: copy.deepcopy(everything) for key in OBSERVATION_KEYS})
    assert [o.id for o in record.observations("lvef")] == ["lvef"]
    assert [o.id for o in record.observations("ast")] == ["ast"]
    assert list(record.observations("body_weight")) == []
    # Coded LVEF and weight, it is in both keys' results: modelled once, listed as unreadable once.
    assert unreadable(record) == ["Observation/both"]


class Unwalkable(list):
    def __iter__(self):
        raise AssertionError("the key's entries were walked")


def test_a_sent_bundle_whose_value_sets_no_fact_reads_is_never_walked():
    labs = {"resourceType": "Bundle", "type": "searchset", "entry": Unwalkable([{"resource": observation("ast", "1920-8")}])}
    prefetch = PrefetchResources({"lvef": SentBundle("lvef", searchset([observation("lvef", "10230-1")])), "labs": SentBundle("labs", labs)})
    record = build_record(prefetch, [], OBSERVATION_KEYS)
    assert [o.id for o in record.observations("lvef")] == ["lvef"]
    with pytest.raises(AssertionError, match="walked"):
        list(record.observations("ast"))


def test_the_services_keys_read_no_observation_a_fact_has_not_asked_for():
    record = keyed({"labs": [observation("ast", "1920-8")], "lvef": [observation("lvef", "10230-1")]})
    list(record.observations("lvef"))
    assert set(record.observation_index._grouped) == set(OBSERVATION_KEYS["lvef"])
