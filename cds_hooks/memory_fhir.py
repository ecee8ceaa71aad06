"""An in-memory FHIR store answering the read/search subset that prefetch templates use.

It turns a patient Bundle into prefetch results for fixture cases and backs the local FHIR endpoint
that tests and the benchmark serve. It is not a FHIR server: unknown search parameters are an error.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping
from urllib.parse import parse_qs, urlsplit

# Search parameters (per resource type) that hold a reference to the patient.
_PATIENT_PARAMETERS = ("patient", "subject")
_REFERENCE_FIELDS = ("subject", "patient")
_DATE_FIELDS = ("effectiveDateTime", "authoredOn", "onsetDateTime", "recordedDate", "issued")


class UnsupportedQuery(ValueError):
    """The query uses a parameter this store does not implement."""


class InMemoryFhirStore:
    def __init__(self, resources: Iterable[Mapping[str, Any]]) -> None:
        self.resources = [dict(resource) for resource in resources]
        self._by_reference = {f"{r['resourceType']}/{r['id']}": r for r in self.resources if r.get("id")}

    @classmethod
    def from_bundle(cls, bundle: Mapping[str, Any]) -> "InMemoryFhirStore":
        return cls(entry["resource"] for entry in bundle.get("entry", []) if isinstance(entry.get("resource"), dict))

    def patient_id(self) -> str | None:
        return next((r["id"] for r in self.resources if r.get("resourceType") == "Patient"), None)

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any] | None:
        return self._by_reference.get(f"{resource_type}/{resource_id}")

    def query(self, relative_url: str) -> dict[str, Any] | None:
        """Answer `Type/id` (the resource or None) or `Type?params` (a searchset Bundle of every match)."""
        parts = urlsplit(relative_url)
        path = parts.path.strip("/").split("/")
        if len(path) == 2 and not parts.query:
            return self.read(path[0], path[1])
        if len(path) != 1:
            raise UnsupportedQuery(f"unsupported path {parts.path}")
        matches, included = self.search(path[0], parse_qs(parts.query))
        return searchset(matches, included)

    def search(self, resource_type: str, parameters: Mapping[str, list[str]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Matching resources (newest first when asked) and the resources their `_include`s bring along."""
        matches = [r for r in self.resources if r.get("resourceType") == resource_type]
        includes: list[str] = []
        newest_first = False
        for name, values in parameters.items():
            if name in _PATIENT_PARAMETERS:
                wanted = {value if "/" in value else f"Patient/{value}" for value in values}
                matches = [r for r in matches if _patient_reference(r) in wanted]
            elif name == "code":
                matches = [r for r in matches if _has_token(r.get("code"), values)]
            elif name == "clinical-status":
                matches = [r for r in matches if _has_token(r.get("clinicalStatus"), values)]
            elif name == "category":
                matches = [r for r in matches if any(_has_token(c, values) for c in _as_list(r.get("category")))]
            elif name == "_include":
                includes.extend(values)
            elif name == "_sort":
                newest_first = values[-1] == "-date"
            elif name in ("_count", "_page", "_format"):
                continue
            else:
                raise UnsupportedQuery(f"unsupported search parameter {name}")
        if newest_first:
            matches.sort(key=_date_key, reverse=True)
        return matches, self._included(matches, includes)

    def _included(self, matches: list[dict[str, Any]], includes: list[str]) -> list[dict[str, Any]]:
        included: dict[str, dict[str, Any]] = {}
        for include in includes:
            _, _, element = include.partition(":")
            for resource in matches:
                reference = (resource.get(f"{element}Reference") or resource.get(element) or {}).get("reference")
                target = self._by_reference.get(reference) if isinstance(reference, str) else None
                if target is not None:
                    included[reference] = target
        return list(included.values())


def searchset(matches: list[dict[str, Any]], included: list[dict[str, Any]] = (), links: list[dict[str, str]] = ()) -> dict[str, Any]:
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": len(matches)}
    if links:
        bundle["link"] = list(links)
    entries = [{"resource": r, "search": {"mode": "match"}} for r in matches]
    entries += [{"resource": r, "search": {"mode": "include"}} for r in included]
    if entries:
        bundle["entry"] = entries
    return bundle


def _patient_reference(resource: Mapping[str, Any]) -> str | None:
    for name in _REFERENCE_FIELDS:
        value = resource.get(name)
        if isinstance(value, dict) and isinstance(value.get("reference"), str):
            return value["reference"]
    return None


def _has_token(concept: Any, values: list[str]) -> bool:
    """FHIR token search: `system|code` or bare `code`, comma-separated alternatives."""
    tokens = [token for value in values for token in value.split(",") if token]
    codings = concept.get("coding", []) if isinstance(concept, dict) else []
    for token in tokens:
        system, separator, code = token.rpartition("|")
        for coding in codings:
            if coding.get("code") == code and (not separator or coding.get("system") == system):
                return True
    return False


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _date_key(resource: Mapping[str, Any]) -> str:
    for name in _DATE_FIELDS:
        if isinstance(resource.get(name), str):
            return resource[name]
    period = resource.get("effectivePeriod")
    return period.get("start", "") if isinstance(period, dict) else ""
