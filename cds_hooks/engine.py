"""One CDS Hooks call from validated request to response; the HTTP API and the CLI both go through here.

request -> protocol validation -> scope (anything to check?) -> prefetch resolution -> typed record -> facts -> rules -> cards -> response
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Callable, Iterable

from cds_hooks.facts import Facts
from cds_hooks.prefetch import PrefetchResolver
from cds_hooks.protocol.cards import INDICATOR_ORDER, Card, Response, to_json
from cds_hooks.protocol.errors import ServiceError, UnknownService
from cds_hooks.protocol.request import HookRequest, parse_hook_request
from cds_hooks.record import DraftOrder, PatientRecord, build_record, warm_up
from cds_hooks.render import CardRenderer
from cds_hooks.rules import REGISTRY, Finding, Rule, RuleContext
from cds_hooks.scope import concerns_checks, drafts_checks_read
from cds_hooks.services import SERVICES, SERVICES_BY_ID, ServiceDefinition
from cds_hooks.settings import Settings

log = logging.getLogger(__name__)
# The engine's own cards, which belong to no rule: a check that failed, and records that were left out.
RULE_FAILURE_CARD = "rule-evaluation-failed"
RECORD_UNREADABLE_CARD = "record-unreadable"
ENGINE_CARDS = (RULE_FAILURE_CARD, RECORD_UNREADABLE_CARD)


@dataclass(frozen=True)
class IssuedCard:
    """A card in a response, as feedback statistics know it: no patient data."""

    uuid: str
    card_id: str
    # None for the engine's own cards (ENGINE_CARDS).
    rule_id: str | None
    indicator: str


@dataclass(frozen=True)
class Evaluation:
    """A response body plus what the logs and the issued-card record may say about it (no PHI)."""

    body: dict[str, Any]
    service_id: str
    issued: tuple[IssuedCard, ...]
    fetched_keys: tuple[str, ...]
    timings_ms: dict[str, float]
    # The call's record and facts (~20,000 objects on a long HER2 course, ~1 ms to free): held here, they are freed
    # when the caller drops the evaluation, which the HTTP API does after the answer is sent (api/cds_services.py).
    working_set: object = field(default=None, repr=False, compare=False)

    @property
    def card_ids(self) -> tuple[str, ...]:
        return tuple(card.card_id for card in self.issued)


class Engine:
    def __init__(
        self,
        settings: Settings,
        renderer: CardRenderer | None = None,
        resolver: PrefetchResolver | None = None,
        today: Callable[[], date] = date.today,
    ) -> None:
        self.settings = settings
        self.renderer = renderer or CardRenderer.load()
        self.resolver = resolver or PrefetchResolver(settings)
        self.today = today
        self.rules_by_hook = {service.hook: [r for r in REGISTRY if service.hook in r.hooks] for service in SERVICES}
        self._check_rule_cards()
        warm_up()

    def _check_rule_cards(self) -> None:
        """Fail at start-up, not mid-request, when a rule names a card that cards/ does not have."""
        missing = {card for rule in REGISTRY for card in rule.cards if card not in self.renderer.templates}
        missing |= {card for template in self.renderer.templates.values() for card in template.absorbs if card not in self.renderer.templates}
        missing |= {card for card in ENGINE_CARDS if card not in self.renderer.templates}
        if missing:
            raise RuntimeError(f"cards/ lacks card files: {', '.join(sorted(missing))}")

    def discovery(self) -> dict[str, Any]:
        return {"services": [service.discovery_entry() for service in SERVICES]}

    def service(self, service_id: str) -> ServiceDefinition:
        service = SERVICES_BY_ID.get(service_id)
        if service is None:
            raise UnknownService(f"no CDS service with id '{service_id}'", details=[f"known services: {', '.join(SERVICES_BY_ID)}"])
        return service

    def evaluate(self, service_id: str, body: Any) -> Evaluation:
        timings: dict[str, float] = {}
        clock = _Stopwatch(timings)
        service = self.service(service_id)
        request = parse_hook_request(body, service.hook)
        clock.lap("validate")
        concerned = concerns_checks(request)
        clock.lap("scope")
        if not concerned:
            # An order for a drug no check reads: its prefetch is neither read nor fetched (scope.py).
            return Evaluation(
                body=to_json(Response(cards=(), systemActions=())), service_id=service.id, issued=(), fetched_keys=(), timings_ms=timings
            )
        return self.check(service, request, clock)

    def check(self, service: ServiceDefinition, request: HookRequest, clock: _Stopwatch | None = None) -> Evaluation:
        """Run the service's checks on a validated request, whatever scope.concerns_checks says of it."""
        clock = clock or _Stopwatch({})
        prefetch = self.resolver.resolve(request, service.prefetch)
        clock.lap("prefetch")
        record = build_record(prefetch.resources, drafts_checks_read(request), service.observation_keys)
        clock.lap("record")
        as_of = self.today()
        context = RuleContext(
            hook=service.hook,
            patient_id=request.patient_id,
            record=record,
            facts=Facts(record, as_of, self.settings),
            focus_orders=focus_orders(request, record),
            settings=self.settings,
            as_of=as_of,
        )
        findings = self._without_absorbed(list(self._findings(context)))
        clock.lap("rules")
        rendered = sorted(
            ((rule_id, self.renderer.render(finding)) for rule_id, finding in findings),
            key=lambda pair: INDICATOR_ORDER[pair[1].indicator],
        )
        system_actions = tuple(action for _, finding in findings for action in self.renderer.render_system_actions(finding))
        clock.lap("render")
        return Evaluation(
            body=to_json(Response(cards=tuple(card for _, card in rendered), systemActions=system_actions)),
            service_id=service.id,
            issued=tuple(IssuedCard(card.uuid, _card_id(card), rule_id, card.indicator) for rule_id, card in rendered),
            fetched_keys=prefetch.fetched_keys,
            timings_ms=clock.timings,
            working_set=context,
        )

    def _findings(self, context: RuleContext) -> Iterable[tuple[str | None, Finding]]:
        """Each finding with the id of the rule that made it (None for the engine's own cards)."""
        failed: list[Rule] = []
        for rule in self.rules_by_hook[context.hook]:
            try:
                findings = list(rule.evaluate(context))
                _check_findings(rule, findings)
            except ServiceError:
                # A key's data found unreadable when a fact first read it (prefetch.PrefetchResources): the client's
                # (400) or the FHIR server's (412) answer, not a check that did not run.
                raise
            except Exception:
                # One broken rule must not silence the others; the clinician is told which check did not run.
                log.exception("rule failed", extra={"rule": rule.id})
                failed.append(rule)
                continue
            yield from ((rule.id, finding) for finding in findings)
        if failed:
            yield None, Finding(card=RULE_FAILURE_CARD, values={"rules": [rule.title for rule in failed]})
        # After every rule: an Observation joins the list when a fact first reads it.
        unreadable = context.record.unreadable
        if unreadable:
            yield None, Finding(
                card=RECORD_UNREADABLE_CARD,
                values={"records": [f"{resource.name} ({resource.reference})" for resource in unreadable]},
                evidence=tuple(resource.reference for resource in unreadable),
            )

    def _without_absorbed(self, findings: list[tuple[str | None, Finding]]) -> list[tuple[str | None, Finding]]:
        """Related findings merge: a card that another shown card absorbs (cards/ `absorbs`) is left out."""
        shown = {finding.card for _, finding in findings}
        absorbed = {other for card in shown for other in self.renderer.templates[card].absorbs} & shown
        return [(rule_id, finding) for rule_id, finding in findings if finding.card not in absorbed]

    def close(self) -> None:
        self.resolver.close()


def _check_findings(rule: Rule, findings: list[Finding]) -> None:
    """A rule gives at most one card per request, one of those it declares: it merges its own findings, so the
    clinician is not flooded."""
    cards = [finding.card for finding in findings]
    if len(cards) > 1 or not set(cards) <= set(rule.cards):
        raise RuntimeError(f"rule {rule.id} returned cards {cards}; at most one of {list(rule.cards)} is allowed")


def focus_orders(request: HookRequest, record: PatientRecord) -> tuple[DraftOrder, ...]:
    """The orders the clinician is acting on: order-select's selections, or every draft for order-sign."""
    return tuple(order for order in record.draft_orders if request.acts_on(order.reference))


def _card_id(card: Card) -> str:
    return card.source.topic.code if card.source.topic else "unknown"


class _Stopwatch:
    def __init__(self, timings: dict[str, float]) -> None:
        self.timings = timings
        self.last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = round((now - self.last) * 1000, 3)
        self.last = now
