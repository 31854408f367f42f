"""CPU time per process group, read from /proc: where a load's cycles went, by process."""
import os
from pathlib import Path

GROUPS = (("web", ("gunicorn", "uvicorn")), ("worker", ("celery",)),
          # The algorithm's own process too: the sandbox mounts its build at /algo.
          ("runner", ("execution.runner", "bwrap", "algostore-runner", "/algo/")),
          ("postgres", ("postgres:", "postgres ")), ("redis", ("redis-server",)))
TICK = os.sysconf("SC_CLK_TCK")


def _group(pid: int) -> str | None:
    if pid == os.getpid():
        return "client"
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return None
    for name, needles in GROUPS:
        if any(needle in cmdline for needle in needles):
            return name
    return None


def snapshot() -> dict[str, float]:
    """Seconds of CPU (user + system, children reaped included) per group, now."""
    totals: dict[str, float] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        group = _group(int(entry.name))
        if group is None:
            continue
        try:
            fields = Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks = sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
        totals[group] = totals.get(group, 0.0) + ticks / TICK
    return totals


def per_call_ms(before: dict, after: dict, calls: int) -> dict[str, float]:
    return {group: (after.get(group, 0.0) - before.get(group, 0.0)) * 1000 / calls
            for group in sorted(set(before) | set(after))}
