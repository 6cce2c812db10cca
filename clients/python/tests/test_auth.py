"""API key and JWT publishing against servers started with ``--api-key`` / ``--jwt-secret``."""

from __future__ import annotations

import time

import pytest
from conftest import API_KEY, JWT_SECRET, Server, T
from wsutil import recv, subscribe

import shardcast


def test_api_key_is_required_and_accepted(keyed_server: Server, room: str) -> None:
    with shardcast.Client(keyed_server.http, timeout=T) as c:
        with pytest.raises(shardcast.Unauthorized) as e:
            c.publish(room, 1)
        assert (e.value.status, e.value.code) == (401, "unauthorized")
    with shardcast.Client(keyed_server.http, api_key="wrong-key-0123456789", timeout=T) as c:
        with pytest.raises(shardcast.Unauthorized):
            c.publish(room, 1)
    with shardcast.Client(keyed_server.http, api_key=API_KEY, timeout=T) as c:
        assert c.publish(room, 1).seq == 1


def test_api_key_wins_over_a_token_on_a_keyed_server(keyed_server: Server, room: str) -> None:
    """The server checks only the key once one is configured: a valid token is not enough."""
    tok = shardcast.token("svc", pub_rooms=["*"], secret=JWT_SECRET)
    with shardcast.Client(keyed_server.http, token=tok, timeout=T) as c:
        with pytest.raises(shardcast.Unauthorized):
            c.publish(room, 1)


def test_minted_token_with_pub_rights_publishes(jwt_server: Server, room: str) -> None:
    pub = shardcast.token("backend", pub_rooms=["test:*"], ttl=60, secret=JWT_SECRET)
    sub = shardcast.token("browser", sub_rooms=[room], ttl=60, secret=JWT_SECRET)
    with subscribe(jwt_server.ws, jwt_server.http, f"/ws/{room}/", room, token=sub) as ws:
        with shardcast.Client(jwt_server.http, token=pub, timeout=T) as c:
            assert c.publish(room, {"ok": True}).seq == 1
        assert recv(ws) == '{"ok":true}'


def test_token_without_pub_rights_is_forbidden(jwt_server: Server, room: str) -> None:
    tok = shardcast.token("browser", sub_rooms=["*"], ttl=60, secret=JWT_SECRET)
    with shardcast.Client(jwt_server.http, token=tok, timeout=T) as c:
        with pytest.raises(shardcast.Forbidden) as e:
            c.publish(room, 1)
    assert (e.value.status, e.value.code) == (403, "forbidden")
    assert room in e.value.message


@pytest.mark.parametrize(
    "tok",
    [
        shardcast.token("x", pub_rooms=["*"], ttl=60, secret="another-secret-0123456789abcdef"),
        shardcast.token("x", pub_rooms=["*"], ttl=60, secret=JWT_SECRET, now=time.time() - 3600),
        None,
    ],
    ids=["wrong-secret", "expired", "missing"],
)
def test_bad_tokens_are_unauthorized(jwt_server: Server, room: str, tok: str) -> None:
    with shardcast.Client(jwt_server.http, token=tok, timeout=T) as c:
        with pytest.raises(shardcast.Unauthorized) as e:
            c.publish(room, 1)
    assert e.value.status == 401


def test_token_source_is_called_per_request(jwt_server: Server, room: str) -> None:
    calls = []

    def fresh() -> str:
        calls.append(1)
        return shardcast.token("svc", pub_rooms=["*"], ttl=60, secret=JWT_SECRET)

    with shardcast.Client(jwt_server.http, token=fresh, timeout=T) as c:
        c.publish(room, 1)
        c.publish(room, 2)
    assert len(calls) == 2


async def test_async_client_with_token(jwt_server: Server, room: str) -> None:
    tok = shardcast.token("svc", pub_rooms=[f"{room}"], ttl=60, secret=JWT_SECRET)
    async with shardcast.AsyncClient(jwt_server.http, token=tok, timeout=T) as c:
        assert (await c.publish(room, 1)).seq == 1
        with pytest.raises(shardcast.Forbidden):
            await c.publish(room + "x", 1)
