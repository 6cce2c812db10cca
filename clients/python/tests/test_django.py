"""The Django integration in a real (minimal) Django project, ``tests/djproject``, against a
real server: Channels' ``group_send`` through ``ShardcastChannelLayer`` reaches browsers
connected to shardcast on the tutorials' URLs."""

from __future__ import annotations

import json
import os
from typing import Any, Iterator

import pytest
from asgiref.sync import async_to_sync
from asgiref.testing import ApplicationCommunicator
from conftest import API_KEY, JWT_SECRET, Server, T
from wsutil import recv, subscribe

import shardcast


@pytest.fixture(scope="module", autouse=True)
def django_project(server: Server) -> Iterator[None]:
    """Sets Django up once, pointed at the session's open server."""
    os.environ["SHARDCAST_TEST_URL"] = server.http
    os.environ["DJANGO_SETTINGS_MODULE"] = "djproject.settings"
    import django

    django.setup()
    yield


def layer(alias: str = "default") -> Any:
    from channels.layers import get_channel_layer

    return get_channel_layer(alias)


def test_group_send_reaches_the_tracker_url_with_the_event_minus_type(server: Server) -> None:
    with subscribe(server.ws, server.http, "/ws/tracker/7/", "tracker/7") as ws:
        async_to_sync(layer().group_send)(
            "flight_room_7", {"type": "flight.update", "lat": 52.5, "lon": 13.4}
        )
        # A second call runs in a fresh event loop (async_to_sync): the layer opens a client there.
        async_to_sync(layer().group_send)(
            "flight_room_7", {"type": "flight.update", "lat": 52.6, "lon": 13.5}
        )
        # json.dumps of the event without "type": default separators, as the seeds' handlers send.
        assert recv(ws) == '{"lat": 52.5, "lon": 13.4}'
        assert recv(ws) == '{"lat": 52.6, "lon": 13.5}'


def test_groups_without_a_pattern_publish_to_the_room_of_the_same_name(server: Server) -> None:
    with subscribe(server.ws, server.http, "/ws/tracking_group/", "tracking_group") as ws:
        sent = async_to_sync(layer().group_send)("tracking_group", {"type": "vehicle.location", "id": 3})
        result = async_to_sync(layer().publish_group)("tracking_group", {"type": "vehicle.location", "id": 4})
        assert recv(ws) == '{"id": 3}'
        assert recv(ws) == '{"id": 4}'
    assert sent is None  # the Channels API
    assert isinstance(result, shardcast.PublishResult) and result.seq == 2


def test_the_seed_consumer_unchanged_broadcasts_to_shardcast_browsers(server: Server) -> None:
    """The tutorial's FlightTrackerConsumer, served by Django on the ``mixed`` layer: what it
    receives from its own socket goes to the group; the browser on shardcast gets exactly the
    bytes the consumer's own ``flight_update`` handler writes to its Django socket."""
    from djproject.asgi import application

    async def scenario() -> tuple[str, str]:
        comm = ApplicationCommunicator(
            application,
            {
                "type": "websocket",
                "path": "/ws/tracker/8/",
                "headers": [],
                "query_string": b"",
                "subprotocols": [],
            },
        )
        await comm.send_input({"type": "websocket.connect"})
        assert (await comm.receive_output(T))["type"] == "websocket.accept"
        await comm.send_input(
            {"type": "websocket.receive", "text": json.dumps({"flight": "LH123", "lat": 1.5, "lon": 2.5})}
        )
        sent = await comm.receive_output(T)
        await comm.send_input({"type": "websocket.disconnect", "code": 1000})
        await comm.wait(T)
        return sent["type"], sent["text"]

    with subscribe(server.ws, server.http, "/ws/tracker/8/", "tracker/8") as ws:
        kind, django_text = async_to_sync(scenario)()
        assert kind == "websocket.send"
        assert recv(ws) == django_text == '{"data": {"flight": "LH123", "lat": 1.5, "lon": 2.5}}'


def test_a_view_broadcasts_through_the_layer_and_the_drop_in(server: Server) -> None:
    from django.test import Client as DjangoClient

    web = DjangoClient()
    with subscribe(server.ws, server.http, "/ws/tracker/9/", "tracker/9") as ws:
        r = web.post("/flights/9/position", data={"alt": 100}, content_type="application/json")
        assert r.status_code == 200
        r = web.post("/flights/9/position-direct", data={"alt": 200}, content_type="application/json")
        assert r.status_code == 200 and r.json()["seq"] == 2
        assert recv(ws) == '{"data": {"alt": 100}}'
        assert recv(ws) == '{"data": {"alt": 200}}'


