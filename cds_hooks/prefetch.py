"""Prefetch resolution: take each template's data from the request, or fetch it from fhirServer within one time budget.

Every template key is required data; when any of it cannot be had, the call ends with 412 (PrefetchUnavailable).
Data is fetched only from an allowed fhirServer (Settings.allows_fhir_server), and the bearer token goes nowhere else.
"""
from __future__ import annotations

import logging
import re
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Iterator, Mapping
from urllib.parse import quote, urljoin, urlsplit

import requests
import urllib3
import urllib3.exceptions

from cds_hooks import json_text
from cds_hooks.bounded_read import BodyTooLarge, BodyTooSlow, read_bounded
from cds_hooks.compute_turn import COMPUTE_TURN
from cds_hooks.protocol.body import BundleReader, DeferredEntries, is_utf8
from cds_hooks.protocol.errors import InvalidRequest, PrefetchUnavailable, TooManyResources
from cds_hooks.protocol.request import HookRequest
from cds_hooks.settings import Endpoint, Settings

log = logging.getLogger(__name__)

_TOKEN = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
# CDS Hooks 2.0 user tokens: the id part of context.userId when userId names a resource of this type.
_USER_TOKENS: Mapping[str, str] = {
    "userPractitionerId": "Practitioner",
    "userPractitionerRoleId": "PractitionerRole",
    "userPatientId": "Patient",
    "userRelatedPersonId": "RelatedPerson",
}
FHIR_SERVER_NOT_ALLOWED = "fhirServer is not a FHIR server this service is allowed to call"
NOT_JSON = "response is not JSON"
# A FHIR server's answers are read as json.loads reads them, not strictly like a hook call (protocol.body).
_FETCHED = BundleReader(json_text.loads, float)


class SentBundle:
    """A searchset Bundle the client sent for a key, its entries not yet read out (nor, when protocol.body deferred
    them, read from their JSON text)."""

    __slots__ = ("key", "bundle")

    def __init__(self, key: str, bundle: dict) -> None:
        self.key = key
        self.bundle = bundle

    def __len__(self) -> int:
        # What the request carries for the key.
        return resource_count(self.bundle)

    def resources(self) -> list[dict]:
        """resources_in of the Bundle; InvalidRequest (400) naming the key when its entries hold a value the service
        does not read as JSON (protocol.body)."""
        try:
            return resources_in(self.bundle)
        except json_text.NotJson as error:
            raise InvalidRequest(f"prefetch.{self.key} is {error}") from None


class FetchedPages:
    """A key's data from fhirServer: the first page the client sent, if it sent one, then the pages fetched, their
    entries read (protocol.body.DeferredEntries) when the key is first read: on the call's thread and only for a
    key a fact reads, not on the fetch's thread for every key."""

    __slots__ = ("key", "sent", "pages")

    def __init__(self, key: str, sent: SentBundle | None, pages: list[dict]) -> None:
        self.key = key
        self.sent = sent
        self.pages = pages

    def resources(self) -> list[dict]:
        found: list[dict] = []
        if self.sent is not None:
            found.extend(self.sent.resources())
        for page in self.pages:
            try:
                found.extend(resources_in(page))
            except (ValueError, RecursionError):
                # Well-formed JSON that json.loads will not convert (an integer of more than 4,300 digits), or nested
                # deeper than the call's thread reads: as when the page was read whole on arrival, the key's data
                # cannot be had.
                log.debug("prefetch key failed", extra={"key": self.key, "outcome": "failed", "reason": NOT_JSON})
                _raise_unavailable({self.key: NOT_JSON})
        return found


