"""Clinical facts derived from the typed record, computed at most once per request and only when a rule asks."""
from __future__ import annotations

from datetime import date
from functools import cached_property

from cds_hooks.facts import therapy
from cds_hooks.record import PatientRecord


class Facts:
    def __init__(self, record: PatientRecord, as_of: date) -> None:
        self.record = record
        self.as_of = as_of

    @cached_property
    def exposures(self) -> tuple[therapy.Exposure, ...]:
        return therapy.exposures(self.record)
