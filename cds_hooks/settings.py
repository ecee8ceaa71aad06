"""One settings object, read once at start-up from an optional TOML file and `CDS_HOOKS_*` variables.

Defaults are safe and embedded: a SQLite file under the working folder, no external service, CDS client
authentication required unless it is explicitly turned off, and no outbound FHIR calls until a server is allowed.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import unquote, urlsplit

ENV_PREFIX = "CDS_HOOKS_"
CONFIG_FILE_VARIABLE = "CDS_HOOKS_CONFIG"
# One trusted issuer can be given without a settings file; more need [[trusted_issuers]] tables in it.
ISSUER_VARIABLES = {
    "iss": "CDS_HOOKS_AUTH_ISSUER",
    "jku": "CDS_HOOKS_AUTH_JKU",
    "jwks_file": "CDS_HOOKS_AUTH_JWKS_FILE",
    "tenant": "CDS_HOOKS_AUTH_TENANT",
}
# CDS Hooks forbids `none` and every symmetric algorithm; only these asymmetric ones can be allowed.
ASYMMETRIC_ALGORITHMS = ("ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512")


class SettingsError(ValueError):
    """A setting has a value the service cannot run with."""


@dataclass(frozen=True)
class TrustedIssuer:
    """A CDS client whose tokens are accepted, and where its public keys come from."""

    # The token's `iss`, compared exactly.
    iss: str
    # The JWK Set URL the client's tokens name in their `jku` header; keys are fetched from it unless
    # jwks_file or keys is given. A token whose `jku` differs from it (or names one when this is empty) is refused.
    jku: str = ""
    # A JWK Set file exchanged out of band (read at start-up, never fetched).
    jwks_file: Path | None = None
    # Public JWKs written inline in the settings file.
    keys: tuple[Mapping[str, Any], ...] = ()
    # When set, the token's `tenant` claim must equal it.
    tenant: str = ""

    @classmethod
    def from_mapping(cls, values: Any) -> "TrustedIssuer":
        if isinstance(values, TrustedIssuer):
            return values
        if not isinstance(values, Mapping):
            raise SettingsError("each trusted issuer must be a table with at least iss and jku, jwks_file or keys")
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise SettingsError(f"unknown trusted issuer fields: {', '.join(sorted(unknown))}")
        keys = values.get("keys", ())
        if not isinstance(keys, (list, tuple)) or not all(isinstance(key, Mapping) for key in keys):
            raise SettingsError("trusted issuer keys must be a list of JWK tables")
        return cls(
            iss=str(values.get("iss", "")),
            jku=str(values.get("jku", "")),
            jwks_file=Path(values["jwks_file"]) if values.get("jwks_file") else None,
            keys=tuple(dict(key) for key in keys),
            tenant=str(values.get("tenant", "")),
        )

    def validate(self) -> None:
        if not self.iss:
            raise SettingsError("a trusted issuer needs iss (CDS_HOOKS_AUTH_ISSUER)")
        if not (self.jku or self.jwks_file or self.keys):
            raise SettingsError(f"trusted issuer {self.iss}: give jku, jwks_file or keys")
        if self.jwks_file and self.keys:
            raise SettingsError(f"trusted issuer {self.iss}: give jwks_file or keys, not both")
        if self.jku:
            endpoint = Endpoint.of(self.jku)
            # Keys fetched over plain HTTP could be swapped in transit; loopback is allowed for local test clients.
            if endpoint is None or not endpoint.is_secure:
                raise SettingsError(f"trusted issuer {self.iss}: jku must be an https URL")


@dataclass(frozen=True)
class Endpoint:
    """Where an http(s) URL leads: scheme, host, port (the default filled in) and path without a trailing slash."""

    scheme: str
    host: str
    port: int
    path: str
    has_query_or_fragment: bool

    @classmethod
    def of(cls, url: str) -> "Endpoint | None":
        """None for anything but a plain http(s) URL: user info, backslashes, spaces, dot segments or a bad port
        are where URL parsers disagree about the host or path, so such a URL is never trusted."""
        if not isinstance(url, str) or any(char in "\\ " or not char.isprintable() for char in url):
            return None
        try:
            parts = urlsplit(url)  # a bracketed host that is not an IPv6 address is a ValueError
            port = parts.port
        except ValueError:
            return None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
            return None
        if any(segment in (".", "..") for segment in unquote(parts.path).split("/")):
            return None
        return cls(
            scheme=scheme,
            host=parts.hostname,
            port=port if port is not None else (443 if scheme == "https" else 80),
            path=parts.path.rstrip("/"),
            # Even an empty "?" counts: a FHIR path appended to such a base would land in its query.
            has_query_or_fragment="?" in url or "#" in url,
        )

    @property
    def is_secure(self) -> bool:
        """https, or plain http to this machine (loopback), where nothing crosses a network."""
        return self.scheme == "https" or is_loopback(self.host)

    def is_under(self, base: "Endpoint") -> bool:
        """True when this URL lies on `base`'s server at or below its path, at a path-segment boundary."""
        if (self.scheme, self.host, self.port) != (base.scheme, base.host, base.port):
            return False
        return self.path == base.path or self.path.startswith(base.path + "/")


