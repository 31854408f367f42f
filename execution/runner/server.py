"""The runner: one small program hosting one sandboxed algorithm process.

    python -m execution.runner.server SPEC.json

It starts the algorithm (a cold start), then serves calls one at a time on a unix socket
(length-prefixed JSON frames). When no call arrives for ``idle_seconds`` and no caller holds
its lock, it stops the algorithm and exits: that is how a version scales back to zero.
Kubernetes pods run this same module with ``--http`` (the transport differs, nothing else).
Standard library only, and no platform secrets: the spec holds all it needs.
"""
import fcntl
import faulthandler
import json
import os
import shutil
import signal
import socket
import struct
import sys
import threading
import time
from pathlib import Path

from execution.runner import bridge, sandbox
from execution.runner.process import AlgorithmProcess, CallResult, LoadFailed, Limits

HEADER = struct.Struct("!I")


def send_frame(conn: socket.socket, payload: dict) -> None:
    data = json.dumps(payload).encode()
    conn.sendall(HEADER.pack(len(data)) + data)


def recv_frame(conn: socket.socket, limit: int = 64 * 1024 * 1024) -> dict | None:
    header = _recv_exact(conn, HEADER.size)
    if header is None:
        return None
    (length,) = HEADER.unpack(header)
    if length > limit:
        raise ValueError("frame too large")
    body = _recv_exact(conn, length)
    return None if body is None else json.loads(body)


