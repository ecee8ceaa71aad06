"""CDS Hooks feedback and the cards it is about: each feedback item validated on its own, every card issued
recorded (no patient data) so acceptance has a denominator; SQLite shared by all workers.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from cds_hooks.database import ThreadConnections

if TYPE_CHECKING:
    from cds_hooks.engine import IssuedCard

OUTCOMES = ("accepted", "overridden")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    fingerprint TEXT PRIMARY KEY,
    service_id TEXT NOT NULL,
    card_uuid TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('accepted', 'overridden')),
    outcome_timestamp TEXT NOT NULL,
    accepted_suggestions TEXT,
    override_system TEXT,
    override_code TEXT,
    override_display TEXT,
    user_comment TEXT,
    received_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS feedback_card ON feedback (card_uuid);
CREATE TABLE IF NOT EXISTS issued_cards (
    card_uuid TEXT PRIMARY KEY,
    service_id TEXT NOT NULL,
    rule_id TEXT,
    card_id TEXT NOT NULL,
    indicator TEXT NOT NULL,
    issued_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS issued_cards_time ON issued_cards (issued_at);
"""

# Per card, over the cards issued in the period: a card counts once per outcome however often it was reported.
_OUTCOMES_BY_CARD = """
SELECT rule_id, card_id, indicator, COUNT(*),
       SUM(EXISTS (SELECT 1 FROM feedback f WHERE f.card_uuid = i.card_uuid AND f.outcome = 'accepted')),
       SUM(EXISTS (SELECT 1 FROM feedback f WHERE f.card_uuid = i.card_uuid AND f.outcome = 'overridden'))
FROM issued_cards i WHERE issued_at >= ?
GROUP BY rule_id, card_id, indicator
ORDER BY COUNT(*) DESC, card_id
"""
# The Sandbox sends override codes without a display, so reasons are counted by code.
_OVERRIDE_REASONS = """
SELECT i.rule_id, i.card_id, i.indicator, f.override_code, MAX(f.override_display), COUNT(DISTINCT f.card_uuid)
FROM issued_cards i JOIN feedback f ON f.card_uuid = i.card_uuid AND f.outcome = 'overridden'
WHERE i.issued_at >= ?
GROUP BY i.rule_id, i.card_id, i.indicator, f.override_code
ORDER BY COUNT(DISTINCT f.card_uuid) DESC, f.override_code
"""
_FEEDBACK_ON_UNRECORDED_CARDS = """
SELECT COUNT(DISTINCT card_uuid) FROM feedback f
WHERE received_at >= ? AND NOT EXISTS (SELECT 1 FROM issued_cards i WHERE i.card_uuid = f.card_uuid)
"""


