from django.apps import AppConfig


class ExecutionConfig(AppConfig):
    name = "execution"
    verbose_name = "Execution: invocations and runners"

    def ready(self) -> None:
        from celery.signals import worker_init

        worker_init.connect(_refuse_to_start_without_a_sandbox, weak=False)


def _refuse_to_start_without_a_sandbox(**kwargs) -> None:
    """A worker that would run algorithms checks for bubblewrap before taking any call."""
    from django.conf import settings

    if settings.EXECUTION_BACKEND == "local":
        from execution.runner.sandbox import bwrap_path

        bwrap_path()  # raises SandboxUnavailable with a clear message
