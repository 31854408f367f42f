"""Starting and stopping the services a bench measures, all on 127.0.0.1, all bounded."""
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def wait_until_up(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=5).status_code < 500:
                return
        except (requests.ConnectionError, requests.Timeout):
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


class Stack:
    """gunicorn (uvicorn workers) + Celery workers on Redis (one for calls, one for the other
    queues) + PostgreSQL, in a scratch var/."""

    def __init__(self, port: int, database: str, redis_db: int = 9):
        self.port, self.processes = port, []
        self.var = tempfile.mkdtemp(prefix="algostore-bench-")
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")},
                    "DJANGO_SETTINGS_MODULE": "marketplace.settings.local",
                    "DJANGO_DEBUG": "false", "ALGOSTORE_VAR_DIR": self.var,
                    "DATABASE_URL": database, "DATABASE_CONN_MAX_AGE": "0", "DATABASE_POOL": "true",
                    "REDIS_URL": f"redis://127.0.0.1:6379/{redis_db}",
                    "CELERY_BROKER_URL": f"redis://127.0.0.1:6379/{redis_db}",
                    "CELERY_RESULT_BACKEND": f"redis://127.0.0.1:6379/{redis_db}",
                    "HOST": "127.0.0.1", "PORT": str(port), "LOG_LEVEL": "WARNING",
                    "SOURCES_ROOT": str(ROOT / "var" / "bench-sources"),
                    "BUILD_CACHE_DIR": str(ROOT / "var" / "cache")}

    def manage(self, *args: str) -> str:
        return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env,
                              check=True, capture_output=True, text=True).stdout

    def start(self, *, web_workers: int = 6, celery_concurrency: int = 2) -> None:
        subprocess.run(["redis-cli", "-n", self.env["REDIS_URL"].rsplit("/", 1)[1], "flushdb"],
                       capture_output=True)
        self.manage("migrate", "--noinput")
        # As deployed (docs/deploy.md): calls on their own worker, the rest beside it.
        # Celery imports the pool before the app, from its console script: the project must
        # be on the path (the platform image sets it too).
        self.env.update(CELERY_CUSTOM_WORKER_POOL="execution.pool:TaskPool",
                        PYTHONPATH=str(ROOT))
        for index, (queues, pool, threads) in enumerate([
                ("execution", "custom", celery_concurrency * 4),
                ("default,builds,billing", "threads", 2)]):
            self._spawn([str(BIN / "celery"), "-A", "marketplace", "worker", "-Q", queues,
                         "-n", f"bench{index}@%h", "-P", pool, "-c", str(threads),
                         "-l", "WARNING",
                         "--without-gossip", "--without-mingle", "--without-heartbeat"])
        self._spawn([str(BIN / "gunicorn"), "-c", "deploy/gunicorn.conf.py", "-w",
                     str(web_workers), "--access-logfile", "/dev/null",
                     "marketplace.asgi:application"])
        wait_until_up(f"http://127.0.0.1:{self.port}/healthz")

    def _spawn(self, command: list[str]) -> None:
        log = open(Path(self.var) / f"{Path(command[0]).name}.log", "ab")
        self.processes.append(subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log,
                                               stderr=subprocess.STDOUT,
                                               start_new_session=True))

    def stop(self) -> None:
        for process in self.processes:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        subprocess.run(["pkill", "-f", f"execution.runner.server {self.var}"], capture_output=True)
