"""CDS Hooks feedback: each item validated on its own and stored once in SQLite, shared by all workers."""
from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

from cds_hooks.database import ThreadConnections

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
        self._connections = ThreadConnections(self.path)
        self._connection().executescript(_SCHEMA)

    def _connection(self) -> sqlite3.Connection:
        return self._connections.get()

    def store(self, service_id: str, items: Iterable[FeedbackItem]) -> int:
        """Store items in one transaction; returns how many were new (duplicates are kept once)."""
        received = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
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

    def all(self) -> list[dict[str, Any]]:
        connection = self._connection()
        connection.row_factory = sqlite3.Row
        try:
            return [dict(row) for row in connection.execute("SELECT * FROM feedback ORDER BY received_at, card_uuid")]
        finally:
            connection.row_factory = None