def _recv_exact(conn: socket.socket, size: int) -> bytes | None:
    chunks, remaining = [], size
    while remaining:
        chunk = conn.recv(min(remaining, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def build_process(spec: dict) -> AlgorithmProcess:
    box = sandbox.SandboxSpec(**spec["sandbox"])
    if box.mode != "pod":  # a pod's /tmp is its own empty volume already
        shutil.rmtree(box.tmp_dir, ignore_errors=True)  # a fresh, empty /tmp per runner
        os.makedirs(box.tmp_dir)
        os.chmod(box.tmp_dir, 0o700)
        if os.getuid() == 0:
            os.chown(box.tmp_dir, box.uid, box.uid)
    args, fds = sandbox.command(box)
    return AlgorithmProcess(
        args, os.path.join(box.tmp_dir, "algoout"), pass_fds=fds,
        cwd=os.path.join(box.artifact_dir, "source") if box.mode == "pod" else None,
        env=sandbox.environment(box),
        preexec_fn=sandbox.limits_preexec(box),
        limits=Limits(max_output_bytes=spec.get("max_output_bytes", 15 * 1024 * 1024),
                      load_timeout_seconds=spec.get("load_timeout_seconds", 120)))


CALL_CONTEXT = bridge.CallContext()


class LineStream:
    """Sends a call's stdout lines to its caller while it runs, as ``{"event": "stdout",
    "lines": [...]}`` frames ahead of the result frame. Lines printed close together share a
    frame, so a chatty algorithm costs the caller a few frames a second, not one per line."""

    BATCH_SECONDS = 0.02

    def __init__(self, conn: socket.socket):
        self.conn, self.pending, self.closed = conn, [], False
        self.wake = threading.Condition()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def add(self, line: str) -> None:
        with self.wake:
            if not self.closed:
                self.pending.append(line)
                self.wake.notify()

    def close(self) -> None:
        """Send what is left; after this nothing more goes out, so the result comes last."""
        with self.wake:
            self.closed = True
            self.wake.notify()
        self.thread.join()

    def _run(self) -> None:
        while True:
            with self.wake:
                while not self.pending and not self.closed:
                    self.wake.wait()
                lines, self.pending, done = self.pending, [], self.closed
            if lines:
                try:
                    send_frame(self.conn, {"event": "stdout", "lines": lines})
                except OSError:
                    pass  # the caller went away; the result frame will fail the same way
            if done:
                return
            time.sleep(self.BATCH_SECONDS)


def handle(process: AlgorithmProcess, message: dict, on_line=None) -> dict:
    if message.get("op") == "ping":
        return {"ok": True, "pid": os.getpid()}
    context = message.get("context") or {}
    CALL_CONTEXT.set(context.get("api_key"), context.get("api_base"))
    try:
        result: CallResult = process.call(message["request"], float(message.get("timeout", 300)),
                                          on_line=on_line)
    finally:
        CALL_CONTEXT.set(None, None)  # between calls the bridge refuses everything
    return result.to_dict()


def serve_unix(spec: dict, process: AlgorithmProcess) -> None:
    path, lock_path = spec["socket"], spec["lock"]
    if os.path.exists(path):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    os.chmod(path, 0o600)
    listener.listen(16)
    idle = float(spec.get("idle_seconds", 300))
    reserved = bool(spec.get("reserved", False))
    _write_status(spec, {"state": "ready", "pid": os.getpid(), "at": time.time()})
    listener.settimeout(min(idle, 5.0))
    last_call = time.monotonic()
    stopping = []

    def stop(signum, frame):  # SIGTERM (the platform stopping): no more calls taken
        stopping.append(signum)
        listener.close()  # a waiting accept() ends at once; a call in flight finishes

    signal.signal(signal.SIGTERM, stop)
    while True:
        try:
            conn, _ = listener.accept()
        except socket.timeout:
            if not reserved and time.monotonic() - last_call >= idle and _try_retire(lock_path):
                break
            continue
        except OSError:
            if stopping:
                break
            raise
        with conn:
            conn.settimeout(None)
            try:
                message = recv_frame(conn)
                if message is not None:
                    stream = LineStream(conn) if message.get("stream") else None
                    try:
                        reply = handle(process, message, stream.add if stream else None)
                    finally:
                        if stream is not None:
                            stream.close()
                    send_frame(conn, reply)
            except (OSError, ValueError):
                pass
        last_call = time.monotonic()
        if not process.alive():
            _restart_quietly(process)
    listener.close()
    for leftover in (path, lock_path, spec["status"]):
        if os.path.exists(leftover):
            os.unlink(leftover)
    process.stop()


def stop_all(run_dir: str) -> list[int]:
    """SIGTERM every local runner serving under ``run_dir`` (found by its status file's pid,
    if that process is still the runner of that spec). Each finishes its call in flight,
    then stops its sandbox and exits. Returns the pids told."""
    told = []
    for status in Path(run_dir).glob("*/r*.status"):
        try:
            pid = int(json.loads(status.read_text())["pid"])
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if str(status.with_suffix(".json")).encode() not in command:
            continue  # gone, and its pid now another process's
        try:
            os.kill(pid, signal.SIGTERM)
            told.append(pid)
        except ProcessLookupError:
            pass
    return told


def lock_nowait(path: str, *, create: bool = False) -> int | None:
    """An exclusive flock on ``path`` if nobody holds it (the descriptor), else None.
    Callers hold a runner's lock while they call it; the runner takes it to retire."""
    try:
        fd = os.open(path, os.O_RDWR | (os.O_CREAT if create else 0), 0o600)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _try_retire(lock_path: str) -> bool:
    """Retire only if no caller holds the lock (a caller about to call keeps us alive)."""
    if lock_nowait(lock_path, create=True) is None:
        return False
    os.unlink(lock_path)  # callers that open it from now on find nothing
    return True


def _restart_quietly(process: AlgorithmProcess) -> None:
    try:
        process.restart()
    except LoadFailed:
        pass  # the next call restarts it again and reports the failure


def _write_status(spec: dict, status: dict) -> None:
    tmp = spec["status"] + ".tmp"
    with open(tmp, "w") as handle_:
        json.dump(status, handle_)
    os.replace(tmp, spec["status"])


def _http_server(port: int, *, ready, call):
    """The Kubernetes transport: ``GET /healthz`` answers ``ready()`` (status, content type,
    body); ``POST /call`` answers ``call(body)`` as JSON, then runs what it returned second
    (or None)."""
    # The HTTP server is imported only by the runners that serve HTTP: a local runner's
    # imports are part of every cold start (http.server is about half of them).
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):  # noqa: N802
            self._send(*ready())

        def do_POST(self):  # noqa: N802
            reply, then = call(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            self._send(200, "application/json", json.dumps(reply).encode())
            if then is not None:
                then()

        def log_message(self, *args):
            pass

    return ThreadingHTTPServer(("0.0.0.0", port), Handler)


def serve_http(spec: dict, process: AlgorithmProcess, port: int) -> None:
    """A runner pod: POST /call with the same JSON as a local runner's frames; GET /healthz
    for readiness."""
    one_at_a_time = threading.Lock()  # one algorithm process: calls take turns

    def ready():
        ok = process.alive()
        return (200 if ok else 503), "text/plain", (b"ok" if ok else b"loading")

    def call(body: bytes):
        with one_at_a_time:
            reply = handle(process, json.loads(body))
        return reply, (None if process.alive() else lambda: _restart_quietly(process))

    server = _http_server(port, ready=ready, call=call)
    # On SIGTERM (a scale-down) stop taking calls, let the one in flight finish, then exit:
    # the pod's grace period covers the longest call.
    server.daemon_threads, server.block_on_close = False, True

    def drain(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, drain)
    server.serve_forever()
    server.server_close()  # joins the handler threads: calls in flight are answered
    process.stop()


def serve_http_failed(port: int, error: str) -> None:
    """A runner pod whose algorithm failed to load: ready (so calls reach it), and every call
    answered with the load error, rather than a pod that never becomes ready."""
    reply = {"response": None, "error_type": "LoadingError",
             "error_message": f"The algorithm failed to load: {error}", "stack_trace": error,
             "stdout": "", "duration_ms": 0.0}
    _http_server(port, ready=lambda: (200, "application/json", b'{"state": "failed"}'),
                 call=lambda body: (reply, None)).serve_forever()


def main(argv: list[str]) -> int:
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 <pid>` prints every thread's stack
    with open(argv[1]) as handle_:
        spec = json.load(handle_)
    if spec.get("bridge_socket"):
        bridge.serve(spec["bridge_socket"], CALL_CONTEXT)
    process = build_process(spec)
    try:
        process.start()
    except LoadFailed as error:
        if "--http" in argv:  # a pod: keep answering, so calls get the author's load error
            serve_http_failed(int(argv[argv.index("--http") + 1]), str(error)[-8000:])
            return 1
        _write_status(spec, {"state": "failed", "error": str(error)[-8000:], "at": time.time()})
        return 1
    if "--http" in argv:
        serve_http(spec, process, int(argv[argv.index("--http") + 1]))
    else:
        serve_unix(spec, process)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
