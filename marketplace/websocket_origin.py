"""Which WebSocket connections may open, by their Origin header."""
from channels.security.websocket import AllowedHostsOriginValidator


class BrowserOriginValidator:
    """A browser always sends ``Origin`` on a WebSocket: one from a host not in
    ALLOWED_HOSTS is refused, or another site's page could open a stream with the user's
    session cookie. A client that sends no Origin is not a browser (Python's websockets,
    a CLI): it has no cookie riding along and authenticates with its API key (header or
    ``?key=``), which Channels' validator alone refused with a 403."""

    def __init__(self, app):
        self.app = app
        self.checked = AllowedHostsOriginValidator(app)

    async def __call__(self, scope, receive, send):
        if not any(name.lower() == b"origin" for name, _ in scope.get("headers") or []):
            return await self.app(scope, receive, send)
        return await self.checked(scope, receive, send)
