"""Findings become CDS Hooks cards here, and only here, from the clinician-editable files in cards/.

Templates are compiled once at start-up. Values from the patient record are escaped before they enter
Markdown, because EHRs (and the Sandbox) render card detail as Markdown with raw HTML. Text several cards share is
written once in cards/includes/ and placed with `{% include "name" %}`.
"""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any, Callable, Mapping

import jinja2
import jinja2.meta
import yaml

from cds_hooks.protocol.cards import Action, Card, Coding, Link, Source, Suggestion
from cds_hooks.rules.base import Finding, ProposedAction, ProposedSuggestion

CARD_PACKAGE = "cds_hooks.card_content"
# The folder of cards/ holding text that several cards include.
INCLUDES = "includes"
CARD_TOPIC_SYSTEM = "urn:her2-cds:card"
OVERRIDE_REASON_SYSTEM = "urn:her2-cds:override-reason"
INDICATORS = ("info", "warning", "critical")
_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]<>()#+!|~])")


class CardContentError(ValueError):
    """A file in cards/ is not a valid card definition."""


@dataclass(frozen=True)
class _SuggestionTemplate:
    label: Callable[..., str]
    actions: Mapping[str, Callable[..., str]]


@dataclass(frozen=True)
class CardTemplate:
    id: str
    title: str
    indicator: str
    summary: Callable[..., str]
    detail: Callable[..., str] | None
    source: Source
    links: tuple[Link, ...]
    selection_behavior: str | None
    suggestions: Mapping[str, _SuggestionTemplate]
    system_actions: Mapping[str, Callable[..., str]]
    override_reasons: tuple[Coding, ...]
    # Cards this one makes redundant: when both would be shown, only this one is.
    absorbs: tuple[str, ...]
    # Everything as written in the file, for the rule catalogue.
    definition: Mapping[str, Any]


class CardRenderer:
    def __init__(self, templates: Mapping[str, CardTemplate]) -> None:
        self.templates = dict(templates)

    @classmethod
    def load(cls) -> "CardRenderer":
        """Every card in the installed cards/ folder, compiled."""
        return cls(_installed_templates())

    def render(self, finding: Finding) -> Card:
        template = self.templates.get(finding.card)
        if template is None:
            raise CardContentError(f"no card named {finding.card} in cards/")
        values = dict(finding.values)
        suggestions = tuple(self._suggestion(template, proposed, values) for proposed in finding.suggestions)
        return Card(
            uuid=str(uuid.uuid4()),
            summary=_summary(template.summary(**values)),
            detail=template.detail(**values).strip() if template.detail else None,
            indicator=template.indicator,  # type: ignore[arg-type]
            source=template.source,
            suggestions=suggestions,
            selectionBehavior=template.selection_behavior if suggestions else None,  # type: ignore[arg-type]
            overrideReasons=template.override_reasons,
            links=template.links,
        )

    def render_system_actions(self, finding: Finding) -> tuple[Action, ...]:
        template = self.templates[finding.card]
        return tuple(self._action(template, action, {**finding.values, **action.values}, template.system_actions, "systemActions")
                     for action in finding.system_actions)

    def _action(self, template: CardTemplate, action: ProposedAction, values: Mapping[str, Any],
                wording: Mapping[str, Callable[..., str]], where: str) -> Action:
        describe = wording.get(action.type)
        if describe is None:
            raise CardContentError(f"card {template.id}, {where}: no wording for a {action.type} action")
        return Action(
            type=action.type,
            description=_one_line(describe(**values)),
            resource=dict(action.resource) if action.resource else None,
            resourceId=action.resource_id,
        )

    def _suggestion(self, template: CardTemplate, proposed: ProposedSuggestion, card_values: Mapping[str, Any]) -> Suggestion:
        wording = template.suggestions.get(proposed.key)
        if wording is None:
            raise CardContentError(f"card {template.id} has no suggestion named {proposed.key}")
        values = {**card_values, **proposed.values}
        actions = [
            self._action(template, action, {**values, **action.values}, wording.actions, f"suggestion {proposed.key}")
            for action in proposed.actions
        ]
        return Suggestion(
            label=_one_line(wording.label(**values)),
            uuid=str(uuid.uuid4()),
            actions=tuple(actions),
            isRecommended=True if proposed.recommended else None,
        )


@cache
def _installed_templates() -> Mapping[str, CardTemplate]:
    """Read and compiled once per process: the files are part of the installed package, and compiling them takes a
    fifth of a second, which every app instance (a test's own server, a CLI run) would otherwise pay again."""
    files = sorted(
        (entry for entry in resources.files(CARD_PACKAGE).iterdir() if entry.name.endswith(".yaml")),
        key=lambda entry: entry.name,
    )
    templates = {}
    for entry in files:
        template = compile_card(entry.name.removesuffix(".yaml"), yaml.safe_load(entry.read_text("utf-8")))
        templates[template.id] = template
    return MappingProxyType(templates)


