"""Execution backends: where runners live. ``local`` (bubblewrap sandboxes on this machine)
or ``kubernetes`` (runner pods), chosen by the EXECUTION_BACKEND setting."""
from django.conf import settings

from .base import Backend, Outcome, RunTarget


_made: dict = {}


def get_backend() -> Backend:
    """The configured backend, made once per process and configuration. The local one
    looks for bubblewrap when made, and every sandbox it starts looks again (a missing one
    is an error, never a fallback); the Kubernetes one loads its credentials once and keeps
    its API connections (made per call, it loaded the configuration and connected anew)."""
    if settings.EXECUTION_BACKEND == "local":
        from .local import LocalBackend

        made = ("local",)
        if made not in _made:
            _made[made] = LocalBackend()
        return _made[made]
    from .kubernetes import KubernetesBackend

    made = ("kubernetes", settings.EXECUTION_K8S_API_HOST, settings.EXECUTION_K8S_NAMESPACE)
    if made not in _made:
        _made[made] = KubernetesBackend()
    return _made[made]


__all__ = ["Backend", "Outcome", "RunTarget", "get_backend"]
