"""Sending Celery tasks by name, after the current transaction commits (STYLE items 11, 13).

With a broker the task goes to its named queue and a worker runs it; in the embedded default
(no broker) it runs in-process, eagerly, through the same task code.
"""
from django.conf import settings
from django.db import transaction


def task_send(name: str, *, args: list | tuple = (), queue: str) -> None:
    def send() -> None:
        from marketplace.celery import app

        if settings.CELERY_TASK_ALWAYS_EAGER:
            app.loader.import_default_modules()  # autodiscovery is lazy outside a worker
            app.tasks[name].apply(args=list(args))
        else:
            app.send_task(name, args=list(args), queue=queue)

    transaction.on_commit(send)
