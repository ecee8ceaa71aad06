"""Clinical facts derived from the typed record, computed at most once per request and only when a rule asks.

A fact is a function of `Facts` (the record, the reference date and the settings) and of hashable arguments such
as a dose day; `facts.get(fn, *args)` computes it once per request for each set of arguments, so rules share facts
without ordering them or passing them around. Facts are frozen values: callers never change what they get.
"""
from __future__ import annotations

from datetime import date
from typing import Any, Callable, Hashable, TypeVar

from cds_hooks.facts import therapy
from cds_hooks.record import PatientRecord
from cds_hooks.settings import Settings

T = TypeVar("T")


class Facts:
    def __init__(self, record: PatientRecord, as_of: date, settings: Settings, record_day: date | None = None) -> None:
        self.record = record
        self.as_of = as_of
        self.settings = settings
        # The day the record speaks for (the request's): a course stopped by then has ended, whatever day facts are for.
        self.record_day = record_day or as_of
        self._cache: dict[tuple[Any, ...], Any] = {}

    def get(self, fact: Callable[..., T], *args: Hashable) -> T:
        """fact(self, *args), computed once per request for these arguments."""
        key = (fact, *args)
        if key not in self._cache:
            self._cache[key] = fact(self, *args)
        return self._cache[key]

    def on(self, day: date) -> "Facts":
        """The facts as of another day (the weight on a past dose's day), kept for the request like any fact."""
        return self if day == self.as_of else self.get(_facts_on, day)

    @property
    def exposures(self) -> tuple[therapy.Exposure, ...]:
        return self.get(_exposures)


def _facts_on(facts: Facts, day: date) -> Facts:
    return Facts(facts.record, day, facts.settings, facts.record_day)


def _exposures(facts: Facts) -> tuple[therapy.Exposure, ...]:
    return therapy.exposures(facts.record, facts.record_day)
