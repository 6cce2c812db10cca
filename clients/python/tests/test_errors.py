"""Server refusals become explicit exceptions carrying the server's code and status."""

from __future__ import annotations

import socket
from typing import Callable

import httpx
import pytest
from conftest import Server, T

import shardcast
from shardcast.body import error_from


def test_rate_limited(server_factory: Callable[..., Server], room: str) -> None:
    # Bucket of 2 refilled at 1/s: the first two pass, and publishing on at once must meet a
    # 429 soon (not necessarily the third: a machine stall of a second refills a token).
    s = server_factory("--shards", "1", "--http-publish-rate", "1", "--http-publish-burst", "2")
    with shardcast.Client(s.http, timeout=T) as c:
        assert [c.publish(room, i).seq for i in range(2)] == [1, 2]
        with pytest.raises(shardcast.RateLimited) as e:
            for i in range(20):
                c.publish(room, i)
    assert (e.value.status, e.value.code) == (429, "rate_limited")
    assert isinstance(e.value, shardcast.ShardcastError)


def test_too_many_rooms(server_factory: Callable[..., Server], room: str) -> None:
    s = server_factory("--shards", "1", "--max-rooms", "1")
    with shardcast.Client(s.http, timeout=T) as c:
        c.publish(room + "-a", 1)
        with pytest.raises(shardcast.TooManyRooms) as e:
            c.publish(room + "-b", 1)
        assert c.publish(room + "-a", 2).seq == 2  # the existing room still works
    assert (e.value.status, e.value.code) == (503, "too_many_rooms")


def test_batch_reports_rate_limited_items(server_factory: Callable[..., Server], room: str) -> None:
    s = server_factory("--shards", "1", "--http-publish-rate", "1", "--http-publish-burst", "3")
    with shardcast.Client(s.http, timeout=T) as c:
        results = c.publish_many([(room, i) for i in range(20)])
    ok = [r for r in results if isinstance(r, shardcast.PublishResult)]
    assert results[:3] == ok[:3] and [r.seq for r in ok] == list(range(1, len(ok) + 1))
    assert all(isinstance(r, (shardcast.PublishResult, shardcast.RateLimited)) for r in results)
    assert len(ok) < 20  # refused items are reported in place, the rest went on


def test_payload_too_large_then_the_client_goes_on(server: Server, room: str) -> None:
    """The server answers 413 and closes the connection; the pool opens a new one."""
    with shardcast.Client(server.http, timeout=T) as c:
        assert c.publish(room, "x" * 60_000).seq == 1
        with pytest.raises(shardcast.PayloadTooLarge) as e:
            c.publish(room, "x" * 70_000)
        assert c.publish(room, "small").seq == 2
    assert (e.value.status, e.value.code) == (413, "too_large")
    assert isinstance(e.value, shardcast.BadRequest)


def test_not_found_for_a_wrong_base_url(server: Server, room: str) -> None:
    with shardcast.Client(server.http + "/prefix", timeout=T) as c:
        with pytest.raises(shardcast.NotFound) as e:
            c.publish(room, 1)
    assert (e.value.status, e.value.code) == (404, "not_found")


def test_transport_error_when_nobody_listens(room: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        with shardcast.Client(f"http://127.0.0.1:{port}", timeout=2) as c:
            with pytest.raises(shardcast.TransportError) as e:
                c.publish(room, 1)
    assert e.value.code == "transport" and e.value.status is None


async def test_async_transport_error(room: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        async with shardcast.AsyncClient(f"http://127.0.0.1:{sock.getsockname()[1]}", timeout=2) as c:
            with pytest.raises(shardcast.TransportError):
                await c.publish(room, 1)


@pytest.mark.parametrize(
    "status,body,cls,code",
    [
        (400, b'{"error":{"code":"bad_json","message":"m"}}', shardcast.BadRequest, "bad_json"),
        (400, b'{"error":{"code":"bad_room","message":"m"}}', shardcast.BadRequest, "bad_room"),
        (503, b'{"error":{"code":"unavailable","message":"m"}}', shardcast.Unavailable, "unavailable"),
        (
            503,
            b'{"error":{"code":"too_many_connections","message":"m"}}',
            shardcast.Unavailable,
            "too_many_connections",
        ),
        (503, b'{"error":{"code":"too_many_rooms","message":"m"}}', shardcast.TooManyRooms, "too_many_rooms"),
        (418, b'{"error":{"code":"teapot","message":"m"}}', shardcast.ShardcastError, "teapot"),
        (502, b"<html>bad gateway</html>", shardcast.ShardcastError, "http_502"),
        (503, b'{"status":"degraded","broker":"disconnected"}', shardcast.Unavailable, "http_503"),
    ],
)
def test_error_mapping(status: int, body: bytes, cls: type, code: str) -> None:
    err = error_from(httpx.Response(status, content=body))
    assert type(err) is cls and err.code == code and err.status == status
