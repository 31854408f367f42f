"""Latency and throughput of an authenticated /v1/ request (key lookup + hashing + envelope).

Starts its own server (gunicorn + uvicorn worker, embedded defaults, a throw-away var/ dir)
on 127.0.0.1, makes a key, sends a bounded number of requests, prints p50/p99 and req/s.

    .venv/bin/python bench/auth_latency.py [--requests 2000] [--concurrency 8]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _stack import ROOT, wait_until_up  # noqa: E402


def manage(env: dict, *args: str) -> str:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True,
                          capture_output=True, text=True).stdout


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()

    var = tempfile.mkdtemp(prefix="algostore-bench-")
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")}
    env.update(DJANGO_SETTINGS_MODULE="marketplace.settings.local", ALGOSTORE_VAR_DIR=var,
               DJANGO_DEBUG="false", HOST="127.0.0.1", PORT=str(args.port), LOG_LEVEL="WARNING")
    manage(env, "migrate", "--noinput")
    key = manage(env, "create_api_key", "bench", "--create-user").strip().splitlines()[-1]
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "-c", "deploy/gunicorn.conf.py",
         "--access-logfile", "/dev/null", "marketplace.asgi:application"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{args.port}"
    try:
        wait_until_up(f"{base}/healthz")
        sessions = {}

        def call(_: int) -> float:
            import threading

            session = sessions.setdefault(threading.get_ident(), requests.Session())
            start = time.perf_counter()
            response = session.get(f"{base}/v1/me", headers={"Authorization": key}, timeout=10)
            elapsed = time.perf_counter() - start
            assert response.status_code == 200, response.text
            return elapsed * 1000

        for i in range(50):  # warm up
            call(i)
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
            latencies = list(pool.map(call, range(args.requests)))
        wall = time.perf_counter() - started
        bad = requests.get(f"{base}/v1/me", headers={"Authorization": "ak_x_y"}, timeout=10)
        assert bad.status_code == 401
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(f"GET /v1/me with an API key: {args.requests} requests, concurrency {args.concurrency}, "
          f"1 gunicorn/uvicorn worker, SQLite")
    print(f"  p50 {percentile(latencies, 0.50):.2f} ms   p99 {percentile(latencies, 0.99):.2f} ms"
          f"   mean {statistics.mean(latencies):.2f} ms")
    print(f"  throughput {args.requests / wall:.0f} requests/s")


if __name__ == "__main__":
    main()
