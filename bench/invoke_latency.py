"""Latency and throughput of algorithm calls through the full stack, beside a bare floor.

Full stack: gunicorn with uvicorn workers -> Celery on Redis -> a sandboxed runner (bubblewrap)
hosting the demo ADK algorithm, with PostgreSQL. Floor: a bare ASGI echo under uvicorn.
Everything runs on 127.0.0.1; every loop is bounded.

    .venv/bin/python bench/invoke_latency.py [--calls 500] [--load-calls 2000]
        [--warmup-calls 500]

Throughput is measured warm: a first round of calls at concurrency 16 (not counted) lets
the version's pool grow to the runners that concurrency needs, as it would in service.
"""
import argparse
import asyncio
import statistics
import subprocess
import sys
import time

import aiohttp
import requests

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from _cpu import per_call_ms, snapshot  # noqa: E402
from _stack import BIN, ROOT, Stack, wait_until_up  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def sequential(url: str, headers: dict, body: bytes, calls: int) -> list[float]:
    session = requests.Session()
    latencies = []
    for _ in range(calls):
        started = time.perf_counter()
        response = session.post(url, data=body, headers=headers, timeout=30)
        latencies.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200 and b"error" not in response.content, response.text
    return latencies


async def _load(url: str, headers: dict, body: bytes, calls: int, concurrency: int) -> dict:
    """``calls`` calls, ``concurrency`` at a time: how many answered and how many failed,
    their p50 and p99, and calls per second."""
    latencies, failures = [], []
    remaining = iter(range(calls))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as s:
        async def worker():
            for _ in remaining:
                started = time.perf_counter()
                async with s.post(url, data=body, headers=headers) as response:
                    payload = await response.read()
                if response.status == 200 and b'"error"' not in payload:
                    latencies.append((time.perf_counter() - started) * 1000)
                else:
                    failures.append(payload)
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {"ok": len(latencies), "failed": len(failures), "first_failure": failures[:1],
            "rps": calls / elapsed, "p50": pct(latencies, .5) if latencies else 0.0,
            "p99": pct(latencies, .99) if latencies else 0.0}


def throughput(url, headers, body, calls, concurrency) -> float:
    """Calls per second; every call must answer."""
    measured = asyncio.run(_load(url, headers, body, calls, concurrency))
    assert not measured["failed"], measured["first_failure"]
    return measured["rps"]


