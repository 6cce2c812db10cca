"""A backend view that broadcasts, the tutorials' ``group_send`` from a view, two ways."""

import json

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.http import HttpRequest, JsonResponse

import shardcast.django


def position(request: HttpRequest, flight_id: str) -> JsonResponse:
    """Channels style: the default layer's group_send, called from sync code."""
    data = json.loads(request.body)
    async_to_sync(get_channel_layer().group_send)(
        f"flight_room_{flight_id}", {"type": "flight_update", "data": data}
    )
    return JsonResponse({"ok": True})


def position_direct(request: HttpRequest, flight_id: str) -> JsonResponse:
    """The drop-in: no channel layer at all; returns the message's seq."""
    data = json.loads(request.body)
    result = shardcast.django.group_send(f"flight_room_{flight_id}", {"type": "flight_update", "data": data})
    return JsonResponse({"seq": result.seq, "epoch": result.epoch})