class PrefetchResources(Mapping[str, list[dict]]):
    """Prefetch key -> flat list of raw FHIR resources; every template key is present.

    A Bundle the client sent (SentBundle) and the pages fetched for a key (FetchedPages) are read out when the key is
    first read, so a key no fact reads, such as years of labs on a patient-view, is never walked."""

    def __init__(self, values: Mapping[str, list[dict] | SentBundle | FetchedPages]) -> None:
        self._values = dict(values)

    def __getitem__(self, key: str) -> list[dict]:
        value = self._values[key]
        if not isinstance(value, list):
            value = self._values[key] = value.resources()
        return value

    def __contains__(self, key: object) -> bool:
        # Mapping's own reads the value.
        return key in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


@dataclass(frozen=True)
class PrefetchResult:
    resources: PrefetchResources
    # Keys that had to be fetched (wholly or in part) from fhirServer, for logs and metrics.
    fetched_keys: tuple[str, ...]


def render_template(template: str, request: HookRequest) -> str | None:
    """The relative FHIR URL for `template`, or None when one of its tokens has no value in this request."""
    unresolved = False

    def substitute(match: re.Match[str]) -> str:
        nonlocal unresolved
        value = token_value(match.group(1), request.context)
        if value is None:
            unresolved = True
            return ""
        return value

    rendered = _TOKEN.sub(substitute, template)
    return None if unresolved else rendered


def token_value(token: str, context: Mapping[str, Any]) -> str | None:
    """The URL-encoded value of one prefetch token, or None when the context does not provide it."""
    if token in _USER_TOKENS:
        value = user_resource_id(context.get("userId"), _USER_TOKENS[token])
    elif token.startswith("context."):
        value = primitive_text(context.get(token.removeprefix("context.")))
    else:
        value = None
    if not value or any(segment in (".", "..") for segment in value.split("/")):
        # Dot segments would walk the URL out of the resource path the template names.
        return None
    # The slash stays so that `{{context.userId}}` can still be a `Type/id` read.
    return quote(value, safe="/")


def user_resource_id(user_id: Any, resource_type: str) -> str | None:
    """The id in a userId such as `Practitioner/123` (or an absolute URL ending so) when the type matches."""
    if not isinstance(user_id, str):
        return None
    parts = user_id.rstrip("/").rsplit("/", 2)[-2:]
    if len(parts) == 2 and parts[0] == resource_type and parts[1]:
        return parts[1]
    return None


def primitive_text(value: Any) -> str | None:
    """Text for a primitive context value; objects, arrays and null are not prefetch tokens."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int)):
        return str(value)
    return None


def resources_in(resource: dict) -> list[dict]:
    """A Bundle's entry resources (without search outcomes), or the resource itself."""
    if resource.get("resourceType") != "Bundle":
        return [resource]
    entries = resource.get("entry")
    if isinstance(entries, DeferredEntries):
        entries = entries.load()
    if not isinstance(entries, list):
        return []
    found = []
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry_resource := entry.get("resource"), dict):
            search = entry.get("search")
            # A search element that is not an object does not say the entry is an outcome: its resource is read.
            if not (isinstance(search, dict) and search.get("mode") == "outcome"):
                found.append(entry_resource)
    return found


def resource_count(resource: dict) -> int:
    """The resources `resource` carries, search outcomes included, counted without reading a Bundle's entries."""
    if resource.get("resourceType") != "Bundle":
        return 1
    entries = resource.get("entry")
    return len(entries) if isinstance(entries, (list, DeferredEntries)) else 0


def is_operation_outcome(value: Any) -> bool:
    return isinstance(value, dict) and value.get("resourceType") == "OperationOutcome"


def next_link(resource: Mapping[str, Any]) -> str | None:
    """The `next` paging link of a Bundle, if any."""
    if resource.get("resourceType") != "Bundle" or not isinstance(resource.get("link"), list):
        return None
    for link in resource["link"]:
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str) and link["url"]:
            return link["url"]
    return None


def is_on_server(url: str, fhir_server: str) -> bool:
    """True when `url` lies under the fhirServer base, so the EHR's token may go with it."""
    target, base = Endpoint.of(url), Endpoint.of(fhir_server)
    # HAPI pages with `{base}?_getpages=...`, so the base path itself counts.
    return target is not None and base is not None and target.is_under(base)


