"""The platform API bridge: how an algorithm reaches Algostore's API, and nothing else.

Inside the sandbox (network-isolated), ``sitecustomize`` listens on 127.0.0.1 and forwards
each connection to a unix socket bound in from outside. Here, outside, the runner answers on
that socket: it forwards each HTTP request to the platform's API with the key of the call
being served (a short-lived key derived from it), so the algorithm's code holds no key and a
request between calls is refused. Standard library only.
"""
import os
import select
import threading
import time

HOP_HEADERS = {"connection", "keep-alive", "proxy-authorization", "te", "trailers",
               "transfer-encoding", "upgrade", "host", "authorization", "content-length"}


class CallContext:
    """The key and API address of the call in progress (None between calls)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.api_key: str | None = None
        self.api_base: str | None = None

    def set(self, api_key: str | None, api_base: str | None) -> None:
        with self.lock:
            self.api_key, self.api_base = api_key, api_base

    def get(self) -> tuple[str | None, str | None]:
        with self.lock:
            return self.api_key, self.api_base


def ended_while_idle(sock) -> bool:
    """Whether an idle connection (a socket, or anything with ``fileno()``) has something to
    read: a server says nothing on a connection it is not answering unless it is ending it.
    One ``poll``, no wait."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


class _Upstream:
    """Connections to the platform's API kept open between requests (HTTP keep-alive): a
    composed call then costs no new connection, to the web tier nor through it. One is
    reused only while idle for less than ``IDLE_SECONDS`` (well inside the web tier's own
    keep-alive, 5 s) and only if the server has said nothing on it since (an idle connection
    it closed reads as ended): a request is never sent on a connection already closed."""

    IDLE_SECONDS, KEEP = 2.0, 8

    def __init__(self) -> None:
        self.lock, self.idle = threading.Lock(), {}  # api base -> [(connection, since)]

    def take(self, api_base: str):
        import http.client  # (with the bridge: not every runner's cold start)
        import urllib.parse

        with self.lock:
            kept = self.idle.get(api_base, [])
            while kept:
                connection, since = kept.pop()
                if (connection.sock is not None
                        and time.monotonic() - since < self.IDLE_SECONDS
                        and not ended_while_idle(connection.sock)):
                    return connection
                connection.close()
        target = urllib.parse.urlsplit(api_base)
        if target.scheme == "https":
            return http.client.HTTPSConnection(target.hostname, target.port or 443,
                                               timeout=3600)
        return http.client.HTTPConnection(target.hostname, target.port or 80, timeout=3600)

    def give_back(self, api_base: str, connection, response) -> None:
        if response.will_close:
            connection.close()
            return
        with self.lock:
            kept = self.idle.setdefault(api_base, [])
            if len(kept) < self.KEEP:
                kept.append((connection, time.monotonic()))
                return
        connection.close()


def serve(socket_path: str, context: CallContext) -> "socketserver.ThreadingUnixStreamServer":
    # Imported here, not with the module: only composing algorithms' runners serve the
    # bridge, and every runner's imports are part of its cold start.
    import socketserver
    from http.server import BaseHTTPRequestHandler

    upstream = _Upstream()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self) -> None:
            api_key, api_base = context.get()
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            if not api_key or not api_base:
                self._reply(401, b'{"error": {"message": "No call is in progress: the platform '
                                 b'API is reachable only while the algorithm serves a call.", '
                                 b'"error_type": "AuthError"}}')
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
            headers["Authorization"] = api_key
            connection = upstream.take(api_base)
            try:
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
                payload = response.read()
            except Exception:  # unreachable, cut off, or a request it cannot send
                connection.close()
                self._reply(502, b'{"error": {"message": "The platform API did not answer.", '
                                 b'"error_type": "InternalError"}}')
                return
            upstream.give_back(api_base, connection, response)
            self.send_response(response.status)
            for name, value in response.getheaders():
                if name.lower() not in HOP_HEADERS:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _reply(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _forward

        def log_message(self, *args) -> None:
            pass

    if os.path.exists(socket_path):
        os.unlink(socket_path)
    server = socketserver.ThreadingUnixStreamServer(socket_path, Handler)
    server.daemon_threads = True
    os.chmod(socket_path, 0o666)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
