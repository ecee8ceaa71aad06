"""CDS client authentication (CDS Hooks 2.0 §Security): the signed JWT on every discovery, service and feedback call.

A token passes only if every check passes: an allowed asymmetric `alg`, a `kid` and `typ` JWT; a trusted `iss` whose
key (from its configured jku, JWK Set file or inline keys) verifies the signature; `aud` equal to the URL called;
`exp` and `iat` within the leeway; the issuer's `tenant`; and a `jti` that no worker of this instance has seen.
Clients learn only "401 authentication failed"; the reason goes to the `cds_hooks.auth` log, never the token.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any, Mapping

import jwt
import requests
import urllib3
from flask import Flask, Response, g, jsonify, request

from cds_hooks.bounded_read import BodyTooLarge, BodyTooSlow, read_bounded
from cds_hooks.compute_turn import COMPUTE_TURN
from cds_hooks.database import ThreadConnections
from cds_hooks.json_files import UnreadableJsonFile, read_json_file
from cds_hooks.settings import ASYMMETRIC_ALGORITHMS, Settings, TrustedIssuer, is_loopback

log = logging.getLogger("cds_hooks.auth")

# CDS Hooks requires every one of these; PyJWT then checks their types and times.
REQUIRED_CLAIMS = ("iss", "aud", "exp", "iat", "jti")
# Far above any real client token (the Sandbox's is about 600 characters): parsing stops being free past it.
MAX_TOKEN_CHARS = 8 * 1024
MAX_JWKS_BYTES = 1024 * 1024
# Members that only a private JWK has: such a key must never be published, and is not used.
_PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})

NO_TRUSTED_ISSUER = (
    "authentication is required but no trusted issuer is configured. Add a [[trusted_issuers]] table "
    "(iss and jku, or jwks_file) to the settings file named by CDS_HOOKS_CONFIG, or set CDS_HOOKS_AUTH_ISSUER "
    "and CDS_HOOKS_AUTH_JKU. For local development on 127.0.0.1 only, CDS_HOOKS_AUTH_REQUIRED=false turns "
    "authentication off (make run does this)."
)

_REPLAY_SCHEMA = """
CREATE TABLE IF NOT EXISTS auth_jti (
    iss TEXT NOT NULL,
    jti TEXT NOT NULL,
    exp REAL NOT NULL,
    PRIMARY KEY (iss, jti)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS auth_jti_exp ON auth_jti (exp);
"""


class AuthenticationFailed(Exception):
    """A token was refused. The message is the reason, for the log only: it never quotes the token."""


class AuthConfigurationError(Exception):
    """The service must not start with this authentication configuration."""


class ReplayCache:
    """Every (iss, jti) accepted and not yet expired, in the service's SQLite file so all gunicorn workers share it."""

    def __init__(self, path: Path, leeway_seconds: float) -> None:
        self._connections = ThreadConnections(path, _REPLAY_SCHEMA)
        self._leeway = leeway_seconds

    def first_use(self, iss: str, jti: str, exp: float) -> bool:
        """Record the token; False if the same issuer's jti is already recorded (a replay)."""
        # One transaction, so one fsync per token: the connection is autocommit, and `with` commits or rolls back.
        connection = self._connections.get()
        connection.execute("BEGIN IMMEDIATE")
        with connection:
            # A token is accepted until exp + leeway, so its jti must be remembered at least that long.
            connection.execute("DELETE FROM auth_jti WHERE exp < ?", (time.time() - self._leeway,))
            # One statement decides: the primary key makes two workers racing with the same jti insert it once.
            inserted = connection.execute("INSERT OR IGNORE INTO auth_jti (iss, jti, exp) VALUES (?, ?, ?)", (iss, jti, exp))
        return inserted.rowcount == 1


class IssuerKeys:
    """One trusted issuer's public keys by kid: read once from a file or the settings, or fetched from its jku."""

    def __init__(self, issuer: TrustedIssuer, settings: Settings) -> None:
        self.issuer = issuer
        self._cache_seconds = settings.auth_jwks_cache_seconds
        self._min_refresh_seconds = settings.auth_jwks_min_refresh_seconds
        self._timeout = settings.auth_jwks_timeout_seconds
        self._lock = threading.Lock()
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._keys: dict[str, dict[str, Any]] = {}
        self._static = bool(issuer.jwks_file or issuer.keys)
        if issuer.jwks_file:
            self._keys = self._static_keys(_read_jwks_file(issuer.iss, issuer.jwks_file), str(issuer.jwks_file))
        elif issuer.keys:
            self._keys = self._static_keys({"keys": list(issuer.keys)}, "inline keys")

    def get(self, kid: str) -> Mapping[str, Any] | None:
        """The JWK for kid; an unknown kid refetches a jku (rate-limited), since clients rotate keys."""
        key = self._keys.get(kid)
        if self._static or (key is not None and not self._stale()):
            return key
        # Out of the compute turn: this waits on the client's JWKS host, or on the thread that is fetching from it.
        with COMPUTE_TURN.paused(), self._lock:
            key = self._keys.get(kid)  # another thread may have refetched while this one waited
            if (key is None or self._stale()) and self._may_fetch():
                self._refresh()
                key = self._keys.get(kid)
            return key

    def _stale(self) -> bool:
        return self._fetched_at is None or time.monotonic() - self._fetched_at >= self._cache_seconds

    def _may_fetch(self) -> bool:
        # Bounds outbound fetches whatever tokens arrive: forged kids must not turn us against the client's host.
        return self._attempted_at is None or time.monotonic() - self._attempted_at >= self._min_refresh_seconds

    def _refresh(self) -> None:
        self._attempted_at = time.monotonic()
        try:
            keys = _signing_keys(self._fetch(), self.issuer.jku)
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError, ValueError) as error:
            # Keep the keys we had: a short outage of the client's JWKS host must not lock the client out.
            log.warning("JWK Set fetch failed", extra={"iss": self.issuer.iss, "jku": self.issuer.jku, "error": str(error)})
            return
        self._keys = keys
        self._fetched_at = self._attempted_at

    def _fetch(self) -> Any:
        deadline = time.monotonic() + self._timeout
        # No redirects: the configured jku is the only place trusted to publish this client's keys.
        with requests.get(self.issuer.jku, timeout=self._timeout, stream=True, allow_redirects=False,
                          headers={"Accept": "application/json"}) as response:
            if response.status_code != 200:
                raise ValueError(f"the jku answered HTTP {response.status_code}")
            try:
                body = read_bounded(response.raw, MAX_JWKS_BYTES, deadline)
            except BodyTooLarge:
                raise ValueError(f"the JWK Set is larger than {MAX_JWKS_BYTES} bytes") from None
            except BodyTooSlow:
                raise ValueError("the JWK Set took too long to arrive") from None
        return json.loads(body)

    def _static_keys(self, jwks: Any, source: str) -> dict[str, dict[str, Any]]:
        try:
            keys = _signing_keys(jwks, source)
        except ValueError as error:
            raise AuthConfigurationError(f"trusted issuer {self.issuer.iss}: {error}") from None
        if not keys:
            raise AuthConfigurationError(f"trusted issuer {self.issuer.iss}: {source} has no usable public signing key with a kid")
        return keys


