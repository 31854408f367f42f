"""The runner's platform API bridge (execution.runner.bridge): what an algorithm's calls to
Algostore's API go through, outside its sandbox, with the key of the call it serves."""
import http.client
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from execution.runner import bridge


class _UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over the bridge's unix socket, as the relay in the sandbox carries it."""

    def __init__(self, path: str):
        super().__init__("localhost", timeout=10)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


@pytest.fixture
def platform_api():
    """A stand-in for the web tier: keep-alive HTTP/1.1; records each request's client
    address (which connection it came on) and Authorization header. ``/drop`` answers, then
    closes its connection (as a server closing an idle keep-alive connection does)."""
    seen = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append((self.client_address, self.path, self.headers.get("Authorization")))
            body = b'{"result": "ok"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = self.path == "/drop"

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def test_calls_go_with_the_calls_key_over_one_kept_connection(platform_api, tmp_path):
    api_base, seen = platform_api
    context = bridge.CallContext()
    path = str(tmp_path / "api.sock")
    served = bridge.serve(path, context)
    try:
        def post(url: str, headers=None) -> tuple[int, bytes]:
            connection = _UnixHTTPConnection(path)  # a new one each time, as a new client
            try:
                connection.request("POST", url, body=b'"x"', headers=headers or {})
                response = connection.getresponse()
                return response.status, response.read()
            finally:
                connection.close()

        status, body = post("/v1/algo/a/b")  # between calls: refused, nothing forwarded
        assert status == 401 and b"No call is in progress" in body and seen == []

        context.set("ak_call_key", api_base)
        answers = [post("/v1/algo/a/b", {"Authorization": "ak_forged"}) for _ in range(3)]
        assert answers == [(200, b'{"result": "ok"}')] * 3
        assert [auth for _, _, auth in seen] == ["ak_call_key"] * 3  # the call's, not theirs
        assert len({address for address, _, _ in seen}) == 1  # one upstream connection

        assert post("/drop") == (200, b'{"result": "ok"}')  # the server closes it after this
        assert post("/v1/algo/a/b") == (200, b'{"result": "ok"}')  # not sent on the closed one
        assert seen[-1][0] != seen[0][0] and seen[-2][0] == seen[0][0]

        context.set("ak_call_key", "http://127.0.0.1:9")  # nothing listens there
        status, body = post("/v1/algo/a/b")
        assert status == 502 and b"The platform API did not answer." in body
        context.set("ak_call_key", api_base)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw:  # a path that
            raw.connect(path)  # http.client will not send on (not ASCII)
            raw.sendall('POST /v1/algo/é HTTP/1.1\r\nContent-Length: 3\r\n\r\n"x"'.encode())
            reply = http.client.HTTPResponse(raw)
            reply.begin()
            assert reply.status == 502 and b"InternalError" in reply.read()
        assert post("/v1/algo/a/b") == (200, b'{"result": "ok"}')  # and the bridge goes on
    finally:
        served.shutdown()
        served.server_close()