@dataclass(frozen=True)
class Settings:
    # Requests with a larger body are refused with 413.
    max_body_bytes: int = 5 * 1024 * 1024
    # Where feedback is stored; relative paths are taken from the working folder.
    database_path: Path = Path("var/cds-hooks.sqlite3")
    # Total wall time for fetching every missing prefetch key from the EHR's FHIR server.
    prefetch_budget_seconds: float = 2.0
    # A Bundle `next` chain longer than this is an error, not a reason to keep fetching.
    prefetch_max_pages: int = 20
    # A single FHIR response larger than this is refused.
    prefetch_max_response_bytes: int = 10 * 1024 * 1024
    # Worker threads shared by all requests of one process for concurrent prefetch.
    prefetch_threads: int = 16
    # The only FHIR servers prefetch may call (base URLs; a request's fhirServer must be one of them or lie
    # below one). https, or http on loopback. Empty: data is never fetched, only taken from the request.
    allowed_fhir_servers: tuple[str, ...] = ()
    # Local development: FHIR servers on loopback may be called without being listed. Off in deployments,
    # where it would let a caller make the service probe ports on its own host.
    development_mode: bool = False
    # Most FHIR resources one call may bring (prefetch, fetched pages and draftOrders together), so one call
    # cannot hold a worker building hundreds of thousands of models.
    max_resources_per_request: int = 20_000
    # gunicorn process and thread counts for `cds-hooks serve`.
    workers: int = 2
    threads: int = 4
    # Log level name for the service's JSON logs.
    log_level: str = "INFO"
    # Clinical policy. LVEF hold rules differ: "US" label (>= 16-point drop) or "EU" SmPC (>= 10 points and < 50%).
    jurisdiction: str = "US"
    # Lookback windows are local policy; the labels say only "before each dose" or "every 3 months".
    weight_lookback_days: int = 30
    lab_lookback_days: int = 7
    # The window for a pregnancy test before a HER2 agent starts; a positive test counts as pregnancy beyond it
    # (facts.pregnancy.POSITIVE_TEST_MONTHS).
    pregnancy_test_lookback_days: int = 7
    baseline_lvef_lookback_days: int = 90
    lvef_monitoring_interval_days: int = 84
    # CDS client authentication (CDS Hooks 2.0 §Security): a signed JWT on every discovery, service and
    # feedback call. Turning it off is for local development; `cds-hooks serve` then stays on loopback.
    auth_required: bool = True
    # Clients whose tokens are accepted ([[trusted_issuers]] in the settings file, or CDS_HOOKS_AUTH_ISSUER...).
    trusted_issuers: tuple[TrustedIssuer, ...] = ()
    # Signature algorithms accepted (ES384 and RS384 are the ones CDS Hooks recommends).
    auth_algorithms: tuple[str, ...] = ("ES384", "RS384")
    # Clock skew allowed on exp and iat: the Sandbox rounds iat to the second, so it can be 0.5 s ahead.
    auth_leeway_seconds: float = 5.0
    # Longest token life (exp - iat) accepted: a leaked token is useful for that long at most, and the
    # replay cache holds each jti that long.
    auth_max_token_lifetime_seconds: int = 3600
    # The URL clients call this service at (scheme, host, any path prefix of a reverse proxy). The expected
    # `aud` is built from it; when empty, from the request's own URL, which is only right without a proxy.
    public_base_url: str = ""
    # A JWK Set fetched from a jku is used for this long, so a client's key removal takes effect after it.
    auth_jwks_cache_seconds: float = 300.0
    # An unknown kid refetches the set, but not more often than this, so forged kids cannot flood the client.
    auth_jwks_min_refresh_seconds: float = 10.0
    # Time allowed for fetching a JWK Set.
    auth_jwks_timeout_seconds: float = 5.0
    # The card preview page at / (fixture patients only). None ("auto"): on when `cds-hooks serve` binds a
    # loopback address (`for_host`), off for an app built any other way.
    preview_enabled: bool | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """Settings from the TOML file named by CDS_HOOKS_CONFIG, then CDS_HOOKS_* variables on top."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        config_file = environ.get(CONFIG_FILE_VARIABLE)
        if config_file:
            with open(config_file, "rb") as handle:
                values.update(tomllib.load(handle))
        for name in _field_names():
            raw = environ.get(ENV_PREFIX + name.upper())
            if raw is not None:
                values[name] = raw
        issuer = {field: environ[variable] for field, variable in ISSUER_VARIABLES.items() if environ.get(variable)}
        if issuer:
            values["trusted_issuers"] = [*values.get("trusted_issuers", ()), issuer]
        return cls.from_mapping(values)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "Settings":
        unknown = set(values) - _field_names()
        if unknown:
            raise SettingsError(f"unknown settings: {', '.join(sorted(unknown))}")
        converted = {name: _convert(name, value) for name, value in values.items()}
        settings = cls(**converted)
        settings.validate()
        return settings

    def replace(self, **changes: Any) -> "Settings":
        return dataclasses.replace(self, **{k: _convert(k, v) for k, v in changes.items()})

    def for_host(self, host: str) -> "Settings":
        """These settings with the choices left to the served address made: the preview page on loopback only."""
        if self.preview_enabled is None:
            return self.replace(preview_enabled=is_loopback(host))
        return self

    def validate(self) -> None:
        if self.jurisdiction not in ("US", "EU"):
            raise SettingsError("jurisdiction must be US or EU")
        if self.prefetch_budget_seconds <= 0:
            raise SettingsError("prefetch_budget_seconds must be positive")
        for name in (
            "max_body_bytes", "prefetch_max_pages", "prefetch_max_response_bytes", "prefetch_threads",
            "max_resources_per_request", "workers", "threads",
            "weight_lookback_days", "lab_lookback_days", "pregnancy_test_lookback_days", "baseline_lvef_lookback_days",
            "lvef_monitoring_interval_days",
        ):
            if getattr(self, name) < 1:
                raise SettingsError(f"{name} must be at least 1")
        self._validate_fhir_servers()
        self._validate_auth()

    def allows_fhir_server(self, fhir_server: str) -> bool:
        """Whether prefetch may call `fhirServer` (and send it the request's bearer token)."""
        endpoint = Endpoint.of(fhir_server)
        if endpoint is None or endpoint.has_query_or_fragment:
            return False
        if self.development_mode and is_loopback(endpoint.host):
            return True
        bases = (Endpoint.of(allowed) for allowed in self.allowed_fhir_servers)
        return any(base is not None and endpoint.is_under(base) for base in bases)

    def _validate_fhir_servers(self) -> None:
        for allowed in self.allowed_fhir_servers:
            endpoint = Endpoint.of(allowed)
            if endpoint is None or endpoint.has_query_or_fragment:
                raise SettingsError(
                    f"allowed_fhir_servers: {allowed!r} is not a FHIR base URL; give one like https://ehr.example.org/fhir "
                    "(no user info, query, fragment or dot segments)"
                )
            # The EHR's bearer token and patient data travel on this connection.
            if not endpoint.is_secure:
                raise SettingsError(f"allowed_fhir_servers: {allowed} must use https (plain http only on loopback)")

    def _validate_auth(self) -> None:
        if not self.auth_algorithms:
            raise SettingsError("auth_algorithms must name at least one algorithm")
        for algorithm in self.auth_algorithms:
            if algorithm not in ASYMMETRIC_ALGORITHMS:
                raise SettingsError(
                    f"auth_algorithms: {algorithm} is not allowed; CDS Hooks forbids none and symmetric (HS*) "
                    f"algorithms. Choose from {', '.join(ASYMMETRIC_ALGORITHMS)}"
                )
        if not 0 <= self.auth_leeway_seconds <= 60:
            raise SettingsError("auth_leeway_seconds must be between 0 and 60")
        for name in ("auth_max_token_lifetime_seconds", "auth_jwks_cache_seconds", "auth_jwks_timeout_seconds"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{name} must be positive")
        if self.auth_jwks_min_refresh_seconds < 0:
            raise SettingsError("auth_jwks_min_refresh_seconds must not be negative")
        if self.public_base_url:
            url = urlsplit(self.public_base_url)
            if url.scheme not in ("http", "https") or not url.hostname or url.query or url.fragment:
                raise SettingsError("public_base_url must be an http(s) URL without query or fragment, e.g. https://cds.example.org")
        seen: set[str] = set()
        for issuer in self.trusted_issuers:
            issuer.validate()
            if issuer.iss in seen:
                raise SettingsError(f"trusted issuer {issuer.iss} is listed twice")
            seen.add(issuer.iss)


def is_loopback(host: str) -> bool:
    """Whether a host name or address only ever reaches this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _field_names() -> set[str]:
    return {f.name for f in dataclasses.fields(Settings)}


def _convert(name: str, value: Any) -> Any:
    """Coerce text from the environment to the field's declared type."""
    declared = {f.name: f.type for f in dataclasses.fields(Settings)}[name]
    try:
        if declared == "Path":
            return Path(value)
        if declared == "float":
            return float(value)
        if declared == "int":
            return int(value)
        if declared == "bool | None" and (value is None or str(value).strip().lower() == "auto"):
            return None
        if declared in ("bool", "bool | None"):
            return value if isinstance(value, bool) else _boolean(str(value))
        if declared == "tuple[str, ...]":
            # From the environment a list is comma-separated text: CDS_HOOKS_AUTH_ALGORITHMS=ES384,ES256
            items = value.split(",") if isinstance(value, str) else value
            return tuple(str(item).strip() for item in items if str(item).strip())
        if declared == "tuple[TrustedIssuer, ...]":
            if isinstance(value, str):
                raise SettingsError(
                    "trusted_issuers is set as [[trusted_issuers]] tables in the settings file; "
                    "one issuer can be given with CDS_HOOKS_AUTH_ISSUER and CDS_HOOKS_AUTH_JKU"
                )
            return tuple(TrustedIssuer.from_mapping(item) for item in value)
    except (TypeError, ValueError) as error:
        raise SettingsError(f"setting {name}: {error}") from None
    return value


def _boolean(text: str) -> bool:
    # Strict, so that a typo in CDS_HOOKS_AUTH_REQUIRED cannot silently turn authentication off.
    word = text.strip().lower()
    if word in {"1", "true", "yes", "on"}:
        return True
    if word in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"{text!r} is not true or false")
