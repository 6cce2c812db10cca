from django.urls import re_path

from . import consumers

websocket_urlpatterns = [
    re_path(r"ws/tracker/(?P<room_id>\w+)/$", consumers.MixedFlightTrackerConsumer.as_asgi()),
]
