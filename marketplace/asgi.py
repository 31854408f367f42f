"""ASGI entry point: HTTP through Django (sync algorithm calls through the invocation
fast path first), WebSockets through Channels' router.

Apps add their WebSocket routes to ``marketplace.routing.websocket_urlpatterns``.
"""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketplace.settings.local")
django_asgi_app = get_asgi_application()  # before anything that imports models

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from execution.asgi import InvokeFastPath  # noqa: E402
from marketplace.body_limit import BodyLimit  # noqa: E402
from marketplace.routing import websocket_fallback, websocket_urlpatterns  # noqa: E402
from marketplace.websocket_origin import BrowserOriginValidator  # noqa: E402

application = ProtocolTypeRouter(
    {
        # Sync algorithm calls take the invocation fast path (execution.asgi); data uploads
        # (API and pages) are cut off at the file size limit as they arrive.
        "http": InvokeFastPath(BodyLimit(django_asgi_app, prefixes=("/v1/data/", "/data/"),
                                         limit_setting="DATA_MAX_FILE_BYTES")),
        # A browser's Origin must be this site's; clients without one use their key.
        "websocket": BrowserOriginValidator(
            AuthMiddlewareStack(URLRouter([*websocket_urlpatterns, websocket_fallback]))
        ),
    }
)
