"""CDS Hooks 2.0 response objects (Card, Suggestion, Action, Link, Coding) and their JSON form.

CDS Hooks forbids `null` and empty strings, arrays and objects in a response (except `{"cards": []}`),
so serialisation drops them everywhere.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

Indicator = Literal["info", "warning", "critical"]
ActionType = Literal["create", "update", "delete"]
INDICATOR_ORDER = {"critical": 0, "warning": 1, "info": 2}


@dataclass(frozen=True)
class Coding:
    system: str
    code: str
    display: str | None = None


@dataclass(frozen=True)
class Source:
    label: str
    url: str | None = None
    icon: str | None = None
    topic: Coding | None = None


@dataclass(frozen=True)
class Action:
    type: ActionType
    description: str
    resource: dict[str, Any] | None = None
    resourceId: str | None = None


@dataclass(frozen=True)
class Suggestion:
    label: str
    uuid: str
    actions: tuple[Action, ...] = ()
    isRecommended: bool | None = None


@dataclass(frozen=True)
class Link:
    label: str
    url: str
    type: Literal["absolute", "smart"] = "absolute"
    appContext: str | None = None
    autolaunchable: bool | None = None


@dataclass(frozen=True)
class Card:
    uuid: str
    summary: str
    indicator: Indicator
    source: Source
    detail: str | None = None
    suggestions: tuple[Suggestion, ...] = ()
    selectionBehavior: Literal["at-most-one", "any"] | None = None
    overrideReasons: tuple[Coding, ...] = ()
    links: tuple[Link, ...] = ()

    def __post_init__(self) -> None:
        # The spec's own invariants; a card that breaks them is a bug in our content, not in the request.
        if not self.summary or len(self.summary) >= 140:
            raise ValueError(f"card summary must be 1-139 characters: {self.summary!r}")
        if self.suggestions and self.selectionBehavior is None:
            raise ValueError("selectionBehavior is required when a card has suggestions")
        if any(reason.display is None for reason in self.overrideReasons):
            raise ValueError("every override reason needs a display")


@dataclass(frozen=True)
class Response:
    cards: tuple[Card, ...] = ()
    systemActions: tuple[Action, ...] = ()


def to_json(value: Any) -> Any:
    """Plain JSON for a response object, leaving out every None and empty value; `cards` is always kept."""
    if dataclasses.is_dataclass(value):
        body = {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
        body = {name: item for name, item in body.items() if not _is_empty(item)}
        if isinstance(value, Response):
            body.setdefault("cards", [])
        return body
    if isinstance(value, (list, tuple)):
        return [item for item in (to_json(v) for v in value) if not _is_empty(item)]
    if isinstance(value, dict):
        pruned = {key: to_json(item) for key, item in value.items()}
        return {key: item for key, item in pruned.items() if not _is_empty(item)}
    return value


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, (str, list, dict)) and len(value) == 0)