class _KeyFailed(Exception):
    """One key's data cannot be had; `reason` is safe to show the client and to log (no URL, token or body)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _ResourceCount:
    """The FHIR resources one call holds so far, against max_resources_per_request; its fetches add to it."""

    def __init__(self, limit: int, in_request: int) -> None:
        self.limit = limit
        self._total = in_request
        # Keys are fetched on several threads at once.
        self._lock = threading.Lock()

    def add(self, count: int) -> None:
        with self._lock:
            self._total += count
            if self._total > self.limit:
                raise _KeyFailed(f"this call's FHIR data is more than {self.limit} resources")


@dataclass(frozen=True)
class _Fetch:
    """One key's trip to fhirServer: the template's URL, or the `next` page of a Bundle the client sent."""

    key: str
    url: str
    # A 404 or 410 on a read means "no data"; on a search or a next page it is an error.
    is_read: bool
    # What the client already sent for this key, and how many pages that was.
    sent: SentBundle | None = None
    pages: int = 0


@dataclass(frozen=True)
class _Fetched:
    data: FetchedPages
    pages: int
    elapsed_ms: float


@dataclass(frozen=True)
class _Route:
    """The connection pool for one scheme and host, and whether the request line names the whole URL (as a
    plain-HTTP proxy expects) or only its path and query."""

    pool: urllib3.HTTPConnectionPool
    whole_url: bool

    def target(self, url: str) -> str:
        return url if self.whole_url else urllib3.util.parse_url(url).request_uri


class PrefetchResolver:
    """Resolves a request's prefetch keys; one per process, shared by all requests (it owns the worker pool)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # One pool per process, shared by all requests, so a burst of calls cannot start unbounded threads.
        self._executor = ThreadPoolExecutor(settings.prefetch_threads, thread_name_prefix="prefetch")
        # requests' connection pools and TLS set-up, used without its per-call machinery (cookies, hooks, settings
        # merged on each call: ~0.4 ms of CPU per GET, ~5 ms over a fallback's twelve concurrent fetches).
        self._adapter = requests.adapters.HTTPAdapter(pool_maxsize=settings.prefetch_threads)
        self._routes: dict[tuple[str, str], _Route] = {}

    def resolve(self, request: HookRequest, templates: Mapping[str, str]) -> PrefetchResult:
        """Every template key's resources, from the request's prefetch or fetched; raise PrefetchUnavailable."""
        started = time.monotonic()
        resources: dict[str, list[dict] | SentBundle | FetchedPages] = {}
        fetches: list[_Fetch] = []
        failures: dict[str, str] = {}
        for key, template in templates.items():
            try:
                supplied = self._supplied(key, template, request)
            except _KeyFailed as error:
                failures[key] = error.reason
                log.debug("prefetch key failed", extra={"key": key, "outcome": "failed", "pages": 0, "reason": error.reason})
                continue
            if isinstance(supplied, _Fetch):
                fetches.append(supplied)
            else:
                resources[key] = supplied
                log.debug("prefetch key supplied", extra={"key": key, "outcome": "supplied", "pages": 0, "elapsed_ms": 0.0})
        in_request = len(request.draft_orders) + sum(map(len, resources.values())) + sum(len(f.sent) for f in fetches if f.sent is not None)
        limit = self.settings.max_resources_per_request
        if in_request > limit:
            raise TooManyResources(
                f"the request carries {in_request} FHIR resources in prefetch and draftOrders; "
                f"at most {limit} are read per call"
            )
        if failures:
            # The call ends in 412 whatever the other keys return, so don't spend the FHIR server's time on them.
            _raise_unavailable(failures)
        if fetches and not self.settings.allows_fhir_server(request.fhir_server):
            endpoint = Endpoint.of(request.fhir_server)
            log.warning("fhirServer not allowed", extra={"fhir_server_host": endpoint.host if endpoint else None})
            _raise_unavailable({fetch.key: FHIR_SERVER_NOT_ALLOWED for fetch in fetches})
        resources.update(self._fetch_all(fetches, request, started, failures, _ResourceCount(limit, in_request)))
        if failures:
            _raise_unavailable(failures)
        return PrefetchResult(
            resources=PrefetchResources({key: resources[key] for key in templates}),
            fetched_keys=tuple(fetch.key for fetch in fetches),
        )

    def close(self) -> None:
        # Stragglers end on their own timeouts; nobody waits for them.
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._adapter.close()

    def _supplied(self, key: str, template: str, request: HookRequest) -> list[dict] | SentBundle | _Fetch:
        """The client's data for `key`, or the fetch that still has to be made for it."""
        value = request.prefetch.get(key)
        if key in request.prefetch and value is None:
            return []
        if value is None or is_operation_outcome(value):
            # Missing, or the client reports that its own fetch failed: ask the FHIR server ourselves.
            return self._template_fetch(key, template, request, client_failed=value is not None)
        link = next_link(value)
        if link is None:
            return SentBundle(key, value) if value.get("resourceType") == "Bundle" else resources_in(value)
        if request.fhir_server is None:
            raise _KeyFailed("the prefetched Bundle has a next page but there is no fhirServer to fetch it from")
        return _Fetch(key, self._on_server(link, request.fhir_server), False, SentBundle(key, value), pages=1)

    def _template_fetch(self, key: str, template: str, request: HookRequest, client_failed: bool) -> _Fetch:
        if request.fhir_server is None:
            where = "the client sent an OperationOutcome" if client_failed else "missing from prefetch"
            raise _KeyFailed(f"{where} and there is no fhirServer to fetch it from")
        query = render_template(template, request)
        if query is None:
            raise _KeyFailed("the prefetch template cannot be filled from this request's context")
        return _Fetch(key, f"{request.fhir_server}/{query.lstrip('/')}", is_read="?" not in query)

    def _fetch_all(
        self, fetches: list[_Fetch], request: HookRequest, started: float, failures: dict[str, str], count: _ResourceCount
    ) -> dict[str, FetchedPages]:
        """Run every fetch concurrently within the budget that began at `started`; record failures in `failures`."""
        if not fetches:
            return {}
        deadline = started + self.settings.prefetch_budget_seconds
        # gzip and deflate as requests asks for them, so a FHIR server may compress its answers.
        headers = {"Accept": "application/fhir+json", "Accept-Encoding": "gzip, deflate"}
        if request.fhir_authorization is not None:
            headers["Authorization"] = f"Bearer {request.fhir_authorization.access_token}"
        futures: dict[Future[_Fetched], _Fetch] = {
            self._executor.submit(self._fetch_key, fetch, request.fhir_server, headers, deadline, count): fetch
            for fetch in fetches
        }
        # The fetches parse their answers in turns of their own (_get): this request must not hold one meanwhile.
        with COMPUTE_TURN.paused():
            wait(futures, timeout=max(0.0, deadline - time.monotonic()))
        resolved: dict[str, FetchedPages] = {}
        for future, fetch in futures.items():
            try:
                fetched = _result_by_deadline(future, self._timeout_reason())
            except _KeyFailed as error:
                failures[fetch.key] = error.reason
                elapsed_ms = round((time.monotonic() - started) * 1000, 1)
                log.debug(
                    "prefetch key failed",
                    extra={"key": fetch.key, "outcome": "failed", "reason": error.reason, "elapsed_ms": elapsed_ms},
                )
                continue
            resolved[fetch.key] = fetched.data
            log.debug(
                "prefetch key fetched",
                extra={"key": fetch.key, "outcome": "fetched", "pages": fetched.pages, "elapsed_ms": fetched.elapsed_ms},
            )
        return resolved

    def _fetch_key(
        self, fetch: _Fetch, fhir_server: str, headers: Mapping[str, str], deadline: float, count: _ResourceCount
    ) -> _Fetched:
        """Fetch one key, following `next` links; runs on a worker thread."""
        started = time.monotonic()
        fetched: list[dict] = []
        pages = fetch.pages
        fetched_urls: set[str] = set()
        url: str | None = fetch.url
        while url is not None:
            if pages >= self.settings.prefetch_max_pages:
                raise _KeyFailed(f"more than {self.settings.prefetch_max_pages} pages")
            if url in fetched_urls:
                raise _KeyFailed("a next link repeats a page already fetched")
            fetched_urls.add(url)
            page = self._get(url, headers, deadline, not_found_is_empty=fetch.is_read and pages == fetch.pages)
            pages += 1
            if page is None:
                break
            count.add(resource_count(page))
            fetched.append(page)
            link = next_link(page)
            url = self._on_server(link, fhir_server) if link is not None else None
        return _Fetched(FetchedPages(fetch.key, fetch.sent, fetched), pages, round((time.monotonic() - started) * 1000, 1))

    def _get(self, url: str, headers: Mapping[str, str], deadline: float, not_found_is_empty: bool) -> dict | None:
        """One FHIR resource from `url`, a searchset's entries left as text (_fhir_resource), or None for a read that
        found nothing."""
        try:
            with self._response(url, headers, deadline) as response:
                if not_found_is_empty and response.status in (404, 410):
                    return None
                if not 200 <= response.status < 300:
                    raise _KeyFailed(_status_reason(response.status))
                body = self._read_body(response, deadline)
        except urllib3.exceptions.NewConnectionError as error:  # before timeouts: urllib3 makes it a ConnectTimeoutError
            raise _connection_failed(error) from None
        except (urllib3.exceptions.TimeoutError, TimeoutError):
            raise _KeyFailed(self._timeout_reason()) from None
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as error:
            raise _connection_failed(error) from None
        # Parsing is computing: in a turn, like the requests (compute_turn). Without it, eight clients of a prefetch
        # fallback got ~13 % fewer answers per second than with no turns at all. A searchset's entries are parsed
        # later, in the call's own turn, when a fact reads the key (FetchedPages).
        with COMPUTE_TURN.turn():
            return _fhir_resource(body)

    def _response(self, url: str, headers: Mapping[str, str], deadline: float) -> urllib3.BaseHTTPResponse:
        """The answer to a GET of `url`, its body still unread.

        A server may close a kept-alive connection just as we reuse it (its idle timeout fires): the GET then ends
        with the connection closed before any answer. RFC 9110 (9.2.2) lets a client repeat an idempotent request
        after such a failure, so the GET is sent once more, on a new connection. A timeout is not retried: it has
        spent the budget.
        """
        route = self._route(url)

        def send() -> urllib3.BaseHTTPResponse:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _KeyFailed(self._timeout_reason())
            # The timeout bounds connecting and each socket read; _read_body bounds the whole body. Redirects are
            # never followed, even on the same server: each hop would need the allow-list and token checks again.
            return route.pool.urlopen(
                "GET", route.target(url), headers=headers, redirect=False, assert_same_host=False, retries=False,
                preload_content=False, decode_content=False, timeout=urllib3.Timeout(connect=remaining, read=remaining),
            )

        try:
            return send()
        except urllib3.exceptions.ProtocolError:
            # The connection was open and closed with no answer (a refused or failed connect is a
            # NewConnectionError instead).
            log.debug("FHIR server closed the connection unanswered; GET sent again")
        return send()

    def _read_body(self, response: urllib3.BaseHTTPResponse, deadline: float) -> bytes:
        """The response body, refused once it exceeds the size limit or outlasts the budget."""
        limit = self.settings.prefetch_max_response_bytes
        try:
            return read_bounded(response, limit, deadline)
        except BodyTooLarge:
            raise _KeyFailed(f"response is larger than {limit} bytes") from None
        except BodyTooSlow:
            raise _KeyFailed(self._timeout_reason()) from None

    def _route(self, url: str) -> "_Route":
        """How GETs to this URL's scheme and host go out, as requests sends them: through the proxy, with the CA
        bundle and client certificate it takes from the environment (HTTPS_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE, ...).
        They depend on nothing else, and a running server's environment does not change. ~/.netrc is never read
        (requests reads it only for a call's credentials): its password for the host must never replace the EHR's
        token, nor stand in for a missing one."""
        origin = urlsplit(url)[:2]
        route = self._routes.get(origin)
        if route is None:
            with requests.Session() as reader:
                merged = reader.merge_environment_settings(url, {}, None, None, None)
            prepared = requests.Request("GET", url).prepare()
            pool = self._adapter.get_connection_with_tls_context(prepared, merged["verify"], merged["proxies"], merged["cert"])
            self._adapter.cert_verify(pool, url, merged["verify"], merged["cert"])
            whole_url = self._adapter.request_url(prepared, merged["proxies"]) == prepared.url
            route = self._routes.setdefault(origin, _Route(pool, whole_url))
        return route

    def _on_server(self, link: str, fhir_server: str) -> str:
        """The absolute URL of a `next` link, which must stay on fhirServer: the EHR's token goes with it."""
        try:
            url = urljoin(fhir_server + "/", link)
        except ValueError:  # a link urljoin cannot parse leads nowhere the token may go
            raise _KeyFailed("a next link points outside fhirServer") from None
        if not is_on_server(url, fhir_server):
            raise _KeyFailed("a next link points outside fhirServer")
        return url

    def _timeout_reason(self) -> str:
        return f"timed out after the {self.settings.prefetch_budget_seconds} s prefetch budget"


