"""The WebSocket routes of every app (listed here), and the route for any other path, which
``marketplace.asgi`` puts after them."""
from django.urls import path, re_path

from catalog.consumers import BuildLogConsumer
from execution.consumers import RequestStreamConsumer
from marketplace import consumers

websocket_urlpatterns = [
    path("ws/health", consumers.HealthConsumer.as_asgi()),
    path("ws/builds/<str:build_id>", BuildLogConsumer.as_asgi()),
    path("ws/requests/<str:request_id>", RequestStreamConsumer.as_asgi()),
]
# Last, after every app's routes: whatever no route takes.
websocket_fallback = re_path(r"", consumers.NoSuchStream.as_asgi())
