"""The runner's process protocol, with a small trusted stand-in algorithm (no sandbox needed
to test the FIFO and stdout handling itself)."""
import sys
import textwrap

import pytest

from execution.runner.process import AlgorithmProcess, LoadFailed

FAKE = textwrap.dedent("""
    import json, sys
    print("loading…")
    print("PIPE_INIT_COMPLETE", flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        data = request["data"]
        if data == "crash":
            sys.exit(7)
        if data == "flood":  # many lines, one longer than a pipe read, all before answering
            for i in range(500):
                print("flood", i, flush=True)
            print("x" * 100_000, flush=True)
        for i in range(3):
            print("line", i, flush=True)
        if data == "partial":  # the last output has no newline
            print("tail without a newline", end="", flush=True)
        if data == "huge":  # one 3 MB line, no newline: cut at the limit, read in linear time
            sys.stdout.write("y" * 3_000_000)
            sys.stdout.flush()
        result = {"nan": float("nan"), "inf": [float("inf")], "nul": {"k": "a\\x00b"},
                  "big": "z" * 300_000}.get(data, data)
        with open(sys.argv[1], "w") as fifo:
            if data == "overflow":  # a number no float holds: Python reads it as Infinity
                fifo.write('{"result": 1e400, "metadata": {"content_type": "json"}}\\n')
                continue
            fifo.write(json.dumps({"result": result, "metadata": {"content_type": "json"}}) + "\\n")
""")


@pytest.fixture
def process(tmp_path):
    script = tmp_path / "fake.py"
    script.write_text(FAKE)
    fifo = tmp_path / "algoout"
    proc = AlgorithmProcess([sys.executable, str(script), str(fifo)], str(fifo))
    proc.start()
    yield proc
    proc.stop()


def test_the_ready_line_leaves_no_stdout_pending(process):
    assert process.alive() and process.stdout_busy is False


def test_everything_printed_before_the_answer_is_the_calls_stdout(process):
    for _ in range(20):
        result = process.call({"content_type": "text", "data": "hi"}, timeout=5)
        assert result.response == {"result": "hi", "metadata": {"content_type": "json"}}
        assert result.stdout == "line 0\nline 1\nline 2\n"


def test_a_flood_of_output_is_collected_whole_before_the_answer_is_returned(process):
    expected = "".join(f"flood {i}\n" for i in range(500)) + "x" * 100_000 + "\n" + (
        "line 0\nline 1\nline 2\n")
    for _ in range(30):
        result = process.call({"content_type": "text", "data": "flood"}, timeout=5)
        assert result.response["result"] == "flood"
        assert result.stdout == expected


def test_output_without_a_final_newline_belongs_to_the_call_that_printed_it(process):
    result = process.call({"content_type": "text", "data": "partial"}, timeout=5)
    assert result.stdout == "line 0\nline 1\nline 2\ntail without a newline"
    nxt = process.call({"content_type": "text", "data": "next"}, timeout=5)
    assert nxt.stdout == "line 0\nline 1\nline 2\n"


def test_a_huge_line_is_cut_at_the_stdout_limit(process):
    from execution.runner.process import STDOUT_LIMIT_BYTES

    result = process.call({"content_type": "text", "data": "huge"}, timeout=10)
    assert result.response["result"] == "huge"
    assert result.stdout == "line 0\nline 1\nline 2\n" + "y" * STDOUT_LIMIT_BYTES
    assert process.call({"content_type": "text", "data": "ok"}, timeout=5).stdout == (
        "line 0\nline 1\nline 2\n")


def test_a_crash_is_an_algorithm_error_and_the_process_is_replaced(process):
    result = process.call({"content_type": "text", "data": "crash"}, timeout=5)
    assert result.error_type == "AlgorithmError" and "exited (code 7)" in result.error_message
    again = process.call({"content_type": "text", "data": "back"}, timeout=5)
    assert again.response["result"] == "back"


def test_a_process_that_dies_while_loading_is_a_load_failure(tmp_path):
    script = tmp_path / "broken.py"
    script.write_text("raise SystemExit('cannot load the model')\n")
    proc = AlgorithmProcess([sys.executable, str(script)], str(tmp_path / "algoout"))
    with pytest.raises(LoadFailed, match="cannot load the model"):
        proc.start()


@pytest.mark.parametrize("data, message", [
    ("nan", "it holds NaN"), ("inf", "it holds Infinity"), ("nul", "a NUL character"),
    ("overflow", "it holds 1e400, which is out of range"),
])
def test_a_result_json_cannot_hold_is_an_algorithm_error(process, data, message):
    """NaN, Infinity (Python's json writes them) and NUL (PostgreSQL cannot store it): the
    call got a 500 and stayed "running", its hold never released."""
    result = process.call({"content_type": "text", "data": data}, timeout=5)
    assert result.error_type == "AlgorithmError" and message in result.error_message
    assert process.call({"content_type": "text", "data": "hi"}, timeout=5).response[
        "result"] == "hi"


def test_a_result_over_the_limit_is_refused_and_the_runner_goes_on(tmp_path):
    """A result larger than the limit (here 100 kB) left the FIFO full, and stopping the
    process blocked for ever on its wake-up write: the runner never answered again."""
    import threading

    from execution.runner.process import Limits

    script = tmp_path / "fake.py"
    script.write_text(FAKE)
    fifo = tmp_path / "algoout"
    proc = AlgorithmProcess([sys.executable, str(script), str(fifo)], str(fifo),
                            limits=Limits(max_output_bytes=100_000))
    proc.start()
    answers = []
    caller = threading.Thread(target=lambda: answers.append(
        proc.call({"content_type": "text", "data": "big"}, timeout=10)), daemon=True)
    caller.start()
    caller.join(15)
    assert not caller.is_alive(), "the call never came back"
    assert answers[0].error_type == "AlgorithmError"
    assert answers[0].error_message == "The result is larger than 100000 bytes."
    assert proc.call({"content_type": "text", "data": "hi"}, timeout=5).response[
        "result"] == "hi"
    proc.stop()


def test_the_time_a_call_had_reads_as_a_person_writes_it():
    from execution.runner.process import _seconds

    assert [_seconds(t) for t in (0.99975, 1.99975, 0.05, 12.5, 2999.95, 300)] == [
        "1", "2", "0.1", "12.5", "3000", "300"]  # were 0.99975, 1.99975, …, 3e+03
