"""Group → room mapping and event encoders, without a server."""

from __future__ import annotations

import pytest

from shardcast.django.events import field, resolve, with_type, without_type
from shardcast.django.groups import GroupRooms
from shardcast.rooms import InvalidRoom


def test_identity_by_default() -> None:
    rooms = GroupRooms()
    assert rooms.room_for("tracking_group") == "tracking_group"
    assert rooms.room_for("a.b-c_D9") == "a.b-c_D9"


def test_patterns_first_match_wins_and_fallback_is_identity() -> None:
    rooms = GroupRooms(
        {
            "flight_room_{id}": "tracker/{id}",
            "order_{shop}_{id}": "orders:{shop}/{id}",
            "flight_{x}": "never/{x}",
        }
    )
    assert rooms.room_for("flight_room_7") == "tracker/7"
    assert rooms.room_for("flight_room_LH-123.a") == "tracker/LH-123.a"
    assert rooms.room_for("order_berlin_42") == "orders:berlin/42"
    assert rooms.room_for("order_a_b_c") == "orders:a/b_c"  # placeholders are lazy, left to right
    assert rooms.room_for("flight_x") == "never/x"
    assert rooms.room_for("flight_room_") == "never/room_"  # {id} needs at least one character
    assert rooms.room_for("other") == "other"


def test_literal_parts_are_not_regex() -> None:
    rooms = GroupRooms({"a.b_{id}": "r/{id}"})
    assert rooms.room_for("a.b_1") == "r/1"
    assert rooms.room_for("aXb_1") == "aXb_1"


def test_callable_and_validation() -> None:
    assert GroupRooms(lambda g: g.replace("_", "/")).room_for("a_b") == "a/b"
    with pytest.raises(InvalidRoom):
        GroupRooms(lambda g: "bad room").room_for("x")
    with pytest.raises(ValueError):
        GroupRooms({"a_{id}_{id}": "r/{id}"})
    with pytest.raises(ValueError):
        GroupRooms({"a_{id}": "r/{nope}"})


def test_encoders() -> None:
    event = {"type": "flight_update", "data": {"lat": 1.0}, "é": 1}
    assert without_type("g", event) == '{"data": {"lat": 1.0}, "\\u00e9": 1}'
    assert with_type("g", event) == '{"type": "flight_update", "data": {"lat": 1.0}, "\\u00e9": 1}'
    assert field("data")("g", event) == '{"lat": 1.0}'
    assert field("m")("g", {"m": "[1]"}) == "[1]"
    with pytest.raises(KeyError):
        field("missing")("g", event)
    assert resolve(None) is without_type and resolve("with_type") is with_type
    assert resolve("field:data")("g", event) == '{"lat": 1.0}'


def test_encoder_by_dotted_path() -> None:
    assert resolve("shardcast.django.events.with_type") is with_type
