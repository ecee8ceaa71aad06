"""The feedback report: per card and rule, how many were shown, accepted and overridden, and why they were overridden;
as a terminal table, JSON or CSV, and as a PNG bar chart.
"""
from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cds_hooks.feedback import CardOutcomes, FeedbackSummary, OverrideReasonCount

FORMATS = ("table", "json", "csv")
NO_RULE = "-"  # the engine's own cards (engine.ENGINE_CARDS) belong to no rule


class ChartUnavailable(RuntimeError):
    """The chart needs matplotlib, an optional dependency."""


def parse_since(text: str) -> datetime:
    """A date (from midnight UTC) or an ISO 8601 date-time (UTC unless it names an offset)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--since takes a date such as 2026-01-31 or an ISO 8601 date-time, not {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def render(summary: FeedbackSummary, since: datetime | None, output_format: str) -> str:
    if output_format == "json":
        return json.dumps(_as_json(summary, since), indent=2) + "\n"
    if output_format == "csv":
        return _as_csv(summary)
    return _as_table(summary, since)


def _as_json(summary: FeedbackSummary, since: datetime | None) -> dict[str, Any]:
    return {
        "since": since.isoformat() if since else None,
        "cards": [
            {
                "rule": card.rule_id,
                "card": card.card_id,
                "indicator": card.indicator,
                "shown": card.shown,
                "accepted": card.accepted,
                "overridden": card.overridden,
                "acceptanceRate": round(card.acceptance_rate, 4),
                "overrideReasons": [
                    {"code": reason.code, "display": reason.display, "count": reason.cards} for reason in card.override_reasons
                ],
            }
            for card in summary.cards
        ],
        "unrecordedCardsWithFeedback": summary.unrecorded_cards_with_feedback,
    }


def _as_csv(summary: FeedbackSummary) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["rule", "card", "indicator", "shown", "accepted", "overridden", "acceptance_rate", "override_reasons"])
    for card in summary.cards:
        writer.writerow([
            card.rule_id or "", card.card_id, card.indicator, card.shown, card.accepted, card.overridden,
            f"{card.acceptance_rate:.4f}", "; ".join(f"{_reason(reason)}: {reason.cards}" for reason in card.override_reasons),
        ])
    return out.getvalue()


def _as_table(summary: FeedbackSummary, since: datetime | None) -> str:
    period = f"since {since.isoformat()}" if since else "all recorded"
    if not summary.cards:
        lines = [f"No cards issued ({period})."]
    else:
        header = ("rule", "card", "indicator", "shown", "accepted", "overridden", "accepted %")
        rows = [
            (card.rule_id or NO_RULE, card.card_id, card.indicator, str(card.shown), str(card.accepted),
             str(card.overridden), f"{card.acceptance_rate:.0%}")
            for card in summary.cards
        ]
        widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]

        def line(row: tuple[str, ...]) -> str:
            # Names to the left, counts to the right.
            return "  ".join(
                value.ljust(width) if column < 3 else value.rjust(width) for column, (value, width) in enumerate(zip(row, widths))
            ).rstrip()

        lines = [f"Cards issued ({period}): shown, and how many clinicians accepted or overrode", "", line(header)]
        for card, row in zip(summary.cards, rows):
            lines.append(line(row))
            if card.override_reasons:
                reasons = ", ".join(f"{_reason(reason)} ×{reason.cards}" for reason in card.override_reasons)
                lines.append(f"    overridden because: {reasons}")
    if summary.unrecorded_cards_with_feedback:
        lines += ["", f"{summary.unrecorded_cards_with_feedback} card(s) with feedback were not recorded as issued "
                      "(shown before recording began, or by an instance with another database); not counted above."]
    return "\n".join(lines) + "\n"


def _reason(reason: OverrideReasonCount) -> str:
    if reason.code is None:
        return "no reason given"
    return f"{reason.display} ({reason.code})" if reason.display else reason.code


def write_chart(summary: FeedbackSummary, since: datetime | None, path: Path) -> None:
    """A horizontal bar chart, one group of shown / accepted / overridden bars per card, as PNG."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ChartUnavailable("--chart needs matplotlib: pip install 'cds-hooks-her2[report]'") from None
    cards = list(reversed(summary.cards))  # most shown at the top
    figure = Figure(figsize=(10, 1.5 + 0.45 * max(len(cards), 1)), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    axes.set_title(f"Card feedback ({f'since {since.date().isoformat()}' if since else 'all recorded'})")
    if not cards:
        axes.text(0.5, 0.5, "No cards issued", ha="center", va="center", transform=axes.transAxes)
        axes.set_axis_off()
    else:
        height = 0.27
        positions = range(len(cards))
        for offset, (label, color, counts) in enumerate((
            ("overridden", "tab:orange", [card.overridden for card in cards]),
            ("accepted", "tab:green", [card.accepted for card in cards]),
            ("shown", "tab:gray", [card.shown for card in cards]),
        )):
            axes.barh([p + (offset - 1) * height for p in positions], counts, height=height, label=label, color=color)
        axes.set_yticks(list(positions), [_chart_label(card) for card in cards], fontsize=8)
        axes.set_xlabel("cards")
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1), reverse=True)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=100)


def _chart_label(card: CardOutcomes) -> str:
    return f"{card.card_id} ({card.acceptance_rate:.0%} accepted)"
