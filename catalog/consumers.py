"""Live build logs over WebSockets: the log so far, then each new chunk as the worker writes."""
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from catalog import selectors
from catalog.models import Build


@database_sync_to_async
def _build_for(user, build_id: str) -> Build | None:
    import uuid

    try:
        build_id = uuid.UUID(build_id)
    except ValueError:  # no build has it (a 500 at the handshake, before)
        return None
    build = Build.objects.select_related("algorithm").filter(build_id=build_id).first()
    if build is None or not selectors.can_manage(algorithm=build.algorithm, user=user):
        return None
    return build


class BuildLogConsumer(AsyncJsonWebsocketConsumer):
    """``/ws/builds/<build_id>``: for the algorithm's managers only (signed-in session)."""

    async def connect(self) -> None:
        from catalog.builder import build_group

        build_id = self.scope["url_route"]["kwargs"]["build_id"]
        build = await _build_for(self.scope.get("user"), build_id)
        if build is None:
            await self.close(code=4404)
            return
        self.group = build_group(build)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        # Re-read after joining the group, so no line falls between the snapshot and the stream.
        build = await database_sync_to_async(Build.objects.get)(pk=build.pk)
        await self.send_json({"text": build.logs, "status": build.status, "snapshot": True})

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def build_log(self, event: dict) -> None:
        await self.send_json({"text": event["text"], "status": event["status"]})
