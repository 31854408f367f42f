"""What metering adds to a call, on PostgreSQL: the hold before a call and the closing of
its usage record after it, measured beside the same Invocation writes without them; and how
fast the batch settler writes finished calls into the ledger meanwhile.

    .venv/bin/python bench/metering.py [--calls 2000] [--concurrency 16]

It makes a scratch database (algostore_bench_metering), migrates it, and times, per call:
  baseline: insert the Invocation; later close it with a conditional UPDATE (what a call
            writes anyway)
  metered:  as the call path does it: usage_reserve (the hold, the Invocation and its usage
            row, one statement) and usage_finish (the Invocation, its usage and the hold's
            release, one statement)
sequentially (p50/p99 milliseconds) and from --concurrency threads at once, all paid by one
account and earning one author, the worst case for row contention (calls per second), while
a settler thread runs usage_settle_pending in a loop, as the billing worker does.
"""
import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "algostore_bench_metering"


def pct(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def setup_django():
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc",
                    f"DROP DATABASE IF EXISTS {DATABASE}"], check=True, capture_output=True)
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc",
                    f"CREATE DATABASE {DATABASE}"], check=True, capture_output=True)
    os.environ.update({"DJANGO_SETTINGS_MODULE": "marketplace.settings.test",
                       "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DATABASE}"})
    for name in ("REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"):
        os.environ.pop(name, None)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def world():
    from billing.services import adjustment_create, account_for_user
    from catalog.models import Algorithm, AlgorithmVersion, Build, SourceBundle
    from marketplace.models import User
    from marketplace.services import api_key_create

    author = User.objects.create_user("author", password="x")
    caller = User.objects.create_user("caller", password="x")
    adjustment_create(account=account_for_user(caller), amount=10**15, reason="bench",
                      actor=author)
    algorithm = Algorithm.objects.create(owner_user=author, owner_name="author", name="echo",
                                         created_by=author, royalty_microcredits=1_000_000)
    bundle = SourceBundle.objects.create(algorithm=algorithm, storage_path="x", archive_format="tar.gz",
                                         archive_sha256="a" * 64, content_hash="b" * 64,
                                         size_bytes=1, unpacked_bytes=1, file_count=1)
    build = Build.objects.create(algorithm=algorithm, bundle=bundle, status="succeeded",
                                 content_hash="b" * 64,
                                 artifact_path="artifacts/x.tar.gz", language="python3-1")
    version = AlgorithmVersion.objects.create(algorithm=algorithm, build=build, major=1,
                                              minor=0, patch=0, callability="public",
                                              royalty_microcredits=1_000_000)
    key = api_key_create(created_by=caller, name="bench").key
    return algorithm, version, build, caller, key


def one_call(algorithm, version, build, caller, key, metered: bool) -> float:
    """One call's writes, as the call path makes them: recorded (with its hold, in one
    statement, when metered), then closed by a conditional UPDATE (with its usage)."""
    from django.utils import timezone

    from billing.services import usage_finish, usage_hold_of, usage_reserve
    from execution.models import Invocation
    from marketplace.row_update import Update, row_update

    started = time.perf_counter()
    request_id = uuid.uuid4()
    invocation = Invocation(
        request_id=request_id, trace_id=request_id, algorithm=algorithm,
        algorithm_path="author/echo", version=version, version_text="1.0.0", build=build,
        caller=caller, api_key=key, input_content_type="json", options={"timeout": 5})
    if metered:
        invocation.usage_hold = usage_hold_of(usage_reserve(invocation=invocation, key=key))
    else:
        invocation.save(force_insert=True)
    invocation.run_ms = 0.4
    closing = {"status": "succeeded", "run_ms": 0.4, "finished_at": timezone.now()}
    where = {"status": ("queued", "running")}
    if metered:
        usage_finish(invocation=invocation, succeeded=True,
                     closing=Update(Invocation, invocation.pk, set=closing, where=where))
    else:
        row_update(Invocation, invocation.pk, set=closing, where=where)
    return (time.perf_counter() - started) * 1000


def run(world_, metered: bool, calls: int, concurrency: int) -> tuple[list[float], float]:
    from django.db import connection

    from billing.models import UsageRecord

    sequential = [one_call(*world_, metered) for _ in range(calls)]
    per_thread = calls // concurrency

    def worker():
        for _ in range(per_thread):
            one_call(*world_, metered)
        connection.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rate = per_thread * concurrency / (time.perf_counter() - started)
    if metered:  # the settler catches up; nothing may be left behind
        deadline = time.monotonic() + 60
        while UsageRecord.objects.filter(settled_at__isnull=True, status="pending").exists():
            assert time.monotonic() < deadline, "the settler fell behind for a minute"
            time.sleep(0.05)
    return sequential, rate


class Settler(threading.Thread):
    """The billing worker's job, in a loop: settle whatever has finished."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stop, self.settled, self.busy = threading.Event(), 0, 0.0

    def run(self):
        from django.db import connection

        from billing.services import usage_settle_pending

        while not self.stop.is_set():
            started = time.perf_counter()
            count = usage_settle_pending()
            if count:
                self.settled += count
                self.busy += time.perf_counter() - started
            else:
                time.sleep(0.01)
        connection.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    setup_django()
    import billing.services.usage as usage

    usage.schedule_settlement = lambda: None  # the Settler thread below does the settling
    world_ = world()
    settler = Settler()
    settler.start()
    for metered in (False, True, False, True):  # interleaved, so drift hits both alike
        latencies, rate = run(world_, metered, args.calls, args.concurrency)
        print(f"{'metered ' if metered else 'baseline'}  p50 {statistics.median(latencies):6.2f} ms"
              f"  p99 {pct(latencies, 0.99):6.2f} ms  {rate:7.0f} calls/s at concurrency "
              f"{args.concurrency}")
    settler.stop.set()
    settler.join()
    print(f"settler: {settler.settled} calls written to the ledger in {settler.busy:.2f} s of "
          f"work ({settler.settled / max(settler.busy, 1e-9):.0f} calls/s)")
    from django.core.management import call_command

    from billing.selectors import ledger_problems

    problems = [p for p in ledger_problems() if "no usage record" not in p]  # baseline rows
    print("ledger:", "sound" if not problems else problems[:5])


if __name__ == "__main__":
    main()
