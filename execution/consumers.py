"""``/ws/requests/<request_id>``: a call's status, its stdout and its result, as they happen.

Printed lines arrive while the call runs (only for calls made with ``stdout=true`` by a
caller allowed to see them): a watcher that connects mid-call first gets those printed
before it came (``execution.stdout_backlog``), one that connects after the end gets them all
at once.

Authenticated by the signed-in session or by an API key (``Authorization`` header, or
``?key=`` for browsers, which cannot set headers on WebSockets); only the caller may watch.
"""
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from execution.models import Invocation


def request_group(request_id) -> str:
    return f"request_{str(request_id).replace('-', '')}"


@database_sync_to_async
def _invocation_for(scope, request_id: str) -> Invocation | None:
    from marketplace.authentication import key_from_header
    from marketplace.errors import AuthError
    from marketplace.services import api_key_authenticate

    from execution.services import invocation_get_for_caller
    from marketplace.errors import NotFoundError

    user, key = scope.get("user"), None
    if user is None or not user.is_authenticated:
        headers = dict(scope.get("headers") or [])
        raw = headers.get(b"authorization", b"").decode() or (
            parse_qs(scope.get("query_string", b"").decode()).get("key", [""])[0])
        if not raw:
            return None
        try:
            key = api_key_authenticate(raw=key_from_header(raw))
        except AuthError:
            return None
        user = key.acting_user
    try:
        return invocation_get_for_caller(request_id=request_id, user=user, key=key)
    except NotFoundError:
        return None


@sync_to_async(thread_sensitive=False)
def _printed_so_far(request_id) -> list[str]:
    from execution import stdout_backlog

    return stdout_backlog.read(request_id)


class RequestStreamConsumer(AsyncJsonWebsocketConsumer):
    seen = 0  # lines of the backlog sent (the announcements say where theirs start)

    async def connect(self) -> None:
        request_id = self.scope["url_route"]["kwargs"]["request_id"]
        invocation = await _invocation_for(self.scope, request_id)
        if invocation is None:
            await self.close(code=4404)
            return
        self.group = request_group(invocation.request_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        invocation = await database_sync_to_async(Invocation.objects.get)(pk=invocation.pk)
        await self.send_json({"type": "status", "status": invocation.status})
        if invocation.status in Invocation.FINISHED:
            # Its printed lines only if the call could show them (stdout=true, by the
            # algorithm's owner): they are kept for the owner, and may print secrets.
            await self._send_result(invocation.result, invocation.stdout
                                    if invocation.options.get("stdout") else "")
        elif invocation.options.get("stdout"):
            # Read after joining the group: a batch printed meanwhile is in the backlog, or
            # announced to this watcher, or both (then sent once: request_stdout). Should
            # the call finish meanwhile, its backlog is still kept a minute.
            for line in await _printed_so_far(invocation.request_id):
                await self.send_json({"type": "stdout", "line": line})
                self.seen += 1

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def request_status(self, event: dict) -> None:
        await self.send_json({"type": "status", "status": event["status"]})

    async def request_stdout(self, event: dict) -> None:
        lines, first = event["lines"], event.get("first")
        if first is not None:  # what the backlog already gave this watcher is not sent again
            lines, self.seen = lines[max(self.seen - first, 0):], max(self.seen,
                                                                      first + len(lines))
        for line in lines:
            await self.send_json({"type": "stdout", "line": line})

    async def request_finished(self, event: dict) -> None:
        await self._send_result(event["envelope"], "")

    async def _send_result(self, envelope: dict, stdout: str) -> None:
        for line in (stdout or "").splitlines():
            await self.send_json({"type": "stdout", "line": line})
        await self.send_json({"type": "result", **envelope})
        await self.close()
