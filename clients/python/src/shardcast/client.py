"""The synchronous client: ``Client(url).publish(room, data)``.

One ``httpx.Client`` per ``Client``: its pool keeps connections alive between publishes (a
publish on a warm connection is one round trip, no TCP or TLS handshake), and it is
thread-safe, which is what the batch publisher's worker threads rely on.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
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


class Client:
    """Publishes to one shardcast server over HTTP with keep-alive.

    ``api_key`` is the server's ``--api-key``; ``token`` a JWT with publish rights (a string or
    a callable returning one) for servers with ``--jwt-secret`` and no API key. ``timeout`` is
    per request, in seconds. ``max_connections`` bounds the pool (and so batch concurrency).
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        api_key: Optional[str] = None,
        token: Optional[TokenSource] = None,
        timeout: float = 10.0,
        max_connections: int = 16,
        transport: Optional[httpx.BaseTransport] = None,
    ) -> None:
        self.settings = Settings(url=url, api_key=api_key, token=token)
        self._max_connections = max_connections
        self._http = httpx.Client(
            base_url=self.settings.base(),
            timeout=timeout,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            transport=transport,
        )

    # -- single publishes ---------------------------------------------------------------

    def publish(self, room: str, data: Any) -> PublishResult:
        """Publishes ``data`` (any JSON-serializable value, sent as compact JSON) to ``room``.
        Subscribers on ``/ws/<room>`` receive exactly those JSON bytes."""
        return self._post(publish_body(room, item_bytes(data, raw=False)))

    def publish_raw(self, room: str, data: JsonText) -> PublishResult:
        """Publishes the JSON text ``data`` byte for byte (checked to be one JSON value):
        ``/ws/<room>`` subscribers receive exactly these bytes."""
        return self._post(publish_body(room, item_bytes(data, raw=True)))

    def _post(self, body: bytes) -> PublishResult:
        try:
            resp = self._http.post("/api/publish", content=body, headers=self.settings.headers())
        except httpx.HTTPError as e:
            raise TransportError(f"{type(e).__name__}: {e}") from e
        return parse_publish(resp)

    # -- batches ------------------------------------------------------------------------

    def publish_many(
        self,
        items: Iterable[tuple[str, Any]],
        *,
        raw: bool = False,
        concurrency: int = 8,
    ) -> list[Outcome]:
        """Publishes ``(room, data)`` pairs; returns one entry per item, in batch order: its
        :class:`PublishResult`, or the :class:`ShardcastError` it met (a failed item does not
        stop the others). Items of one room are published in batch order, so their seqs
        ascend in that order; distinct rooms go concurrently on up to ``concurrency``
        keep-alive connections (at most the pool's ``max_connections``). Invalid rooms or
        data raise before anything is sent.
        """
        # More lanes in flight than pooled connections would only queue for the pool (and
        # could time out there).
        concurrency = min(check_concurrency(concurrency), self._max_connections)
        prepared = [(validate_room(room), item_bytes(data, raw)) for room, data in items]
        out: list[Optional[Outcome]] = [None] * len(prepared)

        def run_lane(lane: list[tuple[int, Any]], room: str) -> None:
            for i, data in lane:
                try:
                    out[i] = self._post(publish_body(room, data))
                except ShardcastError as e:
                    out[i] = e

        groups = lanes(prepared)
        if len(groups) <= 1 or concurrency == 1:
            for room, lane in groups.items():
                run_lane(lane, room)
        else:
            with ThreadPoolExecutor(max_workers=min(concurrency, len(groups))) as pool:
                for f in [pool.submit(run_lane, lane, room) for room, lane in groups.items()]:
                    f.result()
        return complete(out)

    # -- facts --------------------------------------------------------------------------

    def room_info(self, room: str) -> dict[str, Any]:
        """``GET /api/rooms/<room>``: ``seq``, ``subscribers``, ``history``, ``epoch`` (``None``
        when the room does not exist; asking creates nothing)."""
        validate_room(room)
        return self._get(f"/api/rooms/{room}")

    def health(self) -> dict[str, Any]:
        """``GET /health``; raises :class:`~shardcast.errors.Unavailable` while degraded."""
        return self._get("/health")

    def _get(self, path: str) -> dict[str, Any]:
        try:
            resp = self._http.get(path, headers=self.settings.headers())
        except httpx.HTTPError as e:
            raise TransportError(f"{type(e).__name__}: {e}") from e
        if resp.status_code != 200:
            raise error_from(resp)
        result: dict[str, Any] = resp.json()
        return result

    # -- lifetime -----------------------------------------------------------------------

    def close(self) -> None:
        """Closes the kept-alive connections."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