def compile_card(name: str, definition: Any) -> CardTemplate:
    """Check one card definition and compile its templates; the file name must equal its id."""
    if not isinstance(definition, dict):
        raise CardContentError(f"cards/{name}.yaml must be a mapping")
    card_id = definition.get("id")
    if card_id != name:
        raise CardContentError(f"cards/{name}.yaml: id must be {name!r}, found {card_id!r}")
    for required in ("title", "indicator", "summary", "detail", "source"):
        if not definition.get(required):
            raise CardContentError(f"cards/{name}.yaml: {required} is required")
    indicator = definition["indicator"]
    if indicator not in INDICATORS:
        raise CardContentError(f"cards/{name}.yaml: indicator must be one of {', '.join(INDICATORS)}")
    reasons = tuple(
        Coding(system=OVERRIDE_REASON_SYSTEM, code=reason["code"], display=reason["display"])
        for reason in definition.get("overrideReasons") or []
    )
    if indicator in ("warning", "critical") and not reasons:
        raise CardContentError(f"cards/{name}.yaml: a {indicator} card needs overrideReasons")
    if definition.get("suggestions") and definition.get("selectionBehavior") not in ("at-most-one", "any"):
        raise CardContentError(f"cards/{name}.yaml: selectionBehavior (at-most-one or any) is required with suggestions")
    try:
        summary, detail = _plain(definition["summary"]), _markdown(definition["detail"])
        suggestions = {
            key: _SuggestionTemplate(
                label=_plain(value["label"]),
                actions={kind: _plain(text) for kind, text in (value.get("actions") or {}).items()},
            )
            for key, value in (definition.get("suggestions") or {}).items()
        }
        system_actions = {kind: _plain(text) for kind, text in (definition.get("systemActions") or {}).items()}
    except jinja2.TemplateNotFound as missing:
        raise CardContentError(f"cards/{name}.yaml includes {missing.name}, which cards/{INCLUDES}/ does not have") from None
    source = definition["source"]
    return CardTemplate(
        id=card_id,
        title=definition["title"],
        indicator=indicator,
        summary=summary,
        detail=detail,
        source=Source(
            label=source["label"],
            url=source.get("url"),
            topic=Coding(system=CARD_TOPIC_SYSTEM, code=card_id, display=definition["title"]),
        ),
        links=tuple(Link(label=link["label"], url=link["url"], type="absolute") for link in definition.get("links") or []),
        selection_behavior=definition.get("selectionBehavior"),
        suggestions=suggestions,
        system_actions=system_actions,
        override_reasons=reasons,
        absorbs=tuple(definition.get("absorbs") or ()),
        definition=definition,
    )


def escape_markdown(value: Any) -> Any:
    """Record values are data, never markup: neutralise Markdown and HTML in text, leave numbers alone."""
    if isinstance(value, str):
        return _MARKDOWN_SPECIALS.sub(r"\\\1", value)
    return value


def _format_value(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return f"{value:g}"
    return value


def _included_text(name: str) -> str | None:
    """The text of cards/includes/<name>; None when there is no such file."""
    entry = resources.files(CARD_PACKAGE).joinpath(INCLUDES, name)
    return entry.read_text("utf-8") if entry.is_file() else None


# Each environment compiles an included file with its own settings: record values in it are escaped in a detail.
_INCLUDES = jinja2.FunctionLoader(_included_text)
_PLAIN = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, finalize=_format_value, loader=_INCLUDES)
_MARKDOWN = jinja2.Environment(
    undefined=jinja2.StrictUndefined,
    autoescape=False,
    finalize=lambda value: escape_markdown(_format_value(value)),
    trim_blocks=True,
    lstrip_blocks=True,
    loader=_INCLUDES,
)


def _plain(source: str) -> Callable[..., str]:
    return _compiled(_PLAIN, source)


def _markdown(source: str) -> Callable[..., str]:
    return _compiled(_MARKDOWN, source)


def _compiled(environment: jinja2.Environment, source: str) -> Callable[..., str]:
    """The template's render function; a file it includes is loaded now, so a missing one fails at start-up."""
    for name in jinja2.meta.find_referenced_templates(environment.parse(source)):
        if name is not None:
            environment.get_template(name)
    return environment.from_string(source).render


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _summary(text: str) -> str:
    """CDS Hooks caps summary below 140 characters; long drug names from the record must not break that."""
    line = _one_line(text)
    return line if len(line) < 140 else line[:138].rstrip() + "…"
