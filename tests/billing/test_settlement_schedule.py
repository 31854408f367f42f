"""The settlement scheduler: closing calls raise a flag; one thread per process sends the
runs. Every call is settled by a run that starts after it closed, and a burst of calls
sends one run per countdown, not one per call."""
import threading
import time

import pytest

from billing.services.usage import SettlementScheduler

DELAY = 0.25  # BILLING_SETTLE_DELAY_SECONDS


@pytest.fixture(autouse=True)
def delay(settings):
    settings.BILLING_SETTLE_DELAY_SECONDS = DELAY


class Runs:
    """A stand-in for ``send_settlement``: when each check was made, and what it answered
    (``queued``: another process's run is queued and has not started, so none is sent)."""

    def __init__(self, queued: bool = False, fail_first: int = 0):
        self.checks: list[tuple[float, bool]] = []
        self.queued, self.fail_first = queued, fail_first

    def __call__(self) -> bool:
        if self.fail_first:
            self.fail_first -= 1
            self.checks.append((time.monotonic(), False))
            raise ConnectionError("broker unreachable")
        self.checks.append((time.monotonic(), not self.queued))
        return not self.queued

    @property
    def sent(self) -> list[float]:
        return [moment for moment, sent in self.checks if sent]


def closing_calls(scheduler: SettlementScheduler, seconds: float) -> list[float]:
    """Calls closing one after another for ``seconds``: when each raised the flag."""
    moments, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        moments.append(time.monotonic())
        scheduler.wanted()
        time.sleep(0.002)
    return moments


def quiet(runs: Runs) -> None:
    """Until the scheduler has done all it will (nothing new for two delays)."""
    seen, still = -1, time.monotonic()
    while time.monotonic() - still < 2 * DELAY:
        if len(runs.checks) != seen:
            seen, still = len(runs.checks), time.monotonic()
        time.sleep(0.02)


def test_a_burst_of_closing_calls_sends_a_run_per_countdown_and_the_last_call_is_covered():
    runs = Runs()
    scheduler = SettlementScheduler(send=runs)
    calls = closing_calls(scheduler, 1.0)
    quiet(runs)
    assert len(calls) > 100
    # One run at a time: never two sent within most of a countdown (the first run still
    # has to start, and takes them all), so a second of calls sends at most 1 / 0.2 + 1.
    assert 1 <= len(runs.sent) <= 6, runs.sent
    assert all(b - a >= 0.8 * DELAY - 0.01 for a, b in zip(runs.sent, runs.sent[1:]))
    # The last call closed before the last run started (sent + countdown): it is settled.
    assert calls[-1] < runs.sent[-1] + DELAY


def test_a_run_queued_by_another_process_is_checked_again_until_the_calls_stop():
    """While another's run is queued, nothing is sent; calls closing meanwhile are checked
    again after them (the queued run may have started in between)."""
    runs = Runs(queued=True)
    scheduler = SettlementScheduler(send=runs)
    calls = closing_calls(scheduler, 0.5)
    quiet(runs)
    assert runs.sent == []
    assert 2 <= len(runs.checks) <= 0.5 / (DELAY / 5) + 2  # not one per call
    assert runs.checks[-1][0] > calls[-1]  # a check after the last call closed


def test_a_failed_send_is_tried_again_and_the_exit_sends_what_is_left():
    runs = Runs(fail_first=1)
    scheduler = SettlementScheduler(send=runs)
    scheduler.wanted()
    quiet(runs)
    assert [sent for _, sent in runs.checks] == [False, True]  # failed, then sent
    assert runs.checks[1][0] - runs.checks[0][0] >= DELAY - 0.01

    held = HeldRuns()
    exiting = SettlementScheduler(send=held)
    exiting.flush()
    assert held.checks == []  # nothing waiting: nothing sent
    exiting.wanted()
    assert held.entered.wait(5)  # the thread is sending a run (held up at the broker)...
    exiting.wanted()  # ...when a call closes, just before the process exits
    exiting.flush()
    assert len(held.sent) == 1  # the exit sent one for it, while the thread's was held
    held.release.set()
    quiet(held)
    assert len(held.sent) == 2
    exiting.flush()
    assert len(held.sent) == 2  # nothing waiting any more


class HeldRuns(Runs):
    """Runs whose first send is held up until ``release`` is set."""

    def __init__(self):
        super().__init__()
        self.entered, self.release = threading.Event(), threading.Event()
        self.calls = 0

    def __call__(self) -> bool:
        self.calls += 1
        if self.calls == 1:
            self.entered.set()
            self.release.wait(5)
        return super().__call__()
