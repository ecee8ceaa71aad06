"""`cds-hooks feedback-report` over a database filled the way production fills it: cards issued by service calls over
HTTP, then clinicians' feedback on them, also over HTTP."""
from __future__ import annotations

import csv
import io
import json
import struct
from datetime import datetime, timedelta, timezone

import pytest

from cds_hooks.cases import card_id
from cds_hooks.feedback_report import parse_since

from .conftest import LiveServer
from .test_cli import REQUEST, run_cli

CONCURRENT = "anthracycline-with-trastuzumab"
TODAY = datetime.now(timezone.utc).date()


def feedback(card, outcome, reason=None, timestamp="2026-11-22T13:46:27Z"):
    item = {"card": card["uuid"], "outcome": outcome, "outcomeTimestamp": timestamp}
    if outcome == "accepted":
        item["acceptedSuggestions"] = [{"id": card["suggestions"][0]["uuid"]}]
    if reason:
        item["overrideReason"] = {"reason": reason, "userComment": "free text stays out of the report"}
    return item


@pytest.fixture
def recorded(settings, live_server: LiveServer):
    """Five signings of trastuzumab during doxorubicin; the critical card accepted once and overridden three times
    (twice for one reason, once each for another and for none: one of those reported twice), and feedback on a card
    this database never issued."""
    request = json.loads(REQUEST.read_text())
    responses = [live_server.post("/cds-services/her2-order-sign", request).json()["cards"] for _ in range(5)]
    concurrent = [next(card for card in cards if card_id(card) == CONCURRENT) for cards in responses]
    reasons = concurrent[0]["overrideReasons"]
    items = [
        feedback(concurrent[0], "accepted"),
        feedback(concurrent[1], "overridden", reasons[0]),
        feedback(concurrent[2], "overridden", reasons[0]),
        feedback(concurrent[2], "overridden", reasons[0], timestamp="2026-11-22T13:50:00Z"),
        feedback(concurrent[3], "overridden"),
        {"card": "issued-elsewhere", "outcome": "overridden", "outcomeTimestamp": "2026-11-22T13:46:27Z"},
    ]
    assert live_server.post("/cds-services/her2-order-sign/feedback", {"feedback": items}).status_code == 200
    return {"env": {"CDS_HOOKS_DATABASE_PATH": str(settings.database_path)}, "cards_per_call": len(responses[0]),
            "reason": reasons[0]}


def report(tmp_path, recorded, *arguments):
    return run_cli("feedback-report", *arguments, cwd=tmp_path, env=recorded["env"])


