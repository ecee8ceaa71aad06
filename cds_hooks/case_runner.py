"""Run fixture cases in-process or against a running server, and report them for people and for CI (JUnit)."""
from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from typing import Any, Iterable

import requests

from cds_hooks.cases import Case, PrefetchMode, card_id, check_response
from cds_hooks.engine import Engine
from cds_hooks.protocol.errors import ServiceError


@dataclass(frozen=True)
class CaseResult:
    case: Case
    problems: tuple[str, ...]
    # (card id, indicator) of every card returned, for the report.
    cards: tuple[tuple[str, str], ...]
    seconds: float

    @property
    def passed(self) -> bool:
        return not self.problems


def run_in_process(engine: Engine, case: Case, prefetch: PrefetchMode = "full") -> CaseResult:
    started = time.perf_counter()
    try:
        status, body = 200, engine.evaluate(case.service_id, case.request_for(prefetch)).body
    except ServiceError as error:
        status, body = error.status, error.body()
    return _result(case, status, body, started)


def run_against_url(session: requests.Session, base_url: str, case: Case, headers: dict[str, str] | None = None) -> CaseResult:
    started = time.perf_counter()
    url = f"{base_url.rstrip('/')}/cds-services/{case.service_id}"
    try:
        response = session.post(url, json=case.request_for("full"), headers=headers, timeout=30)
        try:
            body: Any = response.json()
        except ValueError:
            body = {"error": "not-json", "message": response.text[:300]}
        status = response.status_code
    except requests.RequestException as error:
        status, body = 0, {"error": "unreachable", "message": type(error).__name__}
    return _result(case, status, body, started)


def _result(case: Case, status: int, body: Any, started: float) -> CaseResult:
    cards = body.get("cards", []) if status == 200 and isinstance(body, dict) else []
    return CaseResult(
        case=case,
        problems=tuple(check_response(case, status, body)),
        cards=tuple((card_id(card) or "?", card.get("indicator", "?")) for card in cards),
        seconds=time.perf_counter() - started,
    )


def text_report(results: Iterable[CaseResult]) -> str:
    """PASS/FAIL per case; for a failure, the expectation against what came back."""
    results = list(results)
    lines = []
    for result in results:
        lines.append(f"{'PASS' if result.passed else 'FAIL'}  {result.case.name}  ({result.seconds * 1000:.0f} ms)")
        if result.passed:
            continue
        expect = result.case.expect
        if expect.empty:
            lines.append("      expected: no cards at all")
        for wanted in expect.cards:
            lines.append(f"      expected: {wanted['card']}" + (f" ({wanted['indicator']})" if wanted.get("indicator") else ""))
        for unwanted in expect.absent:
            lines.append(f"      expected absent: {unwanted}")
        got = ", ".join(f"{card} ({indicator})" for card, indicator in result.cards) or "no cards"
        lines.append(f"      got: {got}")
        lines.extend(f"      - {problem}" for problem in result.problems)
    failed = sum(not r.passed for r in results)
    lines.append(f"{len(results) - failed} passed, {failed} failed")
    return "\n".join(lines) + "\n"


def junit_xml(results: Iterable[CaseResult], suite_name: str = "cds-hooks cases") -> str:
    results = list(results)
    suite = ElementTree.Element(
        "testsuite", name=suite_name, tests=str(len(results)), failures=str(sum(not r.passed for r in results)),
        errors="0", time=f"{sum(r.seconds for r in results):.3f}",
    )
    for result in results:
        testcase = ElementTree.SubElement(
            suite, "testcase", classname=result.case.service_id, name=result.case.name, time=f"{result.seconds:.3f}"
        )
        if not result.passed:
            failure = ElementTree.SubElement(testcase, "failure", message=result.problems[0])
            failure.text = "\n".join(result.problems) + "\ngot: " + json.dumps(result.cards)
    return ElementTree.tostring(suite, encoding="unicode", xml_declaration=True)
