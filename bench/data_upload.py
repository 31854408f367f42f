"""A 1 GB file through the Data API, up and down, with the web processes' memory watched.

    .venv/bin/python bench/data_upload.py [--megabytes 1024]

Starts the stack of bench/_stack.py (gunicorn with uvicorn workers, PostgreSQL, local file
storage in a scratch folder), PUTs a generated file of --megabytes as a chunked stream, GETs
it back as a stream (checking its SHA-256), and samples the resident memory of every web
process every 20 ms. Prints throughput and the peak RSS. Everything on 127.0.0.1.
"""
import argparse
import hashlib
import os
import subprocess
import sys
import threading
import time

import requests

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from _stack import Stack  # noqa: E402

CHUNK = 1 << 20


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def web_pids() -> list[int]:
    out = subprocess.run(["pgrep", "-f", "gunicorn -c deploy/gunicorn.conf.py"],
                         capture_output=True, text=True).stdout.split()
    return [int(pid) for pid in out]


class Watch(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True)
        self.peak, self.stop = {}, threading.Event()

    def run(self):
        while not self.stop.is_set():
            for pid in web_pids():
                self.peak[pid] = max(self.peak.get(pid, 0.0), rss_mb(pid))
            time.sleep(0.02)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--megabytes", type=int, default=1024)
    args = parser.parse_args()
    port = 8797
    stack = Stack(port, "postgres://postgres@127.0.0.1:5432/algostore_bench")
    stack.env["DATA_ROOT"] = os.path.join(stack.var, "data")
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-c",
                    "DROP DATABASE IF EXISTS algostore_bench"], capture_output=True)
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-c",
                    "CREATE DATABASE algostore_bench"], capture_output=True, check=True)
    try:
        stack.start(web_workers=2)
        key = stack.manage("create_api_key", "bench", "--create-user").strip().splitlines()[-1]
        base, headers = f"http://127.0.0.1:{port}/v1/data", {"Authorization": key}
        requests.post(f"{base}/.my", json={"name": "big"}, headers=headers,
                      timeout=30).raise_for_status()
        idle = {pid: rss_mb(pid) for pid in web_pids()}
        sent = hashlib.sha256()
        block = os.urandom(CHUNK)

        def body():
            for index in range(args.megabytes):
                chunk = block[index % 97:] + block[:index % 97]  # not all the same bytes
                sent.update(chunk)
                yield chunk

        watch = Watch()
        watch.start()
        started = time.perf_counter()
        response = requests.put(f"{base}/.my/big/one.bin", data=body(), headers=headers,
                                timeout=3600)
        up = time.perf_counter() - started
        response.raise_for_status()
        received = hashlib.sha256()
        started = time.perf_counter()
        with requests.get(f"{base}/.my/big/one.bin", headers=headers, stream=True,
                          timeout=3600) as download:
            download.raise_for_status()
            for chunk in download.iter_content(CHUNK):
                received.update(chunk)
        down = time.perf_counter() - started
        watch.stop.set()
        watch.join()
    finally:
        stack.stop()
    size = args.megabytes
    assert received.hexdigest() == sent.hexdigest(), "the bytes that came back differ"
    print(f"upload   {size} MB in {up:6.1f} s  ({size / up:6.1f} MB/s)")
    print(f"download {size} MB in {down:6.1f} s  ({size / down:6.1f} MB/s), SHA-256 matches")
    for pid, peak in sorted(watch.peak.items()):
        print(f"web process {pid}: idle {idle.get(pid, 0):6.1f} MB, peak RSS {peak:6.1f} MB")


if __name__ == "__main__":
    main()
