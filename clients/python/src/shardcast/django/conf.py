"""Django settings for shardcast, read once per use site and overridable per channel layer.

=========================  =============================================================
``SHARDCAST_URL``          server base URL (default ``http://127.0.0.1:8080``)
``SHARDCAST_API_KEY``      the server's ``--api-key``, sent as ``X-Api-Key``
``SHARDCAST_JWT_SECRET``   the server's ``--jwt-secret``: :func:`shardcast.django.token`
                           mints browser tokens with it and, when no API key is set,
                           publishes with a short-lived token of its own (``pub_rooms: *``)
``SHARDCAST_GROUP_ROOMS``  group → room patterns (see :mod:`shardcast.django.groups`)
``SHARDCAST_EVENT_ENCODER`` which bytes of an event are published (:mod:`.events`)
``SHARDCAST_TIMEOUT``      seconds per HTTP request (default 10)
=========================  =============================================================
"""

from __future__ import annotations

import asyncio
import threading
import time
import types
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Optional

from ..aio import AsyncClient
from ..client import Client
from ..config import DEFAULT_URL
from ..tokens import token as mint
from .events import Encoder, EncoderSetting, resolve
from .groups import GroupRooms, GroupRoomsSetting

#: Lifetime of the token the integration mints for its own publishes, and how long before its
#: expiry a fresh one is minted (so a request never carries a token about to expire).
PUBLISH_TOKEN_TTL = 300
PUBLISH_TOKEN_MARGIN = 60


@dataclass
class Options:
    """Everything the integration needs, resolved from Django settings and overrides."""

    url: str
    api_key: Optional[str]
    jwt_secret: Optional[str]
    group_rooms: GroupRooms
    encoder: Encoder
    timeout: float

    @classmethod
    def load(cls, **overrides: Any) -> Options:
        """Settings, with non-``None`` ``overrides`` (a channel layer's ``CONFIG``) on top."""
        from django.conf import settings

        def pick(name: str, default: Any) -> Any:
            v = overrides.get(name)
            return v if v is not None else getattr(settings, f"SHARDCAST_{name.upper()}", default)

        rooms: GroupRoomsSetting = pick("group_rooms", None)
        encoder: EncoderSetting = pick("event_encoder", None)
        return cls(
            url=pick("url", DEFAULT_URL),
            api_key=pick("api_key", None),
            jwt_secret=pick("jwt_secret", None),
            group_rooms=GroupRooms(rooms),
            encoder=resolve(encoder),
            timeout=float(pick("timeout", 10.0)),
        )

    def publish_token(self) -> Optional[Callable[[], str]]:
        """A token source for publishing when only a JWT secret is configured, else ``None``
        (an API key wins on the server, and an open server needs nothing)."""
        if self.api_key is not None or self.jwt_secret is None:
            return None
        return _CachedToken(self.jwt_secret)

    def sync_client(self) -> Client:
        return Client(self.url, api_key=self.api_key, token=self.publish_token(), timeout=self.timeout)

    def async_client(self) -> AsyncClient:
        return AsyncClient(self.url, api_key=self.api_key, token=self.publish_token(), timeout=self.timeout)


class _CachedToken:
    """Mints the integration's publish token, reusing it until shortly before it expires."""

    def __init__(self, secret: str) -> None:
        self._secret = secret
        self._lock = threading.Lock()
        self._token = ""
        self._renew_at = 0.0

    def __call__(self) -> str:
        with self._lock:
            now = time.time()
            if now >= self._renew_at:
                self._token = mint(
                    "shardcast-django", pub_rooms=["*"], ttl=PUBLISH_TOKEN_TTL, secret=self._secret, now=now
                )
                self._renew_at = now + PUBLISH_TOKEN_TTL - PUBLISH_TOKEN_MARGIN
            return self._token


class LoopClients:
    """One :class:`AsyncClient` per event loop.

    An ``httpx.AsyncClient``'s connections belong to the loop that opened them, and
    ``async_to_sync`` — how Django views call ``group_send`` — runs each call in a fresh loop.
    So clients are kept per loop and closed when their loop closes (the loop's ``close`` is
    wrapped, as ``channels_redis`` does), and a loop's publishes share its keep-alive pool.
    """

    def __init__(self, factory: Callable[[], AsyncClient]) -> None:
        self._factory = factory
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncClient] = (
            weakref.WeakKeyDictionary()
        )

    def get(self) -> AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = self._factory()
            self._close_with(loop)
        return client

    def _close_with(self, loop: asyncio.AbstractEventLoop) -> None:
        original = loop.close
        clients = self._clients

        def close(self_loop: asyncio.AbstractEventLoop) -> None:
            client = clients.pop(self_loop, None)
            if client is not None and not self_loop.is_closed():
                self_loop.run_until_complete(client.aclose())
            self_loop.close = original  # type: ignore[method-assign]
            original()

        loop.close = types.MethodType(close, loop)  # type: ignore[method-assign]

    async def aclose(self) -> None:
        """Closes the current loop's client (others close with their loops)."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()