async def test_async_drop_in(server: Server) -> None:
    import shardcast.django

    with subscribe(server.ws, server.http, "/ws/tracker/10/", "tracker/10") as ws:
        r = await shardcast.django.agroup_send("flight_room_10", {"type": "x", "data": [1, 2]})
        assert recv(ws) == '{"data": [1, 2]}' and r.seq == 1


async def test_point_to_point_needs_a_delegate() -> None:
    lay = layer()
    for call in (
        lay.new_channel(),
        lay.receive("specific.x"),
        lay.send("specific.x", {"type": "t"}),
        lay.group_add("g", "specific.x"),
        lay.group_discard("g", "specific.x"),
    ):
        with pytest.raises(NotImplementedError, match="delegate"):
            await call


async def test_the_delegate_serves_django_consumers_and_group_send_reaches_both(server: Server) -> None:
    mixed = layer("mixed")
    channel = await mixed.new_channel()
    await mixed.group_add("flight_room_11", channel)
    with subscribe(server.ws, server.http, "/ws/tracker/11/", "tracker/11") as ws:
        await mixed.group_send("flight_room_11", {"type": "flight_update", "data": 1})
        assert recv(ws) == '{"data": 1}'
    assert await mixed.receive(channel) == {"type": "flight_update", "data": 1}
    await mixed.group_discard("flight_room_11", channel)


def test_encoders_configured_per_layer(server: Server) -> None:
    from shardcast.django.layer import ShardcastChannelLayer

    with_type = ShardcastChannelLayer(event_encoder="with_type")
    seed002 = ShardcastChannelLayer(event_encoder="field:message")  # self.send(text_data=event['message'])
    with subscribe(server.ws, server.http, "/ws/traffic/", "traffic") as ws:
        async_to_sync(with_type.group_send)("traffic", {"type": "update_traffic", "level": 3})
        async_to_sync(seed002.group_send)("traffic", {"type": "update_traffic", "message": '{"level":4}'})
        async_to_sync(seed002.group_send)("traffic", {"type": "update_traffic", "message": {"level": 5}})
        assert recv(ws) == '{"type": "update_traffic", "level": 3}'
        assert recv(ws) == '{"level":4}'
        assert recv(ws) == '{"level": 5}'


def test_credentials_from_config(keyed_server: Server, jwt_server: Server) -> None:
    from shardcast.django.layer import ShardcastChannelLayer

    event = {"type": "t", "v": 1}
    with pytest.raises(shardcast.Unauthorized):
        async_to_sync(ShardcastChannelLayer(url=keyed_server.http).group_send)("flight_room_1", event)
    keyed = ShardcastChannelLayer(url=keyed_server.http, api_key=API_KEY)
    assert async_to_sync(keyed.publish_group)("flight_room_1", event).seq == 1
    # JWT secret and no API key: the layer publishes with a token it mints (pub_rooms: *).
    minted = ShardcastChannelLayer(url=jwt_server.http, jwt_secret=JWT_SECRET)
    assert async_to_sync(minted.publish_group)("flight_room_1", event).seq == 1


def test_browser_tokens_from_settings(jwt_server: Server) -> None:
    from django.test import override_settings

    import shardcast.django

    with override_settings(SHARDCAST_URL=jwt_server.http, SHARDCAST_JWT_SECRET=JWT_SECRET):
        browser = shardcast.django.token("user-1", sub_rooms=["tracker/*"], ttl=60)
        with subscribe(jwt_server.ws, jwt_server.http, "/ws/tracker/12/", "tracker/12", token=browser) as ws:
            shardcast.django.group_send("flight_room_12", {"type": "t", "data": "hi"})
            assert recv(ws) == '{"data": "hi"}'
        assert shardcast.tokens.decode(browser, secret=JWT_SECRET)["sub_rooms"] == ["tracker/*"]
    with pytest.raises(RuntimeError, match="SHARDCAST_JWT_SECRET"):
        shardcast.django.token("user-1")


def test_invalid_config_fails_at_start_up() -> None:
    from shardcast.django.layer import ShardcastChannelLayer

    with pytest.raises(TypeError):
        ShardcastChannelLayer(grup_rooms={})  # misspelt key
    with pytest.raises(ValueError):
        ShardcastChannelLayer(group_rooms={"room_{id}": "r/{other}"})
    with pytest.raises(ValueError):
        ShardcastChannelLayer(delegate_group_send=True)
