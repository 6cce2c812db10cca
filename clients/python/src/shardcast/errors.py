"""Exceptions raised by the shardcast client.

Every refusal from the server arrives as HTTP status + ``{"error":{"code":..,"message":..}}``
(DESIGN.md §3). The client turns that into one exception per *kind of reaction* the caller
needs (retry later, fix credentials, fix the input, ...), and keeps the server's ``code`` and
``status`` on every instance so nothing the server said is lost, including codes this version
of the client does not know yet.
"""

from __future__ import annotations

from typing import Optional


class ShardcastError(Exception):
    """Base class: the server refused a request, or could not be reached.

    ``code`` is the server's error code (``"rate_limited"``, ``"forbidden"``, ...) or, for
    failures with no server answer, ``"transport"``. ``status`` is the HTTP status, ``None``
    when no response arrived.
    """

    def __init__(self, code: str, message: str, status: Optional[int] = None) -> None:
        super().__init__(f"{code}: {message}" if status is None else f"{status} {code}: {message}")
        self.code = code
        self.message = message
        self.status = status


class BadRequest(ShardcastError):
    """400: the request itself is wrong (``bad_json``, ``bad_room``, ``missing_field``, ...).
    Retrying the same request cannot succeed."""


class PayloadTooLarge(BadRequest):
    """413 ``too_large``: the request body is over the server's limit (its ``--max-frame``,
    64 KiB by default); the server closes that connection."""


class Unauthorized(ShardcastError):
    """401: missing or wrong API key, or a token that is malformed, badly signed or expired."""


class Forbidden(ShardcastError):
    """403: the credentials are valid but carry no publish right on this room."""


class NotFound(ShardcastError):
    """404: the URL does not name a shardcast endpoint (wrong base URL or path prefix?)."""


class RateLimited(ShardcastError):
    """429: over the server's ``--http-publish-rate``/``--http-publish-burst`` for this
    client. Safe to retry after a pause: nothing was published."""


class TooManyRooms(ShardcastError):
    """503 ``too_many_rooms``: publishing would create a room while the server holds its
    ``--max-rooms``; existing rooms still accept publishes."""


class Unavailable(ShardcastError):
    """503 ``unavailable`` (cluster mode: the broker is unreachable, nothing was
    acknowledged) or ``too_many_connections``. Retry later."""


class TransportError(ShardcastError):
    """No HTTP answer: connection refused, reset, timed out. Whether a publish that was in
    flight reached the server is unknown."""

    def __init__(self, message: str) -> None:
        super().__init__("transport", message, None)


_BY_CODE: dict[str, type[ShardcastError]] = {
    "rate_limited": RateLimited,
    "too_many_rooms": TooManyRooms,
    "unavailable": Unavailable,
    "too_many_connections": Unavailable,
    "forbidden": Forbidden,
    "unauthorized": Unauthorized,
    "not_found": NotFound,
    "too_large": PayloadTooLarge,
}

_BY_STATUS: dict[int, type[ShardcastError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    413: PayloadTooLarge,
    429: RateLimited,
    503: Unavailable,
}


def error_for(status: int, code: str, message: str) -> ShardcastError:
    """The exception for a refusal: by code first (two 503s need different reactions), then
    by status for codes this client does not know."""
    cls = _BY_CODE.get(code) or _BY_STATUS.get(status) or ShardcastError
    return cls(code, message, status)
