"""Celery's own cost per task on this machine: the execution worker's configuration (the
custom pool, 8 threads, the project's Redis transport) consuming no-op tasks
(``marketplace.ping``), sent unread as the call path sends its tasks. What it prints is the
worker's CPU per task that no change to the call's own code can remove.

    .venv/bin/python bench/celery_floor.py [--tasks 5000] [--rounds 3]

Everything runs on 127.0.0.1 (Redis database 10, emptied first); every loop is bounded.
"""
import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cpu import TICK  # noqa: E402
from _stack import BIN, ROOT, Stack  # noqa: E402

QUEUE = "bench-celery-floor"


def worker_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    stack = Stack(8797, "postgres://postgres@127.0.0.1:5432/algostore_bench", redis_db=10)
    env = dict(stack.env, CELERY_CUSTOM_WORKER_POOL="execution.pool:TaskPool",
               PYTHONPATH=str(ROOT))
    subprocess.run(["redis-cli", "-n", "10", "flushdb"], capture_output=True, check=True)
    worker = subprocess.Popen(
        [str(BIN / "celery"), "-A", "marketplace", "worker", "-Q", QUEUE, "-n", "floor@%h",
         "-P", "custom", "-c", "8", "-l", "WARNING", "--without-gossip", "--without-mingle",
         "--without-heartbeat"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        os.environ.update({name: value for name, value in env.items()
                           if name.startswith(("CELERY", "REDIS", "DATABASE", "DJANGO",
                                               "ALGOSTORE"))})
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        import redis

        from marketplace.broker import send_unread_task

        client = redis.Redis.from_url("redis://127.0.0.1:6379/10")

        def send_and_drain(count: int) -> None:
            for _ in range(count):
                send_unread_task("marketplace.ping", ["floor"], queue=QUEUE, argsrepr="-")
            deadline = time.monotonic() + 300
            while client.llen(QUEUE) and time.monotonic() < deadline:
                time.sleep(0.05)
            if client.llen(QUEUE):
                raise SystemExit("the worker did not take the tasks within 5 minutes")
            time.sleep(0.5)  # the last ones finish

        send_and_drain(500)  # the worker is up and warm
        for _ in range(args.rounds):
            before = worker_cpu_seconds(worker.pid)
            send_and_drain(args.tasks)
            spent = worker_cpu_seconds(worker.pid) - before
            print(f"Celery worker CPU per no-op task: {spent * 1000 / args.tasks:.3f} ms "
                  f"({args.tasks} tasks)")
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)


if __name__ == "__main__":
    main()
