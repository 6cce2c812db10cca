"""A minimal Django Channels server in the seed tutorials' shape, for side-by-side runs
(`scripts/compare-channels.sh`).

`ws/<room>/`: the consumer joins the group named after the room; every text frame it receives
is `group_send` to that group, and each member's handler sends the text on — the room-per-URL
protocol shardcast serves at `/ws/<room>/` (exact bytes out). Run the way the tutorials run it:
Daphne, one process, here the in-memory channel layer (the tutorials' Redis layer adds a
network hop per message, so this is Channels at its cheapest).

Run: `DJANGO_SETTINGS_MODULE=chanapp daphne -b 127.0.0.1 -p PORT chanapp:application`.
"""

import re

from channels.generic.websocket import AsyncWebsocketConsumer
from channels.routing import ProtocolTypeRouter, URLRouter
from django.conf import settings
from django.urls import re_path

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-only",
        ALLOWED_HOSTS=["*"],
        INSTALLED_APPS=["channels"],
        CHANNEL_LAYERS={"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}},
    )

import django  # noqa: E402

django.setup()


def group_of(room: str) -> str:
    """Channels group names allow `a-z A-Z 0-9 - _ .` (under 100 characters)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", room)[:90]


class RoomConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        self.group = group_of(self.scope["url_route"]["kwargs"]["room"])
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        await self.channel_layer.group_send(self.group, {"type": "room.message", "text": text_data})

    async def room_message(self, event):
        await self.send(text_data=event["text"])


application = ProtocolTypeRouter(
    {"websocket": URLRouter([re_path(r"^ws/(?P<room>[^/]+(?:/[^/]+)*)/?$", RoomConsumer.as_asgi())])}
)
