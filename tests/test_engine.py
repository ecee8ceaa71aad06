"""The engine's guarantees that no single rule can break: a rule that fails or floods is replaced by one card
saying which check did not run, and the other rules still answer; a record left out as invalid is named on a card
of its own."""
from __future__ import annotations

import dataclasses

import pytest

from cds_hooks.cases import card_id, load_case
from cds_hooks.engine import RECORD_UNREADABLE_CARD, RULE_FAILURE_CARD, Engine
from cds_hooks.rules import REGISTRY
from cds_hooks.settings import Settings

from .conftest import FIXTURES

CASE = load_case(FIXTURES / "cases" / "summary-her2pos-metastatic-on-trastuzumab.json")
SUMMARY = next(rule for rule in REGISTRY if rule.id == "summary.her2-therapy-summary")


def _raise(context):
    raise ValueError("a bug in a rule")


BROKEN = {
    "raises": _raise,
    "gives two cards": lambda context: [*SUMMARY.evaluate(context), *SUMMARY.evaluate(context)],
}


@pytest.fixture
def engine(settings: Settings):
    engine = Engine(settings)
    yield engine
    engine.close()


@pytest.mark.parametrize("fault", BROKEN)
def test_a_broken_rule_is_one_failure_card_and_the_others_still_answer(engine: Engine, fault: str):
    broken = dataclasses.replace(SUMMARY, id="test.broken", title="A broken check", evaluate=BROKEN[fault])
    engine.rules_by_hook["patient-view"] = [SUMMARY, broken]
    cards = engine.evaluate(CASE.service_id, CASE.request_for("full")).body["cards"]
    # Warning before info: the failure card comes first.
    assert [card_id(card) for card in cards] == [RULE_FAILURE_CARD, "summary-her2-therapy"]
    assert "A broken check" in cards[0]["detail"]


def test_a_record_left_out_as_unreadable_is_named_once_on_its_own_card_after_every_rule(engine: Engine):
    # The LVEF result is read by several cardiac rules; it is one record left out, named once.
    case = load_case(FIXTURES / "cases" / "record-unreadable-lvef-result-with-impossible-date.json")
    evaluation = engine.evaluate(case.service_id, case.request_for("full"))
    (card,) = [card for card in evaluation.body["cards"] if card_id(card) == RECORD_UNREADABLE_CARD]
    assert card["summary"].startswith("1 record(s) could not be read")
    assert card["detail"].count("cardiac-ebc-lvef-unreadable-lvef") == 1
    assert [(issued.card_id, issued.rule_id) for issued in evaluation.issued if issued.rule_id is None] == [
        (RECORD_UNREADABLE_CARD, None)
    ]
