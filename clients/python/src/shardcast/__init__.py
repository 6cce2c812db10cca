"""Python client for shardcast, a real-time WebSocket broadcast server.

- :class:`Client` / :class:`AsyncClient` — ``publish(room, data)``, ``publish_raw``,
  ``publish_many`` (batches), ``room_info``, ``health`` over ``POST /api/publish`` with
  keep-alive connections.
- :func:`token` — HS256 JWTs the server accepts (``sub``, ``exp``, ``sub_rooms``, ``pub_rooms``).
- :mod:`shardcast.errors` — one exception per server refusal, each carrying the server's code.
- :mod:`shardcast.django` — settings, a ``group_send`` drop-in and a Channels channel layer.
"""

from .aio import AsyncClient
from .body import PublishResult
from .client import Client
from .errors import (
    BadRequest,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ShardcastError,
    TooManyRooms,
    TransportError,
    Unauthorized,
    Unavailable,
)
from .rooms import InvalidRoom, validate_room
from .tokens import token

__version__ = "0.1.0"

__all__ = [
    "AsyncClient",
    "BadRequest",
    "Client",
    "Forbidden",
    "InvalidRoom",
    "NotFound",
    "PayloadTooLarge",
    "PublishResult",
    "RateLimited",
    "ShardcastError",
    "TooManyRooms",
    "TransportError",
    "Unauthorized",
    "Unavailable",
    "token",
    "validate_room",
]
