"""An HTTP response body read within a size and a time limit, for every call the service makes out (FHIR prefetch,
JWK Sets), so a server that sends too much or drips bytes cannot hold a worker."""
from __future__ import annotations

import time

import urllib3

_READ_CHUNK_BYTES = 64 * 1024


class BodyTooLarge(Exception):
    pass


class BodyTooSlow(Exception):
    pass


def read_bounded(response: urllib3.BaseHTTPResponse, max_bytes: int, deadline: float) -> bytes:
    """The body of a response not yet read (urllib3's, or a streamed requests response's `raw`); BodyTooLarge past
    `max_bytes`, BodyTooSlow past `deadline` (monotonic)."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise BodyTooLarge
    body = bytearray()
    # read1 returns whatever one socket read brings, so a server dripping bytes cannot hold us past the deadline.
    while chunk := response.read1(_READ_CHUNK_BYTES, decode_content=True):
        body += chunk
        if len(body) > max_bytes:
            raise BodyTooLarge
        if time.monotonic() > deadline:
            raise BodyTooSlow
    return bytes(body)
