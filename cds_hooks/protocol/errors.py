"""Errors that end a CDS Hooks call with a specific HTTP status and a JSON body that says why."""
from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """An error the client must see as `status` with `{"error": ..., "message": ..., "details": ...}`."""

    status = 500
    code = "internal-error"

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


class InvalidRequest(ServiceError):
    status = 400
    code = "invalid-request"


class UnknownService(ServiceError):
    status = 404
    code = "unknown-service"


class TooManyResources(ServiceError):
    """The request itself carries more FHIR resources than the service reads in one call."""

    status = 413
    code = "too-many-resources"


class UnsupportedMediaType(ServiceError):
    status = 415
    code = "unsupported-media-type"


class PrefetchUnavailable(ServiceError):
    """Data the service needs could not be had from prefetch or the FHIR server (CDS Hooks: 412)."""

    status = 412
    code = "prefetch-unavailable"
