"""Celery tasks of the site shell."""
from celery import shared_task


@shared_task(name="marketplace.ping")
def ping(token: str) -> dict:
    """Round trip used by /healthz?deep=1 to prove a worker consumes the default queue."""
    import socket

    return {"pong": token, "hostname": socket.gethostname()}
