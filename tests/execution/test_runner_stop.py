"""Runners outlive calls by design (they stay warm); embedded (``make run``), they stop
with the web process that was their only caller, their sandboxes too."""
import importlib.util
import json
import os
import time
from pathlib import Path

from django.conf import settings

from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parent.parent.parent


def runner_pids() -> set[int]:
    pids = set()
    for status in Path(settings.EXECUTION_RUN_DIR).glob("*/r*.status"):
        try:
            pids.add(json.loads(status.read_text())["pid"])
        except (OSError, ValueError, KeyError):
            pass
    return {pid for pid in pids if Path(f"/proc/{pid}").exists()}


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (its sandbox, and the algorithm in it)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0])
    except OSError:
        return False
    return state != "Z"


def test_the_web_stopping_embedded_stops_its_runners_and_their_sandboxes(client, probe,
                                                                         user, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True  # embedded, as make run serves (in both passes)
    algo = client.algo(f"{user.username}/probe")
    assert algo.pipe("one").result == "echo: one"
    runners = runner_pids()
    assert runners
    below = set().union(*(descendants(pid) for pid in runners))
    assert below  # bubblewrap and the algorithm's process
    spec = importlib.util.spec_from_file_location("gunicorn_conf",
                                                  ROOT / "deploy" / "gunicorn.conf.py")
    conf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conf)

    conf.on_exit(None)  # gunicorn's master, exiting

    wait_for(lambda: not any(alive(pid) for pid in runners | below), timeout=20)
    assert not list(Path(settings.EXECUTION_RUN_DIR).glob("*/r*.status"))
    assert algo.pipe("two").result == "echo: two"  # a new runner, cold


def test_stopping_leaves_a_process_that_only_reuses_a_runners_pid_alone(tmp_path):
    """A status file whose pid is now another process's: that process is not signalled."""
    from execution.runner.server import stop_all

    pool = tmp_path / "pool"
    pool.mkdir()
    (pool / "r0.status").write_text(json.dumps({"state": "ready", "pid": os.getpid()}))
    assert stop_all(str(tmp_path)) == []
    time.sleep(0.1)
    assert alive(os.getpid())
