"""WebSocket consumers of the site shell."""
import uuid

from channels.generic.websocket import AsyncJsonWebsocketConsumer


class NoSuchStream(AsyncJsonWebsocketConsumer):
    """Any other WebSocket path: the handshake refused (HTTP 403; code 4404 to an in-process
    test client), as for a stream the client may not see. Channels' router raised on it,
    a 500 whose error logged the path (a key in it too)."""

    async def connect(self) -> None:
        await self.close(code=4404)


class HealthConsumer(AsyncJsonWebsocketConsumer):
    """Answers with a message that made a round trip through the channel layer.

    A client that gets ``{"status": "ok"}`` knows that WebSockets and the channel layer
    (in-memory or Redis) both work.
    """

    async def connect(self) -> None:
        await self.accept()
        self.group = f"health-{uuid.uuid4().hex}"
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.channel_layer.group_send(self.group, {"type": "health.echo", "status": "ok"})

    async def health_echo(self, event: dict) -> None:
        await self.send_json({"status": event["status"], "layer": type(self.channel_layer).__name__})
        await self.channel_layer.group_discard(self.group, self.channel_name)
