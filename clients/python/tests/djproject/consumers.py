"""The flight tracker consumer of the Channels tutorial (seed 001), unchanged but for the
``process`` stand-in for its elided "Process data and update flight details"."""

import json

from channels.generic.websocket import AsyncWebsocketConsumer


def process(data):
    return {"flight": data.get("flight"), "lat": data["lat"], "lon": data["lon"]}


class FlightTrackerConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        self.room_id = self.scope["url_route"]["kwargs"]["room_id"]
        self.room_group_name = "flight_room_%s" % self.room_id  # noqa: UP031 (as in the seed)

        # Join room group
        await self.channel_layer.group_add(self.room_group_name, self.channel_name)

        await self.accept()

    async def disconnect(self, close_code):
        # Leave room group
        await self.channel_layer.group_discard(self.room_group_name, self.channel_name)

    # Receive websocket data
    async def receive(self, text_data):
        data = json.loads(text_data)
        updated_data = process(data)

        # Send updated data to room group
        await self.channel_layer.group_send(
            self.room_group_name, {"type": "flight_update", "data": updated_data}
        )

    # Receive updated flight data
    async def flight_update(self, event):
        data = event["data"]

        # Send data to websocket
        await self.send(text_data=json.dumps({"data": data}))


class MixedFlightTrackerConsumer(FlightTrackerConsumer):
    """The same consumer on the ``mixed`` layer (shardcast + an in-memory delegate)."""

    channel_layer_alias = "mixed"
