"""What every execution backend offers the invocation service."""
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class RunTarget:
    """One runnable version: its artifact, how to start it, and how it scales."""

    pool_key: str                 # runners of the same target are interchangeable
    artifact_dir: Path
    language: str
    entry: str                    # the algorithm's name: src/<entry>.py or .js
    network: bool = False
    env: dict = field(default_factory=dict)
    idle_seconds: int = 300
    min_warm: int = 0
    max_runners: int = 4
    memory_bytes: int = 2 * 1024 ** 3
    max_processes: int = 64
    max_output_bytes: int = 15 * 1024 * 1024
    bridge: bool = False          # may reach the platform API (pipeline_enabled)
    artifact_path: str = ""       # in the platform's storage (runner pods fetch it)
    artifact_sha256: str = ""
    cpu_millicores: int = 1000


@dataclass
class Outcome:
    """A finished call as the backend saw it."""

    response: dict | None
    error_type: str | None
    error_message: str
    stack_trace: str
    stdout: str
    run_ms: float
    cold_start_ms: float
    queue_ms: float

    @classmethod
    def from_reply(cls, reply: dict, *, cold_start_ms: float, queue_ms: float) -> "Outcome":
        """From a runner's reply (``CallResult.to_dict``), with the backend's own timings."""
        return cls(response=reply.get("response"), error_type=reply.get("error_type"),
                   error_message=reply.get("error_message", ""),
                   stack_trace=reply.get("stack_trace", ""), stdout=reply.get("stdout", ""),
                   run_ms=reply.get("duration_ms", 0.0), cold_start_ms=cold_start_ms,
                   queue_ms=max(queue_ms, 0.0))


class Backend(Protocol):
    def invoke(self, target: RunTarget, request: dict, timeout: float,
               context: dict | None = None, on_stdout=None) -> Outcome:
        """Run one call; ``on_stdout(lines)`` receives its printed lines while it runs."""

    def warm(self, target: RunTarget) -> None: ...

    def runner_count(self, target: RunTarget) -> int: ...

    def is_cold(self, target: RunTarget) -> bool:
        """Whether a call now would find no runner ready (asked before every call, for
        call-graph pre-warming: may answer from what the backend saw a moment ago)."""
