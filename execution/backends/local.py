"""The local backend: runner processes on this machine, each hosting one sandboxed algorithm.

Runners of one target share a folder (``EXECUTION_RUN_DIR/<pool_key>/``): ``rN.sock`` to call
them, ``rN.lock`` that a caller holds while its call runs, ``rN.status`` that says ready or
failed. A caller takes the first free runner; when every runner is busy it starts another
(a cold start) up to the target's maximum, and otherwise waits its turn. Runners retire on
their own after ``idle_seconds`` without calls (scale to zero); the first ``min_warm`` never do.
Any worker process on the machine can use any runner: no state lives in one process.
"""
import json
import os
import socket
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

from django.conf import settings

from execution.runner import sandbox
from execution.runner.server import lock_nowait, recv_frame, send_frame

from .base import Outcome, RunTarget

RUNTIME_DIR = Path(__file__).resolve().parent.parent / "runtimes"
SPAWN_POLL_SECONDS = 0.002
BRIDGE_PORT = 9777
STARTING_STALE_SECONDS = 180  # a spec this old with no status: its spawner gave up
READY_CACHE_SECONDS = 1.0  # how long this process trusts the ready runners it last listed
_KNOWN_READY: dict[str, tuple[float, list[int]]] = {}
# A caller finding every runner busy waits this long at first, doubling up to the longest,
# unless a call of this process ends first (_Turns). It used to look again every 5 ms: with
# dozens of callers waiting, their looking took the worker's interpreter from the calls.
WAIT_FIRST_SECONDS, WAIT_LONGEST_SECONDS = 0.005, 0.05


class _Turns:
    """The callers of one target in this process that wait for a runner: told when a call
    of this process ends, one at a time, in the order they began waiting."""

    def __init__(self):
        self.condition, self.freed = threading.Condition(), 0

    def release(self) -> None:
        with self.condition:
            self.freed += 1
            self.condition.notify()

    def wait(self, freed: int, seconds: float) -> None:
        """Until a release after the one counted ``freed``, or ``seconds``."""
        with self.condition:
            if self.freed == freed:
                self.condition.wait(seconds)


_TURNS: dict[str, _Turns] = {}
_TURNS_LOCK = threading.Lock()


def _turns(pool_key: str) -> _Turns:
    turns = _TURNS.get(pool_key)
    if turns is None:
        with _TURNS_LOCK:
            turns = _TURNS.setdefault(pool_key, _Turns())
    return turns


class RunnerLoadError(RuntimeError):
    """The algorithm failed while loading (its error text is the message)."""