def test_json_counts_each_card_once_per_outcome_with_reasons(tmp_path, recorded):
    result = report(tmp_path, recorded, "--format", "json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    cards = {card["card"]: card for card in summary["cards"]}
    assert len(cards) == recorded["cards_per_call"]
    assert cards[CONCURRENT] == {
        "rule": "cardiac.anthracycline-with-trastuzumab", "card": CONCURRENT, "indicator": "critical",
        "shown": 5, "accepted": 1, "overridden": 3, "acceptanceRate": 0.2,
        "overrideReasons": [
            {"code": recorded["reason"]["code"], "display": recorded["reason"]["display"], "count": 2},
            {"code": None, "display": None, "count": 1},
        ],
    }
    assert all(card["shown"] == 5 and card["accepted"] == 0 for name, card in cards.items() if name != CONCURRENT)
    assert summary["unrecordedCardsWithFeedback"] == 1
    assert "free text" not in result.stdout


def test_table_for_the_terminal(tmp_path, recorded):
    result = report(tmp_path, recorded)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[2].split() == ["rule", "card", "indicator", "shown", "accepted", "overridden", "accepted", "%"]
    row = next(line for line in lines if f" {CONCURRENT} " in line)
    assert row.split() == ["cardiac.anthracycline-with-trastuzumab", CONCURRENT, "critical", "5", "1", "3", "20%"]
    reasons = lines[lines.index(row) + 1]
    assert reasons == f"    overridden because: {recorded['reason']['display']} ({recorded['reason']['code']}) ×2, no reason given ×1"
    assert "1 card(s) with feedback were not recorded as issued" in result.stdout


def test_csv(tmp_path, recorded):
    result = report(tmp_path, recorded, "--format", "csv")
    assert result.returncode == 0, result.stderr
    rows = {row["card"]: row for row in csv.DictReader(io.StringIO(result.stdout))}
    assert (rows[CONCURRENT]["shown"], rows[CONCURRENT]["accepted"], rows[CONCURRENT]["overridden"]) == ("5", "1", "3")
    assert rows[CONCURRENT]["acceptance_rate"] == "0.2000"
    assert rows[CONCURRENT]["override_reasons"] == f"{recorded['reason']['display']} ({recorded['reason']['code']}): 2; no reason given: 1"


def test_since_limits_the_report_to_cards_issued_from_then(tmp_path, recorded):
    included = report(tmp_path, recorded, "--since", TODAY.isoformat(), "--format", "json")
    assert json.loads(included.stdout)["cards"][0]["shown"] == 5
    later = report(tmp_path, recorded, "--since", (TODAY + timedelta(days=1)).isoformat(), "--format", "json")
    assert later.returncode == 0 and json.loads(later.stdout)["cards"] == []
    table = report(tmp_path, recorded, "--since", (TODAY + timedelta(days=1)).isoformat())
    assert table.stdout.startswith("No cards issued (since ")


def test_since_reads_dates_and_date_times_as_utc_unless_an_offset_is_given():
    assert parse_since("2026-11-01") == datetime(2026, 11, 1, tzinfo=timezone.utc)
    assert parse_since("2026-11-01T08:30:00") == datetime(2026, 11, 1, 8, 30, tzinfo=timezone.utc)
    assert parse_since("2026-11-01T08:30:00+01:00") == datetime(2026, 11, 1, 7, 30, tzinfo=timezone.utc)


@pytest.mark.parametrize("since", ["yesterday", "2026-13-01", "01/11/2026"])
def test_a_bad_since_is_refused_with_exit_2(tmp_path, since):
    # Refused before any database is opened, so none is needed.
    result = run_cli("feedback-report", "--since", since, cwd=tmp_path)
    assert result.returncode == 2 and "--since takes a date such as 2026-01-31" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_an_unknown_format_is_refused_with_exit_2(tmp_path):
    result = run_cli("feedback-report", "--format", "xml", cwd=tmp_path)
    assert result.returncode == 2 and "invalid choice: 'xml'" in result.stderr


def test_chart_is_a_png_with_one_group_of_bars_per_card(tmp_path, recorded):
    result = report(tmp_path, recorded, "--chart", str(tmp_path / "charts" / "feedback.png"))
    assert result.returncode == 0, result.stderr
    png = (tmp_path / "charts" / "feedback.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and png[12:16] == b"IHDR" and png.endswith(b"IEND\xaeB`\x82")
    width, height = struct.unpack(">II", png[16:24])
    # 10 inches at 100 dpi wide; taller with each card.
    assert width == 1000 and height > 200
    assert CONCURRENT in result.stdout  # the table is printed as well


def test_chart_without_matplotlib_says_which_extra_to_install(tmp_path, recorded):
    # A matplotlib that cannot be imported, first on the path: as if the 'report' extra were not installed.
    (tmp_path / "shadow" / "matplotlib").mkdir(parents=True)
    (tmp_path / "shadow" / "matplotlib" / "__init__.py").write_text("raise ImportError('not installed')\n")
    result = run_cli("feedback-report", "--chart", str(tmp_path / "feedback.png"), cwd=tmp_path,
                     env={**recorded["env"], "PYTHONPATH": str(tmp_path / "shadow")})
    assert result.returncode == 2
    assert "--chart needs matplotlib: pip install 'cds-hooks-her2[report]'" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "feedback.png").exists()


def test_an_empty_database_reports_no_cards(tmp_path, settings, live_server: LiveServer):
    # The running service has created the tables; nothing has been issued yet.
    env = {"CDS_HOOKS_DATABASE_PATH": str(settings.database_path)}
    table = run_cli("feedback-report", cwd=tmp_path, env=env)
    assert table.returncode == 0 and table.stdout == "No cards issued (all recorded).\n"
    as_json = run_cli("feedback-report", "--format", "json", cwd=tmp_path, env=env)
    assert json.loads(as_json.stdout) == {"since": None, "cards": [], "unrecordedCardsWithFeedback": 0}
    chart = run_cli("feedback-report", "--chart", str(tmp_path / "empty.png"), cwd=tmp_path, env=env)
    assert chart.returncode == 0 and (tmp_path / "empty.png").read_bytes().startswith(b"\x89PNG")


def test_a_missing_or_foreign_database_is_refused_with_exit_2(tmp_path):
    missing = run_cli("feedback-report", cwd=tmp_path, env={"CDS_HOOKS_DATABASE_PATH": str(tmp_path / "nowhere.sqlite3")})
    assert missing.returncode == 2 and "no database at" in missing.stderr
    assert not (tmp_path / "nowhere.sqlite3").exists()
    (tmp_path / "notes.txt").write_text("not a database " * 100)
    foreign = run_cli("feedback-report", cwd=tmp_path, env={"CDS_HOOKS_DATABASE_PATH": str(tmp_path / "notes.txt")})
    assert foreign.returncode == 2 and "cannot read" in foreign.stderr and "Traceback" not in foreign.stderr
