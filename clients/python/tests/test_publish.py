"""Publishing over HTTP reaches real WebSocket subscribers, byte for byte."""

from __future__ import annotations

import json

import pytest
from conftest import Server, T
from wsutil import recv, subscribe

import shardcast


def test_sync_publish_is_delivered_as_compact_json_on_the_room_url(server: Server, room: str) -> None:
    # Trailing slash, as the Channels tutorials' URLs have it.
    with subscribe(server.ws, server.http, f"/ws/{room}/", room) as ws:
        with shardcast.Client(server.http, timeout=T) as c:
            r1 = c.publish(room, {"id": 42, "lat": 52.52, "lon": 13.405, "name": "Zürich"})
            r2 = c.publish(room, [1, 2, 3])
        assert recv(ws) == '{"id":42,"lat":52.52,"lon":13.405,"name":"Zürich"}'
        assert recv(ws) == "[1,2,3]"
    assert (r1.seq, r2.seq) == (1, 2)
    assert r1.epoch == r2.epoch and len(r1.epoch) == 10 and r1.epoch.isalnum()


def test_publish_raw_delivers_the_exact_bytes(server: Server, room: str) -> None:
    text = '{ "b" : 1,\n  "a": [true, null, "\\u00e9", 1.50e3] }'
    with subscribe(server.ws, server.http, f"/ws/{room}", room) as ws:
        with shardcast.Client(server.http, timeout=T) as c:
            c.publish_raw(room, text)
            c.publish_raw(room, b'"just a string"')
        assert recv(ws) == text
        assert recv(ws) == '"just a string"'


def test_tracker_room_with_slash_like_the_seed_urls(server: Server) -> None:
    with subscribe(server.ws, server.http, "/ws/tracker/4242/", "tracker/4242") as ws:
        with shardcast.Client(server.http, timeout=T) as c:
            c.publish("tracker/4242", {"data": {"alt": 10000}})
        assert json.loads(recv(ws)) == {"data": {"alt": 10000}}


async def test_async_publish(server: Server, room: str) -> None:
    with subscribe(server.ws, server.http, f"/ws/{room}/", room) as ws:
        async with shardcast.AsyncClient(server.http, timeout=T) as c:
            r = await c.publish(room, {"speed": 12.5})
            raw = await c.publish_raw(room, b'{"speed": 13}')
            info = await c.room_info(room)
        assert recv(ws) == '{"speed":12.5}'
        assert recv(ws) == '{"speed": 13}'
        assert (r.seq, raw.seq) == (1, 2)
        assert info["seq"] == 2 and info["epoch"] == r.epoch and info["subscribers"] == 1


def test_keep_alive_reuses_one_connection(server: Server, room: str) -> None:
    """A hundred publishes open one TCP connection: the pool keeps it between requests."""
    opened = []
    with shardcast.Client(server.http, timeout=T) as c:
        # httpcore reports each new connection through the trace extension.
        def trace(event: str, info: dict) -> None:
            if event == "connection.connect_tcp.complete":
                opened.append(info)

        c._http.event_hooks["request"] = [lambda req: req.extensions.__setitem__("trace", trace)]
        seqs = [c.publish(room, i).seq for i in range(100)]
    assert seqs == list(range(1, 101))
    assert len(opened) == 1


def test_room_info_and_health(server: Server, room: str) -> None:
    with shardcast.Client(server.http, timeout=T) as c:
        assert c.health()["status"] == "ok"
        assert c.room_info(room) == {"room": room, "seq": 0, "subscribers": 0, "history": 0, "epoch": None}
        c.publish(room, 1)
        assert c.room_info(room)["seq"] == 1


def test_invalid_input_fails_before_sending(server: Server) -> None:
    with shardcast.Client(server.http, timeout=T) as c:
        with pytest.raises(shardcast.InvalidRoom):
            c.publish("has space", 1)
        with pytest.raises(shardcast.InvalidRoom):
            c.publish("x" * 201, 1)
        with pytest.raises(ValueError):
            c.publish_raw("ok", '1,"room":"other"')  # would smuggle a second "room" member
        with pytest.raises(ValueError):
            c.publish_raw("ok", "NaN")
        with pytest.raises(ValueError):
            c.publish("ok", float("nan"))


def test_every_room_character_survives_the_url(server: Server, room: str) -> None:
    odd = f"{room}/A-z_0.9:x@y"
    with subscribe(server.ws, server.http, f"/ws/{odd}/", odd) as ws:
        with shardcast.Client(server.http, timeout=T) as c:
            assert c.publish(odd, {"ok": 1}).seq == 1
            assert c.room_info(odd)["room"] == odd
        assert recv(ws) == '{"ok":1}'
