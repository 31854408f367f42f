"""Algostore's Django project and site shell: accounts, organizations, API keys, audit log."""
from .celery import app as celery_app

__all__ = ("celery_app",)
