"""The asyncio client: ``await AsyncClient(url).publish(room, data)``.

Same API and semantics as :class:`shardcast.Client`, over one ``httpx.AsyncClient`` (a
keep-alive pool bound to the event loop that first uses it — create one client per loop).
"""

from __future__ import annotations

import asyncio
from typing import Any, Iterable, Optional

import httpx

from .body import JsonText, PublishResult, error_from, parse_publish, publish_body
from .config import (
    DEFAULT_URL,
    Outcome,
    Settings,
    TokenSource,
    check_concurrency,
    complete,
    item_bytes,
    lanes,
)
from .errors import ShardcastError, TransportError
from .rooms import validate_room


class AsyncClient:
    """Publishes to one shardcast server over HTTP with keep-alive, from asyncio code.
    Arguments as for :class:`shardcast.Client`."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        api_key: Optional[str] = None,
        token: Optional[TokenSource] = None,
        timeout: float = 10.0,
        max_connections: int = 16,
        transport: Optional[httpx.AsyncBaseTransport] = None,
    ) -> None:
        self.settings = Settings(url=url, api_key=api_key, token=token)
        self._max_connections = max_connections
        self._http = httpx.AsyncClient(
            base_url=self.settings.base(),
            timeout=timeout,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            transport=transport,
        )

    async def publish(self, room: str, data: Any) -> PublishResult:
        """Publishes ``data`` (JSON-serializable, sent as compact JSON) to ``room``."""
        return await self._post(publish_body(room, item_bytes(data, raw=False)))

    async def publish_raw(self, room: str, data: JsonText) -> PublishResult:
        """Publishes the JSON text ``data`` byte for byte (checked to be one JSON value)."""
        return await self._post(publish_body(room, item_bytes(data, raw=True)))

    async def _post(self, body: bytes) -> PublishResult:
        try:
            resp = await self._http.post("/api/publish", content=body, headers=self.settings.headers())
        except httpx.HTTPError as e:
            raise TransportError(f"{type(e).__name__}: {e}") from e
        return parse_publish(resp)

    async def publish_many(
        self,
        items: Iterable[tuple[str, Any]],
        *,
        raw: bool = False,
        concurrency: int = 8,
    ) -> list[Outcome]:
        """As :meth:`shardcast.Client.publish_many`: one result or error per item, in batch
        order; a room's items in order on one connection, rooms concurrently (at most
        ``concurrency`` publishes in flight)."""
        # More lanes in flight than pooled connections would only queue for the pool (and
        # could time out there).
        concurrency = min(check_concurrency(concurrency), self._max_connections)
        prepared = [(validate_room(room), item_bytes(data, raw)) for room, data in items]
        out: list[Optional[Outcome]] = [None] * len(prepared)
        gate = asyncio.Semaphore(concurrency)

        async def run_lane(room: str, lane: list[tuple[int, Any]]) -> None:
            # The lane holds its slot for all its items: a connection per busy room, in order.
            async with gate:
                for i, data in lane:
                    try:
                        out[i] = await self._post(publish_body(room, data))
                    except ShardcastError as e:
                        out[i] = e

        await asyncio.gather(*(run_lane(room, lane) for room, lane in lanes(prepared).items()))
        return complete(out)

    async def room_info(self, room: str) -> dict[str, Any]:
        """``GET /api/rooms/<room>`` (see :meth:`shardcast.Client.room_info`)."""
        validate_room(room)
        return await self._get(f"/api/rooms/{room}")

    async def health(self) -> dict[str, Any]:
        """``GET /health``."""
        return await self._get("/health")

    async def _get(self, path: str) -> dict[str, Any]:
        try:
            resp = await self._http.get(path, headers=self.settings.headers())
        except httpx.HTTPError as e:
            raise TransportError(f"{type(e).__name__}: {e}") from e
        if resp.status_code != 200:
            raise error_from(resp)
        result: dict[str, Any] = resp.json()
        return result

    async def aclose(self) -> None:
        """Closes the kept-alive connections."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
