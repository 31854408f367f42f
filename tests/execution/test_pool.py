"""The execution pool's executor: exact about its idle threads, and its limit can be lent."""
import threading
import time

from execution.pool import LendingThreadExecutor


def blocking(started: threading.Event, release: threading.Event):
    def work():
        started.set()
        assert release.wait(10)
        return "done"
    return work


def test_work_waiting_behind_busy_threads_gets_a_lent_thread_at_once():
    executor = LendingThreadExecutor(2)
    release = threading.Event()
    first, last, lent = threading.Event(), threading.Event(), threading.Event()
    try:
        a = executor.submit(blocking(first, release))
        assert first.wait(5)
        # The second thread works through quick work, then blocks: the standard library's
        # executor would count it idle once per piece of work it finished.
        quick = [executor.submit(lambda n=n: n) for n in range(5)]
        b = executor.submit(blocking(last, release))
        assert [q.result(5) for q in quick] == [0, 1, 2, 3, 4] and last.wait(5)
        c = executor.submit(blocking(lent, release))
        time.sleep(0.2)
        assert not lent.is_set() and not c.running()  # both threads are busy: it waits
        assert executor.lend(1) and not executor.lend(1)  # at most one lent here
        assert lent.wait(5)  # the lent thread took it
        assert len(executor._threads) == 3 and executor.lent == 1
        executor.reclaim()
        release.set()
        assert [f.result(5) for f in (a, b, c)] == ["done"] * 3
        deadline = time.monotonic() + 5
        while len(executor._threads) > 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(executor._threads) == 2  # the lent thread stopped once its work was done
    finally:
        release.set()
        executor.shutdown()


def test_errors_travel_in_the_future_and_shutdown_cancels_waiting_work():
    executor = LendingThreadExecutor(1)
    release, started = threading.Event(), threading.Event()

    def fails():
        raise ValueError("no")

    failed = executor.submit(fails)
    assert isinstance(failed.exception(5), ValueError)
    running = executor.submit(blocking(started, release))
    assert started.wait(5)
    waiting = executor.submit(lambda: "never")
    executor.shutdown(wait=False, cancel_futures=True)
    assert waiting.cancelled() and running.running()
    release.set()
    assert running.result(5) == "done"
    deadline = time.monotonic() + 5
    while executor._threads and time.monotonic() < deadline:
        time.sleep(0.01)
    assert executor._threads == set()