def measure_floor(port: int, calls: int, load_calls: int, warmup_calls: int = 500) -> dict:
    server = subprocess.Popen([str(BIN / "uvicorn"), "--app-dir", str(ROOT / "bench"),
                               "echo_floor:app", "--port", str(port), "--log-level", "warning",
                               "--no-access-log"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/")
        url, headers = f"http://127.0.0.1:{port}/", {"Content-Type": "application/json"}
        sequential(url, headers, b'"world"', 50)
        latencies = sequential(url, headers, b'"world"', calls)
        throughput(url, headers, b'"world"', warmup_calls, 16)  # as the full stack is warmed
        rps = throughput(url, headers, b'"world"', load_calls, 16)
    finally:
        server.terminate()
        server.wait(timeout=10)
    return {"p50": pct(latencies, .5), "p99": pct(latencies, .99), "rps": rps}


def _runners(stack: Stack) -> int:
    """How many runners are up: one spec file each, on their command lines."""
    lines = subprocess.run(["pgrep", "-af", f"execution.runner.server {stack.var}"],
                           capture_output=True, text=True).stdout.split()
    return len({word for word in lines if word.endswith(".json")})


def measure_stack(port: int, calls: int, load_calls: int, web_workers: int = 6,
                  warmup_calls: int = 500) -> dict:
    stack = Stack(port, "postgres://postgres@127.0.0.1:5432/algostore_bench")
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-c",
                    "DROP DATABASE IF EXISTS algostore_bench"], capture_output=True)
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-c",
                    "CREATE DATABASE algostore_bench"], capture_output=True, check=True)
    try:
        stack.start(web_workers=web_workers)
        key = stack.manage("seed_demo").strip().splitlines()[-1]
        url = f"http://127.0.0.1:{port}/v1/algo/demo/hello/0.1.0"
        headers = {"Authorization": key, "Content-Type": "application/json"}
        colds = []
        for _ in range(5):  # cold starts: no runner warm, each time
            subprocess.run(["pkill", "-f", f"execution.runner.server {stack.var}"])
            time.sleep(0.5)
            started = time.perf_counter()
            response = requests.post(url, data=b'"world"', headers=headers, timeout=60)
            colds.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.text
        cold_runner_ms = float(stack.manage(
            "shell", "-v", "0", "-c",
            "from execution.models import Invocation as I;"
            "import statistics as s;"
            "print(s.median([i.cold_start_ms for i in I.objects.exclude(cold_start_ms=0)]))"))
        sequential(url, headers, b'"world"', 50)
        latencies = sequential(url, headers, b'"world"', calls)
        # Warm at concurrency 16 too: the first calls at once grow the version's pool (a
        # cold start per runner added, each some 200 ms of CPU), which is not a warm call.
        runners = [_runners(stack)]
        warmup_rps = throughput(url, headers, b'"world"', warmup_calls, 16)
        runners.append(_runners(stack))
        before = snapshot()
        rps = throughput(url, headers, b'"world"', load_calls, 16)
        cpu = per_call_ms(before, snapshot(), load_calls)
        runners.append(_runners(stack))
        # One composition hop: SeeFood calling demo/fruit, against demo/fruit called directly.
        base = f"http://127.0.0.1:{port}/v1/algo/demo"
        sequential(f"{base}/seefood", headers, b'"banana"', 20)
        composed = sequential(f"{base}/seefood", headers, b'"banana"', max(calls // 3, 50))
        direct = sequential(f"{base}/fruit", headers, b'"banana"', max(calls // 3, 50))
        # Composition under load: four times as many SeeFood calls at once as the execution
        # worker has threads, each waiting on its specialist's call (timeout 30 s each).
        crowd = asyncio.run(_load(f"{base}/seefood?timeout=30", headers, b'"banana"',
                                  max(load_calls // 5, 100), 32))
    finally:
        stack.stop()
    return {"p50": pct(latencies, .5), "p99": pct(latencies, .99), "rps": rps,
            "cold_call_ms": statistics.median(colds), "cold_runner_ms": cold_runner_ms,
            "hop_ms": pct(composed, .5) - pct(direct, .5), "cpu": cpu, "crowd": crowd,
            "warmup_rps": warmup_rps, "runners": runners}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--load-calls", type=int, default=2000)
    parser.add_argument("--web-workers", type=int, default=6)
    parser.add_argument("--warmup-calls", type=int, default=500,
                        help="calls at concurrency 16 before the measured ones (not counted)")
    args = parser.parse_args()
    floor = measure_floor(8791, args.calls, args.load_calls, args.warmup_calls)
    stack = measure_stack(8792, args.calls, args.load_calls, args.web_workers,
                          args.warmup_calls)
    print(f"bare ASGI echo (uvicorn, 1 worker):   warm p50 {floor['p50']:.2f} ms  "
          f"p99 {floor['p99']:.2f} ms  {floor['rps']:.0f} req/s at concurrency 16")
    print(f"full stack ({args.web_workers} web workers):          warm p50 {stack['p50']:.2f} ms  "
          f"p99 {stack['p99']:.2f} ms  {stack['rps']:.0f} req/s at concurrency 16")
    print(f"warm-up at concurrency 16 (not counted): {args.warmup_calls} calls, "
          f"{stack['warmup_rps']:.0f} req/s; runners {stack['runners'][0]} before it, "
          f"{stack['runners'][1]} after it, {stack['runners'][2]} after the measured calls")
    print(f"overhead over the floor:              p50 {stack['p50'] - floor['p50']:.2f} ms  "
          f"p99 {stack['p99'] - floor['p99']:.2f} ms")
    print(f"cold start: runner + sandbox + ADK load {stack['cold_runner_ms']:.0f} ms (median of "
          f"5); whole first call {stack['cold_call_ms']:.0f} ms")
    print(f"one composition hop (seefood -> fruit, p50 minus fruit alone): "
          f"{stack['hop_ms']:.2f} ms")
    crowd = stack["crowd"]
    print(f"composition under load (seefood at concurrency 32, 8 worker threads): "
          f"{crowd['ok']} answered, {crowd['failed']} failed, {crowd['rps']:.0f} calls/s, "
          f"p50 {crowd['p50']:.2f} ms, p99 {crowd['p99']:.2f} ms")
    print("CPU per call under load, by process group: " + ", ".join(
        f"{group} {ms:.2f} ms" for group, ms in stack["cpu"].items()) +
        f" (total {sum(stack['cpu'].values()):.2f} ms on {__import__('os').cpu_count()} cores)")


if __name__ == "__main__":
    main()