def _result_by_deadline(future: Future[_Fetched], timeout_reason: str) -> _Fetched:
    """The fetch's result, raising _KeyFailed for its failure or for not being done when the budget ran out."""
    if not future.done():
        # Still queued (the pool is busy) or still running: give up on it; it ends on its own timeout.
        future.cancel()
        raise _KeyFailed(timeout_reason)
    error = future.exception()
    if isinstance(error, _KeyFailed):
        raise error
    if error is not None:
        log.error("prefetch worker failed", exc_info=error)
        raise _KeyFailed("the service failed while fetching this data")
    return future.result()


def _fhir_resource(body: bytes) -> dict:
    """The resource of a FHIR server's answer, a Bundle's entries checked as JSON (syntax and UTF-8) but left as
    text; raise _KeyFailed."""
    try:
        resource = _FETCHED.read(body) if is_utf8(body) else json_text.loads(body)
    except ValueError:
        raise _KeyFailed(NOT_JSON) from None
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        raise _KeyFailed("response is not a FHIR resource")
    if is_operation_outcome(resource):
        raise _KeyFailed("FHIR server answered with an OperationOutcome")
    return resource


def _status_reason(status: int) -> str:
    if 300 <= status < 400:
        return f"FHIR server answered {status} (redirects are not followed)"
    return f"FHIR server answered {status}"


def _connection_failed(error: BaseException) -> _KeyFailed:
    refused = _caused_by(error, ConnectionRefusedError)
    return _KeyFailed("connection refused" if refused else "connection to the FHIR server failed")


def _caused_by(error: BaseException, cause: type[BaseException]) -> bool:
    """True when `error` is or wraps an exception of type `cause`."""
    seen: set[int] = set()
    pending: list[Any] = [error]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        if isinstance(current, cause):
            return True
        seen.add(id(current))
        # requests and urllib3 wrap the socket error in arguments, `reason` and exception chains.
        pending.extend([current.__cause__, current.__context__, getattr(current, "reason", None), *current.args])
    return False


def _raise_unavailable(failures: Mapping[str, str]) -> None:
    keys = ", ".join(failures)
    raise PrefetchUnavailable(
        f"required prefetch data is unavailable: {keys}",
        details=[{"key": key, "reason": reason} for key, reason in failures.items()],
    )