@dataclass(frozen=True)
class FeedbackItem:
    card: str
    outcome: str
    outcome_timestamp: str
    accepted_suggestions: tuple[str, ...] = ()
    override_reason: Mapping[str, str] | None = None
    user_comment: str | None = None

    def fingerprint(self, service_id: str) -> str:
        """Same service, card, outcome, time and choices: the same feedback, whatever the JSON key order."""
        canonical = json.dumps([service_id, self.card, self.outcome, self.outcome_timestamp, list(self.accepted_suggestions),
                                dict(self.override_reason or {}), self.user_comment], sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()


def parse_feedback(body: Any) -> tuple[list[FeedbackItem], list[str]]:
    """The valid items of a feedback body, and one message per invalid item (naming its index)."""
    if not isinstance(body, dict) or not isinstance(body.get("feedback"), list):
        return [], ["the body must be an object with a 'feedback' array"]
    items: list[FeedbackItem] = []
    problems: list[str] = []
    for index, raw in enumerate(body["feedback"]):
        item_problems: list[str] = []
        item = _parse_item(raw, item_problems)
        if item_problems:
            problems.extend(f"feedback[{index}]: {problem}" for problem in item_problems)
        elif item is not None:
            items.append(item)
    return items, problems


def _parse_item(raw: Any, problems: list[str]) -> FeedbackItem | None:
    if not isinstance(raw, dict):
        problems.append("must be an object")
        return None
    card = raw.get("card")
    if not isinstance(card, str) or not card:
        problems.append("card is required: the uuid of the card")
    outcome = raw.get("outcome")
    if outcome not in OUTCOMES:
        problems.append("outcome must be 'accepted' or 'overridden'")
    timestamp = raw.get("outcomeTimestamp")
    if not _is_rfc3339(timestamp):
        problems.append("outcomeTimestamp is required: an RFC 3339 date-time")
    accepted = raw.get("acceptedSuggestions")
    suggestion_ids: list[str] = []
    if accepted is not None:
        if not isinstance(accepted, list) or not all(isinstance(s, dict) and isinstance(s.get("id"), str) and s["id"] for s in accepted):
            problems.append("acceptedSuggestions must be an array of {\"id\": suggestion uuid}")
        else:
            suggestion_ids = [s["id"] for s in accepted]
    if outcome == "accepted" and not suggestion_ids:
        problems.append("acceptedSuggestions is required when outcome is 'accepted'")
    reason, comment = _override_reason(raw.get("overrideReason"), problems)
    if (reason or comment) and outcome == "accepted":
        problems.append("overrideReason is only allowed when outcome is 'overridden'")
    if problems:
        return None
    return FeedbackItem(card, outcome, timestamp, tuple(suggestion_ids), reason, comment)


def _override_reason(value: Any, problems: list[str]) -> tuple[dict[str, str] | None, str | None]:
    if value is None:
        return None, None
    if not isinstance(value, dict):
        problems.append("overrideReason must be an object")
        return None, None
    reason = value.get("reason")
    coding = None
    if reason is not None:
        # The Sandbox sends {code, system} without display, so display stays optional here.
        if not isinstance(reason, dict) or not isinstance(reason.get("code"), str) or not isinstance(reason.get("system"), str):
            problems.append("overrideReason.reason must be a Coding with system and code")
        else:
            coding = {key: reason[key] for key in ("system", "code", "display") if isinstance(reason.get(key), str)}
    comment = value.get("userComment")
    if comment is not None and not isinstance(comment, str):
        problems.append("overrideReason.userComment must be a string")
        comment = None
    return coding, comment


@dataclass(frozen=True)
class OverrideReasonCount:
    # None when the clinician overrode without choosing a reason.
    code: str | None
    display: str | None
    cards: int


@dataclass(frozen=True)
class CardOutcomes:
    """How one card of one rule fared: cards shown, and how many of them were accepted or overridden."""

    rule_id: str | None
    card_id: str
    indicator: str
    shown: int
    accepted: int
    overridden: int
    override_reasons: tuple[OverrideReasonCount, ...]

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.shown


@dataclass(frozen=True)
class FeedbackSummary:
    cards: tuple[CardOutcomes, ...]
    # Cards that feedback names but that were never recorded as issued: shown before recording began, or by
    # an instance with another database. They have no denominator, so they are counted apart.
    unrecorded_cards_with_feedback: int


def _is_rfc3339(value: Any) -> bool:
    if not isinstance(value, str) or "T" not in value.upper():
        return False
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return False
    return parsed.tzinfo is not None


class FeedbackStore:
    """SQLite in WAL mode so several gunicorn workers can write; one connection per thread."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        # Statistics, not clinical data: losing the last seconds of them to a power failure is acceptable, an fsync
        # on every card-bearing response is not (it was most of the recording's cost).
        self._connections = ThreadConnections(self.path, _SCHEMA, sync_every_commit=False)

    def _connection(self) -> sqlite3.Connection:
        return self._connections.get()

    def store(self, service_id: str, items: Iterable[FeedbackItem]) -> int:
        """Store items in one transaction; returns how many were new (duplicates are kept once)."""
        received = _now()
        rows = [
            (
                item.fingerprint(service_id), service_id, item.card, item.outcome, item.outcome_timestamp,
                json.dumps(list(item.accepted_suggestions)) if item.accepted_suggestions else None,
                (item.override_reason or {}).get("system"), (item.override_reason or {}).get("code"),
                (item.override_reason or {}).get("display"), item.user_comment, received,
            )
            for item in items
        ]
        connection = self._connection()
        before = connection.total_changes
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.executemany("INSERT OR IGNORE INTO feedback VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
        return connection.total_changes - before

    def record_issued(self, service_id: str, cards: Iterable[IssuedCard]) -> None:
        """One insert for all the cards of a response; a response without cards writes nothing."""
        issued_at = _now()
        values = [value for card in cards
                  for value in (card.uuid, service_id, card.rule_id, card.card_id, card.indicator, issued_at)]
        if values:
            rows = ", ".join(["(?, ?, ?, ?, ?, ?)"] * (len(values) // 6))
            self._connection().execute(f"INSERT OR IGNORE INTO issued_cards VALUES {rows}", values)

    def summary(self, since: datetime | None = None) -> FeedbackSummary:
        """Outcomes per card for the cards issued since `since` (all when None), most shown first."""
        start = _timestamp(since) if since else ""
        connection = self._connection()
        reasons: dict[tuple[Any, ...], list[OverrideReasonCount]] = {}
        for rule_id, card_id, indicator, code, display, count in connection.execute(_OVERRIDE_REASONS, (start,)):
            reasons.setdefault((rule_id, card_id, indicator), []).append(OverrideReasonCount(code, display, count))
        cards = tuple(
            CardOutcomes(rule_id, card_id, indicator, shown, accepted, overridden,
                         tuple(reasons.get((rule_id, card_id, indicator), ())))
            for rule_id, card_id, indicator, shown, accepted, overridden in connection.execute(_OUTCOMES_BY_CARD, (start,))
        )
        (unrecorded,) = connection.execute(_FEEDBACK_ON_UNRECORDED_CARDS, (start,)).fetchone()
        return FeedbackSummary(cards, unrecorded)

    def all(self) -> list[dict[str, Any]]:
        connection = self._connection()
        connection.row_factory = sqlite3.Row
        try:
            return [dict(row) for row in connection.execute("SELECT * FROM feedback ORDER BY received_at, card_uuid")]
        finally:
            connection.row_factory = None


def _now() -> str:
    return _timestamp(datetime.now(timezone.utc))


def _timestamp(moment: datetime) -> str:
    """UTC with milliseconds, one fixed width, so stored times compare correctly as text."""
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds")
