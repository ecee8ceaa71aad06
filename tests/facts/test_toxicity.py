"""Toxicity Conditions: ILD episodes (past ones too) and active neuropathy, with a grade only where the record writes one."""
from __future__ import annotations

from datetime import date

import pytest

from cds_hooks.facts import Facts
from cds_hooks.facts.toxicity import active_peripheral_neuropathy, ild_episodes, worst_grade
from cds_hooks.record import build_record
from cds_hooks.settings import Settings

SCT = "http://snomed.info/sct"


def condition(cid, code="302226006", clinical="active", verification="confirmed", **extra):
    return {"resourceType": "Condition", "id": cid, "subject": {"reference": "Patient/p"},
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": clinical}]},
            "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": verification}]},
            "code": {"coding": [{"system": SCT, "code": code, "display": "Peripheral neuropathy"}]}, **extra}


def facts_with(*conditions):
    return Facts(build_record({"conditions": list(conditions)}, []), date(2026, 11, 22), Settings())


@pytest.mark.parametrize("extra, grade", [
    ({"stage": [{"summary": {"text": "Grade 3"}}]}, 3),
    ({"stage": [{"summary": {"text": "CTCAE v5.0 grade 4"}}]}, 4),
    ({"stage": [{"summary": {"coding": [{"system": "urn:local", "code": "G2"}]}}]}, 2),
    ({"severity": {"coding": [{"system": "urn:local", "code": "x", "display": "grade 1"}]}}, 1),
    ({"severity": {"text": "Severe"}}, None),
    ({"stage": [{"summary": {"text": "grade 2 sensory neuropathy of both feet"}}]}, None),
    ({}, None),
])
def test_grade_is_read_only_where_written_as_a_grade(extra, grade):
    (neuropathy,) = active_peripheral_neuropathy(facts_with(condition("n", **extra)))
    assert neuropathy.grade == grade


def test_severity_words_are_reported_but_not_mapped_to_a_grade():
    (neuropathy,) = active_peripheral_neuropathy(facts_with(condition("n", severity={"text": "Severe"})))
    assert neuropathy.grade is None and neuropathy.severity_text == "Severe"


def test_resolved_and_refuted_conditions_are_not_active():
    facts = facts_with(condition("r", clinical="resolved"), condition("x", verification="refuted"))
    assert active_peripheral_neuropathy(facts) == ()


def test_ild_and_pneumonitis_codes_and_highest_grade_first():
    facts = facts_with(condition("ild", code="233703007", stage=[{"summary": {"text": "Grade 1"}}]),
                       condition("pneu", code="205237003", stage=[{"summary": {"text": "Grade 2"}}]))
    found = ild_episodes(facts)
    assert [t.reference for t in found] == ["Condition/pneu", "Condition/ild"]
    assert worst_grade(found) == 2


def test_worst_grade_is_none_when_nothing_is_graded():
    assert worst_grade(ild_episodes(facts_with(condition("ild", code="233703007")))) is None


def test_ild_episodes_keep_past_ones_but_not_refuted_or_entered_in_error():
    facts = facts_with(*(condition(status, code="233703007", clinical=status)
                         for status in ("active", "recurrence", "inactive", "resolved", "remission")),
                       condition("refuted", code="205237003", clinical="resolved", verification="refuted"),
                       condition("error", code="205237003", verification="entered-in-error"))
    found = {t.reference: t for t in ild_episodes(facts)}
    assert {ref: (t.status, t.active) for ref, t in found.items()} == {
        "Condition/active": ("active", True), "Condition/recurrence": ("recurrence", True),
        "Condition/inactive": ("inactive", False), "Condition/resolved": ("resolved", False),
        "Condition/remission": ("remission", False)}


@pytest.mark.parametrize("extra, resolved_on, days", [
    ({"onsetDateTime": "2026-09-01", "abatementDateTime": "2026-10-20"}, date(2026, 10, 20), 49),
    ({"onsetPeriod": {"start": "2026-09-01"}, "abatementPeriod": {"start": "2026-09-20", "end": "2026-09-29"}}, date(2026, 9, 29), 28),
    # Partial dates are read at their widest, so a resolution is never made to look quicker than it may have been.
    ({"onsetDateTime": "2026-09", "abatementDateTime": "2026-09"}, date(2026, 9, 30), 29),
    # The day an episode was charted is not when it began.
    ({"recordedDate": "2026-09-01", "abatementDateTime": "2026-09-10"}, date(2026, 9, 10), None),
    ({"onsetDateTime": "2026-09-01"}, None, None),
    ({"onsetDateTime": "2026-09-01", "abatementString": "after about three weeks"}, None, None),
])
def test_time_to_resolution_only_from_a_recorded_onset_and_end(extra, resolved_on, days):
    (episode,) = ild_episodes(facts_with(condition("ild", code="233703007", clinical="resolved", **extra)))
    assert (episode.resolved_on, episode.days_to_resolution) == (resolved_on, days)
