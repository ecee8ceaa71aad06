"""Run fixture cases in-process or against a running server, and report them for people and for CI (JUnit)."""
from __future__ import annotations

import json
import time
import uuid
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

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


# The Authorization header value for a URL about to be called.
Authorization = Callable[[str], str]
# What an EC key's curve signs as; RSA keys sign RS384, the other algorithm this service accepts by default.
_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
CLIENT_TOKEN_LIFETIME_SECONDS = 300


def run_against_url(session: requests.Session, base_url: str, case: Case, authorization: Authorization | None = None) -> CaseResult:
    started = time.perf_counter()
    url = f"{base_url.rstrip('/')}/cds-services/{case.service_id}"
    auth = _AuthorizationHeader(authorization(url)) if authorization else None
    try:
        response = session.post(url, json=case.request_for("full"), auth=auth, timeout=30)
        try:
            body: Any = response.json()
        except ValueError:
            body = {"error": "not-json", "message": response.text[:300]}
        status = response.status_code
    except requests.RequestException as error:
        status, body = 0, {"error": "unreachable", "message": type(error).__name__}
    return _result(case, status, body, started)


class _AuthorizationHeader(requests.auth.AuthBase):
    """The Authorization header, given to requests as the call's `auth`: requests reads ~/.netrc (or $NETRC) for a
    call without `auth` of its own, and credentials it finds for the host would replace a header set directly."""

    def __init__(self, value: str) -> None:
        self.value = value

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = self.value
        return request


@dataclass(frozen=True)
class ClientSigner:
    """Signs each call as a CDS client does (CDS Hooks 2.0 §Security): a new JWT whose aud is the URL called and whose
    jti is new, so a server that refuses replayed tokens accepts every case."""

    private_key: Any
    algorithm: str
    iss: str
    kid: str
    tenant: str | None = None

    @classmethod
    def from_pem(cls, path: Path, iss: str, kid: str, tenant: str | None = None) -> "ClientSigner":
        """The signer for an unencrypted PEM private key (EC P-256/384/521 or RSA); ValueError when it cannot sign."""
        try:
            key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as error:
            raise ValueError(f"cannot read the private key {path}: {error}") from None
        if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name in _EC_ALGORITHMS:
            algorithm = _EC_ALGORITHMS[key.curve.name]
        elif isinstance(key, rsa.RSAPrivateKey):
            algorithm = "RS384"
        else:
            raise ValueError(f"{path}: CDS Hooks clients sign with an EC (P-256, P-384, P-521) or RSA key")
        return cls(key, algorithm, iss, kid, tenant)

    def __call__(self, url: str) -> str:
        now = int(time.time())
        claims = {"iss": self.iss, "aud": url, "iat": now, "exp": now + CLIENT_TOKEN_LIFETIME_SECONDS, "jti": str(uuid.uuid4())}
        if self.tenant:
            claims["tenant"] = self.tenant
        token = jwt.encode(claims, self.private_key, algorithm=self.algorithm, headers={"typ": "JWT", "kid": self.kid})
        return f"Bearer {token}"


def _result(case: Case, status: int, body: Any, started: float) -> CaseResult:
    cards = body.get("cards", []) if status == 200 and isinstance(body, dict) else []
    return CaseResult(
        case=case,
        problems=tuple(check_response(case, status, body)),
        cards=tuple((card_id(card) or "?", card.get("indicator", "?")) for card in cards),
        seconds=time.perf_counter() - started,
    )


def text_report(results: Iterable[CaseResult]) -> str:
    """PASS/FAIL per case; for a failure, its file, then the expectation against what came back and each difference."""
    results = list(results)
    lines = []
    for result in results:
        lines.append(f"{'PASS' if result.passed else 'FAIL'}  {result.case.name}  ({result.seconds * 1000:.0f} ms)")
        if result.passed:
            continue
        lines.append(f"      {result.case.path}" + (f": {result.case.description}" if result.case.description else ""))
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
