"""The WebSocket router. Each app appends its own routes here (e.g. execution's streams)."""
from django.urls import path

from catalog.consumers import BuildLogConsumer
from execution.consumers import RequestStreamConsumer
from marketplace import consumers

websocket_urlpatterns = [
    path("ws/health", consumers.HealthConsumer.as_asgi()),
    path("ws/builds/<str:build_id>", BuildLogConsumer.as_asgi()),
    path("ws/requests/<str:request_id>", RequestStreamConsumer.as_asgi()),
]
