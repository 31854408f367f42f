"""The Data API's periodic housekeeping (queue ``default``)."""
from datetime import timedelta

from celery import shared_task
from django.utils import timezone


@shared_task(name="datastore.expire_temp")
def expire_temp() -> int:
    """Files in algorithms' data://.algo/temp spaces last a day."""
    from datastore.services import temp_expire

    return temp_expire(older_than=timezone.now() - timedelta(days=1))
