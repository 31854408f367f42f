"""Web and Celery workers keep their startup objects out of the garbage collector's scans
once loaded (a full collection over them paused calls for 60-230 ms)."""
import gc
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def test_a_web_worker_freezes_what_it_loaded_once_the_app_is_loaded():
    spec = importlib.util.spec_from_file_location("gunicorn_conf",
                                                  ROOT / "deploy" / "gunicorn.conf.py")
    conf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conf)
    gc.unfreeze()
    try:
        assert gc.get_freeze_count() == 0
        conf.post_worker_init(object())
        assert gc.get_freeze_count() > 1000  # everything imported so far
    finally:
        gc.unfreeze()


def test_a_celery_worker_freezes_what_it_loaded_when_it_is_ready():
    from celery.signals import worker_ready

    from marketplace.celery import _worker_ready

    assert any(receiver() is _worker_ready
               for _key, receiver in worker_ready.receivers)
    gc.unfreeze()
    try:
        worker_ready.send(sender=None)
        assert gc.get_freeze_count() > 1000
    finally:
        gc.unfreeze()
