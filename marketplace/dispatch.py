"""Sending Celery tasks by name, after the current transaction commits (STYLE items 11, 13).

With a broker the task goes to its named queue and a worker runs it; in the embedded default
(no broker) it runs in-process, eagerly, through the same task code.
"""
from django.conf import settings
from django.db import transaction


def run_eagerly(name: str, args: list | tuple = ()):
    """Run a task by name here and now (the embedded default); returns its result."""
    from marketplace.celery import app

    app.loader.import_default_modules()  # autodiscovery is lazy outside a worker
    return app.tasks[name].apply(args=list(args)).get()


def task_send(name: str, *, args: list | tuple = (), queue: str) -> None:
    def send() -> None:
        if settings.CELERY_TASK_ALWAYS_EAGER:
            run_eagerly(name, args)
        else:
            from marketplace.celery import app

            app.send_task(name, args=list(args), queue=queue)

    transaction.on_commit(send)
