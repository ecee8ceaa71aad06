"""Card content in cards/ is valid, and findings render into conformant CDS Hooks cards."""
from __future__ import annotations

import re
from datetime import date

import pytest

from cds_hooks.engine import ENGINE_CARDS
from cds_hooks.protocol.cards import to_json
from cds_hooks.render import CardContentError, CardRenderer, compile_card, escape_markdown
from cds_hooks.rules import REGISTRY
from cds_hooks.rules.base import Finding, ProposedAction, ProposedSuggestion

RENDERER = CardRenderer.load()


def test_every_rule_card_exists_and_every_card_is_used():
    declared = {card for rule in REGISTRY for card in rule.cards}
    assert declared <= set(RENDERER.templates)
    assert set(RENDERER.templates) - declared == set(ENGINE_CARDS)


@pytest.mark.parametrize("card_id", sorted(RENDERER.templates))
def test_warning_and_critical_cards_offer_override_reasons_and_cite_a_source(card_id):
    template = RENDERER.templates[card_id]
    if template.indicator in ("warning", "critical"):
        assert template.override_reasons
    assert template.source.label


@pytest.mark.parametrize("card_id", sorted(RENDERER.templates))
def test_evidence_links_are_https(card_id):
    # Clinicians follow these links from inside the EHR; a plain-http page can be altered on the way.
    definition = RENDERER.templates[card_id].definition
    urls = [(definition.get("source") or {}).get("url")] + [link.get("url") for link in definition.get("links") or ()]
    assert all(url.startswith("https://") for url in urls if url)


def test_rendered_card_is_conformant_and_escapes_record_text():
    finding = Finding(
        card="anthracycline-with-trastuzumab",
        values={
            "pairs": [{"ordered": "trastuzumab", "when": {"start": date(2026, 11, 23), "day": date(2026, 11, 23)},
                       "other": "doxorubicin *bold* <b>x</b>", "other_when": "active since 2026-11-02"}],
            "her2_drugs": "trastuzumab",
            "anthracyclines": "doxorubicin",
        },
        suggestions=(ProposedSuggestion("remove-draft", (ProposedAction("delete", resource_id="MedicationRequest/d1"),), {"order": "trastuzumab"}),),
    )
    card = to_json(RENDERER.render(finding))
    assert card["indicator"] == "critical"
    assert card["selectionBehavior"] == "at-most-one"
    assert card["source"]["topic"] == {"system": "urn:her2-cds:card", "code": "anthracycline-with-trastuzumab",
                                       "display": RENDERER.templates["anthracycline-with-trastuzumab"].title}
    assert card["suggestions"][0]["actions"] == [{"type": "delete", "description": "Delete the unsigned order for trastuzumab",
                                                  "resourceId": "MedicationRequest/d1"}]
    assert "doxorubicin \\*bold\\* \\<b\\>x\\</b\\>" in card["detail"]
    assert card["uuid"] != card["suggestions"][0]["uuid"]


def test_long_summary_is_cut_below_140_characters():
    finding = Finding(card="anthracycline-with-trastuzumab",
                      values={"pairs": [], "her2_drugs": "trastuzumab " * 20, "anthracyclines": "doxorubicin"})
    assert len(RENDERER.render(finding).summary) < 140


def test_escape_markdown_leaves_numbers_alone():
    assert escape_markdown(44) == 44
    assert escape_markdown("[link](javascript:x)") == "\\[link\\]\\(javascript:x\\)"


@pytest.mark.parametrize(
    "definition, problem",
    [
        ({"id": "other"}, "id must be"),
        ({"id": "c", "title": "t", "indicator": "urgent", "summary": "s", "detail": "d", "source": {"label": "l"}}, "indicator"),
        ({"id": "c", "title": "t", "indicator": "critical", "summary": "s", "detail": "d", "source": {"label": "l"}}, "overrideReasons"),
        ({"id": "c", "title": "t", "indicator": "info", "summary": "s", "detail": "d", "source": {"label": "l"},
          "suggestions": {"x": {"label": "y"}}}, "selectionBehavior"),
    ],
)
def test_invalid_card_files_are_refused_at_load(definition, problem):
    with pytest.raises(CardContentError, match=problem):
        compile_card("c", definition)


def test_a_card_including_a_file_that_cards_includes_lacks_is_refused_at_load():
    definition = {"id": "c", "title": "t", "indicator": "info", "summary": "s", "detail": '{% include "no-such-text.md" %}',
                  "source": {"label": "l"}}
    with pytest.raises(CardContentError, match="includes no-such-text.md"):
        compile_card("c", definition)


# An LVEF value in a card's text: `{{ latest.value }}%`, `{{ item.value }}%` ...
_SHOWS_AN_LVEF = re.compile(r"\.value \}\}%")
_UNUSABLE_LVEF = '{% include "unusable-lvef.md" %}'


def test_every_card_that_shows_an_lvef_names_the_lvef_records_that_could_not_be_used():
    showing = {card_id for card_id, template in RENDERER.templates.items() if _SHOWS_AN_LVEF.search(template.definition["detail"])}
    assert {"cardiac-lvef-hold-tdm1", "cardiac-lvef-due", "hepatic-tdm1-not-studied", "summary-her2-therapy"} <= showing
    assert [card_id for card_id in sorted(showing) if _UNUSABLE_LVEF not in RENDERER.templates[card_id].definition["detail"]] == []
    # A card shown instead of the warning about such a record must name the record itself.
    standing_in = [t for t in RENDERER.templates.values() if "cardiac-lvef-newest-unusable" in t.absorbs]
    assert standing_in and all(_UNUSABLE_LVEF in t.definition["detail"] for t in standing_in)