class LocalBackend:
    def __init__(self) -> None:
        sandbox.bwrap_path()  # a missing bubblewrap is a start-up error, never a fallback

    # --- public ---------------------------------------------------------------------------
    def invoke(self, target: RunTarget, request: dict, timeout: float,
               context: dict | None = None, on_stdout=None) -> Outcome:
        started = time.monotonic()
        deadline = started + timeout
        cold_ms = 0.0
        for _attempt in range(3):
            (fd, sock_path), cold = self._acquire(target, deadline)
            cold_ms += cold
            queue_ms = (time.monotonic() - started) * 1000 - cold_ms
            try:
                remaining = max(deadline - time.monotonic(), 0.05)
                message = {"request": request, "timeout": remaining, "context": context or {}}
                if on_stdout is not None:
                    message["stream"] = True
                reply = self._call(sock_path, message, remaining + 10, on_stdout)
                break
            except (ConnectionRefusedError, FileNotFoundError):
                self._forget(sock_path)  # a runner that died without tidying up
            finally:
                os.close(fd)  # releases the lock
                _turns(target.pool_key).release()
        else:
            raise ConnectionError("No runner answered.")
        return Outcome.from_reply(reply, cold_start_ms=cold_ms, queue_ms=queue_ms)

    def warm(self, target: RunTarget) -> None:
        """Start a runner, without waiting for it, if the target has none ready or starting
        (call-graph pre-warming)."""
        if not self._ready_slots(target) and not self._starting_slots(target):
            self._spawn(target, *self._claim_slot(target))

    def runner_count(self, target: RunTarget) -> int:
        return len(self._ready_slots(target))

    def is_cold(self, target: RunTarget) -> bool:
        seen_at, seen = _KNOWN_READY.get(target.pool_key, (0.0, []))
        if seen and time.monotonic() - seen_at < READY_CACHE_SECONDS:
            return False  # listed ready a moment ago (by this process's last call)
        return not self._ready_slots(target)

    # --- pool ---------------------------------------------------------------------------------
    @staticmethod
    def _pool_path(target: RunTarget) -> str:
        return os.path.join(settings.EXECUTION_RUN_DIR, target.pool_key)

    def _pool_dir(self, target: RunTarget) -> Path:
        path = Path(self._pool_path(target))
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _ready_slots(self, target: RunTarget) -> list[int]:
        slots = []
        for status in self._pool_dir(target).glob("r*.status"):
            try:
                if json.loads(status.read_text()).get("state") == "ready":
                    slots.append(int(status.name[1:].split(".")[0]))
            except (OSError, ValueError):
                continue
        return sorted(slots)

    def _try_lock(self, target: RunTarget, slot: int):
        # Every call passes here: plain strings, and no mkdir (a missing pool has no lock
        # to take; pathlib and the directory's creation were a twentieth of a warm call's
        # worker time).
        stem = os.path.join(self._pool_path(target), f"r{slot}")
        fd = lock_nowait(f"{stem}.lock")
        if fd is None:
            return None
        if not os.path.exists(f"{stem}.lock"):  # retired between open and lock
            os.close(fd)
            return None
        return fd, f"{stem}.sock"

    def _acquire(self, target: RunTarget, deadline: float):
        cold_ms = 0.0
        turns = _turns(target.pool_key)
        seen_at, seen = _KNOWN_READY.get(target.pool_key, (0.0, []))
        if time.monotonic() - seen_at < READY_CACHE_SECONDS:
            for slot in seen:  # the common case: a runner listed a moment ago is free
                runner = self._try_lock(target, slot)
                if runner is not None:
                    return runner, cold_ms
        pause = WAIT_FIRST_SECONDS
        while True:
            freed = turns.freed
            ready = self._ready_slots(target)
            _KNOWN_READY[target.pool_key] = (time.monotonic(), ready)
            for slot in ready:
                runner = self._try_lock(target, slot)
                if runner is not None:
                    return runner, cold_ms
            starting = self._starting_slots(target)
            # While the only runners are starting (e.g. a pre-warm), wait for them.
            if (ready or not starting) and len(ready) + len(starting) < target.max_runners:
                slot, spec = self._claim_slot(target)
                spawn_started = time.monotonic()
                self._spawn(target, slot, spec)
                self._wait_ready(target, slot, deadline)
                cold_ms += (time.monotonic() - spawn_started) * 1000
                runner = self._try_lock(target, slot)
                if runner is not None:
                    return runner, cold_ms
            if time.monotonic() > deadline:
                raise TimeoutError("No runner became free before the call's timeout."
                                   if not starting or ready else
                                   "No runner became ready before the call's timeout.")
            # Every runner is busy (or one is starting, e.g. a pre-warm): wait until a call
            # in this process ends, or a while (another process's calls end unannounced).
            turns.wait(freed, min(pause, max(deadline - time.monotonic(), 0.001)))
            if ready:  # a starting runner announces nothing: look again soon for it
                pause = min(pause * 2, WAIT_LONGEST_SECONDS)

    def _starting_slots(self, target: RunTarget) -> list[int]:
        """Runners being started now (a spec written, no status yet, not abandoned)."""
        pool, now = self._pool_dir(target), time.time()
        slots = []
        for spec in pool.glob("r*.json"):
            try:
                fresh = now - spec.stat().st_mtime < STARTING_STALE_SECONDS
            except FileNotFoundError:
                continue
            if fresh and not (pool / spec.name.replace(".json", ".status")).exists():
                slots.append(int(spec.name[1:].split(".")[0]))
        return slots

    def _claim_slot(self, target: RunTarget) -> tuple[int, int]:
        """A free slot, claimed by creating its spec (the descriptor, to write it into).
        Exclusive: two callers starting runners at once once took the same slot, and the
        second runner emptied the first one's /tmp under its algorithm."""
        pool = self._pool_dir(target)
        slot = 0
        while True:
            if not (pool / f"r{slot}.status").exists():
                try:
                    # The spec may hold the algorithm's secrets: root-only, deleted once read.
                    return slot, os.open(pool / f"r{slot}.json",
                                         os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                except FileExistsError:
                    pass  # being started (or left by a spawner that gave up): not reused
            slot += 1

    def _spec(self, target: RunTarget, slot: int) -> dict:
        pool = self._pool_dir(target)
        memory_bytes = target.memory_bytes
        if target.language == "javascript":
            # V8 reserves far more address space than it uses: bound its heap instead.
            heap_mb = max(target.memory_bytes // (1024 * 1024) - 256, 128)
            command = ["/usr/bin/node", f"--max-old-space-size={heap_mb}",
                       "/opt/algostore/runtime/node/runner.js", f"src/{target.entry}.js"]
            runtime = RUNTIME_DIR / "node"
            memory_bytes = max(target.memory_bytes, 64 * 1024 ** 3)
        else:
            command = ["/algo/venv/bin/python", f"src/{target.entry}.py"]
            runtime = RUNTIME_DIR / "python"
        env = {"PYTHONPATH": "/opt/algostore/runtime/python", **target.env}
        socket_binds = []
        if target.bridge:
            env.update(ALGOSTORE_API_SOCKET="/run/algostore/api.sock",
                       ALGOSTORE_API_PORT=str(BRIDGE_PORT),
                       ALGORITHMIA_API=f"http://127.0.0.1:{BRIDGE_PORT}")
            socket_binds = [(str(pool / f"r{slot}.api.sock"), "/run/algostore/api.sock")]
        uid = 100_000 + zlib.crc32(f"{target.pool_key}/{slot}".encode()) % 50_000
        return {
            "socket": str(pool / f"r{slot}.sock"), "lock": str(pool / f"r{slot}.lock"),
            "status": str(pool / f"r{slot}.status"), "idle_seconds": target.idle_seconds,
            "reserved": slot < target.min_warm, "max_output_bytes": target.max_output_bytes,
            "bridge_socket": str(pool / f"r{slot}.api.sock") if target.bridge else None,
            "sandbox": {
                "artifact_dir": str(target.artifact_dir), "tmp_dir": str(pool / f"r{slot}.tmp"),
                "command": command, "uid": uid, "network": target.network, "env": env,
                "memory_bytes": memory_bytes, "max_processes": target.max_processes,
                "extra_ro_binds": [(str(runtime), f"/opt/algostore/runtime/{runtime.name}")],
                "socket_binds": socket_binds,
            },
        }

    def _spawn(self, target: RunTarget, slot: int, descriptor: int) -> None:
        """Start a runner in a slot claimed with ``_claim_slot`` (its spec's descriptor)."""
        pool = self._pool_dir(target)
        spec = self._spec(target, slot)
        spec_path = pool / f"r{slot}.json"
        with os.fdopen(descriptor, "w") as handle:
            json.dump(spec, handle)
        (pool / f"r{slot}.lock").touch()
        log = open(pool / f"r{slot}.log", "ab")
        subprocess.Popen([sys.executable, "-m", "execution.runner.server", str(spec_path)],
                         cwd=settings.BASE_DIR, stdin=subprocess.DEVNULL, stdout=log,
                         stderr=subprocess.STDOUT, start_new_session=True,
                         env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                              "PYTHONDONTWRITEBYTECODE": "1"})
        log.close()

    def _wait_ready(self, target: RunTarget, slot: int, deadline: float) -> None:
        status_path = self._pool_dir(target) / f"r{slot}.status"
        spec_path = self._pool_dir(target) / f"r{slot}.json"
        while time.monotonic() < deadline:
            if status_path.exists():
                try:
                    status = json.loads(status_path.read_text())
                except ValueError:
                    time.sleep(SPAWN_POLL_SECONDS)
                    continue
                if status.get("state") == "failed":
                    status_path.unlink(missing_ok=True)
                    spec_path.unlink(missing_ok=True)
                    raise RunnerLoadError(status.get("error", "The algorithm failed to load."))
                spec_path.unlink(missing_ok=True)
                return
            time.sleep(SPAWN_POLL_SECONDS)
        raise TimeoutError("The algorithm did not finish loading before the call's timeout.")

    @staticmethod
    def _forget(sock_path: str) -> None:
        base = sock_path[: -len(".sock")]
        for suffix in (".sock", ".lock", ".status", ".json"):
            Path(base + suffix).unlink(missing_ok=True)

    @staticmethod
    def _call(sock_path: str, message: dict, timeout: float, on_stdout=None) -> dict:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(timeout)
            conn.connect(sock_path)
            send_frame(conn, message)
            reply = recv_frame(conn)
            while reply is not None and reply.get("event") == "stdout":
                if on_stdout is not None:
                    on_stdout(reply["lines"])
                reply = recv_frame(conn)
        if reply is None:
            raise ConnectionError("The runner closed the connection without answering.")
        return reply
