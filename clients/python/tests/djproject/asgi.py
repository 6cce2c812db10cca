from channels.routing import ProtocolTypeRouter, URLRouter
from django.core.asgi import get_asgi_application

http = get_asgi_application()

from .routing import websocket_urlpatterns  # noqa: E402  (after Django is set up)

application = ProtocolTypeRouter({"http": http, "websocket": URLRouter(websocket_urlpatterns)})
