"""The fixture-case runner: in-process and over HTTP, with a readable report and JUnit XML."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree

import pytest
import requests

from cds_hooks.case_runner import junit_xml, run_against_url, run_in_process, text_report
from cds_hooks.cases import load_case
from cds_hooks.engine import Engine

from .conftest import FIXTURES, LiveServer

FIRING = FIXTURES / "cases" / "anthracycline-trastuzumab-draft-while-doxorubicin-active.json"


@pytest.fixture(scope="module")
def engine():
    from cds_hooks.settings import Settings

    engine = Engine(Settings())
    yield engine
    engine.close()


def wrong_expectation(tmp_path, expect):
    data = json.loads(FIRING.read_text())
    data["patient"] = str(FIXTURES / "patients" / "her2pos-metastatic-on-doxorubicin.json")
    data["expect"] = expect
    path = tmp_path / "wrong-expectation.json"
    path.write_text(json.dumps(data))
    return load_case(path)


def test_passing_case_in_process(engine):
    result = run_in_process(engine, load_case(FIRING))
    assert result.passed
    assert ("anthracycline-with-trastuzumab", "critical") in result.cards


def test_failing_case_reports_what_differed(engine, tmp_path):
    case = wrong_expectation(tmp_path, {"cards": [{"card": "anthracycline-with-trastuzumab", "indicator": "info"}],
                                        "absent": ["anthracycline-with-trastuzumab"]})
    result = run_in_process(engine, case)
    assert not result.passed
    report = text_report([result])
    assert "FAIL  wrong-expectation" in report
    assert "expected: anthracycline-with-trastuzumab (info)" in report
    assert "got: anthracycline-with-trastuzumab (critical)" in report
    assert "must not appear" in report
    assert report.strip().endswith("0 passed, 1 failed")


def test_empty_expectation_fails_when_cards_come(engine, tmp_path):
    result = run_in_process(engine, wrong_expectation(tmp_path, {"empty": True}))
    assert not result.passed and "expected exactly" in result.problems[0]


def test_against_a_running_server(live_server: LiveServer):
    with requests.Session() as session:
        result = run_against_url(session, live_server.base_url, load_case(FIRING))
    assert result.passed, result.problems


def test_unreachable_server_is_a_failure_not_a_crash():
    with requests.Session() as session:
        result = run_against_url(session, "http://127.0.0.1:9", load_case(FIRING))
    assert not result.passed and "got 0" in result.problems[0]


def test_junit_xml_lists_each_case_and_failure(engine, tmp_path):
    results = [run_in_process(engine, load_case(FIRING)), run_in_process(engine, wrong_expectation(tmp_path, {"empty": True}))]
    suite = ElementTree.fromstring(junit_xml(results))
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    names = [case.get("name") for case in suite.iter("testcase")]
    assert names == ["anthracycline-trastuzumab-draft-while-doxorubicin-active", "wrong-expectation"]
    assert suite.find("testcase[@name='wrong-expectation']/failure") is not None
