"""Clinical facts derived from the typed record, computed at most once per request and only when a rule asks.

A fact is a function of `Facts` (the record, the reference date and the settings); `facts.get(fn)` computes
it once per request, so rules share facts without ordering them or passing them around.
"""
from __future__ import annotations

from datetime import date
from typing import Any, Callable, TypeVar

from cds_hooks.facts import therapy
from cds_hooks.record import PatientRecord
from cds_hooks.settings import Settings

T = TypeVar("T")


class Facts:
    def __init__(self, record: PatientRecord, as_of: date, settings: Settings) -> None:
        self.record = record
        self.as_of = as_of
        self.settings = settings
        self._cache: dict[Callable[..., Any], Any] = {}

    def get(self, fact: Callable[["Facts"], T]) -> T:
        if fact not in self._cache:
            self._cache[fact] = fact(self)
        return self._cache[fact]

    @property
    def exposures(self) -> tuple[therapy.Exposure, ...]:
        return self.get(_exposures)


def _exposures(facts: Facts) -> tuple[therapy.Exposure, ...]:
    return therapy.exposures(facts.record)
