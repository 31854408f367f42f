"""Two versions of the call path side by side: a full stack for each, both up at once, and
bursts of warm sequential calls to each in turn, the order alternating from round to round.
The machine's phase moves the full stack's latency by tens of percent within an hour (see
docs/benchmarks.md), far more than most changes do: measured this way it falls on both
versions alike, where two runs of ``invoke_latency.py`` an hour apart cannot tell them
apart.

    .venv/bin/python bench/side_by_side.py BASE CHANGED [--rounds 8] [--calls 300]

BASE and CHANGED are git revisions of this repository, or "." for the working tree as it is
(uncommitted changes included). Each revision gets a scratch worktree sharing this
checkout's .venv. The same revision twice is an A/A check of the method itself (neither
side should win more often than chance). Prints each round's p50s, the medians, and in how
many rounds CHANGED was faster. Everything runs on 127.0.0.1 and stops by itself.
"""
import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from invoke_latency import pct, sequential  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SIDES = (("A", 8831, 13), ("B", 8832, 14))  # name, port, Redis database

# Run in a revision's own checkout, with its own bench/_stack.py: up until SIGTERM.
HOLDER = """
import os, signal, subprocess, sys, time
sys.path.insert(0, "bench")
from _stack import Stack
port, redis_db, database, key_file = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
psql = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-c"]
subprocess.run(psql + [f"DROP DATABASE IF EXISTS {database}"], capture_output=True)
subprocess.run(psql + [f"CREATE DATABASE {database}"], capture_output=True, check=True)
stack, stop = Stack(port, f"postgres://postgres@127.0.0.1:5432/{database}", redis_db), []
signal.signal(signal.SIGTERM, lambda *args: stop.append(True))
try:
    stack.start(web_workers=2)
    key = stack.manage("seed_demo").strip().splitlines()[-1]
    open(key_file + ".part", "w").write(key)
    os.replace(key_file + ".part", key_file)  # whole when it appears
    while not stop:
        time.sleep(0.2)
finally:
    stack.stop()
"""


def checkout(revision: str, scratch: Path, name: str) -> Path:
    if revision == ".":
        return ROOT
    path = scratch / name
    subprocess.run(["git", "worktree", "add", "--detach", "--quiet", str(path), revision],
                   cwd=ROOT, check=True)
    (path / ".venv").symlink_to(ROOT / ".venv")
    return path


def burst(port: int, key: str, calls: int) -> float:
    """The p50 of ``calls`` warm sequential calls, after 30 not counted."""
    url = f"http://127.0.0.1:{port}/v1/algo/demo/hello/0.1.0"
    headers = {"Authorization": key, "Content-Type": "application/json"}
    sequential(url, headers, b'"world"', 30)
    return pct(sequential(url, headers, b'"world"', calls), .5)


def start(revisions: tuple[str, str], scratch: Path) -> tuple[list, list, dict]:
    """A stack for each revision, from its own checkout: (holders, checkouts, keys)."""
    holders, trees, key_files = [], [], {}
    try:
        for (name, port, redis_db), revision in zip(SIDES, revisions):
            tree = checkout(revision, scratch, name)
            trees.append(tree)
            key_files[name] = scratch / f"key-{name}"
            holders.append(subprocess.Popen(
                [sys.executable, "-c", HOLDER, str(port), str(redis_db),
                 f"algostore_side_{name.lower()}", str(key_files[name])],
                cwd=tree, start_new_session=True, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 180
        while not all(path.exists() for path in key_files.values()):
            if time.monotonic() > deadline or any(h.poll() is not None for h in holders):
                raise SystemExit("a stack did not come up")
            time.sleep(0.5)
    except BaseException:
        stop(holders, trees)
        raise
    return holders, trees, {name: path.read_text().strip() for name, path in key_files.items()}


def stop(holders: list, trees: list) -> None:
    for holder in holders:
        try:
            os.killpg(holder.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for holder in holders:
        try:
            holder.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(holder.pid, signal.SIGKILL)
    for tree in trees:
        if tree != ROOT:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT,
                           capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base")
    parser.add_argument("changed")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="algostore-side-by-side-"))
    holders, trees, keys = start((args.base, args.changed), scratch)
    try:
        p50s = {"A": [], "B": []}
        for round_ in range(args.rounds):
            order = SIDES if round_ % 2 == 0 else SIDES[::-1]
            for name, port, _db in order:
                p50s[name].append(burst(port, keys[name], args.calls))
            print(f"round {round_ + 1}: A {p50s['A'][-1]:.3f} ms  B {p50s['B'][-1]:.3f} ms",
                  flush=True)
        wins = sum(b < a for a, b in zip(p50s["A"], p50s["B"]))
        print(f"A = {args.base}, B = {args.changed}: median p50 {statistics.median(p50s['A']):.3f}"
              f" against {statistics.median(p50s['B']):.3f} ms; B faster in {wins} of "
              f"{args.rounds} rounds")
    finally:
        stop(holders, trees)


if __name__ == "__main__":
    main()
