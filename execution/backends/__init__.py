"""Execution backends: where runners live. ``local`` (bubblewrap sandboxes on this machine)
or ``kubernetes`` (runner pods), chosen by the EXECUTION_BACKEND setting."""
from django.conf import settings

from .base import Backend, Outcome, RunTarget


def get_backend() -> Backend:
    if settings.EXECUTION_BACKEND == "local":
        from .local import LocalBackend

        return LocalBackend()
    from .kubernetes import KubernetesBackend

    return KubernetesBackend()


__all__ = ["Backend", "Outcome", "RunTarget", "get_backend"]