def _read_jwks_file(iss: str, path: Path) -> Any:
    try:
        return read_json_file(path)
    except UnreadableJsonFile as error:
        raise AuthConfigurationError(f"trusted issuer {iss}: cannot read jwks_file {path}: {error}") from None


def _signing_keys(jwks: Any, source: str) -> dict[str, dict[str, Any]]:
    """The usable public signing keys of a JWK Set, by kid; keys that cannot verify a CDS Hooks token are skipped."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise ValueError(f"{source} is not a JWK Set (an object with a 'keys' array)")
    keys: dict[str, dict[str, Any]] = {}
    for jwk in jwks["keys"]:
        if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str) or not jwk["kid"]:
            continue
        skip = None
        if jwk.get("use", "sig") != "sig":
            skip = "not a signing key"
        elif _PRIVATE_JWK_MEMBERS & jwk.keys():
            skip = "contains private or symmetric key material"
        else:
            try:
                jwt.PyJWK(jwk)  # parses the key material: a broken key is reported now, not on every request
            except jwt.PyJWTError as error:
                skip = f"unusable: {type(error).__name__}"
        if skip:
            log.warning("JWK ignored", extra={"source": source, "kid": jwk["kid"][:100], "reason": skip})
            continue
        keys[jwk["kid"]] = jwk
    return keys


class Authenticator:
    """Verifies CDS client tokens against the trusted issuers of the settings."""

    def __init__(self, settings: Settings) -> None:
        if not settings.trusted_issuers:
            raise AuthConfigurationError(NO_TRUSTED_ISSUER)
        self._issuers = {issuer.iss: IssuerKeys(issuer, settings) for issuer in settings.trusted_issuers}
        # Intersected again because settings built in code (Settings(...), replace) skip validate().
        self._algorithms = frozenset(settings.auth_algorithms) & frozenset(ASYMMETRIC_ALGORITHMS)
        self._leeway = settings.auth_leeway_seconds
        self._max_lifetime = settings.auth_max_token_lifetime_seconds
        self._replays = ReplayCache(settings.database_path, settings.auth_leeway_seconds)

    def verify(self, authorization: str | None, audience: str) -> str:
        """The issuer of a valid `Authorization: Bearer` token for a call to `audience`; AuthenticationFailed otherwise."""
        token = _bearer_token(authorization)
        try:
            header = jwt.get_unverified_header(token)
            # Read unverified only to choose the issuer's keys; the claims are used once the signature is checked.
            claimed_iss = jwt.decode(token, options={"verify_signature": False}).get("iss")
        except jwt.PyJWTError as error:
            raise AuthenticationFailed(f"malformed token: {error}") from None

        alg = header.get("alg")
        if alg not in self._algorithms:
            raise AuthenticationFailed(f"alg {_quoted(alg)} is not allowed")
        if not isinstance(header.get("typ"), str) or header["typ"].upper() != "JWT":
            raise AuthenticationFailed(f"typ {_quoted(header.get('typ'))} is not JWT")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthenticationFailed("kid is missing")
        issuer_keys = self._issuers.get(claimed_iss) if isinstance(claimed_iss, str) else None
        if issuer_keys is None:
            raise AuthenticationFailed(f"iss {_quoted(claimed_iss)} is not a trusted issuer")
        issuer = issuer_keys.issuer
        if "jku" in header and header["jku"] != issuer.jku:
            raise AuthenticationFailed(f"jku {_quoted(header['jku'])} is not the one configured for {issuer.iss}")
        jwk = issuer_keys.get(kid)
        if jwk is None:
            raise AuthenticationFailed(f"kid {_quoted(kid)} is not a key of {issuer.iss}")
        if jwk.get("alg", alg) != alg:
            raise AuthenticationFailed(f"alg {alg} is not the alg {_quoted(jwk.get('alg'))} of key {_quoted(kid)}")

        try:
            # Binding the key to the header's (allowed) alg makes PyJWT refuse a key of another type or curve.
            key = jwt.PyJWK(jwk, algorithm=alg)
            claims = jwt.decode(
                token, key=key, algorithms=[alg], audience=audience, issuer=issuer.iss, leeway=self._leeway,
                options={"require": list(REQUIRED_CLAIMS), "enforce_minimum_key_length": True},
            )
        except jwt.PyJWTError as error:
            raise AuthenticationFailed(f"{type(error).__name__}: {error}") from None

        if not isinstance(claims["jti"], str) or not claims["jti"].strip():
            raise AuthenticationFailed("jti must be a non-empty string")
        # PyJWT accepts any int()-able value, text included; RFC 7519 NumericDates are JSON numbers.
        if not all(isinstance(claims[name], (int, float)) and not isinstance(claims[name], bool) for name in ("exp", "iat")):
            raise AuthenticationFailed("exp and iat must be numbers")
        if claims["exp"] - claims["iat"] > self._max_lifetime:
            raise AuthenticationFailed(f"token lifetime exceeds {self._max_lifetime} seconds")
        if issuer.tenant and claims.get("tenant") != issuer.tenant:
            raise AuthenticationFailed(f"tenant {_quoted(claims.get('tenant'))} is not the one configured for {issuer.iss}")
        # Last, so a token refused for another reason does not use up its jti.
        if not self._replays.first_use(issuer.iss, claims["jti"], float(claims["exp"])):
            raise AuthenticationFailed("jti was already used (replay)")
        return issuer.iss


def _bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise AuthenticationFailed("no Authorization header")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationFailed("Authorization is not a Bearer token")
    if len(token) > MAX_TOKEN_CHARS:
        raise AuthenticationFailed(f"token is longer than {MAX_TOKEN_CHARS} characters")
    return token


def _quoted(value: Any) -> str:
    """A header or claim value for the log: unverified and client-chosen, so bounded."""
    return repr(value)[:120]


def expected_audience(public_base_url: str) -> str:
    """The exact URL the client called, which its token's `aud` must name."""
    if public_base_url:
        # Behind a reverse proxy the request's own URL is the internal one; clients sign for the public one.
        return public_base_url.rstrip("/") + request.path
    return request.base_url


