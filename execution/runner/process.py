"""One algorithm process and the runtime protocol of API.md, seen from the platform's side.

The process is started (inside its sandbox) with a FIFO at ``/tmp/algoout``; it prints
``PIPE_INIT_COMPLETE`` when loaded, reads one JSON request per stdin line, and answers with one
JSON line on the FIFO. Everything else it prints is the call's stdout. The FIFO is held open
read-write here, so a writer's close is never an end-of-file. Standard library only: this
module also runs in Kubernetes runner pods.
"""
import fcntl
import json
import math
import os
import queue
import select
import signal
import struct
import subprocess
import termios
import threading
import time
from dataclasses import dataclass

READY_LINE = "PIPE_INIT_COMPLETE"
STDOUT_LIMIT_BYTES = 1024 * 1024


@dataclass
class CallResult:
    """What one call produced: the algorithm's response line (or a platform error)."""

    response: dict | None = None
    error_type: str | None = None
    error_message: str = ""
    stack_trace: str = ""
    stdout: str = ""
    duration_ms: float = 0.0

    def to_dict(self) -> dict:
        return {"response": self.response, "error_type": self.error_type,
                "error_message": self.error_message, "stack_trace": self.stack_trace,
                "stdout": self.stdout, "duration_ms": self.duration_ms}


@dataclass
class Limits:
    max_output_bytes: int = 15 * 1024 * 1024
    load_timeout_seconds: float = 120.0