def unauthorized() -> Response:
    """The one answer to every authentication failure: clients must not learn which check failed."""
    response = jsonify({"error": "unauthorized", "message": "authentication failed"})
    response.status_code = 401
    response.headers["WWW-Authenticate"] = "Bearer"
    return response


def require_client_tokens(app: Flask, settings: Settings, blueprint: str) -> None:
    """Refuse every request to `blueprint` without a valid client token, except CORS preflights."""
    authenticator = Authenticator(settings)

    @app.before_request
    def authenticate_client() -> Response | None:
        # Browsers send preflights without Authorization; they reach no endpoint and reveal nothing.
        if request.blueprint != blueprint or request.method == "OPTIONS":
            return None
        try:
            client = authenticator.verify(request.headers.get("Authorization"), expected_audience(settings.public_base_url))
        except AuthenticationFailed as failure:
            log.warning("authentication failed", extra={"reason": str(failure), "request_id": g.get("request_id"),
                                                        "path": request.path})
            return unauthorized()
        g.client = client
        return None


def check_serving_configuration(settings: Settings, host: str, allow_unauthenticated_non_loopback: bool) -> None:
    """Raise AuthConfigurationError for a configuration that must not serve patient data from `host`."""
    if not settings.auth_required:
        if is_loopback(host):
            log.warning("authentication is off (auth_required = false): for local development only", extra={"host": host})
            return
        if not allow_unauthenticated_non_loopback:
            raise AuthConfigurationError(
                f"authentication is off (auth_required = false) and --host {host} is reachable from other machines. "
                "CDS Hooks calls carry patient data: configure a trusted issuer instead. To serve without "
                "authentication anyway, also pass --allow-unauthenticated-non-loopback."
            )
        log.warning("authentication is off on a non-loopback host: anyone who can reach it can call it", extra={"host": host})
        return
    if not settings.trusted_issuers:
        raise AuthConfigurationError(NO_TRUSTED_ISSUER)
    if not is_loopback(host) and not settings.public_base_url:
        raise AuthConfigurationError(
            f"public_base_url is not set and --host {host} is reachable from other machines. Set it to the URL "
            "clients call (e.g. https://cds.example.org): each token's aud must name that URL, and without it the "
            "URL would be taken from the request's Host header, which a caller chooses."
        )
    for issuer in settings.trusted_issuers:
        IssuerKeys(issuer, settings)  # reads jwks_file and inline keys now, so a bad one stops start-up here