class AlgorithmProcess:
    """Hosts one algorithm process: start, wait until loaded, call, replace when broken."""

    def __init__(self, command: list[str], fifo_path: str, *, env: dict | None = None,
                 cwd: str | None = None, preexec_fn=None, limits: Limits | None = None,
                 pass_fds: tuple[int, ...] = ()):
        self.command, self.fifo_path, self.env, self.cwd = command, fifo_path, env, cwd
        self.pass_fds = tuple(pass_fds)
        self.preexec_fn = preexec_fn
        self.limits = limits or Limits()
        self.process: subprocess.Popen | None = None
        self.lines: queue.Queue = queue.Queue()
        self.responses: queue.Queue = queue.Queue()
        self.output: list[str] = []
        self.output_bytes = 0
        self.ready = threading.Event()
        self.fifo_fd: int | None = None
        self.load_error: str = ""
        self.memory_exceeded = False
        self.generation = 0
        self.stdout_busy = False
        self._line = bytearray()  # what the process printed after its last newline
        self._line_lock = threading.Lock()
        self.on_line = None  # set for the length of a call whose stdout is streamed

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Start the process and wait for PIPE_INIT_COMPLETE; raise LoadFailed if it dies."""
        if os.path.exists(self.fifo_path):
            os.unlink(self.fifo_path)
        os.mkfifo(self.fifo_path, 0o666)
        os.chmod(self.fifo_path, 0o666)
        self.fifo_fd = os.open(self.fifo_path, os.O_RDWR)
        self.ready.clear()
        self.output, self.output_bytes, self.load_error = [], 0, ""
        with self._line_lock:
            self._line.clear()
        # Each process gets its own queue and generation: readers of a replaced process can
        # never deliver into the next one's calls.
        self.generation += 1
        self.responses = queue.Queue()
        self.process = subprocess.Popen(
            self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd, preexec_fn=self.preexec_fn,
            start_new_session=True, bufsize=0, pass_fds=self.pass_fds)
        threading.Thread(target=self._read_stdout, args=(self.process, self.responses),
                         daemon=True).start()
        threading.Thread(target=self._read_fifo,
                         args=(self.fifo_fd, self.responses, self.generation),
                         daemon=True).start()
        deadline = time.monotonic() + self.limits.load_timeout_seconds
        while not self.ready.wait(0.01):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.load_error = self._drain_output() or "The algorithm exited while loading."
                self.stop()
                raise LoadFailed(self.load_error)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()
        if self.fifo_fd is not None:
            self.generation += 1
            os.set_blocking(self.fifo_fd, False)
            try:
                os.write(self.fifo_fd, b"\n")  # wakes the FIFO reader: it sees it is retired
            except BlockingIOError:
                # The FIFO is full: its reader stopped at a result over the limit and is
                # gone. (A blocking write here waited forever: the runner never answered.)
                pass
            os.close(self.fifo_fd)
            self.fifo_fd = None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None and self.ready.is_set()

    # --- readers -----------------------------------------------------------------------------
    def _read_stdout(self, process: subprocess.Popen, responses: queue.Queue) -> None:
        """Collect what the process prints, line by line. ``stdout_busy`` is set after the
        pipe has data and before any of it is read, and cleared once what was read is
        collected or kept as the unfinished line: bytes leave the pipe only while it is set
        (see ``_settle_stdout``)."""
        fd = process.stdout.fileno()
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while True:
            poller.poll()
            self.stdout_busy = True
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            with self._line_lock:
                first, *rest = chunk.split(b"\n")
                self._keep(first)
                for piece in rest:  # a newline before each: the line so far is finished
                    self._collect(bytes(self._line) + b"\n")
                    self._line.clear()
                    self._keep(piece)
            self.stdout_busy = False
        self._finish_line()
        self.stdout_busy = False
        responses.put(None)  # the process is gone

    def _keep(self, piece: bytes) -> None:
        """Add to the unfinished line, never past the stdout limit (a longer line is cut;
        its rest is read and dropped)."""
        room = STDOUT_LIMIT_BYTES - len(self._line)
        if room > 0:
            self._line += piece[:room]

    def _finish_line(self) -> None:
        """Collect the unfinished line, if any (what was printed without a newline)."""
        with self._line_lock:
            if self._line:
                self._collect(bytes(self._line))
                self._line.clear()

    def _collect(self, raw: bytes) -> None:
        line = raw.decode("utf-8", errors="replace")
        if not self.ready.is_set() and line.strip() == READY_LINE:
            self.ready.set()
            return
        if "MemoryError" in line:
            self.memory_exceeded = True
        if self.output_bytes < STDOUT_LIMIT_BYTES:
            self.output.append(line)
            self.output_bytes += len(raw)
            listener = self.on_line
            if listener is not None:
                listener(line.rstrip("\n"))

    def _settle_stdout(self) -> None:
        """Wait until everything printed before the response has been collected: the
        algorithm prints before it answers, so its output is already in the pipe; it is
        collected once the pipe is empty and the reader is not holding bytes it took."""
        if self.process is None or self.process.stdout is None:
            return
        fd = self.process.stdout.fileno()
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            try:
                pending = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
            except OSError:
                return
            if pending == 0 and not self.stdout_busy:
                self._finish_line()  # printed without a newline: still this call's output
                return
            time.sleep(0.0002)

    def _read_fifo(self, fd: int, responses: queue.Queue, generation: int) -> None:
        buffer = b""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                return
            if not chunk or generation != self.generation:
                return
            buffer += chunk
            if len(buffer) > self.limits.max_output_bytes + 1024:
                responses.put(OutputTooLarge())
                return
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if line:
                    responses.put(line)

    def _drain_output(self) -> str:
        text, self.output, self.output_bytes = "".join(self.output), [], 0
        return text

    # --- calls -------------------------------------------------------------------------------
    def call(self, request: dict, timeout: float, on_line=None) -> CallResult:
        """Send one request and wait for its answer, at most ``timeout`` seconds.
        ``on_line`` is called (from the reader thread) with each line the call prints."""
        try:
            return self._call(request, timeout, on_line)
        finally:
            self.on_line = None

    def _call(self, request: dict, timeout: float, on_line) -> CallResult:
        started = time.monotonic()
        if not self.alive():
            self.restart()
        self._drain_output()
        self.memory_exceeded = False
        self.on_line = on_line
        payload = (json.dumps(request) + "\n").encode()
        try:
            self.process.stdin.write(payload)
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            return self._died(started)
        try:
            answer = self.responses.get(timeout=timeout)
        except queue.Empty:
            result = CallResult(error_type="TimeoutError",
                                error_message=f"The algorithm did not answer within {_seconds(timeout)} s.")
            result.stdout = self._drain_output()
            self._replace()
            return self._timed(result, started)
        if answer is None:
            return self._died(started)
        if isinstance(answer, OutputTooLarge):
            self._replace()
            return self._timed(CallResult(
                error_type="AlgorithmError", stdout=self._drain_output(),
                error_message=f"The result is larger than {self.limits.max_output_bytes} bytes."),
                started)
        return self._timed(self._parse(answer), started)

    def _parse(self, line: bytes) -> CallResult:
        self._settle_stdout()
        stdout = self._drain_output()
        try:
            response = json.loads(line, parse_constant=_no_constants, parse_float=_finite)
        except NotJson as error:
            return CallResult(error_type="AlgorithmError", stdout=stdout,
                              error_message=str(error))
        except ValueError:
            return CallResult(error_type="AlgorithmError", stdout=stdout,
                              error_message="The algorithm wrote a malformed response.")
        if b"\\u0000" in line and _holds_nul(response):
            return CallResult(error_type="AlgorithmError", stdout=stdout, error_message=(
                "The result holds a NUL character (\\u0000), which cannot be stored: "
                "return it as binary or without it."))
        if isinstance(response, dict) and "error" in response:
            error = response["error"] or {}
            error_type = error.get("error_type") or "AlgorithmError"
            text = f"{error.get('message', '')} {error.get('stacktrace', '')}"
            message = str(error.get("message", ""))
            if "MemoryError" in text or self.memory_exceeded:
                error_type = "OutOfMemoryError"
                message = message or "The algorithm ran out of memory."  # MemoryError() says nothing
                self._replace()
            return CallResult(error_type=error_type, error_message=message,
                              stack_trace=str(error.get("stacktrace", "")), stdout=stdout)
        return CallResult(response=response, stdout=stdout)

    def _died(self, started: float) -> CallResult:
        stdout = self._drain_output()
        try:
            code = self.process.wait(timeout=2) if self.process else None
        except subprocess.TimeoutExpired:  # its output closed but it lives on: it is replaced
            code = None
        out_of_memory = self.memory_exceeded or "MemoryError" in stdout or code == -signal.SIGKILL
        tail = stdout.strip().splitlines()[-1] if stdout.strip() else ""
        result = CallResult(
            error_type="OutOfMemoryError" if out_of_memory else "AlgorithmError",
            error_message=("The algorithm ran out of memory." if out_of_memory else
                           f"The algorithm process exited (code {code}){': ' + tail if tail else '.'}"),
            stack_trace=stdout[-8000:], stdout=stdout)
        self._replace()
        return self._timed(result, started)

    def _replace(self) -> None:
        """Kill the current process; the next call starts a fresh one."""
        self.stop()

    def restart(self) -> None:
        self.stop()
        self.start()

    @staticmethod
    def _timed(result: CallResult, started: float) -> CallResult:
        result.duration_ms = (time.monotonic() - started) * 1000
        return result


class LoadFailed(Exception):
    """The algorithm exited, or never said PIPE_INIT_COMPLETE, while loading."""


class OutputTooLarge:
    """Marker put on the response queue when a response line exceeds the limit."""


class NotJson(ValueError):
    pass


def _no_constants(name: str):
    """Python's json reads NaN and Infinity, which JSON has no form for: the result could
    not be stored, nor read by the caller's JSON parser."""
    raise NotJson(f"The result is not valid JSON: it holds {name}, which JSON has no form "
                  "for (return null or a string instead).")


def _holds_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(key) or _holds_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    return False


def _finite(text: str) -> float:
    """A number too large for a float (1e400) reads as Infinity: the same refusal."""
    value = float(text)
    if not math.isfinite(value):
        raise NotJson(f"The result is not valid JSON: it holds {text}, which is out of range "
                      "for a number (return it as a string instead).")
    return value


def _seconds(timeout: float) -> str:
    """The time a call had, as a person writes it: the caller's timeout less the moments
    spent getting a runner (0.99975 s) reads as the timeout (1 s); never 3e+03."""
    return f"{math.ceil(timeout * 10) / 10:g}"
